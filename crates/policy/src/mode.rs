//! How an ordering is turned into starts: the [`Mode`]s (strict, greedy,
//! EASY backfilling, conservative backfilling).

use std::fmt;

/// How a [`crate::Scheduler`] starts tasks from its ordering.
///
/// All modes are multi-node aware: a task runs on exactly one node, chosen
/// first-fit by node id unless the ordering prefers a placement
/// ([`crate::order::Ordering::placement`]). A task whose request exceeds
/// every node's **capacity** can never start and never blocks the queue in
/// any mode (drivers normally reject such tasks at load).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Start tasks in priority order while the next one fits; the first that
    /// does not fit blocks everything behind it (RLScheduler without
    /// backfilling).
    Strict,
    /// Start any task that fits, in priority order, until nothing fits.
    /// Orderings whose scores change with every start (Packer, Tetris,
    /// best-fit, DRF) are re-scored after each start.
    Greedy,
    /// EASY backfilling: strict until the first task that does not fit (the
    /// *head*); the head gets a reservation at the earliest time enough
    /// resources free up on some node (the *shadow time*); any later task
    /// may start now if it fits now and either ends (by its estimate) by the
    /// shadow time, or uses only resources the head will not need there
    /// (the *extra* resources), or runs on another node. See
    /// [`crate::Scheduler`] for the end-time assumptions.
    Easy,
    /// Conservative backfilling: every queued task, in priority order, gets a
    /// reservation in a profile of future free resources; a task starts now
    /// only when its reservation is now. Reservations are made for the first
    /// [`CONS_DEPTH`] tasks; later ones may only start now, and only if that
    /// disturbs no reservation.
    Cons,
}

/// How many tasks (in priority order) conservative backfilling gives a
/// reservation per decision. Bounds the profile to `1 + 2·(running + CONS_DEPTH)`
/// steps per node, so one decision costs `O(CONS_DEPTH·(running + CONS_DEPTH)
/// + queue·(running + CONS_DEPTH))` in the worst case.
pub const CONS_DEPTH: usize = 256;

impl Mode {
    /// Every mode, in the order listed in help and errors.
    pub const ALL: [Mode; 4] = [Mode::Strict, Mode::Greedy, Mode::Easy, Mode::Cons];

    /// The name used after `+` in a spec.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Greedy => "greedy",
            Mode::Easy => "easy",
            Mode::Cons => "cons",
        }
    }

    /// Parse a mode name (`conservative` is accepted for `cons`).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "strict" => Some(Mode::Strict),
            "greedy" => Some(Mode::Greedy),
            "easy" => Some(Mode::Easy),
            "cons" | "conservative" => Some(Mode::Cons),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
