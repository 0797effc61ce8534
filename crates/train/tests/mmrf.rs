//! MMRF training on a small world: determinism, divergence stops, run round trips.

use std::sync::OnceLock;

use mmrf_data::session::{RequestSet, Timelines};
use mmrf_data::{Dataset, LogSplit};
use mmrf_train::{Method, Progress, Ranker, TrainOptions};
use mmrf_world::{generate, Scale, WorldConfig, WorldModel};

fn small() -> &'static (tempfile::TempDir, Dataset) {
    static W: OnceLock<(tempfile::TempDir, Dataset)> = OnceLock::new();
    W.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("world");
        generate(&WorldModel::new(WorldConfig::new(Scale::Small, 3)), &dir, &|_| {}).unwrap();
        let (data, _) = Dataset::open(&dir).unwrap();
        (tmp, data)
    })
}

fn opts(seed: u64, extra: &[&str]) -> TrainOptions {
    let mut sets: Vec<String> = [
        "steps=30",
        "batch=32",
        "sim_pretrain_steps=10",
        "sim_refit_every=2",
        "history=8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.extend(extra.iter().map(|s| s.to_string()));
    TrainOptions {
        seed,
        sets,
        progress: Progress::hidden(),
        ..Default::default()
    }
}

/// Scores of the first test requests.
fn scores(data: &Dataset, r: &dyn Ranker) -> Vec<f32> {
    let tl = Timelines::build(data);
    let set: RequestSet = data.requests(LogSplit::Test, &Default::default());
    let log = data.log(LogSplit::Test);
    let mut out = Vec::new();
    let mut cands = Vec::new();
    for i in 0..set.requests.len().min(40) {
        set.candidates(i, log, &mut cands).unwrap();
        let mut s = vec![0.0; cands.len()];
        r.score(&tl.state(&set, log, i, 8), &cands, &mut s);
        out.extend(s);
    }
    out
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let (tmp, data) = small();
    let run = |name: &str, seed: u64| {
        let r = mmrf_train::train(Method::Mmrf, data, &tmp.path().join(name), &opts(seed, &[])).unwrap();
        scores(data, r.as_ref())
    };
    let a = run("a", 5);
    let b = run("b", 5);
    let c = run("c", 6);
    assert!(a.iter().all(|x| x.is_finite()));
    assert_eq!(a, b, "the same seed must give the same network");
    assert_ne!(a, c);
    for file in [mmrf_train::run::WEIGHTS_FILE, mmrf_train::actor_critic::SIMULATOR_FILE] {
        let bytes = |run: &str| std::fs::read(tmp.path().join(run).join(file)).unwrap();
        assert!(
            bytes("a") == bytes("b"),
            "{file}: the same seed must write the same bytes"
        );
    }
    // The run directory reloads to the same scores.
    let (manifest, loaded) = mmrf_train::load(&tmp.path().join("a"), data).unwrap();
    assert_eq!(manifest.method, "mmrf");
    assert_eq!(scores(data, loaded.as_ref()), a);
    assert!(tmp
        .path()
        .join("a")
        .join(mmrf_train::actor_critic::SIMULATOR_FILE)
        .exists());
}

#[test]
fn a_state_that_reads_the_candidates_ranks_by_them() {
    let (tmp, data) = small();
    let dir = tmp.path().join("cands");
    let r = mmrf_train::train(Method::Mmrf, data, &dir, &opts(5, &["net.candidates=16"])).unwrap();
    let tl = Timelines::build(data);
    let set: RequestSet = data.requests(LogSplit::Test, &Default::default());
    let log = data.log(LogSplit::Test);
    let mut cands = Vec::new();
    set.candidates(0, log, &mut cands).unwrap();
    let state = tl.state(&set, log, 0, 8);
    let score = |pool: &[u32]| {
        let mut s = vec![0.0; pool.len()];
        r.score(&state, pool, &mut s);
        s
    };
    // The same two videos, offered among the request's candidates or alone: a state that
    // reads the candidates scores them differently; one that did not could not.
    let (all, pair) = (score(&cands), score(&cands[..2]));
    assert!(all.iter().all(|x| x.is_finite()));
    assert!(
        (all[0] - pair[0]).abs() + (all[1] - pair[1]).abs() > 1e-6,
        "the candidates did not reach the state: {:?} against {:?}",
        &all[..2],
        pair
    );
    // The setting is kept in the run and the reloaded ranker reads the same way.
    assert!(std::fs::read_to_string(dir.join("run.toml"))
        .unwrap()
        .contains("candidates = 16"));
    let (_, loaded) = mmrf_train::load(&dir, data).unwrap();
    let mut again = vec![0.0; 2];
    loaded.score(&state, &cands[..2], &mut again);
    assert_eq!(again, pair);
}

#[test]
fn every_ablation_trains_and_scores() {
    let (tmp, data) = small();
    // Every actor-critic method but MMRF itself (tested above).
    for m in Method::ALL
        .into_iter()
        .filter(|m| m.actor_critic() && *m != Method::Mmrf)
    {
        let r = mmrf_train::train(m, data, &tmp.path().join(m.name()), &opts(1, &[])).unwrap();
        assert_eq!(r.method(), m.name());
        let s = scores(data, r.as_ref());
        assert!(!s.is_empty() && s.iter().all(|x| x.is_finite()), "{}", m.name());
        let manifest = std::fs::read_to_string(tmp.path().join(m.name()).join("run.toml")).unwrap();
        let expect: &[&str] = match m {
            Method::MmrfCo => &["collaboration = \"concat\""],
            Method::MmrfDa => &["augment = \"none\""],
            Method::MmrfNs => &["augment = \"negative\""],
            Method::Pareto => &["objective = \"pareto\"", "collaboration = \"none\""],
            Method::Tscac => &["objective = \"tscac\"", "collaboration = \"none\""],
            _ => &["critic_signal = true", "collaboration = \"none\""],
        };
        for e in expect {
            assert!(manifest.contains(e), "{}: {e}\n{manifest}", m.name());
        }
    }
    // Pareto's learned scalarisation is in the learning curve, on the floored simplex.
    let curve = std::fs::read_to_string(tmp.path().join("pareto").join("train_log.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(curve.lines().last().unwrap()).unwrap();
    let w: Vec<f64> = last["pareto_weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(w.len(), 7);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{w:?}");
    assert!(w.iter().all(|&x| x > 0.0), "{w:?}");
}

#[test]
fn divergence_stops_with_the_step_and_the_network() {
    let (tmp, data) = small();
    let err = match mmrf_train::train(
        Method::MmrfDa,
        data,
        &tmp.path().join("nan"),
        &opts(1, &["lr_critic=1e30", "gamma=1.0"]),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a learning rate of 1e30 must diverge"),
    };
    assert!(err.starts_with("training diverged at step "), "{err}");
    assert!(err.contains("critics") || err.contains("actors"), "{err}");
}

#[test]
fn bad_settings_are_refused() {
    let (tmp, data) = small();
    for (set, needle) in [
        ("net.heads=5", "heads"),
        ("gamma=2.0", "gamma"),
        ("augment=\"maybe\"", "augment"),
        ("watch_time_huber=-1.0", "watch_time_huber"),
        ("sim_watch_cap_s=0.0", "sim_watch_cap_s"),
        ("net.dim=0", "`net.dim` = 0: must be at least 1"),
        (
            "lr_actor=-0.001",
            "`lr_actor` = -0.001: must be a finite number above 0",
        ),
        ("steps=0", "`steps` = 0: must be at least 1"),
        ("sim.dropout=1.0", "`sim.dropout` = 1: must be in [0, 0.99]"),
    ] {
        let err = match mmrf_train::train(Method::Mmrf, data, &tmp.path().join("bad"), &opts(1, &[set])) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{set} must be refused"),
        };
        assert!(err.contains(needle), "{set}: {err}");
    }
}

/// Train `method` with `o` into `dir` the way `train` does, checkpointing every 10
/// updates, and stop dead after `steps` updates.
fn kill_after(method: Method, data: &Dataset, dir: &std::path::Path, o: &TrainOptions, steps: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let fs = mmrf_model::FeatureSpace::from_dataset(data);
    let cfg: mmrf_train::actor_critic::ActorCriticConfig =
        mmrf_train::settings_from(mmrf_train::actor_critic_config(method.name()), o).unwrap();
    let _seeded = mmrf_model::device::seeded(o.seed);
    let mut t =
        mmrf_train::actor_critic::Trainer::new(data, &fs, method.name(), &cfg, mmrf_train::objective, o.seed, dir)
            .unwrap();
    t.pretrain_simulator(&Progress::hidden()).unwrap();
    while t.step < steps {
        t.step().unwrap();
        if t.step % 10 == 0 {
            t.save_checkpoint().unwrap();
        }
    }
} // dropped mid-run: nothing else is written

fn train_err(method: Method, data: &Dataset, dir: &std::path::Path, o: &TrainOptions) -> String {
    match mmrf_train::train(method, data, dir, o) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} into {} must be refused", method.name(), dir.display()),
    }
}

