//! **TSCAC**: two-stage constrained actor-critic (Cai et al., WWW 2023; paper §3.1.3,
//! baseline 5, and the alternative arm of the online test).
//!
//! - **Stage 1** (the first `tscac_stage1` share of the updates): one policy per auxiliary
//!   signal. Auxiliary actor `k` ascends its own critic `Q_k(s, a^k)`; the main actor waits.
//! - **Stage 2**: the auxiliary policies are frozen and the WatchTime policy ascends
//!   `Q_N(s, a^N)` under soft constraints that keep it close to each of them:
//!   `max Q_N(s, a^N) − λ Σ_k (1 − ⟨a^N, a^k⟩)`.
//!
//! Choices the paper leaves open, and ours:
//! - The paper's constraint is a KL divergence between stochastic policies; our actions are
//!   unit vectors, so the distance is the cosine distance `1 − ⟨a^N, a^k⟩`, and the
//!   Lagrange multipliers are one fixed `λ = tscac_lambda` for every constraint (the
//!   paper treats them as hyper-parameters too).
//! - Every critic is trained throughout by the shared TD update, each on its own actor's
//!   next action; all seven share the state encoder.
//! - The actors do not communicate (the main actor does not read the auxiliary actions),
//!   and it learns from logged impressions only (no simulator).

use burn::prelude::*;
use mmrf_model::mmrf::{Collaboration, N_AGENTS};

use crate::mmrf::{Augment, MmrfConfig, Objective};

/// TSCAC's configuration: two stages, independent actors, logged data only.
pub fn config() -> MmrfConfig {
    let mut c = MmrfConfig::default();
    c.net.collaboration = Collaboration::None;
    c.augment = Augment::None;
    c.objective = Objective::Tscac;
    c
}

/// Which stage update `step` of `steps` is in (1 or 2).
pub fn stage(step: usize, steps: usize, stage1: f64) -> u8 {
    if (step as f64) < stage1 * steps as f64 {
        1
    } else {
        2
    }
}

/// The actors' loss from the actions `a` `[N, B, D]` and each agent's critic at its own
/// action `q` `[N, B]`.
pub fn actor_loss(a: Tensor<3>, q: Tensor<2>, stage: u8, lambda: f64) -> Tensor<1> {
    let [n, b, d] = a.dims();
    if stage == 1 {
        return q.slice([0..n - 1, 0..b]).mean().neg();
    }
    let main = a.clone().slice([n - 1..n, 0..b, 0..d]); // [1, B, D]
    let aux = a.slice([0..n - 1, 0..b, 0..d]).detach(); // [N-1, B, D]
    let distance = (main.repeat_dim(0, N_AGENTS - 1) * aux)
        .sum_dim(2)
        .neg()
        .add_scalar(1.0); // [N-1, B, 1]
    let q_main = q.slice([n - 1..n, 0..b]).reshape([b]);
    (q_main - distance.sum_dim(0).reshape([b]) * lambda).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_split_the_updates() {
        assert_eq!(stage(0, 100, 0.5), 1);
        assert_eq!(stage(49, 100, 0.5), 1);
        assert_eq!(stage(50, 100, 0.5), 2);
        assert_eq!(stage(0, 100, 0.0), 2);
    }

    #[test]
    fn stage_one_moves_only_the_auxiliary_actions_and_stage_two_only_the_main_one() {
        // burn's generator is process-wide: seed it and hold it while drawing.
        let _seeded = mmrf_model::device::seeded(3);
        let device = Device::flex().autodiff();
        let grads_of = |stage: u8| -> (f32, f32) {
            let a = Tensor::<3>::random([N_AGENTS, 3, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            // A critic that prefers some direction per agent: q = Σ_d a·c.
            let c = Tensor::<3>::random([N_AGENTS, 3, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let q = (a.clone() * c).sum_dim(2).reshape([N_AGENTS, 3]);
            let loss = actor_loss(a.clone(), q, stage, 0.3);
            let g = a.grad(&loss.backward()).expect("a gradient");
            let g = g.abs();
            let aux: f32 = g.clone().slice([0..N_AGENTS - 1, 0..3, 0..4]).sum().into_scalar();
            let main: f32 = g.slice([N_AGENTS - 1..N_AGENTS, 0..3, 0..4]).sum().into_scalar();
            (aux, main)
        };
        let (aux, main) = grads_of(1);
        assert!(aux > 0.0 && main == 0.0, "stage 1: aux {aux}, main {main}");
        let (aux, main) = grads_of(2);
        assert!(aux == 0.0 && main > 0.0, "stage 2: aux {aux}, main {main}");
    }

    #[test]
    fn stage_two_pulls_the_main_action_toward_the_auxiliary_ones() {
        let device = Device::flex();
        let d = 2;
        // Auxiliary actions all (1, 0); main (0, 1); no value from Q.
        let mut v = Vec::new();
        for _ in 0..N_AGENTS - 1 {
            v.extend([1.0f32, 0.0]);
        }
        v.extend([0.0f32, 1.0]);
        let a = Tensor::<3>::from_data(TensorData::new(v, [N_AGENTS, 1, d]), &device);
        let q = Tensor::<2>::zeros([N_AGENTS, 1], &device);
        let loss: f32 = actor_loss(a.clone(), q.clone(), 2, 0.5).into_scalar();
        // Six constraints at distance 1, λ = 0.5.
        assert!((loss - 3.0).abs() < 1e-5, "{loss}");
        // Stage 1 ignores the main action entirely.
        let loss1: f32 = actor_loss(a, q, 1, 0.5).into_scalar();
        assert_eq!(loss1, 0.0);
    }
}
