//! `status`: one task's state.

use std::sync::Arc;

use super::{not_found, Caller};
use crate::protocol::{Response, StatusRequest};
use crate::state::Shared;

/// Handle a status request.
pub fn handle(shared: &Arc<Shared>, caller: Caller, r: StatusRequest) -> Response {
    let st = shared.lock();
    match st.tasks.get(&r.id) {
        Some(t) => Response::Task(st.view(t, caller.uid)),
        None => not_found(r.id),
    }
}
