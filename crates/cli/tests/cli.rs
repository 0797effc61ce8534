//! The `mmrf` binary end to end: generate, check, and clear one-line errors.

use std::process::Command;

fn mmrf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mmrf"))
}

/// The benchmark's methods in table order.
const METHODS: [&str; 11] = [
    "bc",
    "wide-deep",
    "deepfm",
    "pareto",
    "tscac",
    "massa",
    "mmrf-co",
    "mmrf-da",
    "mmrf-ns",
    "mmrf",
    "ltr",
];

/// MMRF's run ranked by its critic and by its reward head: the benchmark's diagnostic rows.
const DIAGNOSTICS: [&str; 2] = ["mmrf-critic-greedy", "mmrf-reward-head"];

/// `mmrf world generate --scale small --users N --out DIR`, which must succeed.
fn small_world(dir: &std::path::Path, users: usize) {
    let out = mmrf()
        .args([
            "world",
            "generate",
            "--scale",
            "small",
            "--users",
            &users.to_string(),
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn generate_then_check_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let out = mmrf()
        .args([
            "world", "generate", "--scale", "small", "--users", "30", "--seed", "5", "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = mmrf().args(["data", "check", "--json"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["users"], 30);
    assert_eq!(report["complete"], true);
    let names: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "log_standard_4_08_to_4_21_1k.csv",
            "log_standard_4_22_to_5_08_1k.csv",
            "log_random_4_22_to_5_08_1k.csv",
            "user_features_1k.csv",
            "video_features_basic_1k.csv",
            "video_features_statistic_1k.csv",
            "mmrf_requests.csv",
            "mmrf_candidates.bin",
            "mmrf_propensities.csv"
        ]
    );
    assert_eq!(report["side_files"], true);
    let click = report["logs"]["standard_train"]["rates"]["is_click"].as_f64().unwrap();
    assert!(click > 0.0 && click < 1.0);
    assert_eq!(
        report["files"][3]["header"].as_str().unwrap(),
        mmrf_data::schema::USER_COLUMNS.join(",")
    );
}

#[test]
fn bad_input_is_one_clear_line_and_a_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    small_world(&dir, 10);
    let log = dir.join("log_standard_4_22_to_5_08_1k.csv");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("3,4,20220430,1200,1651291200000,1,0,0,0,0,0,1,x,15000,0,0,0,0,1\n");
    let line = text.lines().count();
    std::fs::write(&log, text).unwrap();
    let out = mmrf().args(["data", "check"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "log_standard_4_22_to_5_08_1k.csv: line {line}, column `play_time_ms`"
        )),
        "{err}"
    );
    let out = mmrf().args(["data", "check", "/nonexistent/dir"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: /nonexistent/dir"));
}

#[test]
fn sizes_are_bounded_and_a_users_file_is_never_moved() {
    let tmp = tempfile::tempdir().unwrap();
    // A world too large to build is refused before anything is allocated or written.
    let big = tmp.path().join("big");
    let out = mmrf()
        .args(["world", "generate", "--scale", "small", "--users", "100000000", "--out"])
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("n_users = 100000000 is above its bound"), "{err}");
    assert!(!big.exists());
    // Within the bounds but beyond the disk: refused with the estimate, before anything runs.
    let out = mmrf()
        .args(["world", "generate", "--scale", "1k", "--users", "2000000", "--out"])
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the world would take about") && err.contains("GB are free at"),
        "{err}"
    );
    assert!(!big.exists());
    // A file where a directory would go is refused and left as it was, by every command
    // that writes a directory whole.
    let world = tmp.path().join("world");
    small_world(&world, 10);
    let file = tmp.path().join("F");
    std::fs::write(&file, "x\n").unwrap();
    let runs: [Vec<std::ffi::OsString>; 3] = [
        ["world", "generate", "--scale", "small", "--users", "5", "--out"]
            .map(Into::into)
            .to_vec(),
        vec![
            "data".into(),
            "convert".into(),
            world.clone().into(),
            "--to".into(),
            "parquet".into(),
            "--out".into(),
        ],
        vec![
            "train".into(),
            "--method".into(),
            "ltr".into(),
            "--set".into(),
            "steps=1".into(),
            "--data".into(),
            world.clone().into(),
            "--out".into(),
        ],
    ];
    for args in runs {
        let out = mmrf().args(&args).arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("exists and is not a directory"), "{args:?}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x\n", "{args:?}");
        let hidden: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".F."))
            .collect();
        assert!(hidden.is_empty(), "{args:?} left {hidden:?}");
    }
    // An OS error is said once, after its path.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = mmrf()
        .args(["ab", "--run", "r", "--data"])
        .arg(&empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mmrf_world.json: No such file or directory"), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    // No data-parallel group of no workers.
    let out = mmrf()
        .args(["train", "--method", "mmrf", "--workers", "0", "--data"])
        .arg(&world)
        .arg("--out")
        .arg(tmp.path().join("w0"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    // A key both varied and fixed is refused before anything trains.
    let out = mmrf()
        .args([
            "tune", "--method", "ltr", "--grid", "steps=2", "--set", "steps=3", "--quick", "--out",
        ])
        .arg(tmp.path().join("tune"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--set `steps=3`: the grid varies `steps`"), "{err}");
    assert!(!tmp.path().join("tune").exists());
    // An unknown key of the grid is the grid's, not a --set's.
    let out = mmrf()
        .args(["tune", "--method", "ltr", "--grid", "stepz=2,3", "--quick", "--out"])
        .arg(tmp.path().join("tune"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--grid `stepz`: no such setting"), "{err}");
}

/// The seed a generated world records in its parameter file.
fn world_seed(dir: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("mmrf_world.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["config"]["seed"].as_u64().unwrap()
}

#[test]
fn a_killed_regeneration_leaves_one_whole_world() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let generate = |seed: &str| {
        let mut c = mmrf();
        c.args([
            "world", "generate", "--scale", "small", "--users", "400", "--seed", seed, "--out",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        c
    };
    assert!(generate("5").status().unwrap().success());
    let mut child = generate("6").spawn().unwrap();
    // Kill it once it has written its first log (or, on a fast machine, whenever it is).
    let started = std::time::Instant::now();
    let staged_log = || {
        std::fs::read_dir(tmp.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".w.mmrf-staging")
                && e.path().join("log_standard_4_08_to_4_21_1k.csv").is_file()
        })
    };
    while !staged_log() && started.elapsed() < std::time::Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    // Whatever the moment, the directory holds one whole world that checks clean.
    let seed = world_seed(&dir);
    assert!(seed == 5 || seed == 6);
    let out = mmrf().args(["data", "check"]).arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stray: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".mmrf-tmp") || n.starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // The next generation completes and clears what the killed one staged.
    assert!(generate("6").status().unwrap().success());
    assert_eq!(world_seed(&dir), 6);
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["w".to_string()]);
}

#[test]
fn empty_logs_are_refused_by_check_train_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("w");
    small_world(&world, 20);
    // The KuaiRand files alone (real data has no side files), with a header-only log.
    let copy = |dir: &std::path::Path, empty: &str| {
        std::fs::create_dir(dir).unwrap();
        for e in std::fs::read_dir(&world).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_1k.csv") {
                std::fs::copy(e.path(), dir.join(&name)).unwrap();
            }
        }
        let log = dir.join(empty);
        let head = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        std::fs::write(log, head + "\n").unwrap();
    };
    let no_test = tmp.path().join("no-test");
    copy(&no_test, "log_standard_4_22_to_5_08_1k.csv");
    let out = mmrf().args(["data", "check"]).arg(&no_test).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the standard_test log has no rows"),
        "{err}"
    );
    let run = tmp.path().join("bc");
    let out = mmrf()
        .args(["train", "--method", "bc", "--quiet", "--set", "epochs=1", "--data"])
        .arg(&no_test)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = mmrf()
        .args(["eval", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&no_test)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("the standard_test log has no rows: nothing to evaluate"),
        "{err}"
    );
    let no_train = tmp.path().join("no-train");
    copy(&no_train, "log_standard_4_08_to_4_21_1k.csv");
    let out = mmrf()
        .args(["train", "--method", "bc", "--quiet", "--data"])
        .arg(&no_train)
        .arg("--out")
        .arg(tmp.path().join("bc2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nothing to train on"), "{err}");
}

