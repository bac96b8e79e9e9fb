//! [`Scheduler`]: any [`Ordering`] combined with any [`Mode`], as a
//! [`Policy`]. Holds all per-decision scratch buffers so a decision does not
//! allocate once the buffers have grown to the queue size.
//!
//! # How a decision walks the queue
//! Free resources only shrink during a decision, so only the tasks that fit
//! on some node at its start can start in it. One pass over the queue scores
//! every task and splits it into those (the *fitting* tasks, usually few on a
//! busy cluster) and the tasks that fit no node now but some node's capacity
//! (the *blocked* ones); tasks larger than every node are skipped when they
//! come up, as they never start and never block. The modes then work on the
//! two lists: strict (and EASY's strict phase) takes the fitting tasks in
//! priority order until one does not fit or the best blocked task comes
//! first (the head);
//! EASY backfills only from the fitting tasks after the head; greedy sorts
//! only the fitting tasks; conservative backfilling sorts both lists
//! together. That is the same as walking the whole queue in priority order,
//! for the cost of one scan plus work on the fitting tasks.

use std::cmp::Ordering as Cmp;

use llmchain_core::{
    Decision, Dur, NodeId, Policy, PolicyStats, Resources, Snapshot, TaskId, Time, WaitingTask,
};

use crate::mode::CONS_DEPTH;
use crate::order::{Ordering, PlanView};
use crate::profile::{Profile, Release, FOREVER};
use crate::Mode;

/// Sort key of one waiting task: score, then submit time, then id (total).
/// The score is stored as an integer with the same order as
/// [`f64::total_cmp`], so comparing keys is three integer comparisons.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Key {
    pub score: i64,
    pub submit: Time,
    pub id: TaskId,
    pub idx: usize,
}

impl Key {
    pub fn new(score: f64, t: &WaitingTask, idx: usize) -> Key {
        let bits = clean(score).to_bits() as i64;
        // The transformation `f64::total_cmp` applies: flip the magnitude bits of negatives.
        let score = bits ^ ((((bits >> 63) as u64) >> 1) as i64);
        Key {
            score,
            submit: t.submit,
            id: t.id,
            idx,
        }
    }

    /// The key of `t` in submission order: every score equal, so keys
    /// compare by submit time, then id (see [`Ordering::submit_order`]).
    pub fn by_submit(t: &WaitingTask, idx: usize) -> Key {
        Key {
            score: 0,
            submit: t.submit,
            id: t.id,
            idx,
        }
    }

    pub fn cmp(&self, other: &Key) -> Cmp {
        (self.score, self.submit, self.id).cmp(&(other.score, other.submit, other.id))
    }
}

/// Score with NaN mapped to `+∞` (so it sorts last, deterministically).
fn clean(s: f64) -> f64 {
    if s.is_nan() {
        f64::INFINITY
    } else {
        s
    }
}

/// Score every waiting task against `free` (unsorted).
fn score_keys<O: Ordering + ?Sized>(
    order: &O,
    snap: &Snapshot<'_>,
    free: &[Resources],
    keys: &mut Vec<Key>,
) {
    let view = PlanView { snap, free };
    keys.clear();
    keys.extend(
        snap.waiting
            .iter()
            .enumerate()
            .map(|(idx, t)| Key::new(order.score(&view, idx, t), t, idx)),
    );
}

/// Sort keys into priority order.
fn sort(keys: &mut [Key]) {
    keys.sort_unstable_by_key(|k| (k.score, k.submit, k.id));
}

/// Score every waiting task against `free` and sort (the decision's priority order).
#[cfg(test)]
pub(crate) fn sort_keys<O: Ordering + ?Sized>(
    order: &O,
    snap: &Snapshot<'_>,
    free: &[Resources],
    keys: &mut Vec<Key>,
) {
    score_keys(order, snap, free, keys);
    sort(keys);
}

/// How many tasks strict selection picks one by one (O(fitting tasks) each)
/// before it sorts the rest of the fitting tasks instead.
const SELECT_LIMIT: usize = 16;

/// Whether `t` fits in some node's free resources.
#[inline]
fn fits_somewhere(free: &[Resources], t: &WaitingTask) -> bool {
    free.iter().any(|f| t.request.fits_in(f))
}

/// Index of the first task in `waiting` that fits in some node's `free`
/// resources. Scans node by node, each scan stopping at the best index so far.
fn first_fitting(free: &[Resources], waiting: &[WaitingTask]) -> Option<usize> {
    let mut end = waiting.len();
    for f in free {
        if let Some(i) = waiting[..end].iter().position(|t| t.request.fits_in(f)) {
            end = i;
        }
    }
    (end < waiting.len()).then_some(end)
}

/// Lower `acc` to `r` in every dimension where `r` is smaller.
fn min_each(acc: &mut Resources, r: &Resources) {
    for (a, b) in acc.0.iter_mut().zip(r.0.iter()) {
        *a = (*a).min(*b);
    }
}

/// The node to put `t` on among those where it fits in `free` and `allowed`
/// says yes: the ordering's preferred placement (lowest, ties to the lower
/// node id), or first-fit by node id.
fn place<O: Ordering + ?Sized>(
    order: &O,
    snap: &Snapshot<'_>,
    free: &[Resources],
    t: &WaitingTask,
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (n, f) in free.iter().enumerate() {
        if !t.request.fits_in(f) || !allowed(n) {
            continue;
        }
        match order.placement(t, f, &snap.nodes[n].capacity) {
            None => return Some(n),
            Some(s) => {
                let s = clean(s);
                if best.map_or(true, |(b, _)| s < b) {
                    best = Some((s, n));
                }
            }
        }
    }
    best.map(|(_, n)| n)
}

/// Whether some node could hold `t` when empty.
fn can_ever_fit(snap: &Snapshot<'_>, t: &WaitingTask) -> bool {
    snap.nodes.iter().any(|n| t.request.fits_in(&n.capacity))
}

