//! Executor cost per task: spawn + wait + cgroup cleanup of `/bin/true`, in the
//! detected cgroup mode and in the no-cgroup fallback (needs root and writable cgroups).
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use llmchain_core::{Resources, TaskId};
use llmchain_node::{Executor, ExecutorConfig, LaunchSpec, ModeKind};

fn bench(c: &mut Criterion) {
    let logs = tempfile::tempdir().expect("temp dir");
    // `weighted`: the parent cgroup gets a high CPU weight, so on a busy machine the new
    // task is not starved by unrelated load while it starts.
    for (label, force, shares) in [
        ("default", None, None),
        ("weighted", None, Some(100_000)),
        ("none", Some(ModeKind::None), None),
    ] {
        let exec = Executor::new(ExecutorConfig {
            cgroup_parent: format!("llmchain-bench-{label}-{}", std::process::id()),
            log_dir: logs.path().to_path_buf(),
            force_mode: force,
            parent_cpu_shares: shares,
            ..ExecutorConfig::default()
        })
        .expect("executor (run as root with writable cgroups)");
        let mode = format!("{}-{label}", exec.mode().name());
        let mut id = 0u64;
        c.bench_function(&format!("spawn_wait_true/{mode}"), |b| {
            b.iter(|| {
                id += 1;
                let mut s = LaunchSpec::new(TaskId(id), vec!["/bin/true".into()]);
                s.limits = Resources::new(500, 64);
                exec.spawn(&s).expect("spawn").wait().expect("wait")
            })
        });
        c.bench_function(&format!("spawn_only_true/{mode}"), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    id += 1;
                    let mut s = LaunchSpec::new(TaskId(id), vec!["/bin/true".into()]);
                    s.limits = Resources::new(500, 64);
                    let t = std::time::Instant::now();
                    let h = exec.spawn(&s).expect("spawn");
                    total += t.elapsed();
                    h.wait().expect("wait");
                }
                total
            })
        });
        exec.remove_parent().expect("remove bench parent cgroups");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
