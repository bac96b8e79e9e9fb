//! The sampling protocol (RLScheduler): N sequences of L consecutive jobs from
//! seeded random start positions, each re-based so its first job is submitted at 0.

use llmchain_core::{TaskId, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{SimError, Window, Workload, WorkloadMeta};

/// Default number of sequences.
pub const DEFAULT_SEQUENCES: usize = 10;
/// Default sequence length (jobs).
pub const DEFAULT_LENGTH: usize = 1024;

/// Cut `n` windows of `len` consecutive tasks from `w`. Start positions are
/// drawn uniformly from `0 ..= w.len() - len` by a ChaCha8 RNG seeded with
/// `seed` (windows may overlap each other). Each window keeps the cluster,
/// gets TaskIds 0..len, submit times shifted so its first task is at 0, and
/// records its start index in [`WorkloadMeta::window`]. Its label is
/// `parent#i` (i = 0..n).
pub fn sample(w: &Workload, n: usize, len: usize, seed: u64) -> Result<Vec<Workload>, SimError> {
    if n == 0 {
        return Err(SimError::Param {
            param: "sequences",
            reason: "must be at least 1".into(),
        });
    }
    if len == 0 || len > w.len() {
        return Err(SimError::Param {
            param: "length",
            reason: format!(
                "{len} is outside 1..={} (the workload {} has {} tasks)",
                w.len(),
                w.meta.label,
                w.len()
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let start = rng.gen_range(0..=w.len() - len);
            Ok(window(w, i, start, len, seed))
        })
        .collect()
}

/// The window of `len` tasks starting at index `start`, as sequence number `sequence`.
/// Panics if the range is out of bounds.
pub fn window(w: &Workload, sequence: usize, start: usize, len: usize, seed: u64) -> Workload {
    let base = w.tasks[start].submit;
    let tasks = w.tasks[start..start + len]
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let mut t = t.clone();
            t.id = TaskId(j as u64);
            t.submit = Time(t.submit.0 - base.0);
            t
        })
        .collect::<Vec<_>>();
    let from_runtime = tasks
        .iter()
        .filter(|t| t.estimate.is_some() && t.estimate == t.runtime)
        .count() as u64;
    let meta = WorkloadMeta {
        source: w.meta.source.clone(),
        label: format!("{}#{sequence}", w.meta.label),
        notes: w.meta.notes.clone(),
        skipped: w.meta.skipped.clone(),
        estimates_from_runtime: if w.meta.estimates_from_runtime == 0 {
            0
        } else {
            from_runtime
        },
        perfect_estimates: tasks
            .iter()
            .all(|t| t.estimate.is_some() && t.estimate == t.runtime),
        seed: Some(seed),
        window: Some(Window {
            sequence,
            start,
            len,
            rebased_from: base,
        }),
    };
    Workload {
        cluster: w.cluster.clone(),
        tasks,
        meta,
    }
}

#[cfg(test)]
mod tests {
    use llmchain_core::{Cluster, Dur, Resources, TaskSpec};

    use super::*;

    fn parent(n: u64) -> Workload {
        let tasks = (0..n)
            .map(|i| {
                TaskSpec::new(
                    i,
                    Time::from_secs(100 + 10 * i),
                    Resources::cpus(1, 0),
                    Dur::from_secs(5),
                )
            })
            .collect();
        Workload::new(
            Cluster::single(Resources::cpus(4, 0)),
            tasks,
            WorkloadMeta {
                label: "p".into(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn windows_are_consecutive_rebased_and_seeded() {
        let p = parent(100);
        let seqs = sample(&p, 5, 20, 1).unwrap();
        assert_eq!(seqs.len(), 5);
        for (i, s) in seqs.iter().enumerate() {
            s.check().unwrap();
            let win = s.meta.window.unwrap();
            assert_eq!((win.sequence, win.len, s.len()), (i, 20, 20));
            assert!(win.start + 20 <= 100);
            assert_eq!(s.tasks[0].submit, Time::ZERO);
            assert_eq!(s.meta.label, format!("p#{i}"));
            for (j, t) in s.tasks.iter().enumerate() {
                assert_eq!(t.source_id, (win.start + j) as u64);
                assert_eq!(t.submit, Time::from_secs(10 * j as u64));
            }
        }
        assert_eq!(sample(&p, 5, 20, 1).unwrap(), seqs);
        let starts = |v: &[Workload]| {
            v.iter()
                .map(|s| s.meta.window.unwrap().start)
                .collect::<Vec<_>>()
        };
        assert_ne!(starts(&sample(&p, 5, 20, 2).unwrap()), starts(&seqs));
        assert!(sample(&p, 1, 101, 1).is_err());
        assert_eq!(
            sample(&p, 1, 100, 1).unwrap()[0].meta.window.unwrap().start,
            0
        );
    }
}