#[test]
fn resume_refuses_another_method_or_setting_and_falls_back_to_the_previous_checkpoint() {
    let (tmp, data) = small();
    let o = opts(4, &["checkpoint_every=10"]);
    let full = mmrf_train::train(Method::Mmrf, data, &tmp.path().join("full4"), &o).unwrap();
    let dir = tmp.path().join("killed4");
    kill_after(Method::Mmrf, data, &dir, &o, 25);
    let resume = |extra: &[&str]| TrainOptions {
        resume: true,
        ..opts(4, &[&["checkpoint_every=10"], extra].concat())
    };
    let err = train_err(Method::MmrfCo, data, &dir, &resume(&[]));
    assert!(err.contains("the checkpoint is of a mmrf run"), "{err}");
    let err = train_err(Method::Mmrf, data, &dir, &resume(&["steps=700"]));
    assert!(err.contains("steps = 700 (was 30)"), "{err}");
    let err = train_err(Method::Bc, data, &dir, &resume(&[]));
    assert!(err.contains("bc does not checkpoint"), "{err}");
    let err = train_err(Method::Mmrf, data, &tmp.path().join("never-trained"), &resume(&[]));
    assert!(err.contains("no checkpoint to resume"), "{err}");
    // The newest checkpoint (update 20) damaged: the one before it (update 10) is used,
    // and the run still ends where the uninterrupted one did.
    let newest = dir
        .join(mmrf_train::actor_critic::CHECKPOINT_DIR)
        .join("net.safetensors");
    std::fs::write(&newest, b"not weights").unwrap();
    assert!(dir.join("checkpoint.old").join("checkpoint.toml").exists());
    let resumed = mmrf_train::train(Method::Mmrf, data, &dir, &resume(&[])).unwrap();
    assert_eq!(scores(data, full.as_ref()), scores(data, resumed.as_ref()));
    assert!(
        !dir.join("checkpoint.old").exists(),
        "a finished run drops both checkpoints"
    );
}

