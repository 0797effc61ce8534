//! **TSCAC**: two-stage constrained actor-critic (Cai et al., WWW 2023; paper §3.1.3,
//! baseline 5, and the alternative arm of the online test).
//!
//! - **Stage 1** (`steps` updates): one policy per auxiliary signal. Auxiliary actor `k`
//!   ascends its own critic `Q_k(s, a^k)`; the main actor waits.
//! - **Stage 2** (another `steps` updates): the auxiliary policies are frozen and the
//!   WatchTime policy solves TSCAC's constrained problem
//!   `max E[Q_N(s, a^N)]  s.t.  E[d(a^N, a^k)] ≤ ε  for every auxiliary k`,
//!   by its Lagrangian `E[Q_N] − Σ_k λ_k (E[d_k] − ε)`: the actor descends on the policy
//!   and each multiplier ascends on its constraint's violation,
//!   `λ_k ← max(0, λ_k + η·(mean d_k − ε))` (primal-dual gradient, as in RCPO, Tessler et
//!   al. 2019). A violated bound raises its multiplier until the policy is pulled back
//!   inside; a slack one lets it decay to zero.
//!
//! Both stages run the full update budget with MMRF's learning-rate schedule, restarted
//! at the stage boundary, so TSCAC trains for `2 × steps` updates.
//!
//! Choices the paper leaves open, and ours:
//! - The paper's constraint is a KL divergence between stochastic policies, with a
//!   closed-form solution for its discrete action. Our actions are unit vectors, so the
//!   distance is the cosine distance `d(a, b) = 1 − ⟨a, b⟩` (0: the same ranking
//!   direction; 1: orthogonal; 2: the reverse) and the problem is solved by its Lagrangian.
//! - One bound `ε = tscac_bound` for every constraint, and the multipliers' step size
//!   `η = tscac_dual_lr`; both are settings, chosen on the tuning worlds.
//! - Every critic is trained throughout by the shared TD update, each on its own actor's
//!   next action; all seven share the state encoder.
//! - The actors do not communicate (the main actor does not read the auxiliary actions),
//!   and it learns from logged impressions only (no simulator).

use burn::prelude::*;
use mmrf_model::mmrf::N_AGENTS;

use crate::actor_critic::{ActorCriticConfig, ActorInputs, ActorObjective, Objective, ObjectiveReport};

/// TSCAC's configuration: two stages, independent actors, logged data only.
pub fn config() -> ActorCriticConfig {
    ActorCriticConfig {
        objective: Objective::Tscac,
        ..ActorCriticConfig::baseline()
    }
}

/// TSCAC's objective, with its Lagrange multipliers (one per auxiliary constraint), which
/// ascend on the constraints' violations in stage 2 and are checkpointed with the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoStage {
    multipliers: Vec<f64>,
}

impl Default for TwoStage {
    fn default() -> Self {
        TwoStage {
            multipliers: initial_multipliers(),
        }
    }
}

impl ActorObjective for TwoStage {
    fn loss(&mut self, inputs: &ActorInputs, cfg: &ActorCriticConfig, step: usize) -> (Tensor<1>, ObjectiveReport) {
        let stage = stage(step, cfg.steps);
        let (loss, d) = actor_loss(inputs.actions.clone(), inputs.values(), stage, &self.multipliers);
        let mut report = ObjectiveReport::default();
        if stage == 2 {
            // The multipliers step on the violation before this update (primal-dual).
            dual_step(&mut self.multipliers, &d, cfg.tscac_bound, cfg.tscac_dual_lr);
            report.distances = Some(d);
            report.multipliers = Some(self.multipliers.clone());
        }
        (loss, report)
    }

    fn state(&self) -> Vec<f64> {
        self.multipliers.clone()
    }

    fn restore(&mut self, state: &[f64]) -> Result<(), String> {
        if state.len() != self.multipliers.len() {
            return Err(format!(
                "{} values, one per auxiliary agent ({}) expected",
                state.len(),
                self.multipliers.len()
            ));
        }
        self.multipliers = state.to_vec();
        Ok(())
    }
}

