//! The RLScheduler heuristic scores WFP3, UNICEP and F1 (Zhang et al.,
//! "RLScheduler", SC'20, and its reference simulator), with real waits.
//!
//! Units: see [the module docs](super). Lower score = sooner.

use llmchain_core::WaitingTask;

use super::{procs, req_secs, Ordering, PlanView};
use crate::Mode;

/// WFP3: score = −(wait/req)³ · procs. Long-waiting, short, wide jobs first.
///
/// `wait` is the real wait `now − submit`. (RLScheduler's code computes it
/// from `scheduled_time`, which is still −1 for a waiting job; we use the
/// definition from the paper instead.) `req` is floored at 0.001 s; no
/// estimate → `+∞`.
#[derive(Clone, Debug, Default)]
pub struct Wfp3Order;

impl Ordering for Wfp3Order {
    fn spec(&self) -> String {
        "wfp3".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        let Some(req) = req_secs(t) else {
            return f64::INFINITY;
        };
        let wait = t.wait(view.snap.now).as_secs_f64();
        -(wait / req).powi(3) * procs(t)
    }
}

/// UNICEP: score = −(wait + 1e-15) / (log2(procs + 1e-15) · req), exactly as
/// RLScheduler writes it (the epsilons are theirs).
///
/// Guards: `procs` is floored at 1, so a one-processor (or CPU-less) task has
/// `log2(1 + 1e-15) ≈ 1.4e-15` in the denominator and a huge negative score —
/// one-processor jobs go first, among themselves by `wait/req`, as in the
/// reference code (without the floor, fractional CPUs would flip the sign).
/// `req` is floored at 0.001 s; no estimate → `+∞`.
#[derive(Clone, Debug, Default)]
pub struct UnicepOrder;

impl Ordering for UnicepOrder {
    fn spec(&self) -> String {
        "unicep".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        let Some(req) = req_secs(t) else {
            return f64::INFINITY;
        };
        let wait = t.wait(view.snap.now).as_secs_f64();
        let p = procs(t).max(1.0);
        -(wait + 1e-15) / ((p + 1e-15).log2() * req)
    }
}

/// F1 (Carastan-Santos & de Camargo, SC'17, as used by RLScheduler):
/// score = log10(req) · procs + 870 · log10(submit).
///
/// Guards as in RLScheduler: `req ≤ 0` → 0.1 and `submit ≤ 0` → 0.1 before
/// the logarithm (our `req` is already floored at 0.001 s, so only a zero
/// submit time triggers it). `submit` is seconds since the workload's epoch,
/// so F1 depends on where the epoch is: the simulator keeps the trace's
/// submit times. No estimate → `+∞`.
#[derive(Clone, Debug, Default)]
pub struct F1Order;

impl Ordering for F1Order {
    fn spec(&self) -> String {
        "f1".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, _view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        let Some(req) = req_secs(t) else {
            return f64::INFINITY;
        };
        let submit = t.submit.as_secs_f64();
        let req = if req > 0.0 { req } else { 0.1 };
        let submit = if submit > 0.0 { submit } else { 0.1 };
        req.log10() * procs(t) + 870.0 * submit.log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use crate::{ordered_ids, scores};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn wfp3_scores_by_hand() {
        // now = 100 s. t1: wait 100, req 50, 2 procs → −(2)³·2 = −16.
        // t2: wait 90, req 10, 1 proc → −9³ = −729. t3: no estimate → +∞.
        let q = [
            task(1, 0, 2, Some(50), 0),
            task(2, 10, 1, Some(10), 0),
            task(3, 0, 8, None, 0),
        ];
        let s = scores(Wfp3Order, &[node(0, 8, 8)], &q, 100);
        assert!(
            close(s[0], -16.0) && close(s[1], -729.0) && s[2] == f64::INFINITY,
            "{s:?}"
        );
        assert_eq!(
            ordered_ids(Wfp3Order, &[node(0, 8, 8)], &q, 100),
            vec![2, 1, 3]
        );
    }

    #[test]
    fn wfp3_zero_wait_ties_fall_to_submit_then_id() {
        let q = [
            task(1, 10, 2, Some(50), 0),
            task(2, 10, 4, Some(10), 0),
            task(3, 5, 4, Some(10), 0),
        ];
        // now = 10: t1, t2 have wait 0 → score −0; t3 waited 5 s → negative, first.
        assert_eq!(
            ordered_ids(Wfp3Order, &[node(0, 8, 8)], &q, 10),
            vec![3, 1, 2]
        );
    }

    #[test]
    fn unicep_scores_by_hand_and_one_proc_guard() {
        // now = 100. t1: wait 100, 4 procs (log2 = 2), req 25 → −100/50 = −2.
        // t2: wait 100, 8 procs (log2 = 3), req 10 → −100/30.
        // t3: 1 proc → denominator ≈ 1.44e-15·req → hugely negative → first.
        let q = [
            task(1, 0, 4, Some(25), 0),
            task(2, 0, 8, Some(10), 0),
            task(3, 50, 1, Some(1000), 0),
        ];
        let s = scores(UnicepOrder, &[node(0, 8, 8)], &q, 100);
        assert!(close(s[0], -2.0) && close(s[1], -100.0 / 30.0), "{s:?}");
        assert!(s[2] < -1e12, "{s:?}");
        assert_eq!(
            ordered_ids(UnicepOrder, &[node(0, 8, 8)], &q, 100),
            vec![3, 2, 1]
        );
    }

    #[test]
    fn f1_scores_by_hand_and_zero_submit_guard() {
        // t1: req 100 s, 2 procs, submit 1000 s → 2·2 + 870·3 = 2614.
        // t2: submit 0 → log10(0.1) = −1 → 1·1 − 870 = −869; req 10 s, 1 proc.
        let q = [task(1, 1000, 2, Some(100), 0), task(2, 0, 1, Some(10), 0)];
        let s = scores(F1Order, &[node(0, 8, 8)], &q, 2000);
        assert!(close(s[0], 2614.0) && close(s[1], -869.0), "{s:?}");
    }
}
