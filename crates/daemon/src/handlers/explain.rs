//! `explain`: why a task is pending — which resources it lacks (with numbers),
//! which eligible tasks are ahead of it **in the order of the policy in use**
//! (asked from the policy on the scheduler thread), which dependencies are
//! unmet, what the policy (for a kernel: its language model) last said about
//! it, and the validator's last refusal.

use std::sync::Arc;
use std::time::Duration;

use llmchain_core::Dim;

use super::{not_found, Caller};
use crate::protocol::{AheadTask, ExplainRequest, ExplainResponse, Response, Shortfall, TaskState};
use crate::state::{status_name, Event, PolicyView, Shared};

/// How long an explanation waits for the scheduler thread (busy in a long
/// decision, e.g. a language-model call) before it answers without the
/// policy's view.
pub const POLICY_VIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Tasks ahead listed in full (the count covers all of them).
const AHEAD_SHOWN: usize = 20;

/// Ask the scheduler thread for the policy's view (order and remark).
async fn policy_view(shared: &Arc<Shared>, id: u64) -> Result<PolicyView, String> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    shared.send(Event::Explain { id, reply });
    match tokio::time::timeout(POLICY_VIEW_TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err("the scheduler is shutting down".into()),
        Err(_) => Err(format!(
            "the scheduler did not answer within {} s (a decision is in progress)",
            POLICY_VIEW_TIMEOUT.as_secs()
        )),
    }
}

/// Handle an explain request.
pub async fn handle(shared: &Arc<Shared>, _caller: Caller, r: ExplainRequest) -> Response {
    let queued = match shared.lock().tasks.get(&r.id) {
        None => return not_found(r.id),
        Some(t) => t.row.info.state == TaskState::Queued,
    };
    // Only a queued task needs the policy's order (it costs a snapshot and a sort).
    let view = if queued {
        policy_view(shared, r.id).await
    } else {
        Ok(PolicyView::default())
    };

    let st = shared.lock();
    let Some(t) = st.tasks.get(&r.id) else {
        return not_found(r.id);
    };
    let info = &t.row.info;
    let queued = info.state == TaskState::Queued;
    let free = st.free();
    let req = t.request();
    let blocked_by: Vec<Shortfall> = if queued {
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
    let unmet_deps = if queued { st.unmet_deps(t) } else { Vec::new() };
    let eligible = st.eligible.contains_key(&r.id);

    // The order: the policy's own when it gave one; else submission order, said so.
    let (order_ids, order_desc, remark): (Vec<u64>, String, Option<String>) = match &view {
        Ok(v) => match (&v.order, &v.how) {
            (Some(o), Some(how)) => (
                o.clone(),
                format!("policy `{}`: {how}", st.policy_name),
                v.remark.clone(),
            ),
            _ => (
                st.eligible.keys().copied().collect(),
                format!(
                    "submission order (policy `{}` does not report its order)",
                    st.policy_name
                ),
                v.remark.clone(),
            ),
        },
        Err(why) => (
            st.eligible.keys().copied().collect(),
            format!("submission order (the policy's order is unavailable: {why})"),
            None,
        ),
    };
    // Tasks ahead: those before it in the order that are still eligible now
    // (the order was taken a moment ago; a task may have started since).
    let (position, ahead_ids): (Option<u64>, Vec<u64>) = if queued && eligible {
        match order_ids.iter().position(|x| *x == r.id) {
            Some(p) => (
                Some(p as u64),
                order_ids[..p]
                    .iter()
                    .copied()
                    .filter(|x| st.eligible.contains_key(x))
                    .collect(),
            ),
            // Admitted after the policy's snapshot: everything eligible is ahead of it.
            None => (
                None,
                order_ids
                    .iter()
                    .copied()
                    .filter(|x| *x != r.id && st.eligible.contains_key(x))
                    .collect(),
            ),
        }
    } else {
        (None, Vec::new())
    };
    let ahead: Vec<AheadTask> = ahead_ids
        .iter()
        .take(AHEAD_SHOWN)
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
                    "it waits for dependencies {unmet_deps:?} to complete (the policy is not offered it before)"
                ));
            }
            for b in &blocked_by {
                parts.push(format!(
                    "it needs {} {} {} but only {} of {} are free",
                    b.need, b.unit, b.dim, b.free, b.capacity
                ));
            }
            if !ahead_ids.is_empty() {
                let shown: Vec<String> = ahead_ids.iter().take(5).map(u64::to_string).collect();
                let more = if ahead_ids.len() > 5 { ", ..." } else { "" };
                parts.push(format!(
                    "{} eligible task(s) are ahead of it in the order of policy `{}` ({}{more})",
                    ahead_ids.len(),
                    st.policy_name,
                    shown.join(", ")
                ));
            }
            if let Some(rem) = &remark {
                parts.push(format!("the policy said: {rem}"));
            }
            if parts.is_empty() {
                parts.push(format!(
                    "it fits now and is first in line; policy `{}` has not started it at the last decision point",
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
        order: if queued { order_desc } else { String::new() },
        position,
        policy_remark: if queued { remark } else { None },
        last_rejection: t.last_rejection.clone(),
    })
}
