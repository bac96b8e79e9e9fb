//! FCFS and SJF orderings.

use llmchain_core::WaitingTask;

use super::{req_secs, Ordering, PlanView};
use crate::Mode;

/// First come, first served: score = submit time (s). Ties (equal submit
/// times) fall to the task id, i.e. submission order.
#[derive(Clone, Debug, Default)]
pub struct FcfsOrder;

impl Ordering for FcfsOrder {
    fn spec(&self) -> String {
        "fcfs".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, _view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        t.submit.as_secs_f64()
    }
    fn submit_order(&self) -> bool {
        true
    }
}

/// Shortest job first, by **estimate** (never the hidden actual runtime):
/// score = estimate (s); a task with no estimate scores `+∞` and sorts last.
/// Ties fall to submit time, then id (as RLScheduler's `(request_time,
/// submit_time)` key).
#[derive(Clone, Debug, Default)]
pub struct SjfOrder;

impl Ordering for SjfOrder {
    fn spec(&self) -> String {
        "sjf".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, _view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        req_secs(t).unwrap_or(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use crate::ordered_ids;

    #[test]
    fn fcfs_orders_by_submit_then_id() {
        // ids 1 and 2 share a submit time: id breaks the tie.
        let q = [
            task(1, 5, 1, None, 0),
            task(2, 5, 1, None, 0),
            task(3, 2, 1, None, 0),
        ];
        assert_eq!(
            ordered_ids(FcfsOrder, &[node(0, 4, 4)], &q, 10),
            vec![3, 1, 2]
        );
    }

    #[test]
    fn sjf_orders_by_estimate_unknown_last() {
        let q = [
            task(1, 0, 1, Some(50), 0),
            task(2, 0, 1, None, 0),
            task(3, 1, 1, Some(10), 0),
            task(4, 0, 1, Some(10), 0),
            task(5, 0, 1, None, 0),
        ];
        // 10 s jobs first (4 submitted before 3), then 50 s, then unknowns by id.
        assert_eq!(
            ordered_ids(SjfOrder, &[node(0, 4, 4)], &q, 10),
            vec![4, 3, 1, 2, 5]
        );
    }
}
