//! The DeepRM synthetic workload (Mao et al., HotNets 2016), with the paper's
//! parameters (DESIGN.md "Reference setups").
//!
//! * One node with 2 resources, capacity `r` = [`DeepRmConfig::capacity`]
//!   units each: CPU (1 unit = 1 core = 1000 millicores) and memory
//!   (1 unit = 1024 MiB).
//! * Durations: 80% of jobs last 1–3 steps, 20% last 10–15 steps (uniform
//!   integers). **One step = 10 s**, so the shortest job equals the bounded
//!   slowdown bound τ and bounded slowdown equals slowdown on this workload.
//! * Demands: each job picks a dominant resource (each with probability ½);
//!   its demand there is uniform in [0.25r, 0.5r], on the other in
//!   [0.05r, 0.1r] (drawn in millicores / MiB, so demands are near-continuous).
//! * Arrivals: Bernoulli per step. Offered load per resource is
//!   `λ · E[duration] · E[demand] / r = λ · 4.1 · 0.225 = 0.9225 λ`
//!   (E\[duration\] = 0.8·2 + 0.2·12.5 = 4.1 steps; E\[demand\] = ½·0.375r + ½·0.075r
//!   = 0.225r), so `λ = load / 0.9225` jobs per step. When λ > 1 (load above
//!   0.9225) each step runs `k = ⌈λ⌉` Bernoulli trials of probability `λ/k`.
//! * Estimates: DeepRM assumes durations are known, so estimate = duration
//!   (the workload is labelled perfect-estimates).
//! * All jobs belong to user 0; the generator stops after `jobs` jobs.

use llmchain_core::{Cluster, Dur, Resources, TaskId, TaskSpec, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{SimError, Workload, WorkloadMeta};

/// Length of one DeepRM time step.
pub const STEP: Dur = Dur::from_secs(10);

/// Expected job duration in steps: 0.8·2 + 0.2·12.5.
pub const MEAN_STEPS: f64 = 4.1;

/// Expected demand per resource as a fraction of capacity: ½·0.375 + ½·0.075.
pub const MEAN_DEMAND: f64 = 0.225;

/// Generator parameters.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeepRmConfig {
    /// Target offered load per resource, 0.1 ..= 1.9.
    pub load: f64,
    /// Number of jobs to generate (default 10,000).
    pub jobs: usize,
    /// Capacity `r` per resource, in units (default 10).
    pub capacity: u64,
}

impl Default for DeepRmConfig {
    fn default() -> Self {
        DeepRmConfig {
            load: 1.0,
            jobs: 10_000,
            capacity: 10,
        }
    }
}

impl DeepRmConfig {
    /// Check the parameters are in range.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(0.1..=1.9).contains(&self.load) {
            return Err(SimError::Param {
                param: "load",
                reason: format!("{} is outside 0.1..=1.9", self.load),
            });
        }
        if self.jobs == 0 {
            return Err(SimError::Param {
                param: "jobs",
                reason: "must be at least 1".into(),
            });
        }
        if self.capacity == 0 || self.capacity > 1_000_000 {
            return Err(SimError::Param {
                param: "cap",
                reason: format!("{} is outside 1..=1000000", self.capacity),
            });
        }
        Ok(())
    }

    /// Arrival rate λ, jobs per step, that gives the target load.
    pub fn arrival_rate(&self) -> f64 {
        self.load / (MEAN_STEPS * MEAN_DEMAND)
    }
}

