//! The seed's worked example: one node with 8 CPUs and 16 memory units, 10
//! tasks with CPU 1–4, memory 1–8 units and duration 10–30 s, all submitted at
//! t = 0, drawn from a seeded RNG.
//!
//! One memory unit = 1024 MiB (so the node has 16 GiB). Durations are whole
//! seconds. The example declares each task's duration up front, so estimate =
//! duration and the workload is labelled perfect-estimates. Task `i` has source
//! id `i` (the "task index" the demo prints).

use llmchain_core::{Cluster, Dur, Resources, TaskSpec, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{SimError, Workload, WorkloadMeta};

/// MiB per memory unit.
pub const MEM_UNIT_MIB: u64 = 1024;
/// CPUs in the node.
pub const CPUS: u64 = 8;
/// Memory units in the node.
pub const MEM_UNITS: u64 = 16;
/// Number of tasks.
pub const TASKS: usize = 10;

/// Generate the example.
pub fn generate(seed: u64) -> Result<Workload, SimError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tasks = (0..TASKS as u64)
        .map(|i| {
            let cpus = rng.gen_range(1..=4);
            let mem = rng.gen_range(1..=8) * MEM_UNIT_MIB;
            let dur = Dur::from_secs(rng.gen_range(10..=30));
            TaskSpec::new(i, Time::ZERO, Resources::cpus(cpus, mem), dur).with_estimate(dur)
        })
        .collect();
    let meta = WorkloadMeta {
        source: "seed-example".into(),
        label: "seed-example".into(),
        notes: vec![
            "1 memory unit = 1024 MiB".into(),
            "task durations are declared: estimate = actual duration (perfect estimates)".into(),
        ],
        estimates_from_runtime: TASKS as u64,
        seed: Some(seed),
        ..Default::default()
    };
    Workload::new(
        Cluster::single(Resources::cpus(CPUS, MEM_UNITS * MEM_UNIT_MIB)),
        tasks,
        meta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_ranges_and_seeded() {
        let w = generate(5).unwrap();
        assert_eq!(w.len(), 10);
        assert_eq!(w.cluster.nodes[0].capacity, Resources::cpus(8, 16 * 1024));
        for (i, t) in w.tasks.iter().enumerate() {
            assert_eq!((t.source_id, t.submit), (i as u64, Time::ZERO));
            assert!(
                (1000..=4000).contains(&t.request.cpu_milli()) && t.request.cpu_milli() % 1000 == 0
            );
            assert!(
                (1024..=8192).contains(&t.request.mem_mib()) && t.request.mem_mib() % 1024 == 0
            );
            assert!((Dur::from_secs(10)..=Dur::from_secs(30)).contains(&t.runtime.unwrap()));
        }
        assert!(w.meta.perfect_estimates);
        assert_eq!(generate(5).unwrap(), w);
        assert_ne!(generate(6).unwrap().tasks, w.tasks);
    }
}
