//! Helpers shared by the node-daemon client subcommands (`submit`, `ps`, `wait`,
//! ...): the `--socket`/`--json` flags, connecting with a clear error, and
//! parsing sizes (`1G`, `512M`), CPU amounts (`2`, `0.5`, `500m`) and durations (`10m`, `90s`).

use std::path::PathBuf;

use anyhow::Result;
use llmchain_daemon::protocol::TaskInfo;
use llmchain_daemon::Client;
use serde::Serialize;

use super::UsageError;

/// Flags every client subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// Daemon socket (default: $LLMCHAIN_SOCKET, $XDG_RUNTIME_DIR/llmchain/llmchain.sock,
    /// or /run/llmchain/llmchain.sock for root).
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    /// The socket path in use.
    pub fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(llmchain_daemon::default_socket_path)
    }

    /// Connect, with "is `llmchain daemon` running?" in the error.
    pub fn connect(&self) -> Result<Client> {
        Ok(Client::connect(&self.path())?)
    }
}

/// Print a value as pretty JSON.
pub fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parse a memory size into MiB: `512M`, `1G`, `1.5G`, `2048` (MiB), `64K` (rounded up), `1T`.
pub fn parse_size_mib(s: &str) -> Result<u64, UsageError> {
    let t = s.trim();
    let bad = || {
        UsageError(format!(
            "invalid size {s:?}: use e.g. 512M, 1G, 1.5G or a number of MiB"
        ))
    };
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let m = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "k" => 1.0 / 1024.0,
                "m" | "" => 1.0,
                "g" => 1024.0,
                "t" => 1024.0 * 1024.0,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        None => (t, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v <= 0.0 {
        return Err(bad());
    }
    Ok((v * mult).ceil() as u64)
}

/// Parse CPUs into millicores: `2` → 2000, `0.5` → 500, `500m` → 500.
pub fn parse_cpu_millis(s: &str) -> Result<u64, UsageError> {
    let t = s.trim();
    let bad = || {
        UsageError(format!(
            "invalid CPU amount {s:?}: use cores (2, 0.5) or millicores (500m)"
        ))
    };
    let v = if let Some(m) = t.strip_suffix('m') {
        m.parse::<u64>().map_err(|_| bad())?
    } else {
        let c: f64 = t.parse().map_err(|_| bad())?;
        if !c.is_finite() || c <= 0.0 {
            return Err(bad());
        }
        (c * 1000.0).round() as u64
    };
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

/// Parse a duration into milliseconds: `90s`, `10m`, `2h`, `1h30m`, `500ms`, `1d`; a bare number is seconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, UsageError> {
    let t = s.trim();
    let bad = || {
        UsageError(format!(
            "invalid duration {s:?}: use e.g. 90s, 10m, 2h, 1h30m, 500ms"
        ))
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() && v >= 0.0 {
            Ok((v * 1000.0).round() as u64)
        } else {
            Err(bad())
        };
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let v: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Ok(total.round() as u64)
}

/// `1.5s`, `12m03s`, `2h05m` for a length in ms.
pub fn fmt_ms(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Short state/status word of a task: `queued`, `running`, `completed`, `failed(2)`, `oom_killed`, ...
pub fn state_word(t: &TaskInfo) -> String {
    use llmchain_core::ExitStatus as E;
    match (&t.state, &t.exit) {
        (_, Some(E::Failed { code })) => format!("failed({code})"),
        (_, Some(E::Signaled { signal })) => format!("signal({signal})"),
        (_, Some(E::Completed)) => "completed".into(),
        (_, Some(E::OomKilled)) => "oom_killed".into(),
        (_, Some(E::Cancelled)) => "cancelled".into(),
        (_, Some(E::Lost)) => "lost".into(),
        (s, _) => s.as_str().into(),
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cpus_durations() {
        for (s, v) in [
            ("1G", 1024),
            ("512M", 512),
            ("1.5G", 1536),
            ("2048", 2048),
            ("64K", 1),
            ("1GiB", 1024),
        ] {
            assert_eq!(parse_size_mib(s).unwrap(), v, "{s}");
        }
        for s in ["", "x", "-1G", "1Q", "0"] {
            assert!(parse_size_mib(s).is_err(), "{s}");
        }
        for (s, v) in [("2", 2000), ("0.5", 500), ("500m", 500)] {
            assert_eq!(parse_cpu_millis(s).unwrap(), v, "{s}");
        }
        assert!(parse_cpu_millis("0").is_err() && parse_cpu_millis("abc").is_err());
        for (s, v) in [
            ("90s", 90_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2", 2000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(parse_duration_ms(s).unwrap(), v, "{s}");
        }
        for s in ["", "m", "10x", "s10"] {
            assert!(parse_duration_ms(s).is_err(), "{s}");
        }
    }
}