/// When a task is expected to release its resources, as seen at `now`:
/// `start + estimate`; a task with no estimate, or already past its
/// expected end, is assumed to end at `now + 1 ms` (the earliest possible
/// future instant). That assumption is the most protective one for
/// reservations: it makes the shadow time as early as possible, so less
/// backfilling can be proven harmless.
fn expected_release(now: Time, expected_end: Option<Time>) -> Time {
    match expected_end {
        Some(e) if e > now => e,
        _ => now + Dur(1),
    }
}

/// A task's estimated duration in ms (≥ 1), or [`FOREVER`] when unknown.
fn dur_ms(t: &WaitingTask) -> u64 {
    t.estimate.map_or(FOREVER, |d| d.0.max(1))
}

/// EASY's reservation for the head: the node, the shadow time and the
/// resources left over there at the shadow time once the head is placed.
#[derive(Copy, Clone, Debug)]
struct Reservation {
    node: usize,
    shadow: Time,
    extra: Resources,
}

/// Where [`Scheduler::next_blocked`] finds the blocked tasks of a decision.
#[derive(Copy, Clone, Debug)]
enum BlockedList {
    /// Their keys are in `Scheduler::blocked`; the first `taken` are the ones
    /// already handed out, in priority order, the rest in no order.
    Listed { taken: usize },
    /// Not listed: the queue is in priority order, so they are the tasks
    /// from queue position `next` on that do not fit `Scheduler::free0`.
    InQueue { next: usize },
}

/// Where a strict walk over the fitting tasks stopped.
#[derive(Copy, Clone, Debug)]
enum Stop {
    /// Every fitting task was taken, or nothing more can start.
    Done,
    /// The fitting task at the walk's position does not fit any more (after
    /// the starts before it) but could on an empty node: it is the head.
    FittingHead,
    /// This blocked task comes before the next fitting one: it is the head.
    BlockedHead(Key),
}

/// Any [`Ordering`] run in any [`Mode`]: the policy type behind every spec
/// except plain `fcfs` (which is [`crate::Fcfs`], the template).
///
/// # Semantics shared by all modes
/// * The priority order is computed at the start of each decision (scores,
///   then submit time, then task id). Dynamic orderings (Packer, Tetris,
///   best-fit, DRF) are re-scored after every start in greedy mode only.
/// * Every proposed start fits the node's free resources after the starts
///   proposed before it in the same decision, so a correct snapshot never
///   yields a proposal the [`llmchain_core::Validator`] rejects.
/// * Expected ends of running tasks are `start + estimate`; a task with no
///   estimate or past its expected end is assumed to end at `now + 1 ms`.
///   Tasks started in this decision are expected to end at
///   `now + estimate` (`now + 1 ms` without an estimate).
/// * Tasks without an estimate can never be proven to end before a
///   reservation: under EASY they backfill only into extra resources (or
///   onto other nodes than the reservation's); under conservative
///   backfilling they are reserved forever.
pub struct Scheduler<O: Ordering> {
    order: O,
    mode: Mode,
    name: String,
    decision_points: u64,
    // Scratch, reused across decisions.
    free: Vec<Resources>,
    /// Keys of the waiting tasks that fit on some node at the start of the
    /// decision: the only ones that can start in it.
    keys: Vec<Key>,
    /// Keys of the waiting tasks that fit on no node at the start of the
    /// decision but on some node's capacity: candidates for EASY's head and
    /// for conservative reservations.
    blocked: Vec<Key>,
    /// Position in `blocked` of its highest-priority key, as found by
    /// [`Scheduler::partition`]; taken by the first [`Scheduler::next_blocked`].
    blocked_min: Option<usize>,
    /// How the blocked tasks are found, and how many were handed out.
    blocked_list: BlockedList,
    /// Free resources at the start of the decision.
    free0: Vec<Resources>,
    /// Position in `keys` of its highest-priority key, as found by
    /// [`Scheduler::partition`]; taken by the first [`Scheduler::select_min`].
    keys_min: Option<usize>,
    /// Greedy over a dynamic ordering: which waiting tasks it has started.
    started: Vec<bool>,
    planned: Vec<(usize, usize)>,
    /// Component-wise minimum request over the tasks that fit at the start of
    /// the decision: when no node's free resources hold it, no further task
    /// can start in this decision.
    min_req: Resources,
    /// Set once no node's free resources hold `min_req`.
    exhausted: bool,
    /// `keys[sorted_from..]` is in priority order (and so is `keys[..pos]`
    /// for the positions strict selection has filled).
    sorted_from: usize,
    /// Selections made by [`Scheduler::select_min`] in this decision.
    selections: usize,
    releases: Vec<Release>,
    profile: Profile,
}