/// Generate a DeepRM workload.
pub fn generate(cfg: &DeepRmConfig, seed: u64) -> Result<Workload, SimError> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lambda = cfg.arrival_rate();
    let trials = lambda.ceil().max(1.0) as u32;
    let p = lambda / trials as f64;
    let cap = [cfg.capacity * 1000, cfg.capacity * 1024];
    let mut tasks = Vec::with_capacity(cfg.jobs);
    let mut step = 0u64;
    while tasks.len() < cfg.jobs {
        for _ in 0..trials {
            if tasks.len() == cfg.jobs || !rng.gen_bool(p) {
                continue;
            }
            let steps = if rng.gen_bool(0.8) {
                rng.gen_range(1..=3)
            } else {
                rng.gen_range(10..=15)
            };
            let dominant = rng.gen_range(0..2usize);
            let mut req = [0u64; 2];
            for (d, c) in cap.iter().enumerate() {
                req[d] = if d == dominant {
                    rng.gen_range(c / 4..=c / 2)
                } else {
                    rng.gen_range(c / 20..=c / 10)
                };
            }
            let id = tasks.len() as u64;
            let dur = Dur(STEP.0 * steps);
            tasks.push(
                TaskSpec::new(
                    id,
                    Time(step * STEP.0),
                    Resources::new(req[0].max(1), req[1].max(1)),
                    dur,
                )
                .with_estimate(dur),
            );
        }
        step += 1;
    }
    debug_assert!(tasks
        .iter()
        .enumerate()
        .all(|(i, t)| t.id == TaskId(i as u64)));
    let meta = WorkloadMeta {
        source: format!("deeprm:load={},jobs={},cap={}", cfg.load, cfg.jobs, cfg.capacity),
        label: format!("deeprm-{}", cfg.load),
        notes: vec![
            format!(
                "DeepRM: λ = load / 0.9225 = {lambda:.4} jobs per 10 s step; 1 unit = 1 core / 1024 MiB; \
                 capacity {} units per resource",
                cfg.capacity
            ),
            "durations are known to the generator: estimate = actual duration (perfect estimates)".into(),
        ],
        estimates_from_runtime: cfg.jobs as u64,
        seed: Some(seed),
        ..Default::default()
    };
    Workload::new(Cluster::single(Resources::new(cap[0], cap[1])), tasks, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offered load measured from the generated jobs: Σ demand·duration / (cap · span), per resource.
    fn measured_load(w: &Workload) -> [f64; 2] {
        let cap = w.cluster.nodes[0].capacity;
        let span = (w.tasks.last().unwrap().submit.0 + STEP.0) as f64;
        let mut out = [0.0; 2];
        for (d, o) in out.iter_mut().enumerate() {
            let area: f64 = w
                .tasks
                .iter()
                .map(|t| t.request.0[d] as f64 * t.runtime.unwrap().0 as f64)
                .sum();
            *o = area / (cap.0[d] as f64 * span);
        }
        out
    }

    #[test]
    fn offered_load_matches_target() {
        for load in [0.3, 0.9, 1.5, 1.9] {
            let w = generate(
                &DeepRmConfig {
                    load,
                    jobs: 20_000,
                    capacity: 10,
                },
                7,
            )
            .unwrap();
            for m in measured_load(&w) {
                assert!(
                    (m - load).abs() / load < 0.05,
                    "target {load}, measured {m}"
                );
            }
        }
    }

    #[test]
    fn paper_parameters() {
        let w = generate(
            &DeepRmConfig {
                load: 1.0,
                jobs: 5_000,
                capacity: 10,
            },
            1,
        )
        .unwrap();
        let short = w
            .tasks
            .iter()
            .filter(|t| t.runtime.unwrap() <= Dur::from_secs(30))
            .count() as f64;
        assert!((short / 5000.0 - 0.8).abs() < 0.03, "{short}");
        for t in &w.tasks {
            let steps = t.runtime.unwrap().0 / STEP.0;
            assert!((1..=3).contains(&steps) || (10..=15).contains(&steps));
            let f = t.request.fractions_of(&w.cluster.nodes[0].capacity);
            let (hi, lo) = if f[0] >= f[1] {
                (f[0], f[1])
            } else {
                (f[1], f[0])
            };
            assert!(
                (0.25..=0.5).contains(&hi) && (0.05..=0.1).contains(&lo),
                "{f:?}"
            );
        }
        assert!(w.meta.perfect_estimates);
    }

    #[test]
    fn seeded_and_deterministic() {
        let c = DeepRmConfig {
            load: 0.5,
            jobs: 100,
            capacity: 10,
        };
        assert_eq!(generate(&c, 3).unwrap(), generate(&c, 3).unwrap());
        assert_ne!(
            generate(&c, 3).unwrap().tasks,
            generate(&c, 4).unwrap().tasks
        );
        assert!(generate(&DeepRmConfig { load: 2.5, ..c }, 1).is_err());
    }
}
