//! # mmrf — the command line
//!
//! `mmrf world generate` writes a ground-truth world in KuaiRand's format,
//! `mmrf data check` validates any KuaiRand directory, `mmrf bench ...` measures speed, and
//! `mmrf benchmark` is the one-command main job.

mod benchmark;
mod pool;
mod serve;
mod tune;
mod workers;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use mmrf_data::Dataset;
use mmrf_world::{Scale, WorldConfig, WorldModel};

/// mimalloc keeps freed memory for reuse: with glibc's malloc, a training update's
/// mid-sized tensors went back to the kernel and were faulted in again every update
/// (13 % of the update rate; `mmrf bench train-step` measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mmrf",
    version,
    about = "Model-based Multi-agent Ranking Framework for short-video recommendation",
    long_about = "Model-based Multi-agent Ranking Framework (MMRF) for short-video recommendation.\n\n\
Start with `mmrf benchmark` (generates the default world and runs the main job), or\n\
`mmrf world generate --out DIR` then `mmrf data check DIR` to inspect data."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate and inspect ground-truth worlds.
    World {
        #[command(subcommand)]
        command: WorldCommand,
    },
    /// Validate and summarise KuaiRand-format data.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Measure speed: ingest, evaluation, training steps, serving.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Train a method on a KuaiRand-format directory into a run directory.
    Train {
        /// The data directory (KuaiRand files, real or generated).
        #[arg(long)]
        data: PathBuf,
        /// bc, wide-deep, deepfm, ltr, pareto, tscac, massa, mmrf, mmrf-co, mmrf-da or mmrf-ns.
        #[arg(long)]
        method: String,
        /// The run directory to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// A TOML file of the method's settings.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one setting, e.g. `--set epochs=1` or `--set net.dim=16`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Continue from OUT's last checkpoint (after a kill): method, settings and seed come
        /// from it, and a --method or --set that differs from them is refused.
        #[arg(long)]
        resume: bool,
        /// Replace a non-empty OUT; the old run stays until the new one is complete.
        #[arg(long, conflicts_with = "resume")]
        force: bool,
        /// Data-parallel training in N processes on this machine (`mpirun -np N`): each
        /// samples its own shard of users, `batch / N` requests per update, and the
        /// gradients are averaged every update. Needs a build with `--features mpi`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        workers: Option<u32>,
        /// Train as one process of an MPI job: `mpirun -np N [--host A,B] mmrf train
        /// --distributed ...` (how workers on several machines train together).
        #[arg(long, conflicts_with = "workers")]
        distributed: bool,
    },
    /// Evaluate a run on the held-out split: GAUC and NCIS per signal.
    Eval {
        /// The run to evaluate (or `--oracle`).
        #[arg(long, required_unless_present = "oracle")]
        run: Option<PathBuf>,
        #[arg(long)]
        data: PathBuf,
        /// Where π_β comes from: a BC run directory, or `true` for the data's true
        /// propensities (generated worlds). Default: the run itself when it is a BC run.
        #[arg(long)]
        behaviour: Option<String>,
        /// The held-out split: test (standard log, 4_22–5_08) or random (random exposure).
        #[arg(long, default_value = "test")]
        split: String,
        /// Temperature τ of the target policy softmax(score/τ) (default: matched to π_β's
        /// entropy; required with `--behaviour true`).
        #[arg(long)]
        tau: Option<f32>,
        /// Cap c of the NCIS importance ratio.
        #[arg(long, default_value_t = 10.0)]
        cap: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Write one CSV row per held-out impression (ids, score, pi, pi_beta, labels).
        #[arg(long, value_name = "FILE")]
        dump_scores: Option<PathBuf>,
        /// Another run to compare with on the same impressions (repeat): per signal, the
        /// difference of GAUC and NCIS with a paired bootstrap interval over users.
        #[arg(long, value_name = "RUN")]
        against: Vec<PathBuf>,
        /// On a generated world: also run the policy NCIS evaluates (`softmax(score/τ)`) in
        /// the world over the test period and give each signal's true value per shown video
        /// and of the first draw (the first video of each request: one draw from the
        /// softmax, which NCIS's propensities describe) beside NCIS with BC's and with the
        /// true π_β, and uncapped SNIPS (test split, BC behaviour).
        #[arg(long)]
        truth: bool,
        /// Score by the run's feedback simulator instead of its policy (MMRF, MMRF-CO runs):
        /// each candidate's predicted play time, from the model that labels the
        /// non-impression samples. Reported as METHOD-simulator.
        #[arg(long)]
        simulator: bool,
        /// Score by the world's myopic oracle instead of a run: each candidate's true
        /// expected play time at the state the user was in (generated worlds only).
        #[arg(long, conflicts_with_all = ["run", "simulator"])]
        oracle: bool,
        /// What an actor-critic run ranks by: its actor (the method), its WatchTime critic's
        /// per-item value (`critic-greedy`) or its WatchTime reward head (`reward-head`).
        /// The two diagnostics are reported as METHOD-critic-greedy and METHOD-reward-head.
        #[arg(long, default_value = "actor", conflicts_with_all = ["simulator", "oracle"])]
        rank_by: mmrf_train::actor_critic::RankBy,
    },
    /// Serve a trained run over HTTP.
    ///
    /// POST /v1/rank, POST /v1/feedback, GET /healthz, GET /metrics. Stops cleanly on
    /// SIGTERM or Ctrl-C.
    Serve {
        /// The run directory (any method).
        #[arg(long)]
        run: PathBuf,
        /// The data directory with the item and user features (default: the one the run
        /// was trained on).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        #[command(flatten)]
        limits: serve::Limits,
    },
    /// Run trained methods against each other in a world's simulated online A/B test.
    ///
    /// Each method ranks top-K by its score in a generated world, on the same users, with
    /// the logging policy as a reference arm.
    Ab {
        /// The world directory (generated by `mmrf world generate`).
        #[arg(long)]
        data: PathBuf,
        /// A run directory per arm (repeat).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// The control arm's name (a run directory's name, or `logging`); default: the first run.
        #[arg(long)]
        control: Option<String>,
        /// Days of the test period to simulate (at least 1).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
        /// Leave out the two oracle arms (the world's ceiling; the session-aware one is the
        /// slowest arm). The other arms' figures do not change.
        #[arg(long)]
        no_oracles: bool,
        /// For each actor-critic run, two more arms from the same run: ranking by its
        /// WatchTime critic's per-item value (NAME-critic-greedy) and by its WatchTime
        /// reward head (NAME-reward-head). Whether the actor or the critic holds the
        /// method back is then a figure. Runs without a critic get no extra arm.
        #[arg(long)]
        critic_arms: bool,
    },
    /// Choose a method's settings on the tuning worlds (7–9).
    ///
    /// Trains each grid point on each world and keeps the best online WatchTime lift over
    /// LTR; the held-out worlds 10–12 are refused.
    Tune(tune::TuneArgs),
    /// The main job: generate (or reuse) the default world and report on it.
    Benchmark {
        /// Output directory (the world goes to OUT/world).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Use the small world (a smoke test).
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Repeat with this many seeds (world and training), reporting mean and 95 % CI.
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Run on this KuaiRand-format directory instead of the generated world (real
        /// data has no ground truth: the online A/B and the checks against it are skipped).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Trainings run side by side, each in its own process (default: the machine's
        /// cores).
        #[arg(long, value_parser = at_least_one())]
        jobs: Option<usize>,
    },
}

