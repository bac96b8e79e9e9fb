//! The trained scheduling LM as a policy: [`LmOrdering`] implements
//! [`llmchain_policy::order::Ordering`], so any [`Mode`] (strict, EASY, ...)
//! wraps it; [`SchedLm`] loads a model directory and builds the policy.

use std::path::Path;
use std::sync::{Arc, Mutex};

use llmchain_core::{Policy, Resources, Snapshot, WaitingTask};
use llmchain_policy::order::{Ordering, PlanView};
use llmchain_policy::{Mode, Scheduler};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::features::{greedy_start_prefix, start_prefix, Encoded, Encoder, Sample};
use super::infer::{LmWeights, Scratch, WeightMap};
use crate::card::ModelCard;
use crate::LearnError;

/// The shipped model's card and weights (see [`SchedLm::embedded`]).
const EMBEDDED_CARD: &str = include_str!("../../../../models/sched-lm/card.json");
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../../models/sched-lm/weights.safetensors");

/// The kernel's default fast path: the shipped scheduling LM ordering the
/// queue with EASY backfilling (`lm:sched-lm+easy`). Loads the embedded copy.
pub fn default_policy() -> Result<Box<dyn Policy + Send>, LearnError> {
    Ok(SchedLm::embedded()?.boxed_policy(Mode::Easy))
}

/// Where an [`LmOrdering`] writes the decision points it records.
pub type Recording = Arc<Mutex<Vec<Sample>>>;

/// Queue ordering by the scheduling LM's pointer logits (higher logit =
/// sooner). Tasks beyond the model's `max_queue` follow in FCFS order.
pub struct LmOrdering {
    spec: String,
    weights: Arc<LmWeights>,
    enc: Encoder,
    encoded: Encoded,
    scratch: Scratch,
    logits: Vec<f32>,
    scores: Vec<f64>,
    order: Vec<usize>,
    free: Vec<Resources>,
    noise: Option<ChaCha8Rng>,
    record: Option<(Recording, usize)>,
    greedy_prefix: bool,
}

impl LmOrdering {
    /// Greedy ordering with these weights; `spec` names it in tables.
    pub fn new(spec: impl Into<String>, weights: Arc<LmWeights>) -> Self {
        LmOrdering {
            spec: spec.into(),
            weights,
            enc: Encoder::default(),
            encoded: Encoded::default(),
            scratch: Scratch::default(),
            logits: Vec::new(),
            scores: Vec::new(),
            order: Vec::new(),
            free: Vec::new(),
            noise: None,
            record: None,
            greedy_prefix: false,
        }
    }

    /// Tell the model whether its order is used with backfilling (the
    /// cluster token's mode flag). [`SchedLm::policy`] sets it from the mode.
    pub fn backfill(mut self, on: bool) -> Self {
        self.enc.backfill = on;
        self
    }

    /// Sample orders instead (Gumbel noise on the logits = Plackett–Luce
    /// sampling from the pointer distribution), seeded.
    pub fn sampling(mut self, seed: u64) -> Self {
        self.noise = Some(ChaCha8Rng::seed_from_u64(seed));
        self
    }

    /// Record every decision point with ≥ 2 waiting tasks and its chosen
    /// start prefix (at most `k` steps) into `rec`.
    pub fn recording(mut self, rec: Recording, k: usize) -> Self {
        self.record = Some((rec, k));
        self
    }

    /// Record greedy start prefixes (every task of the order that still
    /// fits, skipping the others) instead of EASY ones, for `Mode::Greedy`.
    pub fn greedy_prefix(mut self, on: bool) -> Self {
        self.greedy_prefix = on;
        self
    }

    /// Pointer logits of the last prepared snapshot (one per token).
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }
}

impl Ordering for LmOrdering {
    fn spec(&self) -> String {
        self.spec.clone()
    }

    fn default_mode(&self) -> Mode {
        Mode::Strict
    }

