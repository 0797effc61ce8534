//! The update ([`Trainer::step`]) and the loop around it ([`train`]): batch, labels,
//! critics, the method's actor objective, soft update; the simulator's refit beside it.

use std::path::Path;
use std::time::Instant;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::HuberLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use mmrf_data::session::Timelines;
use mmrf_data::{Dataset, LogSplit};
use mmrf_model::mmrf::{square, CriticForm, MmrfNet, N_AGENTS};
use mmrf_model::FeatureSpace;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::buffer::{
    batch_states, candidate_list, item_targets, list_tensors, sample_rows, ItemTargets, ListBatch, Row, Transitions,
};
use super::checkpoint::checkpoint_dirs;
use super::config::{ActorCriticConfig, Augment, Bootstrap, LeaveCredit, NextState};
use super::objective::{ActorInputs, ActorObjective, ObjectiveOf, ObjectiveReport};
use super::policy::{item_table, ActorRanker};
use super::simulator::{Sim, SIMULATOR_FILE, SIMULATOR_FIT_FILE};
use crate::batch::video_batch;
use crate::distributed::{average, Group};
use crate::ranker::LabelUncertainty;
use crate::run::{self, Manifest};
use crate::settings::Validate;
use crate::state::{StateInputs, PAD};
use crate::{check_finite, Progress, TrainError, TrainLog};

/// A data-parallel run's group: its size, the batch per process and whether the replicas
/// ended alike (`replica_spread` 0).
pub const WORKERS_FILE: &str = "workers.json";

/// Mixed into the run's seed for the stream of Algorithm 1's simulated feedback.
const NEXT_STATE_STREAM: u64 = 0x6E78_742D_7374_6174;

/// A stopwatch read in laps.
struct Lap(Instant);

impl Lap {
    /// Seconds since the last lap (or the start).
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let secs = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        secs
    }
}

/// Blend a target network toward the online one: `θ' ← (1 − τ)θ' + τθ`.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.inner().reshape([n]));
    }
}

struct Blend {
    src: std::vec::IntoIter<Tensor<1>>,
    tau: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(src) = self.src.next() else {
            return param;
        };
        let tau = self.tau;
        param.map(|t| {
            let shape = t.shape();
            let s = src.reshape(shape).to_device(&t.device());
            t * (1.0 - tau) + s * tau
        })
    }
}

fn soft_update(target: MmrfNet, online: &MmrfNet, tau: f64) -> MmrfNet {
    let mut c = Collect(Vec::new());
    online.visit(&mut c);
    target.map(&mut Blend {
        src: c.0.into_iter(),
        tau: tau as f32,
    })
}

