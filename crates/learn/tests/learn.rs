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
use llmchain_learn::progress::RecordProgress;
use llmchain_learn::runtime::RuntimePredictor;
use llmchain_learn::{
    load_by_name, models_dir, train_sched_lm, train_sched_lm_with, LoadedModel, SchedLm,
    TrainConfig,
};
use llmchain_policy::Mode;
use llmchain_sim::{sample, SimConfig};

#[test]
fn tiny_training_run_reduces_the_loss() {
    let cfg = helper::tiny(1);
    let mut rec = RecordProgress::default();
    let t = train_sched_lm_with(&cfg, None, &mut rec).unwrap();
    // The progress callback saw every phase, in order, with steps up to each total.
    let names: Vec<&str> = rec.phases.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["teacher rollouts", "imitation", "policy gradient"]);
    for (i, (name, total)) in rec.phases.iter().enumerate() {
        let done: Vec<u64> = rec.steps.iter().filter(|s| s.0 == i).map(|s| s.1).collect();
        assert_eq!(done.last(), Some(total), "{name}: steps {done:?}");
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{name}: {done:?}");
    }
    let imit_steps = rec.phases[1].1;
    let batches = (t.card.metrics["train_decision_points"] as u64).div_ceil(cfg.batch as u64);
    assert_eq!(imit_steps, cfg.epochs as u64 * batches);
    assert!(rec.steps.iter().any(|s| s.2.starts_with("epoch 4/4 loss")));
    assert_eq!(rec.phases[2].1, cfg.rl_iters as u64);
    assert_eq!(rec.finished.len(), 3);
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
    let plain = TrainConfig::default();
    // Strided extra training windows too (they overlap each other only).
    let strided = TrainConfig {
        stride: 64,
        ..TrainConfig::default()
    };
    for (name, cfg) in [
        ("lublin_256.swf", &plain),
        ("lublin_256_new2", &plain),
        ("lublin_256.swf", &strided),
    ] {
        let spec = format!("swf:{}", helper::trace(name));
        let w = load_source(&spec, 0).unwrap();
        let s = plan_splits(&spec, &w, cfg).unwrap();
        if cfg.stride > 0 {
            let base = plan_splits(&spec, &w, &plain).unwrap();
            assert!(s.train.len() > base.train.len(), "{s:?}");
            assert_eq!(s.validation, base.validation);
        }
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

#[test]
fn evaluation_reports_one_progress_step_per_run() {
    let cfg = llmchain_learn::eval::EvalConfig {
        workload: "deeprm:load=0.7,jobs=400".into(),
        sequences: 3,
        length: 100,
        seed: 1,
        policies: vec!["sjf".into(), "packer".into()],
    };
    let mut rec = RecordProgress::default();
    let r = llmchain_learn::eval::eval_with(&cfg, &models_dir(), &mut rec).unwrap();
    assert_eq!(r.rows.len(), 2);
    assert_eq!(rec.phases, vec![("evaluation".to_string(), 6)]);
    let done: Vec<u64> = rec.steps.iter().map(|s| s.1).collect();
    assert_eq!(done, [1, 2, 3, 4, 5, 6]);
    assert_eq!(rec.finished.len(), 1);
}

// ---------------------------------------------------------------- kernel:auto selector

mod auto_helper {
    //! A selector trained in about a second.
    use llmchain_learn::auto::AutoTrainConfig;
    use llmchain_learn::gbt::GbtConfig;

    pub fn tiny_auto() -> AutoTrainConfig {
        AutoTrainConfig {
            name: "tiny-auto".into(),
            sources: vec![format!("swf:{}", super::helper::trace("lublin_256.swf"))],
            candidates: vec!["fcfs+easy".into(), "sjf+easy".into(), "f1+easy".into()],
            window: 32,
            segment: 96,
            scripts: 2,
            max_segments: 2,
            gbt: GbtConfig {
                trees: 12,
                depth: 2,
                learning_rate: 0.3,
                min_leaf: 1,
                bins: 16,
                l2: 0.5,
            },
            threads: 1,
            evaluate: false,
            ..AutoTrainConfig::default()
        }
    }
}

/// A Lublin-1 window the tiny selector was not trained on.
fn auto_window() -> llmchain_sim::Workload {
    let w = load_source(&format!("swf:{}", helper::trace("lublin_256.swf")), 0).unwrap();
    llmchain_sim::sample::window(&w, 0, 4000, 320, 0)
}

#[test]
fn auto_model_save_then_load_gives_identical_choices() {
    use llmchain_learn::auto::{train_auto, AutoConfig, AutoModel, AutoPolicy};
    let cfg = auto_helper::tiny_auto();
    let t = train_auto(&cfg, None, &|_| {}).unwrap();
    // segments x scripts x windows (a window whose start coincides with the
    // previous one's decision point has no row).
    assert!(
        (8..=2 * 2 * 3).contains(&t.samples.len()),
        "{}",
        t.samples.len()
    );
    assert!(t
        .samples
        .iter()
        .all(|s| s.target.len() == 3 && s.target.iter().all(|y| *y >= 0.0)));
    // Training ranges never overlap the evaluation windows of the same source.
    for a in &t.model.card.data.train {
        for b in &t.model.card.data.test {
            assert!(a.end <= b.start || b.end <= a.start, "{a:?} overlaps {b:?}");
        }
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sel");
    t.model.save(&dir).unwrap();
    let loaded = AutoModel::load(&dir).unwrap();
    assert_eq!(loaded.gbts, t.model.gbts);
    assert_eq!(
        (&loaded.candidates, loaded.window),
        (&t.model.candidates, 32)
    );
    assert_eq!(loaded.switch_margin, t.model.switch_margin);
    // Loadable by name through the registry.
    match load_by_name(root.path(), "sel") {
        Ok(LoadedModel::AutoSelect(m)) => assert_eq!(m.gbts, t.model.gbts),
        other => panic!("not loaded as a selector: {:?}", other.err()),
    }
    let w = auto_window();
    let run = |m: AutoModel| {
        let mut p = AutoPolicy::new(m, AutoConfig::default(), &models_dir()).unwrap();
        let r = llmchain_sim::run(&w, &mut p, &SimConfig::default()).unwrap();
        let starts: Vec<_> = r.tasks.iter().map(|t| t.start).collect();
        (p.choices().to_vec(), starts)
    };
    let (a, b) = (run(t.model.clone()), run(loaded));
    assert!(
        (8..=10).contains(&a.0.len()),
        "320 arrivals / 32 per window: {}",
        a.0.len()
    );
    assert_eq!(a, b, "same choices and schedule after save -> load");
    // A corrupt weight file is refused with its path.
    std::fs::write(dir.join("weights.safetensors"), b"garbage").unwrap();
    let e = AutoModel::load(&dir).unwrap_err().to_string();
    assert!(e.contains("weights.safetensors"), "{e}");
}

#[test]
fn auto_policy_decisions_always_pass_the_validator() {
    use llmchain_learn::auto::{AutoConfig, AutoPolicy};
    let t = llmchain_learn::auto::train_auto(&auto_helper::tiny_auto(), None, &|_| {}).unwrap();
    let w = auto_window();
    for cfg in [
        AutoConfig {
            window: 8,
            seconds: 0,
        },
        AutoConfig {
            window: 0,
            seconds: 3600,
        },
    ] {
        let p = AutoPolicy::new(t.model.clone(), cfg.clone(), &models_dir()).unwrap();
        let mut c = Checked(p, 0);
        let r = llmchain_sim::run(&w, &mut c, &SimConfig::default()).unwrap();
        assert_eq!(
            (r.metrics.rejected, r.metrics.completed),
            (0, 320),
            "{cfg:?}"
        );
        let p = &c.0;
        let s = p.stats();
        assert_eq!(s.model_calls as usize, p.choices().len());
        assert!(
            p.choices().len() >= 5,
            "{cfg:?}: {} windows",
            p.choices().len()
        );
        assert!(p.choices().windows(2).all(|x| x[0].window < x[1].window));
        // Every switch is a change between consecutive window choices.
        let changes = p
            .choices()
            .windows(2)
            .filter(|x| x[0].chosen != x[1].chosen)
            .count();
        assert_eq!(p.switches().len(), changes);
        assert!(p
            .choices()
            .iter()
            .all(|c| c.predicted.len() == 3 && c.features.len() == llmchain_learn::auto::NF));
    }
}

#[test]
fn shipped_auto_model_loads_and_runs() {
    use llmchain_learn::auto::{AutoConfig, AutoModel, AutoPolicy, MODEL_NAME};
    let m = AutoModel::load_by_name(&models_dir(), MODEL_NAME).unwrap_or_else(|e| {
        panic!("the shipped selector is missing ({e}); make it with `llmchain train auto` (see models/README.md)")
    });
    assert_eq!(m.candidates, llmchain_learn::auto::default_candidates());
    assert!(!m.card.data.train.is_empty() && !m.card.data.test.is_empty());
    for a in &m.card.data.train {
        for b in m.card.data.test.iter().filter(|b| b.source == a.source) {
            assert!(a.end <= b.start || b.end <= a.start, "{a:?} overlaps {b:?}");
        }
    }
    let mut c = Checked(
        AutoPolicy::new(m, AutoConfig::default(), &models_dir()).unwrap(),
        0,
    );
    let w = auto_window();
    let r = llmchain_sim::run(&w, &mut c, &SimConfig::default()).unwrap();
    assert_eq!((r.metrics.rejected, r.metrics.completed), (0, 320));
    assert!(!c.0.choices().is_empty());
}

#[test]
fn generated_sources_refuse_an_evaluation_seed() {
    let spec = "deeprm:load=1.1,jobs=300";
    let mut cfg = TrainConfig {
        sources: vec![spec.into()],
        seed: 1,
        eval_seeds: vec![1],
        ..TrainConfig::default()
    };
    let w = load_source(spec, cfg.seed).unwrap();
    let err = plan_splits(spec, &w, &cfg).unwrap_err().to_string();
    assert!(err.contains("seed") && err.contains(spec), "{err}");
    cfg.seed = 7;
    let s = plan_splits(spec, &w, &cfg).unwrap();
    assert!(s.disjoint() && !s.train.is_empty());
}

#[test]
fn greedy_training_on_deeprm_imitates_the_started_tasks() {
    let cfg = TrainConfig {
        sources: vec!["deeprm:load=1.1,jobs=800".into()],
        eval_length: 200,
        window: 100,
        margin: 0,
        teachers: vec!["sjf".into(), "packer".into(), "tetris:knob=0.2".into()],
        mode: "greedy".into(),
        strict_too: false,
        rl_iters: 1,
        ..helper::tiny(5)
    };
    let t = train_sched_lm(&cfg, None).unwrap();
    let imit: Vec<_> = t.curve.iter().filter(|c| c.phase == "imitation").collect();
    assert!(
        imit.last().unwrap().train_loss < imit[0].train_loss,
        "{imit:?}"
    );
    for key in [
        "val_bsld_greedy_after_imitation",
        "val_bsld_greedy_best_teacher",
    ] {
        assert!(t.card.metrics.contains_key(key), "{:?}", t.card.metrics);
    }
    assert!(t
        .card
        .data
        .notes
        .iter()
        .any(|n| n.contains("generated with seed")));
    // A bad mode or teacher is refused by name.
    let bad = TrainConfig {
        mode: "cons".into(),
        ..cfg.clone()
    };
    let err = train_sched_lm(&bad, None).unwrap_err().to_string();
    assert!(err.contains("mode"), "{err}");
    let bad = TrainConfig {
        teachers: vec!["tetris:knob=2".into()],
        ..cfg
    };
    let err = train_sched_lm(&bad, None).unwrap_err().to_string();
    assert!(err.contains("tetris:knob=2"), "{err}");
}

#[test]
fn shipped_deeprm_model_loads_and_its_decisions_always_pass_the_validator() {
    let m = match load_by_name(&models_dir(), "sched-lm-deeprm") {
        Ok(LoadedModel::SchedLm(m)) => m,
        Ok(_) => panic!("models/sched-lm-deeprm is not a scheduling LM"),
        Err(e) => panic!(
            "the shipped DeepRM model is missing ({e}); train it with \
             `cargo run --release -p llmchain-learn --example learn -- train models/sched-lm-deeprm/train.json models/sched-lm-deeprm`"
        ),
    };
    // Trained only on generated workloads whose seed no evaluation uses.
    let cfg: TrainConfig = serde_json::from_value(m.card.config.clone()).unwrap();
    assert!(cfg.sources.iter().all(|s| s.starts_with("deeprm:")));
    assert!(!cfg.eval_seeds.contains(&cfg.seed));
    for mode in [Mode::Easy, Mode::Greedy] {
        let w = load_source("deeprm:load=1.3,jobs=300", 11).unwrap();
        let mut p = Checked(m.policy(mode), 0);
        let r = llmchain_sim::run(&w, &mut p, &SimConfig::default()).unwrap();
        assert_eq!(
            (r.metrics.rejected, r.metrics.completed),
            (0, 300),
            "{mode}"
        );
    }
}

#[test]
fn predicted_estimates_explain_in_the_order_they_decide() {
    use llmchain_core::{
        Dur, ExitStatus, NodeId, NodeState, Outcome, Resources, TaskId, Time, WaitingTask,
    };
    use llmchain_learn::runtime::{EstimateSource, PredictedEstimates};
    let inner = llmchain_policy::build("sjf", &llmchain_policy::BuildCtx { seed: 1 }).unwrap();
    let mut p = PredictedEstimates::from_snapshots(inner, EstimateSource::Last2);
    let cap = Resources::cpus(4, 16);
    let nodes = [NodeState {
        id: NodeId(0),
        capacity: cap,
        free: Resources::cpus(0, 16),
    }];
    let task = |id: u64, user: u32, req_s: u64| WaitingTask {
        id: TaskId(id),
        submit: Time(0),
        request: Resources::cpus(4, 1),
        estimate: Some(Dur(req_s * 1000)),
        user,
        priority: 0,
    };
    // User 1 asks for 1000 s but ran 10 s twice; user 2 asks for 100 s and has no history.
    let first = [task(0, 1, 1000), task(1, 1, 1000)];
    let mut out = Vec::new();
    p.decide(&Snapshot::new(Time(0), &nodes, &first, &[]), &mut out);
    for t in &first {
        p.feedback(&Outcome {
            task: t.id,
            node: NodeId(0),
            user: t.user,
            request: t.request,
            estimate: t.estimate,
            submit: Time(0),
            start: Time(0),
            end: Time(10_000),
            status: ExitStatus::Completed,
        });
    }
    let waiting = [task(2, 2, 100), task(3, 1, 1000)];
    let snap = Snapshot::new(Time(20_000), &nodes, &waiting, &[]);
    let mut order = Vec::new();
    let label = p
        .queue_order(&snap, &mut order)
        .expect("sjf keeps an order");
    assert!(label.ends_with("on predicted runtimes"), "{label}");
    // On requests SJF would put task 2 first; on last-two estimates task 3 (10 s) leads.
    assert_eq!(order, [TaskId(3), TaskId(2)], "{label}");
    let free = [NodeState {
        free: cap,
        ..nodes[0]
    }];
    let mut out = Vec::new();
    p.decide(&Snapshot::new(Time(20_000), &free, &waiting, &[]), &mut out);
    assert_eq!(out.first().map(|d| d.task()), Some(TaskId(3)), "{out:?}");
}

#[test]
fn commit_mode_training_with_dagger_runs_end_to_end() {
    use llmchain_learn::TrainMode;
    assert_eq!(
        TrainMode::parse("Commit-Easy"),
        Some(TrainMode::Commit { easy: true })
    );
    assert_eq!(TrainMode::parse("commit").unwrap().to_string(), "commit");
    assert_eq!(TrainMode::parse("cons"), None);
    let cfg = TrainConfig {
        mode: "commit-easy".into(),
        dagger_rounds: 1,
        rl_iters: 1,
        ..helper::tiny(6)
    };
    let mut rec = RecordProgress::default();
    let t = train_sched_lm_with(&cfg, None, &mut rec).unwrap();
    let names: Vec<&str> = rec.phases.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "teacher rollouts",
            "imitation",
            "DAgger round 1: model rollouts",
            "DAgger round 1",
            "policy gradient"
        ]
    );
    for key in [
        "val_bsld_commit-easy_after_imitation",
        "val_bsld_commit-easy_after_dagger_1",
        "val_bsld_commit-easy_best_teacher",
        // strict_too: the same model without backfilling, RLScheduler's plain commit.
        "val_bsld_commit",
        "val_bsld_commit_best_teacher",
    ] {
        let v = t.card.metrics.get(key).copied();
        assert!(v.is_some_and(|v| v >= 1.0), "{key}: {:?}", t.card.metrics);
    }
    assert!(
        t.card.data.notes.iter().any(|n| n.contains("commits to")),
        "{:?}",
        t.card.data.notes
    );
    // DAgger added the states the model visited to the teachers' own.
    let plain = train_sched_lm(
        &TrainConfig {
            dagger_rounds: 0,
            ..cfg.clone()
        },
        None,
    )
    .unwrap();
    assert!(
        t.card.metrics["train_decision_points"] > plain.card.metrics["train_decision_points"],
        "{} vs {}",
        t.card.metrics["train_decision_points"],
        plain.card.metrics["train_decision_points"]
    );
    let imit: Vec<_> = plain
        .curve
        .iter()
        .filter(|c| c.phase == "imitation")
        .collect();
    assert!(
        imit.last().unwrap().train_loss < imit[0].train_loss,
        "{imit:?}"
    );
    // Under RLScheduler's semantics the model's decisions pass the validator.
    for easy in [true, false] {
        let inner = t
            .model
            .boxed_policy(if easy { Mode::Easy } else { Mode::Strict });
        let mut p = Checked(llmchain_policy::Committed::new(inner, easy).unwrap(), 0);
        schedule(&mut p);
        assert!(p.1 > 0);
    }
}

