//! MMRF (paper §2, Algorithm 1) and its ablations, trained from logged requests.
//!
//! One transition per logged request: the state before it, the logged action (the unit
//! mean of the shown items' embeddings), the per-signal rewards summed over the shown
//! items (WatchTime in seconds; Hate negated, it is a cost; each signal divided by its
//! standard deviation over training requests so the seven critics learn on one scale — a
//! per-signal constant that changes no agent's optimum) and the next request of the
//! session (discount γ) or the session's end.
//!
//! Each step:
//! 1. **Critics** (with the encoders): TD error against target networks,
//!    `y_i = r_i + γ Q'_i(s', π'_i(s'))`, plus the reward heads' per-item regression;
//!    squared errors, Huber's for WatchTime, the one unbounded, heavy-tailed reward.
//! 2. **Actors** (eq. 4): the main actor ascends `Q_N(s, a^N)`; its gradient reaches every
//!    auxiliary actor through `a^{1..N-1}` with weight α; each auxiliary actor also ascends
//!    its own `Q_i(s, a^i)` with weight β.
//! 3. **Soft update** of the target networks, `θ' ← (1 − τ)θ' + τθ`.
//!
//! Non-impression samples (Algorithm 1's D^M): for a share of each batch's requests, K
//! candidates the logger did not show are picked by a random action (top-K of
//! `⟨a_rand, e_j⟩`) and added as extra transitions. Their reward is the feedback
//! simulator's label in full MMRF, a constant negative reward in MMRF-NS, and there are
//! none in MMRF-DA. MMRF-CO swaps attention for concatenation. A sample's next state is its
//! logged request's next one (and ends where that session ends), not Algorithm 1's
//! `s_t ∪ Ĩ_k`, a history extended by the simulated items and their simulated feedback:
//! the log says how the session went on after the shown items, nothing says how it would
//! have after the others. So a sample's items get the same continuation as the shown
//! items of their request, and differ from them (and among themselves) by their labels
//! alone; the next state's value, one number for all K, would move their level against the
//! shown items, never their order among themselves.

use std::path::Path;
use std::time::Instant;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::HuberLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use mmrf_data::session::{RequestSet, RequestState, Timelines};
use mmrf_data::{Dataset, LogSplit, Signal};
use mmrf_model::mmrf::{square, Collaboration, CriticForm, MmrfNet, MmrfNetConfig, N_AGENTS};
use mmrf_model::simulator::{simulated_reward, FeedbackSimulator, SimulatorNetConfig};
use mmrf_model::FeatureSpace;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::video_batch;
use crate::ranker::Ranker;
use crate::run::{self, Manifest};
use crate::settings::Validate;
use crate::state::{StateInputs, PAD};
use crate::{check_finite, Progress, TrainError, TrainLog};

/// Where non-impression samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    /// Labelled by the feedback simulator (MMRF).
    Simulator,
    /// None (MMRF-DA).
    None,
    /// A constant negative reward (MMRF-NS).
    Negative,
}

/// MMRF's settings (`[config]` of `run.toml`; `--set key=value` overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmrfConfig {
    pub net: MmrfNetConfig,
    /// Gradient steps.
    pub steps: usize,
    /// Logged requests per step.
    pub batch: usize,
    pub lr_critic: f64,
    pub lr_actor: f64,
    /// The learning rates' share left at the last update: they follow a cosine from 1 down
    /// to this (1: constant). Annealing steadies the final iterate, which a constant rate
    /// leaves wherever the last noisy updates took it: retrained with another seed, MMRF at
    /// a constant rate moved by about 0.004 in WatchTime GAUC on each of worlds 7, 8, 9;
    /// with 0.1 by 0.0005–0.0025, its mean WatchTime GAUC over those six runs rose from
    /// 0.5893 to 0.5913 and its mean online lift over LTR from +3.7 % to +6.3 % (NCIS
    /// 23.03 → 22.85). Shared by every actor-critic method.
    pub lr_final: f64,
    /// Discount over the requests of a session: 0.9 for MMRF and its ablations, chosen by
    /// `mmrf tune` on worlds 7–9 from 0.3 / 0.5 / 0.7 / 0.9 / 0.99 (the five lie within
    /// 0.8 points of each other, `docs/baselines.md`); the actor-critic baselines set their
    /// own (0.5, MASSA's by the same procedure).
    pub gamma: f64,
    /// Soft-update rate τ of the target networks.
    pub soft_update: f64,
    /// α_θ: weight of the main actor's gradient flowing into the auxiliary actors.
    pub alpha: f64,
    /// β: weight of each auxiliary actor's own critic.
    pub beta: f64,
    /// Weight of the reward heads' per-item regression.
    pub reward_head: f64,
    /// Huber threshold δ, in standardised units, of the WatchTime agent's TD error and
    /// reward-head error (0: squared error, as the other six agents keep). Play time is the
    /// one unbounded reward and heavy-tailed: on world 7's held-out impressions the top 1 %
    /// (over 95 s) carries 34 % of its variance, so under squared error a few long plays
    /// steer the WatchTime critic and the item embeddings it shares. The binary signals are
    /// bounded and keep squared error. Beyond δ the loss grows linearly (the standard DQN
    /// error clipping); below it, it is the squared error. δ = 3 (about 60 s of play) by
    /// worlds 7, 8, 9 against 0, 1 and 2: WatchTime GAUC rose on all three (by 0.0005 to
    /// 0.0019) and on worlds 10–12, held out, too; δ = 1 raised GAUC by up to 0.009 but
    /// cost up to 18 points of online lift (a median-seeking critic prefers short, reliably
    /// watched videos). Runs trained before this setting existed read as 0.
    #[serde(default)]
    pub watch_time_huber: f64,
    /// Impressions of history in the state.
    pub history: usize,
    pub augment: Augment,
    /// Share of each batch's requests that also yield a non-impression sample.
    pub sample_share: f64,
    /// How large a sampled request's non-impression sample is: 0 (the default) as many
    /// items as the request showed (K); otherwise this share of its never-shown candidates
    /// (the paper's "about 25 %", 0.25, is about 98 of a 400-candidate request, in rows of
    /// K, and about sixteen times the default's labelling and critic work).
    #[serde(default)]
    pub sample_fraction: f64,
    /// MMRF-NS's reward for a non-impression sample, per signal, in standardised units.
    pub negative_reward: f64,
    pub log_every: usize,
    /// Train on at most this many requests (0: all), for smoke tests.
    pub max_requests: usize,
    /// The feedback simulator M (used when `augment = "simulator"`).
    pub sim: SimulatorNetConfig,
    /// Steps fitting M on logged requests before the agents start.
    pub sim_pretrain_steps: usize,
    /// One refit step of M on logged requests every this many agent steps.
    pub sim_refit_every: usize,
    pub sim_lr: f64,
    /// λ of `r̃ = mean(r, r')·exp(λ·KL)`: positive, as the paper states it, raises the
    /// labels the two heads disagree on ("samples with high uncertainty should be more
    /// explored"); negative shrinks them. λ = 5 with Monte-Carlo labelling
    /// (`sim_mc_dropout`) ran more session WatchTime over LTR than λ = −5 on each of
    /// worlds 7 / 8 / 9 (+1.2 / −1.0 / −0.4 % against +0.9 / −2.8 / −0.7 %, `mmrf tune`,
    /// `docs/mmrf.md`). Without the Monte-Carlo masks the factor is nearly inert.
    pub sim_lambda: f64,
    /// Play time (seconds) at which M's WatchTime target `min(play / cap, 1)` saturates.
    /// The logged rewards M stands in for are not capped, so a low cap understates long
    /// plays in every simulated label (world 7's training log: 4 % of plays pass 60 s, and
    /// play beyond 60 s is 7.8 % of all watch time; beyond 180 s, 0.5 %). A cap of 180 s
    /// against 60 s, on worlds 7 / 8 / 9: WatchTime NCIS +0.21 / +0.12 / +0.13 s, GAUC
    /// −0.0015 / −0.0009 / −0.0012, online lift over LTR +0.6 / −0.5 / +0.5 points: the
    /// GAUC-against-mean trade again, not a gain, so the default stays 60 s. Runs trained
    /// before this setting existed read as 60 s, the cap they were trained with.
    #[serde(default = "default_sim_watch_cap_s")]
    pub sim_watch_cap_s: f64,
    /// Keep the twin head's dropout on when M labels the non-impression samples
    /// (Monte-Carlo dropout, masks drawn from the run's seed and the update). Without it
    /// the two heads read the same input and differ by their own layers only, so eq. 6's
    /// KL is small and `exp(λ·KL)` close to 1 (`simulator_kl` in `train_log.jsonl`). On by
    /// default; runs trained before this setting existed read as off.
    #[serde(default)]
    pub sim_mc_dropout: bool,
    /// Write a checkpoint every this many updates (0: never).
    pub checkpoint_every: usize,
    /// Which shown items of a session's last request lose the continuation value.
    /// `request` (default): all of them. `item` credits the leave to the last item viewed
    /// only; on the default world it trained a clearly worse policy (online WatchTime of
    /// 201.5 s per session against 254.3 s, `mmrf ab`), kept for study.
    pub leave_credit: LeaveCredit,
    /// What the actors ascend (`agents` for MMRF; set by the Pareto and TSCAC baselines).
    pub objective: Objective,
    /// Where the TD target's next-state value is taken.
    pub bootstrap: Bootstrap,
    /// Pareto: the least weight of each signal in the scalarisation (at most 1/7, where
    /// the weights are uniform). Chosen by `mmrf tune` on worlds 7–9 (`docs/baselines.md`).
    pub pareto_floor: f64,
    /// TSCAC: the bound ε on the main action's cosine distance to each auxiliary one in
    /// stage 2 (0: the same direction, 1: orthogonal). Chosen by `mmrf tune` on worlds 7–9
    /// (`docs/baselines.md`).
    pub tscac_bound: f64,
    /// TSCAC: the step size η of the Lagrange multipliers' ascent.
    pub tscac_dual_lr: f64,
    /// With the score-list critic (`net.critic = "list"`): the size of each request's
    /// candidate set `C'` the actions are valued over: the row's shown (or sampled) items
    /// and, up to this many, others of the request's candidates drawn at random. The next
    /// request's set, at which the target bootstraps, is drawn the same way.
    #[serde(default = "default_list_candidates")]
    pub list_candidates: usize,
    /// With the score-list critic: the temperature τ of `softmax(⟨a, e_j⟩ / τ)` (item
    /// embeddings and actions are unit vectors, so scores lie in [−1, 1]).
    #[serde(default = "default_list_temperature")]
    pub list_temperature: f64,
    /// With the score-list critic: the weight of the actors' pull toward the logged
    /// behaviour, the mean `−log p_i(j)` of each logged request's shown items under every
    /// agent's score list (TD3+BC's regulariser in a ranking's form: off the log the
    /// critic's values are extrapolations, and the pull keeps the policy where it has data).
    #[serde(default = "default_behaviour_pull")]
    pub behaviour_pull: f64,
}