#[test]
fn the_shared_real_files_are_reported_incomplete_not_crashed() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/kuairand/kuairand_dataset_preprocessed");
    let out = mmrf().args(["data", "check"]).arg(&shared).output().unwrap();
    // The logs are not shipped: the check lists them as missing and fails cleanly.
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("KuaiRand-pure") && text.contains("27285 users") && text.contains("MISSING"),
        "{text}"
    );
}

#[test]
fn train_then_eval_json_and_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let run = tmp.path().join("bc");
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    small_world(&dir, 60);
    ok(mmrf()
        .args([
            "train",
            "--method",
            "bc",
            "--quiet",
            "--set",
            "epochs=1",
            "--set",
            "net.dim=8",
            "--data",
        ])
        .arg(&dir)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    let manifest = std::fs::read_to_string(run.join("run.toml")).unwrap();
    assert!(
        manifest.contains("method = \"bc\"") && manifest.contains("dim = 8"),
        "{manifest}"
    );
    assert!(run.join("model.safetensors").exists() && run.join("train_log.jsonl").exists());
    let dump = tmp.path().join("scores.csv");
    let out = ok(mmrf()
        .args(["eval", "--json", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .arg("--dump-scores")
        .arg(&dump)
        .output()
        .unwrap());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["method"], "bc");
    for sig in ["Click", "Like", "Follow", "Comment", "Hate", "LongView", "WatchTime"] {
        let s = &report["signals"][sig];
        assert!(s["ncis"].is_number() && s["ess"].is_number(), "{sig}: {s}");
        assert_eq!(s["ncis_ci"].as_array().unwrap().len(), 2);
        // BC against itself: NCIS is the logged mean.
        assert!((s["ncis"].as_f64().unwrap() - s["logged"].as_f64().unwrap()).abs() < 1e-9);
    }
    let text = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(text.lines().count() as u64, report["impressions"].as_u64().unwrap() + 1);
    // A run against itself, paired over users: every difference and interval is zero (an
    // unpaired interval would not be).
    let out = ok(mmrf()
        .args(["eval", "--json", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .arg("--against")
        .arg(&run)
        .output()
        .unwrap());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &report["against"][run.display().to_string()];
    for sig in ["Click", "WatchTime"] {
        for metric in ["ncis", "gauc", "gauc_within_request"] {
            let d = &c[sig][metric];
            assert_eq!(d["value"], 0.0, "{sig} {metric}: {d}");
            assert_eq!(d["ci"], serde_json::json!([0.0, 0.0]), "{sig} {metric}: {d}");
            assert_eq!(d["ahead"], 0.0);
        }
    }
    // π_β from the true propensities works too, and a non-BC behaviour run is refused.
    ok(mmrf()
        .args(["eval", "--behaviour", "true", "--tau", "1", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .output()
        .unwrap());
    // `--truth`: the same policy run in the world, beside the very NCIS reported.
    let out = ok(mmrf()
        .args(["eval", "--json", "--truth", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["truth"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for r in rows {
        let sig = r["signal"].as_str().unwrap();
        assert_eq!(r["ncis_bc"], v["signals"][sig]["ncis"], "{sig}");
        assert_eq!(r["tau"], v["tau"]);
    }
    let watch = rows.iter().find(|r| r["signal"] == "WatchTime").unwrap();
    assert!(
        watch["online"].as_f64().unwrap() > 1.0,
        "seconds per impression: {watch}"
    );
    // It checks BC's π_β on the test split only, each refusal with its reason.
    for (args, needle) in [
        (&["--behaviour", "true", "--tau", "1"][..], "--behaviour BC_RUN"),
        (&["--split", "random"][..], "test split"),
    ] {
        let out = mmrf()
            .args(["eval", "--truth", "--run"])
            .arg(&run)
            .arg("--data")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{args:?}");
    }
    // The online A/B of the run against the logging policy, paired.
    let out = ok(mmrf()
        .args(["ab", "--json", "--days", "2", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap());
    let ab: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ab["control"], "bc");
    let arms: Vec<&str> = ab["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(arms, ["bc", "logging", "oracle", "oracle-session"]);
    // The world's myopic oracle is the ceiling online and, through the same offline code,
    // in Table 1's WatchTime GAUC.
    let watch = |name: &str| {
        let arm = ab["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap();
        let per_session = arm["per_session"].as_array().unwrap();
        let w = per_session.iter().find(|m| m[0] == "watch_time").unwrap();
        w[1]["mean"].as_f64().unwrap()
    };
    assert!(watch("oracle") > watch("logging"), "{ab}");
    // Without the oracle arms, the others' figures are the same.
    let out = ok(mmrf()
        .args(["ab", "--json", "--days", "2", "--no-oracles", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap());
    let bare: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bare_arms = bare["arms"].as_array().unwrap();
    assert_eq!(bare_arms.len(), 2);
    for (a, b) in bare_arms.iter().zip(ab["arms"].as_array().unwrap()) {
        assert_eq!(a, b);
    }
    // A BC run has no critic: `--critic-arms` adds no arm for it, and ranking it by one is
    // refused with the reason.
    let out = ok(mmrf()
        .args(["ab", "--json", "--days", "2", "--no-oracles", "--critic-arms", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap());
    let same: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(same, bare);
    let out = mmrf()
        .args(["eval", "--rank-by", "critic-greedy", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("has no critic to rank by"), "{err}");
    let out = ok(mmrf()
        .args([
            "eval",
            "--oracle",
            "--behaviour",
            "true",
            "--tau",
            "5",
            "--json",
            "--data",
        ])
        .arg(&dir)
        .output()
        .unwrap());
    let oracle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(oracle["method"], "oracle");
    let out = ok(mmrf()
        .args(["eval", "--behaviour", "true", "--tau", "5", "--json", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap());
    let bc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = |v: &serde_json::Value| v["signals"]["WatchTime"]["gauc"].as_f64().unwrap();
    assert!(g(&oracle) > g(&bc), "oracle {} against bc {}", g(&oracle), g(&bc));
    let bad = mmrf()
        .args(["ab", "--control", "nope", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no such arm"));
    let bad = mmrf()
        .args(["ab", "--days", "0", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--days"));
    // Past the test period there are no more days to simulate: said, not run.
    let bad = mmrf()
        .args(["ab", "--days", "40", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("--days 40: the world's test period has 17 days"), "{err}");
    let typo_file = tmp.path().join("typo.toml");
    std::fs::write(&typo_file, "epochs = 1\n[net]\ndimm = 8\n").unwrap();
    let typo = typo_file.display().to_string();
    for (args, needle) in [
        (vec!["--method", "nope"], "unknown method `nope`"),
        (vec!["--method", "bc", "--set", "epochs"], "expected key=value"),
        (vec!["--method", "bc", "--set", "nope=1"], "no such setting"),
        (vec!["--method", "bc", "--set", "epochs=\"x\""], "invalid settings"),
        (
            vec!["--method", "bc", "--set", "epochs=0"],
            "`epochs` = 0: must be at least 1",
        ),
        (
            vec!["--method", "ltr", "--set", "steps=0"],
            "`steps` = 0: must be at least 1",
        ),
        (
            vec!["--method", "mmrf", "--set", "net.dim=0"],
            "`net.dim` = 0: must be at least 1",
        ),
        (
            vec!["--method", "bc", "--set", "lr=-0.1"],
            "`lr` = -0.1: must be a finite number above 0",
        ),
        (vec!["--method", "bc", "--config", &typo], "`net.dimm`: no such setting"),
        (vec!["--method", "bc", "--resume"], "bc does not checkpoint"),
    ] {
        let out = mmrf()
            .arg("train")
            .args(&args)
            .arg("--quiet")
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("--set") || args.contains(&"--set"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // A second training into a finished run is refused and leaves it as it was.
    let weights = std::fs::read(run.join("model.safetensors")).unwrap();
    let out = mmrf()
        .args([
            "train", "--method", "bc", "--quiet", "--set", "epochs=1", "--seed", "9", "--data",
        ])
        .arg(&dir)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--force"), "{err}");
    assert!(std::fs::read(run.join("model.safetensors")).unwrap() == weights);
    let out = mmrf()
        .args(["eval", "--tau", "0", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn quick_benchmark_writes_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let run = mmrf()
        .args(["benchmark", "--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let methods: Vec<&str> = results["offline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    let with_oracle: Vec<&str> = METHODS.iter().copied().chain(["oracle"]).collect();
    let rows: Vec<&str> = with_oracle.iter().copied().chain(DIAGNOSTICS).collect();
    assert_eq!(
        methods, rows,
        "the methods in table order, the world's oracle, then MMRF's diagnostic rankings"
    );
    for m in results["offline"].as_array().unwrap() {
        for sig in ["Click", "Like", "Follow", "Comment", "Hate", "LongView", "WatchTime"] {
            assert!(m["signals"][sig]["ncis"].is_number(), "{} {sig}", m["method"]);
        }
        // The actor-critic methods with a linear critic (the baselines) report how closely
        // their ranking actor follows the WatchTime critic's closed-form best action on the
        // held-out requests; MASSA's main actor ascends that critic alone, so even the quick
        // run puts it close to that action (0.86 after the quick run's 60 updates; an actor
        // unrelated to it would give cosines near 0 in 32 dimensions). MMRF's score-list
        // critic has no such action.
        let a = &m["critic_alignment"];
        match m["method"].as_str().unwrap() {
            "pareto" | "tscac" | "massa" => {
                let name = m["method"].as_str().unwrap();
                assert!(a["requests"].as_u64().unwrap() > 0, "{name}");
                let (mean, p01) = (a["mean"].as_f64().unwrap(), a["p01"].as_f64().unwrap());
                assert!((-1.0..=1.0 + 1e-4).contains(&mean) && p01 <= mean, "{name}: {a}");
                if name == "massa" {
                    assert!(mean > 0.7, "{name}: {a}");
                }
            }
            _ => assert!(a.is_null(), "{m}"),
        }
        // Collaboration's effect on the ranking, for the methods whose actors communicate.
        let c = &m["collaboration_sensitivity"];
        let name = m["method"].as_str().unwrap();
        if name.starts_with("mmrf") && !DIAGNOSTICS.contains(&name) {
            let (mean, p01) = (c["mean"].as_f64().unwrap(), c["p01"].as_f64().unwrap());
            assert!((0.0..=1.0).contains(&mean) && p01 <= mean, "{m}");
        } else {
            assert!(c.is_null(), "{m}");
        }
        // Eq. 6's factor, for the methods that label with the simulator.
        let u = &m["uncertainty"];
        if ["mmrf", "mmrf-co"].contains(&m["method"].as_str().unwrap()) {
            assert!(u["labels"].as_u64().unwrap() > 0, "{m}");
            assert!((0.0..=1.0).contains(&u["outside_099_101"].as_f64().unwrap()), "{m}");
        } else {
            assert!(u.is_null(), "{m}");
        }
    }
    let arms: Vec<&str> = results["online"]["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = METHODS.iter().rev().copied().collect();
    expected.extend(DIAGNOSTICS);
    expected.extend(["logging", "random", "oracle", "oracle-session"]);
    assert_eq!(
        arms, expected,
        "LTR (control) first, then the table in reverse, then MMRF's diagnostics"
    );
    // Each diagnostic ranking is a row of its own, online and offline, and not the actor's
    // ranking under another name.
    for name in DIAGNOSTICS {
        let m = &results["methods"][name];
        assert!(m["online"]["lift_vs_control"].is_number(), "{name}");
        assert!(m["headroom_share"]["online"].is_number(), "{name}");
        assert_ne!(
            m["offline"]["WatchTime"]["gauc"], results["methods"]["mmrf"]["offline"]["WatchTime"]["gauc"],
            "{name}"
        );
        assert!(
            results["paired"][name]["WatchTime"]["gauc"]["value"].is_number(),
            "{name}"
        );
    }
    assert_eq!(results["online"]["control"], "ltr");
    // The documented schema: methods → offline per signal, online for the arms.
    for name in METHODS {
        let m = &results["methods"][name];
        for sig in ["Click", "Like", "Follow", "Comment", "Hate", "LongView", "WatchTime"] {
            let s = &m["offline"][sig];
            assert!(
                s["ncis"].is_number() && s["ess"].is_number() && s["ncis_ci"].as_array().unwrap().len() == 2,
                "{name} {sig}"
            );
        }
        assert!(m["online"]["watch_time"].is_number(), "{name}");
        assert!(m["online"]["lift_vs_control"].is_number(), "{name}");
    }
    assert_eq!(results["methods"]["ltr"]["online"]["lift_vs_control"], 0.0);
    // The oracle is the ceiling: the highest WatchTime GAUC offline and the highest session
    // WatchTime online, and each method's headroom share is measured against it.
    let figure = |m: &str, path: &[&str]| {
        path.iter()
            .fold(&results["methods"][m], |v, k| &v[*k])
            .as_f64()
            .unwrap()
    };
    for name in METHODS {
        assert!(
            figure("oracle", &["offline", "WatchTime", "gauc"]) > figure(name, &["offline", "WatchTime", "gauc"]),
            "{name}"
        );
        assert!(
            figure("oracle", &["online", "watch_time"]) > figure(name, &["online", "watch_time"]),
            "{name}"
        );
        let share = figure(name, &["headroom_share", "offline", "WatchTime"]);
        let want = (figure(name, &["offline", "WatchTime", "gauc"]) - 0.5)
            / (figure("oracle", &["offline", "WatchTime", "gauc"]) - 0.5);
        assert!((share - want).abs() < 1e-12 && share < 1.0, "{name}: {share}");
        assert!(figure(name, &["headroom_share", "online"]) < 1.0, "{name}");
    }
    assert_eq!(figure("ltr", &["headroom_share", "online"]), 0.0);
    assert_eq!(figure("oracle", &["headroom_share", "online"]), 1.0);
    // MMRF against every other method, paired: the difference is that of the two figures
    // in Table 1, and its interval holds it.
    for name in METHODS.iter().filter(|&&m| m != "mmrf") {
        for sig in ["Click", "Hate", "WatchTime"] {
            let d = &results["paired"][name][sig]["ncis"];
            let want = results["methods"]["mmrf"]["offline"][sig]["ncis"].as_f64().unwrap()
                - results["methods"][name]["offline"][sig]["ncis"].as_f64().unwrap();
            let got = d["value"].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-6 * (1.0 + want.abs()),
                "{name} {sig}: {got} vs {want}"
            );
            assert!(d["ci"][0].as_f64().unwrap() <= got && got <= d["ci"][1].as_f64().unwrap());
        }
        for metric in ["gauc", "gauc_within_request"] {
            let g = &results["paired"][name]["WatchTime"][metric]["value"];
            let want = results["methods"]["mmrf"]["offline"]["WatchTime"][metric]
                .as_f64()
                .unwrap()
                - results["methods"][name]["offline"]["WatchTime"][metric]
                    .as_f64()
                    .unwrap();
            assert!((g.as_f64().unwrap() - want).abs() < 1e-9, "{name} {metric}");
        }
    }
    assert!(results["paired"]["mmrf"].is_null(), "no comparison of MMRF with itself");
    // NCIS against the truth across the methods: every method and the world's oracle, each
    // at the temperature Table 1 read it at, with the very NCIS Table 1 reports.
    let rows: Vec<&serde_json::Value> = results["fidelity_methods"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["signal"] == "WatchTime")
        .collect();
    assert_eq!(
        rows.iter().map(|r| r["policy"].as_str().unwrap()).collect::<Vec<_>>(),
        with_oracle
    );
    for (r, m) in rows.iter().zip(results["offline"].as_array().unwrap()) {
        assert_eq!(r["tau"].as_f64(), m["tau"].as_f64(), "{}", m["method"]);
        assert_eq!(
            r["ncis_bc"].as_f64(),
            m["signals"]["WatchTime"]["ncis"].as_f64(),
            "{}",
            m["method"]
        );
        assert!(r["online"].as_f64().unwrap() > 0.0);
        assert!(r["online_first"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["snips_bc"].as_f64(),
            m["signals"]["WatchTime"]["snips"].as_f64(),
            "{}",
            m["method"]
        );
    }
    // MMRF against each method by the truth: exactly the differences of the rows' truths.
    let truth_of = |m: &str, key: &str| rows.iter().find(|r| r["policy"] == m).unwrap()[key].as_f64().unwrap();
    // The oracle, run online from the users' live states as the same stochastic policy, is
    // truly better than BC.
    assert!(
        truth_of("oracle", "online_first") > truth_of("bc", "online_first"),
        "{rows:?}"
    );
    let reference: Vec<&str> = results["fidelity"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["signal"] == "WatchTime")
        .map(|r| r["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        reference,
        ["logging", "logging-sharp", "logging-flat", "uniform", "bc", "oracle"]
    );
    let paired = results["fidelity_methods_paired"].as_array().unwrap();
    assert_eq!(paired.len(), METHODS.len(), "every other method and the oracle");
    for d in paired {
        let m = d["policy"].as_str().unwrap();
        for (key, row_key) in [("first_draw", "online_first"), ("per_video", "online")] {
            let want = truth_of("mmrf", row_key) - truth_of(m, row_key);
            assert!((d[key]["value"].as_f64().unwrap() - want).abs() < 1e-9, "{m} {key}");
        }
    }
    let rho = results["fidelity_methods"]["signals"][6]["spearman_bc"]
        .as_f64()
        .unwrap();
    assert!((-1.0..=1.0).contains(&rho), "{rho}");
    assert_eq!(results["seeds"], serde_json::json!([7]));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("### Table 1") && md.contains("### Table 2") && md.contains("NCIS fidelity"));
    assert!(md.contains("mmrf against each method") && md.contains("| ltr | "));
    assert!(md.contains("### WatchTime GAUC: all of a user's pairs, and pairs within one request"));
    assert!(md.contains("### Headroom: each method's share") && md.contains("| oracle | 1.000"));
    let section = md
        .split("### mmrf's actor against its own critic")
        .nth(1)
        .expect("the actor against its critic");
    for name in ["mmrf", "mmrf-critic-greedy", "mmrf-reward-head"] {
        assert!(section.contains(&format!("\n| {name} | 0.")), "{name}: {section}");
    }
    assert!(
        md.contains("The session-aware oracle (its slate chosen slot by slot, staying valued at 800 s and a unit of fatigue at 500 s) runs"),
        "{md}"
    );
    // Beside the GAUCs, the actor-critic cosine: a number for MMRF (the one in
    // results.json), a dash for a method without a critic.
    let split: Vec<&str> = md
        .split("### WatchTime GAUC: all of a user's pairs")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.starts_with("###"))
        .collect();
    let cells = |m: &str| -> Vec<String> {
        let r = split.iter().find(|l| l.starts_with(&format!("| {m} |"))).unwrap();
        r.split('|').map(|c| c.trim().to_string()).collect()
    };
    let row = |m: &str| cells(m)[4].clone();
    let offline_of = |m: &str| {
        results["offline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == m)
            .unwrap()
    };
    let mmrf_offline = offline_of("mmrf");
    let massa_cos = offline_of("massa")["critic_alignment"]["mean"].as_f64().unwrap();
    assert_eq!(row("massa"), format!("{massa_cos:.4}"));
    assert_eq!(row("mmrf"), "–");
    assert_eq!(row("ltr"), "–");
    let mmrf_agreement = mmrf_offline["collaboration_sensitivity"]["mean"].as_f64().unwrap();
    assert_eq!(cells("mmrf")[5], format!("{mmrf_agreement:.4}"));
    assert_eq!(cells("tscac")[5], "–");
    // `eval --simulator` ranks by the MMRF run's feedback simulator: a model fitted to
    // play time orders held-out impressions better than chance, and not as the policy does.
    let eval_simulator = |run: &str| {
        mmrf()
            .args(["eval", "--json", "--simulator", "--run"])
            .arg(out.join("runs").join(run))
            .arg("--data")
            .arg(out.join("world"))
            .arg("--behaviour")
            .arg(out.join("runs/bc"))
            .output()
            .unwrap()
    };
    let sim = eval_simulator("mmrf");
    assert!(sim.status.success(), "{}", String::from_utf8_lossy(&sim.stderr));
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert_eq!(sim["method"], "mmrf-simulator");
    assert!(sim["critic_alignment"].is_null());
    let policy_gauc = mmrf_offline["signals"]["WatchTime"]["gauc"].as_f64().unwrap();
    let sim_gauc = sim["signals"]["WatchTime"]["gauc"].as_f64().unwrap();
    assert!(
        sim_gauc > 0.5 && sim_gauc <= 1.0 && sim_gauc != policy_gauc,
        "{sim_gauc} {policy_gauc}"
    );
    let none = eval_simulator("mmrf-da");
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no feedback simulator"));
    // The paper's own figures beside ours.
    assert!(md.contains("The paper's numbers beside ours") && md.contains("| mmrf |") && md.contains("0.6833"));
    // The terminal shows the same tables.
    assert!(String::from_utf8_lossy(&run.stdout).contains("### Table 1"));
    for png in ["offline_ncis.png", "offline_gauc.png", "online_lift.png"] {
        let p = out.join(png);
        // Plots need a TrueType font; where the machine has none they are skipped with a warning.
        if p.exists() {
            assert_eq!(&std::fs::read(&p).unwrap()[..4], b"\x89PNG");
        } else {
            assert!(String::from_utf8_lossy(&run.stderr).contains("plots skipped"));
        }
    }
}

#[test]
fn benchmark_over_seeds_reports_means_and_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let run = mmrf()
        .args(["benchmark", "--quick", "--seeds", "2", "--seed", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.join("seed-3/results.json").exists() && out.join("seed-4/results.json").exists());
    // The plots over seeds, beside each seed's own.
    for png in ["offline_ncis.png", "offline_gauc.png", "online_lift.png"] {
        let p = out.join(png);
        if p.exists() {
            assert_eq!(&std::fs::read(&p).unwrap()[..4], b"\x89PNG");
            assert!(out.join("seed-3").join(png).exists());
        } else {
            assert!(String::from_utf8_lossy(&run.stderr).contains("plots skipped"));
        }
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["seeds"], serde_json::json!([3, 4]));
    let per_seed = |s: u64| -> f64 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("seed-{s}/results.json"))).unwrap()).unwrap();
        v["methods"]["mmrf"]["offline"]["WatchTime"]["ncis"].as_f64().unwrap()
    };
    let w = &r["methods"]["mmrf"]["offline"]["WatchTime"]["ncis"];
    let mean = w["mean"].as_f64().unwrap();
    assert!((mean - (per_seed(3) + per_seed(4)) / 2.0).abs() < 1e-9);
    let ci = w["ci"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= mean && mean <= ci[1].as_f64().unwrap());
    // The paired differences: their mean over seeds, and how many seeds lead or trail.
    let d = &r["paired"]["ltr"]["WatchTime"]["ncis"];
    let per_seed_diff = |s: u64| -> f64 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("seed-{s}/results.json"))).unwrap()).unwrap();
        v["paired"]["ltr"]["WatchTime"]["ncis"]["value"].as_f64().unwrap()
    };
    assert!((d["mean"].as_f64().unwrap() - (per_seed_diff(3) + per_seed_diff(4)) / 2.0).abs() < 1e-9);
    assert!(d["seeds_leading"].as_u64().unwrap() + d["seeds_trailing"].as_u64().unwrap() <= 2);
    // GAUC within a request is averaged over seeds like every other figure.
    let per_seed_rq = |s: u64| -> f64 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("seed-{s}/results.json"))).unwrap()).unwrap();
        v["methods"]["mmrf"]["offline"]["WatchTime"]["gauc_within_request"]
            .as_f64()
            .unwrap()
    };
    let rq = r["methods"]["mmrf"]["offline"]["WatchTime"]["gauc_within_request"]["mean"]
        .as_f64()
        .unwrap();
    assert!((rq - (per_seed_rq(3) + per_seed_rq(4)) / 2.0).abs() < 1e-9);
    // Each method's headroom share, as a mean with its interval over seeds.
    let h = &r["methods"]["mmrf"]["headroom_share"];
    for v in [&h["online"], &h["offline"]["WatchTime"]] {
        let (mean, ci) = (v["mean"].as_f64().unwrap(), &v["ci"]);
        assert!(
            ci[0].as_f64().unwrap() <= mean && mean <= ci[1].as_f64().unwrap(),
            "{h}"
        );
    }
    assert_eq!(
        r["methods"]["oracle"]["headroom_share"]["offline"]["WatchTime"]["mean"],
        1.0
    );
    // Per seed: whether NCIS orders the methods as the world does.
    let f = r["fidelity_methods"]["per_seed"].as_array().unwrap();
    assert_eq!(
        f.iter().map(|x| x["seed"].as_u64().unwrap()).collect::<Vec<_>>(),
        [3, 4]
    );
    let (mut truth, mut paired_first) = (Vec::new(), Vec::new());
    for (x, s) in f.iter().zip([3u64, 4]) {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("seed-{s}/results.json"))).unwrap()).unwrap();
        assert_eq!(x["spearman_bc"], v["fidelity_methods"]["signals"][6]["spearman_bc"]);
        assert_eq!(
            x["spearman_first_bc"],
            v["fidelity_methods"]["signals"][6]["spearman_first_bc"]
        );
        // The world's oracle, in the fidelity check beside the methods, is truly the best.
        assert_eq!(x["highest_true"], "oracle");
        assert_eq!(x["highest_true_first"], "oracle");
        paired_first.push(
            v["fidelity_methods_paired"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["policy"] == "ltr")
                .unwrap()["first_draw"]["value"]
                .as_f64()
                .unwrap(),
        );
        let row = v["fidelity_methods"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["signal"] == "WatchTime" && x["policy"] == "mmrf")
            .unwrap();
        truth.push([row["online"].as_f64().unwrap(), row["online_first"].as_f64().unwrap()]);
    }
    // Per method over seeds: each truth's mean is the mean of the per-seed truths.
    for (i, key) in ["truth", "truth_first"].into_iter().enumerate() {
        let t = &r["fidelity_methods"]["watch_time"]["mmrf"][key];
        assert!(
            (t["mean"].as_f64().unwrap() - (truth[0][i] + truth[1][i]) / 2.0).abs() < 1e-9,
            "{key}"
        );
    }
    let p = &r["fidelity_methods"]["paired_truth"]["ltr"]["first_draw"];
    assert!((p["mean"].as_f64().unwrap() - (paired_first[0] + paired_first[1]) / 2.0).abs() < 1e-9);
    assert!(p["seeds_leading"].as_u64().unwrap() + p["seeds_trailing"].as_u64().unwrap() <= 2);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("over 2 seeds") && md.contains("paired over users within each seed"));
    assert!(md.contains("### NCIS across the methods against the truth, per seed"));
    assert!(md.contains("### Headroom share over 2 seeds"));
}

#[test]
fn benchmark_on_data_without_a_world_skips_the_online_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kuairand");
    small_world(&dir, 60);
    // Make it look like real KuaiRand: only the six KuaiRand files.
    for side in [
        "mmrf_world.json",
        "mmrf_requests.csv",
        "mmrf_candidates.bin",
        "mmrf_propensities.csv",
    ] {
        std::fs::remove_file(dir.join(side)).unwrap();
    }
    let out = tmp.path().join("results");
    let run = mmrf()
        .args(["benchmark", "--quick", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("not a generated world"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(r["online"].is_null() && r["world"].is_null());
    assert!(r["methods"]["mmrf"]["offline"]["WatchTime"]["ncis"].is_number());
    assert!(r["methods"]["mmrf"]["online"].is_null());
    assert!(std::fs::read_to_string(out.join("results.md"))
        .unwrap()
        .contains("skipped"));
}

#[test]
fn serve_answers_the_load_generator_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let run = tmp.path().join("bc");
    small_world(&dir, 60);
    let out = mmrf()
        .args(["train", "--method", "bc", "--quiet", "--set", "epochs=1", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut server = mmrf()
        .args(["serve", "--addr", "127.0.0.1:0", "--run"])
        .arg(&run)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // "serving bc (...) on http://ADDR"
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let load = mmrf()
        .args([
            "bench",
            "serve",
            "--json",
            "--rps",
            "200",
            "--duration",
            "1",
            "--addr",
            &addr,
            "--data",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let report: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["ok"], 200, "{report}");
    assert!(report["p99_ms"].as_f64().unwrap() > 0.0);
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = server.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success() && rest.contains("shut down"), "{status:?}: {rest}");
}

#[test]
fn tune_chooses_the_best_point_on_tuning_worlds_and_refuses_held_out_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tune");
    // A quick tune of LTR's temperature on world 7 into `out`; its report.
    let tune = |extra: &[&str]| -> serde_json::Value {
        let run = mmrf()
            .args([
                "tune",
                "--quick",
                "--method",
                "ltr",
                "--grid",
                "listwise_temperature_s=3,30",
            ])
            .args(["--worlds", "7"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_slice(&std::fs::read(out.join("tune-ltr.json")).unwrap()).unwrap()
    };
    let report = tune(&[]);
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(report["worlds"], serde_json::json!([7]));
    // Each point trained and ran online: a real session WatchTime and a lift over the control.
    let lifts: Vec<f64> = points
        .iter()
        .map(|p| {
            let w = &p["worlds"][0];
            assert!(w["watch_time"].as_f64().unwrap() > 0.0, "{w}");
            w["lift"].as_f64().unwrap()
        })
        .collect();
    assert!(lifts.iter().all(|l| l.is_finite() && l.abs() < 1.0), "{lifts:?}");
    let best = if lifts[1] > lifts[0] { 1 } else { 0 };
    assert_eq!(report["chosen"], points[best]["point"]);
    // The two temperatures trained different rankers.
    assert_ne!(lifts[0], lifts[1]);
    let md = std::fs::read_to_string(out.join("tune-ltr.md")).unwrap();
    assert!(
        md.contains("**chosen**") && md.contains("listwise_temperature_s=30"),
        "{md}"
    );

    // With --extend, a best point on the grid's edge is followed past it until it is inside
    // the points tried, the setting's range ends, or three points were added.
    let report = tune(&["--extend"]);
    let values: Vec<f64> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["point"]["sets"][0].as_str().unwrap()["listwise_temperature_s=".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "reported in order: {values:?}");
    let chosen: f64 = report["chosen"]["sets"][0].as_str().unwrap()["listwise_temperature_s=".len()..]
        .parse()
        .unwrap();
    let inside = values.iter().any(|&v| v < chosen) && values.iter().any(|&v| v > chosen);
    assert!(
        inside || values.len() == 2 + 3 || report["extension"].is_string(),
        "{values:?}, chosen {chosen}"
    );

    let held_out = mmrf()
        .args([
            "tune",
            "--quick",
            "--method",
            "ltr",
            "--grid",
            "steps=1,2",
            "--worlds",
            "8,10",
            "--out",
        ])
        .arg(tmp.path().join("no"))
        .output()
        .unwrap();
    assert!(!held_out.status.success());
    let err = String::from_utf8_lossy(&held_out.stderr);
    assert!(
        err.contains("world 10 is held out") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        !tmp.path().join("no").exists(),
        "nothing is generated for a refused tune"
    );
}

#[test]
fn the_benchmark_reports_the_same_figures_whatever_trainings_run_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let figures = |jobs: &str| {
        let out = tmp.path().join(format!("jobs-{jobs}"));
        let run = mmrf()
            .args(["benchmark", "--quick", "--seed", "4", "--jobs", jobs, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let mut r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        let seconds = r["seconds"].take();
        assert!(seconds["train, all"].as_f64().unwrap() > 0.0, "{seconds}");
        (r["offline"].take(), r["online"].take(), r["methods"].take())
    };
    // One training at a time against three side by side, each in its own process: the
    // same weights, so the same figures to the last digit.
    assert_eq!(figures("1"), figures("3"));
}

#[test]
fn a_parquet_copy_trains_and_evaluates_to_the_same_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("world");
    small_world(&csv, 60);
    let pq = tmp.path().join("world-parquet");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = mmrf().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    run(&[
        &os("data"),
        &os("convert"),
        csv.as_os_str(),
        &os("--to"),
        &os("parquet"),
        &os("--out"),
        pq.as_os_str(),
    ]);
    assert!(pq.join("log_standard_4_08_to_4_21_1k.parquet").is_file());
    assert!(pq.join("mmrf_world.json").is_file(), "the side files are copied");
    // BC trained on each copy, then each evaluated on the other copy: four equal reports.
    let mut reports = Vec::new();
    for (train_on, name) in [(&csv, "bc-csv"), (&pq, "bc-parquet")] {
        let dir = tmp.path().join(name);
        run(&[
            &os("train"),
            &os("--method"),
            &os("bc"),
            &os("--set"),
            &os("epochs=1"),
            &os("--quiet"),
            &os("--data"),
            train_on.as_os_str(),
            &os("--out"),
            dir.as_os_str(),
        ]);
        for data in [&csv, &pq] {
            let json = run(&[
                &os("eval"),
                &os("--json"),
                &os("--run"),
                dir.as_os_str(),
                &os("--data"),
                data.as_os_str(),
            ]);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            reports.push(v["signals"].clone());
        }
    }
    assert!(reports[0]["WatchTime"]["gauc"].is_number());
    assert!(reports.iter().all(|r| *r == reports[0]), "{reports:?}");
    // `data check` reads the Parquet copy and counts what the CSVs count.
    let check = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&run(&[&os("data"), &os("check"), &os("--json"), d.as_os_str()])).unwrap()
    };
    let (a, b) = (check(&csv), check(&pq));
    for split in ["standard_train", "standard_test", "random"] {
        assert_eq!(a["logs"][split]["rows"], b["logs"][split]["rows"], "{split}");
        assert_eq!(a["logs"][split]["rates"], b["logs"][split]["rates"], "{split}");
    }
    // A second conversion into the same directory is refused and leaves it as it was.
    let out = mmrf()
        .args(["data", "convert"])
        .arg(&csv)
        .args(["--to", "parquet", "--out"])
        .arg(&pq)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert!(pq.join("user_features_1k.parquet").is_file());
}

#[cfg(not(feature = "mpi"))]
#[test]
fn data_parallel_training_says_it_needs_a_build_with_mpi() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("w");
    small_world(&world, 20);
    for flag in [&["--workers", "2"][..], &["--distributed"][..]] {
        let out = mmrf()
            .args(["train", "--method", "mmrf", "--quiet", "--data"])
            .arg(&world)
            .arg("--out")
            .arg(tmp.path().join("run"))
            .args(flag)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("built without MPI") && err.contains("--features mpi"),
            "{flag:?}: {err}"
        );
        assert!(!tmp.path().join("run").exists(), "{flag:?}: nothing written");
    }
}