#[test]
fn a_run_directory_is_replaced_whole_or_not_at_all() {
    let (tmp, data) = small();
    let bc = |seed: u64, force: bool| TrainOptions {
        seed,
        sets: vec!["epochs=1".into(), "max_requests=200".into()],
        progress: Progress::hidden(),
        force,
        ..Default::default()
    };
    let dir = tmp.path().join("runs").join("bc");
    mmrf_train::train(Method::Bc, data, &dir, &bc(1, false)).unwrap();
    let weights = || std::fs::read(dir.join(mmrf_train::run::WEIGHTS_FILE)).unwrap();
    let (before, curve) = (weights(), std::fs::read(dir.join("train_log.jsonl")).unwrap());
    let err = train_err(Method::Bc, data, &dir, &bc(2, false));
    assert!(err.contains("not empty") && err.contains("--force"), "{err}");
    assert!(weights() == before && std::fs::read(dir.join("train_log.jsonl")).unwrap() == curve);
    // A forced run that fails leaves the old run as it was.
    let err = train_err(
        Method::Bc,
        data,
        &dir,
        &TrainOptions {
            sets: vec!["lr=-1.0".into()],
            ..bc(2, true)
        },
    );
    assert!(err.contains("`lr` = -1: must be a finite number above 0"), "{err}");
    assert!(weights() == before);
    mmrf_train::train(Method::Bc, data, &dir, &bc(2, true)).unwrap();
    assert!(weights() != before, "--force replaced the run");
    assert_eq!(mmrf_train::Manifest::read(&dir).unwrap().seed, 2);
    let names: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bc")], "nothing staged is left");
}

