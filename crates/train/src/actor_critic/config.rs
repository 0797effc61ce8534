//! The trainer's settings: one struct for MMRF, its ablations and the actor-critic
//! baselines, each method a configuration of it (`[config]` of `run.toml`).

use mmrf_model::mmrf::{Collaboration, CriticForm, MmrfNetConfig, N_AGENTS};
use mmrf_model::simulator::SimulatorNetConfig;
use serde::{Deserialize, Serialize};

use crate::settings::Validate;
use crate::TrainError;

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

/// The actor-critic trainer's settings (`[config]` of `run.toml`; `--set key=value` overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorCriticConfig {
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
    /// The next state of a non-impression sample: its logged request's next one
    /// (`logged`), or Algorithm 1's `s_t ∪ Ĩ_k` (`simulated`): the request's own state with
    /// the sampled items and their simulated feedback appended to the history, one request
    /// further into the session. Needs the simulator's labels and the policy's bootstrap.
    /// `logged` by `mmrf tune --grid next_state=logged,simulated` on worlds 7–9: online
    /// WatchTime over LTR −0.1 % against −1.6 %, ahead on each world (`docs/mmrf.md`).
    #[serde(default)]
    pub next_state: NextState,
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

/// Where a non-impression sample's session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NextState {
    /// The logged request's next state: the sample's items share the continuation of the
    /// shown items of their request.
    #[default]
    Logged,
    /// Algorithm 1's `s_t ∪ Ĩ_k`: the request's state extended by the sampled items with
    /// feedback drawn from the simulator's labels.
    Simulated,
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

impl Default for ActorCriticConfig {
    fn default() -> Self {
        ActorCriticConfig {
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
            next_state: NextState::Logged,
        }
    }
}

impl ActorCriticConfig {
    /// What the actor-critic baselines (Pareto, TSCAC, MASSA) share: actors that do not
    /// communicate, logged impressions only (no simulator), and the linear critic and the
    /// discount their own settings were chosen with (`docs/baselines.md`).
    pub fn baseline() -> ActorCriticConfig {
        ActorCriticConfig {
            net: MmrfNetConfig {
                collaboration: Collaboration::None,
                critic: CriticForm::Linear,
                ..MmrfNetConfig::default()
            },
            gamma: 0.5,
            augment: Augment::None,
            ..ActorCriticConfig::default()
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
    pub fn is_last(&self, step: usize) -> bool {
        step + 1 == self.updates()
    }
}

impl Validate for ActorCriticConfig {
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
        if self.next_state == NextState::Simulated {
            if self.augment != Augment::Simulator {
                return Err(TrainError::Setting(
                    "`next_state` = \"simulated\" extends the history with the simulator's feedback: it needs \
                     `augment` = \"simulator\""
                        .into(),
                ));
            }
            if self.bootstrap != Bootstrap::Policy {
                return Err(TrainError::Setting(
                    "`next_state` = \"simulated\" has no logged next slate to bootstrap from: it needs \
                     `bootstrap` = \"policy\""
                        .into(),
                ));
            }
        }
        finite("negative_reward", self.negative_reward)?;
        finite("sim_lambda", self.sim_lambda)
    }
}

fn default_sim_watch_cap_s() -> f64 {
    60.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_before_a_setting_existed_read_as_what_they_were_trained_with() {
        let mut v = serde_json::to_value(ActorCriticConfig::default()).unwrap();
        let m = v.as_object_mut().unwrap();
        assert!(m.remove("watch_time_huber").is_some() && m.remove("sim_watch_cap_s").is_some());
        let old: ActorCriticConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.watch_time_huber, 0.0, "squared error");
        assert_eq!(old.sim_watch_cap_s, 60.0);
    }
}