/// Which stage update `step` is in (1 or 2), each stage `steps` updates long.
pub fn stage(step: usize, steps: usize) -> u8 {
    if step < steps {
        1
    } else {
        2
    }
}

/// The actors' loss from the actions `a` `[N, B, D]`, each agent's critic at its own
/// action `q` `[N, B]` and, in stage 2, the multipliers `lambda` (one per auxiliary
/// agent); with the mean distance of the main action to each auxiliary one (`[N − 1]`,
/// no gradient) for the multipliers' step.
pub fn actor_loss(a: Tensor<3>, q: Tensor<2>, stage: u8, lambda: &[f64]) -> (Tensor<1>, Vec<f64>) {
    let [n, b, d] = a.dims();
    if stage == 1 {
        return (q.slice([0..n - 1, 0..b]).mean().neg(), Vec::new());
    }
    let device = a.device();
    let main = a.clone().slice([n - 1..n, 0..b, 0..d]); // [1, B, D]
    let aux = a.slice([0..n - 1, 0..b, 0..d]).detach(); // [N-1, B, D]
    let distance = (main.repeat_dim(0, n - 1) * aux)
        .sum_dim(2)
        .neg()
        .add_scalar(1.0)
        .reshape([n - 1, b])
        .mean_dim(1)
        .reshape([n - 1]); // [N-1]
    let mean_distance: Vec<f64> = distance
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect();
    let l32: Vec<f32> = lambda.iter().map(|&x| x as f32).collect();
    let lam = Tensor::<1>::from_data(TensorData::new(l32, [n - 1]), &device);
    let q_main = q.slice([n - 1..n, 0..b]).mean();
    ((q_main - (distance * lam).sum()).neg(), mean_distance)
}

/// One step of the multipliers: each rises by `lr` times its constraint's violation
/// `distance_k − bound` (and falls by its slack), never below zero.
pub fn dual_step(lambda: &mut [f64], distance: &[f64], bound: f64, lr: f64) {
    for (l, d) in lambda.iter_mut().zip(distance) {
        *l = (*l + lr * (d - bound)).max(0.0);
    }
}