/// A count that must be at least 1, refused by clap with the flag's name otherwise.
pub(crate) fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

#[derive(Clone, Copy, ValueEnum)]
enum ScaleArg {
    Small,
    Default,
    #[value(name = "1k")]
    OneK,
    /// KuaiRand-27K's users and file layout at a tenth of its log volume.
    #[value(name = "27k")]
    TwentySevenK,
}

impl From<ScaleArg> for Scale {
    fn from(s: ScaleArg) -> Scale {
        match s {
            ScaleArg::Small => Scale::Small,
            ScaleArg::Default => Scale::Default,
            ScaleArg::OneK => Scale::OneK,
            ScaleArg::TwentySevenK => Scale::TwentySevenK,
        }
    }
}

#[derive(Subcommand)]
enum WorldCommand {
    /// Write a world as the KuaiRand-1K file set plus side files.
    Generate {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Override the number of users of the scale.
        #[arg(long)]
        users: Option<usize>,
        #[arg(long, value_enum, default_value = "default")]
        scale: ScaleArg,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Validate a KuaiRand directory (real or generated) and summarise it.
    ///
    /// Prints rows, users, videos, date range and the rate of every signal, per log.
    Check {
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a CSV data directory as Parquet (every command's `--data` reads either).
    ///
    /// One `.parquet` file per KuaiRand file, under the same name; logs streamed in row
    /// groups of at most 262,144 rows with Snappy pages; side files (`mmrf_*`) copied.
    Convert {
        dir: PathBuf,
        /// The format to write: parquet.
        #[arg(long, value_enum)]
        to: ConvertFormat,
        /// The new data directory (must not hold anything yet).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ConvertFormat {
    Parquet,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time generating a world, its first load (parse), its cached reload, and the same
    /// data converted to Parquet and loaded from it.
    Ingest {
        #[arg(long, value_enum, default_value = "default")]
        scale: ScaleArg,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where to write the world (default: a temporary directory).
        #[arg(long, conflicts_with = "data")]
        dir: Option<PathBuf>,
        /// Time loading this CSV data directory instead of a generated world (its cache
        /// is rebuilt; the Parquet copy goes to DATA-parquet).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Leave out the Parquet copy and its load (the copy includes the side files:
        /// 12 GB at the 27k scale).
        #[arg(long)]
        no_parquet: bool,
    },
    /// Time MMRF's full update at the default sizes on the default world.
    ///
    /// Critics, actors, target networks and the simulator's refit; prints updates/s and
    /// the achieved matmul GFLOP/s next to this machine's SGEMM GFLOP/s.
    TrainStep {
        /// An actor-critic method: mmrf, mmrf-co, mmrf-da, mmrf-ns, pareto, tscac, massa.
        #[arg(long, default_value = "mmrf")]
        method: String,
        #[arg(long, default_value_t = 40)]
        steps: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where to write the world (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Override one of the method's settings (as `train --set`), e.g.
        /// `--set net.critic=list` or `--set sample_fraction=0.25`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Load-test a running `mmrf serve`.
    ///
    /// Open-loop rank requests with 400 logged candidates each; prints p50/p95/p99
    /// latency and the achieved throughput.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Requests per second.
        #[arg(long, default_value_t = 1000.0)]
        rps: f64,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// The data the requests are drawn from (the server's data directory).
        #[arg(long, default_value_os_t = serve::default_data())]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Time the offline evaluation of about 1 M held-out impressions.
    ///
    /// Scoring every impression, then GAUC and NCIS with bootstrap intervals for all
    /// seven signals.
    Eval {
        /// Users of the world (1,600 give about 1 M test impressions).
        #[arg(long, default_value_t = 1600)]
        users: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where to write the world (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", message(&e));
        std::process::exit(1);
    }
}

/// An error and its causes on one line, each cause once: an error whose own message
/// already ends with its source's (an I/O error after its path) does not repeat it.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::World {
            command:
                WorldCommand::Generate {
                    out,
                    seed,
                    users,
                    scale,
                },
        } => {
            let mut config = WorldConfig::new(scale.into(), seed);
            if let Some(n) = users {
                config.n_users = n;
            }
            let (summary, secs) = generate_world(&config, &out)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            eprintln!("generated {} in {secs:.1}s", out.display());
            Ok(())
        }
        Command::Data {
            command: DataCommand::Convert { dir, to, out },
        } => {
            let ConvertFormat::Parquet = to;
            let start = Instant::now();
            let done = mmrf_data::columnar::convert(&dir, &out)?;
            for (path, rows) in &done.files {
                eprintln!("{:>12} rows  {}", rows, path.display());
            }
            for path in &done.copied {
                eprintln!("{:>12}       {} (copied)", "", path.display());
            }
            eprintln!(
                "converted {} to Parquet in {:.1}s: {}",
                dir.display(),
                start.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        Command::Data {
            command: DataCommand::Check { dir, json },
        } => {
            let report = mmrf_data::check::check_dir(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            if let Some(p) = report.problems.first() {
                bail!("{}: {p}", dir.display());
            }
            if !report.complete {
                bail!(
                    "{}: incomplete KuaiRand directory (see the MISSING files above)",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Ingest {
                    scale,
                    seed,
                    dir,
                    data,
                    no_parquet,
                },
        } => bench_ingest(scale.into(), seed, dir, data, !no_parquet),
        Command::Bench {
            command: BenchCommand::Eval { users, seed, dir },
        } => bench_eval(users, seed, dir),
        Command::Bench {
            command:
                BenchCommand::TrainStep {
                    method,
                    steps,
                    seed,
                    dir,
                    sets,
                },
        } => bench_train_step(&method, steps, seed, dir, sets),
        Command::Bench {
            command:
                BenchCommand::Serve {
                    addr,
                    rps,
                    duration,
                    connections,
                    data,
                    json,
                },
        } => serve::bench(addr, rps, duration, connections, &data, json),
        Command::Serve {
            run,
            data,
            addr,
            limits,
        } => serve::serve(&run, data.as_deref(), &addr, limits.config()),
        Command::Tune(args) => tune::run(&args),
        Command::Benchmark {
            out,
            quick,
            seed,
            seeds,
            data,
            jobs,
        } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            benchmark::run(&out, quick, seed, seeds, jobs, data.as_deref())
        }
        Command::Train {
            data,
            method,
            out,
            seed,
            config,
            sets,
            quiet,
            resume,
            force,
            workers,
            distributed,
        } => {
            let method: mmrf_train::Method = method.parse()?;
            if let Some(n) = workers.filter(|&n| n > 1) {
                mmrf_train::check_workers(method, &out, resume)?;
                return workers::launch(n as usize, &data, &out);
            }
            let group = if distributed { Some(workers::join()?) } else { None };
            let leads = group.as_ref().is_none_or(|g| g.leads());
            let (ds, _) = Dataset::open(&data)?;
            let opts = mmrf_train::TrainOptions {
                seed,
                sets,
                config_file: config,
                progress: mmrf_train::Progress { quiet },
                resume,
                force,
                group,
            };
            let start = Instant::now();
            mmrf_train::train(method, &ds, &out, &opts)?;
            if !leads {
                return Ok(());
            }
            if let Err(e) = mmrf_eval::report::learning_curve(&out) {
                eprintln!("warning: learning curve not plotted: {e}");
            }
            eprintln!(
                "trained {} in {:.1}s into {}",
                method.name(),
                start.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        Command::Ab {
            data,
            runs,
            control,
            days,
            seed,
            json,
            no_oracles,
            critic_arms,
        } => {
            use mmrf_train::actor_critic::RankBy;
            let world = mmrf_world::World::load(&data)?;
            let period = mmrf_world::test_period_days(&world.model.config);
            anyhow::ensure!(
                days <= period,
                "--days {days}: the world's test period has {period} days (from {} on); simulate at most that many",
                mmrf_data::schema::TEST_FIRST_DAY
            );
            let (ds, _) = Dataset::open(&data)?;
            // (arm name, ranker): arms are named after their run directories, so two runs
            // of one method compare; a diagnostic arm adds its ranking's name.
            let mut rankers: Vec<(String, Box<dyn mmrf_train::Ranker>)> = Vec::new();
            for r in &runs {
                let (manifest, ranker) = mmrf_train::load(r, &ds)?;
                let name = r
                    .file_name()
                    .map_or_else(|| ranker.method().to_string(), |n| n.to_string_lossy().into_owned());
                rankers.push((name.clone(), ranker));
                let actor_critic = manifest.method.parse::<mmrf_train::Method>()?.actor_critic();
                if critic_arms && actor_critic {
                    for rank_by in [RankBy::CriticGreedy, RankBy::RewardHead] {
                        rankers.push((rank_by.ranker_name(&name), mmrf_train::load_ranking(r, &ds, rank_by)?.1));
                    }
                }
            }
            let named: Vec<mmrf_train::Scaled> = rankers
                .iter()
                .map(|(name, r)| mmrf_train::Scaled {
                    name: name.clone(),
                    inner: r.as_ref(),
                    factor: 1.0,
                })
                .collect();
            let policies: Vec<mmrf_train::AsPolicy> = named.iter().map(|r| mmrf_train::AsPolicy::top_k(r)).collect();
            let logging = mmrf_world::LoggingPolicy { model: &world.model };
            let oracle = mmrf_world::MyopicOracle { model: &world.model };
            let mut arms: Vec<&dyn mmrf_world::Policy> =
                policies.iter().map(|p| p as &dyn mmrf_world::Policy).collect();
            arms.push(&logging);
            let session = mmrf_world::SessionOracle::new(&world.model);
            if !no_oracles {
                arms.push(&oracle);
                arms.push(&session);
            }
            let names: Vec<String> = arms.iter().map(|a| a.name().to_string()).collect();
            let mut seen = std::collections::HashSet::new();
            anyhow::ensure!(
                names.iter().all(|n| seen.insert(n.clone())),
                "two arms share a name ({names:?}): give the run directories different names"
            );
            let c = control.unwrap_or_else(|| names[0].clone());
            let control = names
                .iter()
                .position(|n| *n == c)
                .ok_or_else(|| anyhow::anyhow!("--control {c}: no such arm (arms: {})", names.join(", ")))?;
            let cfg = mmrf_eval::abtest::AbConfig {
                online: mmrf_world::OnlineConfig {
                    days,
                    seed,
                    ..Default::default()
                },
                seed,
                ..Default::default()
            };
            let report = mmrf_eval::abtest::ab_test(&world.model, &arms, control, &cfg);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", mmrf_eval::report::table2(&report));
            }
            Ok(())
        }
        Command::Eval {
            run,
            data,
            behaviour,
            split,
            tau,
            cap,
            json,
            dump_scores,
            against,
            truth,
            simulator,
            oracle,
            rank_by,
        } => {
            let split = match split.as_str() {
                "test" => mmrf_data::LogSplit::Test,
                "random" => mmrf_data::LogSplit::Random,
                other => bail!("--split {other}: expected test or random"),
            };
            let (ds, _) = Dataset::open(&data)?;
            // With --simulator only the run's simulator is loaded, not its policy.
            let run_name = run.as_ref().map_or("oracle".to_string(), |r| r.display().to_string());
            let (is_bc, ranker): (bool, Box<dyn mmrf_train::Ranker>) = match &run {
                None => (
                    false,
                    Box::new(mmrf_eval::oracle::OracleRanker::load(&ds).map_err(anyhow::Error::msg)?),
                ),
                Some(run) if simulator => (
                    false,
                    Box::new(mmrf_train::actor_critic::SimulatorScorer::load(run, &ds)?),
                ),
                Some(run) => {
                    let (m, r) = mmrf_train::load_ranking(run, &ds, rank_by)?;
                    (m.method == "bc", r)
                }
            };
            debug_assert!(oracle == run.is_none());
            let method = ranker.method().to_string();
            let beh_run;
            let beh = match behaviour.as_deref() {
                Some("true") => mmrf_eval::offline::Behaviour::True,
                Some(dir) => {
                    let (m, r) = mmrf_train::load(Path::new(dir), &ds)?;
                    anyhow::ensure!(
                        m.method == "bc",
                        "--behaviour {dir}: a BC run is needed, this is {}",
                        m.method
                    );
                    beh_run = r;
                    mmrf_eval::offline::Behaviour::Model(beh_run.as_ref())
                }
                None if is_bc => mmrf_eval::offline::Behaviour::Model(ranker.as_ref()),
                None => bail!("--behaviour: pass a BC run directory (or `true` on a generated world) for pi_beta"),
            };
            let cfg = mmrf_eval::offline::OfflineConfig {
                tau,
                ope: mmrf_eval::OpeConfig {
                    cap,
                    ..Default::default()
                },
                ..Default::default()
            };
            anyhow::ensure!(tau.is_none_or(|t| t > 0.0 && t.is_finite()), "--tau must be positive");
            anyhow::ensure!(cap >= 1.0, "--cap must be at least 1");
            let timelines = mmrf_data::session::Timelines::build(&ds);
            let scored = mmrf_eval::offline::score_split(&ds, &timelines, split, ranker.as_ref(), beh, &cfg)
                .map_err(anyhow::Error::msg)?;
            let report = mmrf_eval::offline::metrics(&method, &ds, &scored, &cfg).map_err(anyhow::Error::msg)?;
            if let Some(path) = dump_scores {
                mmrf_eval::offline::write_dump(&path, &ds, &scored)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let mut comparisons = serde_json::Map::new();
            let mut text = mmrf_eval::report::offline_text(&report);
            for other in &against {
                let (m, r) = mmrf_train::load(other, &ds)?;
                let scored = mmrf_eval::offline::score_split(&ds, &timelines, split, r.as_ref(), beh, &cfg)
                    .map_err(anyhow::Error::msg)?;
                let theirs = mmrf_eval::offline::metrics(&m.method, &ds, &scored, &cfg).map_err(anyhow::Error::msg)?;
                let c = mmrf_eval::offline::compare(&report, &theirs, &cfg.ope).map_err(anyhow::Error::msg)?;
                let name = other.display().to_string();
                text += "\n";
                text += &mmrf_eval::report::comparison_text(&run_name, &name, &c);
                comparisons.insert(name, serde_json::to_value(&c)?);
            }
            let checked = match (truth, beh) {
                (false, _) => None,
                (true, mmrf_eval::offline::Behaviour::True) => {
                    bail!("--truth checks NCIS with BC's pi_beta: pass --behaviour BC_RUN")
                }
                (true, mmrf_eval::offline::Behaviour::Model(bc)) => {
                    anyhow::ensure!(
                        split == mmrf_data::LogSplit::Test,
                        "--truth checks the test split (the random split's exposures follow no policy)"
                    );
                    let world = mmrf_world::World::load(&data)
                        .with_context(|| format!("--truth needs a generated world in {}", data.display()))?;
                    let with_true = mmrf_eval::offline::metrics(
                        &method,
                        &ds,
                        &scored.with_true_propensities(&ds).map_err(anyhow::Error::msg)?,
                        &cfg,
                    )
                    .map_err(anyhow::Error::msg)?;
                    let candidate = mmrf_eval::fidelity::Candidate::with_reports(ranker.as_ref(), &report, &with_true);
                    // The benchmark's online streams (seeded by the world's seed), so its
                    // figures for the same run and world are these.
                    let online = mmrf_eval::fidelity::test_period(world.file.config.seed);
                    let f =
                        mmrf_eval::fidelity::fidelity(&ds, &timelines, &world.model, &[candidate], bc, &cfg, &online)
                            .map_err(anyhow::Error::msg)?;
                    text += &mmrf_eval::report::truth_text(&f);
                    Some(f)
                }
            };
            if json {
                let mut v = serde_json::to_value(&report)?;
                if !against.is_empty() {
                    v["against"] = serde_json::Value::Object(comparisons);
                }
                if let Some(f) = &checked {
                    v["truth"] = serde_json::to_value(&f.rows)?;
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{text}");
            }
            if let (mmrf_eval::offline::Behaviour::Model(_), Some(e)) =
                (beh, mmrf_eval::offline::propensity_error(&ds, &scored))
            {
                eprintln!(
                    "pi_beta against the true propensities: mean |error| {:.2e} (mean true {:.2e}), mean relative error {:.1}%, log correlation {:.3}",
                    e.mean_abs_error,
                    e.mean_true,
                    100.0 * e.mean_rel_error,
                    e.log_correlation
                );
            }
            Ok(())
        }
    }
}

fn generate_world(config: &WorldConfig, out: &Path) -> Result<(mmrf_world::Summary, f64)> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid world configuration: {e}"))?;
    // A world the disk cannot hold is refused before anything is simulated or written.
    if let Some((free, at)) = free_bytes(out) {
        let need = config.estimated_bytes();
        anyhow::ensure!(
            need <= free,
            "the world would take about {:.1} GB on disk and {:.1} GB are free at {}: fewer users, or another --out",
            need as f64 / 1e9,
            free as f64 / 1e9,
            at.display()
        );
    }
    let start = Instant::now();
    let model = WorldModel::new(config.clone());
    let bar = ProgressBar::new(config.n_users as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} users ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("simulating {} world", config.scale.name()));
    let summary = mmrf_world::generate(&model, out, &|n| bar.set_position(n as u64))
        .with_context(|| format!("generating the world into {}", out.display()))?;
    bar.finish_and_clear();
    Ok((summary, start.elapsed().as_secs_f64()))
}

/// The bytes free to this user on the file system that would hold `path` (its nearest
/// existing ancestor's), with that ancestor; `None` where it cannot be read.
fn free_bytes(path: &Path) -> Option<(u64, PathBuf)> {
    let abs = std::path::absolute(path).ok()?;
    let at = abs.ancestors().find(|p| p.exists())?.to_path_buf();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a NUL-terminated path and `st` a buffer statvfs fills on success.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it initialised `st`.
        let st = unsafe { st.assume_init() };
        #[allow(clippy::unnecessary_cast)]
        Some((st.f_bavail as u64 * st.f_frsize as u64, at))
    }
    #[cfg(not(unix))]
    {
        let _ = at;
        None
    }
}

/// Reuse the world in `dir` when it was generated from `config`, else generate it; returns
/// the seconds spent generating (`None` when reused).
fn ensure_world(config: &WorldConfig, dir: &Path) -> Result<Option<f64>> {
    let reuse = mmrf_world::World::load(dir)
        .map(|w| &w.file.config == config && w.file.format == mmrf_world::WORLD_FORMAT)
        .unwrap_or(false);
    if reuse {
        eprintln!("reusing the world in {}", dir.display());
        return Ok(None);
    }
    let (_, secs) = generate_world(config, dir)?;
    eprintln!("generated the {} world in {secs:.1}s", config.scale.name());
    Ok(Some(secs))
}

fn bench_ingest(scale: Scale, seed: u64, dir: Option<PathBuf>, data: Option<PathBuf>, parquet: bool) -> Result<()> {
    let tmp;
    let dir = match (dir, &data) {
        (_, Some(d)) => d.clone(),
        (Some(d), None) => d,
        (None, None) => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("world")
        }
    };
    let (requests, gen_s) = match data {
        Some(_) => (None, 0.0),
        None => {
            let (summary, secs) = generate_world(&WorldConfig::new(scale, seed), &dir)?;
            (Some(summary.requests), secs)
        }
    };
    let cache = mmrf_data::cache::cache_path(&dir);
    let _ = std::fs::remove_file(&cache);
    let (ds, first) = Dataset::open(&dir)?;
    anyhow::ensure!(!first.from_cache, "the first load must parse");
    let (ds2, second) = Dataset::open(&dir)?;
    anyhow::ensure!(second.from_cache, "the second load must come from the cache");
    anyhow::ensure!(ds == ds2, "the cached dataset differs from the parsed one");
    drop(ds2);
    let rows = ds.train.len() + ds.test.len() + ds.random.len();
    // Parsing alone (no cache written), to set beside the Parquet copy's decoding.
    let (_, csv_parse) = Dataset::open_with(&dir, false)?;
    // The same data as Parquet: the conversion, and its first (decoding) load.
    let parquet_figures = if parquet {
        let parquet = dir.with_file_name(format!(
            "{}-parquet",
            dir.file_name().map_or("world".into(), |n| n.to_string_lossy())
        ));
        let _ = std::fs::remove_dir_all(&parquet);
        let t = Instant::now();
        mmrf_data::columnar::convert(&dir, &parquet)?;
        let convert_s = t.elapsed().as_secs_f64();
        let (mut from_parquet, pq_first) = Dataset::open_with(&parquet, false)?;
        from_parquet.dir = ds.dir.clone();
        anyhow::ensure!(from_parquet == ds, "the Parquet copy loads another dataset");
        format!(
            " parquet_convert={convert_s:.2}s parquet_parse={:.2}s",
            pq_first.seconds
        )
    } else {
        String::new()
    };
    let what = match requests {
        Some(r) => format!("scale={} rows={rows} requests={r} generate={gen_s:.2}s", scale.name()),
        None => format!("data={} rows={rows}", dir.display()),
    };
    println!(
        "ingest {what} first_load={:.2}s cached_load={:.3}s speedup={:.1}x generate+load={:.1}s csv_parse={:.2}s{parquet_figures}",
        first.seconds,
        second.seconds,
        first.seconds / second.seconds.max(1e-9),
        gen_s + first.seconds,
        csv_parse.seconds,
    );
    Ok(())
}

fn bench_eval(users: usize, seed: u64, dir: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().join("world"));
    let mut config = WorldConfig::new(Scale::Default, seed);
    config.n_users = users;
    ensure_world(&config, &dir)?;
    let (ds, _) = Dataset::open(&dir)?;
    // A quick BC gives the scores and π_β; its quality does not matter for the timing.
    let opts = mmrf_train::TrainOptions {
        seed,
        sets: vec!["epochs=1".into(), "max_requests=20000".into()],
        progress: mmrf_train::Progress::hidden(),
        ..Default::default()
    };
    let bc = mmrf_train::train(mmrf_train::Method::Bc, &ds, &tmp.path().join("bc"), &opts)?;
    let cfg = mmrf_eval::offline::OfflineConfig::default();
    let start = Instant::now();
    let timelines = mmrf_data::session::Timelines::build(&ds);
    let t_states = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let beh = mmrf_eval::offline::Behaviour::Model(bc.as_ref());
    let scored = mmrf_eval::offline::score_split(&ds, &timelines, mmrf_data::LogSplit::Test, bc.as_ref(), beh, &cfg)
        .map_err(anyhow::Error::msg)?;
    let t_score = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = mmrf_eval::offline::metrics("bc", &ds, &scored, &cfg).map_err(anyhow::Error::msg)?;
    let t_metrics = t.elapsed().as_secs_f64();
    println!(
        "eval impressions={} signals={} histories={t_states:.2}s score={t_score:.2}s metrics={t_metrics:.2}s total={:.2}s threads={}",
        scored.len(),
        report.signals.len(),
        start.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    Ok(())
}

fn bench_train_step(method: &str, steps: usize, seed: u64, dir: Option<PathBuf>, sets: Vec<String>) -> Result<()> {
    use mmrf_train::actor_critic::{update_flops, Trainer};
    anyhow::ensure!(
        method.parse::<mmrf_train::Method>()?.actor_critic(),
        "--method {method}: only MMRF, its ablations and the actor-critic baselines train by DPG updates"
    );
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().join("world"));
    let config = WorldConfig::new(Scale::Default, seed);
    ensure_world(&config, &dir)?;
    let (ds, _) = Dataset::open(&dir)?;
    let fs = mmrf_model::FeatureSpace::from_dataset(&ds);
    let opts = mmrf_train::TrainOptions {
        sets,
        ..Default::default()
    };
    let mut cfg = mmrf_train::settings::settings_from(mmrf_train::actor_critic_config(method), &opts)?;
    cfg.sim_pretrain_steps = 5;
    let _seeded = mmrf_model::device::seeded(seed);
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run)?;
    let mut t = Trainer::new(&ds, &fs, method, &cfg, mmrf_train::objective, seed, &run)?;
    t.pretrain_simulator(&mmrf_train::Progress::hidden())?;
    for _ in 0..5 {
        t.step()?;
    }
    let start = Instant::now();
    let (mut flops, mut rows, mut videos) = (0.0, 0usize, 0usize);
    let mut phases = mmrf_train::actor_critic::Phases::default();
    for _ in 0..steps {
        let s = t.step()?;
        phases.add(&s.phases);
        flops += update_flops(&cfg, &fs.shape(), &s);
        rows += s.batch;
        videos += s.videos;
    }
    let secs = start.elapsed().as_secs_f64();
    let sgemm = mmrf_model::device::sgemm_gflops(1024);
    println!(
        "train-step method={method} {}batch={} updates/s={:.2} ms/update={:.1} (batch assembly {:.1}) matmul_gflop/update={:.3} achieved_gflop/s={:.2} sgemm_gflop/s={sgemm:.1} threads={}",
        opts.sets.iter().map(|s| format!("{s} ")).collect::<String>(),
        cfg.batch,
        steps as f64 / secs,
        1000.0 * secs / steps as f64,
        1000.0 * (phases.sample + phases.label + phases.states) / steps as f64,
        flops / steps as f64 / 1e9,
        flops / secs / 1e9,
        rayon::current_num_threads()
    );
    let per_phase: Vec<String> = phases
        .named()
        .iter()
        .map(|(name, s)| format!("{name}={:.2}", 1000.0 * s / steps as f64))
        .collect();
    println!("ms per phase: {}", per_phase.join(" "));
    let shape = fs.shape();
    // What a port of the update must match (bench/mmrf_update.py --params checks it).
    let parts: Vec<String> = t
        .trained_params()
        .iter()
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    println!("params {}", parts.join(" "));
    println!(
        "shapes (for bench/mmrf_update.py): --rows {} --videos {} --user-dim {} --video-dim {} --n-users {} --n-videos {} --n-authors {} --n-tags {}",
        rows / steps.max(1),
        videos / steps.max(1),
        shape.user_dim,
        shape.video_dim,
        shape.n_users,
        shape.n_videos,
        shape.n_authors,
        shape.n_tags
    );
    Ok(())
}
