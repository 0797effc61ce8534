//! `mmrf tune`: choose a method's settings on the tuning worlds.
//!
//! The one procedure every method's settings go through, so that no method is compared at
//! settings chosen more carefully than another's:
//!
//! 1. Each point of a grid of settings (`--grid key=v1,v2,...`, several `--grid`s give
//!    their product) is trained on each tuning world, at the method's full budget (every
//!    training its own `mmrf train` process, `--jobs` at a time: [`crate::pool`]).
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

/// What `mmrf tune` is asked for: its command-line arguments.
#[derive(clap::Args)]
pub struct TuneArgs {
    /// The method to tune (as `train --method`).
    #[arg(long)]
    pub method: String,
    /// A setting and its candidate values, e.g. `--grid tscac_bound=0.4,0.8`; repeat
    /// for the product of several.
    #[arg(long = "grid", value_name = "KEY=V1,V2,...", required = true)]
    pub grids: Vec<String>,
    /// The world seeds to tune on.
    #[arg(long, value_delimiter = ',', default_values_t = mmrf_world::TUNING_SEEDS)]
    pub worlds: Vec<u64>,
    /// A setting fixed at every point (as `train --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory (shared by every method's tune): worlds, runs, and
    /// tune-METHOD.json and tune-METHOD.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Small worlds and short training (a smoke test).
    #[arg(long)]
    pub quick: bool,
    /// While the best point is at the edge of a one-key numeric grid, try the next
    /// value past it (geometric steps for positive values), up to three more points or
    /// the end of the setting's range.
    #[arg(long)]
    pub extend: bool,
    /// Trainings run side by side, each in its own process (default: the machine's
    /// cores).
    #[arg(long, value_parser = crate::at_least_one())]
    pub jobs: Option<usize>,
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
        // Values as the settings read them, so 0.4 and 0.40 are one value.
        let parsed: Vec<toml::Value> = values
            .iter()
            .map(|v| {
                format!("v = {v}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|t| t.get("v").cloned())
                    .unwrap_or_else(|| toml::Value::String(v.to_string()))
            })
            .collect();
        if let Some((i, _)) = parsed.iter().enumerate().find(|(i, v)| parsed[..*i].contains(v)) {
            bail!("--grid `{spec}`: the value {} is given twice", values[i]);
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
    /// Why `--extend` stopped short of an inside best, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<String>,
    points: Vec<PointResult>,
    /// The chosen point: the highest mean lift.
    chosen: Point,
}

/// Refuse a `--set` of a key the grid varies: the grid's value would win while the report
/// named the `--set` one as fixed.
fn check_fixed(grids: &[String], sets: &[String]) -> Result<()> {
    let key = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).trim().to_string();
    let varied: std::collections::BTreeSet<String> = grids.iter().map(|g| key(g)).collect();
    if let Some(set) = sets.iter().find(|s| varied.contains(&key(s))) {
        bail!(
            "--set `{set}`: the grid varies `{}`; fix it with --set or vary it with --grid, not both",
            key(set)
        );
    }
    Ok(())
}

/// Train each grid point on each world, run them online against LTR, choose the best;
/// with `extend`, go past a best point at the grid's edge until it is inside.
pub fn run(args: &TuneArgs) -> Result<()> {
    let method: Method = args.method.parse()?;
    let mut points = parse_grid(&args.grids)?;
    check_fixed(&args.grids, &args.sets)?;
    check_worlds(&args.worlds)?;
    let multi = indicatif::MultiProgress::new();
    let mut per_world = evaluate(args, method, &points, &multi)?;
    let mut extension_note = None;
    while args.extend && extension_note.is_none() {
        let results = summarise(&points, &per_world);
        let Some(next) = choose(&results).and_then(|best| next_point(&points, best)) else {
            break;
        };
        if points.len() >= parse_grid(&args.grids)?.len() + MAX_EXTENSIONS {
            extension_note = Some(format!("stopped after {MAX_EXTENSIONS} points past the grid"));
            break;
        }
        match evaluate(args, method, std::slice::from_ref(&next), &multi) {
            Ok(mut more) => {
                per_world.append(&mut more);
                points.push(next);
            }
            // The next value is out of the setting's range: the grid ends here.
            Err(e)
                if matches!(
                    e.downcast_ref::<mmrf_train::TrainError>(),
                    Some(mmrf_train::TrainError::Setting(_))
                ) =>
            {
                extension_note = Some(format!(
                    "`{}` is out of range ({e}): the range ends at the edge",
                    next.label
                ));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let mut results = summarise(&points, &per_world);
    results.sort_by(|a, b| value_of(&a.point).total_cmp(&value_of(&b.point)));
    let chosen = choose(&results).context("no point has a finite lift")?;
    let report = TuneReport {
        method: method.name().to_string(),
        control: "ltr".into(),
        worlds: args.worlds.clone(),
        train_seed_offset: TRAIN_SEED_OFFSET,
        fixed_sets: args.sets.clone(),
        quick: args.quick,
        extension: extension_note,
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

/// The most points `--extend` adds past the grid.
pub const MAX_EXTENSIONS: usize = 3;

/// Each point's figures per world, in `points`' order: on each world, LTR (the control) and
/// every point trained, then all run online side by side on the same users.
fn evaluate(
    args: &TuneArgs,
    method: Method,
    points: &[Point],
    multi: &indicatif::MultiProgress,
) -> Result<Vec<Vec<PointOnWorld>>> {
    let overall = multi.add(indicatif::ProgressBar::new(
        (args.worlds.len() * (points.len() + 2)) as u64,
    ));
    overall.set_style(
        indicatif::ProgressStyle::with_template("tune [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let quick_sets = |m: Method| {
        if args.quick {
            crate::benchmark::quick_sets(m)
        } else {
            vec![]
        }
    };
    let point_sets = |p: &Point| -> Vec<String> {
        quick_sets(method)
            .into_iter()
            .chain(args.sets.iter().cloned())
            .chain(p.sets.iter().cloned())
            .collect()
    };
    // A point out of its setting's range fails here, as `train` would, before any training;
    // the fixed settings first, so that an error of a grid's key names `--grid`.
    let fixed = TrainOptions {
        sets: quick_sets(method)
            .into_iter()
            .chain(args.sets.iter().cloned())
            .collect(),
        ..Default::default()
    };
    mmrf_train::check_settings(method, &fixed)?;
    for p in points {
        let opts = TrainOptions {
            sets: point_sets(p),
            ..Default::default()
        };
        mmrf_train::check_settings(method, &opts).map_err(|e| match e {
            mmrf_train::TrainError::Setting(m) => mmrf_train::TrainError::Setting(m.replacen("--set `", "--grid `", 1)),
            other => other,
        })?;
    }
    let runs_of = |w: u64| args.out.join("runs").join(format!("world-{w}"));
    let point_dir = |w: u64, p: &Point| runs_of(w).join(method.name()).join(dir_name(&p.label));
    let control_dir = |w: u64| runs_of(w).join("control-ltr");
    let scale = if args.quick { Scale::Small } else { Scale::Default };
    let mut trainings = Vec::new();
    for &w in &args.worlds {
        overall.set_message(format!("world {w}"));
        crate::ensure_world(&WorldConfig::new(scale, w), &args.out.join(format!("world-{w}")))?;
        for p in points {
            trainings.push(crate::pool::Training {
                method,
                data: args.out.join(format!("world-{w}")),
                out: point_dir(w, p),
                seed: w + TRAIN_SEED_OFFSET,
                sets: point_sets(p),
                label: format!("{} on world {w}", p.label),
            });
        }
    }
    // The controls last: the points (the method tuned) take longer.
    for &w in &args.worlds {
        trainings.push(crate::pool::Training {
            method: Method::Ltr,
            data: args.out.join(format!("world-{w}")),
            out: control_dir(w),
            seed: w + TRAIN_SEED_OFFSET,
            sets: quick_sets(Method::Ltr),
            label: format!("control ltr on world {w}"),
        });
    }
    overall.set_message("training");
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    crate::pool::train_all(&trainings, jobs, multi, &|| overall.inc(1))?;
    let mut per_world: Vec<Vec<PointOnWorld>> = vec![Vec::new(); points.len()];
    for &world_seed in &args.worlds {
        overall.set_message(format!("world {world_seed}: online"));
        let dir = args.out.join(format!("world-{world_seed}"));
        let world = mmrf_world::World::load(&dir)?;
        let (ds, _) = Dataset::open(&dir)?;
        let load = |run: PathBuf| -> Result<Box<dyn Ranker>> {
            Ok(mmrf_train::load(&run, &ds)
                .with_context(|| format!("loading {}", run.display()))?
                .1)
        };
        let control = load(control_dir(world_seed))?;
        let trained = points
            .iter()
            .map(|p| load(point_dir(world_seed, p)))
            .collect::<Result<Vec<_>>>()?;
        let named: Vec<Scaled> = std::iter::once(Scaled {
            name: "ltr (control)".into(),
            inner: control.as_ref(),
            factor: 1.0,
        })
        .chain(trained.iter().zip(points).map(|(r, p)| Scaled {
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
    Ok(per_world)
}

/// Each point with its mean lift over the worlds.
fn summarise(points: &[Point], per_world: &[Vec<PointOnWorld>]) -> Vec<PointResult> {
    points
        .iter()
        .zip(per_world)
        .map(|(point, worlds)| {
            let lifts: Vec<f64> = worlds.iter().map(|w| w.lift).collect();
            let (mean_lift, mean_lift_ci) = crate::benchmark::mean_ci(&lifts);
            PointResult {
                point: point.clone(),
                worlds: worlds.clone(),
                mean_lift,
                mean_lift_ci,
            }
        })
        .collect()
}

/// A one-key numeric point's value (NaN otherwise): the order points are reported in.
fn value_of(p: &Point) -> f64 {
    match p.sets.as_slice() {
        [one] => one
            .split_once('=')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// The point past the grid's edge when `points[best]` is on it: a grid of one numeric key,
/// continued geometrically where its edge values are positive (0.2, 0.5 → 1.25; 10, 3.0 →
/// 0.9) and arithmetically otherwise (0, 0.05 → −0.05), rounded when every value is
/// written as an integer (10, 3 → 1). `None` when the best point is inside, or the grid is not one numeric key.
pub fn next_point(points: &[Point], best: usize) -> Option<Point> {
    let key = points.first()?.sets.first()?.split_once('=')?.0.to_string();
    if points
        .iter()
        .any(|p| p.sets.len() != 1 || !p.sets[0].starts_with(&format!("{key}=")))
    {
        return None;
    }
    let mut values: Vec<f64> = points.iter().map(value_of).collect();
    if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let integers = points.iter().all(|p| !p.sets[0].contains('.'));
    let b = values[best];
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let (edge, inner) = if b == values[n - 1] {
        (values[n - 1], values[n - 2])
    } else if b == values[0] {
        (values[0], values[1])
    } else {
        return None;
    };
    let next = if edge > 0.0 && inner > 0.0 {
        edge * edge / inner
    } else {
        edge + (edge - inner)
    };
    let text = if integers {
        format!("{}", next.round() as i64)
    } else {
        let t = format!("{next:.6}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if values.iter().any(|v| format!("{v}") == text) || (integers && next.round() == edge) {
        return None;
    }
    let set = format!("{key}={text}");
    Some(Point {
        label: set.clone(),
        sets: vec![set],
    })
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
    if let Some(note) = &r.extension {
        md += &format!("\nExtension: {note}.\n");
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
            (vec!["k=0.4,0.40"], "the value 0.40 is given twice"),
            (vec!["k=true,true "], "given twice"),
            (vec!["a=1", "a=2"], "given twice"),
            (vec!["=1"], "empty"),
        ] {
            let e = parse_grid(&specs(&spec)).unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("--grid"), "{spec:?}: {e}");
        }
        assert!(parse_grid(&[]).is_err());
        // Values equal as text or as numbers are one value; others are not.
        assert_eq!(parse_grid(&specs(&["k=0.4,4,\"0.4\""])).unwrap().len(), 3);
    }

    #[test]
    fn a_key_the_grid_varies_cannot_also_be_fixed() {
        let e = check_fixed(&specs(&["k=0.4"]), &specs(&["k=0.8"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--set `k=0.8`") && e.contains("not both"), "{e}");
        assert!(check_fixed(&specs(&["k=0.4"]), &specs(&["j=0.8"])).is_ok());
        assert!(check_fixed(&specs(&["net.dim=8,16"]), &specs(&[" net.dim = 4"])).is_err());
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

    fn points(values: &[&str]) -> Vec<Point> {
        parse_grid(&[format!("k={}", values.join(","))]).unwrap()
    }

    #[test]
    fn a_best_point_on_the_edge_is_continued_past_it() {
        let p = points(&["0.2", "0.5"]);
        assert_eq!(next_point(&p, 1).unwrap().sets, ["k=1.25"]);
        assert_eq!(next_point(&points(&["3", "10", "30"]), 0).unwrap().sets, ["k=1"]);
        assert_eq!(next_point(&points(&["3.0", "10"]), 0).unwrap().sets, ["k=0.9"]);
        assert_eq!(next_point(&points(&["0", "0.05"]), 0).unwrap().sets, ["k=-0.05"]);
        assert_eq!(next_point(&points(&["0.5", "0.9"]), 1).unwrap().sets, ["k=1.62"]);
        // Inside: nothing to add.
        assert!(next_point(&points(&["1", "2", "3"]), 1).is_none());
        // Not one numeric key.
        assert!(next_point(&points(&["a", "b"]), 1).is_none());
        assert!(next_point(&parse_grid(&specs(&["a=1,2", "b=1"])).unwrap(), 1).is_none());
    }

    #[test]
    fn run_directories_are_plain_names() {
        assert_eq!(dir_name("a=1 b.c=x/y"), "a=1_b.c=x_y");
    }
}
