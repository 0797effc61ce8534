//! `mmrf train --workers 2`: data-parallel training over MPI on this machine, against one
//! process, and a worker killed mid-run. Built with the `mpi` feature only
//! (`cargo test --release -p mmrf-cli --features mpi --test workers`), which needs
//! OpenMPI; without it the workers refuse with a clear error (tested in `cli.rs`).
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::{Command, Output};

fn mmrf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mmrf"))
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn small_world(dir: &Path) {
    ok(mmrf()
        .args(["world", "generate", "--scale", "small", "--seed", "3", "--out"])
        .arg(dir)
        .output()
        .unwrap());
}

/// `mmrf train --method mmrf` into `out` with a short schedule and `extra` arguments.
fn train(world: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = mmrf();
    c.args(["train", "--method", "mmrf", "--quiet", "--data"])
        .arg(world)
        .arg("--out")
        .arg(out)
        .args(["--set", "log_every=5", "--set", "checkpoint_every=20"])
        .args(extra);
    c
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// WatchTime's GAUC and NCIS of a run on the held-out split, at the true propensities.
fn watch_time(run: &Path, world: &Path) -> (f64, f64) {
    let out = ok(mmrf()
        .args(["eval", "--behaviour", "true", "--tau", "1", "--json", "--run"])
        .arg(run)
        .arg("--data")
        .arg(world)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &v["signals"]["WatchTime"];
    (w["gauc"].as_f64().unwrap(), w["ncis"].as_f64().unwrap())
}

/// The mean TD loss over the second half of a run's learning curve.
fn late_td_loss(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("train_log.jsonl")).unwrap();
    let losses: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["td_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let late = &losses[losses.len() / 2..];
    late.iter().sum::<f64>() / late.len() as f64
}

#[test]
fn two_workers_train_one_model_that_matches_a_single_process() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    small_world(&world);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(train(&world, &one, &["--set", "steps=60"]).output().unwrap());
    ok(train(&world, &two, &["--set", "steps=60", "--workers", "2"])
        .output()
        .unwrap());
    // The replicas ended with the same parameters, and the global batch is one process's.
    let w = json(&two.join("workers.json"));
    assert_eq!(w["workers"], 2);
    assert_eq!(w["global_batch"], 256);
    assert_eq!(w["replica_spread"], 0.0, "{w}");
    assert!(!one.join("workers.json").exists());
    // Stated tolerance: the same global batch learns alike. WatchTime GAUC within 0.01,
    // NCIS within 5 %, the second half's mean TD loss within 25 %.
    let ((g1, n1), (g2, n2)) = (watch_time(&one, &world), watch_time(&two, &world));
    assert!((g1 - g2).abs() <= 0.01, "GAUC {g1} against {g2}");
    assert!((n1 - n2).abs() <= 0.05 * n1, "NCIS {n1} against {n2}");
    let (l1, l2) = (late_td_loss(&one), late_td_loss(&two));
    assert!((l1 - l2).abs() <= 0.25 * l1, "TD loss {l1} against {l2}");
}

/// The process of rank `rank` of the MPI job training into `out` (from its environment).
fn worker(out: &Path, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let out = out.to_str().unwrap();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let env = String::from_utf8_lossy(&env);
        (cmd.contains("--distributed") && cmd.contains(out) && env.split('\0').any(|v| v == want)).then_some(pid)
    })
}

#[test]
fn a_killed_worker_stops_the_job_and_resume_continues_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    small_world(&world);
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    let steps = ["--set", "steps=300", "--workers", "2"];
    ok(train(&world, &full, &steps).output().unwrap());

    let job = train(&world, &killed, &steps)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoint = killed.join("checkpoint").join("checkpoint.toml");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !checkpoint.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = worker(&killed, 1).expect("the second worker is running");
    ok(Command::new("kill").args(["-9", &pid.to_string()]).output().unwrap());
    let out = job.wait_with_output().unwrap();
    assert!(!out.status.success(), "the job stops when a worker dies");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a worker stopped") && err.contains("--resume --workers 2"),
        "{err}"
    );
    // The last checkpoint is whole: the first worker's state and the second's.
    for file in ["checkpoint.toml", "net.safetensors", "rank-1.toml", "order-1.bin"] {
        assert!(killed.join("checkpoint").join(file).exists(), "{file}");
    }
    assert!(!killed.join("model.safetensors").exists());

    // Another worker count cannot continue it; the same can, to the uninterrupted model.
    let out = mmrf()
        .args(["train", "--method", "mmrf", "--quiet", "--resume", "--data"])
        .arg(&world)
        .arg("--out")
        .arg(&killed)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resume it with --workers 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(mmrf()
        .args([
            "train",
            "--method",
            "mmrf",
            "--quiet",
            "--resume",
            "--workers",
            "2",
            "--data",
        ])
        .arg(&world)
        .arg("--out")
        .arg(&killed)
        .output()
        .unwrap());
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(killed.join("model.safetensors")).unwrap(),
        "resumed after the kill, the run ends where the uninterrupted one did"
    );
}

#[test]
fn workers_refuse_what_they_cannot_train() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    small_world(&world);
    let run = |method: &str, out: &Path| {
        mmrf()
            .args(["train", "--quiet", "--workers", "2", "--method", method, "--data"])
            .arg(&world)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = run("bc", &tmp.path().join("bc"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers trains the actor-critic methods"));
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("note"), "x").unwrap();
    let out = run("mmrf", &busy);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("starts in an empty --out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