#[test]
fn shipped_commit_model_loads_and_its_decisions_always_pass_the_validator() {
    let m = match load_by_name(&models_dir(), "sched-lm-commit") {
        Ok(LoadedModel::SchedLm(m)) => m,
        Ok(_) => panic!("models/sched-lm-commit is not a scheduling LM"),
        Err(e) => panic!(
            "the shipped commit-semantics model is missing ({e}); train it with \
             `cargo run --release -p llmchain-learn --example learn -- train models/sched-lm-commit/train.json models/sched-lm-commit`"
        ),
    };
    let cfg: TrainConfig = serde_json::from_value(m.card.config.clone()).unwrap();
    assert_eq!(cfg.mode, "commit-easy");
    // Its training ranges avoid the evaluation windows it is compared on.
    for spec in ["lublin_256.swf", "lublin_256_new2"] {
        let src = format!("swf:{}", helper::trace(spec));
        let w = load_source(&src, 0).unwrap();
        for win in sample(&w, cfg.eval_sequences, cfg.eval_length, 1).unwrap() {
            let r = win.meta.window.unwrap();
            let (a, b) = (r.start, r.start + r.len);
            assert!(
                m.card
                    .data
                    .train
                    .iter()
                    .chain(&m.card.data.validation)
                    .filter(|j| j.source.ends_with(spec))
                    .all(|j| j.end <= a || b <= j.start),
                "{spec}: a training range overlaps the evaluation window {a}..{b}"
            );
        }
    }
    for easy in [true, false] {
        let inner = m.boxed_policy(if easy { Mode::Easy } else { Mode::Strict });
        let mut p = Checked(llmchain_policy::Committed::new(inner, easy).unwrap(), 0);
        schedule(&mut p);
        assert!(p.1 > 0);
    }
}