/// The learning rates' share at `step`: a cosine from 1 at the first update to
/// `cfg.lr_final` at the last (of each of TSCAC's stages: the schedule restarts with the
/// second).
fn lr_share(cfg: &ActorCriticConfig, step: usize) -> f64 {
    let step = step % cfg.steps.max(1);
    let t = step as f64 / cfg.steps.saturating_sub(1).max(1) as f64;
    cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// What the actors' phase of an update reports.
struct ActorStats {
    loss: f32,
    /// Mean cosine of the main action to its critic's best unit action (on log steps).
    alignment: Option<f32>,
    /// The objective's own figures.
    report: ObjectiveReport,
    /// With the score-list critic, the mean `−log p` of the logged shown items under the
    /// agents' score lists (on log steps).
    behaviour_nll: Option<f32>,
}

/// The actors' phase of an update, on states `s` (detached) after the critics' step: the
/// agents act, the method's objective turns their actions into a loss, the score-list
/// critic's pull toward the logged behaviour is added, and the actors step.
#[allow(clippy::too_many_arguments)]
fn actor_update(
    net: MmrfNet,
    sd: Tensor<2>,
    list: Option<ListBatch>,
    objective: &mut dyn ActorObjective,
    opt_actor: &mut burn::optim::ModuleOptimizer,
    cfg: &ActorCriticConfig,
    step: usize,
    group: Option<&Group>,
) -> Result<(MmrfNet, ActorStats), TrainError> {
    let h = net.agents.embeddings(sd.clone());
    let ec = net.agents.collaborate(h.clone());
    let a = net.agents.actions(h, ec, cfg.alpha);
    // The critics only pass the gradient through to the actions: a frozen copy spares
    // the backward pass their weight gradients, which this phase would discard.
    let frozen = net.critics.clone().no_grad();
    let log_step = step % cfg.log_every.max(1) == 0 || cfg.is_last(step);
    // How well the main actor has found its critic's best action: Q_N is linear in the
    // action, so the best unit action is W_N(s)/|W_N(s)|; log the mean cosine to it.
    let alignment = if list.is_none() && log_step {
        let [n, bb, dd] = a.dims();
        let main = a.clone().detach().slice([n - 1..n, 0..bb, 0..dd]);
        let w = frozen.action_gradients(sd.clone()).slice([n - 1..n, 0..bb, 0..dd]);
        let cos = (main * mmrf_model::mmrf::unit(w)).sum_dim(2).mean();
        Some(cos.into_scalar::<f32>())
    } else {
        None
    };
    // With the score-list critic, each agent's value of its action `[N, B]` and the pull
    // toward the logged behaviour: the mean `−log p` of the shown items.
    let (listed, pull) = match list {
        Some(l) => {
            let [b, c] = l.mask.dims();
            let (q, log_p) = frozen.q_list(sd.clone(), a.clone(), l.candidates, l.mask, cfg.list_temperature);
            let shown = l.behaviour.reshape([1, b, c]);
            let count = shown.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
            (Some(q), Some((log_p * shown).sum().neg() / count))
        }
        None => (None, None),
    };
    let inputs = ActorInputs {
        actions: a,
        states: sd,
        critics: frozen,
        listed,
    };
    let (actor_loss, report) = objective.loss(&inputs, cfg, step);
    let behaviour_nll = pull
        .as_ref()
        .filter(|_| log_step)
        .map(|p| p.clone().detach().into_scalar::<f32>());
    let actor_loss = match pull {
        Some(pull) => actor_loss + pull * cfg.behaviour_pull,
        None => actor_loss,
    };
    let a_val = actor_loss.clone().into_scalar::<f32>();
    check_finite(a_val, step, "actors", "policy_loss")?;
    let grads = GradientsParams::from_grads(actor_loss.backward(), &net.agents);
    let grads = match group {
        Some(g) => average(grads, &net.agents, g.0.as_ref()),
        None => grads,
    };
    let MmrfNet {
        items,
        state,
        agents,
        critics,
    } = net;
    let agents = opt_actor.step(cfg.lr_actor * lr_share(cfg, step), agents, grads);
    let net = MmrfNet {
        items,
        state,
        agents,
        critics,
    };
    Ok((
        net,
        ActorStats {
            loss: a_val,
            alignment,
            report,
            behaviour_nll,
        },
    ))
}

/// The value of every next state under the target networks, `[N, B]` row-major: with the
/// session-value head its `V_i(s')`; otherwise the critics at the target policy's next
/// action (`bootstrap = "policy"`), or their mean over the items of the slate the logger
/// showed next (`"logged"`). No gradient.
#[allow(clippy::too_many_arguments)]
fn next_values(
    target: &MmrfNet,
    fs: &FeatureSpace,
    n_in: &StateInputs,
    next_shown: &[Vec<u32>],
    next_lists: &[Vec<u32>],
    k_max: usize,
    cfg: &ActorCriticConfig,
    one_policy: bool,
    device: &Device,
) -> Vec<f32> {
    let (b, d) = (n_in.len, cfg.net.dim);
    let mut slot: std::collections::HashMap<u32, i64> = std::collections::HashMap::with_capacity(4096);
    let mut tv: Vec<u32> = Vec::new();
    for &v in n_in
        .videos
        .iter()
        .chain(&n_in.candidate_videos)
        .chain(next_shown.iter().flatten())
        .chain(next_lists.iter().flatten())
    {
        if v != PAD {
            slot.entry(v).or_insert_with(|| {
                tv.push(v);
                tv.len() as i64 - 1
            });
        }
    }
    let tm = tv.len();
    let te = target.items.forward(video_batch(fs, &tv, device));
    let te_pad = Tensor::cat(vec![te, Tensor::zeros([1, d], device)], 0);
    let sn = target
        .state
        .forward(n_in.to_batch(fs.users.dim, te_pad.clone(), |v| slot[&v], tm as i64, device));
    // With the session-value head, the next request is valued whole: the rest of the session.
    if let Some(v) = target.critics.session_values(sn.clone()) {
        return v.into_data().try_to_vec().unwrap_or_default();
    }
    match cfg.bootstrap {
        Bootstrap::Policy => {
            let h = target.agents.embeddings(sn.clone());
            let ec = target.agents.collaborate(h.clone());
            let mut an = target.agents.actions(h, ec, 1.0);
            if one_policy {
                // One policy: every critic values the main actor's next action.
                let [n, bb, dd] = an.dims();
                an = an.slice([n - 1..n, 0..bb, 0..dd]).repeat_dim(0, n);
            }
            let q = if cfg.net.critic == CriticForm::List {
                // The score list the target actor would rank the next request's real
                // candidates by, valued by the target critics.
                let (ne, mask) = list_tensors(next_lists, cfg.list_candidates, &te_pad, |v| slot[&v], device);
                target.critics.q_list(sn, an, ne, mask, cfg.list_temperature).0
            } else {
                target.critics.q(sn, an)
            };
            q.into_data().try_to_vec().unwrap_or_default()
        }
        Bootstrap::Logged => {
            // The mean per-item value of the slate the logger showed next: the behaviour's
            // continuation, with no action the data never shows. Padding: row `tm`.
            let mut next_idx = vec![tm as i64; b * k_max];
            let mut next_mask = vec![0f32; b * k_max];
            for (x, shown) in next_shown.iter().enumerate() {
                for (k, &v) in shown.iter().take(k_max).enumerate() {
                    next_idx[x * k_max + k] = slot[&v];
                    next_mask[x * k_max + k] = 1.0;
                }
            }
            let ne = te_pad
                .select(0, Tensor::from_data(TensorData::new(next_idx, [b * k_max]), device))
                .reshape([b, k_max, d]);
            let mask = Tensor::<2>::from_data(TensorData::new(next_mask, [b, k_max]), device).reshape([1, b, k_max]);
            let count = mask.clone().sum_dim(2).clamp_min(1.0); // [1, B, 1]
            let qv = (target.critics.q_items(sn, ne) * mask).sum_dim(2) / count; // [N, B, 1]
            qv.into_data().try_to_vec().unwrap_or_default()
        }
    }
}

/// Train MMRF (or an ablation) and write the run directory.
///
/// With `resume`, training continues from the run directory's last checkpoint and ends
/// exactly where an uninterrupted run would have.
#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &Dataset,
    fs: &FeatureSpace,
    method: &str,
    cfg: &ActorCriticConfig,
    objective_of: ObjectiveOf,
    seed: u64,
    out: &Path,
    progress: &Progress,
    resume: bool,
    group: Option<Group>,
) -> Result<ActorRanker, TrainError> {
    let started = Instant::now();
    let _seeded = mmrf_model::device::seeded(seed);
    let mut t = if resume {
        Trainer::resume_in(data, fs, objective_of, out, group)?
    } else {
        Trainer::new_in(data, fs, method, cfg, objective_of, seed, out, group)?
    };
    // A group's bars are its first process's.
    let progress = &if t.leads() {
        progress.clone()
    } else {
        Progress::hidden()
    };
    t.pretrain_simulator(progress)?;
    let bar = progress.bar(method, cfg.updates() as u64);
    bar.set_position(t.step as u64);
    while t.step < t.cfg.updates() {
        let s = t.step()?;
        bar.inc(1);
        bar.set_message(format!(
            "td {:.3} head {:.3} actor {:.3}",
            s.td_loss, s.reward_head_loss, s.actor_loss
        ));
        if t.cfg.checkpoint_every > 0 && t.step % t.cfg.checkpoint_every == 0 && t.step < t.cfg.updates() {
            t.save_checkpoint()?;
        }
    }
    bar.finish_and_clear();
    t.finish(started.elapsed().as_secs_f64())
}