fn default_list_candidates() -> usize {
    16
}

fn default_list_temperature() -> f64 {
    0.1
}

fn default_behaviour_pull() -> f64 {
    0.1
}

/// What the actors ascend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Each agent its own critic (eq. 4): MMRF, its ablations and MASSA.
    Agents,
    /// One policy on a learned scalarisation of all critics ([`crate::pareto`]).
    Pareto,
    /// Auxiliary policies first, then the constrained main policy ([`crate::tscac`]).
    Tscac,
}

/// What the TD target's next-state value is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrap {
    /// The target actor's next action, `Q'(s', π'(s'))` (the paper's eq. 4).
    Policy,
    /// The next slate the logger showed, `mean_k q'(s', e_k)`: SARSA on the logged data.
    /// The critic then values the behaviour's continuation and the actor takes one step of
    /// improvement on it, with no bootstrapping through actions the data never shows.
    Logged,
}

/// Credit for ending a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaveCredit {
    /// Only the last item viewed, after which the user left.
    Item,
    /// Every item of the session's last request.
    Request,
}

impl Default for MmrfConfig {
    fn default() -> Self {
        MmrfConfig {
            net: MmrfNetConfig::default(),
            steps: 1500,
            batch: 256,
            lr_critic: 1e-3,
            lr_actor: 1e-3,
            lr_final: 0.1,
            gamma: 0.9,
            soft_update: 0.01,
            alpha: 1.0,
            beta: 1.0,
            reward_head: 1.0,
            watch_time_huber: 3.0,
            history: 20,
            augment: Augment::Simulator,
            sample_share: 0.25,
            sample_fraction: 0.0,
            negative_reward: -0.5,
            log_every: 25,
            max_requests: 0,
            sim: SimulatorNetConfig::default(),
            sim_pretrain_steps: 400,
            sim_refit_every: 4,
            sim_lr: 2e-3,
            sim_lambda: 5.0,
            sim_watch_cap_s: 60.0,
            sim_mc_dropout: true,
            checkpoint_every: 250,
            leave_credit: LeaveCredit::Request,
            objective: Objective::Agents,
            bootstrap: Bootstrap::Policy,
            pareto_floor: 0.14,
            tscac_bound: 1.5,
            tscac_dual_lr: 0.05,
            list_candidates: default_list_candidates(),
            list_temperature: default_list_temperature(),
            behaviour_pull: default_behaviour_pull(),
        }
    }
}

impl MmrfConfig {
    /// What the actor-critic baselines (Pareto, TSCAC, MASSA) share: actors that do not
    /// communicate, logged impressions only (no simulator), and the linear critic and the
    /// discount their own settings were chosen with (`docs/baselines.md`).
    pub fn baseline() -> MmrfConfig {
        MmrfConfig {
            net: MmrfNetConfig {
                collaboration: Collaboration::None,
                critic: CriticForm::Linear,
                ..MmrfNetConfig::default()
            },
            gamma: 0.5,
            augment: Augment::None,
            ..MmrfConfig::default()
        }
    }

    /// The number of updates a run makes: `steps`, or `2 × steps` for TSCAC, whose two
    /// stages each get the full budget.
    pub fn updates(&self) -> usize {
        match self.objective {
            Objective::Tscac => 2 * self.steps,
            _ => self.steps,
        }
    }

    /// Whether update `step` is the last of the run.
    fn is_last(&self, step: usize) -> bool {
        step + 1 == self.updates()
    }

    /// The configuration of a method name: `mmrf`, `mmrf-co`, `mmrf-da`, `mmrf-ns`, and
    /// the actor-critic baselines `pareto`, `tscac`, `massa`.
    pub fn for_method(method: &str) -> MmrfConfig {
        let mut c = MmrfConfig::default();
        match method {
            "mmrf-co" => c.net.collaboration = Collaboration::Concat,
            "mmrf-da" => c.augment = Augment::None,
            "mmrf-ns" => c.augment = Augment::Negative,
            "pareto" => c = crate::pareto::config(),
            "tscac" => c = crate::tscac::config(),
            "massa" => c = crate::massa::config(),
            _ => {}
        }
        c
    }
}

impl Validate for MmrfConfig {
    fn validate(&self) -> Result<(), TrainError> {
        use crate::settings::{at_least_one, finite, non_negative, positive, within};
        let n = &self.net;
        for (key, v) in [
            ("net.dim", n.dim),
            ("net.state", n.state),
            ("net.agent", n.agent),
            ("net.heads", n.heads),
            ("net.hidden", n.hidden),
            ("sim.dim", self.sim.dim),
            ("sim.hidden", self.sim.hidden),
            ("sim.head", self.sim.head),
            ("steps", self.steps),
            ("batch", self.batch),
            ("history", self.history),
        ] {
            at_least_one(key, v)?;
        }
        if n.agent % n.heads != 0 {
            return Err(TrainError::Setting(format!(
                "`net.heads` = {}: must divide `net.agent` = {}",
                n.heads, n.agent
            )));
        }
        for (key, v) in [
            ("lr_critic", self.lr_critic),
            ("lr_actor", self.lr_actor),
            ("sim_lr", self.sim_lr),
        ] {
            positive(key, v)?;
        }
        positive("sim_watch_cap_s", self.sim_watch_cap_s)?;
        for (key, v) in [
            ("lr_final", self.lr_final),
            ("gamma", self.gamma),
            ("soft_update", self.soft_update),
            ("sample_share", self.sample_share),
            ("sample_fraction", self.sample_fraction),
        ] {
            within(key, v, 0.0, 1.0)?;
        }
        within("sim.dropout", self.sim.dropout, 0.0, 0.99)?;
        within("tscac_bound", self.tscac_bound, 0.0, 2.0)?;
        within("pareto_floor", self.pareto_floor, 0.0, 1.0 / N_AGENTS as f64)?;
        for (key, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("reward_head", self.reward_head),
            ("tscac_dual_lr", self.tscac_dual_lr),
            ("watch_time_huber", self.watch_time_huber),
        ] {
            non_negative(key, v)?;
        }
        non_negative("behaviour_pull", self.behaviour_pull)?;
        positive("list_temperature", self.list_temperature)?;
        if n.critic == CriticForm::List {
            at_least_one("list_candidates", self.list_candidates)?;
            if self.objective == Objective::Pareto {
                return Err(TrainError::Setting(
                    "`net.critic` = \"list\" with Pareto: its MGDA weights read the linear critic's \
                     action gradients; use `net.critic = \"linear\"`"
                        .into(),
                ));
            }
        }
        finite("negative_reward", self.negative_reward)?;
        finite("sim_lambda", self.sim_lambda)
    }
}

/// The logged transitions of the training split.
struct Transitions<'a> {
    set: RequestSet<'a>,
    /// Index of the next request of the session, if any.
    next: Vec<Option<u32>>,
    /// Per-item label scale of each signal (1 / std).
    item_scale: [f32; N_AGENTS],
    /// The most items a request shows (K): the width of every per-item tensor.
    k: usize,
}

fn signal_value(log: &mmrf_data::LogColumns, sig: Signal, row: usize) -> f32 {
    let v = log.label(sig, row);
    if sig == Signal::Hate {
        -v
    } else {
        v
    }
}

fn std_of(values: impl Iterator<Item = f32>) -> f32 {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for v in values {
        n += 1.0;
        s += v as f64;
        s2 += (v as f64).powi(2);
    }
    let var = (s2 / n.max(1.0) - (s / n.max(1.0)).powi(2)).max(0.0);
    (var.sqrt() as f32).max(1e-6)
}

