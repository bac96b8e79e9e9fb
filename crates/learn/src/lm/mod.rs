//! The scheduling language model (design text §4.2): a small set-transformer
//! encoder over the waiting queue plus a cluster-state token, with a pointer
//! head that scores which task to start next.
//!
//! # Architecture (one block, induced-set attention)
//! Task tokens `X = T·W_in` ([`features`]) and a cluster token `c = C·W_cl`.
//! `L` learned latent tokens attend over `[c; X]` (they summarise the queue),
//! then every task token attends over `[c; latents]`, then a feed-forward
//! layer (pre-LayerNorm, ReLU). The pointer logit of task *i* is
//! `LN(X_i)·w_out + b + T_i·w_skip`. Attention goes through `L` latents
//! instead of all pairs (Lee et al., Set Transformer, ISAB), so a decision
//! costs `O(n·d·(L + h))` — microseconds for a 128-task queue.
//!
//! # Decoding
//! The order of tasks to start is the pointer distribution decoded greedily
//! (descending logits; Plackett–Luce when sampled). It is used as the
//! ordering of a [`llmchain_policy::Scheduler`]: with EASY backfilling the
//! model picks the head and backfilling fills around its reservation.
//! Masking: padding tokens are masked; every queued task is a valid pointer
//! target because drivers reject tasks that can never fit.

pub mod features;
pub mod infer;
mod lookahead;
pub mod model;
pub mod ordering;
pub mod train;

use serde::{Deserialize, Serialize};

pub use features::{Encoded, Encoder, CLUSTER_FEATS, TASK_FEATS};
pub use infer::{LmWeights, Scratch, WeightMap};
pub use ordering::{default_policy, LmOrdering, SchedLm};

/// Sizes of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LmShape {
    /// Model width.
    pub d: usize,
    /// Latent (inducing) tokens.
    pub latents: usize,
    /// Feed-forward hidden width.
    pub ffn: usize,
    /// Most tasks scored per decision (the oldest); the rest follow in FCFS order.
    pub max_queue: usize,
}

impl Default for LmShape {
    fn default() -> Self {
        LmShape {
            d: 16,
            latents: 4,
            ffn: 32,
            max_queue: 128,
        }
    }
}

impl LmShape {
    /// Every weight tensor's name and shape.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (d, l, h) = (self.d, self.latents, self.ffn);
        let mut v: Vec<(String, Vec<usize>)> = [
            ("in.w", vec![TASK_FEATS, d]),
            ("in.b", vec![d]),
            ("cl.w", vec![CLUSTER_FEATS, d]),
            ("cl.b", vec![d]),
            ("lat", vec![l, d]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        for a in ["a1", "a2"] {
            for m in ["q", "k", "v", "o"] {
                v.push((format!("{a}.{m}"), vec![d, d]));
            }
        }
        v.extend(
            [
                ("ln1.g", vec![d]),
                ("ln1.b", vec![d]),
                ("ff1.w", vec![d, h]),
                ("ff1.b", vec![h]),
                ("ff2.w", vec![h, d]),
                ("ff2.b", vec![d]),
                ("ln2.g", vec![d]),
                ("ln2.b", vec![d]),
                ("out.w", vec![d]),
                ("out.b", vec![1]),
                ("skip.w", vec![TASK_FEATS]),
            ]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s)),
        );
        v
    }

    /// Check the sizes are usable.
    pub fn validate(&self) -> Result<(), crate::LearnError> {
        let bad = |field, reason: &str| {
            Err(crate::LearnError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.d == 0 || self.d > 512 {
            return bad("d", "must be in 1..=512");
        }
        if self.latents == 0 || self.latents > 64 {
            return bad("latents", "must be in 1..=64");
        }
        if self.ffn == 0 || self.ffn > 2048 {
            return bad("ffn", "must be in 1..=2048");
        }
        if self.max_queue < 2 || self.max_queue > 4096 {
            return bad("max_queue", "must be in 2..=4096");
        }
        Ok(())
    }
}
