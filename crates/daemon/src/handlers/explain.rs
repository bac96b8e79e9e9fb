//! `explain`: why a task is pending — which resources it lacks (with numbers),
//! which eligible tasks are ahead of it, which dependencies are unmet, and the
//! validator's last refusal.

use std::sync::Arc;

use llmchain_core::Dim;

use super::{not_found, Caller};
use crate::protocol::{AheadTask, ExplainRequest, ExplainResponse, Response, Shortfall, TaskState};
use crate::state::{status_name, Shared};

/// Handle an explain request.
pub fn handle(shared: &Arc<Shared>, _caller: Caller, r: ExplainRequest) -> Response {
    let st = shared.lock();
    let Some(t) = st.tasks.get(&r.id) else {
        return not_found(r.id);
    };
    let info = &t.row.info;
    let free = st.free();
    let req = t.request();
    let blocked_by: Vec<Shortfall> = if info.state == TaskState::Queued {
        Dim::ALL
            .iter()
            .filter(|d| req.get(**d) > free.get(**d))
            .map(|d| Shortfall {
                dim: d.name().into(),
                unit: d.unit().into(),
                need: req.get(*d),
                free: free.get(*d),
                capacity: st.capacity.get(*d),
            })
            .collect()
    } else {
        Vec::new()
    };
    let unmet_deps = if info.state == TaskState::Queued {
        st.unmet_deps(t)
    } else {
        Vec::new()
    };
    let ahead_ids: Vec<u64> = if info.state == TaskState::Queued {
        st.eligible.range(..r.id).map(|(id, _)| *id).collect()
    } else {
        Vec::new()
    };
    let ahead: Vec<AheadTask> = ahead_ids
        .iter()
        .take(20)
        .map(|id| {
            let a = &st.tasks[id].row.info;
            AheadTask {
                id: a.id,
                uid: a.uid,
                cpu_millis: a.cpu_millis,
                mem_mib: a.mem_mib,
                priority: a.priority,
            }
        })
        .collect();
    let summary = match info.state {
        TaskState::Running => format!("task {} is running (pid {:?})", r.id, info.pid),
        TaskState::Finished => format!(
            "task {} has finished ({}){}",
            r.id,
            info.exit.as_ref().map(status_name).unwrap_or("?"),
            info.reason
                .as_ref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        ),
        TaskState::Queued => {
            let mut parts = Vec::new();
            if !unmet_deps.is_empty() {
                parts.push(format!(
                    "it waits for dependencies {unmet_deps:?} to complete"
                ));
            }
            for b in &blocked_by {
                parts.push(format!(
                    "it needs {} {} {} but only {} of {} are free",
                    b.need, b.unit, b.dim, b.free, b.capacity
                ));
            }
            if !ahead_ids.is_empty() {
                parts.push(format!(
                    "{} eligible task(s) submitted earlier are still queued (policy `{}` decides the order)",
                    ahead_ids.len(),
                    st.policy_name
                ));
            }
            if parts.is_empty() {
                parts.push(format!(
                    "it fits now; policy `{}` has not started it at the last decision point",
                    st.policy_name
                ));
            }
            format!("task {} is queued: {}", r.id, parts.join("; "))
        }
    };
    Response::Explain(ExplainResponse {
        id: r.id,
        state: info.state,
        summary,
        policy: st.policy_name.clone(),
        blocked_by,
        unmet_deps,
        ahead_count: ahead_ids.len() as u64,
        ahead,
        last_rejection: t.last_rejection.clone(),
    })
}
