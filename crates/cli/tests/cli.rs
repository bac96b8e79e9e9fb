//! End-to-end tests of the `llmchain` binary's simulator commands (`sim`,
//! `demo`, and `train`'s refusal of bad input): real workloads, real policies, the real binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

mod helper {
    use super::*;

    /// The repository root (the workspace holds the traces under `data/`).
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap()
    }

    pub fn llmchain() -> Command {
        let mut c = Command::cargo_bin("llmchain").unwrap();
        c.current_dir(root());
        c
    }

    pub fn lublin1() -> String {
        format!(
            "swf:{}",
            root().join("data/traces/lublin_256.swf").display()
        )
    }
}
use helper::*;

#[test]
fn demo_runs_offline_and_prints_schedules() {
    let out = llmchain()
        .args(["demo", "--json", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("cluster: 1 node, 8 CPUs, 16 memory units"),
        "{text}"
    );
    assert!(text.contains("schedules"), "{text}");
    // The JSON document at the end: 10 tasks; every schedule is a permutation of 0..10.
    let json_start = text.find("{\n").expect("json output");
    let v: serde_json::Value = serde_json::from_str(&text[json_start..]).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 10);
    for s in v["schedules"].as_array().unwrap() {
        let mut order: Vec<u64> = s["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        order.sort_unstable();
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "{s}");
        assert_eq!(s["rejected_proposals"], 0);
        // Total time is at least the longest task and at most the sum of all durations.
        let total = s["total_time_s"].as_f64().unwrap();
        let durs: Vec<f64> = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["duration_s"].as_f64().unwrap())
            .collect();
        assert!(
            total >= durs.iter().cloned().fold(0.0, f64::max) && total <= durs.iter().sum::<f64>(),
            "{total}"
        );
    }
}

#[test]
fn sim_prints_a_table_and_json_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    for out in [&a, &b] {
        llmchain()
            .args([
                "sim",
                "-w",
                &lublin1(),
                "-p",
                "fcfs,sjf+easy,f1+easy",
                "-n",
                "3",
                "-l",
                "256",
                "--seed",
                "5",
            ])
            .arg("--json")
            .arg(out)
            .assert()
            .success()
            .stdout(predicate::str::contains("sjf+easy").and(predicate::str::contains("bsld")));
    }
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_eq!(ta, tb, "same seed must give identical JSON");
    let v: serde_json::Value = serde_json::from_str(&ta).unwrap();
    assert_eq!(v["sequences"], 3);
    assert_eq!(v["policies"].as_array().unwrap().len(), 3);
    // Backfilling never makes FCFS worse on average bounded slowdown here.
    let bsld = |i: usize| {
        v["policies"][i]["mean"]["metrics"]["bounded_slowdown"]["mean"]
            .as_f64()
            .unwrap()
    };
    assert!(
        bsld(0) >= bsld(1),
        "fcfs {} vs sjf+easy {}",
        bsld(0),
        bsld(1)
    );
}

#[test]
fn sim_plot_writes_svgs() {
    let dir = tempfile::tempdir().unwrap();
    llmchain()
        .args([
            "sim",
            "-w",
            "deeprm:load=0.7,jobs=300",
            "-p",
            "sjf,tetris,packer",
            "--full",
            "--plot",
        ])
        .arg(dir.path())
        .assert()
        .success();
    for f in ["bsld_cdf.svg", "utilisation.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("tetris"), "{f}");
    }
}

#[test]
fn train_refuses_an_unknown_mode_by_name() {
    let dir = tempfile::tempdir().unwrap();
    llmchain()
        .args(["train", "sched-lm", "--mode", "sideways", "--json", "--out"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("sideways")
                .and(predicate::str::contains("commit-easy"))
                .and(predicate::str::contains("mode")),
        );
    assert!(
        !dir.path().join("weights.safetensors").exists(),
        "nothing is written for a refused configuration"
    );
}

#[test]
fn unknown_policy_lists_valid_names() {
    llmchain()
        .args(["sim", "-w", "seed-example", "-p", "fcfs,shortest"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("shortest").and(predicate::str::contains("sjf")));
}

#[test]
fn bad_workloads_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.swf");
    std::fs::write(
        &bad,
        "; MaxProcs: 4\n1 0 0 10 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n2 5 x 10 2\n",
    )
    .unwrap();
    llmchain()
        .args(["sim", "-w", &format!("swf:{}", bad.display()), "-p", "fcfs"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("bad.swf").and(
                predicate::str::contains("bad.swf:3").and(predicate::str::contains("wait time")),
            ),
        );
    llmchain()
        .args(["sim", "-w", "nonsense:1", "-p", "fcfs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("swf:PATH"));
    let empty = dir.path().join("empty.swf");
    std::fs::write(&empty, "; MaxProcs: 4\n").unwrap();
    llmchain()
        .args([
            "sim",
            "-w",
            &format!("swf:{}", empty.display()),
            "-p",
            "fcfs",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no jobs").or(predicate::str::contains("empty")));
}
