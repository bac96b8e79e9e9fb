//! `stats`: node telemetry, queue counts, counters, policy figures, decision latency.

use std::sync::Arc;

use super::Caller;
use crate::protocol::{
    Amount, NodeStats, QueueStats, Response, RunningUsage, StatsRequest, StatsResponse,
};
use crate::state::{now_us, Shared};

fn amount(r: &llmchain_core::Resources) -> Amount {
    Amount {
        cpu_millis: r.cpu_milli(),
        mem_mib: r.mem_mib(),
        gpus: r.get(llmchain_core::Dim::Gpu),
    }
}

/// Queue counts (eligible, held, running, finished).
pub fn queue_stats(st: &crate::state::State) -> QueueStats {
    let held = (st.queued.len() - st.eligible.len()) as u64;
    QueueStats {
        queued: st.queued.len() as u64 - held,
        held,
        running: st.running.len() as u64,
        finished: st.finished,
    }
}

/// Handle a stats request.
pub fn handle(shared: &Arc<Shared>, caller: Caller, r: StatsRequest) -> Response {
    // The sampler has its own lock, never taken while the state lock is held.
    let telemetry = {
        let mut s = shared.telemetry.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_value(s.sample()).unwrap_or(serde_json::Value::Null)
    };
    let mut probes = Vec::new();
    let mut resp = {
        let st = shared.lock();
        if r.tasks {
            let now = now_us();
            for id in &st.running {
                let t = &st.tasks[id];
                let i = &t.row.info;
                probes.push((
                    RunningUsage {
                        id: i.id,
                        uid: i.uid,
                        name: i.name.clone(),
                        pid: i.pid,
                        elapsed_ms: i
                            .start_us
                            .map(|s| now.saturating_sub(s) / 1000)
                            .unwrap_or(0),
                        cpu_millis: i.cpu_millis,
                        mem_mib: i.mem_mib,
                        cpu_time_ms: None,
                        mem_used_mib: None,
                    },
                    t.probe.clone(),
                ));
            }
        }
        StatsResponse {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: shared.started.elapsed().as_millis() as u64,
            node: NodeStats {
                hostname: shared.hostname.clone(),
                capacity: amount(&st.capacity),
                free: amount(&st.free()),
                enforcement: shared.executor.mode().name().to_string(),
                telemetry,
            },
            queue: queue_stats(&st),
            counters: st.metrics.counters(),
            policy: st.policy_name.clone(),
            policy_stats: st.policy_stats.clone(),
            decision_latency: st.metrics.latency(),
            running: Vec::new(),
        }
    };
    // Probes read cgroup files: outside the state lock.
    for (mut u, p) in probes {
        if let Some(p) = p {
            let usage = p.usage();
            u.cpu_time_ms = Some(usage.cpu_time.as_millis() as u64);
            u.mem_used_mib = usage.mem_mib;
        }
        let _ = caller;
        resp.running.push(u);
    }
    Response::Stats(resp)
}
