//! `submit`: validate, assign an id, commit the task (group commit), queue it,
//! wake the scheduler. The id is returned only after the commit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use llmchain_core::ExitStatus;

use super::Caller;
use crate::db::{Op, TaskRow};
use crate::protocol::{ErrorCode, Response, SubmitRequest, SubmitResponse, TaskInfo, TaskState};
use crate::state::{now_us, status_name, Event, Shared};

/// Longest name or label accepted, bytes.
pub const MAX_LABEL: usize = 256;

fn invalid(msg: impl Into<String>) -> Response {
    Response::error(ErrorCode::Invalid, msg)
}

/// A submit that passed validation and was queued for commit.
#[derive(Debug)]
pub struct Pending {
    id: u64,
    row: TaskRow,
    ack: tokio::sync::oneshot::Receiver<Result<(), String>>,
}

/// Handle a submit request.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, r: SubmitRequest) -> Response {
    match begin(shared, caller, r) {
        Ok(p) => finish(shared, p).await,
        Err(resp) => resp,
    }
}

/// The synchronous half of a submit: validate, assign the id and queue the row
/// for the next group commit. The connection handler calls it as soon as the
/// request is read, so pipelined submits of one client share a commit; the
/// answer comes from [`finish`]. An `Err` is the (error) response to send.
// The error is the reply itself, built at most once per refused submit.
#[allow(clippy::result_large_err)]
pub fn begin(shared: &Arc<Shared>, caller: Caller, r: SubmitRequest) -> Result<Pending, Response> {
    if r.argv.is_empty() || r.argv[0].is_empty() {
        return Err(invalid("argv is empty: give a program to run"));
    }
    if let Some(a) = r.argv.iter().find(|a| a.contains('\0')) {
        return Err(invalid(format!("argument {a:?} contains a NUL byte")));
    }
    if let Some(k) = r
        .env
        .keys()
        .find(|k| k.is_empty() || k.contains(['=', '\0']))
    {
        return Err(invalid(format!(
            "environment variable name {k:?} is empty or contains '=' or NUL"
        )));
    }
    if r.env.values().any(|v| v.contains('\0')) {
        return Err(invalid("an environment value contains a NUL byte"));
    }
    if r.cpu_millis == 0 || r.mem_mib == 0 {
        return Err(invalid(format!(
            "cpu_millis ({}) and mem_mib ({}) must both be at least 1",
            r.cpu_millis, r.mem_mib
        )));
    }
    for (what, v) in [("name", &r.name), ("label", &r.label)] {
        if v.as_ref().is_some_and(|s| s.len() > MAX_LABEL) {
            return Err(invalid(format!("{what} is longer than {MAX_LABEL} bytes")));
        }
    }
    let cwd = r.cwd.clone().unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(invalid(format!(
            "working directory {cwd:?} is not absolute"
        )));
    }
    if shared.uid != 0 && caller.uid != shared.uid {
        return Err(Response::error(
            ErrorCode::Forbidden,
            format!(
                "this daemon runs as uid {} and can only run tasks for that uid (run it as root to serve several users)",
                shared.uid
            ),
        ));
    }
    {
        let st = shared.lock();
        if st.shutting_down {
            return Err(Response::error(
                ErrorCode::Unavailable,
                "the daemon is shutting down",
            ));
        }
        let cap = st.capacity;
        if r.cpu_millis > cap.cpu_milli() || r.mem_mib > cap.mem_mib() {
            return Err(invalid(format!(
                "the task asks for {} millicores and {} MiB but the node has only {} millicores and {} MiB: it could never start",
                r.cpu_millis,
                r.mem_mib,
                cap.cpu_milli(),
                cap.mem_mib()
            )));
        }
        for d in &r.after {
            match st.tasks.get(d) {
                None => return Err(invalid(format!("dependency {d} does not exist"))),
                Some(t) => {
                    if let Some(s) = t.row.info.exit.filter(|s| *s != ExitStatus::Completed) {
                        return Err(invalid(format!(
                            "dependency {d} already ended {}",
                            status_name(&s)
                        )));
                    }
                }
            }
        }
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let info = TaskInfo {
        id,
        uid: caller.uid,
        name: r.name,
        label: r.label,
        argv: r.argv,
        cwd,
        cpu_millis: r.cpu_millis,
        mem_mib: r.mem_mib,
        estimate_ms: r.estimate_ms,
        priority: r.priority,
        after: r.after,
        state: TaskState::Queued,
        exit: None,
        reason: None,
        submit_us: now_us(),
        start_us: None,
        end_us: None,
        pid: None,
        cpu_time_ms: None,
        peak_mem_mib: None,
    };
    let row = TaskRow { info, env: r.env };
    let ack = shared.writer.send_acked(Op::Insert(Box::new(row.clone())));
    Ok(Pending { id, row, ack })
}

/// The asynchronous half of a submit: wait for the commit, admit the task, answer.
pub async fn finish(shared: &Arc<Shared>, p: Pending) -> Response {
    let Pending { id, row, ack } = p;
    match ack.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Response::error(ErrorCode::Unavailable, format!("task not accepted: {e}"))
        }
        Err(_) => {
            return Response::error(
                ErrorCode::Unavailable,
                "task not accepted: the state writer has stopped",
            )
        }
    }
    // The writer thread also hands the committed row to the scheduler; whoever
    // comes first admits it. Admitting here too means the client can see its
    // task the moment it has the id.
    let admitted = shared.lock().admit(&shared.writer, row);
    if admitted {
        shared.send(Event::Wake);
    }
    Response::Submitted(SubmitResponse { id })
}
