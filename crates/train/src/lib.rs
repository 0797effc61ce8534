//! Training mmrf's methods into run directories, and loading runs back as [`Ranker`]s.
//!
//! Entry points: [`train()`], [`load()`], [`Method`], [`TrainOptions`], [`Ranker`].
//!
//! `train(method, data, out, options)` fits a method on the training split of a
//! KuaiRand-format directory and writes a run directory ([`run`]); `load(run_dir, data)`
//! turns it back into a [`Ranker`] that evaluation, the online test and the server share.
//!
//! One method per module, on the shared pieces: [`batch`] (requests → tensors),
//! [`run`] (manifest, weights, learning curve) and [`ranker`] (the scoring contract).
//! - [`bc`]: behaviour cloning of the logging policy; also π_β for off-policy estimates.
//! - [`supervised`]: the supervised baselines Wide&Deep, DeepFM and LTR.
//! - [`actor_critic`]: the trainer the actor-critic methods share (encoders, transitions,
//!   the simulator, the critics' TD update, checkpoints), each method a configuration of
//!   it and an [`ActorObjective`](actor_critic::ActorObjective):
//!   - [`mmrf`]: MMRF (eq. 4) and its ablations MMRF-CO, MMRF-DA and MMRF-NS;
//!   - [`pareto`], [`tscac`], [`massa`]: the actor-critic baselines.
//! - [`distributed`]: data-parallel training of the actor-critic methods, gradients averaged
//!   over a group of processes (MPI in `mmrf train --workers N`).
//!
//! [`actor_critic_config`] and [`objective`] are the registry that maps a method to its
//! configuration and objective; the trainer imports none of the methods.

pub mod actor_critic;
pub mod batch;
pub mod bc;
pub mod distributed;
pub mod massa;
pub mod mmrf;
pub mod pareto;
pub mod ranker;
pub mod run;
pub mod settings;
pub mod state;
pub mod supervised;
pub mod tscac;

use std::io::Write;
use std::path::Path;

use mmrf_data::Dataset;
use mmrf_model::FeatureSpace;

pub use mmrf_model::mmrf::N_TABS;
pub use ranker::{AsPolicy, LoggingRanker, Ranker, Scaled, TwoTowerRanker, UniformRanker};
pub use run::Manifest;
pub use settings::{settings, settings_from, Validate};

/// Everything that can stop training or loading a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The I/O error is part of the message, not a separate cause, so that a chain
    /// printer (`{:#}`) does not say it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{0}")]
    Run(String),
    #[error("{0}")]
    Data(String),
    #[error("training diverged at step {step}: {network} {tensor} is {value}")]
    NonFinite {
        step: usize,
        network: String,
        tensor: String,
        value: f32,
    },
    #[error("unknown method `{0}` (known: {known})", known = Method::NAMES.join(", "))]
    UnknownMethod(String),
    /// A setting that does not exist, does not parse, or is out of its range.
    #[error("{0}")]
    Setting(String),
}

/// The data failed under training (a candidate file that became unreadable).
impl From<mmrf_data::DataError> for TrainError {
    fn from(e: mmrf_data::DataError) -> Self {
        TrainError::Data(e.to_string())
    }
}

impl TrainError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            error: source,
        }
    }
}

/// Stop on a NaN or infinite value, naming the step, the network and the tensor.
pub fn check_finite(value: f32, step: usize, network: &str, tensor: &str) -> Result<(), TrainError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFinite {
            step,
            network: network.into(),
            tensor: tensor.into(),
            value,
        })
    }
}

/// The trainable methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Bc,
    WideDeep,
    DeepFm,
    Ltr,
    Mmrf,
    MmrfCo,
    MmrfDa,
    MmrfNs,
    Pareto,
    Tscac,
    Massa,
}

