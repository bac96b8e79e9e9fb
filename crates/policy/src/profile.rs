//! Future free resources per node, as a step function of time: the
//! bookkeeping behind EASY's shadow time and conservative backfilling.

use llmchain_core::{NodeId, Resources, Time};

/// A resource release expected in the future: a running (or just planned)
/// task ending on a node.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Release {
    /// When the resources come back (always > now).
    pub at: Time,
    /// Where.
    pub node: NodeId,
    /// How much.
    pub res: Resources,
}

/// Free resources per node as step functions: `steps[n][i] = (t, free)` means
/// `free` is available on node `n` from time `t` until the next step's time
/// (the last step lasts forever). `steps[n][0].0` is the decision time.
/// Buffers are reused across decisions.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    steps: Vec<Vec<(u64, Resources)>>,
}

/// An infinite duration (task without estimate).
pub(crate) const FOREVER: u64 = u64::MAX;

impl Profile {
    /// Rebuild from the free resources now and the releases, which must be
    /// sorted by time.
    pub fn build(&mut self, now: Time, free: &[Resources], releases: &[Release]) {
        if self.steps.len() < free.len() {
            self.steps.resize_with(free.len(), Vec::new);
        }
        self.steps.truncate(free.len());
        for (n, f) in free.iter().enumerate() {
            self.steps[n].clear();
            self.steps[n].push((now.0, *f));
        }
        for r in releases {
            let Some(s) = self.steps.get_mut(r.node.0 as usize) else {
                continue;
            };
            let last = s.len() - 1;
            if s[last].0 == r.at.0 {
                s[last].1 += r.res;
            } else {
                let f = s[last].1 + r.res;
                s.push((r.at.0, f));
            }
        }
    }

    /// Earliest start time on node `n` at which `req` fits for `dur` ms
    /// (`FOREVER` = unbounded), or `None` if never.
    pub fn earliest(&self, n: usize, req: &Resources, dur: u64) -> Option<u64> {
        let s = &self.steps[n];
        let mut i = 0;
        'outer: while i < s.len() {
            if !req.fits_in(&s[i].1) {
                i += 1;
                continue;
            }
            let start = s[i].0;
            let end = start.saturating_add(dur);
            let mut j = i + 1;
            while j < s.len() && s[j].0 < end {
                if !req.fits_in(&s[j].1) {
                    i = j + 1;
                    continue 'outer;
                }
                j += 1;
            }
            return Some(start);
        }
        None
    }

    /// Whether `req` fits on node `n` from the profile's start for `dur` ms.
    pub fn fits_now(&self, n: usize, req: &Resources, dur: u64) -> bool {
        let s = &self.steps[n];
        let end = s[0].0.saturating_add(dur);
        s.iter()
            .take_while(|(t, _)| *t < end)
            .all(|(_, f)| req.fits_in(f))
    }

    /// Reserve `req` on node `n` over `[start, start + dur)`. The caller has
    /// checked that it fits (via [`Profile::earliest`] / [`Profile::fits_now`]).
    pub fn reserve(&mut self, n: usize, start: u64, dur: u64, req: &Resources) {
        let s = &mut self.steps[n];
        let end = start.saturating_add(dur);
        let i = Self::split(s, start);
        let j = if end == FOREVER {
            s.len()
        } else {
            Self::split(s, end)
        };
        for step in &mut s[i..j] {
            debug_assert!(req.fits_in(&step.1), "reservation over-commits the profile");
            step.1 = step.1.saturating_sub(req);
        }
    }

    /// Ensure a step starts exactly at `t` (≥ the first step's time); return its index.
    fn split(s: &mut Vec<(u64, Resources)>, t: u64) -> usize {
        let k = s.partition_point(|(st, _)| *st <= t); // ≥ 1
        if s[k - 1].0 == t {
            k - 1
        } else {
            let f = s[k - 1].1;
            s.insert(k, (t, f));
            k
        }
    }

    #[cfg(test)]
    pub fn steps(&self, n: usize) -> &[(u64, Resources)] {
        &self.steps[n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u64) -> Resources {
        Resources::cpus(n, 0)
    }

    #[test]
    fn build_earliest_reserve() {
        let mut p = Profile::default();
        let rel = [
            Release {
                at: Time(10),
                node: NodeId(0),
                res: c(2),
            },
            Release {
                at: Time(10),
                node: NodeId(0),
                res: c(1),
            },
            Release {
                at: Time(20),
                node: NodeId(0),
                res: c(4),
            },
        ];
        p.build(Time(0), &[c(1)], &rel);
        assert_eq!(p.steps(0), &[(0, c(1)), (10, c(4)), (20, c(8))]);
        assert_eq!(p.earliest(0, &c(1), 5), Some(0));
        assert_eq!(p.earliest(0, &c(3), 5), Some(10));
        assert_eq!(p.earliest(0, &c(5), FOREVER), Some(20));
        assert_eq!(p.earliest(0, &c(9), 1), None);
        // Reserve 3 CPUs over [10, 25): 4→1 on [10,20), 8→5 on [20,25).
        p.reserve(0, 10, 15, &c(3));
        assert_eq!(p.steps(0), &[(0, c(1)), (10, c(1)), (20, c(5)), (25, c(8))]);
        // A 2-CPU job for 30 ms now cannot fit until 20.
        assert_eq!(p.earliest(0, &c(2), 30), Some(20));
        assert!(p.fits_now(0, &c(1), 100));
        assert!(!p.fits_now(0, &c(2), 1));
        p.reserve(0, 0, FOREVER, &c(1));
        assert_eq!(p.steps(0), &[(0, c(0)), (10, c(0)), (20, c(4)), (25, c(7))]);
    }
}