#[test]
fn a_killed_run_resumes_to_the_same_model() {
    let (tmp, data) = small();
    let o = opts(9, &["checkpoint_every=10"]);
    let full = mmrf_train::train(Method::Mmrf, data, &tmp.path().join("full"), &o).unwrap();
    assert!(
        !tmp.path()
            .join("full")
            .join(mmrf_train::actor_critic::CHECKPOINT_DIR)
            .exists(),
        "a finished run drops its checkpoint"
    );

    // The same run, killed after 17 updates (its last checkpoint is at update 10).
    let dir = tmp.path().join("killed");
    kill_after(Method::Mmrf, data, &dir, &o, 17);
    assert!(dir
        .join(mmrf_train::actor_critic::CHECKPOINT_DIR)
        .join("checkpoint.toml")
        .exists());
    assert!(!dir.join("run.toml").exists());

    let resumed = mmrf_train::train(
        Method::Mmrf,
        data,
        &dir,
        &TrainOptions {
            resume: true,
            ..opts(9, &["checkpoint_every=10"])
        },
    )
    .unwrap();
    assert_eq!(scores(data, full.as_ref()), scores(data, resumed.as_ref()));
    // The learning curve has each logged step once.
    let curve = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
    let steps: Vec<u64> = curve
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut sorted = steps.clone();
    sorted.dedup();
    assert_eq!(steps, sorted);
    assert_eq!(
        steps,
        std::fs::read_to_string(tmp.path().join("full").join("train_log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap())
            .collect::<Vec<_>>()
    );
}

#[test]
fn supervised_baselines_train_reload_and_learn_the_label() {
    let (tmp, data) = small();
    for m in [Method::WideDeep, Method::DeepFm, Method::Ltr] {
        let o = TrainOptions {
            seed: 2,
            sets: vec!["steps=60".into(), "batch=64".into()],
            progress: Progress::hidden(),
            ..Default::default()
        };
        let dir = tmp.path().join(m.name());
        let r = mmrf_train::train(m, data, &dir, &o).unwrap();
        let s = scores(data, r.as_ref());
        assert!(!s.is_empty() && s.iter().all(|x| x.is_finite()), "{}", m.name());
        let (manifest, loaded) = mmrf_train::load(&dir, data).unwrap();
        assert_eq!(manifest.method, m.name());
        assert_eq!(scores(data, loaded.as_ref()), s, "{}", m.name());
        // Trained on valid plays or watch time, the ranker must order held-out impressions
        // by play time better than chance.
        let tl = Timelines::build(data);
        let set = data.requests(LogSplit::Test, &Default::default());
        let log = data.log(LogSplit::Test);
        let (mut users, mut labels, mut sc) = (Vec::new(), Vec::new(), Vec::new());
        let mut cands = Vec::new();
        for i in 0..set.requests.len() {
            set.candidates(i, log, &mut cands).unwrap();
            let mut out = vec![0.0; cands.len()];
            r.score(&tl.state(&set, log, i, 8), &cands, &mut out);
            for &row in set.shown_rows(&set.requests[i]) {
                let j = cands.iter().position(|&c| c == log.video[row as usize]).unwrap();
                users.push(log.user[row as usize]);
                labels.push(log.play_time_ms[row as usize] as f32);
                sc.push(out[j]);
            }
        }
        let g = mmrf_metrics::gauc(&users, &labels, &sc).unwrap().value;
        assert!(g > 0.52, "{}: WatchTime GAUC {g}", m.name());
    }
}

#[test]
fn requests_wider_than_six_are_trained_on_whole() {
    // K = 8 impressions per request: every one of them reaches the networks (the
    // simulator's held-out fit reads every test impression, none cut at six).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("world");
    let mut config = WorldConfig::new(Scale::Small, 5);
    config.k = 8;
    config.n_users = 60;
    generate(&WorldModel::new(config), &dir, &|_| {}).unwrap();
    let (data, _) = Dataset::open(&dir).unwrap();
    let test = data.requests(LogSplit::Test, &Default::default());
    assert_eq!(test.max_shown(), 8);
    assert!(test.requests.len() < 4000, "the fit report reads every test request");
    let run = tmp.path().join("mmrf");
    let r = mmrf_train::train(Method::Mmrf, &data, &run, &opts(2, &[])).unwrap();
    assert!(scores(&data, r.as_ref()).iter().all(|x| x.is_finite()));
    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join(mmrf_train::actor_critic::SIMULATOR_FIT_FILE)).unwrap())
            .unwrap();
    assert_eq!(
        fit["impressions"].as_u64().unwrap() as usize,
        data.log(LogSplit::Test).len()
    );
    let o = TrainOptions {
        seed: 2,
        sets: vec!["steps=20".into(), "batch=32".into()],
        progress: Progress::hidden(),
        ..Default::default()
    };
    let ltr = mmrf_train::train(Method::Ltr, &data, &tmp.path().join("ltr"), &o).unwrap();
    assert!(scores(&data, ltr.as_ref()).iter().all(|x| x.is_finite()));
}

