//! What the actors ascend: the one place where the methods that share the trainer differ
//! in their update. MMRF's eq. 4 ([`crate::mmrf::OwnCritic`]), Pareto's scalarisation and
//! TSCAC's constrained stages implement [`ActorObjective`]; the trainer hands each the
//! same [`ActorInputs`] and adds the shared terms (the pull toward the logged behaviour).

use burn::prelude::*;
use mmrf_model::mmrf::Critics;

use super::config::ActorCriticConfig;

/// What the actors' phase of an update gives an objective, on a batch of `B` states.
pub struct ActorInputs {
    /// Every agent's action `[N, B, D]`, with the gradient path to the actors (and, through
    /// the auxiliary actions, the main actor's path to its partners).
    pub actions: Tensor<3>,
    /// The states `[B, S]`, detached: the actors' phase does not train the encoders.
    pub states: Tensor<2>,
    /// The critics, frozen: the gradient passes through them to the actions only.
    pub critics: Critics,
    /// With the score-list critic, each agent's value of its own action `[N, B]`, already
    /// computed with the behaviour pull.
    pub listed: Option<Tensor<2>>,
}

impl ActorInputs {
    /// Each agent's value of its own action, `Q_i(s, a^i)`: `[N, B]`.
    pub fn values(&self) -> Tensor<2> {
        self.listed
            .clone()
            .unwrap_or_else(|| self.critics.q(self.states.clone(), self.actions.clone()))
    }

    /// The main (last) agent's action `[B, D]`.
    pub fn main_action(&self) -> Tensor<2> {
        let [n, b, d] = self.actions.dims();
        self.actions.clone().slice([n - 1..n, 0..b, 0..d]).reshape([b, d])
    }
}

/// What an objective reports of an update beside its loss (written to `train_log.jsonl`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectiveReport {
    /// Pareto's scalarisation weights.
    pub scalarisation: Option<Vec<f64>>,
    /// TSCAC's stage-2 mean distance of the main action to each auxiliary one.
    pub distances: Option<Vec<f64>>,
    /// TSCAC's Lagrange multipliers after the update's dual step.
    pub multipliers: Option<Vec<f64>>,
}

/// One method's actor loss. Objectives may carry state across updates (TSCAC's
/// multipliers); [`ActorObjective::state`] and [`ActorObjective::restore`] put it in the
/// checkpoint, so a resumed run continues it.
pub trait ActorObjective: Send {
    /// The loss the actors descend at update `step`, and what to log of it.
    fn loss(&mut self, inputs: &ActorInputs, cfg: &ActorCriticConfig, step: usize) -> (Tensor<1>, ObjectiveReport);

    /// Whether one policy serves every signal: each critic's next-state value is then
    /// taken at the main actor's next action (Pareto).
    fn one_policy(&self) -> bool {
        false
    }

    /// The state carried across updates, for the checkpoint.
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }

    /// Continue from a checkpoint's state (as [`ActorObjective::state`] wrote it). An
    /// objective without state has nothing to restore.
    fn restore(&mut self, _state: &[f64]) -> Result<(), String> {
        Ok(())
    }
}

/// Builds a run's objective from its settings (a resumed run reads them from its
/// checkpoint); the crate's method registry supplies it ([`crate::objective`]).
pub type ObjectiveOf = fn(&ActorCriticConfig) -> Box<dyn ActorObjective>;
