//! `mmrf tune`: choose a method's settings on the tuning worlds.
//!
//! The one procedure every method's settings go through, so that no method is compared at
//! settings chosen more carefully than another's:
//!
//! 1. Each point of a grid of settings (`--grid key=v1,v2,...`, several `--grid`s give
//!    their product) is trained on each tuning world, at the method's full budget.
//! 2. On each world the points run online side by side, paired on the same users, with
//!    LTR at its defaults as the control (the benchmark's control arm).
//! 3. The point with the highest lift of session WatchTime over the control, averaged over
//!    the worlds, is chosen. The other signals' lifts are reported beside it.
//!
//! The worlds are the tuning seeds 7, 8, 9 by default; the held-out seeds 10–12 are
//! refused, so a figure reported on them never fed a choice. One output directory serves
//! every method: the worlds (`world-S/`) are generated once and reused, the runs go to
//! `runs/world-S/METHOD/POINT/`, and the report to `tune-METHOD.json` and `.md`. Each run trains with the
//! world's seed + [`TRAIN_SEED_OFFSET`], so the benchmark's own runs on the tuning worlds
//! (trained with the world's seed) are not the runs the choice was made on.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mmrf_data::Dataset;
use mmrf_eval::abtest::{ab_test, AbConfig, AbReport};
use mmrf_train::{AsPolicy, Method, Ranker, Scaled, TrainOptions};
use mmrf_world::{Scale, WorldConfig, HELD_OUT_SEEDS};
use serde::Serialize;

/// Added to a world's seed to give the training seed of the tuning runs.
pub const TRAIN_SEED_OFFSET: u64 = 100;

/// What `mmrf tune` was asked for.
pub struct TuneArgs {
    pub method: String,
    pub grids: Vec<String>,
    pub worlds: Vec<u64>,
    pub sets: Vec<String>,
    pub out: PathBuf,
    pub quick: bool,
}

/// One point of the grid: its label and the settings it trains with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub label: String,
    pub sets: Vec<String>,
}

/// The points of the product of `--grid key=v1,v2,...` specifications, in order (the last
/// key varies fastest).
pub fn parse_grid(specs: &[String]) -> Result<Vec<Point>> {
    if specs.is_empty() {
        bail!("--grid: give at least one `key=v1,v2,...`");
    }
    let mut points = vec![Point {
        label: String::new(),
        sets: Vec::new(),
    }];
    let mut keys = std::collections::BTreeSet::new();
    for spec in specs {
        let (key, values) = spec
            .split_once('=')
            .with_context(|| format!("--grid `{spec}`: expected key=v1,v2,..."))?;
        let key = key.trim();
        if key.is_empty() || !keys.insert(key.to_string()) {
            bail!("--grid `{spec}`: the key is empty or given twice");
        }
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        if values.iter().any(|v| v.is_empty()) {
            bail!("--grid `{spec}`: an empty value");
        }
        let distinct: std::collections::BTreeSet<&str> = values.iter().copied().collect();
        if distinct.len() != values.len() {
            bail!("--grid `{spec}`: a value is given twice");
        }
        points = points
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let set = format!("{key}={v}");
                    Point {
                        label: if p.label.is_empty() {
                            set.clone()
                        } else {
                            format!("{} {set}", p.label)
                        },
                        sets: p.sets.iter().cloned().chain([set]).collect(),
                    }
                })
            })
            .collect();
    }
    Ok(points)
}

/// Refuse the held-out worlds (and an empty or repeated list).
pub fn check_worlds(worlds: &[u64]) -> Result<()> {
    if worlds.is_empty() {
        bail!("--worlds: give at least one world seed");
    }
    if let Some(w) = worlds.iter().find(|w| HELD_OUT_SEEDS.contains(w)) {
        bail!(
            "--worlds: world {w} is held out ({:?} are reported, never tuned on); tune on the tuning worlds {:?}",
            HELD_OUT_SEEDS,
            mmrf_world::TUNING_SEEDS
        );
    }
    let distinct: std::collections::BTreeSet<&u64> = worlds.iter().collect();
    if distinct.len() != worlds.len() {
        bail!("--worlds: a world is given twice");
    }
    Ok(())
}

/// One point's figures on one world.
#[derive(Debug, Clone, Serialize)]
struct PointOnWorld {
    world: u64,
    /// Session WatchTime (seconds).
    watch_time: f64,
    /// Relative lift of session WatchTime over the control, with its paired 95 % interval.
    lift: f64,
    lift_ci: [f64; 2],
    /// Relative lifts of the other per-session signals over the control.
    other_lifts: std::collections::BTreeMap<String, f64>,
}

/// One point over all worlds.
#[derive(Debug, Clone, Serialize)]
struct PointResult {
    point: Point,
    worlds: Vec<PointOnWorld>,
    /// Mean lift over the worlds, with a 95 % t-interval over worlds.
    mean_lift: f64,
    mean_lift_ci: [f64; 2],
}

