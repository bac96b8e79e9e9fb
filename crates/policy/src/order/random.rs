//! A seeded random ordering (a baseline, and a sanity check for metrics).

use llmchain_core::{Snapshot, WaitingTask};

use super::{Ordering, PlanView};
use crate::Mode;

/// Random: at every decision each waiting task draws a fresh uniform key in
/// `[0, 1)` from a SplitMix64 generator seeded with the build seed; lowest
/// key first. Same seed and same sequence of snapshots → same choices.
#[derive(Clone, Debug)]
pub struct RandomOrder {
    /// The seed the generator started from.
    pub seed: u64,
    /// `true` when the seed came from the spec (`random:seed=N`), so the
    /// canonical name carries it.
    pub explicit_seed: bool,
    state: u64,
    keys: Vec<f64>,
}

impl RandomOrder {
    /// A random ordering seeded with `seed`.
    pub fn new(seed: u64, explicit_seed: bool) -> Self {
        RandomOrder {
            seed,
            explicit_seed,
            state: seed,
            keys: Vec::new(),
        }
    }

    /// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, well mixed.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Ordering for RandomOrder {
    fn spec(&self) -> String {
        if self.explicit_seed {
            format!("random:seed={}", self.seed)
        } else {
            "random".into()
        }
    }
    fn default_mode(&self) -> Mode {
        Mode::Greedy
    }
    fn prepare(&mut self, snap: &Snapshot<'_>) {
        self.keys.clear();
        for _ in snap.waiting {
            let k = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            self.keys.push(k);
        }
    }
    /// Draws the keys the next decision would draw for this snapshot, then
    /// puts the generator back.
    fn prepare_preview(&mut self, snap: &Snapshot<'_>) {
        let state = self.state;
        self.prepare(snap);
        self.state = state;
    }
    fn score(&self, _view: &PlanView<'_, '_>, idx: usize, _t: &WaitingTask) -> f64 {
        self.keys.get(idx).copied().unwrap_or(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use crate::ordered_ids;

    #[test]
    fn same_seed_same_order_different_seed_differs() {
        let q: Vec<_> = (0..20).map(|i| task(i, 0, 1, None, 0)).collect();
        let a = ordered_ids(RandomOrder::new(7, false), &[node(0, 4, 4)], &q, 0);
        let b = ordered_ids(RandomOrder::new(7, false), &[node(0, 4, 4)], &q, 0);
        let c = ordered_ids(RandomOrder::new(8, false), &[node(0, 4, 4)], &q, 0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }
}
