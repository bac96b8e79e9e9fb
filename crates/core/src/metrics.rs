//! Metric definitions everyone uses (DESIGN.md "Metrics").
//!
//! * wait = start − submit
//! * turnaround (JCT) = end − submit
//! * slowdown = turnaround / run (run of 0 counts as 1 ms)
//! * bounded slowdown = max(1, turnaround / max(run, τ)), τ = [`BSLD_TAU`] = 10 s
//! * Jain's fairness over users = (Σx)² / (n·Σx²) where x is each user's mean
//!   bounded slowdown (1 = perfectly even, 1/n = one user bears everything).

use serde::{Deserialize, Serialize};

use crate::{Dur, Outcome};

/// The bound τ of bounded slowdown.
pub const BSLD_TAU: Dur = Dur::from_secs(10);

/// Per-task figures, in seconds (slowdowns are ratios).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// start − submit.
    pub wait: f64,
    /// end − submit.
    pub turnaround: f64,
    /// turnaround / run.
    pub slowdown: f64,
    /// max(1, turnaround / max(run, τ)).
    pub bounded_slowdown: f64,
}

impl TaskMetrics {
    /// Figures for one finished task.
    pub fn of(o: &Outcome) -> Self {
        let wait = o.start.saturating_since(o.submit);
        let turnaround = o.end.saturating_since(o.submit);
        let run = o.end.saturating_since(o.start);
        TaskMetrics {
            wait: wait.as_secs_f64(),
            turnaround: turnaround.as_secs_f64(),
            slowdown: turnaround.0 as f64 / run.0.max(1) as f64,
            bounded_slowdown: bounded_slowdown(turnaround, run),
        }
    }
}

/// max(1, turnaround / max(run, τ)).
pub fn bounded_slowdown(turnaround: Dur, run: Dur) -> f64 {
    (turnaround.0 as f64 / run.0.max(BSLD_TAU.0) as f64).max(1.0)
}

/// Mean, percentiles and maximum of one metric over many tasks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest-rank).
    pub p50: f64,
    /// 95th percentile (nearest-rank).
    pub p95: f64,
    /// 99th percentile (nearest-rank).
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Summary {
    /// Summarise `values` (sorted in place). Empty input gives all zeros.
    pub fn of(values: &mut [f64]) -> Self {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        Summary {
            n,
            mean: values.iter().sum::<f64>() / n as f64,
            p50: percentile_sorted(values, 50.0),
            p95: percentile_sorted(values, 95.0),
            p99: percentile_sorted(values, 99.0),
            max: values[n - 1],
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `values`.
pub fn percentile_sorted(values: &[f64], p: f64) -> f64 {
    let n = values.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    values[rank.clamp(1, n) - 1]
}

/// Jain's fairness index of non-negative values; 1.0 for empty or all-zero input.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || sq == 0.0 {
        1.0
    } else {
        sum * sum / (values.len() as f64 * sq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_slowdown_uses_tau() {
        // 2 s job that waited 3 s: turnaround 5 s, bounded by τ = 10 s → 1.
        assert_eq!(bounded_slowdown(Dur::from_secs(5), Dur::from_secs(2)), 1.0);
        // 20 s job that waited 20 s → 2.
        assert_eq!(
            bounded_slowdown(Dur::from_secs(40), Dur::from_secs(20)),
            2.0
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&mut v);
        assert_eq!(
            (s.p50, s.p95, s.p99, s.max, s.mean),
            (50.0, 95.0, 99.0, 100.0, 50.5)
        );
    }

    #[test]
    fn jain_bounds() {
        assert_eq!(jain(&[2.0, 2.0, 2.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
    }
}
