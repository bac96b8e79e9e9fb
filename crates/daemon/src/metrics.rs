//! Counters and the decision-latency histogram, and their Prometheus text form
//! (served at `/metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use llmchain_core::ExitStatus;

use crate::protocol::{Counters, LatencyStats};
use crate::state::status_name;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
    1.0,
];

/// Samples kept for percentiles.
const RING: usize = 4096;

/// Counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Accepted submits.
    pub submits: u64,
    /// Starts.
    pub starts: u64,
    /// Completions by status name.
    pub completions: BTreeMap<&'static str, u64>,
    /// Decision points.
    pub decision_points: u64,
    /// Refused proposals.
    pub rejected: u64,
    buckets: [u64; BUCKETS.len()],
    sum_s: f64,
    recent_us: VecDeque<u64>,
}

impl Metrics {
    /// Count a finished task.
    pub fn completed(&mut self, s: &ExitStatus) {
        *self.completions.entry(status_name(s)).or_default() += 1;
    }

    /// Record one decision point's latency.
    pub fn decision(&mut self, us: u64, rejected: usize) {
        self.decision_points += 1;
        self.rejected += rejected as u64;
        let s = us as f64 / 1e6;
        self.sum_s += s;
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i] += 1;
            }
        }
        if self.recent_us.len() == RING {
            self.recent_us.pop_front();
        }
        self.recent_us.push_back(us);
    }

    /// Counters for the stats response.
    pub fn counters(&self) -> Counters {
        Counters {
            submits: self.submits,
            starts: self.starts,
            completions: self
                .completions
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            decision_points: self.decision_points,
            rejected_proposals: self.rejected,
        }
    }

    /// Percentiles over the recent decision points.
    pub fn latency(&self) -> LatencyStats {
        let mut v: Vec<f64> = self.recent_us.iter().map(|&u| u as f64).collect();
        if v.is_empty() {
            return LatencyStats::default();
        }
        let s = llmchain_core::metrics::Summary::of(&mut v);
        LatencyStats {
            count: s.n as u64,
            p50_us: s.p50,
            p99_us: s.p99,
            max_us: s.max,
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self, queued: u64, held: u64, running: u64) -> String {
        let mut s = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "llmchain_queue_length",
            "Queued tasks whose dependencies are met.",
            queued,
        );
        gauge(
            "llmchain_held_tasks",
            "Queued tasks waiting for dependencies.",
            held,
        );
        gauge("llmchain_running_tasks", "Running tasks.", running);
        let _ = writeln!(s, "# HELP llmchain_submits_total Accepted submits.\n# TYPE llmchain_submits_total counter");
        let _ = writeln!(s, "llmchain_submits_total {}", self.submits);
        let _ = writeln!(
            s,
            "# HELP llmchain_starts_total Tasks started.\n# TYPE llmchain_starts_total counter"
        );
        let _ = writeln!(s, "llmchain_starts_total {}", self.starts);
        let _ = writeln!(
            s,
            "# HELP llmchain_completions_total Finished tasks by exit status.\n# TYPE llmchain_completions_total counter"
        );
        for st in [
            "completed",
            "failed",
            "signaled",
            "oom_killed",
            "cancelled",
            "lost",
        ] {
            let _ = writeln!(
                s,
                "llmchain_completions_total{{status=\"{st}\"}} {}",
                self.completions.get(st).unwrap_or(&0)
            );
        }
        let _ = writeln!(
            s,
            "# HELP llmchain_rejected_proposals_total Policy proposals refused by the validator.\n# TYPE llmchain_rejected_proposals_total counter\nllmchain_rejected_proposals_total {}",
            self.rejected
        );
        let _ = writeln!(
            s,
            "# HELP llmchain_decision_latency_seconds Time of one decision point (snapshot, decide, validate).\n# TYPE llmchain_decision_latency_seconds histogram"
        );
        for (b, c) in BUCKETS.iter().zip(self.buckets.iter()) {
            let _ = writeln!(
                s,
                "llmchain_decision_latency_seconds_bucket{{le=\"{b}\"}} {c}"
            );
        }
        let _ = writeln!(
            s,
            "llmchain_decision_latency_seconds_bucket{{le=\"+Inf\"}} {}",
            self.decision_points
        );
        let _ = writeln!(s, "llmchain_decision_latency_seconds_sum {}", self.sum_s);
        let _ = writeln!(
            s,
            "llmchain_decision_latency_seconds_count {}",
            self.decision_points
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_text_is_prometheus() {
        let mut m = Metrics::default();
        m.decision(20, 0);
        m.decision(2000, 1);
        m.completed(&ExitStatus::OomKilled);
        let t = m.render(3, 1, 2);
        assert!(t.contains("llmchain_queue_length 3"), "{t}");
        assert!(
            t.contains("llmchain_completions_total{status=\"oom_killed\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("llmchain_decision_latency_seconds_bucket{le=\"0.00005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("llmchain_decision_latency_seconds_bucket{le=\"0.0025\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("llmchain_decision_latency_seconds_count 2"),
            "{t}"
        );
        assert_eq!(m.latency().count, 2);
        assert_eq!(m.rejected, 1);
    }
}
