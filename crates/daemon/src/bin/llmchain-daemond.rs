//! `llmchain-daemond`: a minimal stand-alone daemon and one-shot client, used by
//! the integration tests as a real child process (so `kill -9` is real and a
//! client can run as another uid). Operators use `llmchain daemon` instead.
//!
//! ```text
//! llmchain-daemond serve --state-dir D [--socket S] [--policy P] [--capacity MILLICORES,MIB]
//!                        [--cgroup-parent NAME] [--all-users] [--http ADDR --token TOKEN]
//! llmchain-daemond call --socket S 'REQUEST-JSON'   # prints the response envelope
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use llmchain_daemon::protocol::{parse_request, Response, ResponseEnvelope};
use llmchain_daemon::{Client, Config, Shutdown, SocketAccess};

fn usage(msg: &str) -> ExitCode {
    eprintln!("llmchain-daemond: {msg}\nusage: llmchain-daemond serve --state-dir D [options] | call --socket S JSON");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let _ = tracing_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage("missing command");
    };
    let mut opts = std::collections::BTreeMap::new();
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--all-users" {
            flags.push(a.clone());
        } else if let Some(k) = a.strip_prefix("--") {
            let Some(v) = args.get(i + 1) else {
                return usage(&format!("--{k} needs a value"));
            };
            opts.insert(k.to_string(), v.clone());
            i += 1;
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    match cmd.as_str() {
        "serve" => {
            let Some(dir) = opts.get("state-dir") else {
                return usage("serve needs --state-dir");
            };
            let mut c = Config::in_dir(&PathBuf::from(dir));
            if let Some(s) = opts.get("socket") {
                c.socket = s.into();
            }
            if let Some(p) = opts.get("policy") {
                c.policy = p.clone();
            }
            if let Some(p) = opts.get("cgroup-parent") {
                c.cgroup_parent = p.clone();
            }
            if let Some(cap) = opts.get("capacity") {
                let parsed = cap
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                let Some(cap) = parsed else {
                    return usage("--capacity takes MILLICORES,MIB");
                };
                c.capacity = Some(cap);
            }
            if flags.iter().any(|f| f == "--all-users") {
                c.socket_access = SocketAccess::AllUsers;
            }
            if let Some(a) = opts.get("http") {
                let Ok(a) = a.parse() else {
                    return usage("--http takes IP:PORT");
                };
                c.http = Some(a);
                c.http_token = opts.get("token").cloned();
            }
            c.handle_signals = true;
            match llmchain_daemon::run(c, Shutdown::new()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("llmchain-daemond: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        "call" => {
            let Some(sock) = opts.get("socket") else {
                return usage("call needs --socket");
            };
            let Some(json) = rest.first() else {
                return usage("call needs a request JSON");
            };
            let req = match parse_request(json.as_bytes()) {
                Ok(r) => r,
                Err(e) => return usage(&e.message),
            };
            let mut client = match Client::connect(&PathBuf::from(sock)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(4);
                }
            };
            match client.call(req) {
                Ok(r) => {
                    let err = matches!(r, Response::Error(_));
                    println!(
                        "{}",
                        serde_json::to_string(&ResponseEnvelope::new(r)).unwrap_or_default()
                    );
                    if err {
                        ExitCode::from(3)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        other => usage(&format!("unknown command {other:?}")),
    }
}

fn tracing_init() -> Result<(), ()> {
    Ok(())
}