/// Losses of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub td_loss: f32,
    pub reward_head_loss: f32,
    pub actor_loss: f32,
    pub simulator_loss: Option<f32>,
    /// Transitions in the batch (logged plus non-impression samples).
    pub batch: usize,
    /// Unique videos embedded on the online side.
    pub videos: usize,
    /// Wall time of the update's phases, and of the whole update.
    pub phases: Phases,
    pub seconds: f64,
}

/// Wall seconds of one update's phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Phases {
    /// Choosing the batch and the non-impression candidates (random actions).
    pub sample: f64,
    /// Labelling the non-impression candidates with the simulator.
    pub label: f64,
    /// Building the state inputs (histories, features) of the batch.
    pub states: f64,
    /// The TD targets: waiting for the target networks' pass on the next states (it runs
    /// on a second thread beside the critics' forward pass), then assembling them.
    pub target: f64,
    /// The critics' forward, backward and optimizer step.
    pub critic: f64,
    /// The actors' forward, backward and optimizer step.
    pub actor: f64,
    /// The target networks' soft update.
    pub soft_update: f64,
    /// Waiting for the simulator's refit (every `sim_refit_every` updates, on a second
    /// thread beside the agents' update), and refreshing the item table.
    pub simulator: f64,
}

impl Phases {
    /// `(name, seconds)` of every phase, in order.
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("sample", self.sample),
            ("label", self.label),
            ("states", self.states),
            ("target", self.target),
            ("critic", self.critic),
            ("actor", self.actor),
            ("soft_update", self.soft_update),
            ("simulator", self.simulator),
        ]
    }

    /// Phase-wise sum (for averaging over updates).
    pub fn add(&mut self, other: &Phases) {
        self.sample += other.sample;
        self.label += other.label;
        self.states += other.states;
        self.target += other.target;
        self.critic += other.critic;
        self.actor += other.actor;
        self.soft_update += other.soft_update;
        self.simulator += other.simulator;
    }
}

/// MMRF's training state: everything a checkpoint holds.
pub struct Trainer<'a> {
    pub(super) data: &'a Dataset,
    pub(super) fs: &'a FeatureSpace,
    pub(super) method: String,
    pub cfg: ActorCriticConfig,
    pub(super) seed: u64,
    pub(super) out: std::path::PathBuf,
    pub(super) timelines: Timelines,
    pub(super) tr: Transitions<'a>,
    pub(super) log: &'a mmrf_data::LogColumns,
    pub(super) rng: ChaCha8Rng,
    pub(super) order: Vec<usize>,
    pub(super) cursor: usize,
    pub(super) net: Option<MmrfNet>,
    pub(super) target: Option<MmrfNet>,
    pub(super) opt_critic: burn::optim::ModuleOptimizer,
    pub(super) opt_actor: burn::optim::ModuleOptimizer,
    pub(super) table: Vec<f32>,
    pub(super) sim: Option<Sim>,
    pub(super) sim_ready: bool,
    pub(super) slot: Vec<u32>,
    pub(super) cands: Vec<u32>,
    /// What the actors ascend: the method's objective.
    pub(super) objective: Box<dyn ActorObjective>,
    /// Eq. 6's factors over the run's labelled samples: how many fell outside
    /// [0.99, 1.01], of how many.
    pub(super) uncertainty: [u64; 2],
    /// Updates done.
    pub step: usize,
    pub(super) log_out: TrainLog,
    pub(super) device: Device,
    pub(super) plain: Device,
    /// The processes training together (data-parallel), if more than this one.
    pub(super) group: Option<Group>,
    /// Logged requests per update in this process: `cfg.batch` over the group's size.
    pub(super) batch: usize,
}

