//! Integration tests of the learning module: tiny training runs, save/load,
//! determinism, the shipped models, dataset splits.

mod helper {
    //! Fixtures: repository paths and a tiny training configuration.
    use std::path::PathBuf;

    use llmchain_learn::lm::LmShape;
    use llmchain_learn::TrainConfig;

    /// The repository root (two levels above this crate).
    pub fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// A trace under `data/traces/`, which must exist.
    pub fn trace(name: &str) -> String {
        let p = repo().join("data/traces").join(name);
        assert!(
            p.is_file(),
            "{} is missing: the traces ship with the repository (data/traces/)",
            p.display()
        );
        p.display().to_string()
    }

    /// A training run that takes about a second.
    pub fn tiny(seed: u64) -> TrainConfig {
        TrainConfig {
            name: "tiny".into(),
            seed,
            shape: LmShape {
                d: 8,
                latents: 2,
                ffn: 16,
                max_queue: 64,
            },
            sources: vec![format!("swf:{}", trace("lublin_256.swf"))],
            window: 96,
            max_windows: 3,
            val_every: 3,
            epochs: 4,
            batch: 32,
            lr: 1e-2,
            rl_iters: 2,
            rl_samples: 2,
            max_samples: 400,
            threads: 1,
            ..TrainConfig::default()
        }
    }
}

use llmchain_core::{Decision, Policy, Snapshot, Validator};
use llmchain_learn::lm::train::{load_source, plan_splits};
use llmchain_learn::runtime::RuntimePredictor;
use llmchain_learn::{load_by_name, models_dir, train_sched_lm, LoadedModel, SchedLm, TrainConfig};
use llmchain_policy::Mode;
use llmchain_sim::{sample, SimConfig};

#[test]
fn tiny_training_run_reduces_the_loss() {
    let t = train_sched_lm(&helper::tiny(1), None).unwrap();
    let imit: Vec<_> = t.curve.iter().filter(|c| c.phase == "imitation").collect();
    let (first, last) = (imit.first().unwrap(), imit.last().unwrap());
    assert!(
        last.train_loss < first.train_loss * 0.9,
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(
        last.val < first.val,
        "validation loss {} -> {}",
        first.val,
        last.val
    );
    assert!(t.card.metrics["train_decision_points"] > 50.0);
}

#[test]
fn training_is_deterministic_with_a_fixed_seed() {
    let a = train_sched_lm(&helper::tiny(3), None).unwrap();
    let b = train_sched_lm(&helper::tiny(3), None).unwrap();
    assert_eq!(
        a.model.weights(),
        b.model.weights(),
        "same seed, one thread: identical weights"
    );
    let c = train_sched_lm(&helper::tiny(4), None).unwrap();
    assert_ne!(
        a.model.weights(),
        c.model.weights(),
        "another seed gives other weights"
    );
}

/// Start times of every task when `p` runs the first evaluation window of Lublin-1.
fn schedule(p: &mut dyn Policy) -> Vec<Option<llmchain_core::Time>> {
    let w = load_source(&format!("swf:{}", helper::trace("lublin_256.swf")), 0).unwrap();
    let win = &sample(&w, 1, 300, 5).unwrap()[0];
    let r = llmchain_sim::run(win, p, &SimConfig::default()).unwrap();
    assert_eq!(r.metrics.rejected, 0, "{} made invalid proposals", p.name());
    r.tasks.iter().map(|t| t.start).collect()
}

#[test]
fn save_then_load_gives_identical_decisions() {
    let t = train_sched_lm(&helper::tiny(2), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    t.model.save(dir.path()).unwrap();
    let loaded = SchedLm::load(dir.path()).unwrap();
    assert_eq!(loaded.weights(), t.model.weights());
    let (a, b) = (&loaded.card, &t.model.card);
    assert_eq!(
        (&a.name, &a.kind, a.seed, &a.config, &a.shape, &a.data),
        (&b.name, &b.kind, b.seed, &b.config, &b.shape, &b.data)
    );
    for (k, v) in &b.metrics {
        assert!(
            (a.metrics[k] - v).abs() <= 1e-12 * v.abs().max(1.0),
            "metric {k}: {} vs {v}",
            a.metrics[k]
        );
    }
    for mode in [Mode::Easy, Mode::Strict] {
        assert_eq!(
            schedule(&mut t.model.policy(mode)),
            schedule(&mut loaded.policy(mode)),
            "{mode}"
        );
    }
    // A corrupt weight file is refused with its path.
    std::fs::write(dir.path().join("weights.safetensors"), b"not safetensors").unwrap();
    let err = SchedLm::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("weights.safetensors"), "{err}");
}

/// Checks every proposal of the wrapped policy with the Validator.
struct Checked<P: Policy>(P, usize);
impl<P: Policy> Policy for Checked<P> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.0.decide(snap, out);
        let v = Validator::new().check(snap, out);
        assert!(v.rejected.is_empty(), "rejected: {:?}", v.rejected);
        self.1 += out.len();
    }
}