impl<'a> Transitions<'a> {
    fn build(data: &'a Dataset) -> Transitions<'a> {
        Transitions::build_split(data, LogSplit::Train)
    }

    fn build_split(data: &'a Dataset, split: LogSplit) -> Transitions<'a> {
        let set = data.requests(split, &Default::default());
        let log = data.log(split);
        let n = set.requests.len();
        let next = (0..n)
            .map(|i| {
                let r = &set.requests[i];
                set.requests
                    .get(i + 1)
                    .filter(|x| x.session == r.session && x.position == r.position + 1)
                    .map(|_| i as u32 + 1)
            })
            .collect();
        let item_scale =
            std::array::from_fn(|k| 1.0 / std_of((0..log.len()).map(|i| signal_value(log, Signal::ALL[k], i))));
        let k = set.max_shown().max(1);
        Transitions {
            set,
            next,
            item_scale,
            k,
        }
    }
}

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

/// One row of an update's batch: a logged request and the items it is trained on.
struct Row {
    /// Index of the request in the training transitions.
    request: usize,
    /// The shown items (logged rows), or the non-impression candidates picked for it.
    items: Vec<u32>,
    /// A non-impression sample, labelled by the simulator (or MMRF-NS's constant).
    sample: bool,
}

/// An update's batch: `cfg.batch` logged requests, next in the shuffled epoch order, then
/// for a `sample_share` of them a non-impression sample: as many of the request's
/// candidates the logger did not show as it showed (or `sample_fraction` of them, in rows
/// of a slate's width), the top ones under a random action
/// (Algorithm 1's exploration), scored with the item table.
#[allow(clippy::too_many_arguments)]
fn sample_rows(
    cfg: &MmrfConfig,
    tr: &Transitions<'_>,
    log: &mmrf_data::LogColumns,
    rng: &mut ChaCha8Rng,
    order: &mut [usize],
    cursor: &mut usize,
    table: &[f32],
    cands: &mut Vec<u32>,
) -> (Vec<usize>, Vec<Row>) {
    let d = cfg.net.dim;
    let mut batch: Vec<usize> = Vec::with_capacity(cfg.batch);
    while batch.len() < cfg.batch {
        if *cursor == order.len() {
            order.shuffle(rng);
            *cursor = 0;
        }
        batch.push(order[*cursor]);
        *cursor += 1;
    }
    let mut rows: Vec<Row> = batch
        .iter()
        .map(|&i| Row {
            request: i,
            items: tr.set.shown_videos(i, log),
            sample: false,
        })
        .collect();
    if cfg.augment == Augment::None {
        return (batch, rows);
    }
    let mut samples = Vec::new();
    let mut scored: Vec<(f32, u32)> = Vec::new();
    let mut a = vec![0f32; d];
    for row in &rows {
        if rng.random::<f64>() >= cfg.sample_share {
            continue;
        }
        tr.set.candidates(row.request, log, cands);
        a.iter_mut().for_each(|x| *x = rng.random::<f32>() * 2.0 - 1.0);
        scored.clear();
        scored.extend(cands.iter().filter(|c| !row.items.contains(c)).map(|&c| {
            let e = &table[c as usize * d..(c as usize + 1) * d];
            (a.iter().zip(e).map(|(x, y)| x * y).sum::<f32>(), c)
        }));
        // The top `k` by score, best first: as many as the request showed, or the share of
        // its non-impressions that `sample_fraction` asks for.
        let shown = row.items.len().max(1);
        let k = if cfg.sample_fraction > 0.0 {
            ((scored.len() as f64 * cfg.sample_fraction).round() as usize).max(1)
        } else {
            shown
        }
        .min(scored.len());
        if k == 0 {
            continue;
        }
        let best_first = |x: &(f32, u32), y: &(f32, u32)| y.0.total_cmp(&x.0);
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, best_first);
        }
        scored[..k].sort_by(best_first);
        // Rows are as wide as a slate: a larger sample fills several rows of one request.
        for chunk in scored[..k].chunks(tr.k.max(1)) {
            samples.push(Row {
                request: row.request,
                items: chunk.iter().map(|x| x.1).collect(),
                sample: true,
            });
        }
    }
    rows.extend(samples);
    (batch, rows)
}

/// A request's candidate set `C'` for the score-list critic: `first` (the row's items),
/// then others of the request's candidates drawn at random, `cfg.list_candidates` in all.
fn candidate_list(
    cfg: &MmrfConfig,
    tr: &Transitions<'_>,
    log: &mmrf_data::LogColumns,
    request: usize,
    first: &[u32],
    rng: &mut ChaCha8Rng,
    cands: &mut Vec<u32>,
) -> Vec<u32> {
    let mut out: Vec<u32> = first.iter().copied().take(cfg.list_candidates).collect();
    tr.set.candidates(request, log, cands);
    cands.retain(|c| !out.contains(c));
    let extra = cfg.list_candidates.saturating_sub(out.len()).min(cands.len());
    let (picked, _) = cands.partial_shuffle(rng, extra);
    out.extend_from_slice(picked);
    out
}

/// The candidate sets of a batch's rows as tensors: embeddings `[B, C, D]` (rows of
/// `e_pad`, whose last row is padding), a mask of the real ones `[B, C]`.
fn list_tensors(
    lists: &[Vec<u32>],
    width: usize,
    e_pad: &Tensor<2>,
    row_of: impl Fn(u32) -> i64,
    device: &Device,
) -> (Tensor<3>, Tensor<2>) {
    let b = lists.len();
    let [pad, d] = e_pad.dims();
    let mut idx = vec![pad as i64 - 1; b * width];
    let mut mask = vec![0f32; b * width];
    for (x, list) in lists.iter().enumerate() {
        for (k, &v) in list.iter().take(width).enumerate() {
            idx[x * width + k] = row_of(v);
            mask[x * width + k] = 1.0;
        }
    }
    let e = e_pad
        .clone()
        .select(0, Tensor::from_data(TensorData::new(idx, [b * width]), device))
        .reshape([b, width, d]);
    (e, Tensor::from_data(TensorData::new(mask, [b, width]), device))
}

/// What the score-list critic's actor phase reads of a batch.
struct ListBatch {
    /// Each row's candidate embeddings `[B, C, D]` (no gradient).
    candidates: Tensor<3>,
    /// `[B, C]`: 1 for a real candidate.
    mask: Tensor<2>,
    /// `[B, C]`: 1 for an item the logger showed (logged rows only).
    behaviour: Tensor<2>,
}

/// The learning rates' share at `step`: a cosine from 1 at the first update to
/// `cfg.lr_final` at the last (of each of TSCAC's stages: the schedule restarts with the
/// second).
fn lr_share(cfg: &MmrfConfig, step: usize) -> f64 {
    let step = step % cfg.steps.max(1);
    let t = step as f64 / cfg.steps.saturating_sub(1).max(1) as f64;
    cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// What the actors' phase of an update reports.
struct ActorStats {
    loss: f32,
    /// Mean cosine of the main action to its critic's best unit action (on log steps).
    alignment: Option<f32>,
    /// Pareto's scalarisation weights.
    scalarisation: Option<Vec<f64>>,
    /// TSCAC's stage-2 mean distance of the main action to each auxiliary one.
    distances: Option<Vec<f64>>,
    /// With the score-list critic, the mean `−log p` of the logged shown items under the
    /// agents' score lists (on log steps).
    behaviour_nll: Option<f32>,
}

/// The actors' phase of an update, on states `s` (detached) after the critics' step: the
/// main actor ascends Q_N (and its gradient reaches the auxiliary actors with weight α),
/// each auxiliary actor its own critic with weight β (eq. 4); or the objective of the
/// Pareto and TSCAC baselines.
#[allow(clippy::too_many_arguments)]
fn actor_update(
    net: MmrfNet,
    sd: Tensor<2>,
    list: Option<ListBatch>,
    opt_actor: &mut burn::optim::ModuleOptimizer,
    cfg: &MmrfConfig,
    step: usize,
    multipliers: &mut [f64],
    device: &Device,
) -> Result<(MmrfNet, ActorStats), TrainError> {
    let h = net.agents.embeddings(sd.clone());
    let ec = net.agents.collaborate(h.clone());
    let a = net.agents.actions(h, ec, cfg.alpha);
    // The critics only pass the gradient through to the actions: a frozen copy spares
    // the backward pass their weight gradients, which this phase would discard.
    let frozen = net.critics.clone().no_grad();
    // How well the main actor has found its critic's best action: Q_N is linear in the
    // action, so the best unit action is W_N(s)/|W_N(s)|; log the mean cosine to it.
    let linear = list.is_none();
    let alignment = if linear && (step % cfg.log_every.max(1) == 0 || cfg.is_last(step)) {
        let [n, bb, dd] = a.dims();
        let main = a.clone().detach().slice([n - 1..n, 0..bb, 0..dd]);
        let w = frozen.action_gradients(sd.clone()).slice([n - 1..n, 0..bb, 0..dd]);
        let cos = (main * mmrf_model::mmrf::unit(w)).sum_dim(2).mean();
        Some(cos.into_scalar::<f32>())
    } else {
        None
    };
    let mut scalarisation = None;
    let mut distances = None;
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
    // Each agent's value of its action (Pareto values the main action its own way).
    let value = || listed.clone().unwrap_or_else(|| frozen.q(sd.clone(), a.clone()));
    let actor_loss = match cfg.objective {
        Objective::Agents => {
            let qa = value();
            let weights: Vec<f32> = (0..N_AGENTS)
                .map(|i| if i == N_AGENTS - 1 { 1.0 } else { cfg.beta as f32 })
                .collect();
            let w = Tensor::<2>::from_data(TensorData::new(weights, [N_AGENTS, 1]), device);
            (qa * w).mean().neg()
        }
        Objective::Pareto => {
            let w = crate::pareto::weights(&frozen, sd.clone(), cfg.pareto_floor);
            let [n, bb, dd] = a.dims();
            let main = a.slice([n - 1..n, 0..bb, 0..dd]).reshape([bb, dd]);
            let loss = crate::pareto::actor_loss(&frozen, sd, main, &w);
            scalarisation = Some(w);
            loss
        }
        Objective::Tscac => {
            let qa = value();
            let stage = crate::tscac::stage(step, cfg.steps);
            let (loss, d) = crate::tscac::actor_loss(a, qa, stage, multipliers);
            if stage == 2 {
                // The multipliers step on the violation before this update (primal-dual).
                crate::tscac::dual_step(multipliers, &d, cfg.tscac_bound, cfg.tscac_dual_lr);
                distances = Some(d);
            }
            loss
        }
    };
    let log_step = step % cfg.log_every.max(1) == 0 || cfg.is_last(step);
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
            scalarisation,
            distances,
            behaviour_nll,
        },
    ))
}