impl Method {
    pub const ALL: [Method; 11] = [
        Method::Bc,
        Method::WideDeep,
        Method::DeepFm,
        Method::Ltr,
        Method::Mmrf,
        Method::MmrfCo,
        Method::MmrfDa,
        Method::MmrfNs,
        Method::Pareto,
        Method::Tscac,
        Method::Massa,
    ];
    pub const NAMES: [&'static str; 11] = [
        "bc",
        "wide-deep",
        "deepfm",
        "ltr",
        "mmrf",
        "mmrf-co",
        "mmrf-da",
        "mmrf-ns",
        "pareto",
        "tscac",
        "massa",
    ];

    /// Trained by [`mmrf`]'s actor-critic trainer (MMRF, its ablations, Pareto, TSCAC, MASSA).
    pub fn actor_critic(self) -> bool {
        !matches!(self, Method::Bc | Method::WideDeep | Method::DeepFm | Method::Ltr)
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Bc => "bc",
            Method::WideDeep => "wide-deep",
            Method::DeepFm => "deepfm",
            Method::Ltr => "ltr",
            Method::Mmrf => "mmrf",
            Method::MmrfCo => "mmrf-co",
            Method::MmrfDa => "mmrf-da",
            Method::MmrfNs => "mmrf-ns",
            Method::Pareto => "pareto",
            Method::Tscac => "tscac",
            Method::Massa => "massa",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        let lower = s.to_ascii_lowercase();
        Method::ALL
            .into_iter()
            .find(|m| m.name() == lower)
            .ok_or_else(|| TrainError::UnknownMethod(s.into()))
    }
}

/// How to train.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub seed: u64,
    /// `key=value` overrides of the method's settings (dotted keys reach nested tables).
    pub sets: Vec<String>,
    /// A TOML file of settings, applied before `sets`.
    pub config_file: Option<std::path::PathBuf>,
    pub progress: Progress,
    /// Continue from the run directory's last checkpoint (methods that checkpoint).
    pub resume: bool,
    /// Replace a non-empty `out` (the old run stays until the new one is complete).
    pub force: bool,
    /// Train as one process of a data-parallel group ([`distributed`]); the actor-critic
    /// methods only.
    pub group: Option<distributed::Group>,
}

/// Train `method` on `data`'s training split; write the run to `out`.
///
/// A run directory is never half-overwritten: a non-empty `out` is refused unless
/// `opts.force` (then the new run is built beside it and moved into place whole when
/// complete) or `opts.resume` (then training continues `out`'s checkpoint, with the
/// checkpoint's method and settings: a conflicting method or setting is refused).
pub fn train(method: Method, data: &Dataset, out: &Path, opts: &TrainOptions) -> Result<Box<dyn Ranker>, TrainError> {
    if data.train.is_empty() {
        return Err(TrainError::Data(format!(
            "{}: the {} log has no rows: nothing to train on",
            data.dir.display(),
            mmrf_data::LogSplit::Train.name()
        )));
    }
    if out.exists() && !out.is_dir() {
        return Err(TrainError::Run(format!(
            "{} exists and is not a directory: give another --out (nothing was written)",
            out.display()
        )));
    }
    if let Some(group) = &opts.group {
        check_workers(method, out, opts.resume)?;
        if opts.resume {
            actor_critic::check_resume(out, method.name(), opts)?;
        }
        group.0.barrier();
        return train_into(method, data, out, opts);
    }
    if opts.resume {
        if !method.actor_critic() {
            return Err(TrainError::Run(format!(
                "{} does not checkpoint; --resume continues the actor-critic methods ({})",
                method.name(),
                actor_critic_names()
            )));
        }
        actor_critic::check_resume(out, method.name(), opts)?;
        return train_into(method, data, out, opts);
    }
    if mmrf_data::staged::is_nonempty_dir(out) {
        if !opts.force {
            return Err(TrainError::Run(format!(
                "{}: the directory is not empty (an earlier run?); pass --force to replace it once the \
                 new run is complete, --resume to continue its checkpoint, or choose another --out",
                out.display()
            )));
        }
        let staged = mmrf_data::staged::StagedDir::new(out).map_err(|e| TrainError::io(out, e))?;
        let ranker = train_into(method, data, staged.path(), opts)?;
        staged.commit().map_err(|e| TrainError::io(out, e))?;
        return Ok(ranker);
    }
    train_into(method, data, out, opts)
}