/// The starting multipliers: zero, one per auxiliary agent.
pub fn initial_multipliers() -> Vec<f64> {
    vec![0.0; N_AGENTS - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipliers_survive_a_checkpoint_and_a_wrong_count_is_refused() {
        let a = TwoStage {
            multipliers: (0..N_AGENTS - 1).map(|k| k as f64 * 0.25).collect(),
        };
        let mut b = TwoStage::default();
        b.restore(&a.state()).unwrap();
        assert_eq!(a, b);
        let err = b.restore(&[1.0, 2.0]).unwrap_err();
        assert!(
            err.contains("2 values") && err.contains(&format!("({})", N_AGENTS - 1)),
            "{err}"
        );
        assert_eq!(a, b, "a refused state changes nothing");
    }

    #[test]
    fn stages_split_the_updates() {
        assert_eq!(stage(0, 100), 1);
        assert_eq!(stage(99, 100), 1);
        assert_eq!(stage(100, 100), 2);
        assert_eq!(stage(199, 100), 2);
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
            let (loss, _) = actor_loss(a.clone(), q, stage, &[0.3; N_AGENTS - 1]);
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
    fn stage_two_charges_each_constraint_its_multiplier() {
        let device = Device::flex();
        // Auxiliary actions all (1, 0); main (0, 1): every distance is 1. No value from Q.
        let mut v = Vec::new();
        for _ in 0..N_AGENTS - 1 {
            v.extend([1.0f32, 0.0]);
        }
        v.extend([0.0f32, 1.0]);
        let a = Tensor::<3>::from_data(TensorData::new(v, [N_AGENTS, 1, 2]), &device);
        let q = Tensor::<2>::zeros([N_AGENTS, 1], &device);
        let lambda: Vec<f64> = (0..N_AGENTS - 1).map(|k| k as f64 * 0.1).collect();
        let (loss, distance) = actor_loss(a.clone(), q.clone(), 2, &lambda);
        let loss: f32 = loss.into_scalar();
        let expected: f64 = lambda.iter().sum();
        assert!((loss as f64 - expected).abs() < 1e-5, "{loss} against {expected}");
        assert!(distance.iter().all(|d| (d - 1.0).abs() < 1e-6), "{distance:?}");
        // Stage 1 ignores the main action entirely.
        let (loss1, _) = actor_loss(a, q, 1, &lambda);
        assert_eq!(loss1.into_scalar::<f32>(), 0.0);
    }

    #[test]
    fn the_multiplier_rises_while_the_bound_is_violated_and_falls_with_slack() {
        let mut lambda = vec![0.0, 1.0];
        dual_step(&mut lambda, &[0.5, 0.1], 0.2, 0.1);
        assert!((lambda[0] - 0.03).abs() < 1e-12, "{lambda:?}");
        assert!((lambda[1] - 0.99).abs() < 1e-12, "{lambda:?}");
        let mut slack = vec![0.005];
        dual_step(&mut slack, &[0.0], 0.2, 0.1);
        assert_eq!(slack, vec![0.0], "a multiplier never goes below zero");
    }

    /// A binding bound: the critic pulls the main action away from every auxiliary one, the
    /// constraint `d ≤ 0.2` forbids it. Primal-dual descent raises the multiplier while the
    /// policy is outside and brings the policy back to the boundary, where the multiplier
    /// settles at the value that balances the critic's pull.
    #[test]
    fn a_binding_bound_raises_the_multiplier_and_brings_the_policy_back_inside() {
        let device = Device::flex().autodiff();
        let n = N_AGENTS;
        // The main action is a unit vector of a free parameter θ ∈ R²; the auxiliary actions
        // are all (1, 0); the main critic is Q_N = ⟨a, (−1, 0.3)⟩, best at the far side.
        let mut theta = Tensor::<1>::from_data(TensorData::from([0.0f32, 1.0]), &device);
        let bound = 0.2;
        let mut lambda = initial_multipliers();
        let mut first_violated: Option<f64> = None;
        let mut rose_while_violated = true;
        let mut last_distance = f64::NAN;
        for step in 0..3000 {
            let t = theta.clone().require_grad();
            let main = t.clone() / t.clone().powf_scalar(2.0).sum().sqrt();
            let mut aux = Vec::new();
            for _ in 0..n - 1 {
                aux.extend([1.0f32, 0.0]);
            }
            let aux = Tensor::<3>::from_data(TensorData::new(aux, [n - 1, 1, 2]), &device);
            let a = Tensor::cat(vec![aux, main.clone().reshape([1, 1, 2])], 0);
            let c = Tensor::<1>::from_data(TensorData::from([-1.0f32, 0.3]), &device);
            let q_main = (main * c).sum().reshape([1, 1]);
            let q = Tensor::cat(vec![Tensor::<2>::zeros([n - 1, 1], &device), q_main], 0);
            let (loss, distance) = actor_loss(a, q, 2, &lambda);
            let before = lambda[0];
            dual_step(&mut lambda, &distance, bound, 0.05);
            if distance[0] > bound + 0.05 {
                first_violated.get_or_insert(step as f64);
                rose_while_violated &= lambda[0] > before;
            }
            last_distance = distance[0];
            // Plain gradient descent on θ.
            let g = t.grad(&loss.backward()).expect("a gradient of θ");
            theta = (t.detach() - Tensor::<1>::from_data(g.into_data(), &device) * 0.05).detach();
        }
        assert!(first_violated.is_some(), "the start violates the bound");
        assert!(rose_while_violated, "the multiplier rose at every violated step");
        assert!(
            (last_distance - bound).abs() < 0.02,
            "the policy ends on the bound: d = {last_distance}"
        );
        assert!(lambda[0] > 0.05, "the bound binds at the end: λ = {}", lambda[0]);
        // The six identical constraints carry equal multipliers.
        assert!(lambda.iter().all(|l| (l - lambda[0]).abs() < 1e-9));
    }
}
