//! Placement-aware orderings: Packer, Tetris and best-fit. Their scores
//! depend on the free resources of the node a task would land on, so they
//! also choose the node ([`Ordering::placement`]) and are re-scored after
//! every start in greedy mode.
//!
//! A task that fits on no node *now* scores `+∞`: these orderings rank only
//! what can start, and everything else follows in FCFS order (so under
//! `+easy` the reservation goes to the oldest task that does not fit).

use llmchain_core::{Resources, WaitingTask};

use super::{alignment, best_over_nodes, leftover, req_secs, Ordering, PlanView};
use crate::Mode;

/// Packer (DeepRM's baseline, after Tetris): highest alignment first, where
/// alignment = `Σ_d (req_d/cap_d)·(free_d/cap_d)` against the node's current
/// free resources (see [`super::alignment`]). Score = −best alignment over
/// the nodes where the task fits; placed on the node of best alignment.
#[derive(Clone, Debug, Default)]
pub struct PackerOrder;

impl Ordering for PackerOrder {
    fn spec(&self) -> String {
        "packer".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Greedy
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        best_over_nodes(view, t, |free, cap| -alignment(&t.request, free, cap))
    }
    fn dynamic(&self) -> bool {
        true
    }
    fn placement(&self, t: &WaitingTask, free: &Resources, cap: &Resources) -> Option<f64> {
        Some(-alignment(&t.request, free, cap))
    }
}

/// Tetris (Grandl et al., SIGCOMM'14) as DeepRM's `packer_sjf` baseline:
/// value = `knob · alignment + (1 − knob) · 1/estimate`, highest first
/// (score = −value, best over the nodes where the task fits).
///
/// * `knob` ∈ [0, 1], default 0.5 (an even blend): 1 is pure Packer, 0 pure
///   SJF. DeepRM's `other_agents.get_packer_sjf_action(machine, job_slot,
///   knob)` takes the knob as a parameter with the same meaning; note that
///   DeepRM's own evaluation script (`slow_down_cdf.py`) plots pure
///   alignment (`get_packer_action`) under the label "Tetris" — to compare
///   with those curves use `tetris:knob=1` (equivalently `packer`).
///   Grandl et al. weigh the two terms by ε = mean alignment / mean
///   shortness instead of a fixed knob; we do not adapt it.
/// * alignment is normalised by node capacity (so in `[0, NDIMS]`), whereas
///   DeepRM uses raw resource units; `1/estimate` is in 1/s (DeepRM uses
///   1/length in time steps). With DeepRM-style workloads (durations of
///   1–15 s, demands of 0.05–0.5 of capacity) both terms are of order 0.1–1.
/// * no estimate → the SJF term is 0 (treated as infinitely long); the
///   estimate is floored at 0.001 s.
#[derive(Clone, Debug)]
pub struct TetrisOrder {
    /// Weight of alignment versus shortness, in `[0, 1]`.
    pub knob: f64,
}

impl TetrisOrder {
    /// Default knob.
    pub const DEFAULT_KNOB: f64 = 0.5;

    fn value(&self, t: &WaitingTask, free: &Resources, cap: &Resources) -> f64 {
        let short = req_secs(t).map_or(0.0, |r| 1.0 / r);
        self.knob * alignment(&t.request, free, cap) + (1.0 - self.knob) * short
    }
}

impl Default for TetrisOrder {
    fn default() -> Self {
        TetrisOrder {
            knob: Self::DEFAULT_KNOB,
        }
    }
}

impl Ordering for TetrisOrder {
    fn spec(&self) -> String {
        if self.knob == Self::DEFAULT_KNOB {
            "tetris".into()
        } else {
            format!("tetris:knob={}", self.knob)
        }
    }
    fn default_mode(&self) -> Mode {
        Mode::Greedy
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        best_over_nodes(view, t, |free, cap| -self.value(t, free, cap))
    }
    fn dynamic(&self) -> bool {
        true
    }
    fn placement(&self, t: &WaitingTask, free: &Resources, cap: &Resources) -> Option<f64> {
        Some(-self.value(t, free, cap))
    }
}

/// Best fit: the task/node pair that leaves the least normalised free space,
/// `Σ_d (free_d − req_d)/cap_d` (see [`super::leftover`]), goes first and is
/// placed there.
#[derive(Clone, Debug, Default)]
pub struct BestFitOrder;

impl Ordering for BestFitOrder {
    fn spec(&self) -> String {
        "bestfit".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Greedy
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        best_over_nodes(view, t, |free, cap| leftover(&t.request, free, cap))
    }
    fn dynamic(&self) -> bool {
        true
    }
    fn placement(&self, t: &WaitingTask, free: &Resources, cap: &Resources) -> Option<f64> {
        Some(leftover(&t.request, free, cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use crate::{ordered_ids, scores};

    #[test]
    fn packer_prefers_alignment_and_puts_nonfitting_last() {
        // Node: 8 CPUs, 6 free. Alignment = (c/8)·(6/8): 6 CPUs → 0.5625,
        // 2 CPUs → 0.1875; 7 CPUs does not fit → +∞.
        let q = [
            task(1, 0, 2, Some(1), 0),
            task(2, 0, 7, Some(1), 0),
            task(3, 1, 6, Some(1), 0),
        ];
        let s = scores(PackerOrder, &[node(0, 8, 6)], &q, 5);
        assert_eq!(s, vec![-0.1875, f64::INFINITY, -0.5625]);
        assert_eq!(
            ordered_ids(PackerOrder, &[node(0, 8, 6)], &q, 5),
            vec![3, 1, 2]
        );
    }

    #[test]
    fn tetris_blends_alignment_and_shortness() {
        // Node 8 CPUs, all free. t1: 4 CPUs (align 0.5), 10 s → 0.5·0.5 + 0.5·0.1 = 0.30.
        // t2: 1 CPU (align 0.125), 1 s → 0.0625 + 0.5 = 0.5625 → first.
        // With knob 1 (pure packing) t1 goes first.
        let q = [task(1, 0, 4, Some(10), 0), task(2, 0, 1, Some(1), 0)];
        let s = scores(TetrisOrder::default(), &[node(0, 8, 8)], &q, 0);
        assert!(
            (s[0] + 0.30).abs() < 1e-12 && (s[1] + 0.5625).abs() < 1e-12,
            "{s:?}"
        );
        assert_eq!(
            ordered_ids(TetrisOrder::default(), &[node(0, 8, 8)], &q, 0),
            vec![2, 1]
        );
        assert_eq!(
            ordered_ids(TetrisOrder { knob: 1.0 }, &[node(0, 8, 8)], &q, 0),
            vec![1, 2]
        );
    }

    #[test]
    fn bestfit_scores_leftover_on_best_node() {
        // Nodes: n0 8 CPUs with 3 free, n1 8 CPUs with 8 free.
        // t1 (3 CPUs): n0 leaves 0 → 0.0. t2 (4 CPUs): only n1 → 4/8 = 0.5.
        let nodes = [node(0, 8, 3), node(1, 8, 8)];
        let q = [task(1, 5, 3, None, 0), task(2, 0, 4, None, 0)];
        assert_eq!(scores(BestFitOrder, &nodes, &q, 9), vec![0.0, 0.5]);
        assert_eq!(ordered_ids(BestFitOrder, &nodes, &q, 9), vec![1, 2]);
    }
}
