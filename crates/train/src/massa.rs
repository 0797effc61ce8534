//! **MASSA**: multi-agent actor-critic with a signal network between the critics and no
//! communication between the actors (He et al., RecSys 2020; paper §3.1.3, baseline 6).
//!
//! Seven agents, one per signal, as in MMRF; each actor ascends its own critic (the main,
//! WatchTime actor with weight 1, the auxiliary ones with weight β). The difference from
//! MMRF is where information flows: MMRF's actors attend to each other and the main actor
//! reads the auxiliary actions; MASSA's actors are independent, and the critics exchange
//! messages instead, mixed per state by a signal network
//! ([`mmrf_model::mmrf::Critics`] with `critic_signal`).
//!
//! Choices the paper leaves open, and ours: messages are one shared linear map of each
//! critic's hidden layer; the signal network is a softmax over senders computed from the
//! state; the mix is added to the receiving critic's hidden layer before its heads. It
//! learns from logged impressions only (no simulator).

use crate::actor_critic::ActorCriticConfig;

/// MASSA's configuration: independent actors, signalled critics, logged data only.
pub fn config() -> ActorCriticConfig {
    let mut c = ActorCriticConfig::baseline();
    c.net.critic_signal = true;
    c
}