#[derive(Serialize)]
struct TuneReport {
    method: String,
    control: String,
    worlds: Vec<u64>,
    train_seed_offset: u64,
    fixed_sets: Vec<String>,
    quick: bool,
    points: Vec<PointResult>,
    /// The chosen point: the highest mean lift.
    chosen: Point,
}

/// Train each grid point on each world, run them online against LTR, choose the best.
pub fn run(args: &TuneArgs) -> Result<()> {
    let method: Method = args.method.parse()?;
    let points = parse_grid(&args.grids)?;
    check_worlds(&args.worlds)?;
    let scale = if args.quick { Scale::Small } else { Scale::Default };
    let multi = indicatif::MultiProgress::new();
    let overall = multi.add(indicatif::ProgressBar::new(
        (args.worlds.len() * (points.len() + 2)) as u64,
    ));
    overall.set_style(
        indicatif::ProgressStyle::with_template("tune [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut per_world: Vec<Vec<PointOnWorld>> = vec![Vec::new(); points.len()];
    for &world_seed in &args.worlds {
        overall.set_message(format!("world {world_seed}"));
        let dir = args.out.join(format!("world-{world_seed}"));
        crate::ensure_world(&WorldConfig::new(scale, world_seed), &dir)?;
        let world = mmrf_world::World::load(&dir)?;
        let (ds, _) = Dataset::open(&dir)?;
        let runs = args.out.join("runs").join(format!("world-{world_seed}"));
        let opts = |extra: &[String], m: Method| TrainOptions {
            seed: world_seed + TRAIN_SEED_OFFSET,
            sets: if args.quick {
                crate::benchmark::quick_sets(m)
            } else {
                vec![]
            }
            .into_iter()
            .chain(extra.iter().cloned())
            .collect(),
            progress: mmrf_train::Progress {
                quiet: false,
                multi: Some(multi.clone()),
            },
            force: true,
            ..Default::default()
        };
        overall.set_message(format!("world {world_seed}: control"));
        let control = mmrf_train::train(Method::Ltr, &ds, &runs.join("control-ltr"), &opts(&[], Method::Ltr))?;
        overall.inc(1);
        let mut trained: Vec<Box<dyn Ranker>> = Vec::new();
        for p in &points {
            overall.set_message(format!("world {world_seed}: {}", p.label));
            let sets: Vec<String> = args.sets.iter().chain(&p.sets).cloned().collect();
            let run_dir = runs.join(method.name()).join(dir_name(&p.label));
            trained.push(mmrf_train::train(method, &ds, &run_dir, &opts(&sets, method))?);
            overall.inc(1);
        }
        overall.set_message(format!("world {world_seed}: online"));
        let named: Vec<Scaled> = std::iter::once(Scaled {
            name: "ltr (control)".into(),
            inner: control.as_ref(),
            factor: 1.0,
        })
        .chain(trained.iter().zip(&points).map(|(r, p)| Scaled {
            name: p.label.clone(),
            inner: r.as_ref(),
            factor: 1.0,
        }))
        .collect();
        let policies: Vec<AsPolicy> = named.iter().map(|r| AsPolicy::top_k(r)).collect();
        let arms: Vec<&dyn mmrf_world::Policy> = policies.iter().map(|p| p as &dyn mmrf_world::Policy).collect();
        let cfg = AbConfig {
            online: mmrf_world::OnlineConfig {
                days: if args.quick { 3 } else { 7 },
                seed: world_seed,
                ..Default::default()
            },
            seed: world_seed,
            ..Default::default()
        };
        let report = ab_test(&world.model, &arms, 0, &cfg);
        overall.inc(1);
        for (i, p) in points.iter().enumerate() {
            per_world[i].push(on_world(&report, &p.label, world_seed)?);
        }
    }
    overall.finish_and_clear();
    let results: Vec<PointResult> = points
        .into_iter()
        .zip(per_world)
        .map(|(point, worlds)| {
            let lifts: Vec<f64> = worlds.iter().map(|w| w.lift).collect();
            let (mean_lift, mean_lift_ci) = crate::benchmark::mean_ci(&lifts);
            PointResult {
                point,
                worlds,
                mean_lift,
                mean_lift_ci,
            }
        })
        .collect();
    let chosen = choose(&results).context("no point has a finite lift")?;
    let report = TuneReport {
        method: method.name().to_string(),
        control: "ltr".into(),
        worlds: args.worlds.clone(),
        train_seed_offset: TRAIN_SEED_OFFSET,
        fixed_sets: args.sets.clone(),
        quick: args.quick,
        chosen: results[chosen].point.clone(),
        points: results,
    };
    std::fs::create_dir_all(&args.out)?;
    let name = format!("tune-{}", method.name());
    let json = serde_json::to_string_pretty(&report)?;
    let md = markdown(&report);
    for (ext, text) in [("json", &json), ("md", &md)] {
        let path = args.out.join(format!("{name}.{ext}"));
        mmrf_data::write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{md}");
    eprintln!("wrote {}/{name}.json and {name}.md", args.out.display());
    Ok(())
}

/// A run directory's name for a point's label.
fn dir_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A point's figures from one world's A/B report.
fn on_world(report: &AbReport, label: &str, world: u64) -> Result<PointOnWorld> {
    let arm = report
        .arms
        .iter()
        .find(|a| a.name == label)
        .with_context(|| format!("the A/B report has no arm `{label}`"))?;
    let lift = arm.lift("watch_time").context("no WatchTime lift")?;
    Ok(PointOnWorld {
        world,
        watch_time: arm.per_session("watch_time").map_or(f64::NAN, |e| e.mean),
        lift: lift.mean,
        lift_ci: lift.ci,
        other_lifts: ["like", "follow", "comment", "hate", "depth"]
            .iter()
            .filter_map(|m| Some((m.to_string(), arm.lift(m)?.mean)))
            .collect(),
    })
}

/// The index of the point with the highest mean lift (the first among equals).
fn choose(results: &[PointResult]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in results.iter().enumerate() {
        if r.mean_lift.is_finite() && best.is_none_or(|b| r.mean_lift > results[b].mean_lift) {
            best = Some(i);
        }
    }
    best
}

fn markdown(r: &TuneReport) -> String {
    let worlds: Vec<String> = r.worlds.iter().map(|w| format!("world {w}")).collect();
    let mut md = format!(
        "### Tuning {} on worlds {:?}: session WatchTime lift over LTR (paired 95 % CI per world)\n\nTraining seeds: world + {}. Fixed settings: {}. Chosen: the highest mean lift.\n\n| Point | {} | mean [95 % CI over worlds] | Like / Follow / Comment / Hate lift (mean) | |\n|---|{}---:|---|---|\n",
        r.method,
        r.worlds,
        r.train_seed_offset,
        if r.fixed_sets.is_empty() {
            "none".to_string()
        } else {
            r.fixed_sets.join(", ")
        },
        worlds.join(" | "),
        "---:|".repeat(r.worlds.len()),
    );
    for p in &r.points {
        let cells: Vec<String> = p
            .worlds
            .iter()
            .map(|w| {
                format!(
                    "{:+.1} % [{:+.1}, {:+.1}]",
                    100.0 * w.lift,
                    100.0 * w.lift_ci[0],
                    100.0 * w.lift_ci[1]
                )
            })
            .collect();
        let other = |k: &str| {
            let v: Vec<f64> = p.worlds.iter().filter_map(|w| w.other_lifts.get(k).copied()).collect();
            100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        md += &format!(
            "| {} | {} | {:+.1} % [{:+.1}, {:+.1}] | {:+.0} / {:+.0} / {:+.0} / {:+.0} % | {} |\n",
            p.point.label,
            cells.join(" | "),
            100.0 * p.mean_lift,
            100.0 * p.mean_lift_ci[0],
            100.0 * p.mean_lift_ci[1],
            other("like"),
            other("follow"),
            other("comment"),
            other("hate"),
            if p.point == r.chosen { "**chosen**" } else { "" }
        );
    }
    md += &format!("\nChosen for {}: `{}`\n", r.method, r.chosen.sets.join(" "));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn grids_multiply_in_order() {
        let p = parse_grid(&specs(&["a=1,2", "b.c=x,y,z"])).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].sets, ["a=1", "b.c=x"]);
        assert_eq!(p[1].sets, ["a=1", "b.c=y"]);
        assert_eq!(p[5].sets, ["a=2", "b.c=z"]);
        assert_eq!(p[5].label, "a=2 b.c=z");
    }

    #[test]
    fn bad_grids_are_refused_with_the_spec() {
        for (spec, why) in [
            (vec!["a"], "expected key=v1"),
            (vec!["a=1,,2"], "empty value"),
            (vec!["a=1,1"], "given twice"),
            (vec!["a=1", "a=2"], "given twice"),
            (vec!["=1"], "empty"),
        ] {
            let e = parse_grid(&specs(&spec)).unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("--grid"), "{spec:?}: {e}");
        }
        assert!(parse_grid(&[]).is_err());
    }

    #[test]
    fn the_held_out_worlds_are_refused() {
        assert!(check_worlds(&[7, 8, 9]).is_ok());
        for w in HELD_OUT_SEEDS {
            let e = check_worlds(&[7, w]).unwrap_err().to_string();
            assert!(e.contains("held out") && e.contains(&w.to_string()), "{e}");
        }
        assert!(check_worlds(&[]).is_err());
        assert!(check_worlds(&[7, 7]).is_err());
    }

    #[test]
    fn the_highest_mean_lift_is_chosen() {
        let r = |label: &str, lift: f64| PointResult {
            point: Point {
                label: label.into(),
                sets: vec![label.into()],
            },
            worlds: Vec::new(),
            mean_lift: lift,
            mean_lift_ci: [lift, lift],
        };
        let results = [r("a=1", -0.02), r("a=2", f64::NAN), r("a=3", 0.01), r("a=4", 0.01)];
        assert_eq!(choose(&results), Some(2));
        assert_eq!(choose(&[r("a=1", f64::NAN)]), None);
    }

    #[test]
    fn run_directories_are_plain_names() {
        assert_eq!(dir_name("a=1 b.c=x/y"), "a=1_b.c=x_y");
    }
}
