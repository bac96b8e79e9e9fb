//! Progress reporting for long runs (training, evaluation): the library
//! calls a [`Progress`] the caller passes in, so a front end can draw bars
//! without this crate knowing how (the CLI uses indicatif; tests count calls).
//!
//! A run is a sequence of *phases* (`teacher rollouts`, `imitation`,
//! `policy gradient`, `evaluation`, ...): [`Progress::phase`] announces one
//! with its number of steps, [`Progress::step`] reports how many are done
//! with a short message (epoch, loss, ...), and [`Progress::finish`] ends it.
//! Every method has an empty default, so an implementation overrides only
//! what it shows.

/// Receives progress of a long run. Calls come from the running thread, in
/// order: `phase`, then `step`s with non-decreasing `done ≤ total`, then `finish`.
pub trait Progress {
    /// A phase named `name` with `total` steps begins.
    fn phase(&mut self, name: &str, total: u64) {
        let _ = (name, total);
    }

    /// `done` steps of the current phase are complete; `msg` says more
    /// (for example `epoch 3/4 loss 0.712`), or is empty.
    fn step(&mut self, done: u64, msg: &str) {
        let _ = (done, msg);
    }

    /// The current phase ended; `summary` is a one-line result or empty.
    fn finish(&mut self, summary: &str) {
        let _ = summary;
    }
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Records every call (phase names, steps, summaries), for tests and logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordProgress {
    /// `(name, total)` of every phase, in order.
    pub phases: Vec<(String, u64)>,
    /// `(phase index, done, message)` of every step.
    pub steps: Vec<(usize, u64, String)>,
    /// Summary of every finished phase.
    pub finished: Vec<String>,
}

impl Progress for RecordProgress {
    fn phase(&mut self, name: &str, total: u64) {
        self.phases.push((name.to_string(), total));
    }
    fn step(&mut self, done: u64, msg: &str) {
        let i = self.phases.len().saturating_sub(1);
        self.steps.push((i, done, msg.to_string()));
    }
    fn finish(&mut self, summary: &str) {
        self.finished.push(summary.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_progress_keeps_calls_in_order() {
        let mut r = RecordProgress::default();
        let p: &mut dyn Progress = &mut r;
        p.phase("a", 2);
        p.step(1, "x");
        p.step(2, "y");
        p.finish("done");
        p.phase("b", 1);
        p.step(1, "");
        assert_eq!(r.phases, vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(r.steps[1], (0, 2, "y".into()));
        assert_eq!(r.steps[2].0, 1);
        assert_eq!(r.finished, vec!["done".to_string()]);
        // The no-op reporter accepts every call.
        let mut n = NoProgress;
        n.phase("a", 1);
        n.step(1, "m");
        n.finish("");
    }
}