#[test]
fn shipped_model_loads_and_its_decisions_always_pass_the_validator() {
    let root = models_dir();
    let m = match load_by_name(&root, "sched-lm") {
        Ok(LoadedModel::SchedLm(m)) => m,
        Ok(_) => panic!("models/sched-lm is not a scheduling LM"),
        Err(e) => panic!(
            "the shipped model is missing ({e}); train it with \
             `cargo run --release -p llmchain-learn --example learn -- train models/sched-lm/train.json models/sched-lm`"
        ),
    };
    assert!(m.card.data.train.iter().all(|r| r.end > r.start));
    // The copy compiled into the binary is the same model.
    let e = SchedLm::embedded().unwrap();
    assert_eq!(
        e.weights(),
        m.weights(),
        "models/sched-lm changed since this binary was built: rebuild"
    );
    assert_eq!(
        llmchain_learn::default_policy().unwrap().name(),
        "lm:sched-lm+easy"
    );
    for mode in [Mode::Easy, Mode::Strict, Mode::Cons] {
        let mut p = Checked(m.policy(mode), 0);
        let starts = schedule(&mut p);
        assert!(
            starts.iter().all(|s| s.is_some()),
            "every task started under {mode}"
        );
        assert!(p.1 >= starts.len());
    }
    // DeepRM (two resources) too.
    let w = load_source("deeprm:load=1.1,jobs=200", 3).unwrap();
    let mut p = Checked(m.policy(Mode::Easy), 0);
    let r = llmchain_sim::run(&w, &mut p, &SimConfig::default()).unwrap();
    assert_eq!((r.metrics.rejected, r.metrics.completed), (0, 200));
}

#[test]
fn shipped_runtime_predictor_loads_and_predicts_within_bounds() {
    let dir = models_dir().join("runtime-hpc2n");
    let p = RuntimePredictor::load(&dir).unwrap_or_else(|e| {
        panic!("the shipped runtime predictor is missing ({e}); make it with `cargo run --release -p llmchain-learn --example learn -- runtime models`")
    });
    let jobs = llmchain_learn::runtime::read_swf_jobs(std::path::Path::new(&helper::trace(
        "alea-hpc2n-excerpt.swf",
    )))
    .unwrap();
    let (feats, _) = llmchain_learn::runtime::trace_features(&jobs);
    for (j, f) in jobs.iter().zip(&feats).skip(2000).take(200) {
        let s = p.predict_secs(f);
        assert!(
            s >= 1.0 && (j.req_time <= 0 || s <= j.req_time as f64 + 1e-6),
            "job {}: {s}",
            j.job
        );
    }
}

#[test]
fn dataset_splits_never_overlap_evaluation_windows() {
    let cfg = TrainConfig::default();
    for name in ["lublin_256.swf", "lublin_256_new2"] {
        let spec = format!("swf:{}", helper::trace(name));
        let w = load_source(&spec, 0).unwrap();
        let s = plan_splits(&spec, &w, &cfg).unwrap();
        assert!(s.disjoint(), "{name}: {s:?}");
        assert!(
            !s.train.is_empty() && !s.validation.is_empty(),
            "{name}: {s:?}"
        );
        // Re-derive the RLScheduler windows for every excluded seed and check by hand.
        for &seed in &cfg.eval_seeds {
            for q in sample(&w, cfg.eval_sequences, cfg.eval_length, seed).unwrap() {
                let win = q.meta.window.unwrap();
                for &(a, b) in s.train.iter().chain(&s.validation) {
                    assert!(
                        b <= win.start || a >= win.start + win.len,
                        "{name}: window {a}..{b} overlaps eval {win:?}"
                    );
                }
            }
        }
    }
}
