//! `wait`: block until a task has finished (or the timeout passes).

use std::sync::Arc;
use std::time::Duration;

use super::{forbidden, not_found, Caller};
use crate::protocol::{Response, TaskState, WaitRequest};
use crate::state::Shared;

/// Handle a wait request.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, r: WaitRequest) -> Response {
    let mut rx = shared.finished_tx.subscribe();
    let deadline = r
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    loop {
        {
            let st = shared.lock();
            let Some(t) = st.tasks.get(&r.id) else {
                return not_found(r.id);
            };
            if !caller.owns(t) {
                return forbidden(r.id, t.row.info.uid, caller);
            }
            if t.row.info.state == TaskState::Finished {
                return Response::Task(st.view(t, caller.uid));
            }
            rx.mark_unchanged();
        }
        let changed = rx.changed();
        let ok = match deadline {
            Some(d) => match tokio::time::timeout_at(d, changed).await {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    let st = shared.lock();
                    return match st.tasks.get(&r.id) {
                        Some(t) => Response::Task(st.view(t, caller.uid)),
                        None => not_found(r.id),
                    };
                }
            },
            None => changed.await.is_ok(),
        };
        if !ok {
            return Response::error(
                crate::protocol::ErrorCode::Unavailable,
                "the daemon is shutting down",
            );
        }
    }
}