impl<O: Ordering> Scheduler<O> {
    /// Run `order` in `mode`. The name is the canonical spec: the ordering's
    /// spec, plus `+mode` when the mode is not the ordering's default.
    pub fn new(order: O, mode: Mode) -> Self {
        let mut name = order.spec();
        if mode != order.default_mode() {
            name.push('+');
            name.push_str(mode.name());
        }
        Scheduler {
            order,
            mode,
            name,
            decision_points: 0,
            free: Vec::new(),
            keys: Vec::new(),
            blocked: Vec::new(),
            blocked_min: None,
            blocked_list: BlockedList::Listed { taken: 0 },
            free0: Vec::new(),
            keys_min: None,
            started: Vec::new(),
            planned: Vec::new(),
            min_req: Resources::ZERO,
            exhausted: false,
            sorted_from: 0,
            selections: 0,
            releases: Vec::new(),
            profile: Profile::default(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ordering.
    pub fn ordering(&self) -> &O {
        &self.order
    }

    /// Score the waiting tasks against the free resources and split them into
    /// `keys` (fitting now) and `blocked`; `snap.waiting[first]` is the first
    /// task that fits now. Sets `min_req` and resets the selection state.
    /// Tasks larger than every node stay in `blocked`: they are skipped when
    /// they come up (see [`Scheduler::next_blocked`]).
    fn partition(&mut self, snap: &Snapshot<'_>, first: usize) {
        self.free0.clone_from(&self.free);
        let free = std::mem::take(&mut self.free);
        // Monomorphic loops for the common cases: one node (free resources
        // in registers) and submission order (no scores to compute).
        let scored = |o: &O, i, t: &WaitingTask| {
            Key::new(o.score(&PlanView { snap, free: &free }, i, t), t, i)
        };
        let by_submit = |_: &O, i, t: &WaitingTask| Key::by_submit(t, i);
        let one = |t: &WaitingTask| t.request.fits_in(&free[0]);
        let any = |t: &WaitingTask| fits_somewhere(&free, t);
        match (free.len() == 1, self.order.submit_order()) {
            (true, true) => self.partition_by::<true>(snap, first, one, by_submit),
            (true, false) => self.partition_by::<false>(snap, first, one, scored),
            (false, true) => self.partition_by::<true>(snap, first, any, by_submit),
            (false, false) => self.partition_by::<false>(snap, first, any, scored),
        }
        self.free = free;
    }

    /// [`Scheduler::partition`] with `fits_now` telling whether a task fits
    /// in some node's free resources and `key` giving a task's key.
    /// `BY_SUBMIT`: the keys are in submission order, so when the queue is
    /// in (submit time, id) order (checked here) the fitting keys come out
    /// sorted and the blocked ones need not be listed (except for
    /// conservative backfilling, which sorts them all); otherwise the
    /// highest-priority key of each list is tracked.
    fn partition_by<const BY_SUBMIT: bool>(
        &mut self,
        snap: &Snapshot<'_>,
        first: usize,
        fits_now: impl Fn(&WaitingTask) -> bool,
        key: impl Fn(&O, usize, &WaitingTask) -> Key,
    ) {
        self.keys.clear();
        self.blocked.clear();
        self.blocked_min = None;
        self.blocked_list = BlockedList::Listed { taken: 0 };
        self.keys_min = None;
        let lazy = BY_SUBMIT && self.mode != Mode::Cons;
        let order = &self.order;
        let mut in_order = true;
        let mut prev: Option<(Time, TaskId)> = None;
        let mut check_order = |t: &WaitingTask| {
            if BY_SUBMIT {
                in_order &= prev < Some((t.submit, t.id));
                prev = Some((t.submit, t.id));
            }
        };
        let mut best: Option<Key> = None;
        let mut block = |key: Key| {
            if !BY_SUBMIT && best.map_or(true, |b| key.cmp(&b) == Cmp::Less) {
                best = Some(key);
                self.blocked_min = Some(self.blocked.len());
            }
            self.blocked.push(key);
        };
        let (before, from_first) = snap.waiting.split_at(first);
        for (idx, t) in before.iter().enumerate() {
            check_order(t);
            if !lazy {
                block(key(order, idx, t));
            }
        }
        let mut min_req = from_first[0].request;
        let mut best_fit: Option<Key> = None;
        for (idx, t) in from_first.iter().enumerate().map(|(i, t)| (first + i, t)) {
            check_order(t);
            let key = key(order, idx, t);
            if fits_now(t) {
                min_each(&mut min_req, &t.request);
                if !BY_SUBMIT && best_fit.map_or(true, |b| key.cmp(&b) == Cmp::Less) {
                    best_fit = Some(key);
                    self.keys_min = Some(self.keys.len());
                }
                self.keys.push(key);
            } else if !lazy {
                block(key);
            }
        }
        self.min_req = min_req;
        self.sorted_from = self.keys.len();
        self.selections = 0;
        if BY_SUBMIT && in_order {
            self.sorted_from = 0;
            self.blocked_min = (!self.blocked.is_empty()).then_some(0);
            if lazy {
                self.blocked_list = BlockedList::InQueue { next: 0 };
            }
        } else if lazy {
            // Not in queue order after all: list them.
            for (idx, t) in snap.waiting.iter().enumerate() {
                if !fits_now(t) {
                    block(key(order, idx, t));
                }
            }
        }
    }

    /// Plan the start of `snap.waiting[idx]` on node `n` now.
    fn commit(&mut self, snap: &Snapshot<'_>, idx: usize, n: usize, out: &mut Vec<Decision>) {
        let t = &snap.waiting[idx];
        debug_assert!(t.request.fits_in(&self.free[n]));
        self.free[n] = self.free[n].saturating_sub(&t.request);
        self.planned.push((idx, n));
        self.order.on_start(t, NodeId(n as u32));
        out.push(Decision::start(t.id, NodeId(n as u32)));
        let m = self.min_req;
        self.exhausted = !self.free.iter().any(|f| m.fits_in(f));
    }

    /// Make `keys[pos]` the highest-priority key of `keys[pos..]`, given
    /// `keys[..pos]` holds the ones before it. Selection costs O(keys), so
    /// after [`SELECT_LIMIT`] selections the rest is sorted once instead:
    /// a decision that starts k tasks out of c fitting ones costs
    /// O(c·min(k, SELECT_LIMIT) + c·log(c) only when k is large).
    fn select_min(&mut self, pos: usize) {
        if pos >= self.sorted_from {
            return;
        }
        self.selections += 1;
        if let Some(best) = self.keys_min.take().filter(|_| pos == 0) {
            self.keys.swap(pos, best);
            return;
        }
        if self.selections > SELECT_LIMIT {
            sort(&mut self.keys[pos..]);
            self.sorted_from = pos;
            return;
        }
        let mut best = pos;
        for i in pos + 1..self.keys.len() {
            if self.keys[i].cmp(&self.keys[best]) == Cmp::Less {
                best = i;
            }
        }
        self.keys.swap(pos, best);
    }

    /// Move the keys in `keys[from..]` whose task `may_start` to the front of
    /// that range and sort them; return the end of that run.
    fn sort_candidates(
        &mut self,
        snap: &Snapshot<'_>,
        from: usize,
        may_start: impl Fn(&WaitingTask) -> bool,
    ) -> usize {
        let mut w = from;
        for r in from..self.keys.len() {
            if may_start(&snap.waiting[self.keys[r].idx]) {
                self.keys.swap(w, r);
                w += 1;
            }
        }
        sort(&mut self.keys[from..w]);
        w
    }

    /// The next blocked task in priority order (the first one at the first
    /// call of a decision), skipping tasks no node could ever hold; `None`
    /// when none is left.
    fn next_blocked(&mut self, snap: &Snapshot<'_>) -> Option<Key> {
        match self.blocked_list {
            BlockedList::InQueue { next } => {
                let found = snap.waiting[next..]
                    .iter()
                    .position(|t| !fits_somewhere(&self.free0, t) && can_ever_fit(snap, t));
                let Some(idx) = found.map(|i| next + i) else {
                    self.blocked_list = BlockedList::InQueue {
                        next: snap.waiting.len(),
                    };
                    return None;
                };
                self.blocked_list = BlockedList::InQueue { next: idx + 1 };
                Some(Key::by_submit(&snap.waiting[idx], idx))
            }
            BlockedList::Listed { taken } => loop {
                let rest = self.blocked.get_mut(taken..)?;
                let best = match self.blocked_min.take() {
                    Some(b) if taken == 0 => b,
                    _ => (0..rest.len()).min_by(|&a, &b| rest[a].cmp(&rest[b]))?,
                };
                rest.swap(0, best);
                let key = rest[0];
                if can_ever_fit(snap, &snap.waiting[key.idx]) {
                    self.blocked_list = BlockedList::Listed { taken: taken + 1 };
                    return Some(key);
                }
                // Larger than every node: it never starts and never blocks.
                self.blocked.swap_remove(taken);
            },
        }
    }

    /// Strict from `keys[*pos]`: start the fitting tasks in priority order
    /// while the next one fits, up to the blocked task `bound` (the first
    /// blocked task in priority order not passed over yet), which cannot
    /// start. On return `keys[..*pos]` are the tasks taken (started, or
    /// skipped because no node could ever hold them), in priority order;
    /// for [`Stop::FittingHead`] the head is `keys[*pos]`.
    fn strict(
        &mut self,
        snap: &Snapshot<'_>,
        pos: &mut usize,
        bound: Option<Key>,
        out: &mut Vec<Decision>,
    ) -> Stop {
        while *pos < self.keys.len() {
            if self.exhausted {
                return Stop::Done;
            }
            self.select_min(*pos);
            let k = self.keys[*pos];
            if let Some(b) = bound.filter(|b| b.cmp(&k) == Cmp::Less) {
                return Stop::BlockedHead(b);
            }
            let t = &snap.waiting[k.idx];
            if let Some(n) = place(&self.order, snap, &self.free, t, |_| true) {
                self.commit(snap, k.idx, n, out);
            } else if can_ever_fit(snap, t) {
                return Stop::FittingHead;
            }
            *pos += 1;
        }
        bound.map_or(Stop::Done, Stop::BlockedHead)
    }

    fn greedy_static(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        sort(&mut self.keys);
        for pos in 0..self.keys.len() {
            if self.exhausted {
                return;
            }
            let idx = self.keys[pos].idx;
            if let Some(n) = place(&self.order, snap, &self.free, &snap.waiting[idx], |_| true) {
                self.commit(snap, idx, n, out);
            }
        }
    }

    /// Greedy for dynamic orderings: repeatedly start the best-scoring task
    /// that fits somewhere, re-scoring after each start.
    /// Cost: O(starts · queue · nodes).
    fn greedy_dynamic(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.started.clear();
        self.started.resize(snap.waiting.len(), false);
        while !self.exhausted {
            let mut best: Option<Key> = None;
            {
                let view = PlanView {
                    snap,
                    free: &self.free,
                };
                for (idx, t) in snap.waiting.iter().enumerate() {
                    if self.started[idx] || !fits_somewhere(&self.free, t) {
                        continue;
                    }
                    let k = Key::new(self.order.score(&view, idx, t), t, idx);
                    if best.map_or(true, |b| k.cmp(&b) == Cmp::Less) {
                        best = Some(k);
                    }
                }
            }
            let Some(b) = best else { return };
            let n = place(&self.order, snap, &self.free, &snap.waiting[b.idx], |_| {
                true
            })
            .expect("task was checked to fit on some node");
            self.commit(snap, b.idx, n, out);
            self.started[b.idx] = true;
        }
    }

    /// Collect the expected releases of running tasks and of the tasks
    /// planned so far in this decision, sorted by (time, node).
    fn collect_releases(&mut self, snap: &Snapshot<'_>) {
        let now = snap.now;
        self.releases.clear();
        for r in snap.running {
            if (r.node.0 as usize) < snap.nodes.len() {
                self.releases.push(Release {
                    at: expected_release(now, r.expected_end),
                    node: r.node,
                    res: r.request,
                });
            }
        }
        for &(idx, n) in &self.planned {
            let t = &snap.waiting[idx];
            let at = expected_release(now, t.estimate.map(|e| now + e));
            self.releases.push(Release {
                at,
                node: NodeId(n as u32),
                res: t.request,
            });
        }
        self.releases
            .sort_unstable_by(|a, b| a.at.cmp(&b.at).then(a.node.cmp(&b.node)));
    }

    /// EASY's reservation for `t`: on each node that could ever hold it, the
    /// earliest release time at which the free resources (now, plus the
    /// releases up to and including that time) hold it. The earliest such
    /// node wins, ties to the lower node id. `None` when no node's expected
    /// releases ever make room (only possible when resources are held by
    /// something other than the listed running tasks).
    fn reservation(&self, snap: &Snapshot<'_>, t: &WaitingTask) -> Option<Reservation> {
        let mut best: Option<Reservation> = None;
        for (n, node) in snap.nodes.iter().enumerate() {
            if !t.request.fits_in(&node.capacity) {
                continue;
            }
            let mut avail = self.free[n];
            let mut found = None;
            let rel = &self.releases;
            let mut i = 0;
            while i < rel.len() {
                let at = rel[i].at;
                // Apply every release on this node at this instant.
                while i < rel.len() && rel[i].at == at {
                    if rel[i].node.0 as usize == n {
                        avail += rel[i].res;
                    }
                    i += 1;
                }
                if t.request.fits_in(&avail) {
                    found = Some((at, avail.saturating_sub(&t.request)));
                    break;
                }
            }
            if let Some((shadow, extra)) = found {
                if best.map_or(true, |b| shadow < b.shadow) {
                    best = Some(Reservation {
                        node: n,
                        shadow,
                        extra,
                    });
                }
            }
        }
        best
    }

    /// EASY backfilling (see [`Mode::Easy`]).
    fn easy(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        // Strict until the head; `keys[..pos]` and the blocked tasks before
        // `bound` are the tasks passed so far.
        let mut pos = 0;
        let mut bound = self.next_blocked(snap);
        let (from, res) = loop {
            let stop = self.strict(snap, &mut pos, bound, out);
            let (head, from) = match stop {
                Stop::Done => return,
                Stop::FittingHead => (self.keys[pos], pos + 1),
                Stop::BlockedHead(b) => (b, pos),
            };
            // Only the fitting tasks after the head can still start.
            let free = &self.free;
            if !self.keys[from..]
                .iter()
                .any(|k| fits_somewhere(free, &snap.waiting[k.idx]))
            {
                return;
            }
            self.collect_releases(snap);
            match self.reservation(snap, &snap.waiting[head.idx]) {
                Some(r) => break (from, r),
                // No reservation can be computed: it cannot block anyone.
                None => match stop {
                    Stop::FittingHead => pos += 1,
                    _ => bound = self.next_blocked(snap),
                },
            }
        };
        let now = snap.now;
        let ends_in_time = |t: &WaitingTask| t.estimate.is_some_and(|e| now + e <= res.shadow);
        // Free resources and the extra only shrink from here on, so a task
        // that cannot start now under the initial ones never will.
        let free = std::mem::take(&mut self.free);
        let may_start = |t: &WaitingTask| {
            free.iter().enumerate().any(|(n, f)| {
                t.request.fits_in(f)
                    && (n != res.node || ends_in_time(t) || t.request.fits_in(&res.extra))
            })
        };
        // Keys already in priority order (submission order) are walked as
        // they are: the loop below skips what cannot start.
        let end = if from >= self.sorted_from {
            self.keys.len()
        } else {
            self.sort_candidates(snap, from, may_start)
        };
        self.free = free;
        let mut extra = res.extra;
        for pos in from..end {
            if self.exhausted {
                return;
            }
            let idx = self.keys[pos].idx;
            let t = &snap.waiting[idx];
            let ends_in_time = ends_in_time(t);
            let in_extra = t.request.fits_in(&extra);
            let allowed = |n: usize| n != res.node || ends_in_time || in_extra;
            if let Some(n) = place(&self.order, snap, &self.free, t, allowed) {
                if n == res.node && !ends_in_time {
                    extra = extra.saturating_sub(&t.request);
                }
                self.commit(snap, idx, n, out);
            }
        }
    }

    /// Conservative backfilling (see [`Mode::Cons`]).
    fn cons(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        let now = snap.now.0;
        // Every task that could ever start, in priority order.
        self.keys.extend(
            self.blocked
                .iter()
                .filter(|k| can_ever_fit(snap, &snap.waiting[k.idx])),
        );
        sort(&mut self.keys);
        self.collect_releases(snap);
        self.profile.build(snap.now, &self.free, &self.releases);
        let mut reserved = 0usize;
        for pos in 0..self.keys.len() {
            // Later tasks' reservations only constrain even later tasks'
            // starts now; once nothing can start now, they change nothing.
            if self.exhausted {
                return;
            }
            let idx = self.keys[pos].idx;
            let t = &snap.waiting[idx];
            let dur = dur_ms(t);
            if reserved >= CONS_DEPTH {
                // Past the reservation depth: start now only if that fits now
                // and disturbs no reservation; otherwise no reservation.
                let profile = &self.profile;
                if let Some(n) = place(&self.order, snap, &self.free, t, |n| {
                    profile.fits_now(n, &t.request, dur)
                }) {
                    self.profile.reserve(n, now, dur, &t.request);
                    self.commit(snap, idx, n, out);
                }
                continue;
            }
            // Earliest start over the nodes; ties: placement preference for
            // starts now, else the lower node id.
            let mut best: Option<(u64, usize)> = None;
            for n in 0..snap.nodes.len() {
                if let Some(s) = self.profile.earliest(n, &t.request, dur) {
                    if best.map_or(true, |(b, _)| s < b) {
                        best = Some((s, n));
                    }
                }
            }
            let Some((start, mut n)) = best else { continue };
            if start == now {
                let profile = &self.profile;
                let Some(p) = place(&self.order, snap, &self.free, t, |m| {
                    profile.fits_now(m, &t.request, dur)
                }) else {
                    debug_assert!(false, "profile says it fits now but no node does");
                    continue;
                };
                n = p;
                self.profile.reserve(n, now, dur, &t.request);
                self.commit(snap, idx, n, out);
            } else {
                self.profile.reserve(n, start, dur, &t.request);
            }
            reserved += 1;
        }
    }
}

impl<O: Ordering> Policy for Scheduler<O> {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.decision_points += 1;
        self.order.prepare(snap);
        self.free.clear();
        self.free.extend(snap.nodes.iter().map(|n| n.free));
        self.planned.clear();
        // Every mode only ever starts tasks that fit now, so when none does
        // there is nothing to order (common on a full cluster).
        let Some(first) = first_fitting(&self.free, snap.waiting) else {
            return;
        };
        self.exhausted = false;
        if self.mode == Mode::Greedy && self.order.dynamic() {
            let mut m = snap.waiting[first].request;
            for t in &snap.waiting[first + 1..] {
                if fits_somewhere(&self.free, t) {
                    min_each(&mut m, &t.request);
                }
            }
            self.min_req = m;
            self.greedy_dynamic(snap, out);
            return;
        }
        self.partition(snap, first);
        match self.mode {
            Mode::Strict => {
                let bound = self.next_blocked(snap);
                self.strict(snap, &mut 0, bound, out);
            }
            Mode::Greedy => self.greedy_static(snap, out),
            Mode::Easy => self.easy(snap, out),
            Mode::Cons => self.cons(snap, out),
        }
    }

    fn stats(&self) -> PolicyStats {
        PolicyStats {
            decision_points: self.decision_points,
            ..PolicyStats::default()
        }
    }

    /// The priority order a decision on `snap` starts from: scores against the
    /// current free resources, then submit time, then id.
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        self.order.prepare_preview(snap);
        let free: Vec<Resources> = snap.nodes.iter().map(|n| n.free).collect();
        let mut keys = Vec::with_capacity(snap.waiting.len());
        score_keys(&self.order, snap, &free, &mut keys);
        sort(&mut keys);
        out.extend(keys.iter().map(|k| k.id));
        let how = match self.mode {
            Mode::Strict => "strict: tasks start in this order; the first that does not fit blocks the rest",
            Mode::Greedy => "greedy: any task that fits starts, earlier ones in this order first",
            Mode::Easy => "EASY backfilling: the first task that does not fit gets a reservation; later ones start early only if they do not delay it",
            Mode::Cons => "conservative backfilling: every task in this order gets a reservation; a later one starts early only if it delays none",
        };
        let dynamic = if self.order.dynamic() {
            " (scores change as tasks start)"
        } else {
            ""
        };
        Some(format!(
            "priority order of `{}`{dynamic}, ties by submit time then id; {how}",
            self.order.spec()
        ))
    }
}

#[cfg(test)]
mod tests {
    //! Strict vs greedy vs EASY vs conservative on hand-built snapshots; the
    //! expected starts are worked out by hand in each test's comments.
    use super::*;
    use crate::order::{BestFitOrder, DrfOrder, FcfsOrder, PackerOrder};
    use crate::{build, BuildCtx};
    use llmchain_core::{NodeState, RunningTask};

