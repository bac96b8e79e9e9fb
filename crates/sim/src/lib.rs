//! LLMChain's deterministic discrete-event simulator.
//!
//! Load a [`Workload`] ([`WorkloadSpec`] + [`load`]: SWF traces, the DeepRM
//! generator, the seed example, JSON/CSV task lists), optionally cut it into
//! sequences ([`sample()`]), [`run`] a [`llmchain_core::Policy`] over each, and
//! read the [`RunResult`]s ([`aggregate`] averages sequences).
//!
//! ```
//! use llmchain_core::{Decision, Policy, Snapshot};
//! use llmchain_sim::{load, run, SimConfig, WorkloadSpec};
//!
//! /// Start waiting tasks in id order while they fit on node 0 (no backfilling).
//! struct Fifo;
//! impl Policy for Fifo {
//!     fn name(&self) -> &str { "fifo" }
//!     fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
//!         let mut free = snap.free_vec();
//!         for t in snap.waiting {
//!             let Some(n) = Snapshot::first_fit(&t.request, &free) else { break };
//!             free[n.0 as usize] -= t.request;
//!             out.push(Decision::start(t.id, n));
//!         }
//!     }
//! }
//!
//! let w = load(&WorkloadSpec::parse("seed-example")?, 1, false)?;
//! let r = run(&w, &mut Fifo, &SimConfig::default())?;
//! assert_eq!(r.metrics.completed, 10);
//! # Ok::<(), llmchain_sim::SimError>(())
//! ```
//!
//! # Time units
//! All times are [`llmchain_core::Time`]/[`llmchain_core::Dur`]: integer
//! milliseconds. SWF seconds become `s × 1000` ms; DeepRM steps are 10 s. Metric
//! values in [`RunMetrics`] are seconds (f64) or ratios.
//!
//! # Ordering guarantees
//! * Tasks get `TaskId`s 0..n in submission order (stable sort by submit
//!   time, then source order); the waiting list a policy sees is sorted by id.
//! * Events are handled in (time, sequence) order: at each timestamp, first
//!   every completion due (in the order the tasks started), then every
//!   arrival (in id order), then **one** decision point. See [`engine`].
//! * Accepted decisions start in proposal order; rejected proposals are
//!   counted, reported to the policy and never executed.
//! * Every random draw (generators, sampling) comes from a ChaCha8 RNG seeded
//!   by the caller's seed. Results contain no wall-clock values and only
//!   ordered containers: same inputs and seed → byte-identical JSON.

pub mod deeprm;
pub mod engine;
mod error;
pub mod result;
pub mod sample;
pub mod seed_example;
pub mod spec;
pub mod swf;
pub mod tasklist;
mod workload;

pub use deeprm::DeepRmConfig;
pub use engine::{run, SimConfig};
pub use error::SimError;
pub use result::{aggregate, Aggregate, PerResource, RunMetrics, RunResult, TaskRecord, UtilPoint};
pub use sample::{sample, DEFAULT_LENGTH, DEFAULT_SEQUENCES};
pub use spec::{load, WorkloadSpec, VALID_SPECS};
pub use swf::SwfOptions;
pub use workload::{Window, Workload, WorkloadMeta};
