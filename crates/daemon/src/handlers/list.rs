//! `list`: many tasks, ascending id (the newest `limit`).

use std::sync::Arc;

use super::Caller;
use crate::protocol::{ListRequest, Response, TaskList};
use crate::state::Shared;

/// Default and maximum number of tasks per list.
pub const LIST_LIMIT: u32 = 1000;

/// Handle a list request.
pub fn handle(shared: &Arc<Shared>, caller: Caller, r: ListRequest) -> Response {
    let limit = r.limit.unwrap_or(LIST_LIMIT).min(LIST_LIMIT * 10) as usize;
    let st = shared.lock();
    let pick = |id: &u64| r.uid.map_or(true, |u| st.tasks[id].row.info.uid == u);
    let mut tasks: Vec<_> = if r.all {
        st.tasks
            .values()
            .rev()
            .filter(|t| pick(&t.id()))
            .take(limit)
            .map(|t| st.view(t, caller.uid))
            .collect()
    } else {
        let mut ids: Vec<u64> = st
            .running
            .iter()
            .chain(st.queued.iter())
            .copied()
            .filter(|id| pick(id))
            .collect();
        ids.sort_unstable();
        ids.iter()
            .rev()
            .take(limit)
            .map(|id| st.view(&st.tasks[id], caller.uid))
            .collect()
    };
    tasks.reverse();
    Response::Tasks(TaskList { tasks })
}
