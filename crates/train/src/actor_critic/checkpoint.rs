//! Checkpoints: everything a run needs to continue exactly where it stopped, written
//! atomically beside the previous one, and the check that a resume changes no setting.

use std::path::Path;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::prelude::*;
use mmrf_data::Dataset;
use mmrf_model::FeatureSpace;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::ActorCriticConfig;
use super::objective::ObjectiveOf;
use super::trainer::Trainer;
use crate::distributed::Group;
use crate::run;
use crate::{TrainError, TrainLog};

/// The checkpoint directory inside a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_FILE: &str = "checkpoint.toml";

/// A run's checkpoint directories, newest first: the last one and the one before it.
pub(super) fn checkpoint_dirs(out: &Path) -> [std::path::PathBuf; 2] {
    [out.join(CHECKPOINT_DIR), out.join(format!("{CHECKPOINT_DIR}.old"))]
}

fn no_checkpoint(out: &Path) -> TrainError {
    TrainError::Run(format!(
        "{}: no checkpoint to resume (a finished run keeps none; start a new run with --force)",
        out.display()
    ))
}

fn read_checkpoint_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    toml::from_str(&text).map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))
}

/// Refuse to resume `out` as `method` with settings (`opts`' `--config` and `--set`s) that
/// differ from its checkpoint's: a resumed run continues the run that was checkpointed.
pub fn check_resume(out: &Path, method: &str, opts: &crate::TrainOptions) -> Result<(), TrainError> {
    let st = checkpoint_dirs(out)
        .iter()
        .find_map(|d| read_checkpoint_state(d).ok())
        .ok_or_else(|| no_checkpoint(out))?;
    if st.method != method {
        return Err(TrainError::Run(format!(
            "{}: the checkpoint is of a {} run; --resume continues it as it was (--method {})",
            out.display(),
            st.method,
            st.method
        )));
    }
    let base = ActorCriticConfig::deserialize(toml::Value::Table(st.config.clone()))
        .map_err(|e| TrainError::Run(format!("{}: [config]: {e}", out.display())))?;
    let resumed = crate::settings_from(base.clone(), opts)?;
    let changed = crate::settings::differences(&run::to_table(&resumed), &run::to_table(&base));
    if !changed.is_empty() {
        return Err(TrainError::Setting(format!(
            "--resume continues the checkpoint's settings, and these differ from them: {}; drop them, or start a new run with --force",
            changed.join(", ")
        )));
    }
    Ok(())
}

/// `checkpoint/checkpoint.toml`: where training stood.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    method: String,
    seed: u64,
    step: usize,
    cursor: usize,
    sim_ready: bool,
    /// The shuffling generator: seed (hex), stream and word position.
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
    /// Parameter ids in traversal order; the optimizers' states are keyed by them.
    net_ids: Vec<u64>,
    sim_ids: Vec<u64>,
    /// The objective's state across updates (TSCAC's Lagrange multipliers).
    #[serde(default)]
    multipliers: Vec<f64>,
    /// Eq. 6's factors so far: outside [0.99, 1.01], and in all.
    #[serde(default)]
    uncertainty: [u64; 2],
    /// The processes that trained it (data-parallel), each with its own sampling state.
    #[serde(default = "one")]
    workers: usize,
    config: toml::Table,
}

fn one() -> usize {
    1
}

/// A process's sampling state: `checkpoint.toml` holds the first process's, `rank-R.toml`
/// each other one's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SamplingState {
    cursor: usize,
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
    uncertainty: [u64; 2],
}

struct Ids(Vec<u64>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

fn ids<M: Module>(m: &M) -> Vec<u64> {
    let mut v = Ids(Vec::new());
    m.visit(&mut v);
    v.0
}

/// Give a freshly built module the parameter ids of the checkpointed one.
struct SetIds(std::vec::IntoIter<u64>);

impl ModuleMapper for SetIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.next() {
            Some(id) => {
                let (_, value, mapper) = param.consume();
                Param::from_mapped_value(burn::module::ParamId::from(id), value, mapper)
            }
            None => param,
        }
    }
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    mmrf_data::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| TrainError::io(path, e))
}