/// The actor-critic methods' names, for messages.
fn actor_critic_names() -> String {
    Method::ALL
        .iter()
        .filter(|m| m.actor_critic())
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `method` can train data-parallel into `out`: an actor-critic method, and an
/// empty `out` unless the run continues its checkpoint (every process writes into `out`
/// itself, so there is no staging beside it).
pub fn check_workers(method: Method, out: &Path, resume: bool) -> Result<(), TrainError> {
    if !method.actor_critic() {
        return Err(TrainError::Run(format!(
            "{} trains in one process; --workers trains the actor-critic methods ({})",
            method.name(),
            actor_critic_names()
        )));
    }
    if !resume && mmrf_data::staged::is_nonempty_dir(out) {
        return Err(TrainError::Run(format!(
            "{}: the directory is not empty; a run with --workers starts in an empty --out (or continues \
             its checkpoint with --resume)",
            out.display()
        )));
    }
    Ok(())
}

/// Resolve and validate the settings `train` would use for `method` with `opts` (its
/// defaults, the config file, the `--set`s), training nothing: a setting out of range is
/// the [`TrainError::Setting`] `train` would give.
pub fn check_settings(method: Method, opts: &TrainOptions) -> Result<(), TrainError> {
    match method {
        Method::Bc => settings::<bc::BcConfig>(opts).map(drop),
        Method::WideDeep | Method::DeepFm | Method::Ltr => {
            settings_from(supervised::SupervisedConfig::for_method(method.name()), opts).map(drop)
        }
        _ => settings_from(actor_critic_config(method.name()), opts).map(drop),
    }
}

fn train_into(method: Method, data: &Dataset, out: &Path, opts: &TrainOptions) -> Result<Box<dyn Ranker>, TrainError> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let fs = FeatureSpace::from_dataset(data);
    match method {
        Method::Bc => {
            let cfg: bc::BcConfig = settings(opts)?;
            Ok(Box::new(bc::train(data, &fs, &cfg, opts.seed, out, &opts.progress)?))
        }
        Method::WideDeep | Method::DeepFm | Method::Ltr => {
            let cfg = settings_from(supervised::SupervisedConfig::for_method(method.name()), opts)?;
            Ok(Box::new(supervised::train(
                data,
                &fs,
                method.name(),
                &cfg,
                opts.seed,
                out,
                &opts.progress,
            )?))
        }
        // Every other method (`Method::actor_critic`: MMRF, its ablations and the
        // actor-critic baselines) shares one trainer. A resumed run takes its settings
        // from the checkpoint ([`actor_critic::check_resume`] has refused any that differ).
        _ => {
            let cfg = settings_from(actor_critic_config(method.name()), opts)?;
            Ok(Box::new(actor_critic::train(
                data,
                &fs,
                method.name(),
                &cfg,
                objective,
                opts.seed,
                out,
                &opts.progress,
                opts.resume,
                opts.group.clone(),
            )?))
        }
    }
}

/// The configuration of an actor-critic method by name: `mmrf` and its ablations
/// (`mmrf-co`, `mmrf-da`, `mmrf-ns`), `pareto`, `tscac`, `massa`.
pub fn actor_critic_config(method: &str) -> actor_critic::ActorCriticConfig {
    match method {
        "pareto" => pareto::config(),
        "tscac" => tscac::config(),
        "massa" => massa::config(),
        _ => mmrf::config(method),
    }
}

