//! **Pareto**: multi-objective RL toward a Pareto-optimal point (paper §3.1.3, baseline 4;
//! after Lin et al., RecSys 2019, and Chen et al., WWW 2021).
//!
//! One policy — the main actor — serves all seven signals. Each signal keeps its own critic
//! `Q_i`, trained by the shared TD update on the policy's own next action. The actor
//! ascends the scalarisation `Σ_i w_i Q_i(s, a)`, and the weights `w` are learned every
//! update as the multiple-gradient-descent (MGDA) solution: the point of the simplex whose
//! combination of the objectives' gradients has the smallest norm. A step along it improves
//! no objective at another's expense, and where the norm reaches zero the policy is
//! Pareto-stationary.
//!
//! Choices the papers leave open, and ours:
//! - The gradients are taken with respect to the shared action, where they are exact and
//!   cheap: each critic is linear in the action, so `∂Q_i/∂a = W_i(s)` (the MGDA-UB
//!   shortcut of Sener & Koltun, 2018, applied at the action rather than a hidden layer).
//! - The gradients are normalised to unit length before the min-norm problem (Sener &
//!   Koltun's "l2" normalisation). On raw gradients the solution is decided by scale: it
//!   put 85 % of the weight on Like, Follow and Comment, the rarest signals, whose critics
//!   vary least, and online WatchTime fell 59 % below LTR's.
//! - Every normalised weight is at least `pareto_floor` (PE-LTR's lower bounds), so no
//!   signal is dropped entirely; the min-norm problem is solved by Frank–Wolfe on the 7×7
//!   Gram matrix of the gradients. The floor is chosen on the tuning worlds like every
//!   method's settings; there the highest floor tried, 0.14 (uniform weights are 1/7),
//!   ran the most session WatchTime.
//! - Like TSCAC and MASSA, it learns from logged impressions only (no simulator), and its
//!   actors do not communicate; the auxiliary actors are unused.

use burn::prelude::*;
use mmrf_model::mmrf::{Critics, N_AGENTS};

use crate::actor_critic::{ActorCriticConfig, ActorInputs, ActorObjective, Objective, ObjectiveReport};

/// Pareto's configuration: one scalarised policy, logged data only.
pub fn config() -> ActorCriticConfig {
    ActorCriticConfig {
        objective: Objective::Pareto,
        ..ActorCriticConfig::baseline()
    }
}

/// Pareto's objective: the main actor ascends the MGDA scalarisation of every critic,
/// its weights solved afresh on each batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scalarised;

impl ActorObjective for Scalarised {
    fn loss(&mut self, inputs: &ActorInputs, cfg: &ActorCriticConfig, _step: usize) -> (Tensor<1>, ObjectiveReport) {
        let w = weights(&inputs.critics, inputs.states.clone(), cfg.pareto_floor);
        let loss = actor_loss(&inputs.critics, inputs.states.clone(), inputs.main_action(), &w);
        let report = ObjectiveReport {
            scalarisation: Some(w),
            ..ObjectiveReport::default()
        };
        (loss, report)
    }

    fn one_policy(&self) -> bool {
        true
    }
}

/// The min-norm point of `{w : w_i ≥ floor, Σ w_i = 1}` for the Gram matrix `gram`
/// (`n × n`, row-major) of the objectives' gradients: Frank–Wolfe, `iters` steps.
pub fn min_norm_weights(gram: &[f64], n: usize, floor: f64, iters: usize) -> Vec<f64> {
    let floor = floor.clamp(0.0, 1.0 / n as f64);
    let free = 1.0 - floor * n as f64;
    // w = floor + free · u with u on the simplex; minimise wᵀGw over u.
    let mut u = vec![1.0 / n as f64; n];
    let w_of = |u: &[f64]| -> Vec<f64> { u.iter().map(|x| floor + free * x).collect() };
    for _ in 0..iters {
        let w = w_of(&u);
        let gw: Vec<f64> = (0..n).map(|i| (0..n).map(|j| gram[i * n + j] * w[j]).sum()).collect();
        // The vertex with the smallest directional derivative.
        let t = (0..n).min_by(|&a, &b| gw[a].total_cmp(&gw[b])).unwrap_or(0);
        // Exact line search between w and the vertex's w (both quadratic in the step).
        let v: Vec<f64> = (0..n).map(|i| if i == t { floor + free } else { floor }).collect();
        let d: Vec<f64> = (0..n).map(|i| v[i] - w[i]).collect();
        let gd: Vec<f64> = (0..n).map(|i| (0..n).map(|j| gram[i * n + j] * d[j]).sum()).collect();
        let dgd: f64 = (0..n).map(|i| d[i] * gd[i]).sum();
        let wgd: f64 = (0..n).map(|i| w[i] * gd[i]).sum();
        if dgd <= 1e-12 {
            break;
        }
        let gamma = (-wgd / dgd).clamp(0.0, 1.0);
        if gamma < 1e-9 {
            break;
        }
        for (i, x) in u.iter_mut().enumerate() {
            *x = (1.0 - gamma) * *x + if i == t { gamma } else { 0.0 };
        }
    }
    w_of(&u)
}

