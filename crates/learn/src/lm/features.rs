//! Snapshot → tokens for the scheduling LM: one token per waiting task (up to
//! `max_queue`, oldest first) and one cluster-state token.
//!
//! Task token ([`TASK_FEATS`] values, all roughly in `[0, 1]`):
//! `ln(1+est)/12`, CPU / memory / GPU request as a fraction of the largest
//! node, `ln(1+wait)/12`, fits-now flag, `ln(1+est·cpu)/12` (area),
//! `ln(bounded slowdown if started now)/5`, estimate-known flag, and
//! `ln(1+delay)/12` where *delay* is how long until enough resources free up
//! for it on node 0's profile of running tasks' expected ends (0 if it fits now).
//!
//! Cluster token ([`CLUSTER_FEATS`] values): free CPU and memory fractions,
//! `ln(1+running)/5`, `ln(1+queue)/5`, mean and min `ln(1+remaining)/12` of
//! running tasks, CPU fraction freeing within 10 minutes, and a mode flag
//! (1 when the ordering runs under a backfilling mode, 0 when strict).
//!
//! Times are seconds. A missing estimate counts as 1 hour (flagged).

use llmchain_core::{Snapshot, NDIMS};

/// Values per task token.
pub const TASK_FEATS: usize = 10;
/// Values in the cluster token.
pub const CLUSTER_FEATS: usize = 8;

/// Estimate assumed when a task has none (seconds).
const DEFAULT_EST_S: f64 = 3600.0;

/// The encoded state of one decision point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded {
    /// Number of task tokens.
    pub n: usize,
    /// `snap.waiting` index of each token.
    pub idx: Vec<usize>,
    /// Task tokens, row-major `n × TASK_FEATS`.
    pub task: Vec<f32>,
    /// The cluster token.
    pub cluster: [f32; CLUSTER_FEATS],
    /// Whether each task fits on some node now.
    pub fits: Vec<bool>,
}

/// Scratch space reused between encodings (no allocation in steady state).
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    ends: Vec<(u64, u64)>,
    /// Set the cluster token's mode flag: the order is used with backfilling.
    pub backfill: bool,
}

impl Encoder {
    /// An encoder whose mode flag says whether the order is used with backfilling.
    pub fn new(backfill: bool) -> Self {
        Encoder {
            ends: Vec::new(),
            backfill,
        }
    }

    /// Encode `snap` into `out` (cleared first), keeping at most `max_queue`
    /// tasks (the oldest, i.e. lowest ids).
    pub fn encode(&mut self, snap: &Snapshot<'_>, max_queue: usize, out: &mut Encoded) {
        out.idx.clear();
        out.task.clear();
        out.fits.clear();
        let cap = max_capacity(snap);
        let total_cap = snap.total_capacity();
        let free = snap.total_free();
        let now = snap.now.0;
        // Profile of CPU freeing up on the whole cluster as running tasks end.
        self.ends.clear();
        for r in snap.running {
            let end = r
                .expected_end
                .map(|e| e.0)
                .unwrap_or(now + 3_600_000)
                .max(now);
            self.ends.push((end, r.request.cpu_milli()));
        }
        self.ends.sort_unstable();
        let n = snap.waiting.len().min(max_queue);
        out.n = n;
        let l12 = |s: f64| ((1.0 + s.max(0.0)).ln() / 12.0) as f32;
        for (i, t) in snap.waiting.iter().take(n).enumerate() {
            let known = t.estimate.is_some();
            let est = t
                .estimate
                .map(|d| d.0 as f64 / 1000.0)
                .unwrap_or(DEFAULT_EST_S);
            let wait = now.saturating_sub(t.submit.0) as f64 / 1000.0;
            let fr = t.request.fractions_of(&cap);
            let fits = snap.nodes.iter().any(|nd| t.request.fits_in(&nd.free));
            let need = t.request.cpu_milli();
            let delay = if fits || need <= free.cpu_milli() {
                0.0
            } else {
                let mut have = free.cpu_milli();
                let mut at = now;
                for &(end, cpu) in &self.ends {
                    have += cpu;
                    at = end;
                    if have >= need {
                        break;
                    }
                }
                (at - now) as f64 / 1000.0
            };
            let bsld_now = (wait + est.max(10.0)) / est.max(10.0);
            out.task.extend_from_slice(&[
                l12(est),
                fr[0] as f32,
                fr[1] as f32,
                fr[2] as f32,
                l12(wait),
                if fits { 1.0 } else { 0.0 },
                l12(est * fr[0]),
                (bsld_now.ln() / 5.0) as f32,
                if known { 1.0 } else { 0.0 },
                l12(delay),
            ]);
            out.idx.push(i);
            out.fits.push(fits);
        }
        let ff = free.fractions_of(&total_cap);
        let (mut sum_rem, mut min_rem, mut soon) = (0.0f64, f64::INFINITY, 0u64);
        for &(end, cpu) in &self.ends {
            let rem = (end - now) as f64 / 1000.0;
            sum_rem += (1.0 + rem).ln();
            min_rem = min_rem.min(rem);
            if rem <= 600.0 {
                soon += cpu;
            }
        }
        let nr = self.ends.len();
        out.cluster = [
            ff[0] as f32,
            ff[1] as f32,
            ((1.0 + nr as f64).ln() / 5.0) as f32,
            ((1.0 + snap.waiting.len() as f64).ln() / 5.0) as f32,
            if nr > 0 {
                (sum_rem / nr as f64 / 12.0) as f32
            } else {
                0.0
            },
            if nr > 0 { l12(min_rem) } else { 0.0 },
            if total_cap.cpu_milli() > 0 {
                (soon as f64 / total_cap.cpu_milli() as f64) as f32
            } else {
                0.0
            },
            if self.backfill { 1.0 } else { 0.0 },
        ];
    }
}

