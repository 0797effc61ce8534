//! `mmrf benchmark`: the one-command main job.
//!
//! Generates (or reuses) the world, trains the methods, evaluates each offline on the
//! held-out split, runs the online A/B test in the world, checks NCIS against the truth,
//! and writes `results.json`, `results.md` and PNG plots to the output directory.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use mmrf_data::session::Timelines;
use mmrf_data::Dataset;
use mmrf_eval::abtest::{ab_test, AbConfig, AbReport};
use mmrf_eval::fidelity::{fidelity, paired_truths, Candidate, FidelityReport, TruthDifference};
use mmrf_eval::offline::{compare, metrics, score_split, Behaviour, Comparison, OfflineConfig, OfflineReport};
use mmrf_train::actor_critic::RankBy;
use mmrf_train::{AsPolicy, LoggingRanker, Method, Ranker, Scaled, UniformRanker};
use mmrf_world::{Scale, WorldConfig};
use serde::Serialize;

/// The methods in the paper's table order, LTR last (the control arm of the online test).
const METHODS: [Method; 11] = [
    Method::Bc,
    Method::WideDeep,
    Method::DeepFm,
    Method::Pareto,
    Method::Tscac,
    Method::Massa,
    Method::MmrfCo,
    Method::MmrfDa,
    Method::MmrfNs,
    Method::Mmrf,
    Method::Ltr,
];

/// The method every other is compared with, paired over users.
const FOCUS: &str = "mmrf";

/// The rankings of MMRF's own run reported beside its actor: its WatchTime critic per item
/// and its reward head. They say whether the actor or the critic holds MMRF back; they are
/// diagnostics, not methods (no training of their own, no NCIS fidelity check).
const DIAGNOSTICS: [RankBy; 2] = [RankBy::CriticGreedy, RankBy::RewardHead];

