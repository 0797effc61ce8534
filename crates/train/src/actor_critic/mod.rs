//! The actor-critic trainer that MMRF, its ablations and the actor-critic baselines
//! (Pareto, TSCAC, MASSA) share: the same encoders, transitions, critics' TD update and
//! target networks, with each method's actor loss an [`ActorObjective`] of its own module.
//!
//! One transition per logged request: the state before it, the logged action (the unit
//! mean of the shown items' embeddings), the per-signal rewards summed over the shown
//! items (WatchTime in seconds; Hate negated, it is a cost; each signal divided by its
//! standard deviation over training requests so the seven critics learn on one scale — a
//! per-signal constant that changes no agent's optimum) and the next request of the
//! session (discount γ) or the session's end.
//!
//! Each update ([`Trainer::step`]):
//! 1. **Batch** ([`buffer`]): logged requests in shuffled epoch order, and non-impression
//!    samples (Algorithm 1's D^M): for a share of the requests, candidates the logger did
//!    not show, picked by a random action (top-K of `⟨a_rand, e_j⟩`) and labelled by the
//!    feedback simulator ([`simulator`], eq. 6) or a constant negative reward.
//! 2. **Critics** (with the encoders): TD error against target networks,
//!    `y_i = r_i + γ Q'_i(s', π'_i(s'))`, plus the reward heads' per-item regression;
//!    squared errors, Huber's for WatchTime, the one unbounded, heavy-tailed reward.
//! 3. **Actors**: the method's [`ActorObjective`] on every agent's action, plus, with the
//!    score-list critic, a pull toward the logged behaviour.
//! 4. **Soft update** of the target networks, `θ' ← (1 − τ)θ' + τθ`.
//!
//! A sample's next state is, by default, its logged request's next one (and ends where that
//! session ends): the log says how the session went on after the shown items, nothing says
//! how it would have after the others, so a sample's items get the same continuation as
//! the shown items of their request and differ from them by their labels alone. With
//! `next_state = "simulated"` it is Algorithm 1's `s_t ∪ Ĩ_k` instead: the history extended
//! by the sampled items and feedback drawn from their simulated labels
//! ([`buffer::simulated_history`]).
//!
//! The files, in the order an update reads them: [`config`] (settings), [`buffer`]
//! (transitions and batches), [`simulator`] (M), [`objective`] (the methods' seam),
//! `trainer` ([`Trainer`], [`train`]), `checkpoint` (resume), `policy` ([`ActorRanker`],
//! a trained run as a ranker) and `flops` ([`update_flops`], the update's cost).

pub mod buffer;
mod checkpoint;
pub mod config;
mod flops;
pub mod objective;
mod policy;
pub mod simulator;
mod trainer;

pub use checkpoint::{check_resume, CHECKPOINT_DIR};
pub use config::{ActorCriticConfig, Augment, Bootstrap, LeaveCredit, NextState, Objective};
pub use flops::update_flops;
pub use objective::{ActorInputs, ActorObjective, ObjectiveOf, ObjectiveReport};
pub use policy::{load, ActorRanker, RankBy};
pub use simulator::{SimulatorFit, SimulatorScorer, SIMULATOR_FILE, SIMULATOR_FIT_FILE};
pub use trainer::{train, Phases, StepStats, Trainer};
