//! Dataset pipeline: cut workloads into training / validation windows that
//! never overlap the evaluation windows (or each other) in time, and record
//! the job ranges of every split.
//!
//! Jobs are in submission order, so disjoint job-index ranges are disjoint in
//! submit time. Evaluation windows follow the RLScheduler protocol
//! ([`llmchain_sim::sample()`]: `n` windows of `len` jobs from seeded random
//! starts); training windows are cut from what they leave free, with a
//! `margin` of jobs kept away from every evaluation window.

use serde::{Deserialize, Serialize};

use crate::card::JobRange;

/// Half-open job index range `[start, end)`.
pub type Range = (usize, usize);

/// The windows of one workload for each split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits {
    /// Workload source.
    pub source: String,
    /// Jobs in the workload.
    pub n_jobs: usize,
    /// Evaluation windows (excluded from training).
    pub test: Vec<Range>,
    /// Training windows.
    pub train: Vec<Range>,
    /// Validation windows.
    pub validation: Vec<Range>,
}

impl Splits {
    /// Job ranges of a split, as card entries.
    pub fn ranges(&self, which: &[Range]) -> Vec<JobRange> {
        which
            .iter()
            .map(|&(s, e)| JobRange {
                source: self.source.clone(),
                start: s,
                end: e,
            })
            .collect()
    }

    /// True when no training or validation window overlaps a test window,
    /// and no validation window overlaps a training window or another
    /// validation window. (Training windows may overlap each other: see
    /// [`strided_windows`].)
    pub fn disjoint(&self) -> bool {
        let apart = |a: &Range, b: &Range| a.1 <= b.0 || b.1 <= a.0;
        let no_test_overlap = self
            .train
            .iter()
            .chain(&self.validation)
            .all(|a| self.test.iter().all(|b| apart(a, b)));
        let val_apart = self.validation.iter().enumerate().all(|(i, v)| {
            self.train.iter().all(|t| apart(v, t))
                && self.validation[i + 1..].iter().all(|w| apart(v, w))
        });
        no_test_overlap && val_apart
    }
}

/// Ranges of `0..n` not covered by any of `covered` widened by `margin` on both sides.
pub fn free_ranges(n: usize, covered: &[Range], margin: usize) -> Vec<Range> {
    let mut c: Vec<Range> = covered
        .iter()
        .map(|&(s, e)| (s.saturating_sub(margin), (e + margin).min(n)))
        .collect();
    c.sort();
    let mut out = Vec::new();
    let mut at = 0;
    for (s, e) in c {
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < n {
        out.push((at, n));
    }
    out
}

/// Cut consecutive windows of `len` jobs from `free` ranges (a range shorter
/// than `len / 2` is dropped; a tail of at least `len / 2` becomes a shorter
/// window). Every `val_every`-th window (1-based; 0 = none) goes to validation.
pub fn cut_windows(free: &[Range], len: usize, val_every: usize) -> (Vec<Range>, Vec<Range>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut k = 0usize;
    for &(s, e) in free {
        let mut at = s;
        while at < e {
            let end = (at + len).min(e);
            if end - at < len / 2 {
                break;
            }
            k += 1;
            if val_every > 0 && k % val_every == 0 {
                val.push((at, end));
            } else {
                train.push((at, end));
            }
            at = end;
        }
    }
    (train, val)
}

/// Extra training windows of `len` jobs starting every `stride` jobs inside
/// each `free` range, skipping any that overlaps a `validation` window or is
/// already in `train`: more (overlapping) decision points from the same
/// jobs, each window starting from an empty queue at another point. `stride`
/// 0 or ≥ `len` adds none.
pub fn strided_windows(
    free: &[Range],
    train: &[Range],
    validation: &[Range],
    len: usize,
    stride: usize,
) -> Vec<Range> {
    let mut out = Vec::new();
    if stride == 0 || stride >= len {
        return out;
    }
    for &(s, e) in free {
        let mut at = s;
        while at + len <= e {
            let w = (at, at + len);
            if !train.contains(&w) && validation.iter().all(|v| w.1 <= v.0 || v.1 <= w.0) {
                out.push(w);
            }
            at += stride;
        }
    }
    out
}

/// Chronological split of `n` jobs into train / validation / test fractions.
pub fn chrono_split(n: usize, train: f64, val: f64) -> (Range, Range, Range) {
    let a = ((n as f64) * train).round() as usize;
    let b = (((n as f64) * (train + val)).round() as usize)
        .max(a)
        .min(n);
    ((0, a), (a, b), (b, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_avoid_test_ranges_and_each_other() {
        let test = vec![(100, 300), (250, 400), (900, 1000)];
        let free = free_ranges(1200, &test, 10);
        assert_eq!(free, vec![(0, 90), (410, 890), (1010, 1200)]);
        let (train, validation) = cut_windows(&free, 64, 3);
        let s = Splits {
            source: "x".into(),
            n_jobs: 1200,
            test: test.clone(),
            train,
            validation,
        };
        assert!(s.disjoint());
        assert!(!s.train.is_empty() && !s.validation.is_empty());
        let mut bad = s.clone();
        bad.train.push((280, 320));
        assert!(!bad.disjoint(), "an overlapping window must be detected");
        // Strided extra windows overlap training windows, never validation or test ones.
        let extra = strided_windows(&free, &s.train, &s.validation, 64, 16);
        assert!(!extra.is_empty());
        let mut more = s.clone();
        more.train.extend(extra);
        assert!(more.disjoint(), "{more:?}");
        let mut bad = s.clone();
        bad.train
            .push((s.validation[0].0 + 1, s.validation[0].1 + 1));
        assert!(
            !bad.disjoint(),
            "a training window over a validation window"
        );
    }

    #[test]
    fn chrono_split_is_ordered() {
        assert_eq!(chrono_split(100, 0.7, 0.1), ((0, 70), (70, 80), (80, 100)));
    }
}