/// `focus` against each other method on the same impressions (empty without `focus`).
fn paired_against(
    focus: &str,
    offline: &[OfflineReport],
    cfg: &OfflineConfig,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, Comparison>>> {
    let Some(f) = offline.iter().find(|r| r.method == focus) else {
        return Ok(Default::default());
    };
    offline
        .iter()
        .filter(|r| r.method != focus)
        .map(|r| Ok((r.method.clone(), compare(f, r, &cfg.ope).map_err(anyhow::Error::msg)?)))
        .collect()
}

#[derive(Serialize)]
struct Results {
    /// Per method: its offline metrics and, for the online arms, its online figures
    /// (the schema of the README's "results.json").
    methods: std::collections::BTreeMap<String, MethodResults>,
    config: BenchmarkConfig,
    seeds: Vec<u64>,
    world: Option<mmrf_world::WorldConfig>,
    seed: u64,
    offline_config: OfflineConfig,
    offline: Vec<OfflineReport>,
    /// MMRF against every other method, per signal, paired over users: keyed by the other
    /// method, then by signal (GAUC and NCIS differences, MMRF minus the method).
    paired: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Comparison>>,
    /// The data's directory and whether it is a generated world.
    data_dir: std::path::PathBuf,
    online: Option<AbReport>,
    /// NCIS against the truth for policies of known, different quality.
    fidelity: Option<FidelityReport>,
    /// NCIS against the truth for the methods themselves, each the stochastic policy
    /// Table 1 evaluates (`softmax(score/τ)` at its matched τ): does Table 1's NCIS order
    /// them as the world does?
    fidelity_methods: Option<FidelityReport>,
    /// MMRF against every other method by the true WatchTime of the same stochastic
    /// policies (per shown video and of the first draw), paired over users.
    fidelity_methods_paired: Vec<TruthDifference>,
    /// MMRF's feedback simulator against the world on shown and never-shown items.
    simulator: Option<mmrf_eval::ssb::SsbReport>,
    seconds: std::collections::BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct BenchmarkConfig {
    quick: bool,
    control: Option<String>,
    online_days: Option<u32>,
    tau: &'static str,
    cap: f64,
}

#[derive(Serialize)]
struct SignalFigures {
    gauc: Option<f64>,
    gauc_within_request: Option<f64>,
    ncis: f64,
    ncis_ci: [f64; 2],
    ess: f64,
}

#[derive(Serialize)]
struct OnlineFigures {
    watch_time: f64,
    depth: f64,
    follow: f64,
    comment: f64,
    like: f64,
    hate: f64,
    /// Relative WatchTime lift against the control, with its paired 95 % CI.
    lift_vs_control: f64,
    lift_ci: [f64; 2],
}

#[derive(Serialize)]
struct MethodResults {
    offline: std::collections::BTreeMap<String, SignalFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<OnlineFigures>,
    /// How much of the way to the world's myopic oracle the method goes (generated worlds).
    #[serde(skip_serializing_if = "Option::is_none")]
    headroom_share: Option<HeadroomShare>,
}

/// A method's share of the headroom the world's myopic oracle shows.
#[derive(Serialize)]
struct HeadroomShare {
    /// `(method − control) / (oracle − control)` of session WatchTime online; its interval
    /// is the method's paired lift interval over the oracle's mean lift.
    online: Option<f64>,
    online_ci: Option<[f64; 2]>,
    /// Per signal, `(GAUC − 0.5) / (oracle's GAUC − 0.5)`: 0 for a random ranking, 1 for the
    /// oracle's.
    offline: std::collections::BTreeMap<String, f64>,
}

/// The method the headroom is measured against: the world's myopic oracle.
const ORACLE: &str = "oracle";

fn headroom_share(
    report: &OfflineReport,
    oracle: Option<&OfflineReport>,
    online: Option<&AbReport>,
) -> Option<HeadroomShare> {
    let oracle = oracle?;
    let offline = report
        .signals
        .iter()
        .filter_map(|(sig, m)| {
            let o = oracle.signals.get(sig)?.gauc?;
            Some((sig.clone(), (m.gauc? - 0.5) / (o - 0.5)))
        })
        .collect();
    let lift = |name: &str| online?.arms.iter().find(|a| a.name == name)?.lift("watch_time");
    let is_control = online.is_some_and(|o| o.control == report.method);
    let (share, ci) = match (lift(&report.method), lift(ORACLE)) {
        (Some(m), Some(o)) => (Some(m.mean / o.mean), Some([m.ci[0] / o.mean, m.ci[1] / o.mean])),
        (None, Some(_)) if is_control => (Some(0.0), Some([0.0, 0.0])),
        _ => (None, None),
    };
    Some(HeadroomShare {
        online: share,
        online_ci: ci,
        offline,
    })
}

fn method_results(
    offline: &[OfflineReport],
    online: Option<&AbReport>,
) -> std::collections::BTreeMap<String, MethodResults> {
    offline
        .iter()
        .map(|r| {
            let off = r
                .signals
                .iter()
                .map(|(k, m)| {
                    (
                        k.clone(),
                        SignalFigures {
                            gauc: m.gauc,
                            gauc_within_request: m.gauc_within_request,
                            ncis: m.ncis,
                            ncis_ci: m.ncis_ci,
                            ess: m.ess,
                        },
                    )
                })
                .collect();
            let on = online
                .and_then(|o| o.arms.iter().find(|a| a.name == r.method))
                .map(|a| {
                    let per = |m: &str| a.per_session(m).map_or(f64::NAN, |e| e.mean);
                    let lift = a.lift("watch_time");
                    OnlineFigures {
                        watch_time: per("watch_time"),
                        depth: per("depth"),
                        follow: per("follow"),
                        comment: per("comment"),
                        like: per("like"),
                        hate: per("hate"),
                        lift_vs_control: lift.map_or(f64::NAN, |l| l.mean),
                        lift_ci: lift.map_or([f64::NAN; 2], |l| l.ci),
                    }
                });
            (
                r.method.clone(),
                MethodResults {
                    offline: off,
                    online: on,
                    headroom_share: headroom_share(r, offline.iter().find(|o| o.method == ORACLE), online),
                },
            )
        })
        .collect()
}

/// The benchmark with `seeds` seeds (world and training seeds `seed..seed + seeds`): one
/// seed writes its reports to `out`; several write each seed's to `out/seed-S/` and the
/// mean and 95 % interval over seeds of every figure to `out/results.json` and
/// `out/results.md`.
pub fn run(out: &Path, quick: bool, seed: u64, seeds: usize, jobs: usize, data: Option<&Path>) -> Result<()> {
    anyhow::ensure!(seeds >= 1, "--seeds must be at least 1");
    if seeds == 1 {
        return run_one(out, quick, seed, jobs, data).map(|_| ());
    }
    let mut all = Vec::new();
    for s in seed..seed + seeds as u64 {
        eprintln!("== seed {s}");
        all.push(run_one(&out.join(format!("seed-{s}")), quick, s, jobs, data)?);
    }
    let (json, md) = across_seeds(&all)?;
    std::fs::create_dir_all(out)?;
    mmrf_data::write_atomic(&out.join("results.json"), json.as_bytes()).context("writing results.json")?;
    mmrf_data::write_atomic(&out.join("results.md"), md.as_bytes()).context("writing results.md")?;
    let control = all[0]["config"]["control"].as_str().map(str::to_string);
    if let Err(e) = plots_over_seeds(out, &serde_json::from_str(&json)?, control.as_deref()) {
        eprintln!("warning: plots skipped: {e}");
    }
    println!("{md}");
    eprintln!(
        "wrote {}/results.json, results.md and plots ({seeds} seeds)",
        out.display()
    );
    Ok(())
}

/// The plots of `results.json` over seeds: Table 1's GAUC and NCIS as bars with their
/// 95 % intervals over seeds (`offline_gauc.png`, `offline_ncis.png`) and, on a generated
/// world, each method's mean lift over the control (`online_lift.png`).
fn plots_over_seeds(out: &Path, results: &serde_json::Value, control: Option<&str>) -> Result<(), String> {
    let methods: Vec<&str> = METHODS
        .iter()
        .map(|m| m.name())
        .filter(|m| results["methods"].get(*m).is_some())
        .collect();
    let figure = |v: &serde_json::Value| -> Option<(f64, Option<[f64; 2]>)> {
        let mean = v["mean"].as_f64()?;
        Some((mean, Some([v["ci"][0].as_f64()?, v["ci"][1].as_f64()?])))
    };
    use mmrf_eval::report::Axis;
    for (file, metric, key, axis) in [
        ("offline_gauc.png", "GAUC", "gauc", Axis::Within(0.0, 1.0)),
        ("offline_ncis.png", "NCIS", "ncis", Axis::FromZero),
    ] {
        let rows: Vec<mmrf_eval::report::BarRow> = methods
            .iter()
            .map(|m| mmrf_eval::report::BarRow {
                method: m.to_string(),
                values: mmrf_data::Signal::ALL
                    .iter()
                    .map(|sig| figure(&results["methods"][*m]["offline"][sig.name()][key]))
                    .collect(),
            })
            .collect();
        mmrf_eval::report::signal_bars(&out.join(file), &format!("{metric} over seeds"), &rows, axis, FOCUS)?;
    }
    if let Some(control) = control {
        let arms: Vec<(String, f64, [f64; 2])> = methods
            .iter()
            .filter(|m| **m != control)
            .filter_map(|m| {
                let (mean, ci) = figure(&results["methods"][*m]["online"]["lift_vs_control"])?;
                Some((m.to_string(), mean, ci?))
            })
            .collect();
        mmrf_eval::report::lift_bars(&out.join("online_lift.png"), &arms, control, FOCUS)?;
    }
    Ok(())
}

/// Per-seed paired differences (`{"value", "ci"}` each, Null where missing) summarised
/// over seeds: the mean with its interval, and on how many seeds the difference's own
/// interval lay above or below zero. Returns the JSON and the two Markdown cells.
fn over_seeds(per_seed: &[&serde_json::Value], digits: usize) -> (serde_json::Value, String) {
    let values: Vec<f64> = per_seed
        .iter()
        .map(|d| d["value"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let (mean, ci) = mean_ci(&values);
    let count = |side: usize, sign: f64| {
        per_seed
            .iter()
            .filter(|d| d["ci"][side].as_f64().is_some_and(|x| x * sign > 0.0))
            .count()
    };
    let (leads, trails) = (count(0, 1.0), count(1, -1.0));
    (
        serde_json::json!({"mean": mean, "ci": ci, "seeds_leading": leads, "seeds_trailing": trails}),
        format!(
            "{mean:+.digits$} [{:+.digits$}, {:+.digits$}] | {leads} / {trails} of {}",
            ci[0],
            ci[1],
            per_seed.len()
        ),
    )
}

/// Mean and a 95 % t-interval of per-seed values.
pub(crate) fn mean_ci(v: &[f64]) -> (f64, [f64; 2]) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, [f64::NAN; 2]);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, [mean, mean]);
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // Two-sided 97.5 % Student t quantiles for 1..10 degrees of freedom, then normal.
    const T: [f64; 10] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
    let t = T.get(v.len() - 2).copied().unwrap_or(1.96);
    let h = t * sd / n.sqrt();
    (mean, [mean - h, mean + h])
}

/// `results.json` and `results.md` over several seeds' results.
fn across_seeds(all: &[serde_json::Value]) -> Result<(String, String)> {
    let seeds: Vec<u64> = all.iter().filter_map(|r| r["seed"].as_u64()).collect();
    let methods: Vec<String> = all[0]["methods"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let signals = ["Click", "Like", "Follow", "Comment", "Hate", "LongView", "WatchTime"];
    let online_keys = [
        "watch_time",
        "depth",
        "follow",
        "comment",
        "like",
        "hate",
        "lift_vs_control",
    ];
    let pick = |path: &[&str]| -> Vec<f64> {
        all.iter()
            .map(|r| path.iter().fold(r, |v, k| &v[*k]).as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let figure = |path: &[&str]| {
        let (mean, ci) = mean_ci(&pick(path));
        serde_json::json!({"mean": mean, "ci": ci})
    };
    let mut out = serde_json::Map::new();
    let mut md = format!(
        "### Table 1 over {} seeds ({:?}): mean [95 % CI over seeds]\n\n| Method | WatchTime GAUC | WatchTime GAUC within a request | WatchTime NCIS | Click GAUC | Click NCIS | LongView GAUC | LongView NCIS |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        seeds.len(),
        seeds
    );
    let cell = |v: &serde_json::Value, d: usize| {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            v["mean"].as_f64().unwrap_or(f64::NAN),
            v["ci"][0].as_f64().unwrap_or(f64::NAN),
            v["ci"][1].as_f64().unwrap_or(f64::NAN)
        )
    };
    let mut md2 = format!(
        "\n### Table 2 over {} seeds: session WatchTime and its lift against the control\n\n| Arm | WatchTime / session | lift vs control |\n|---|---:|---:|\n",
        seeds.len()
    );
    let mut md5 = format!(
        "\n### Headroom share over {} seeds: the way to the world's myopic oracle covered, mean [95 % CI over seeds]\n\n| Method | online session WatchTime | WatchTime GAUC |\n|---|---:|---:|\n",
        seeds.len()
    );
    for m in &methods {
        let mut offline = serde_json::Map::new();
        for sig in signals {
            offline.insert(
                sig.to_string(),
                serde_json::json!({
                    "gauc": figure(&["methods", m, "offline", sig, "gauc"]),
                    "gauc_within_request": figure(&["methods", m, "offline", sig, "gauc_within_request"]),
                    "ncis": figure(&["methods", m, "offline", sig, "ncis"]),
                    "ess": figure(&["methods", m, "offline", sig, "ess"]),
                }),
            );
        }
        let mut online = serde_json::Map::new();
        for k in online_keys {
            online.insert(k.to_string(), figure(&["methods", m, "online", k]));
        }
        let headroom = serde_json::json!({
            "online": figure(&["methods", m, "headroom_share", "online"]),
            "offline": signals
                .iter()
                .map(|sig| (sig.to_string(), figure(&["methods", m, "headroom_share", "offline", sig])))
                .collect::<serde_json::Map<_, _>>(),
        });
        md5 += &format!(
            "| {m} | {} | {} |\n",
            cell(&headroom["online"], 3),
            cell(&headroom["offline"]["WatchTime"], 3)
        );
        md += &format!(
            "| {m} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&offline["WatchTime"]["gauc"], 4),
            cell(&offline["WatchTime"]["gauc_within_request"], 4),
            cell(&offline["WatchTime"]["ncis"], 2),
            cell(&offline["Click"]["gauc"], 4),
            cell(&offline["Click"]["ncis"], 4),
            cell(&offline["LongView"]["gauc"], 4),
            cell(&offline["LongView"]["ncis"], 4)
        );
        md2 += &format!(
            "| {m} | {} | {} |\n",
            cell(&online["watch_time"], 1),
            cell(&online["lift_vs_control"], 4)
        );
        out.insert(
            m.clone(),
            serde_json::json!({"offline": offline, "online": online, "headroom_share": headroom}),
        );
    }
    // MMRF against each method, paired over users within each seed: the mean difference
    // over seeds and on how many seeds MMRF was ahead or behind with an interval that
    // excludes zero.
    let mut paired = serde_json::Map::new();
    let mut md3 = format!(
        "\n### {FOCUS} against each method, paired over users within each seed: mean difference [95 % CI over seeds]; seeds where {FOCUS} leads / trails (interval excluding 0)\n\n| Method | WatchTime GAUC: {FOCUS} − method | seeds | WatchTime GAUC within a request: {FOCUS} − method | seeds | WatchTime NCIS: {FOCUS} − method | seeds |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for m in methods.iter().filter(|m| all[0]["paired"].get(m.as_str()).is_some()) {
        let mut row = serde_json::Map::new();
        let mut cells = Vec::new();
        for metric in ["gauc", "gauc_within_request", "ncis"] {
            let path = ["paired", m, "WatchTime", metric];
            let per_seed: Vec<&serde_json::Value> = all.iter().map(|r| path.iter().fold(r, |v, k| &v[*k])).collect();
            let digits = if metric == "ncis" { 2 } else { 4 };
            let (summary, text) = over_seeds(&per_seed, digits);
            cells.push(text);
            row.insert(metric.to_string(), summary);
        }
        md3 += &format!("| {m} | {} |\n", cells.join(" | "));
        paired.insert(m.clone(), serde_json::json!({ "WatchTime": row }));
    }
    // Whether NCIS orders the methods as the world does, seed by seed.
    let mut fid = Vec::new();
    let mut md4 = String::from(
        "\n### NCIS across the methods against the truth, per seed (WatchTime; each method the stochastic policy Table 1 reads)\n\nThe truth per shown video (all K videos of a request) and of the first draw (the first video alone: one draw from the policy's softmax, the value NCIS's per-impression propensities describe).\n\n| Seed | Spearman (BC π_β), per shown video / first draw | Spearman (true π_β), per shown video / first draw | highest NCIS (BC π_β) | highest true value per shown video | highest true first draw |\n|---|---:|---:|---|---|---|\n",
    );
    for r in all.iter().filter(|r| r["fidelity_methods"].is_object()) {
        let f = &r["fidelity_methods"];
        let sig = f["signals"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["signal"] == "WatchTime"));
        let rows: Vec<&serde_json::Value> = f["rows"]
            .as_array()
            .map(|v| v.iter().filter(|x| x["signal"] == "WatchTime").collect())
            .unwrap_or_default();
        let best = |key: &str| {
            rows.iter()
                .max_by(|a, b| {
                    let (x, y) = (a[key].as_f64().unwrap_or(f64::NAN), b[key].as_f64().unwrap_or(f64::NAN));
                    x.total_cmp(&y)
                })
                .and_then(|x| x["policy"].as_str())
                .unwrap_or("")
                .to_string()
        };
        let num = |k: &str| sig.and_then(|x| x[k].as_f64()).unwrap_or(f64::NAN);
        let (sb, st, bn, bt) = (
            num("spearman_bc"),
            num("spearman_true"),
            best("ncis_bc"),
            best("online"),
        );
        let (sbf, stf, bf) = (
            num("spearman_first_bc"),
            num("spearman_first_true"),
            best("online_first"),
        );
        md4 += &format!(
            "| {} | {sb:.3} / {sbf:.3} | {st:.3} / {stf:.3} | {bn} | {bt} | {bf} |\n",
            r["seed"]
        );
        fid.push(serde_json::json!({
            "seed": r["seed"], "spearman_bc": sb, "spearman_true": st,
            "spearman_first_bc": sbf, "spearman_first_true": stf,
            "highest_ncis_bc": bn, "highest_true": bt, "highest_true_first": bf,
        }));
    }
    // And per method over seeds: Table 1's NCIS beside the truth it estimates.
    let mut fid_methods = serde_json::Map::new();
    if !fid.is_empty() {
        md4 += "\n| Method | WatchTime NCIS (BC π_β) | true WatchTime per shown video | NCIS − truth | true WatchTime of the first draw | NCIS − first draw |\n|---|---:|---:|---:|---:|---:|\n";
    }
    for m in methods.iter().filter(|_| !fid.is_empty()) {
        let per_seed = |key: &str| -> Vec<f64> {
            all.iter()
                .map(|r| {
                    r["fidelity_methods"]["rows"]
                        .as_array()
                        .and_then(|v| {
                            v.iter()
                                .find(|x| x["signal"] == "WatchTime" && x["policy"] == m.as_str())
                        })
                        .and_then(|x| x[key].as_f64())
                        .unwrap_or(f64::NAN)
                })
                .collect()
        };
        let (est, truth, first) = (per_seed("ncis_bc"), per_seed("online"), per_seed("online_first"));
        let gap = |truth: &[f64]| -> Vec<f64> { est.iter().zip(truth).map(|(e, t)| e - t).collect() };
        let fig = |v: &[f64]| {
            let (mean, ci) = mean_ci(v);
            serde_json::json!({"mean": mean, "ci": ci})
        };
        let (e, t, g) = (fig(&est), fig(&truth), fig(&gap(&truth)));
        let (tf, gf) = (fig(&first), fig(&gap(&first)));
        md4 += &format!(
            "| {m} | {} | {} | {} | {} | {} |\n",
            cell(&e, 2),
            cell(&t, 2),
            cell(&g, 2),
            cell(&tf, 2),
            cell(&gf, 2)
        );
        fid_methods.insert(
            m.clone(),
            serde_json::json!({"ncis_bc": e, "truth": t, "ncis_minus_truth": g,
                "truth_first": tf, "ncis_minus_truth_first": gf}),
        );
    }
    // And MMRF against each method by the truth, paired over users within each seed.
    let mut truth_paired = serde_json::Map::new();
    let any_paired = all
        .iter()
        .any(|r| r["fidelity_methods_paired"].as_array().is_some_and(|v| !v.is_empty()));
    if any_paired {
        md4 += &format!(
            "\n{FOCUS} against each method by the truth, paired over users within each seed: mean difference [95 % CI over seeds]; seeds where {FOCUS} leads / trails (interval excluding 0)\n\n| Method | true first draw: {FOCUS} − method | seeds | true per shown video: {FOCUS} − method | seeds |\n|---|---:|---:|---:|---:|\n"
        );
    }
    for m in methods.iter().filter(|m| any_paired && m.as_str() != FOCUS) {
        let at = |r: &serde_json::Value, key: &str| -> serde_json::Value {
            r["fidelity_methods_paired"]
                .as_array()
                .and_then(|v| v.iter().find(|x| x["policy"] == m.as_str()))
                .map(|x| x[key].clone())
                .unwrap_or(serde_json::Value::Null)
        };
        let mut row = serde_json::Map::new();
        let mut cells = Vec::new();
        for key in ["first_draw", "per_video"] {
            let per_seed: Vec<serde_json::Value> = all.iter().map(|r| at(r, key)).collect();
            let (summary, text) = over_seeds(&per_seed.iter().collect::<Vec<_>>(), 2);
            cells.push(text);
            row.insert(key.to_string(), summary);
        }
        md4 += &format!("| {m} | {} |\n", cells.join(" | "));
        truth_paired.insert(m.clone(), serde_json::Value::Object(row));
    }
    let json = serde_json::json!({
        "methods": out,
        "paired": paired,
        "fidelity_methods": {"per_seed": fid, "watch_time": fid_methods, "paired_truth": truth_paired},
        "seeds": seeds,
        "config": all[0]["config"],
        "world": all[0]["world"],
        "per_seed": all.iter().map(|r| r["seed"].clone()).collect::<Vec<_>>(),
    });
    Ok((
        serde_json::to_string_pretty(&json)?,
        md + &md2
            + if paired.is_empty() { "" } else { &md3 }
            + if all[0]["methods"][ORACLE].is_object() {
                &md5
            } else {
                ""
            }
            + if fid.is_empty() { "" } else { &md4 },
    ))
}

/// The settings of `method` in a quick run (the small world's smoke test): a few short
/// updates, enough to exercise every part.
pub(crate) fn quick_sets(method: Method) -> Vec<String> {
    match method {
        Method::Bc => vec!["epochs=1".into()],
        m if m.name().starts_with("mmrf") => {
            vec!["steps=60".into(), "batch=64".into(), "sim_pretrain_steps=20".into()]
        }
        _ => vec!["steps=60".into(), "batch=64".into()],
    }
}

/// One seed's benchmark, its reports written to `out`; returns `results.json`'s value.
///
/// The steps, in order: the data (a generated world, or `data`), the methods trained in
/// table order, each scored offline on the held-out split (with the world's oracle last),
/// the checks only a world allows (the online A/B test, NCIS against the truth, the
/// simulator against the truth), then `results.json`, `results.md` and the plots.
fn run_one(out: &Path, quick: bool, seed: u64, jobs: usize, data: Option<&Path>) -> Result<serde_json::Value> {
    let started = Instant::now();
    let mut seconds = std::collections::BTreeMap::new();
    let (world_dir, world) = prepare_data(out, quick, seed, data, &mut seconds)?;
    let (ds, _) = Dataset::open(&world_dir)?;
    let timelines = Timelines::build(&ds);
    let progress = StageBar::new();

    progress.stage("training");
    let (bc, trained) = train_methods(&ds, out, quick, seed, jobs, &progress, &mut seconds)?;
    let mut methods: Vec<&dyn Ranker> = vec![bc.as_ref()];
    methods.extend(trained.iter().map(|m| m.as_ref()));
    let diagnostics = load_diagnostics(&ds, out)?;
    let diagnostics: Vec<&dyn Ranker> = diagnostics.iter().map(|m| m.as_ref()).collect();
    let oracle = match world {
        Some(_) => Some(mmrf_eval::oracle::OracleRanker::load(&ds).map_err(anyhow::Error::msg)?),
        None => None,
    };

    let offline_cfg = OfflineConfig::default();
    let t = Instant::now();
    let scored = evaluate_offline(
        &ds,
        &timelines,
        &methods,
        &diagnostics,
        oracle.as_ref(),
        bc.as_ref(),
        world.is_some(),
        &offline_cfg,
        &progress,
    )?;
    let paired = paired_against(FOCUS, &scored.bc, &offline_cfg)?;
    seconds.insert("offline eval".into(), t.elapsed().as_secs_f64());

    progress.stage("online A/B, NCIS fidelity, simulator check");
    let checks = match &world {
        Some(world) => Some(world_checks(
            world,
            &ds,
            &timelines,
            &methods,
            &diagnostics,
            oracle.as_ref(),
            &scored,
            bc.as_ref(),
            &offline_cfg,
            quick,
            seed,
            out,
            &mut seconds,
        )?),
        None => {
            eprintln!(
                "note: {} is not a generated world (no mmrf_world.json): the online A/B test, the NCIS fidelity check and the simulator check need the world's ground truth and are skipped",
                world_dir.display()
            );
            None
        }
    };
    progress.finish();
    seconds.insert("total".into(), started.elapsed().as_secs_f64());

    let results = assemble(
        scored.bc,
        paired,
        checks,
        &world,
        world_dir,
        quick,
        seed,
        offline_cfg,
        seconds,
    );
    write_reports(out, &results)?;
    eprintln!(
        "wrote {}/results.json, results.md and plots in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(serde_json::to_value(&results)?)
}

/// The benchmark's overall progress bar: one step per training, per evaluation and for
/// the world's checks, each training's own bar drawn beneath it.
struct StageBar {
    multi: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
}

impl StageBar {
    fn new() -> StageBar {
        let multi = indicatif::MultiProgress::new();
        let evaluations = METHODS.len() + DIAGNOSTICS.len();
        let overall = multi.add(indicatif::ProgressBar::new((METHODS.len() + evaluations) as u64 + 1));
        overall.set_style(
            indicatif::ProgressStyle::with_template("benchmark [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        StageBar { multi, overall }
    }

    /// Name the stage now running.
    fn stage(&self, msg: &str) {
        self.overall.set_message(msg.to_string());
    }

    /// One stage done.
    fn done(&self) {
        self.overall.inc(1);
    }

    fn finish(&self) {
        self.overall.inc(1);
        self.overall.finish_and_clear();
    }
}

/// Step 1: the data directory, and its world where it is one. Without `data` the world of
/// `seed` is generated into `out/world` (or reused when it is already there).
fn prepare_data(
    out: &Path,
    quick: bool,
    seed: u64,
    data: Option<&Path>,
    seconds: &mut std::collections::BTreeMap<String, f64>,
) -> Result<(std::path::PathBuf, Option<mmrf_world::World>)> {
    let world_dir = match data {
        Some(d) => d.to_path_buf(),
        None => {
            let scale = if quick { Scale::Small } else { Scale::Default };
            let world_dir = out.join("world");
            if let Some(secs) = crate::ensure_world(&WorldConfig::new(scale, seed), &world_dir)? {
                seconds.insert("generate".into(), secs);
            }
            world_dir
        }
    };
    // Real KuaiRand data has no world file: the checks against the truth are skipped.
    let world = mmrf_world::World::load(&world_dir).ok();
    Ok((world_dir, world))
}

/// The methods after BC, in table order.
type TrainedMethods = Vec<Box<dyn Ranker>>;

/// The order the trainings are started in: the longest first, so that `--jobs` workers
/// finish together (each figure is a training's share of the default benchmark's time).
const TRAINING_ORDER: [Method; 11] = [
    Method::Mmrf,
    Method::MmrfCo,
    Method::MmrfNs,
    Method::Tscac,
    Method::MmrfDa,
    Method::Massa,
    Method::Pareto,
    Method::Bc,
    Method::DeepFm,
    Method::WideDeep,
    Method::Ltr,
];

/// Step 2: every method trained into `out/runs/METHOD`, each in its own `mmrf train`
/// process, `jobs` at a time ([`crate::pool`]), then loaded in table order (BC, the
/// behaviour model every NCIS reads π_β from, first).
fn train_methods(
    ds: &Dataset,
    out: &Path,
    quick: bool,
    seed: u64,
    jobs: usize,
    progress: &StageBar,
    seconds: &mut std::collections::BTreeMap<String, f64>,
) -> Result<(Box<dyn Ranker>, TrainedMethods)> {
    let trainings: Vec<crate::pool::Training> = TRAINING_ORDER
        .iter()
        .map(|&method| crate::pool::Training {
            method,
            data: ds.dir.clone(),
            out: out.join("runs").join(method.name()),
            seed,
            sets: if quick { quick_sets(method) } else { vec![] },
            label: method.name().to_string(),
        })
        .collect();
    let started = Instant::now();
    let each = crate::pool::train_all(&trainings, jobs, &progress.multi, &|| progress.done())?;
    for (t, secs) in trainings.iter().zip(each) {
        seconds.insert(format!("train {}", t.method.name()), secs);
    }
    seconds.insert("train, all".into(), started.elapsed().as_secs_f64());
    let load = |method: Method| -> Result<Box<dyn Ranker>> {
        let dir = out.join("runs").join(method.name());
        let (_, run) = mmrf_train::load(&dir, ds).with_context(|| format!("loading {}", dir.display()))?;
        Ok(run)
    };
    let bc = load(Method::Bc)?;
    let trained = METHODS[1..].iter().map(|&m| load(m)).collect::<Result<Vec<_>>>()?;
    Ok((bc, trained))
}

/// MMRF's run ranking by each of [`DIAGNOSTICS`] (none when the run has no critic).
fn load_diagnostics(ds: &Dataset, out: &Path) -> Result<Vec<Box<dyn Ranker>>> {
    let dir = out.join("runs").join(FOCUS);
    DIAGNOSTICS
        .iter()
        .map(|&rank_by| {
            let (_, ranker) = mmrf_train::load_ranking(&dir, ds, rank_by)
                .with_context(|| format!("loading {} ranking by {rank_by}", dir.display()))?;
            Ok(ranker)
        })
        .collect()
}

/// Table 1's reports: each method's (and the oracle's, last) offline report with BC's
/// π_β, and on a world the same scores with the true π_β (for the fidelity check).
struct Scored {
    bc: Vec<OfflineReport>,
    truth: Vec<OfflineReport>,
}

/// Step 3: every method scored on the held-out split, then the world's oracle, then the
/// diagnostic rankings of MMRF's run. The oracle
/// is last and takes no part in the online arms built from the methods (online, the world
/// runs its own oracle arm with the users' live states).
#[allow(clippy::too_many_arguments)]
fn evaluate_offline(
    ds: &Dataset,
    timelines: &Timelines,
    methods: &[&dyn Ranker],
    diagnostics: &[&dyn Ranker],
    oracle: Option<&mmrf_eval::oracle::OracleRanker>,
    bc: &dyn Ranker,
    on_world: bool,
    cfg: &OfflineConfig,
    progress: &StageBar,
) -> Result<Scored> {
    let mut scored = Scored {
        bc: Vec::new(),
        truth: Vec::new(),
    };
    let oracle = oracle.map(|o| o as &dyn Ranker);
    for m in methods.iter().copied().chain(oracle).chain(diagnostics.iter().copied()) {
        progress.stage(&format!("evaluate {}", m.method()));
        let s = score_split(ds, timelines, mmrf_data::LogSplit::Test, m, Behaviour::Model(bc), cfg)
            .map_err(anyhow::Error::msg)?;
        scored
            .bc
            .push(metrics(m.method(), ds, &s, cfg).map_err(anyhow::Error::msg)?);
        if on_world {
            let truth = s.with_true_propensities(ds).map_err(anyhow::Error::msg)?;
            scored
                .truth
                .push(metrics(m.method(), ds, &truth, cfg).map_err(anyhow::Error::msg)?);
        }
        if m.method() != ORACLE {
            progress.done();
        }
    }
    Ok(scored)
}

/// Step 5: `results.json`'s value from the steps' outputs.
#[allow(clippy::too_many_arguments)]
fn assemble(
    offline: Vec<OfflineReport>,
    paired: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Comparison>>,
    checks: Option<WorldChecks>,
    world: &Option<mmrf_world::World>,
    data_dir: std::path::PathBuf,
    quick: bool,
    seed: u64,
    offline_config: OfflineConfig,
    seconds: std::collections::BTreeMap<String, f64>,
) -> Results {
    let (online, fidelity, fidelity_methods, fidelity_methods_paired, simulator) = match checks {
        Some(c) => (
            Some(c.online),
            Some(c.fidelity),
            Some(c.fidelity_methods),
            c.truth_paired,
            c.simulator,
        ),
        None => (None, None, None, Vec::new(), None),
    };
    Results {
        methods: method_results(&offline, online.as_ref()),
        config: BenchmarkConfig {
            quick,
            control: online.as_ref().map(|o| o.control.clone()),
            online_days: online.as_ref().map(|o| o.days),
            tau: "matched to the behaviour model's entropy per method",
            cap: offline_config.ope.cap,
        },
        seeds: vec![seed],
        data_dir,
        world: world.as_ref().map(|w| w.file.config.clone()),
        seed,
        offline_config,
        offline,
        paired,
        online,
        fidelity,
        fidelity_methods,
        fidelity_methods_paired,
        simulator,
        seconds,
    }
}

/// Step 6: `results.json`, `results.md` (printed too), the plots and each run's learning
/// curve.
fn write_reports(out: &Path, results: &Results) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(results)?;
    mmrf_data::write_atomic(&out.join("results.json"), json.as_bytes()).context("writing results.json")?;
    let md = results_markdown(results);
    mmrf_data::write_atomic(&out.join("results.md"), md.as_bytes()).context("writing results.md")?;
    if let Err(e) = mmrf_eval::report::plots(out, &results.offline, results.online.as_ref(), FOCUS) {
        eprintln!("warning: plots skipped: {e}");
    }
    let trained = |name: &str| METHODS.iter().any(|m| m.name() == name);
    for m in results.offline.iter().filter(|m| trained(&m.method)) {
        if let Err(e) = mmrf_eval::report::learning_curve(&out.join("runs").join(&m.method)) {
            eprintln!("warning: learning curve of {} not plotted: {e}", m.method);
        }
    }
    println!("{md}");
    Ok(())
}

/// `results.md`: Table 1, the GAUC split, the paired table, the headroom, then what only a
/// world tells (Table 2, the fidelity tables, the simulator check) and the paper's figures.
fn results_markdown(results: &Results) -> String {
    let mut md = mmrf_eval::report::table1(&results.offline);
    md += "\n";
    md += &mmrf_eval::report::gauc_split_table(&results.offline);
    if !results.paired.is_empty() {
        md += "\n";
        md += &mmrf_eval::report::paired_table(FOCUS, &results.paired, &results.offline);
    }
    md += &headroom_table(&results.methods);
    md += &actor_against_critic(&results.methods);
    if let Some(o) = &results.online {
        md += &long_horizon_line(o);
    }
    match (&results.online, &results.fidelity) {
        (Some(o), Some(f)) => {
            md += "\n";
            md += &mmrf_eval::report::table2(o);
            md += "\n";
            md += &mmrf_eval::report::fidelity_table(
                "NCIS fidelity: offline estimates against the true online per-impression value",
                f,
            );
            if let Some(m) = &results.fidelity_methods {
                md += "\n";
                md += &mmrf_eval::report::fidelity_table(
                    "NCIS fidelity across the methods: each method's Table-1 NCIS (BC π_β) against the true per-impression value of the same stochastic policy",
                    m,
                );
            }
            if !results.fidelity_methods_paired.is_empty() {
                md += "\n";
                md += &mmrf_eval::report::truth_paired_table(FOCUS, &results.fidelity_methods_paired);
            }
        }
        _ => {
            md += "\n*Online A/B, NCIS fidelity and the simulator check skipped: the data is not a generated world, so there is no ground truth to run policies in.*\n";
        }
    }
    if let Some(s) = &results.simulator {
        md += "\n";
        md += &mmrf_eval::report::simulator_table(s);
    }
    md += "\n";
    md += &mmrf_eval::report::paper_reference(&results.offline, results.online.as_ref());
    md
}

/// Each method's headroom share as Markdown (empty without an oracle row).
fn headroom_table(methods: &std::collections::BTreeMap<String, MethodResults>) -> String {
    let diagnostics: Vec<String> = DIAGNOSTICS.iter().map(|r| r.ranker_name(FOCUS)).collect();
    let order = METHODS
        .iter()
        .map(|m| m.name())
        .chain(diagnostics.iter().map(|d| d.as_str()))
        .chain([ORACLE]);
    let rows: Vec<(&str, &HeadroomShare)> = order
        .filter_map(|m| Some((m, methods.get(m)?.headroom_share.as_ref()?)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n### Headroom: each method's share of the way to the world's myopic oracle\n\nOnline: (method − control) / (oracle − control) of session WatchTime, with the method's paired lift interval over the oracle's mean lift. Offline: (GAUC − 0.5) / (oracle's GAUC − 0.5), 0 for a random ranking.\n\n| Method | online WatchTime | WatchTime GAUC | Click GAUC | LongView GAUC |\n|---|---:|---:|---:|---:|\n",
    );
    for (m, h) in rows {
        let online = match (h.online, h.online_ci) {
            (Some(v), Some([lo, hi])) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
            _ => "–".into(),
        };
        let off = |sig: &str| h.offline.get(sig).map_or("–".into(), |v| format!("{v:.3}"));
        md += &format!(
            "| {m} | {online} | {} | {} | {} |\n",
            off("WatchTime"),
            off("Click"),
            off("LongView")
        );
    }
    md
}

/// MMRF's run ranked by its actor, by its WatchTime critic per item and by its reward head,
/// side by side (empty without the diagnostics): whether the actor or the critic holds
/// the method back.
fn actor_against_critic(methods: &std::collections::BTreeMap<String, MethodResults>) -> String {
    let names: Vec<String> = std::iter::once(FOCUS.to_string())
        .chain(DIAGNOSTICS.iter().map(|r| r.ranker_name(FOCUS)))
        .collect();
    let rows: Vec<(&String, &MethodResults)> = names.iter().filter_map(|n| Some((n, methods.get(n)?))).collect();
    if rows.len() < 2 {
        return String::new();
    }
    let mut md = format!(
        "\n### {FOCUS}'s actor against its own critic\n\nThe same run ranking by its actor (the method), by its WatchTime critic's value of each candidate as the one shown (critic-greedy), and by its WatchTime reward head (the immediate watch the critic is trained on). A diagnostic ranking ahead of the actor says the actor does not reproduce what its critic learned; behind it, that the critic is the limit.\n\n| Ranking | WatchTime GAUC | WatchTime GAUC within a request | WatchTime NCIS (s) | online WatchTime / session | videos / session | online lift over the control |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    let num = |v: Option<f64>, d: usize| v.filter(|x| x.is_finite()).map_or("–".into(), |x| format!("{x:.d$}"));
    for (name, m) in rows {
        let w = m.offline.get("WatchTime");
        let on = m.online.as_ref();
        let lift = on.map_or("–".into(), |o| {
            format!(
                "{:+.1} % [{:+.1}, {:+.1}]",
                100.0 * o.lift_vs_control,
                100.0 * o.lift_ci[0],
                100.0 * o.lift_ci[1]
            )
        });
        md += &format!(
            "| {name} | {} | {} | {} | {} | {} | {lift} |\n",
            num(w.and_then(|w| w.gauc), 4),
            num(w.and_then(|w| w.gauc_within_request), 4),
            num(w.map(|w| w.ncis), 2),
            num(on.map(|o| o.watch_time), 1),
            num(on.map(|o| o.depth), 2),
        );
    }
    md
}

/// How much more session WatchTime the session-aware oracle gets than the myopic one: the
/// share of the world's value that only a policy looking past the request can reach.
fn long_horizon_line(online: &AbReport) -> String {
    let watch = |name: &str| {
        online
            .arms
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.per_session("watch_time"))
            .map(|e| e.mean)
    };
    match (watch(ORACLE), watch("oracle-session")) {
        (Some(myopic), Some(session)) => format!(
            "\nThe session-aware oracle (its slate chosen slot by slot, staying valued at {} s and a unit of fatigue at {} s) runs {:+.1} % session WatchTime over the myopic oracle ({session:.1} s against {myopic:.1} s): the value only a policy that looks past the request can reach.\n",
            mmrf_world::oracle::SESSION_HORIZON_S,
            mmrf_world::oracle::SESSION_FATIGUE_S,
            100.0 * (session / myopic - 1.0)
        ),
        _ => String::new(),
    }
}

/// What only a world can tell.
struct WorldChecks {
    /// The online A/B test.
    online: AbReport,
    /// NCIS against the truth for reference policies of known, different quality.
    fidelity: FidelityReport,
    /// NCIS against the truth for every method at its Table-1 temperature.
    fidelity_methods: FidelityReport,
    /// MMRF against every other method by their true WatchTime (empty without MMRF).
    truth_paired: Vec<TruthDifference>,
    /// MMRF's simulator against the truth.
    simulator: Option<mmrf_eval::ssb::SsbReport>,
}

/// Step 4, what only a world can tell: the online A/B test, NCIS against the truth, and
/// the simulator against the truth. `scored.bc[i]` is `methods[i]`'s offline report,
/// `scored.truth[i]` the same with the true π_β; the oracle's and the diagnostics' reports
/// follow the methods'. The diagnostics are online arms, not fidelity candidates.
#[allow(clippy::too_many_arguments)]
fn world_checks(
    world: &mmrf_world::World,
    ds: &Dataset,
    timelines: &Timelines,
    methods: &[&dyn Ranker],
    diagnostics: &[&dyn Ranker],
    oracle_ranker: Option<&mmrf_eval::oracle::OracleRanker>,
    scored: &Scored,
    bc: &dyn Ranker,
    offline_cfg: &OfflineConfig,
    quick: bool,
    seed: u64,
    out: &Path,
    seconds: &mut std::collections::BTreeMap<String, f64>,
) -> Result<WorldChecks> {
    let (table1, truth) = (&scored.bc[..], &scored.truth[..]);
    // Online A/B with LTR as the control (the arms are in reverse table order, LTR first).
    let t = Instant::now();
    let ab_cfg = AbConfig {
        online: mmrf_world::OnlineConfig {
            days: if quick { 3 } else { 7 },
            seed,
            ..Default::default()
        },
        seed,
        ..Default::default()
    };
    let logging = mmrf_world::LoggingPolicy { model: &world.model };
    let oracle = mmrf_world::MyopicOracle { model: &world.model };
    let policies: Vec<AsPolicy> = methods.iter().map(|m| AsPolicy::top_k(*m)).collect();
    // LTR is the control (Table 2); the logging policy, random exposure and the world's
    // oracles (the ceilings, myopic and session-aware) for reference.
    let diagnosed: Vec<AsPolicy> = diagnostics.iter().map(|m| AsPolicy::top_k(*m)).collect();
    let mut arms: Vec<&dyn mmrf_world::Policy> = policies.iter().rev().map(|p| p as &dyn mmrf_world::Policy).collect();
    arms.extend(diagnosed.iter().map(|p| p as &dyn mmrf_world::Policy));
    arms.push(&logging);
    arms.push(&mmrf_world::RandomPolicy);
    arms.push(&oracle);
    let session_oracle = mmrf_world::SessionOracle::new(&world.model);
    arms.push(&session_oracle);
    let online = ab_test(&world.model, &arms, 0, &ab_cfg);
    seconds.insert("online A/B".into(), t.elapsed().as_secs_f64());

    // NCIS fidelity over policies of known, different quality.
    let t = Instant::now();
    let tau_log = world.model.config.logging_temperature;
    let log_ranker = LoggingRanker(&world.model);
    let sharp = Scaled {
        name: "logging-sharp".into(),
        inner: &log_ranker,
        factor: 2.0,
    };
    let flat = Scaled {
        name: "logging-flat".into(),
        inner: &log_ranker,
        factor: 0.5,
    };
    // The world's oracle beside them, read at its Table-1 temperature: offline it scores
    // the logged requests at their logged states, online the myopic oracle reads the live
    // ones.
    let oracle_reports = || -> Option<(&OfflineReport, &OfflineReport)> {
        let of = |v: &'_ [OfflineReport]| v.iter().position(|r| r.method == ORACLE);
        Some((&table1[of(table1)?], &truth[of(truth)?]))
    };
    let oracle_candidate = || -> Option<Candidate> {
        let (bc, t) = oracle_reports()?;
        Some(Candidate::with_reports(oracle_ranker?, bc, t).run_as(&oracle))
    };
    // The truth over the held-out log's own period, so both sides see the same days.
    let fid_online = mmrf_eval::fidelity::test_period(ab_cfg.online.seed);
    // The check over the methods: close figures are where an estimator's error decides
    // the order, so this says how far Table 1's NCIS ranking can be trusted.
    let mut as_read: Vec<Candidate> = methods
        .iter()
        .zip(table1.iter().zip(truth))
        .map(|(m, (bc, truth))| Candidate::with_reports(*m, bc, truth))
        .collect();
    as_read.extend(oracle_candidate());
    let fid_methods =
        fidelity(ds, timelines, &world.model, &as_read, bc, offline_cfg, &fid_online).map_err(anyhow::Error::msg)?;
    // The same check over reference policies of known, different quality, with the
    // oracle's online run (the costliest, each candidate's play by quadrature) reused.
    let mut candidates = vec![
        Candidate::new(&log_ranker, tau_log),
        Candidate::new(&sharp, tau_log),
        Candidate::new(&flat, tau_log),
        Candidate::new(&UniformRanker, 1.0),
        Candidate::new(bc, 1.0),
    ];
    let oracle_outcomes = fid_methods.outcomes.iter().find(|(name, _)| name == ORACLE);
    candidates.extend(oracle_candidate().map(|c| match oracle_outcomes {
        Some((_, out)) => c.with_outcomes(out),
        None => c,
    }));
    let fid =
        fidelity(ds, timelines, &world.model, &candidates, bc, offline_cfg, &fid_online).map_err(anyhow::Error::msg)?;
    let truth_paired = if fid_methods.outcomes.iter().any(|(name, _)| name == FOCUS) {
        paired_truths(&fid_methods, FOCUS, offline_cfg.ope.bootstrap, seed).map_err(anyhow::Error::msg)?
    } else {
        Vec::new()
    };
    seconds.insert("fidelity".into(), t.elapsed().as_secs_f64());
    let simulator = match mmrf_train::actor_critic::SimulatorScorer::load(&out.join("runs/mmrf"), ds) {
        Ok(sim) => Some(mmrf_eval::ssb::simulator_vs_world(
            ds,
            timelines,
            &world.model,
            &sim,
            1000,
            16,
            seed,
        )?),
        Err(e) => {
            eprintln!("warning: simulator check skipped: {e}");
            None
        }
    };
    Ok(WorldChecks {
        online,
        fidelity: fid,
        fidelity_methods: fid_methods,
        truth_paired,
        simulator,
    })
}