    fn node(id: u32, cpus: u64, free: u64) -> NodeState {
        NodeState {
            id: NodeId(id),
            capacity: Resources::cpus(cpus, 0),
            free: Resources::cpus(free, 0),
        }
    }
    fn task(id: u64, cpus: u64, est_s: Option<u64>) -> WaitingTask {
        WaitingTask {
            id: TaskId(id),
            submit: Time::from_secs(id),
            request: Resources::cpus(cpus, 0),
            estimate: est_s.map(Dur::from_secs),
            user: 0,
            priority: 0,
        }
    }
    fn running(id: u64, node: u32, cpus: u64, end_s: Option<u64>) -> RunningTask {
        RunningTask {
            id: TaskId(id),
            node: NodeId(node),
            request: Resources::cpus(cpus, 0),
            start: Time::ZERO,
            expected_end: end_s.map(Time::from_secs),
            user: 0,
        }
    }
    /// (task id, node id) of every start `spec` proposes.
    fn starts(
        spec: &str,
        now_s: u64,
        nodes: &[NodeState],
        q: &[WaitingTask],
        run: &[RunningTask],
    ) -> Vec<(u64, u32)> {
        let mut p = build(spec, &BuildCtx::default()).unwrap();
        let snap = Snapshot::new(Time::from_secs(now_s), nodes, q, run);
        let mut out = Vec::new();
        p.decide(&snap, &mut out);
        let v = llmchain_core::Validator::new().check(&snap, &out);
        assert!(v.rejected.is_empty(), "{spec}: {:?}", v.rejected);
        out.iter()
            .map(|d| match d {
                Decision::Start { task, node } => (task.0, node.0),
                _ => unreachable!(),
            })
            .collect()
    }
    fn ids(v: Vec<(u64, u32)>) -> Vec<u64> {
        v.into_iter().map(|(t, _)| t).collect()
    }

