//! The performance-model hook: a [`Predictor`] estimates run times of
//! waiting tasks before the decision model is asked. None ships yet; the
//! learning issue adds one. Predictions fill missing estimates for the fast
//! policy and appear as `pred_s` in prompts and in feature rows.

use llmchain_core::{Dur, Outcome, Snapshot};

/// A run-time predictor.
pub trait Predictor: Send {
    /// Name for audit records.
    fn name(&self) -> &str;

    /// Push one prediction per waiting task of `snap`, in `snap.waiting`
    /// order (`None` where it has none). `out` is empty on entry.
    fn predict(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Option<Dur>>);

    /// Learn from a finished task. Default: ignore.
    fn feedback(&mut self, _outcome: &Outcome) {}
}