/// The weights of this batch: MGDA over the critics' action gradients at the states `s`.
pub fn weights(critics: &Critics, s: Tensor<2>, floor: f64) -> Vec<f64> {
    let b = s.dims()[0].max(1);
    let g = critics.action_gradients(s); // [N, B, D]
    let [n, rows, d] = g.dims();
    let flat = g.reshape([n, rows * d]);
    let gram: Vec<f32> = flat
        .clone()
        .matmul(flat.transpose())
        .into_data()
        .try_to_vec()
        .unwrap_or_default();
    if gram.len() != N_AGENTS * N_AGENTS {
        return vec![1.0 / N_AGENTS as f64; N_AGENTS];
    }
    let gram: Vec<f64> = gram.iter().map(|&x| x as f64 / b as f64).collect();
    // Normalised gradients (Sener & Koltun's "l2" option): on raw gradients the min-norm
    // point is driven by scale, toward the signals whose values vary least (the rarest).
    let norm: Vec<f64> = (0..N_AGENTS)
        .map(|i| gram[i * N_AGENTS + i].sqrt().max(1e-12))
        .collect();
    let unit_gram: Vec<f64> = (0..N_AGENTS * N_AGENTS)
        .map(|k| gram[k] / (norm[k / N_AGENTS] * norm[k % N_AGENTS]))
        .collect();
    let u = min_norm_weights(&unit_gram, N_AGENTS, floor, 50);
    // Σ u_i ĝ_i = Σ (u_i / |g_i|) g_i: the weights of the critics themselves, rescaled to
    // sum to one.
    let w: Vec<f64> = u.iter().zip(&norm).map(|(u, n)| u / n).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

/// The actor's loss: `−mean_b Σ_i w_i Q_i(s, a^N)` for the main actions `a_main` `[B, D]`.
pub fn actor_loss(critics: &Critics, s: Tensor<2>, a_main: Tensor<2>, w: &[f64]) -> Tensor<1> {
    let [b, d] = a_main.dims();
    let device = a_main.device();
    let a = a_main.reshape([1, b, d]).repeat_dim(0, N_AGENTS);
    let q = critics.q(s, a); // [N, B]
    let w32: Vec<f32> = w.iter().map(|&x| x as f32).collect();
    let w = Tensor::<2>::from_data(TensorData::new(w32, [N_AGENTS, 1]), &device);
    (q * w).sum_dim(0).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quad(gram: &[f64], w: &[f64]) -> f64 {
        let n = w.len();
        (0..n)
            .map(|i| (0..n).map(|j| w[i] * gram[i * n + j] * w[j]).sum::<f64>())
            .sum()
    }

    #[test]
    fn two_opposed_gradients_balance() {
        // g1 = (1, 0), g2 = (-2, 0): the min-norm combination is w = (2/3, 1/3), norm 0.
        let gram = [1.0, -2.0, -2.0, 4.0];
        let w = min_norm_weights(&gram, 2, 0.0, 200);
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-3, "{w:?}");
        assert!(quad(&gram, &w) < 1e-5);
    }

    #[test]
    fn aligned_gradients_favour_the_smaller_one() {
        // g1 = (1, 0), g2 = (3, 0): the smallest norm is g1 alone, held at the floor for g2.
        let gram = [1.0, 3.0, 3.0, 9.0];
        let w = min_norm_weights(&gram, 2, 0.1, 200);
        assert!((w[1] - 0.1).abs() < 1e-6 && (w[0] - 0.9).abs() < 1e-6, "{w:?}");
    }

    proptest! {
        #[test]
        fn weights_stay_on_the_floored_simplex_and_improve_on_uniform(
            g in proptest::collection::vec(-3.0f64..3.0, 12),
            floor in 0.0f64..0.2,
        ) {
            // Four gradients in R^3.
            let n = 4;
            let gram: Vec<f64> = (0..n * n)
                .map(|k| (0..3).map(|c| g[(k / n) * 3 + c] * g[(k % n) * 3 + c]).sum())
                .collect();
            let w = min_norm_weights(&gram, n, floor, 100);
            let f = floor.min(1.0 / n as f64);
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(w.iter().all(|&x| x >= f - 1e-12));
            prop_assert!(quad(&gram, &w) <= quad(&gram, &[0.25; 4]) + 1e-9);
        }
    }
}