    /// One 10-CPU node, 6 CPUs held until t=100 s, 4 free, now = 10 s.
    /// Queue (FCFS order): t1 9 CPUs/50 s, t2 2 CPUs/20 s, t3 2 CPUs/200 s, t4 1 CPU/unknown.
    fn case_a() -> (Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>) {
        (
            vec![node(0, 10, 4)],
            vec![
                task(1, 9, Some(50)),
                task(2, 2, Some(20)),
                task(3, 2, Some(200)),
                task(4, 1, None),
            ],
            vec![running(100, 0, 6, Some(100))],
        )
    }

    /// The order `queue_order` reports, and its description.
    fn order_of(spec: &str, q: &[WaitingTask], n: &[NodeState]) -> (Vec<u64>, String) {
        let mut p = build(spec, &BuildCtx::default()).unwrap();
        let snap = Snapshot::new(Time::from_secs(10), n, q, &[]);
        let mut out = Vec::new();
        let how = p.queue_order(&snap, &mut out).expect("an order");
        (out.into_iter().map(|t| t.0).collect(), how)
    }

    #[test]
    fn queue_order_follows_the_ordering_not_submission() {
        let (n, q, _) = case_a();
        // SJF: t2 (20 s), t1 (50 s), t3 (200 s), then t4 (no estimate sorts last).
        let (o, how) = order_of("sjf+easy", &q, &n);
        assert_eq!(o, vec![2, 1, 3, 4]);
        assert!(how.contains("`sjf`") && how.contains("EASY"), "{how}");
        // FCFS (the Fcfs template and the FCFS ordering in a mode): submission order.
        assert_eq!(order_of("fcfs", &q, &n).0, vec![1, 2, 3, 4]);
        assert_eq!(order_of("fcfs+greedy", &q, &n).0, vec![1, 2, 3, 4]);
    }