/// Eq. 6's uncertainty: with the twin's dropout kept on when labelling, the two heads
/// disagree more on the non-impression samples than their own layers alone make them (a
/// run without the masks is otherwise the same run, seed for seed). The same seed draws
/// the same masks.
#[test]
fn monte_carlo_dropout_makes_the_labels_uncertainty_live() {
    let (tmp, data) = small();
    let mean_kl = |name: &str, extra: &[&str]| -> f64 {
        let dir = tmp.path().join(name);
        mmrf_train::train(Method::Mmrf, data, &dir, &opts(5, &[&["log_every=1"], extra].concat())).unwrap();
        let text = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
        let kl: Vec<f64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["simulator_kl"].as_f64())
            .collect();
        assert!(kl.len() > 20, "{name}: {} KL lines", kl.len());
        kl.iter().sum::<f64>() / kl.len() as f64
    };
    let off = mean_kl("mc-off", &["sim_mc_dropout=false"]);
    let on = mean_kl("mc-on", &["sim_mc_dropout=true"]);
    assert!(on > 1.1 * off, "KL with MC dropout {on}, without {off}");
    let again = mean_kl("mc-on-again", &["sim_mc_dropout=true"]);
    assert_eq!(on, again, "the same seed draws the same masks");
}

/// The score-list critic: its actors are pulled toward the logged behaviour by the weight
/// the settings give the pull (the logged items' `−log p` falls further with a strong pull
/// than with none), a trained run loads and ranks, and Pareto, whose weights read the linear
/// critic's action gradients, refuses it.
#[test]
fn the_list_critic_trains_pulled_toward_the_log_by_its_weight() {
    let (tmp, data) = small();
    let nll = |name: &str, pull: &str| -> f64 {
        let dir = tmp.path().join(name);
        let sets = ["net.critic=\"list\"", "log_every=1", "steps=40", pull];
        let r = mmrf_train::train(Method::Mmrf, data, &dir, &opts(5, &sets)).unwrap();
        let s = scores(data, r.as_ref());
        assert!(
            s.iter().all(|x| x.is_finite()) && s.iter().any(|x| *x != s[0]),
            "{name}"
        );
        let text = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.iter().all(|l| l["main_actor_alignment"].is_null()), "{name}");
        let nll: Vec<f64> = lines.iter().filter_map(|l| l["behaviour_nll"].as_f64()).collect();
        assert_eq!(nll.len(), 40, "{name}");
        nll[30..].iter().sum::<f64>() / 10.0
    };
    let (free, pulled) = (
        nll("list-free", "behaviour_pull=0"),
        nll("list-pulled", "behaviour_pull=20"),
    );
    assert!(pulled < free - 0.05, "pulled {pulled}, free {free}");
    let err = mmrf_train::train(
        Method::Pareto,
        data,
        &tmp.path().join("list-pareto"),
        &opts(5, &["net.critic=\"list\""]),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("net.critic"), "{err}");
}

/// The paper's non-impression volume: `sample_fraction = 0.25` labels a quarter of a
/// sampled request's never-shown candidates, in rows of a slate's width, where the
/// default labels as many as the request showed.
#[test]
fn a_sample_fraction_labels_that_share_of_the_non_impressions() {
    let (tmp, data) = small();
    let mean_batch = |name: &str, extra: &[&str]| -> f64 {
        let dir = tmp.path().join(name);
        let sets = [&["log_every=1", "steps=12", "sample_share=1"], extra].concat();
        mmrf_train::train(Method::Mmrf, data, &dir, &opts(5, &sets)).unwrap();
        let text = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
        let b: Vec<f64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["batch"].as_f64())
            .collect();
        b.iter().sum::<f64>() / b.len() as f64
    };
    // Every request sampled: K shown plus K labelled, twice the logged batch.
    let default = mean_batch("fraction-default", &[]);
    assert!((default - 64.0).abs() < 4.0, "{default}");
    // A quarter of the small world's ~94 never-shown candidates: 24 in 4 rows of 6.
    let quarter = mean_batch("fraction-quarter", &["sample_fraction=0.25"]);
    assert!(quarter > 32.0 + 32.0 * 3.5 && quarter < 32.0 + 32.0 * 4.5, "{quarter}");
}