/// Largest capacity per dimension over the snapshot's nodes.
fn max_capacity(snap: &Snapshot<'_>) -> llmchain_core::Resources {
    let mut out = llmchain_core::Resources::ZERO;
    for n in snap.nodes {
        for d in 0..NDIMS {
            out.0[d] = out.0[d].max(n.capacity.0[d]);
        }
    }
    out
}

/// One recorded decision point: its tokens and the pointer prefix chosen
/// there (token indices: the tasks started in order, then the first that did
/// not fit — the EASY head — capped at the prefix length).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Number of task tokens.
    pub n: usize,
    /// Task tokens, `n × TASK_FEATS`.
    pub task: Vec<f32>,
    /// Cluster token.
    pub cluster: [f32; CLUSTER_FEATS],
    /// Chosen token indices, in order.
    pub prefix: Vec<u16>,
}

/// The start prefix of a priority `order` (token indices, best first): walk
/// it planning first-fit starts against the nodes' free resources; each task
/// that fits is taken, the first that does not is taken as the head and
/// ends the prefix. At most `k` entries.
pub fn start_prefix(
    snap: &Snapshot<'_>,
    enc: &Encoded,
    order: &[usize],
    k: usize,
    free: &mut Vec<llmchain_core::Resources>,
) -> Vec<u16> {
    plan_prefix(snap, enc, order, k, free, false)
}

/// Walk `order` planning first-fit starts against the nodes' free resources,
/// at most `k` entries. A task that does not fit ends the prefix (taken as the
/// head) unless `greedy`, which skips it.
fn plan_prefix(
    snap: &Snapshot<'_>,
    enc: &Encoded,
    order: &[usize],
    k: usize,
    free: &mut Vec<llmchain_core::Resources>,
    greedy: bool,
) -> Vec<u16> {
    free.clear();
    free.extend(snap.nodes.iter().map(|n| n.free));
    let mut out = Vec::new();
    for &tok in order {
        if out.len() >= k {
            break;
        }
        let t = &snap.waiting[enc.idx[tok]];
        match Snapshot::first_fit(&t.request, free) {
            Some(nd) => {
                free[nd.0 as usize] -= t.request;
                out.push(tok as u16);
            }
            None if greedy => {}
            None => {
                out.push(tok as u16);
                break;
            }
        }
    }
    out
}

/// The greedy start prefix of a priority `order`: walk it planning
/// first-fit starts; every task that fits is taken, the others are skipped
/// (greedy mode starts all that fit, in order). At most `k` entries.
pub fn greedy_start_prefix(
    snap: &Snapshot<'_>,
    enc: &Encoded,
    order: &[usize],
    k: usize,
    free: &mut Vec<llmchain_core::Resources>,
) -> Vec<u16> {
    plan_prefix(snap, enc, order, k, free, true)
}