/// The actor objective a configuration names ([`actor_critic::Objective`]).
pub fn objective(cfg: &actor_critic::ActorCriticConfig) -> Box<dyn actor_critic::ActorObjective> {
    match cfg.objective {
        actor_critic::Objective::Agents => Box::new(mmrf::OwnCritic),
        actor_critic::Objective::Pareto => Box::new(pareto::Scalarised),
        actor_critic::Objective::Tscac => Box::new(tscac::TwoStage::default()),
    }
}

/// Load a run directory as a [`Ranker`] over `data` (which must have the training data's
/// feature shape).
pub fn load(dir: &Path, data: &Dataset) -> Result<(Manifest, Box<dyn Ranker>), TrainError> {
    let manifest = Manifest::read(dir)?;
    let fs = FeatureSpace::from_dataset(data);
    manifest.check_shape(&fs.shape())?;
    let method: Method = manifest.method.parse()?;
    let ranker: Box<dyn Ranker> = match method {
        Method::Bc => Box::new(bc::load(dir, &manifest, &fs)?),
        Method::WideDeep | Method::DeepFm | Method::Ltr => Box::new(supervised::load(dir, &manifest, &fs)?),
        _ => Box::new(actor_critic::load(dir, &manifest, &fs)?),
    };
    Ok((manifest, ranker))
}

/// Load a run directory as a [`Ranker`] that ranks by `rank_by` ([`actor_critic::RankBy`]):
/// an actor-critic run by its actor, its WatchTime critic or its reward head. Any other
/// ranking than the actor's is an error for a method without a critic.
pub fn load_ranking(
    dir: &Path,
    data: &Dataset,
    rank_by: actor_critic::RankBy,
) -> Result<(Manifest, Box<dyn Ranker>), TrainError> {
    if rank_by == actor_critic::RankBy::Actor {
        return load(dir, data);
    }
    let manifest = Manifest::read(dir)?;
    let fs = FeatureSpace::from_dataset(data);
    manifest.check_shape(&fs.shape())?;
    let method: Method = manifest.method.parse()?;
    match method {
        m if !m.actor_critic() => Err(TrainError::Run(format!(
            "{}: a {} run has no critic to rank by ({rank_by} needs an actor-critic run: {})",
            dir.display(),
            method.name(),
            actor_critic_names()
        ))),
        _ => Ok((
            manifest.clone(),
            Box::new(actor_critic::load(dir, &manifest, &fs)?.ranking_by(rank_by)),
        )),
    }
}

/// Progress bars for long work (hidden when stderr is not a terminal or when quiet).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    /// No bars at all.
    pub fn hidden() -> Self {
        Progress { quiet: true }
    }

    pub fn bar(&self, name: &str, len: u64) -> indicatif::ProgressBar {
        if self.quiet {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar
    }
}

/// The learning curve: one JSON object per line, flushed as it goes.
pub struct TrainLog {
    /// None for a data-parallel group's other processes: the first one writes the curve.
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl TrainLog {
    pub fn create(dir: &Path) -> Result<TrainLog, TrainError> {
        let path = dir.join(run::TRAIN_LOG_FILE);
        let file = std::fs::File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(TrainLog {
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// A learning curve that writes nothing.
    pub fn none() -> TrainLog {
        TrainLog { file: None }
    }

    /// Reopen a learning curve whose earlier content was `text`, keeping only the lines of
    /// steps before `step`.
    pub fn resume(dir: &Path, step: usize, text: &str) -> Result<TrainLog, TrainError> {
        let path = dir.join(run::TRAIN_LOG_FILE);
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| (s as usize) < step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        mmrf_data::write_atomic(&path, kept.as_bytes()).map_err(|e| TrainError::io(&path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(TrainLog {
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    pub fn write(&mut self, line: &serde_json::Value) -> Result<(), TrainError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        writeln!(file, "{line}")
            .and_then(|_| file.flush())
            .map_err(|e| TrainError::Run(format!("train log: {e}")))
    }
}