/// The last line of a run's learning curve.
fn last_logged(dir: &std::path::Path) -> serde_json::Value {
    let curve = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
    serde_json::from_str(curve.lines().last().unwrap()).unwrap()
}

#[test]
fn a_killed_tscac_run_resumes_with_its_multipliers() {
    let (tmp, data) = small();
    // A bound that binds, so the multipliers are non-zero when the run is killed in its
    // second stage (updates 30 to 59).
    let o = opts(4, &["checkpoint_every=10", "tscac_bound=0.05", "tscac_dual_lr=0.5"]);
    let full = mmrf_train::train(Method::Tscac, data, &tmp.path().join("tscac-full"), &o).unwrap();
    let dir = tmp.path().join("tscac-killed");
    kill_after(Method::Tscac, data, &dir, &o, 47);
    let state = std::fs::read_to_string(
        dir.join(mmrf_train::actor_critic::CHECKPOINT_DIR)
            .join("checkpoint.toml"),
    )
    .unwrap();
    // (The parameter ids are u64s beyond TOML's integers: read the one line.)
    let line = state.lines().find(|l| l.starts_with("multipliers = ")).unwrap();
    let multipliers: Vec<f64> = line["multipliers = ".len()..]
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(multipliers.len(), 6);
    assert!(
        multipliers.iter().any(|&m| m > 0.0),
        "stage 2 has raised a multiplier by update 40: {multipliers:?}"
    );
    let resumed = mmrf_train::train(
        Method::Tscac,
        data,
        &dir,
        &TrainOptions {
            resume: true,
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(scores(data, full.as_ref()), scores(data, resumed.as_ref()));
    let (a, b) = (last_logged(&tmp.path().join("tscac-full")), last_logged(&dir));
    assert_eq!(a["step"], 59);
    assert_eq!(a["tscac_multipliers"], b["tscac_multipliers"]);
    assert!(a["tscac_multipliers"].is_array());
}

#[test]
fn algorithm_one_next_state_trains_apart_from_the_logged_one_and_needs_the_simulator() {
    let (tmp, data) = small();
    let logged = mmrf_train::train(Method::Mmrf, data, &tmp.path().join("next-logged"), &opts(6, &[])).unwrap();
    let simulated = mmrf_train::train(
        Method::Mmrf,
        data,
        &tmp.path().join("next-simulated"),
        &opts(6, &["next_state=simulated"]),
    )
    .unwrap();
    let (a, b) = (scores(data, logged.as_ref()), scores(data, simulated.as_ref()));
    assert!(a.iter().all(|x| x.is_finite()) && b.iter().all(|x| x.is_finite()));
    assert_ne!(a, b, "the samples' next states changed what was learned");
    let again = mmrf_train::train(
        Method::Mmrf,
        data,
        &tmp.path().join("next-simulated-again"),
        &opts(6, &["next_state=simulated"]),
    )
    .unwrap();
    assert_eq!(b, scores(data, again.as_ref()), "the simulated feedback is seeded");
    for (method, extra, needle) in [
        (
            Method::MmrfDa,
            "next_state=simulated",
            "needs `augment` = \"simulator\"",
        ),
        (Method::Mmrf, "bootstrap=logged", "needs `bootstrap` = \"policy\""),
    ] {
        let sets = ["next_state=simulated", extra];
        let err = train_err(method, data, &tmp.path().join("next-refused"), &opts(6, &sets));
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn a_run_ranks_by_its_critic_or_reward_head_alike_in_any_batch() {
    use mmrf_train::actor_critic::RankBy;
    let (tmp, data) = small();
    let dir = tmp.path().join("rank-by");
    let actor = mmrf_train::train(Method::Mmrf, data, &dir, &opts(4, &[])).unwrap();
    let tl = Timelines::build(data);
    let set = data.requests(LogSplit::Test, &Default::default());
    let log = data.log(LogSplit::Test);
    // Requests with candidate lists of different lengths, so a batch pads them.
    let n = set.requests.len().min(12);
    let cands: Vec<Vec<u32>> = (0..n)
        .map(|i| {
            let mut c = Vec::new();
            set.candidates(i, log, &mut c).unwrap();
            c.truncate(3 + 5 * i);
            c
        })
        .collect();
    let states: Vec<_> = (0..n).map(|i| tl.state(&set, log, i, 8)).collect();
    let refs: Vec<&[u32]> = cands.iter().map(|c| c.as_slice()).collect();
    let batch = |r: &dyn Ranker| {
        let mut out = vec![Vec::new(); n];
        r.score_batch(&states, &refs, &mut out);
        out
    };
    let by_actor = batch(actor.as_ref());
    let mut rankings = Vec::new();
    for rank_by in [RankBy::CriticGreedy, RankBy::RewardHead] {
        let (_, r) = mmrf_train::load_ranking(&dir, data, rank_by).unwrap();
        assert_eq!(r.method(), format!("mmrf-{rank_by}"));
        let scores = batch(r.as_ref());
        for i in 0..n {
            assert_eq!(scores[i].len(), cands[i].len());
            assert!(scores[i].iter().all(|x| x.is_finite()));
            // A candidate's value is its own: the same alone, in a batch of one.
            for (j, &c) in cands[i].iter().enumerate() {
                let mut alone = [0.0];
                r.score(&states[i], &[c], &mut alone);
                assert!(
                    (alone[0] - scores[i][j]).abs() <= 1e-4 * (1.0 + alone[0].abs()),
                    "{rank_by}: request {i}, candidate {j}: {} alone, {} in the batch",
                    alone[0],
                    scores[i][j]
                );
            }
        }
        // Not the actor's ranking under another name.
        let agree: f32 = (0..n)
            .map(|i| mmrf_train::ranker::pair_agreement(&scores[i], &by_actor[i]))
            .sum::<f32>()
            / n as f32;
        assert!(agree < 0.99, "{rank_by} orders as the actor does ({agree})");
        assert!(r.collaboration_sensitivity(&states, &refs).is_none());
        rankings.push(scores);
    }
    assert_ne!(rankings[0], rankings[1], "the critic and the reward head rank alike");
    // The actor's own ranking is the method, under its name.
    let (_, same) = mmrf_train::load_ranking(&dir, data, RankBy::Actor).unwrap();
    assert_eq!(same.method(), "mmrf");
    assert_eq!(batch(same.as_ref()), by_actor);
    // A method without a critic has nothing to rank by but itself.
    let deepfm = tmp.path().join("rank-by-deepfm");
    let o = TrainOptions {
        seed: 2,
        sets: vec!["steps=5".into(), "batch=16".into()],
        progress: Progress::hidden(),
        ..Default::default()
    };
    mmrf_train::train(Method::DeepFm, data, &deepfm, &o).unwrap();
    let err = mmrf_train::load_ranking(&deepfm, data, RankBy::CriticGreedy)
        .err()
        .expect("a DeepFM run has no critic")
        .to_string();
    assert!(err.contains("no critic") && err.contains("deepfm"), "{err}");
    assert!("critic".parse::<RankBy>().unwrap_err().contains("critic-greedy"));
}

#[test]
fn a_critic_with_the_session_value_trains_reloads_and_ranks_otherwise() {
    let (tmp, data) = small();
    let plain = mmrf_train::train(Method::Mmrf, data, &tmp.path().join("sv-off"), &opts(6, &[])).unwrap();
    let dir = tmp.path().join("sv-on");
    let with = mmrf_train::train(Method::Mmrf, data, &dir, &opts(6, &["net.session_value=true"])).unwrap();
    let manifest = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(manifest.contains("session_value = true"), "{manifest}");
    let s = scores(data, with.as_ref());
    assert!(s.iter().all(|x| x.is_finite()));
    // The head changes what the critics learn, so the actor's ranking too.
    assert_ne!(s, scores(data, plain.as_ref()));
    let (_, loaded) = mmrf_train::load(&dir, data).unwrap();
    assert_eq!(scores(data, loaded.as_ref()), s);
    // The session value is learned: its loss is logged, and falls from its first value.
    let curve = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
    let losses: Vec<f64> = curve
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["session_value_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(losses.len() >= 2 && losses.iter().all(|x| x.is_finite()), "{losses:?}");
    assert!(losses.last() < losses.first(), "{losses:?}");
    let off = std::fs::read_to_string(tmp.path().join("sv-off").join("train_log.jsonl")).unwrap();
    assert!(off.lines().all(|l| l.contains("\"session_value_loss\":null")));
}
