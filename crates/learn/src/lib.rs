//! LLMChain's learning module: the runtime predictor (performance model
//! §4.3a), the dataset pipeline, the trained scheduling language model
//! (§4.2), model cards and the registry, and evaluation.
//!
//! * [`runtime`]: gradient-boosted trees predicting run time at submit;
//!   [`runtime::PredictedEstimates`] feeds its predictions to any policy
//!   (`sjf+easy+pred`).
//! * [`lm`]: the scheduling LM — [`lm::SchedLm::load`] a model directory and
//!   use [`lm::SchedLm::policy`] as a [`llmchain_core::Policy`];
//!   [`lm::train::train_sched_lm`] trains one.
//! * [`card`]: model cards, safetensors weights, the `models/<name>/` registry.
//! * [`dataset`]: time-disjoint train / validation / test windows.
//! * [`eval`]: the RLScheduler evaluation protocol.
//! * [`progress`]: the [`Progress`] callback long runs report to (the CLI draws bars).

pub mod auto;
pub mod card;
pub mod dataset;
mod error;
pub mod eval;
pub mod gbt;
pub mod lm;
pub mod progress;
pub mod runtime;

pub use card::{load_by_name, models_dir, LoadedModel, ModelCard};
pub use error::LearnError;
pub use lm::train::{train_sched_lm, train_sched_lm_with, TrainConfig, TrainMode};
pub use lm::{default_policy, SchedLm};
pub use progress::{NoProgress, Progress};
