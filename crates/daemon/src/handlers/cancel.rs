//! `cancel`: a queued task leaves the queue; a running task's whole tree is killed
//! (its exit is then recorded as `cancelled`).

use std::sync::Arc;

use llmchain_core::ExitStatus;

use super::{forbidden, not_found, Caller};
use crate::protocol::{CancelRequest, ErrorCode, Response, TaskState};
use crate::state::{status_name, Event, Shared};

/// Handle a cancel request.
pub fn handle(shared: &Arc<Shared>, caller: Caller, r: CancelRequest) -> Response {
    let killer;
    let info;
    {
        let mut st = shared.lock();
        let Some(t) = st.tasks.get_mut(&r.id) else {
            return not_found(r.id);
        };
        if !caller.owns(t) {
            return forbidden(r.id, t.row.info.uid, caller);
        }
        match t.row.info.state {
            TaskState::Finished => {
                let s = t
                    .row
                    .info
                    .exit
                    .as_ref()
                    .map(status_name)
                    .unwrap_or("finished");
                return Response::error(
                    ErrorCode::Invalid,
                    format!("task {} has already finished ({s})", r.id),
                );
            }
            TaskState::Running => {
                t.cancel_requested = true;
                killer = t.killer.clone();
                info = st.view(&st.tasks[&r.id], caller.uid);
            }
            TaskState::Queued => {
                let writer = shared.writer.clone();
                let reason = Some(format!("cancelled by uid {} while queued", caller.uid));
                st.finish(
                    &writer,
                    r.id,
                    ExitStatus::Cancelled,
                    reason,
                    None,
                    None,
                    false,
                );
                info = st.view(&st.tasks[&r.id], caller.uid);
                killer = None;
            }
        }
    }
    if let Some(k) = killer {
        k.kill();
    } else if info.state == TaskState::Finished {
        shared.finished_tx.send_modify(|n| *n += 1);
        shared.send(Event::Wake);
    }
    Response::Task(info)
}