#[test]
fn evaluation_builds_commit_semantics_specs() {
    use llmchain_learn::eval::build_policy;
    let root = models_dir();
    for (spec, name) in [
        ("sjf+commit-easy", "sjf+commit-easy"),
        ("F1+COMMIT", "f1+commit"),
        (
            "lm:sched-lm-commit+commit-easy",
            "lm:sched-lm-commit+commit-easy",
        ),
        (
            "lm:sched-lm-commit+strict+commit-easy",
            "lm:sched-lm-commit+strict+commit-easy",
        ),
    ] {
        let p = build_policy(spec, &root).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(p.name(), name, "{spec}");
    }
    let e = build_policy("nope+commit", &root)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn lookahead_teachers_are_never_worse_than_their_base() {
    let cfg = TrainConfig {
        mode: "commit-easy".into(),
        rl_iters: 0,
        epochs: 1,
        ..helper::tiny(8)
    };
    let plain = train_sched_lm(&cfg, None).unwrap();
    let la = train_sched_lm(
        &TrainConfig {
            lookahead: 2,
            ..cfg.clone()
        },
        None,
    )
    .unwrap();
    // The rollout algorithm keeps the base's own choice as a candidate, so the
    // improved teacher is at most as slow on every window, both modes.
    for key in [
        "val_bsld_commit-easy_best_teacher",
        "val_bsld_commit_best_teacher",
    ] {
        let (a, b) = (plain.card.metrics[key], la.card.metrics[key]);
        assert!(b <= a + 1e-9, "{key}: lookahead {b} vs base {a}");
    }
    assert!(la.card.data.notes.iter().any(|n| n.contains("lookahead")));
    // Only for the commit modes.
    let err = train_sched_lm(
        &TrainConfig {
            lookahead: 2,
            mode: "easy".into(),
            ..cfg
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lookahead") && err.contains("commit"), "{err}");
}