    fn prepare(&mut self, snap: &Snapshot<'_>) {
        let mq = self.weights.shape().max_queue;
        self.enc.encode(snap, mq, &mut self.encoded);
        self.weights
            .scores(&self.encoded, &mut self.scratch, &mut self.logits);
        if let Some(rng) = &mut self.noise {
            for l in &mut self.logits {
                let u: f32 = rng.gen::<f32>().clamp(1e-7, 1.0 - 1e-7);
                *l += -(-u.ln()).ln();
            }
        }
        self.scores.clear();
        self.scores
            .extend((0..snap.waiting.len()).map(|i| 1e30 + i as f64));
        for (tok, &i) in self.encoded.idx.iter().enumerate() {
            self.scores[i] = -(self.logits[tok] as f64);
        }
        if let Some((rec, k)) = &self.record {
            if self.encoded.n >= 2 {
                self.order.clear();
                self.order.extend(0..self.encoded.n);
                let lg = &self.logits;
                self.order
                    .sort_by(|a, b| lg[*b].total_cmp(&lg[*a]).then(a.cmp(b)));
                let prefix = if self.greedy_prefix {
                    greedy_start_prefix(snap, &self.encoded, &self.order, *k, &mut self.free)
                } else {
                    start_prefix(snap, &self.encoded, &self.order, *k, &mut self.free)
                };
                let s = Sample {
                    n: self.encoded.n,
                    task: self.encoded.task.clone(),
                    cluster: self.encoded.cluster,
                    prefix,
                };
                rec.lock().expect("recording lock").push(s);
            }
        }
    }

    fn score(&self, _view: &PlanView<'_, '_>, idx: usize, _t: &WaitingTask) -> f64 {
        self.scores.get(idx).copied().unwrap_or(f64::INFINITY)
    }
}

/// A trained scheduling LM loaded from a model directory
/// (`card.json` + `weights.safetensors`).
#[derive(Clone, Debug)]
pub struct SchedLm {
    /// The model card.
    pub card: ModelCard,
    weights: Arc<LmWeights>,
    raw: Arc<WeightMap>,
}

impl SchedLm {
    /// Load `dir/card.json` and `dir/weights.safetensors`. Errors name the file and the problem.
    pub fn load(dir: &Path) -> Result<SchedLm, LearnError> {
        let card = ModelCard::read(dir)?;
        card.lm_shape().ok_or_else(|| LearnError::Model {
            path: dir.to_path_buf(),
            reason: format!("card kind is `{}`, not a scheduling LM", card.kind),
        })?;
        let map = crate::card::read_weights(&dir.join(crate::card::WEIGHTS_FILE))?;
        Self::from_map(card, map).map_err(|e| match e {
            LearnError::Config { reason, .. } => LearnError::Model {
                path: dir.join(crate::card::WEIGHTS_FILE),
                reason,
            },
            other => other,
        })
    }

    /// The shipped model (`models/sched-lm`), compiled into the binary so the
    /// kernel's default works offline from any directory.
    pub fn embedded() -> Result<SchedLm, LearnError> {
        let origin = Path::new("<embedded models/sched-lm>");
        let card: ModelCard =
            serde_json::from_str(EMBEDDED_CARD).map_err(|source| LearnError::Json {
                path: origin.join(crate::card::CARD_FILE),
                source,
            })?;
        let (map, _) =
            crate::card::read_buffer(&origin.join(crate::card::WEIGHTS_FILE), EMBEDDED_WEIGHTS)?;
        Self::from_map(card, map)
    }

    /// A model from a card and a weight map (names and shapes checked against the card's shape).
    pub fn from_map(card: ModelCard, map: WeightMap) -> Result<Self, LearnError> {
        let shape = card.lm_shape().ok_or_else(|| LearnError::Config {
            field: "card.shape",
            reason: format!("card kind `{}` has no scheduling LM shape", card.kind),
        })?;
        shape.validate()?;
        let w = LmWeights::from_map(shape, &map).map_err(|reason| LearnError::Config {
            field: "weights",
            reason,
        })?;
        Ok(SchedLm {
            card,
            weights: Arc::new(w),
            raw: Arc::new(map),
        })
    }

    /// Save `card.json` and `weights.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), LearnError> {
        super::train::save_sched_lm(dir, &self.card, &self.raw)
    }

    /// The weights as stored (name → shape, values).
    pub fn raw_weights(&self) -> &WeightMap {
        &self.raw
    }

    /// The inference weights.
    pub fn weights(&self) -> &Arc<LmWeights> {
        &self.weights
    }

    /// The ordering, named `lm:<model name>`.
    pub fn ordering(&self) -> LmOrdering {
        LmOrdering::new(format!("lm:{}", self.card.name), self.weights.clone())
    }

    /// The model as a policy in `mode` (`Mode::Easy`: the model picks the
    /// head, EASY backfilling fills). Named `lm:<name>` plus `+mode` unless strict.
    pub fn policy(&self, mode: Mode) -> Scheduler<LmOrdering> {
        Scheduler::new(self.ordering().backfill(mode != Mode::Strict), mode)
    }

    /// The kernel's default use: EASY backfilling around the model's order, boxed.
    pub fn boxed_policy(&self, mode: Mode) -> Box<dyn Policy + Send> {
        Box::new(self.policy(mode))
    }
}