/// The value of every next state under the target networks, `[N, B]` row-major: the
/// critics at the target policy's next action (`bootstrap = "policy"`), or their mean over
/// the items of the slate the logger showed next (`"logged"`). No gradient.
#[allow(clippy::too_many_arguments)]
fn next_values(
    target: &MmrfNet,
    fs: &FeatureSpace,
    n_in: &StateInputs,
    next_shown: &[Vec<u32>],
    next_lists: &[Vec<u32>],
    k_max: usize,
    cfg: &MmrfConfig,
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
    match cfg.bootstrap {
        Bootstrap::Policy => {
            let h = target.agents.embeddings(sn.clone());
            let ec = target.agents.collaborate(h.clone());
            let mut an = target.agents.actions(h, ec, 1.0);
            if cfg.objective == Objective::Pareto {
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

/// A plain-Rust copy of every item's embedding (for picking non-impression samples).
fn item_table(net: &MmrfNet, fs: &FeatureSpace) -> Vec<f32> {
    let device = mmrf_model::device::inference();
    let items = net.items.valid();
    let all: Vec<u32> = (0..fs.n_videos() as u32).collect();
    let mut out = Vec::with_capacity(all.len() * 32);
    for chunk in all.chunks(8192) {
        let e = items.forward(video_batch(fs, chunk, &device));
        out.extend(e.into_data().try_to_vec::<f32>().unwrap_or_default());
    }
    out
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
    cfg: &MmrfConfig,
    seed: u64,
    out: &Path,
    progress: &Progress,
    resume: bool,
) -> Result<MmrfRanker, TrainError> {
    let started = Instant::now();
    let _seeded = mmrf_model::device::seeded(seed);
    let mut t = if resume {
        Trainer::resume(data, fs, out)?
    } else {
        Trainer::new(data, fs, method, cfg, seed, out)?
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

/// Matmul FLOPs of one update, counted from the layer sizes: every linear layer and batched
/// product of the trained parts three times (forward, and the two products of the backward
/// pass), the target networks' and the labelling forward passes once, the simulator's refit
/// spread over the updates it is refit in. Elementwise work is not counted. The target side
/// is assumed to embed as many videos as the online side.
pub fn update_flops(cfg: &MmrfConfig, shape: &mmrf_model::FeatureShape, stats: &StepStats) -> f64 {
    let f = |x: usize| x as f64;
    let (b, m, n) = (f(stats.batch), f(stats.videos), f(N_AGENTS));
    let (d, s, h, hid, heads) = (
        f(cfg.net.dim),
        f(cfg.net.state),
        f(cfg.net.agent),
        f(cfg.net.hidden),
        f(cfg.net.heads),
    );
    let (l, k, u, v) = (
        f(cfg.history.max(1)),
        6.0,
        f(shape.user_dim.max(1)),
        f(shape.video_dim.max(1)),
    );
    let lin = |rows: f64, i: f64, o: f64| 2.0 * rows * i * o;
    let items = |rows: f64, hidden: f64, out: f64| lin(rows, v, hidden) + lin(rows, hidden, out);
    let state = lin(b, u, s) + lin(b * l, d + 7.0, s) + lin(b, s, s);
    // The per-item critic at `rows` items per state: linear (its parts, then one dot per
    // item) or the score list's MLP (state and item images, the agents' hidden layers).
    let per_item = |rows: f64| match cfg.net.critic {
        CriticForm::Linear => lin(n * b, s, hid) + lin(n * b, hid, 1.0) + lin(n * b, hid, d) + 2.0 * n * b * d * rows,
        CriticForm::List => {
            lin(n * b, s, hid) + lin(b, s, d) + lin(b * rows, 2.0 * d, hid) + lin(n * b * rows, hid, 1.0)
        }
    };
    let c_list = f(cfg.list_candidates);
    // The actors' value of an action: a dot with the critic's slope, or the score list over
    // the request's candidates.
    let critic = match cfg.net.critic {
        CriticForm::Linear => lin(n * b, s, hid) + lin(n * b, hid, 1.0) + lin(n * b, hid, d),
        CriticForm::List => per_item(c_list) + 2.0 * n * b * c_list * d,
    };
    let q_items = per_item(k);
    let reward = lin(b, s, n * d) + 2.0 * b * k * d * n;
    let attention = match cfg.net.collaboration {
        Collaboration::Attention => 3.0 * lin(b * n, h, h) + 2.0 * 2.0 * b * heads * n * n * (h / heads),
        Collaboration::Concat => n * lin(b, (n - 1.0) * h, h),
        Collaboration::None => 0.0,
    };
    let agents = lin(b, s, n * h)
        + attention
        + lin((n - 1.0) * b, 2.0 * h, hid)
        + lin((n - 1.0) * b, hid, d)
        + lin(b, 2.0 * h + (n - 1.0) * d, hid)
        + lin(b, hid, d);
    let phase1 = items(m, hid, d) + state + q_items + reward;
    let target = items(m, hid, d) + state + agents + critic;
    let phase2 = agents + critic;
    let sim = if cfg.augment == Augment::Simulator {
        let (hs, head, ds) = (f(cfg.sim.hidden), f(cfg.sim.head), f(cfg.sim.dim));
        let rows = f(cfg.batch);
        let gru = lin(rows * l, ds + 7.0, 3.0 * hs) + lin(rows * l, hs, 3.0 * hs);
        let heads = 2.0 * (lin(rows * k, 2.0 * hs + ds, head) + lin(rows * k, head, n));
        let refit = 3.0 * (items(m, head, ds) + gru + heads + lin(rows, u, hs));
        let samples = (b - rows).max(0.0);
        let labelling = items(m, head, ds)
            + lin(samples * l, ds + 7.0, 3.0 * hs)
            + lin(samples * l, hs, 3.0 * hs)
            + heads * samples / rows.max(1.0);
        refit / f(cfg.sim_refit_every.max(1)) + labelling
    } else {
        0.0
    };
    3.0 * phase1 + target + 3.0 * phase2 + sim
}

/// MMRF's training state: everything a checkpoint holds.
pub struct Trainer<'a> {
    data: &'a Dataset,
    fs: &'a FeatureSpace,
    method: String,
    pub cfg: MmrfConfig,
    seed: u64,
    out: std::path::PathBuf,
    timelines: Timelines,
    tr: Transitions<'a>,
    log: &'a mmrf_data::LogColumns,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    net: Option<MmrfNet>,
    target: Option<MmrfNet>,
    opt_critic: burn::optim::ModuleOptimizer,
    opt_actor: burn::optim::ModuleOptimizer,
    table: Vec<f32>,
    sim: Option<Sim>,
    sim_ready: bool,
    slot: Vec<u32>,
    cands: Vec<u32>,
    /// TSCAC's Lagrange multipliers, one per auxiliary constraint (unused by the others).
    multipliers: Vec<f64>,
    /// Eq. 6's factors over the run's labelled samples: how many fell outside
    /// [0.99, 1.01], of how many.
    uncertainty: [u64; 2],
    /// Updates done.
    pub step: usize,
    log_out: TrainLog,
    device: Device,
    plain: Device,
}

impl<'a> Trainer<'a> {
    /// A fresh trainer (the caller holds [`mmrf_model::device::seeded`]).
    pub fn new(
        data: &'a Dataset,
        fs: &'a FeatureSpace,
        method: &str,
        cfg: &MmrfConfig,
        seed: u64,
        out: &Path,
    ) -> Result<Trainer<'a>, TrainError> {
        cfg.validate()?;
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
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n_req).collect();
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
            multipliers: crate::tscac::initial_multipliers(),
            uncertainty: [0, 0],
            step: 0,
            log_out: TrainLog::create(out)?,
            device,
            plain,
        })
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
            let idx: Vec<usize> = (0..self.cfg.batch)
                .map(|_| self.order[self.rng.random_range(0..self.order.len())])
                .collect();
            sim.reseed(self.seed, usize::MAX - step);
            let loss = sim.step(self.fs, &self.timelines, &self.tr, self.log, &idx, &self.cfg)?;
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
            multipliers,
            uncertainty,
            step: step_ref,
            log_out,
            device,
            plain,
            ..
        } = self;
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
        let (batch, rows) = sample_rows(cfg, tr, log, rng, order, cursor, table, cands);
        // The score-list critic's candidate sets: each row's, and its next request's.
        let list = cfg.net.critic == CriticForm::List;
        let lists: Vec<Vec<u32>> = if list {
            rows.iter()
                .map(|r| candidate_list(cfg, tr, log, r.request, &r.items, rng, cands))
                .collect()
        } else {
            Vec::new()
        };
        let next_lists: Vec<Vec<u32>> = if list && cfg.bootstrap == Bootstrap::Policy {
            rows.iter()
                .map(|r| match tr.next[r.request] {
                    Some(j) => {
                        let shown = tr.set.shown_videos(j as usize, log);
                        candidate_list(cfg, tr, log, j as usize, &shown, rng, cands)
                    }
                    None => Vec::new(),
                })
                .collect()
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
        let (batch_ref, cfg_ref, seed): (&[usize], &MmrfConfig, u64) = (&batch, cfg, *seed);
        let (net, target, c_val, h_val, actors, m, sim_loss) = std::thread::scope(|scope| -> Result<_, TrainError> {
            let refit = match sim.as_mut() {
                Some(sim) if refit_now => Some(scope.spawn(move || {
                    sim.reseed(seed, step);
                    let loss = sim.step(fs, timelines, tr, log, batch_ref, cfg_ref);
                    sim.refresh();
                    loss
                })),
                _ => None,
            };
            // States now and next (the next state of a session's last request is unused).
            let mut s_in = StateInputs::with_candidates(cfg.history, cfg.net.candidates);
            let mut n_in = StateInputs::with_candidates(cfg.history, cfg.net.candidates);
            let mut done = Vec::with_capacity(b);
            let mut cbuf: Vec<u32> = Vec::new();
            for row in &rows {
                let i = row.request;
                s_in.push(fs, &timelines.state(&tr.set, log, i, cfg.history));
                if cfg.net.candidates > 0 {
                    tr.set.candidates(i, log, &mut cbuf);
                    s_in.push_candidates(&cbuf);
                }
                let next = match tr.next[i] {
                    Some(j) => {
                        done.push(0.0f32);
                        j as usize
                    }
                    None => {
                        done.push(1.0f32);
                        i
                    }
                };
                n_in.push(fs, &timelines.state(&tr.set, log, next, cfg.history));
                if cfg.net.candidates > 0 {
                    tr.set.candidates(next, log, &mut cbuf);
                    n_in.push_candidates(&cbuf);
                }
            }
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
                let qn = next_values(&target, fs, &n_in, &next_shown, &next_lists, k_max, cfg_ref, plain);
                (target, qn)
            });
            let e = net.items.forward(video_batch(fs, &videos, device));
            let e_pad = Tensor::cat(vec![e, Tensor::zeros([1, d], device)], 0);
            let row_of = |v: u32| slot[v as usize] as i64;
            let s = net
                .state
                .forward(s_in.to_batch(fs.users.dim, e_pad.clone(), row_of, m as i64, device));
            let mut shown_idx = vec![m as i64; b * k_max];
            let mut shown_mask = vec![0f32; b * k_max];
            let mut item_labels = vec![0f32; b * k_max * N_AGENTS];
            let mut next_sample = 0;
            for (x, row) in rows.iter().enumerate() {
                let logged_rows = tr.set.shown_rows(&tr.set.requests[row.request]);
                let labels_here = if row.sample {
                    next_sample += 1;
                    Some(&sample_labels[next_sample - 1])
                } else {
                    None
                };
                for (k, &v) in row.items.iter().take(k_max).enumerate() {
                    shown_idx[x * k_max + k] = slot[v as usize] as i64;
                    if let Some(l) = labels_here {
                        item_labels[(x * k_max + k) * N_AGENTS..(x * k_max + k + 1) * N_AGENTS].copy_from_slice(&l[k]);
                    } else {
                        shown_mask[x * k_max + k] = 1.0;
                        let at = logged_rows[k] as usize;
                        for (a, sig) in Signal::ALL.iter().enumerate() {
                            item_labels[(x * k_max + k) * N_AGENTS + a] =
                                signal_value(log, *sig, at) * tr.item_scale[a];
                        }
                    }
                }
            }
            let mut act_mask = shown_mask.clone();
            for (x, row) in rows.iter().enumerate() {
                if row.sample {
                    for k in 0..row.items.len().min(k_max) {
                        act_mask[x * k_max + k] = 1.0;
                    }
                }
            }
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
            let y = {
                let (target_back, qn) = next_job
                    .join()
                    .map_err(|_| TrainError::Run("the target networks' pass panicked".into()))?;
                target = target_back;
                let mut y = vec![0f32; N_AGENTS * b * k_max];
                for a in 0..N_AGENTS {
                    for (x, row) in rows.iter().enumerate() {
                        let last = row.items.len().min(k_max).saturating_sub(1);
                        for k in 0..k_max {
                            // Who ended the session? With item-level credit only the last item
                            // viewed loses the continuation; the others were followed by more
                            // viewing (valued from the same state, the request's own).
                            let ended = match cfg.leave_credit {
                                LeaveCredit::Item => done[x] > 0.0 && k == last && !row.sample,
                                LeaveCredit::Request => done[x] > 0.0,
                            };
                            let future = if ended { 0.0 } else { cfg.gamma as f32 * qn[a * b + x] };
                            y[(a * b + x) * k_max + k] = item_labels[(x * k_max + k) * N_AGENTS + a] + future;
                        }
                    }
                }
                Tensor::<3>::from_data(TensorData::new(y, [N_AGENTS, b, k_max]), device)
            };
            phases.target = lap.lap();
            let td_mask = Tensor::<2>::from_data(TensorData::new(act_mask, [b, k_max]), device).reshape([1, b, k_max]);
            let td_n = td_mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
            let critic_loss = (regression_loss(q - y, 0, cfg.watch_time_huber) * td_mask).sum() / td_n;
            let head_mask =
                Tensor::<2>::from_data(TensorData::new(shown_mask, [b, k_max]), device).reshape([b, k_max, 1]);
            let labels = Tensor::<3>::from_data(TensorData::new(item_labels.clone(), [b, k_max, N_AGENTS]), device);
            let pred = net.critics.item_rewards(s.clone(), shown_e);
            let head_n = head_mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
            let head_loss = (regression_loss(pred - labels, 2, cfg.watch_time_huber) * head_mask).sum() / head_n;
            let loss1 = critic_loss.clone() + head_loss.clone() * cfg.reward_head;
            let (c_val, h_val) = (critic_loss.into_scalar::<f32>(), head_loss.into_scalar::<f32>());
            check_finite(c_val, step, "critics", "td_loss")?;
            check_finite(h_val, step, "critics", "reward_head_loss")?;
            let grads = GradientsParams::from_grads(loss1.backward(), &net);
            net = opt_critic.step(cfg.lr_critic * lr_share(cfg, step), net, grads);
            phases.critic += lap.lap();

            let (net_after, actors) =
                actor_update(net, s.detach(), list_batch, opt_actor, cfg, step, multipliers, device)?;
            net = net_after;
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
                None => f32::NAN,
            };
            phases.simulator = lap.lap();
            Ok((net, target, c_val, h_val, actors, m, sim_loss))
        })?;
        if (step + 1) % 100 == 0 {
            *table = item_table(&net, fs);
        }
        phases.simulator += lap.lap();
        if step % cfg.log_every.max(1) == 0 || cfg.is_last(step) {
            log_out.write(&serde_json::json!({
                "step": step, "td_loss": c_val, "reward_head_loss": h_val, "actor_loss": actors.loss, "batch": b,
                "simulator_loss": if sim_loss.is_nan() { serde_json::Value::Null } else { sim_loss.into() },
                "simulator_kl": if sample_kl.is_nan() { serde_json::Value::Null } else { sample_kl.into() },
                "uncertainty_outside": (step_uncertainty[1] > 0)
                    .then(|| step_uncertainty[0] as f64 / step_uncertainty[1] as f64),
                "pareto_weights": actors.scalarisation,
                "main_actor_alignment": actors.alignment,
                "tscac_distances": actors.distances,
                "tscac_multipliers": actors.distances.as_ref().map(|_| multipliers.clone()),
                "behaviour_nll": actors.behaviour_nll,
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

    /// Write the final model (and the simulator and its fit) and the manifest.
    pub fn finish(mut self, train_seconds: f64) -> Result<MmrfRanker, TrainError> {
        let (fs, data, out, cfg, seed) = (self.fs, self.data, self.out.clone(), self.cfg.clone(), self.seed);
        let net = self
            .net
            .take()
            .ok_or_else(|| TrainError::Run("the trainer failed earlier".into()))?;
        let timelines = &self.timelines;
        let sim = &self.sim;
        let method = self.method.clone();
        let valid = net.valid();
        run::save_weights(&valid, &out.join(run::WEIGHTS_FILE))?;
        let [outside, labels] = self.uncertainty;
        let uncertainty = (labels > 0).then(|| LabelUncertainty {
            labels,
            outside_099_101: outside as f64 / labels as f64,
        });
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
        let mut ranker = MmrfRanker::new(&method, valid, fs.clone(), cfg.history, cfg.net.candidates);
        ranker.uncertainty = uncertainty;
        Ok(ranker)
    }
}

/// The checkpoint directory inside a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_FILE: &str = "checkpoint.toml";

/// A run's checkpoint directories, newest first: the last one and the one before it.
fn checkpoint_dirs(out: &Path) -> [std::path::PathBuf; 2] {
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
    let base = MmrfConfig::deserialize(toml::Value::Table(st.config.clone()))
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
    /// TSCAC's Lagrange multipliers.
    #[serde(default)]
    multipliers: Vec<f64>,
    /// Eq. 6's factors so far: outside [0.99, 1.01], and in all.
    #[serde(default)]
    uncertainty: [u64; 2],
    config: toml::Table,
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
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        let (Some(net), Some(target)) = (&self.net, &self.target) else {
            return Err(TrainError::Run("the trainer failed earlier".into()));
        };
        let tmp = self.out.join(format!("{CHECKPOINT_DIR}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
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
        let state = CheckpointState {
            method: self.method.clone(),
            seed: self.seed,
            step: self.step,
            cursor: self.cursor,
            sim_ready: self.sim_ready,
            rng_seed: self.rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            net_ids: ids(net),
            sim_ids,
            multipliers: self.multipliers.clone(),
            uncertainty: self.uncertainty,
            config: run::to_table(&self.cfg),
        };
        let text = toml::to_string(&state).map_err(|e| TrainError::Run(e.to_string()))?;
        write_bytes(&tmp.join(CHECKPOINT_FILE), text.as_bytes())?;
        // The previous checkpoint stays as `checkpoint.old`: a resume falls back to it
        // when the newest cannot be read.
        let [dir, old] = checkpoint_dirs(&self.out);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&dir, &old).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
        Ok(())
    }

    /// Continue from `RUN_DIR/checkpoint/`, or from the checkpoint before it when that one
    /// cannot be read (the caller holds [`mmrf_model::device::seeded`]).
    pub fn resume(data: &'a Dataset, fs: &'a FeatureSpace, out: &Path) -> Result<Trainer<'a>, TrainError> {
        let mut first_error = None;
        for dir in checkpoint_dirs(out) {
            if !dir.exists() {
                continue;
            }
            match Self::resume_from(data, fs, out, &dir) {
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

    fn resume_from(data: &'a Dataset, fs: &'a FeatureSpace, out: &Path, dir: &Path) -> Result<Trainer<'a>, TrainError> {
        let path = dir.join(CHECKPOINT_FILE);
        let st = read_checkpoint_state(dir)?;
        let cfg: MmrfConfig = MmrfConfig::deserialize(toml::Value::Table(st.config.clone()))
            .map_err(|e| TrainError::Run(format!("{}: [config]: {e}", path.display())))?;
        let curve = std::fs::read_to_string(out.join(run::TRAIN_LOG_FILE)).unwrap_or_default();
        let mut t = Trainer::new(data, fs, &st.method, &cfg, st.seed, out)?;
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
        let order = read_bytes(&dir.join("order.bin"))?;
        t.order = order
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as usize)
            .collect();
        let table = read_bytes(&dir.join("item_table.bin"))?;
        t.table = table
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let seed_bytes: Vec<u8> = (0..st.rng_seed.len() / 2)
            .map(|i| u8::from_str_radix(&st.rng_seed[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let seed: [u8; 32] = seed_bytes.try_into().map_err(|_| bad("rng_seed"))?;
        t.rng = ChaCha8Rng::from_seed(seed);
        t.rng.set_stream(st.rng_stream);
        t.rng
            .set_word_pos(st.rng_word_pos.parse().map_err(|_| bad("rng_word_pos"))?);
        t.cursor = st.cursor;
        if !st.multipliers.is_empty() {
            if st.multipliers.len() != t.multipliers.len() {
                return Err(bad("multipliers: one per auxiliary agent expected"));
            }
            t.multipliers = st.multipliers.clone();
        }
        t.uncertainty = st.uncertainty;
        t.step = st.step;
        t.sim_ready = st.sim_ready;
        if t.order.len()
            != t.tr.set.requests.len().min(if cfg.max_requests > 0 {
                cfg.max_requests
            } else {
                usize::MAX
            })
            || t.table.len() != t.table_len()
        {
            return Err(bad("does not fit this data"));
        }
        // The learning curve keeps the lines up to the checkpoint.
        t.log_out = TrainLog::resume(out, st.step, &curve)?;
        Ok(t)
    }

    fn table_len(&self) -> usize {
        self.fs.n_videos() * self.cfg.net.dim
    }
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

/// The feedback simulator's weights in a run directory (full MMRF only).
pub const SIMULATOR_FILE: &str = "simulator.safetensors";

/// The simulator's fit on held-out impressions, per signal.
pub const SIMULATOR_FIT_FILE: &str = "simulator_fit.json";

/// How well M predicts held-out feedback: AUC for the binary signals, RMSE (seconds, of
/// play time capped at `sim_watch_cap_s` as M's target is) for WatchTime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatorFit {
    pub impressions: usize,
    /// `(signal, AUC)`; `None` when the held-out sample has one class only.
    pub auc: Vec<(String, Option<f64>)>,
    pub watch_time_rmse_s: f64,
    /// RMSE of always predicting the training mean, for scale.
    pub watch_time_rmse_baseline_s: f64,
    /// Eq. 6's factor `exp(λ·KL)` over every label the run drew for a non-impression
    /// (per item and signal). Absent in fits written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<LabelUncertainty>,
}

/// How far eq. 6's factor moved the simulated labels over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelUncertainty {
    /// Labels drawn (items × signals).
    pub labels: u64,
    /// The share whose factor lies outside [0.99, 1.01]: near 0, eq. 6 changes nothing.
    pub outside_099_101: f64,
}

fn default_sim_watch_cap_s() -> f64 {
    60.0
}

/// M's targets for a logged impression: the state's feedback vector, except that play time
/// saturates at `cap_s` seconds instead of the state's 60 s.
fn simulator_target(imp: &mmrf_data::session::Impression, cap_s: f64) -> [f32; N_AGENTS] {
    let mut y = crate::state::feedback_vector(imp);
    y[N_AGENTS - 1] = (imp.play_time_ms as f64 / (1000.0 * cap_s)).min(1.0) as f32;
    y
}

/// The feedback simulator M while training: the model, its optimizer and a no-grad copy
/// for labelling.
struct Sim {
    model: FeedbackSimulator,
    optim: burn::optim::ModuleOptimizer,
    plain: FeedbackSimulator,
    device: Device,
}

impl Sim {
    fn new(fs: &FeatureSpace, cfg: &MmrfConfig, device: &Device) -> Sim {
        let model = FeedbackSimulator::new(&fs.shape(), &cfg.sim, device);
        let plain = model.valid();
        Sim {
            model,
            optim: AdamConfig::new().init(),
            plain,
            device: device.clone(),
        }
    }

    fn refresh(&mut self) {
        self.plain = self.model.valid();
    }

    /// Seed burn's generator (the twin head's dropout) from (seed, step), so every step's
    /// masks are the same whether or not the run was interrupted and resumed.
    fn reseed(&self, seed: u64, step: usize) {
        self.device
            .seed(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    /// The states of logged requests `idx` and their shown videos.
    fn logged<'t>(
        timelines: &'t Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        idx: &[usize],
        history: usize,
    ) -> (Vec<RequestState<'t>>, Vec<Vec<u32>>) {
        let states = idx.iter().map(|&i| timelines.state(&tr.set, log, i, history)).collect();
        let shown = idx.iter().map(|&i| tr.set.shown_videos(i, log)).collect();
        (states, shown)
    }

    /// One MSE step of both heads on the shown items of logged requests `idx`.
    fn step(
        &mut self,
        fs: &FeatureSpace,
        timelines: &Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        idx: &[usize],
        cfg: &MmrfConfig,
    ) -> Result<f32, TrainError> {
        let (states, shown) = Sim::logged(timelines, tr, log, idx, cfg.history);
        let refs: Vec<&[u32]> = shown.iter().map(|s| s.as_slice()).collect();
        let (state, items) = simulator_inputs(&self.model, fs, &states, &refs, cfg.history, &self.device);
        let (b, width) = (idx.len(), items.dims()[1]);
        let mut y = vec![0f32; b * width * N_AGENTS];
        let mut mask = vec![0f32; b * width];
        for (x, &i) in idx.iter().enumerate() {
            for (k, &row) in tr.set.shown_rows(&tr.set.requests[i]).iter().take(width).enumerate() {
                let imp = mmrf_data::session::Impression::from_log(log, row as usize);
                y[(x * width + k) * N_AGENTS..(x * width + k + 1) * N_AGENTS]
                    .copy_from_slice(&simulator_target(&imp, cfg.sim_watch_cap_s));
                mask[x * width + k] = 1.0;
            }
        }
        let y = Tensor::<3>::from_data(TensorData::new(y, [b, width, N_AGENTS]), &self.device);
        let mask = Tensor::<3>::from_data(TensorData::new(mask, [b, width, 1]), &self.device);
        let ctx = self.model.context(state);
        let (r, r2) = self.model.predict(ctx, items);
        let n = mask.clone().sum().clamp_min(1.0) * N_AGENTS as f64;
        let loss = ((square(r - y.clone()) + square(r2 - y)) * mask).sum() / n;
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(cfg.sim_lr, self.model.clone(), grads);
        Ok(value)
    }

    /// Fit on up to 4,000 held-out test requests (every one of their shown impressions).
    fn fit(
        &self,
        data: &Dataset,
        fs: &FeatureSpace,
        timelines: &Timelines,
        cfg: &MmrfConfig,
        seed: u64,
    ) -> SimulatorFit {
        let test = Transitions::build_split(data, LogSplit::Test);
        let log = data.log(LogSplit::Test);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
        let mut idx: Vec<usize> = (0..test.set.requests.len()).collect();
        idx.shuffle(&mut rng);
        idx.truncate(4000);
        let device = mmrf_model::device::inference();
        let (mut preds, mut labels): (Vec<[f32; N_AGENTS]>, Vec<[f32; N_AGENTS]>) = (Vec::new(), Vec::new());
        for chunk in idx.chunks(256) {
            let (states, shown) = Sim::logged(timelines, &test, log, chunk, cfg.history);
            let refs: Vec<&[u32]> = shown.iter().map(|s| s.as_slice()).collect();
            let (state, items) = simulator_inputs(&self.plain, fs, &states, &refs, cfg.history, &device);
            let width = items.dims()[1];
            let ctx = self.plain.context(state);
            let (r, _) = self.plain.predict(ctx, items);
            let v: Vec<f32> = r.into_data().try_to_vec().unwrap_or_default();
            for (x, &i) in chunk.iter().enumerate() {
                for (k, &row) in test
                    .set
                    .shown_rows(&test.set.requests[i])
                    .iter()
                    .take(width)
                    .enumerate()
                {
                    let imp = mmrf_data::session::Impression::from_log(log, row as usize);
                    labels.push(simulator_target(&imp, cfg.sim_watch_cap_s));
                    preds.push(std::array::from_fn(|a| v[(x * width + k) * N_AGENTS + a]));
                }
            }
        }
        let auc = (0..N_AGENTS - 1)
            .map(|a| {
                let l: Vec<f32> = labels.iter().map(|x| x[a]).collect();
                let p: Vec<f32> = preds.iter().map(|x| x[a]).collect();
                (Signal::ALL[a].name().to_string(), mmrf_metrics::auc(&l, &p))
            })
            .collect();
        let w = N_AGENTS - 1;
        let n = labels.len().max(1) as f64;
        let mean = labels.iter().map(|x| x[w] as f64).sum::<f64>() / n;
        let rmse = (labels
            .iter()
            .zip(&preds)
            .map(|(l, p)| ((l[w] - p[w]) as f64).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let base = (labels.iter().map(|l| (l[w] as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        SimulatorFit {
            impressions: labels.len(),
            auc,
            watch_time_rmse_s: rmse * cfg.sim_watch_cap_s,
            watch_time_rmse_baseline_s: base * cfg.sim_watch_cap_s,
            uncertainty: None,
        }
    }

    /// Simulated rewards of `(request, items)` pairs: per item, per signal, in the agents'
    /// standardised units (Hate negated, WatchTime in seconds before scaling).
    #[allow(clippy::too_many_arguments)]
    fn label(
        &self,
        fs: &FeatureSpace,
        timelines: &Timelines,
        tr: &Transitions<'_>,
        log: &mmrf_data::LogColumns,
        pairs: &[(usize, &[u32])],
        cfg: &MmrfConfig,
        (seed, step): (u64, usize),
    ) -> (Vec<Vec<[f32; N_AGENTS]>>, f32, [u64; 2]) {
        if pairs.is_empty() {
            return (Vec::new(), f32::NAN, [0, 0]);
        }
        let device = mmrf_model::device::inference();
        let states: Vec<RequestState<'_>> = pairs
            .iter()
            .map(|(i, _)| timelines.state(&tr.set, log, *i, cfg.history))
            .collect();
        let items: Vec<&[u32]> = pairs.iter().map(|(_, v)| *v).collect();
        let (state, items) = simulator_inputs(&self.plain, fs, &states, &items, cfg.history, &device);
        let width = items.dims()[1];
        let ctx = self.plain.context(state);
        let (r, r2) = if cfg.sim_mc_dropout {
            let mask = twin_mask(&self.plain, &items.dims(), seed ^ MC_STREAM, step, &device);
            self.plain.predict_with_twin_mask(ctx, items, mask)
        } else {
            self.plain.predict(ctx, items)
        };
        let kl_items = mmrf_model::simulator::bernoulli_kl(r.clone(), r2.clone());
        let kl = kl_items.clone().mean().into_scalar::<f32>();
        // Eq. 6's factor exp(λ·KL) of each real item and signal: how many leave [0.99, 1.01].
        let factors: Vec<f32> = (kl_items * cfg.sim_lambda)
            .exp()
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let mut counts = [0u64; 2];
        for (x, (_, items)) in pairs.iter().enumerate() {
            for k in 0..items.len().min(width) {
                let at = (x * width + k) * N_AGENTS;
                for f in &factors[at..at + N_AGENTS] {
                    counts[0] += !(0.99..=1.01).contains(f) as u64;
                    counts[1] += 1;
                }
            }
        }
        let v: Vec<f32> = simulated_reward(r, r2, cfg.sim_lambda)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let labels = pairs
            .iter()
            .enumerate()
            .map(|(x, (_, items))| {
                (0..items.len().min(width))
                    .map(|k| {
                        std::array::from_fn(|a| {
                            let p = v[(x * width + k) * N_AGENTS + a];
                            let raw = match Signal::ALL[a] {
                                Signal::WatchTime => p * cfg.sim_watch_cap_s as f32,
                                Signal::Hate => -p,
                                _ => p,
                            };
                            raw * tr.item_scale[a]
                        })
                    })
                    .collect()
            })
            .collect();
        (labels, kl, counts)
    }
}

/// Mixed into the run's seed for the labelling masks' stream.
const MC_STREAM: u64 = 0x6D63_2D64_726F_706F;

/// A Monte-Carlo dropout mask for the twin head's input over items `[B, K, D]`: each
/// entry 0 with the twin's dropout probability p, else `1/(1 − p)`; drawn from (seed, step)
/// so a resumed run draws the same masks.
fn twin_mask(model: &FeedbackSimulator, dims: &[usize; 3], seed: u64, step: usize, device: &Device) -> Tensor<3> {
    let [b, k, _] = *dims;
    let w = model.input_width();
    let p = model.dropout_p();
    let keep = 1.0 / (1.0 - p) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let v: Vec<f32> = (0..b * k * w)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    Tensor::from_data(TensorData::new(v, [b, k, w]), device)
}

/// A trained run's feedback simulator, for checking what it predicts (MMRF and MMRF-CO runs).
///
/// As a [`Ranker`] it scores a candidate by M's predicted play time: how well the model
/// that labels the non-impression samples orders videos by WatchTime itself
/// (`mmrf eval --simulator`).
pub struct SimulatorScorer {
    method: String,
    model: FeedbackSimulator,
    fs: FeatureSpace,
    history: usize,
    watch_cap_s: f32,
    lambda: f64,
    /// Label with the twin's dropout on, as the run was trained.
    mc_dropout: bool,
}

impl SimulatorScorer {
    /// The simulator of the run in `dir` (an error when the run has none).
    pub fn load(dir: &Path, data: &Dataset) -> Result<SimulatorScorer, TrainError> {
        let manifest = Manifest::read(dir)?;
        let path = dir.join(SIMULATOR_FILE);
        if !path.exists() {
            return Err(TrainError::Run(format!(
                "{}: this {} run has no feedback simulator (MMRF and MMRF-CO runs have one)",
                dir.display(),
                manifest.method
            )));
        }
        let fs = FeatureSpace::from_dataset(data);
        manifest.check_shape(&fs.shape())?;
        let cfg: MmrfConfig = manifest.config()?;
        let model = run::load_module(
            || FeedbackSimulator::new(&fs.shape(), &cfg.sim, &mmrf_model::device::inference()),
            &path,
        )?;
        Ok(SimulatorScorer {
            method: format!("{}-simulator", manifest.method),
            model,
            fs,
            history: cfg.history,
            watch_cap_s: cfg.sim_watch_cap_s as f32,
            lambda: cfg.sim_lambda,
            mc_dropout: cfg.sim_mc_dropout,
        })
    }

    /// For `items[i]` in state `states[i]`: the main head's predictions (rates of click,
    /// like, follow, comment, hate and long view, then play time in seconds, which M
    /// cannot predict above its cap, `sim_watch_cap_s`) and, from the same forward pass,
    /// the labels the agents train on for non-impression samples (eq. 6): the two heads'
    /// mean discounted by their disagreement, `mean(r, r')·exp(λ·KL)`, on the same scale.
    #[allow(clippy::type_complexity)]
    pub fn predict_and_label(
        &self,
        states: &[RequestState<'_>],
        items: &[&[u32]],
    ) -> (Vec<Vec<[f32; N_AGENTS]>>, Vec<Vec<[f32; N_AGENTS]>>) {
        let device = mmrf_model::device::inference();
        let (batch, it) = simulator_inputs(&self.model, &self.fs, states, items, self.history, &device);
        let width = it.dims()[1];
        let ctx = self.model.context(batch);
        let (r, r2) = if self.mc_dropout {
            let mask = twin_mask(&self.model, &it.dims(), MC_STREAM, 0, &device);
            self.model.predict_with_twin_mask(ctx, it, mask)
        } else {
            self.model.predict(ctx, it)
        };
        let label = simulated_reward(r.clone(), r2, self.lambda);
        let unpack = |t: Tensor<3>| -> Vec<Vec<[f32; N_AGENTS]>> {
            let v: Vec<f32> = t.into_data().try_to_vec().unwrap_or_default();
            items
                .iter()
                .enumerate()
                .map(|(x, its)| {
                    (0..its.len().min(width))
                        .map(|k| {
                            let mut r: [f32; N_AGENTS] = std::array::from_fn(|a| v[(x * width + k) * N_AGENTS + a]);
                            r[N_AGENTS - 1] *= self.watch_cap_s;
                            r
                        })
                        .collect()
                })
                .collect()
        };
        (unpack(r), unpack(label))
    }
}

impl Ranker for SimulatorScorer {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        crate::ranker::score_one(self, state, candidates, scores)
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let (predicted, _) = self.predict_and_label(states, candidates);
        for (out, items) in scores.iter_mut().zip(predicted) {
            out.clear();
            out.extend(items.iter().map(|r| r[N_AGENTS - 1]));
        }
    }
}

/// Load an MMRF run.
pub fn load(dir: &Path, manifest: &Manifest, fs: &FeatureSpace) -> Result<MmrfRanker, TrainError> {
    let cfg: MmrfConfig = manifest.config()?;
    let device = mmrf_model::device::inference();
    let net = run::load_module(
        || MmrfNet::new(&fs.shape(), &cfg.net, &device),
        &dir.join(run::WEIGHTS_FILE),
    )?;
    let mut ranker = MmrfRanker::new(&manifest.method, net, fs.clone(), cfg.history, cfg.net.candidates);
    // The simulator's fit, when the run has one, says how much eq. 6 moved its labels.
    let fit_path = dir.join(SIMULATOR_FIT_FILE);
    if fit_path.exists() {
        let text = std::fs::read_to_string(&fit_path).map_err(|e| TrainError::io(&fit_path, e))?;
        let fit: SimulatorFit =
            serde_json::from_str(&text).map_err(|e| TrainError::Run(format!("{}: {e}", fit_path.display())))?;
        ranker.uncertainty = fit.uncertainty;
    }
    Ok(ranker)
}

/// A trained MMRF as a [`Ranker`]: the main (WatchTime) agent's action for the state,
/// scored against every candidate's embedding.
pub struct MmrfRanker {
    method: String,
    net: MmrfNet,
    /// `[n_videos + 1, D]`: every item's embedding and a zero row for padding.
    table: Tensor<2>,
    items: Vec<f32>,
    fs: FeatureSpace,
    history: usize,
    candidates: usize,
    dim: usize,
    /// How much eq. 6 moved the run's simulated labels (runs with a simulator).
    uncertainty: Option<LabelUncertainty>,
}

impl MmrfRanker {
    pub fn new(method: &str, net: MmrfNet, fs: FeatureSpace, history: usize, candidates: usize) -> Self {
        let device = mmrf_model::device::inference();
        let items = item_table(&net, &fs);
        let n = fs.n_videos();
        let dim = items.len() / n.max(1);
        let mut padded = items.clone();
        padded.extend(std::iter::repeat_n(0.0, dim));
        let table = Tensor::from_data(TensorData::new(padded, [n + 1, dim]), &device);
        MmrfRanker {
            method: method.to_string(),
            net,
            table,
            items,
            fs,
            history,
            candidates,
            dim,
            uncertainty: None,
        }
    }

    /// States `[B, S]`; `candidates[i]` are state `i`'s (read when the network reads them).
    fn encode(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Tensor<2> {
        assert_eq!(states.len(), candidates.len(), "one candidate list per state");
        let device = mmrf_model::device::inference();
        let mut inputs = StateInputs::with_candidates(self.history, self.candidates);
        for (s, c) in states.iter().zip(candidates) {
            inputs.push(&self.fs, s);
            inputs.push_candidates(c);
        }
        let n = self.fs.n_videos() as i64;
        let batch = inputs.to_batch(self.fs.users.dim, self.table.clone(), |v| v as i64, n, &device);
        self.net.state.forward(batch)
    }

    /// The main agent's actions `[B × D]` for states and their candidates.
    pub fn actions(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Vec<f32> {
        let s = self.encode(states, candidates);
        self.net
            .agents
            .main_action(s)
            .into_data()
            .try_to_vec()
            .unwrap_or_default()
    }

    /// `out[j] = ⟨a, e_{candidates[j]}⟩`.
    fn dot(&self, a: &[f32], candidates: &[u32], out: &mut [f32]) {
        let d = self.dim;
        for (s, &c) in out.iter_mut().zip(candidates) {
            let e = &self.items[c as usize * d..(c as usize + 1) * d];
            *s = a.iter().zip(e).map(|(x, y)| x * y).sum::<f32>();
        }
    }
}

impl Ranker for MmrfRanker {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        let a = self.actions(std::slice::from_ref(state), &[candidates]);
        self.dot(&a, candidates, scores);
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let a = self.actions(states, candidates);
        let d = self.dim;
        for (i, (cands, out)) in candidates.iter().zip(scores.iter_mut()).enumerate() {
            out.resize(cands.len(), 0.0);
            self.dot(&a[i * d..(i + 1) * d], cands, out);
        }
    }

    /// The cosine of the main action to `W_N(s)/|W_N(s)|`, its critic's best unit action,
    /// for the linear critic (the score-list critic has no closed-form best action). Training logs it on its own batches
    /// (`main_actor_alignment`); this reads it on any states, held-out or online.
    fn critic_alignment(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Option<Vec<f32>> {
        if self.net.critics.form() != CriticForm::Linear {
            return None;
        }
        let s = self.encode(states, candidates);
        let a = self.net.agents.main_action(s.clone());
        let w = self.net.critics.action_gradients(s);
        let [n, b, d] = w.dims();
        let best = mmrf_model::mmrf::unit(w.slice([n - 1..n, 0..b, 0..d]).reshape([b, d]));
        (a * best).sum_dim(1).reshape([b]).into_data().try_to_vec().ok()
    }

    fn label_uncertainty(&self) -> Option<LabelUncertainty> {
        self.uncertainty
    }

    /// The main actor's ranking with its partners' actions and views taken from the next
    /// state of the batch (cyclically), against its own, as the share of candidate pairs
    /// ordered alike.
    fn collaboration_sensitivity(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Option<Vec<f32>> {
        let agents = &self.net.agents;
        let b = states.len();
        if !agents.talks() || b < 2 {
            return None;
        }
        let device = mmrf_model::device::inference();
        let s = self.encode(states, candidates);
        let h = agents.embeddings(s);
        let e = agents.collaborate(h.clone());
        let a = agents.actions(h.clone(), e.clone(), 1.0);
        let [n, _, d] = a.dims();
        let hd = h.dims()[2];
        let own = a.clone().slice([n - 1..n, 0..b, 0..d]).reshape([b, d]);
        let shift: Vec<i64> = (0..b).map(|i| ((i + 1) % b) as i64).collect();
        let shift = Tensor::<1, Int>::from_data(TensorData::new(shift, [b]), &device);
        let h_main = h.slice([0..b, n - 1..n, 0..hd]).reshape([b, hd]);
        let other = agents.main_from(
            h_main,
            e.select(0, shift.clone()),
            a.slice([0..n - 1, 0..b, 0..d]).select(1, shift),
        );
        let (own, other): (Vec<f32>, Vec<f32>) =
            (own.into_data().try_to_vec().ok()?, other.into_data().try_to_vec().ok()?);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        Some(
            (0..b)
                .map(|i| {
                    x.resize(candidates[i].len(), 0.0);
                    y.resize(candidates[i].len(), 0.0);
                    self.dot(&own[i * d..(i + 1) * d], candidates[i], &mut x);
                    self.dot(&other[i * d..(i + 1) * d], candidates[i], &mut y);
                    crate::ranker::pair_agreement(&x, &y)
                })
                .collect(),
        )
    }

    /// Every agent's action scored against the candidates (the last agent's scores are
    /// the ranking scores).
    fn agent_scores(&self, state: &RequestState<'_>, candidates: &[u32]) -> Option<Vec<Vec<f32>>> {
        let s = self.encode(std::slice::from_ref(state), &[candidates]);
        let h = self.net.agents.embeddings(s);
        let e = self.net.agents.collaborate(h.clone());
        let a: Vec<f32> = self.net.agents.actions(h, e, 1.0).into_data().try_to_vec().ok()?; // [N, 1, D]
        let d = self.dim;
        let scores = (0..N_AGENTS)
            .map(|i| {
                let mut out = vec![0.0; candidates.len()];
                self.dot(&a[i * d..(i + 1) * d], candidates, &mut out);
                out
            })
            .collect();
        Some(scores)
    }
}

/// The simulator's inputs for states and their items: the state batch and the items'
/// embeddings `[B, K, D]`, `K` the most items of any state (padding rows zero), from `m`'s
/// own item encoder. Shared by training, labelling, the fit report and [`SimulatorScorer`].
fn simulator_inputs(
    m: &FeedbackSimulator,
    fs: &FeatureSpace,
    states: &[RequestState<'_>],
    items: &[&[u32]],
    history: usize,
    device: &Device,
) -> (mmrf_model::mmrf::StateBatch, Tensor<3>) {
    let mut s_in = StateInputs::new(history);
    let mut videos: Vec<u32> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    let mut add = |v: u32, videos: &mut Vec<u32>| {
        *slot.entry(v).or_insert_with(|| {
            videos.push(v);
            videos.len() as i64 - 1
        })
    };
    for (state, its) in states.iter().zip(items) {
        s_in.push(fs, state);
        its.iter().for_each(|&v| {
            add(v, &mut videos);
        });
    }
    for &v in &s_in.videos {
        if v != PAD {
            add(v, &mut videos);
        }
    }
    let row: std::collections::HashMap<u32, i64> = videos.iter().enumerate().map(|(i, &v)| (v, i as i64)).collect();
    let m_n = videos.len();
    let e = m.items().forward(video_batch(fs, &videos, device));
    let d = e.dims()[1];
    let e_pad = Tensor::cat(vec![e, Tensor::zeros([1, d], device)], 0);
    let state = s_in.to_batch(fs.users.dim, e_pad.clone(), |v| row[&v], m_n as i64, device);
    let (b, width) = (states.len(), items.iter().map(|i| i.len()).max().unwrap_or(0).max(1));
    let mut idx = vec![m_n as i64; b * width];
    for (x, its) in items.iter().enumerate() {
        for (k, v) in its.iter().enumerate() {
            idx[x * width + k] = row[v];
        }
    }
    let items = e_pad
        .select(0, Tensor::from_data(TensorData::new(idx, [b * width]), device))
        .reshape([b, width, d]);
    (state, items)
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
    fn the_simulator_target_saturates_play_time_at_its_own_cap() {
        let imp = mmrf_data::session::Impression {
            video: 3,
            click: true,
            like: false,
            follow: false,
            comment: true,
            hate: false,
            long_view: true,
            play_time_ms: 90_000,
            duration_ms: 120_000,
        };
        let state = crate::state::feedback_vector(&imp);
        // The state's feedback vector saturates at 60 s; M's target at its cap.
        assert_eq!(state[N_AGENTS - 1], 1.0);
        let y = simulator_target(&imp, 180.0);
        assert_eq!(&y[..N_AGENTS - 1], &state[..N_AGENTS - 1]);
        assert!((y[N_AGENTS - 1] - 0.5).abs() < 1e-6, "{y:?}");
        assert_eq!(simulator_target(&imp, 60.0), state);
        assert_eq!(simulator_target(&imp, 30.0)[N_AGENTS - 1], 1.0);
    }

    #[test]
    fn runs_from_before_a_setting_existed_read_as_what_they_were_trained_with() {
        let mut v = serde_json::to_value(MmrfConfig::default()).unwrap();
        let m = v.as_object_mut().unwrap();
        assert!(m.remove("watch_time_huber").is_some() && m.remove("sim_watch_cap_s").is_some());
        let old: MmrfConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.watch_time_huber, 0.0, "squared error");
        assert_eq!(old.sim_watch_cap_s, 60.0);
    }
}