impl<'a> Trainer<'a> {
    /// A fresh trainer (the caller holds [`mmrf_model::device::seeded`]).
    pub fn new(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        method: &str,
        cfg: &ActorCriticConfig,
        objective_of: ObjectiveOf,
        seed: u64,
        out: &Path,
    ) -> Result<Trainer<'a>, TrainError> {
        Trainer::new_in(data, fs, method, cfg, objective_of, seed, out, None)
    }

    /// A fresh trainer, one replica of a data-parallel `group`: it samples from its own
    /// shard of users (user id modulo the group's size), `cfg.batch / size` logged requests
    /// per update, and averages its gradients with the group's. Every replica starts from
    /// the same networks (the same seed); only the group's first process writes files.
    #[allow(clippy::too_many_arguments)]
    pub fn new_in(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        method: &str,
        cfg: &ActorCriticConfig,
        objective_of: ObjectiveOf,
        seed: u64,
        out: &Path,
        group: Option<Group>,
    ) -> Result<Trainer<'a>, TrainError> {
        cfg.validate()?;
        let (rank, size) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
        if cfg.batch < size {
            return Err(TrainError::Setting(format!(
                "`batch` = {}: at least one logged request per worker ({size}) is needed",
                cfg.batch
            )));
        }
        let objective = objective_of(cfg);
        let device = mmrf_model::device::training();
        let plain = mmrf_model::device::inference();
        let timelines = Timelines::build(data);
        let tr = Transitions::build(data);
        let log = data.log(LogSplit::Train);
        let n_req = if cfg.max_requests > 0 {
            cfg.max_requests.min(tr.set.requests.len())
        } else {
            tr.set.requests.len()
        };
        if n_req == 0 {
            return Err(TrainError::Data("the training split has no requests".into()));
        }
        // Process 0 of a group draws as a single process would; the others, streams of their own.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..n_req)
            .filter(|&i| tr.set.requests[i].user as usize % size == rank)
            .collect();
        if order.is_empty() {
            return Err(TrainError::Data(format!(
                "worker {rank} of {size} has no training requests (its users are those with id % {size} = {rank})"
            )));
        }
        order.shuffle(&mut rng);
        let net = MmrfNet::new(&fs.shape(), &cfg.net, &device);
        let target = net.valid();
        let table = item_table(&net, fs);
        let sim = (cfg.augment == Augment::Simulator).then(|| Sim::new(fs, cfg, &device));
        Ok(Trainer {
            data,
            fs,
            method: method.to_string(),
            cfg: cfg.clone(),
            seed,
            out: out.to_path_buf(),
            timelines,
            tr,
            log,
            rng,
            order,
            cursor: 0,
            net: Some(net),
            target: Some(target),
            opt_critic: AdamConfig::new().init(),
            opt_actor: AdamConfig::new().init(),
            table,
            sim_ready: sim.is_none(),
            sim,
            slot: vec![u32::MAX; fs.n_videos()],
            cands: Vec::new(),
            objective,
            uncertainty: [0, 0],
            step: 0,
            log_out: if rank == 0 {
                TrainLog::create(out)?
            } else {
                TrainLog::none()
            },
            device,
            plain,
            batch: cfg.batch / size,
            group,
        })
    }

    /// Whether this process writes the run's files (the only one, or a group's first).
    pub fn leads(&self) -> bool {
        self.group.as_ref().is_none_or(|g| g.leads())
    }

    /// Fit the simulator before the agents start (once; a resumed run skips it).
    pub fn pretrain_simulator(&mut self, progress: &Progress) -> Result<(), TrainError> {
        if self.sim_ready {
            return Ok(());
        }
        let Some(sim) = self.sim.as_mut() else {
            return Ok(());
        };
        let bar = progress.bar("simulator", self.cfg.sim_pretrain_steps as u64);
        for step in 0..self.cfg.sim_pretrain_steps {
            let idx: Vec<usize> = (0..self.batch)
                .map(|_| self.order[self.rng.random_range(0..self.order.len())])
                .collect();
            sim.reseed(self.seed, usize::MAX - step);
            let loss = sim.step(
                self.fs,
                &self.timelines,
                &self.tr,
                self.log,
                &idx,
                &self.cfg,
                self.group.as_ref(),
            )?;
            check_finite(loss, step, "simulator", "mse")?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        sim.refresh();
        self.sim_ready = true;
        Ok(())
    }

    /// One update of every network (Algorithm 1's inner loop).
    pub fn step(&mut self) -> Result<StepStats, TrainError> {
        let Trainer {
            fs,
            cfg,
            seed,
            timelines,
            tr,
            log,
            rng,
            order,
            cursor,
            net: net_slot,
            target: target_slot,
            opt_critic,
            opt_actor,
            table,
            sim,
            slot,
            cands,
            objective,
            uncertainty,
            step: step_ref,
            log_out,
            device,
            plain,
            group,
            batch: batch_size,
            ..
        } = self;
        let group: Option<&Group> = group.as_ref();
        let (fs, log): (&FeatureSpace, &mmrf_data::LogColumns) = (fs, log);
        let (timelines, tr): (&Timelines, &Transitions<'_>) = (timelines, tr);
        let step = *step_ref;
        let started = Instant::now();
        let mut phases = Phases::default();
        let mut lap = Lap(started);
        let d = cfg.net.dim;
        let k_max = tr.k;
        let mut net = net_slot
            .take()
            .ok_or_else(|| TrainError::Run("the trainer failed earlier".into()))?;
        let mut target = target_slot
            .take()
            .ok_or_else(|| TrainError::Run("the trainer failed earlier".into()))?;
        let (device, plain) = (&*device, &*plain);
        let (batch, rows) = sample_rows(cfg, *batch_size, tr, log, rng, order, cursor, table, cands)?;
        // The score-list critic's candidate sets: each row's, and its next request's.
        let list = cfg.net.critic == CriticForm::List;
        let lists: Vec<Vec<u32>> = if list {
            rows.iter()
                .map(|r| candidate_list(cfg, tr, log, r.request, &r.items, rng, cands))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let simulated_next = cfg.next_state == NextState::Simulated;
        let next_lists: Vec<Vec<u32>> = if list && cfg.bootstrap == Bootstrap::Policy && !cfg.net.session_value {
            rows.iter()
                .map(|r| match tr.next[r.request] {
                    // Algorithm 1's next state is the request's own moment: its candidates
                    // less the items just shown.
                    Some(_) if r.sample && simulated_next => {
                        let mut l = candidate_list(cfg, tr, log, r.request, &[], rng, cands)?;
                        l.retain(|v| !r.items.contains(v));
                        Ok(l)
                    }
                    Some(j) => {
                        let shown = tr.set.shown_videos(j as usize, log);
                        candidate_list(cfg, tr, log, j as usize, &shown, rng, cands)
                    }
                    None => Ok(Vec::new()),
                })
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        phases.sample = lap.lap();
        // Labels of the non-impression samples, per item and signal, in reward units, and
        // the two heads' mean disagreement on them (eq. 6's KL).
        let mut sample_kl = f32::NAN;
        let mut step_uncertainty = [0u64; 2];
        let sample_labels: Vec<Vec<[f32; N_AGENTS]>> = match sim.as_ref() {
            Some(sim) => {
                let sampled: Vec<(usize, &[u32])> = rows
                    .iter()
                    .filter(|r| r.sample)
                    .map(|r| (r.request, r.items.as_slice()))
                    .collect();
                let (labels, kl, counts) = sim.label(fs, timelines, tr, log, &sampled, cfg, (*seed, step));
                sample_kl = kl;
                step_uncertainty = counts;
                uncertainty[0] += counts[0];
                uncertainty[1] += counts[1];
                labels
            }
            None => rows
                .iter()
                .filter(|r| r.sample)
                .map(|r| vec![[cfg.negative_reward as f32; N_AGENTS]; r.items.len()])
                .collect(),
        };
        let b = rows.len();
        phases.label = lap.lap();

        // The simulator's refit reads only the batch's logged requests, and the agents'
        // update below only the labels already drawn: the two run at once, the refit on a
        // second thread, so both cores work through the many small operations of each.
        // (Only the refit's dropout draws from burn's generator, so the numbers do not
        // depend on how the two interleave.)
        let refit_now = (step + 1) % cfg.sim_refit_every.max(1) == 0;
        let (batch_ref, cfg_ref, seed): (&[usize], &ActorCriticConfig, u64) = (&batch, cfg, *seed);
        let one_policy = objective.one_policy();
        // In a data-parallel group the refit's all-reduce must come at the same point in
        // every process: it runs first, not beside the agents' update.
        let mut refit_loss = f32::NAN;
        if let (Some(sim), true, Some(_)) = (sim.as_mut(), refit_now, group) {
            sim.reseed(seed, step);
            refit_loss = sim.step(fs, timelines, tr, log, batch_ref, cfg_ref, group)?;
            sim.refresh();
        }
        let (net, target, c_val, h_val, v_val, actors, m, sim_loss) =
            std::thread::scope(|scope| -> Result<_, TrainError> {
                let refit = match sim.as_mut() {
                    Some(sim) if refit_now && group.is_none() => Some(scope.spawn(move || {
                        sim.reseed(seed, step);
                        let loss = sim.step(fs, timelines, tr, log, batch_ref, cfg_ref, None);
                        sim.refresh();
                        loss
                    })),
                    _ => None,
                };
                // States now and next (the next state of a session's last request is unused).
                let mut feedback_rng = ChaCha8Rng::seed_from_u64(
                    seed ^ NEXT_STATE_STREAM ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let (s_in, n_in, done) =
                    batch_states(cfg, fs, timelines, tr, log, &rows, &sample_labels, &mut feedback_rng)?;
                // Unique videos of the online side: shown items and the current states' histories.
                let mut videos: Vec<u32> = Vec::new();
                let add = |v: u32, slot: &mut Vec<u32>, videos: &mut Vec<u32>| {
                    if v != PAD && slot[v as usize] == u32::MAX {
                        slot[v as usize] = videos.len() as u32;
                        videos.push(v);
                    }
                };
                for row in &rows {
                    row.items.iter().for_each(|&v| add(v, slot, &mut videos));
                }
                s_in.videos.iter().for_each(|&v| add(v, slot, &mut videos));
                s_in.candidate_videos.iter().for_each(|&v| add(v, slot, &mut videos));
                lists.iter().flatten().for_each(|&v| add(v, slot, &mut videos));
                let m = videos.len();
                // The next request's logged slate (for `bootstrap = "logged"`).
                let next_shown: Vec<Vec<u32>> = if cfg.bootstrap == Bootstrap::Logged {
                    rows.iter()
                        .map(|r| match tr.next[r.request] {
                            Some(j) => tr.set.shown_videos(j as usize, log),
                            None => Vec::new(),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                phases.states = lap.lap();
                // The target networks' pass needs nothing of the online update: it runs beside
                // the critics' forward pass.
                let next_job = scope.spawn(move || {
                    let qn = next_values(
                        &target,
                        fs,
                        &n_in,
                        &next_shown,
                        &next_lists,
                        k_max,
                        cfg_ref,
                        one_policy,
                        plain,
                    );
                    (target, qn)
                });
                let e = net.items.forward(video_batch(fs, &videos, device));
                let e_pad = Tensor::cat(vec![e, Tensor::zeros([1, d], device)], 0);
                let row_of = |v: u32| slot[v as usize] as i64;
                let s = net
                    .state
                    .forward(s_in.to_batch(fs.users.dim, e_pad.clone(), row_of, m as i64, device));
                let ItemTargets {
                    shown_idx,
                    shown_mask,
                    item_labels,
                    act_mask,
                } = item_targets(tr, log, &rows, &sample_labels, slot, k_max, m);
                let list_batch = list.then(|| {
                    let (candidates, mask) = list_tensors(&lists, cfg.list_candidates, &e_pad, row_of, device);
                    let width = cfg.list_candidates;
                    let mut behaviour = vec![0f32; b * width];
                    for (x, row) in rows.iter().enumerate() {
                        if !row.sample {
                            let shown = row.items.len().min(width);
                            behaviour[x * width..x * width + shown]
                                .iter_mut()
                                .for_each(|v| *v = 1.0);
                        }
                    }
                    ListBatch {
                        candidates: candidates.detach(),
                        mask,
                        behaviour: Tensor::from_data(TensorData::new(behaviour, [b, width]), device),
                    }
                });
                for v in &videos {
                    slot[*v as usize] = u32::MAX;
                }
                let shown_e = e_pad
                    .select(0, Tensor::from_data(TensorData::new(shown_idx, [b * k_max]), device))
                    .reshape([b, k_max, d]);
                let q = net.critics.q_items(s.clone(), shown_e.clone()); // [N, B, K]

                // TD targets per shown item: its reward plus the discounted value of the next
                // request under the target networks (no gradient).
                phases.critic = lap.lap();
                let (y, qn) = {
                    let (target_back, qn) = next_job
                        .join()
                        .map_err(|_| TrainError::Run("the target networks' pass panicked".into()))?;
                    target = target_back;
                    let y = td_targets(cfg, &rows, &done, &item_labels, &qn, k_max);
                    (
                        Tensor::<3>::from_data(TensorData::new(y, [N_AGENTS, b, k_max]), device),
                        qn,
                    )
                };
                phases.target = lap.lap();
                let td_mask =
                    Tensor::<2>::from_data(TensorData::new(act_mask, [b, k_max]), device).reshape([1, b, k_max]);
                let td_n = td_mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
                let critic_loss = (regression_loss(q - y, 0, cfg.watch_time_huber) * td_mask).sum() / td_n;
                let head_mask =
                    Tensor::<2>::from_data(TensorData::new(shown_mask, [b, k_max]), device).reshape([b, k_max, 1]);
                let labels = Tensor::<3>::from_data(TensorData::new(item_labels.clone(), [b, k_max, N_AGENTS]), device);
                let pred = net.critics.item_rewards(s.clone(), shown_e);
                let head_n = head_mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
                let head_loss = (regression_loss(pred - labels, 2, cfg.watch_time_huber) * head_mask).sum() / head_n;
                // The session value of each logged request: all its items' rewards and the rest
                // of the session after it (a sampled row's items were never shown, so the
                // session never went on from them).
                let session_loss = net.critics.session_values(s.clone()).map(|v| {
                    let (y, mask) = session_targets(cfg, &rows, &done, &item_labels, &qn, k_max);
                    let y = Tensor::<2>::from_data(TensorData::new(y, [N_AGENTS, b]), device);
                    let mask = Tensor::<2>::from_data(TensorData::new(mask, [1, b]), device);
                    let n = mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
                    (regression_loss((v - y).reshape([N_AGENTS, b, 1]), 0, cfg.watch_time_huber).reshape([N_AGENTS, b])
                        * mask)
                        .sum()
                        / n
                });
                let loss1 = critic_loss.clone() + head_loss.clone() * cfg.reward_head;
                let (loss1, v_val) = match session_loss {
                    Some(l) => {
                        let v = l.clone().into_scalar::<f32>();
                        check_finite(v, step, "critics", "session_value_loss")?;
                        (loss1 + l, Some(v))
                    }
                    None => (loss1, None),
                };
                let (c_val, h_val) = (critic_loss.into_scalar::<f32>(), head_loss.into_scalar::<f32>());
                check_finite(c_val, step, "critics", "td_loss")?;
                check_finite(h_val, step, "critics", "reward_head_loss")?;
                let grads = GradientsParams::from_grads(loss1.backward(), &net);
                let grads = match group {
                    Some(g) => average(grads, &net, g.0.as_ref()),
                    None => grads,
                };
                net = opt_critic.step(cfg.lr_critic * lr_share(cfg, step), net, grads);
                phases.critic += lap.lap();

                let (net_after, actors) = actor_update(
                    net,
                    s.detach(),
                    list_batch,
                    objective.as_mut(),
                    opt_actor,
                    cfg,
                    step,
                    group,
                )?;
                net = net_after;
                // An objective's own state (TSCAC's multipliers) steps on each process's batch:
                // the group keeps its mean, so every replica carries the same.
                if let Some(g) = group {
                    let mut state: Vec<f32> = objective.state().iter().map(|&x| x as f32).collect();
                    if !state.is_empty() {
                        g.0.mean(&mut state);
                        let state: Vec<f64> = state.iter().map(|&x| f64::from(x)).collect();
                        objective.restore(&state).map_err(TrainError::Run)?;
                    }
                }
                phases.actor = lap.lap();
                target = soft_update(target, &net, cfg.soft_update);
                phases.soft_update = lap.lap();
                // Waiting for the refit, if it is still running.
                let sim_loss = match refit {
                    Some(job) => {
                        let loss = job
                            .join()
                            .map_err(|_| TrainError::Run("the simulator's refit panicked".into()))??;
                        check_finite(loss, step, "simulator", "mse")?;
                        loss
                    }
                    None => refit_loss,
                };
                phases.simulator = lap.lap();
                Ok((net, target, c_val, h_val, v_val, actors, m, sim_loss))
            })?;
        if (step + 1) % 100 == 0 {
            *table = item_table(&net, fs);
        }
        phases.simulator += lap.lap();
        if step % cfg.log_every.max(1) == 0 || cfg.is_last(step) {
            // A group logs its processes' mean losses.
            let (c_val, h_val, a_val, sim_loss) = match group {
                Some(g) => {
                    let mut v = [c_val, h_val, actors.loss, sim_loss];
                    g.0.mean(&mut v);
                    (v[0], v[1], v[2], v[3])
                }
                None => (c_val, h_val, actors.loss, sim_loss),
            };
            log_out.write(&serde_json::json!({
                "step": step, "td_loss": c_val, "reward_head_loss": h_val, "actor_loss": a_val, "batch": b,
                "simulator_loss": if sim_loss.is_nan() { serde_json::Value::Null } else { sim_loss.into() },
                "simulator_kl": if sample_kl.is_nan() { serde_json::Value::Null } else { sample_kl.into() },
                "uncertainty_outside": (step_uncertainty[1] > 0)
                    .then(|| step_uncertainty[0] as f64 / step_uncertainty[1] as f64),
                "pareto_weights": actors.report.scalarisation,
                "main_actor_alignment": actors.alignment,
                "tscac_distances": actors.report.distances,
                "tscac_multipliers": actors.report.multipliers,
                "behaviour_nll": actors.behaviour_nll,
                "session_value_loss": v_val,
            }))?;
        }
        let stats = StepStats {
            td_loss: c_val,
            reward_head_loss: h_val,
            actor_loss: actors.loss,
            simulator_loss: (!sim_loss.is_nan()).then_some(sim_loss),
            batch: b,
            videos: m,
            phases,
            seconds: started.elapsed().as_secs_f64(),
        };
        *net_slot = Some(net);
        *target_slot = Some(target);
        *step_ref += 1;
        Ok(stats)
    }

    /// The parameters training reaches, per part (items, state, agents, critics, then the
    /// feedback simulator when the run has one): what a port of the update must match.
    pub fn trained_params(&self) -> Vec<(&'static str, usize)> {
        let mut parts: Vec<(&'static str, usize)> = self
            .net
            .as_ref()
            .map(|n| n.trained_params().to_vec())
            .unwrap_or_default();
        parts.extend(self.sim.as_ref().map(|s| ("simulator", s.model.num_params())));
        parts
    }

    /// Write the final model (and the simulator and its fit) and the manifest.
    pub fn finish(mut self, train_seconds: f64) -> Result<ActorRanker, TrainError> {
        let (fs, data, out, cfg, seed) = (self.fs, self.data, self.out.clone(), self.cfg.clone(), self.seed);
        let net = self
            .net
            .take()
            .ok_or_else(|| TrainError::Run("the trainer failed earlier".into()))?;
        let timelines = &self.timelines;
        let sim = &self.sim;
        let method = self.method.clone();
        let valid = net.valid();
        let [mut outside, mut labels] = self.uncertainty;
        if let Some(g) = &self.group {
            // The group's labels in all, and a check that the replicas ended alike: a
            // fingerprint of the parameters equals its mean over the group only if every
            // process holds the same one.
            let fingerprint = crate::distributed::flat_params(&valid)
                .iter()
                .enumerate()
                .map(|(i, x)| f64::from(*x) * ((i % 97) + 1) as f64)
                .sum::<f64>() as f32;
            // The group's counts are its mean count times its size (exact in f32 while each
            // process's count stays below 2^24).
            let size = g.size() as f32;
            let mut v = [outside as f32, labels as f32, fingerprint];
            g.0.mean(&mut v);
            (outside, labels) = ((v[0] * size).round() as u64, (v[1] * size).round() as u64);
            let spread = (fingerprint - v[2]).abs();
            if g.leads() {
                let text = serde_json::to_string_pretty(&serde_json::json!({
                    "workers": g.size(),
                    "global_batch": self.batch * g.size(),
                    "batch_per_worker": self.batch,
                    "replica_spread": spread,
                }))
                .unwrap_or_default();
                mmrf_data::write_atomic(&out.join(WORKERS_FILE), text.as_bytes())
                    .map_err(|e| TrainError::io(&out.join(WORKERS_FILE), e))?;
            }
        }
        let uncertainty = (labels > 0).then(|| LabelUncertainty {
            labels,
            outside_099_101: outside as f64 / labels as f64,
        });
        if !self.leads() {
            // Only the group's first process writes the run.
            let mut ranker = ActorRanker::new(&method, valid, fs.clone(), cfg.history, cfg.net.candidates);
            ranker.uncertainty = uncertainty;
            return Ok(ranker);
        }
        run::save_weights(&valid, &out.join(run::WEIGHTS_FILE))?;
        if let Some(sim) = sim {
            run::save_weights(&sim.plain, &out.join(SIMULATOR_FILE))?;
            let mut fit = sim.fit(data, fs, timelines, &cfg, seed);
            fit.uncertainty = uncertainty;
            let text = serde_json::to_string_pretty(&fit).unwrap_or_default();
            mmrf_data::write_atomic(&out.join(SIMULATOR_FIT_FILE), text.as_bytes())
                .map_err(|e| TrainError::io(&out.join(SIMULATOR_FIT_FILE), e))?;
        }
        Manifest::new(&method, seed, data, fs.shape(), train_seconds, &cfg).write(&out)?;
        // A finished run needs no checkpoint.
        for dir in checkpoint_dirs(&out) {
            let _ = std::fs::remove_dir_all(dir);
        }
        let mut ranker = ActorRanker::new(&method, valid, fs.clone(), cfg.history, cfg.net.candidates);
        ranker.uncertainty = uncertainty;
        Ok(ranker)
    }
}

/// The TD targets `[N, B, K]` row-major: each item's label plus the discounted value of
/// its row's next state under the target networks (`qn`, `[N, B]`), or nothing where the
/// session ended.
fn td_targets(
    cfg: &ActorCriticConfig,
    rows: &[Row],
    done: &[f32],
    item_labels: &[f32],
    qn: &[f32],
    k_max: usize,
) -> Vec<f32> {
    let b = rows.len();
    let mut y = vec![0f32; N_AGENTS * b * k_max];
    for a in 0..N_AGENTS {
        for (x, row) in rows.iter().enumerate() {
            let last = row.items.len().min(k_max).saturating_sub(1);
            for k in 0..k_max {
                // Who ended the session? With item-level credit only the last item viewed
                // loses the continuation; the others were followed by more viewing (valued
                // from the same state, the request's own).
                let ended = match cfg.leave_credit {
                    LeaveCredit::Item => done[x] > 0.0 && k == last && !row.sample,
                    LeaveCredit::Request => done[x] > 0.0,
                };
                let future = if ended { 0.0 } else { cfg.gamma as f32 * qn[a * b + x] };
                y[(a * b + x) * k_max + k] = item_labels[(x * k_max + k) * N_AGENTS + a] + future;
            }
        }
    }
    y
}

/// The session-value targets `[N, B]` row-major and their row mask `[B]`: a logged row's
/// rewards summed over its items plus the discounted value of its next state (`qn`, the
/// target's `V_i(s')`), or nothing where the session ended. Sampled rows are masked out.
fn session_targets(
    cfg: &ActorCriticConfig,
    rows: &[Row],
    done: &[f32],
    item_labels: &[f32],
    qn: &[f32],
    k_max: usize,
) -> (Vec<f32>, Vec<f32>) {
    let b = rows.len();
    let mut y = vec![0f32; N_AGENTS * b];
    let mask: Vec<f32> = rows.iter().map(|r| if r.sample { 0.0 } else { 1.0 }).collect();
    for a in 0..N_AGENTS {
        for (x, row) in rows.iter().enumerate() {
            let items = row.items.len().min(k_max);
            let now: f32 = (0..items).map(|k| item_labels[(x * k_max + k) * N_AGENTS + a]).sum();
            let future = if done[x] > 0.0 {
                0.0
            } else {
                cfg.gamma as f32 * qn[a * b + x]
            };
            y[a * b + x] = now + future;
        }
    }
    (y, mask)
}

/// Per-element loss of the agents' errors (agents along `agent_dim`): the squared error,
/// and for the WatchTime agent (the last) Huber's with threshold `delta` when `delta > 0`,
/// doubled so that it equals the squared error inside `delta` (slope `2·delta` outside).
fn regression_loss(err: Tensor<3>, agent_dim: usize, delta: f64) -> Tensor<3> {
    if delta <= 0.0 {
        return square(err);
    }
    let main = N_AGENTS - 1;
    let aux = err.clone().narrow(agent_dim, 0, main);
    let watch = err.narrow(agent_dim, main, 1);
    let huber = HuberLossConfig::new(delta as f32).init();
    Tensor::cat(vec![square(aux), huber.forward_residuals(watch) * 2.0], agent_dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn only_watch_time_errors_beyond_delta_lose_the_square() {
        let device = mmrf_model::device::inference();
        // [N, 1, 2]: every agent has a small error (0.5) and a large one (4).
        let err: Vec<f32> = (0..N_AGENTS).flat_map(|_| [0.5, -4.0]).collect();
        let err = Tensor::<3>::from_data(TensorData::new(err, [N_AGENTS, 1, 2]), &device);
        let loss = values(regression_loss(err.clone(), 0, 3.0));
        for a in 0..N_AGENTS - 1 {
            assert_eq!(&loss[a * 2..a * 2 + 2], &[0.25, 16.0], "agent {a} keeps the square");
        }
        // WatchTime: the square inside δ = 3, 2δ|x| − δ² = 24 − 9 outside.
        let w = &loss[(N_AGENTS - 1) * 2..];
        assert!((w[0] - 0.25).abs() < 1e-6 && (w[1] - 15.0).abs() < 1e-5, "{w:?}");
        // δ = 0 is the squared error everywhere; the agent axis may be the last one.
        assert_eq!(
            values(regression_loss(err.clone(), 0, 0.0)),
            values(square(err.clone()))
        );
        let last = values(regression_loss(err.swap_dims(0, 2), 2, 3.0));
        assert!((last[N_AGENTS + N_AGENTS - 1] - 15.0).abs() < 1e-5 && last[N_AGENTS] == 16.0);
    }

    #[test]
    fn a_session_value_is_the_whole_request_and_the_rest_of_the_session() {
        let cfg = ActorCriticConfig {
            gamma: 0.5,
            ..ActorCriticConfig::default()
        };
        let k_max = 3;
        // Row 0 showed two items and the session went on; row 1 showed three and the
        // session ended there; row 2 is a non-impression sample.
        let rows = vec![
            Row {
                request: 0,
                items: vec![4, 5],
                sample: false,
            },
            Row {
                request: 1,
                items: vec![6, 7, 8],
                sample: false,
            },
            Row {
                request: 0,
                items: vec![9, 10],
                sample: true,
            },
        ];
        let b = rows.len();
        let done = [0.0, 1.0, 0.0];
        // Item k of row x earns (x + 1)·(k + 1) on every agent; the padded slot earns 100,
        // which no target may read.
        let mut labels = vec![0f32; b * k_max * N_AGENTS];
        for (x, row) in rows.iter().enumerate() {
            for k in 0..k_max {
                let v = if k < row.items.len() {
                    ((x + 1) * (k + 1)) as f32
                } else {
                    100.0
                };
                labels[(x * k_max + k) * N_AGENTS..(x * k_max + k + 1) * N_AGENTS].fill(v);
            }
        }
        let qn: Vec<f32> = (0..N_AGENTS).flat_map(|a| [10.0 + a as f32, 20.0, 30.0]).collect();
        let (y, mask) = session_targets(&cfg, &rows, &done, &labels, &qn, k_max);
        assert_eq!(mask, [1.0, 1.0, 0.0]);
        for a in 0..N_AGENTS {
            // 1 + 2 now, then half the next state's value.
            assert_eq!(y[a * b], 3.0 + 0.5 * (10.0 + a as f32), "agent {a}");
            // 2 + 4 + 6, and nothing after the session's end.
            assert_eq!(y[a * b + 1], 12.0, "agent {a}");
        }
    }
}