impl<'a> Trainer<'a> {
    /// Write everything needed to continue exactly from here into `RUN_DIR/checkpoint/`
    /// (built in a temporary directory, then swapped in, so a kill never leaves a torn one).
    ///
    /// In a data-parallel group every process calls it at the same update: the first
    /// builds the directory and writes the networks (the same in every replica), each other
    /// process adds its own sampling state (`rank-R.toml`, `order-R.bin`), and the first
    /// swaps the directory in once all have written.
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        let (Some(net), Some(target)) = (&self.net, &self.target) else {
            return Err(TrainError::Run("the trainer failed earlier".into()));
        };
        let tmp = self.out.join(format!("{CHECKPOINT_DIR}.tmp"));
        if let Some(g) = &self.group {
            g.0.barrier();
            if g.leads() {
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
            }
            g.0.barrier();
            if !g.leads() {
                let rank = g.rank();
                let order: Vec<u8> = self.order.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
                write_bytes(&tmp.join(format!("order-{rank}.bin")), &order)?;
                let text = toml::to_string(&self.sampling_state()).map_err(|e| TrainError::Run(e.to_string()))?;
                write_bytes(&tmp.join(format!("rank-{rank}.toml")), text.as_bytes())?;
                // The first process swaps the directory in once every process has written.
                g.0.barrier();
                g.0.barrier();
                return Ok(());
            }
        } else {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        run::save_weights(&net.valid(), &tmp.join("net.safetensors"))?;
        run::save_weights(target, &tmp.join("target.safetensors"))?;
        let optim_bytes = |o: &burn::optim::ModuleOptimizer| {
            o.into_bytes()
                .map(|b| b.to_vec())
                .map_err(|e| TrainError::Run(format!("saving optimizer state: {e:?}")))
        };
        write_bytes(&tmp.join("optim_critic.bpk"), &optim_bytes(&self.opt_critic)?)?;
        write_bytes(&tmp.join("optim_actor.bpk"), &optim_bytes(&self.opt_actor)?)?;
        let mut sim_ids = Vec::new();
        if let Some(sim) = &self.sim {
            run::save_weights(&sim.model.valid(), &tmp.join("simulator.safetensors"))?;
            write_bytes(&tmp.join("optim_simulator.bpk"), &optim_bytes(&sim.optim)?)?;
            sim_ids = ids(&sim.model);
        }
        let order: Vec<u8> = self.order.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
        write_bytes(&tmp.join("order.bin"), &order)?;
        let table: Vec<u8> = self.table.iter().flat_map(|x| x.to_le_bytes()).collect();
        write_bytes(&tmp.join("item_table.bin"), &table)?;
        let sampling = self.sampling_state();
        let state = CheckpointState {
            method: self.method.clone(),
            seed: self.seed,
            step: self.step,
            cursor: sampling.cursor,
            sim_ready: self.sim_ready,
            rng_seed: sampling.rng_seed,
            rng_stream: sampling.rng_stream,
            rng_word_pos: sampling.rng_word_pos,
            net_ids: ids(net),
            sim_ids,
            multipliers: self.objective.state(),
            uncertainty: sampling.uncertainty,
            workers: self.group.as_ref().map_or(1, |g| g.size()),
            config: run::to_table(&self.cfg),
        };
        let text = toml::to_string(&state).map_err(|e| TrainError::Run(e.to_string()))?;
        write_bytes(&tmp.join(CHECKPOINT_FILE), text.as_bytes())?;
        if let Some(g) = &self.group {
            g.0.barrier();
        }
        // The previous checkpoint stays as `checkpoint.old`: a resume falls back to it
        // when the newest cannot be read.
        let [dir, old] = checkpoint_dirs(&self.out);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&dir, &old).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
        if let Some(g) = &self.group {
            g.0.barrier();
        }
        Ok(())
    }

    /// This process's place in its sampling streams.
    fn sampling_state(&self) -> SamplingState {
        SamplingState {
            cursor: self.cursor,
            rng_seed: self.rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            uncertainty: self.uncertainty,
        }
    }

    /// Continue from `RUN_DIR/checkpoint/`, or from the checkpoint before it when that one
    /// cannot be read (the caller holds [`mmrf_model::device::seeded`]).
    pub fn resume(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        objective_of: ObjectiveOf,
        out: &Path,
    ) -> Result<Trainer<'a>, TrainError> {
        Self::resume_in(data, fs, objective_of, out, None)
    }

    /// [`Trainer::resume`] as one process of a data-parallel group, which must have as many
    /// processes as the checkpointed run had.
    pub fn resume_in(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        objective_of: ObjectiveOf,
        out: &Path,
        group: Option<Group>,
    ) -> Result<Trainer<'a>, TrainError> {
        let mut first_error = None;
        for dir in checkpoint_dirs(out) {
            if !dir.exists() {
                continue;
            }
            match Self::resume_from(data, fs, objective_of, out, &dir, group.clone()) {
                Ok(t) => {
                    if let Some(e) = &first_error {
                        tracing::warn!(
                            "the newest checkpoint could not be read ({e}); resumed from {}",
                            dir.display()
                        );
                    }
                    return Ok(t);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| no_checkpoint(out)))
    }

    fn resume_from(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        objective_of: ObjectiveOf,
        out: &Path,
        dir: &Path,
        group: Option<Group>,
    ) -> Result<Trainer<'a>, TrainError> {
        let path = dir.join(CHECKPOINT_FILE);
        let st = read_checkpoint_state(dir)?;
        let cfg: ActorCriticConfig = ActorCriticConfig::deserialize(toml::Value::Table(st.config.clone()))
            .map_err(|e| TrainError::Run(format!("{}: [config]: {e}", path.display())))?;
        let curve = std::fs::read_to_string(out.join(run::TRAIN_LOG_FILE)).unwrap_or_default();
        let (rank, size) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
        if st.workers != size {
            return Err(TrainError::Run(format!(
                "{}: the checkpoint was trained by {} worker(s); resume it with --workers {}",
                path.display(),
                st.workers,
                st.workers
            )));
        }
        // The first process's sampling state is in `checkpoint.toml`, the others' beside it.
        let (sampling, order_file) = if rank == 0 {
            let s = SamplingState {
                cursor: st.cursor,
                rng_seed: st.rng_seed.clone(),
                rng_stream: st.rng_stream,
                rng_word_pos: st.rng_word_pos.clone(),
                uncertainty: st.uncertainty,
            };
            (s, "order.bin".to_string())
        } else {
            let file = dir.join(format!("rank-{rank}.toml"));
            let text = std::fs::read_to_string(&file).map_err(|e| TrainError::io(&file, e))?;
            let s: SamplingState =
                toml::from_str(&text).map_err(|e| TrainError::Run(format!("{}: {e}", file.display())))?;
            (s, format!("order-{rank}.bin"))
        };
        let mut t = Trainer::new_in(data, fs, &st.method, &cfg, objective_of, st.seed, out, group)?;
        let bad = |what: &str| TrainError::Run(format!("{}: {what}", path.display()));
        let net = run::load_weights(
            t.net.take().ok_or_else(|| bad("no network"))?,
            &dir.join("net.safetensors"),
        )?;
        let net = net.map(&mut SetIds(st.net_ids.clone().into_iter()));
        let target = run::load_weights(
            t.target.take().ok_or_else(|| bad("no network"))?,
            &dir.join("target.safetensors"),
        )?;
        let optim = |name: &str| -> Result<burn::optim::ModuleOptimizer, TrainError> {
            let bytes = read_bytes(&dir.join(name))?;
            AdamConfig::new()
                .init()
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| TrainError::Run(format!("{}: {e:?}", dir.join(name).display())))
        };
        t.opt_critic = optim("optim_critic.bpk")?;
        t.opt_actor = optim("optim_actor.bpk")?;
        if let Some(sim) = t.sim.as_mut() {
            let model = run::load_weights(sim.model.clone(), &dir.join("simulator.safetensors"))?;
            sim.model = model.map(&mut SetIds(st.sim_ids.clone().into_iter()));
            sim.optim = optim("optim_simulator.bpk")?;
            sim.refresh();
        }
        t.net = Some(net);
        t.target = Some(target);
        let shard = t.order.len();
        let order = read_bytes(&dir.join(&order_file))?;
        t.order = order
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as usize)
            .collect();
        let table = read_bytes(&dir.join("item_table.bin"))?;
        t.table = table
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let seed_bytes: Vec<u8> = (0..sampling.rng_seed.len() / 2)
            .map(|i| u8::from_str_radix(&sampling.rng_seed[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let seed: [u8; 32] = seed_bytes.try_into().map_err(|_| bad("rng_seed"))?;
        t.rng = ChaCha8Rng::from_seed(seed);
        t.rng.set_stream(sampling.rng_stream);
        t.rng
            .set_word_pos(sampling.rng_word_pos.parse().map_err(|_| bad("rng_word_pos"))?);
        t.cursor = sampling.cursor;
        t.objective
            .restore(&st.multipliers)
            .map_err(|e| bad(&format!("multipliers: {e}")))?;
        t.uncertainty = sampling.uncertainty;
        t.step = st.step;
        t.sim_ready = st.sim_ready;
        if t.order.len() != shard || t.table.len() != t.table_len() {
            return Err(bad("does not fit this data"));
        }
        // The learning curve keeps the lines up to the checkpoint.
        if t.leads() {
            t.log_out = TrainLog::resume(out, st.step, &curve)?;
        }
        Ok(t)
    }

    fn table_len(&self) -> usize {
        self.fs.n_videos() * self.cfg.net.dim
    }
}