    #[test]
    fn random_preview_leaves_the_next_decision_alone() {
        let n = vec![node(0, 10, 2)];
        let q: Vec<WaitingTask> = (1..=8).map(|i| task(i, 1, Some(10))).collect();
        let snap = Snapshot::new(Time::from_secs(10), &n, &q, &[]);
        let decide = |peek: bool| {
            let mut p = build("random", &BuildCtx { seed: 7 }).unwrap();
            let mut shown = Vec::new();
            if peek {
                p.queue_order(&snap, &mut shown).unwrap();
            }
            let mut out = Vec::new();
            p.decide(&snap, &mut out);
            (out, shown)
        };
        let (plain, _) = decide(false);
        let (after_peek, shown) = decide(true);
        assert_eq!(plain, after_peek, "previewing changed the decision");
        // The preview shows the order the decision used: its first two picks.
        let picked: Vec<TaskId> = plain.iter().map(|d| d.task()).collect();
        assert_eq!(picked, shown[..2].to_vec());
    }

    #[test]
    fn strict_blocks_behind_the_head() {
        let (n, q, r) = case_a();
        assert_eq!(ids(starts("fcfs", 10, &n, &q, &r)), Vec::<u64>::new());
        assert_eq!(
            ids(starts("fcfs+strict", 10, &n, &q, &r)),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn greedy_starts_whatever_fits() {
        // t1 does not fit; t2 (2) and t3 (2) use the 4 free CPUs; t4 no longer fits.
        let (n, q, r) = case_a();
        assert_eq!(ids(starts("fcfs+greedy", 10, &n, &q, &r)), vec![2, 3]);
    }

    #[test]
    fn easy_backfills_short_job_but_not_one_that_delays_the_reservation() {
        // Head t1 (9 CPUs): at t=100 s the node has 10 free → shadow 100 s, extra 1 CPU.
        // t2 ends at 10+20 = 30 s ≤ 100 s → backfills (free 4 → 2).
        // t3 ends at 210 s > 100 s and needs 2 > 1 extra → must NOT start (it would delay t1).
        // t4 has no estimate → only into extra: 1 CPU ≤ 1 extra → starts.
        let (n, q, r) = case_a();
        assert_eq!(ids(starts("fcfs+easy", 10, &n, &q, &r)), vec![2, 4]);
    }

    #[test]
    fn cons_reserves_for_everyone() {
        // Profile: 4 free on [10,100), 10 from 100. t1 reserved [100,150) → 1 free there.
        // t2 fits [10,30) now → starts. t3 needs 2 on [10,210) but only 1 on [100,150)
        // → reserved from 150. t4 (1 CPU, forever) fits every step from now → starts.
        let (n, q, r) = case_a();
        assert_eq!(ids(starts("fcfs+cons", 10, &n, &q, &r)), vec![2, 4]);
    }

    #[test]
    fn cons_protects_the_second_task_where_easy_does_not() {
        // 10-CPU node, 6 held until 100 s, now 0. Queue: a 8 CPUs/10 s, b 9 CPUs/10 s, c 2 CPUs/150 s.
        // EASY: head a, shadow 100 s, extra 2 → c (ends 150 s) fits the extra → starts,
        //       although it then delays b (which needs 9 at 110 s).
        // Cons: a on [100,110), b on [110,120) (1 CPU left there) → c (2 CPUs over [0,150)) waits.
        let n = [node(0, 10, 4)];
        let q = [
            task(1, 8, Some(10)),
            task(2, 9, Some(10)),
            task(3, 2, Some(150)),
        ];
        let r = [running(100, 0, 6, Some(100))];
        assert_eq!(ids(starts("fcfs+easy", 0, &n, &q, &r)), vec![3]);
        assert_eq!(ids(starts("fcfs+cons", 0, &n, &q, &r)), Vec::<u64>::new());
    }

    #[test]
    fn easy_reserves_on_the_earliest_node_and_backfills_elsewhere() {
        // n0: 4 CPUs, 1 free, 3 held until 50 s. n1: 4 CPUs, 2 free, 2 held until 20 s. now 0.
        // Head h (4 CPUs): n0 shadow 50, n1 shadow 20 → reserved on n1 at 20 s, extra 0.
        // x (1 CPU/100 s) fits n0, which the reservation does not touch → starts on n0.
        // y (2 CPUs/100 s): n0 full now; n1 is reserved and y ends after 20 s → waits.
        // z (2 CPUs/5 s) ends by 20 s → starts on n1.
        let n = [node(0, 4, 1), node(1, 4, 2)];
        let q = [
            task(1, 4, Some(10)),
            task(2, 1, Some(100)),
            task(3, 2, Some(100)),
            task(4, 2, Some(5)),
        ];
        let r = [running(100, 0, 3, Some(50)), running(101, 1, 2, Some(20))];
        assert_eq!(starts("fcfs+easy", 0, &n, &q, &r), vec![(2, 0), (4, 1)]);
    }

    #[test]
    fn overdue_running_task_is_assumed_to_end_now_plus_1ms() {
        // 4-CPU node, 3 CPUs held by a task expected to end at 5 s; now 10 s (overdue).
        // Head h needs 4 → shadow = 10.001 s, extra 0. s (1 CPU/1 s) would end after
        // the shadow and there is no extra → not started under EASY; greedy starts it.
        let n = [node(0, 4, 1)];
        let q = [task(1, 4, Some(10)), task(2, 1, Some(1))];
        let r = [running(100, 0, 3, Some(5))];
        assert_eq!(ids(starts("fcfs+easy", 10, &n, &q, &r)), Vec::<u64>::new());
        assert_eq!(ids(starts("fcfs+greedy", 10, &n, &q, &r)), vec![2]);
        // Same with a running task that has no estimate at all.
        let r = [running(100, 0, 3, None)];
        assert_eq!(ids(starts("fcfs+easy", 10, &n, &q, &r)), Vec::<u64>::new());
    }

    #[test]
    fn sjf_easy_uses_sjf_order_for_head_and_backfill() {
        // 10-CPU node, 4 free, 6 held until 100 s. SJF order: b (5 s), a (50 s), c (500 s).
        // b (6 CPUs) is the head: shadow 100, extra 4. a (3 CPUs) ends 50 ≤ 100 → starts.
        // c (1 CPU, 500 s) → extra 4 ≥ 1 → starts.
        let n = [node(0, 10, 4)];
        let q = [
            task(1, 3, Some(50)),
            task(2, 6, Some(5)),
            task(3, 1, Some(500)),
        ];
        let r = [running(100, 0, 6, Some(100))];
        assert_eq!(ids(starts("sjf+easy", 0, &n, &q, &r)), vec![1, 3]);
        assert_eq!(ids(starts("sjf", 0, &n, &q, &r)), Vec::<u64>::new());
    }

    #[test]
    fn packer_greedy_rescores_after_each_start() {
        // Node cap (10 CPU, 10 mem) all free. a (5,1), b (1,5), c (5,5).
        // Alignments: a 0.6, b 0.6, c 1.0 → c. Then free (5,5): a 0.3, b 0.3 → a (earlier).
        // Then free (0,4): b does not fit.
        let cap = Resources::cpus(10, 10);
        let n = [NodeState {
            id: NodeId(0),
            capacity: cap,
            free: cap,
        }];
        let mk = |id, c, m| WaitingTask {
            request: Resources::cpus(c, m),
            ..task(id, 0, None)
        };
        let q = [mk(1, 5, 1), mk(2, 1, 5), mk(3, 5, 5)];
        assert_eq!(ids(starts("packer", 0, &n, &q, &[])), vec![3, 1]);
        let _ = PackerOrder;
    }

    #[test]
    fn placement_aware_orderings_choose_the_node() {
        // n0 has 2 of 8 CPUs free, n1 all 8. A 2-CPU task: packer → n1 (alignment
        // 0.25 vs 0.0625); best-fit → n0 (leaves 0); fcfs first-fit → n0.
        let n = [node(0, 8, 2), node(1, 8, 8)];
        let q = [task(1, 2, Some(10))];
        assert_eq!(starts("packer", 0, &n, &q, &[]), vec![(1, 1)]);
        assert_eq!(starts("tetris:knob=1", 0, &n, &q, &[]), vec![(1, 1)]);
        assert_eq!(starts("bestfit", 0, &n, &q, &[]), vec![(1, 0)]);
        assert_eq!(starts("fcfs", 0, &n, &q, &[]), vec![(1, 0)]);
        let _ = BestFitOrder;
    }

    #[test]
    fn drf_greedy_is_progressive_filling() {
        // 10 CPUs free. u1: a (3), b (3); u2: c (1), d (1); FCFS order a, b, c, d.
        // Shares 0/0 → a (u1 → 0.3); u2 0 → c (u2 → 0.1); u2 0.1 → d (0.2); then b.
        let n = [node(0, 10, 10)];
        let u = |t: WaitingTask, user| WaitingTask { user, ..t };
        let q = [
            u(task(1, 3, None), 1),
            u(task(2, 3, None), 1),
            u(task(3, 1, None), 2),
            u(task(4, 1, None), 2),
        ];
        assert_eq!(ids(starts("drf", 0, &n, &q, &[])), vec![1, 3, 4, 2]);
        let _ = DrfOrder::default();
    }

    #[test]
    fn integer_score_keys_keep_the_float_order() {
        let t = task(1, 1, None);
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            3.0,
            1e300,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(
                Key::new(w[0], &t, 0).score < Key::new(w[1], &t, 0).score,
                "{w:?}"
            );
        }
        assert_eq!(
            Key::new(f64::NAN, &t, 0).score,
            Key::new(f64::INFINITY, &t, 0).score
        );
    }

    #[test]
    fn strict_selection_then_sort_keeps_the_priority_order() {
        // 40 one-CPU tasks with scrambled estimates; more starts than
        // SELECT_LIMIT, so strict switches from selection to sorting midway.
        let q: Vec<_> = (0..40)
            .map(|i| task(i, 1, Some(1 + (i * 37) % 41)))
            .collect();
        let mut want = q.clone();
        want.sort_by_key(|t| (t.estimate, t.submit, t.id));
        let want: Vec<u64> = want.iter().map(|t| t.id.0).collect();
        assert_eq!(ids(starts("sjf", 0, &[node(0, 100, 100)], &q, &[])), want);
        // 30 free CPUs: the first 30 in SJF order start, then a 2-CPU task at
        // the front of the rest would not matter — all remaining need 1 CPU.
        assert_eq!(
            ids(starts("sjf", 0, &[node(0, 100, 30)], &q, &[])),
            want[..30].to_vec()
        );
        // EASY and greedy agree here (everything is 1 CPU).
        assert_eq!(
            ids(starts("sjf+easy", 0, &[node(0, 100, 30)], &q, &[])),
            want[..30].to_vec()
        );
        assert_eq!(
            ids(starts("sjf+greedy", 0, &[node(0, 100, 30)], &q, &[])),
            want[..30].to_vec()
        );
    }

    #[test]
    fn strict_generic_fcfs_matches_the_template() {
        let (n, q, r) = case_a();
        let mut g = Scheduler::new(FcfsOrder, Mode::Strict);
        let snap = Snapshot::new(Time::from_secs(10), &n, &q, &r);
        let mut out = Vec::new();
        g.decide(&snap, &mut out);
        assert!(out.is_empty());
        assert_eq!(g.name(), "fcfs");
    }

    #[test]
    fn cons_depth_bound_still_starts_what_fits_now() {
        // More tasks than CONS_DEPTH that cannot start, then one that fits now and
        // ends before anything is reserved: it starts although it has no reservation.
        let n = [node(0, 10, 1)];
        let mut q: Vec<_> = (0..CONS_DEPTH as u64 + 5)
            .map(|i| task(i, 10, Some(100)))
            .collect();
        q.push(task(10_000, 1, Some(1)));
        let r = [running(100_000, 0, 9, Some(50))];
        assert_eq!(ids(starts("fcfs+cons", 0, &n, &q, &r)), vec![10_000]);
    }
}
