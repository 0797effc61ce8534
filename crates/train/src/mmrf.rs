//! **MMRF** (paper §2, Algorithm 1) and its ablations, on the shared
//! [`actor_critic`](crate::actor_critic) trainer.
//!
//! Seven agents, one per feedback signal, each an actor and a critic. The actors attend to
//! each other (eq. 2–3) and the main, WatchTime actor reads its partners' actions; the
//! critics learn from the logged impressions and from never-shown candidates labelled by
//! the feedback simulator (eq. 5–6). The actors ascend eq. 4 ([`OwnCritic`]): the main
//! actor `Q_N(s, a^N)`, whose gradient reaches every auxiliary actor through `a^{1..N-1}`
//! with weight α; each auxiliary actor also its own `Q_i(s, a^i)`, with weight β.
//!
//! The ablations are configurations ([`config`]): MMRF-CO swaps attention for
//! concatenation, MMRF-DA drops the non-impression samples, MMRF-NS labels them with a
//! constant negative reward instead of the simulator.

use burn::prelude::*;
use mmrf_model::mmrf::{Collaboration, N_AGENTS};

use crate::actor_critic::{ActorCriticConfig, ActorInputs, ActorObjective, Augment, ObjectiveReport};

/// The configuration of `mmrf` or one of its ablations (`mmrf-co`, `mmrf-da`,
/// `mmrf-ns`); any other name gets MMRF's.
pub fn config(method: &str) -> ActorCriticConfig {
    let mut c = ActorCriticConfig::default();
    match method {
        "mmrf-co" => c.net.collaboration = Collaboration::Concat,
        "mmrf-da" => c.augment = Augment::None,
        "mmrf-ns" => c.augment = Augment::Negative,
        _ => {}
    }
    c
}

/// Eq. 4: each agent ascends its own critic, the main (WatchTime) agent with weight 1 and
/// the auxiliary ones with weight β. MMRF, its ablations and MASSA.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnCritic;

impl ActorObjective for OwnCritic {
    fn loss(&mut self, inputs: &ActorInputs, cfg: &ActorCriticConfig, _step: usize) -> (Tensor<1>, ObjectiveReport) {
        let q = inputs.values(); // [N, B]
        let weights: Vec<f32> = (0..N_AGENTS)
            .map(|i| if i == N_AGENTS - 1 { 1.0 } else { cfg.beta as f32 })
            .collect();
        let w = Tensor::<2>::from_data(TensorData::new(weights, [N_AGENTS, 1]), &q.device());
        ((q * w).mean().neg(), ObjectiveReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmrf_model::mmrf::{MmrfNet, MmrfNetConfig};

    #[test]
    fn each_agent_ascends_its_own_value_the_auxiliary_ones_weighted_by_beta() {
        let device = mmrf_model::device::inference();
        let _seeded = mmrf_model::device::seeded(5);
        let shape = mmrf_model::FeatureShape {
            n_users: 5,
            user_dim: 3,
            n_videos: 10,
            video_dim: 4,
            n_authors: 3,
            n_tags: 3,
        };
        let cfg = ActorCriticConfig {
            net: MmrfNetConfig {
                critic: mmrf_model::mmrf::CriticForm::Linear,
                ..MmrfNetConfig::default()
            },
            beta: 0.5,
            ..ActorCriticConfig::default()
        };
        let net = MmrfNet::new(&shape, &cfg.net, &device);
        let (b, d) = (4, cfg.net.dim);
        let states = Tensor::<2>::random(
            [b, cfg.net.state],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let actions = Tensor::<3>::random([N_AGENTS, b, d], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let inputs = ActorInputs {
            actions,
            states,
            critics: net.critics,
            listed: None,
        };
        let q: Vec<f32> = inputs.values().into_data().try_to_vec().unwrap();
        let (loss, report) = OwnCritic.loss(&inputs, &cfg, 0);
        let expected: f32 = (0..N_AGENTS)
            .map(|i| {
                let w = if i == N_AGENTS - 1 { 1.0 } else { 0.5 };
                q[i * b..(i + 1) * b].iter().sum::<f32>() * w
            })
            .sum::<f32>()
            / (N_AGENTS * b) as f32;
        let loss = loss.into_scalar::<f32>();
        assert!((loss + expected).abs() < 1e-5, "{loss} against {}", -expected);
        assert_eq!(report, ObjectiveReport::default());
    }

    #[test]
    fn the_ablations_differ_from_mmrf_in_one_setting_each() {
        let base = config("mmrf");
        assert_eq!(base, ActorCriticConfig::default());
        assert_eq!(config("mmrf-co").net.collaboration, Collaboration::Concat);
        assert_eq!(config("mmrf-da").augment, Augment::None);
        assert_eq!(config("mmrf-ns").augment, Augment::Negative);
        for m in ["mmrf-co", "mmrf-da", "mmrf-ns"] {
            let c = config(m);
            let differing = [c.net != base.net, c.augment != base.augment];
            assert_eq!(differing.iter().filter(|x| **x).count(), 1, "{m}");
        }
    }
}
