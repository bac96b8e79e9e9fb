//! `history`: finished tasks with their request and outcome (feedback records), in pages.

use std::sync::Arc;

use llmchain_core::ExitStatus;

use super::Caller;
use crate::protocol::{HistoryRecord, HistoryRequest, HistoryResponse, Response, TaskState};
use crate::state::Shared;

/// Records per page (default and maximum).
pub const PAGE: u32 = 1000;

/// Handle a history request.
pub fn handle(shared: &Arc<Shared>, caller: Caller, r: HistoryRequest) -> Response {
    let limit = r.limit.unwrap_or(PAGE).clamp(1, PAGE) as usize;
    let st = shared.lock();
    let start = r.after_id.map(|a| a.saturating_add(1)).unwrap_or(0);
    let mut records = Vec::new();
    let mut more = false;
    for t in st
        .tasks
        .range(start..)
        .map(|(_, t)| t)
        .filter(|t| t.row.info.state == TaskState::Finished)
    {
        if records.len() == limit {
            more = true;
            break;
        }
        let info = st.view(t, caller.uid);
        let runtime_ms = match (info.start_us, info.end_us) {
            (Some(s), Some(e)) => e.saturating_sub(s) / 1000,
            _ => 0,
        };
        records.push(HistoryRecord {
            oom: info.exit == Some(ExitStatus::OomKilled),
            runtime_ms,
            task: info,
        });
    }
    Response::History(HistoryResponse { records, more })
}
