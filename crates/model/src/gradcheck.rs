//! Finite-difference gradient checks: does autodiff's gradient of a scalar loss match
//! `(f(θ + ε) − f(θ − ε)) / 2ε`, parameter by parameter?

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheck {
    /// Coordinates compared.
    pub checked: usize,
    /// Coordinates whose analytic and numeric gradients disagree beyond tolerance.
    pub mismatched: usize,
    /// Coordinates the `eps`-wide central difference missed, measured again over smaller
    /// steps and one-sided (a ReLU kink within `±eps`; a wrong gradient misses those too).
    pub rechecked: usize,
    /// Worst `|analytic − numeric| / max(|numeric|, floor)`.
    pub worst: f64,
    /// Parameter tensors that received no gradient at all.
    pub no_grad: usize,
}

struct Collect<'a> {
    grads: &'a Gradients,
    out: Vec<Option<Vec<f32>>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let g = param
            .val()
            .grad(self.grads)
            .map(|g| g.into_data().try_to_vec::<f32>().unwrap_or_default());
        self.out.push(g);
    }
}

struct Nudge {
    target: usize,
    index: usize,
    delta: f32,
    seen: usize,
}

impl ModuleMapper for Nudge {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let hit = self.seen == self.target;
        self.seen += 1;
        if !hit {
            return param;
        }
        let (index, delta) = (self.index, self.delta);
        param.map(|t| {
            let shape = t.shape();
            let mut v = vec![0f32; shape.num_elements()];
            v[index] = delta;
            let bump = Tensor::<D>::from_data(TensorData::new(v, shape), &t.device());
            t + bump
        })
    }
}

/// Check `loss` at `module` (which lives on an autodiff device): for each parameter tensor
/// the `per_param` coordinates of largest analytic gradient are compared with central
/// differences of step `eps`. A coordinate mismatches when
/// `|analytic − numeric| > rel·|numeric| + abs` for the central difference and for every
/// central and one-sided difference of step `eps`, `eps/2` and `eps/4` (ReLU kinks).
pub fn check<M: Module + Clone>(
    module: &M,
    loss: impl Fn(&M) -> Tensor<1>,
    per_param: usize,
    eps: f32,
    rel: f64,
    abs: f64,
) -> GradCheck {
    let l = loss(module);
    let grads = l.backward();
    let mut c = Collect {
        grads: &grads,
        out: Vec::new(),
    };
    module.visit(&mut c);
    let value = |m: &M| -> f64 { loss(m).into_scalar::<f32>() as f64 };
    let here = value(module);
    let mut r = GradCheck {
        checked: 0,
        mismatched: 0,
        rechecked: 0,
        worst: 0.0,
        no_grad: 0,
    };
    for (p, g) in c.out.iter().enumerate() {
        let Some(g) = g else {
            r.no_grad += 1;
            continue;
        };
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &k in idx.iter().take(per_param) {
            let at = |delta: f32| {
                let mut n = Nudge {
                    target: p,
                    index: k,
                    delta,
                    seen: 0,
                };
                value(&module.clone().map(&mut n))
            };
            let (up, down) = (at(eps), at(-eps));
            let central = (up - down) / (2.0 * eps as f64);
            let forward = (up - here) / eps as f64;
            let backward = (here - down) / eps as f64;
            let analytic = g[k] as f64;
            let close = |numeric: f64| (analytic - numeric).abs() <= rel * numeric.abs() + abs;
            r.checked += 1;
            // A ReLU kink within ±eps spoils the eps-wide differences: the central one
            // averages two slopes, which no correct gradient equals. Autodiff gives the
            // slope right at θ, so a miss is measured again over eps/2 and eps/4, centrally
            // and on each side, to get clear of the kinks nearest θ on one side or both.
            let numeric = if close(central) {
                central
            } else {
                r.rechecked += 1;
                let mut slopes = vec![forward, backward];
                for step in [eps / 2.0, eps / 4.0] {
                    let (up, down) = (at(step), at(-step));
                    let h = step as f64;
                    slopes.extend([(up - down) / (2.0 * h), (up - here) / h, (here - down) / h]);
                }
                slopes
                    .into_iter()
                    .min_by(|x, y| (analytic - x).abs().total_cmp(&(analytic - y).abs()))
                    .unwrap_or(central)
            };
            if !close(numeric) {
                r.mismatched += 1;
            }
            let err = (analytic - numeric).abs();
            r.worst = r.worst.max(err / numeric.abs().max(1e-3));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bc::{BcNetConfig, BehaviourModel, VideoBatch};
    use crate::features::FeatureShape;
    use crate::mmrf::{Agents, Collaboration, Critics, ItemEncoder, MmrfNetConfig, StateBatch, StateEncoder, N_AGENTS};
    use burn::tensor::Distribution;

    fn shape() -> FeatureShape {
        FeatureShape {
            n_users: 3,
            user_dim: 2,
            n_videos: 6,
            video_dim: 3,
            n_authors: 3,
            n_tags: 2,
        }
    }

    fn cfg(collaboration: Collaboration) -> MmrfNetConfig {
        MmrfNetConfig {
            dim: 4,
            state: 6,
            agent: 4,
            heads: 2,
            hidden: 5,
            collaboration,
            critic_signal: false,
            candidates: 0,
            critic: crate::mmrf::CriticForm::Linear,
            session_value: false,
        }
    }

    fn ints(v: Vec<i64>, device: &Device) -> Tensor<1, Int> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), device)
    }

    fn videos(device: &Device) -> VideoBatch {
        VideoBatch {
            ids: ints(vec![0, 3, 5], device),
            authors: ints(vec![1, 2, 0], device),
            tags: ints(vec![1, 0, 1], device),
            features: Tensor::random([3, 3], Distribution::Normal(0.0, 1.0), device),
        }
    }

    /// Two states of `cfg`'s sizes; with `candidates`, two candidates each (the second of the
    /// second state padding), drawn after everything else.
    fn state_batch(candidates: bool, device: &Device) -> StateBatch {
        let mut b = StateBatch {
            users: ints(vec![1, 2], device),
            user_features: Tensor::random([2, 2], Distribution::Normal(0.0, 1.0), device),
            history: Tensor::random([2, 3, 4], Distribution::Normal(0.0, 1.0), device),
            feedback: Tensor::random([2, 3, 7], Distribution::Default, device),
            mask: Tensor::from_floats([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], device),
            hour: ints(vec![3, 20], device),
            tab: ints(vec![1, 4], device),
            position: Tensor::from_floats([[0.0], [0.7]], device),
            candidates: Tensor::zeros([2, 1, 4], device),
            candidate_mask: Tensor::zeros([2, 1], device),
        };
        if candidates {
            b.candidates = Tensor::random([2, 2, 4], Distribution::Normal(0.0, 1.0), device);
            b.candidate_mask = Tensor::from_floats([[1.0, 1.0], [1.0, 0.0]], device);
        }
        b
    }

    /// The state encoder's gradients on `batch`, read out through a random projection
    /// drawn after the batch.
    fn assert_state_gradients(seed: u64, name: &str, state: &StateEncoder, batch: StateBatch, device: &Device) {
        let w = Tensor::<2>::random([2, 6], Distribution::Normal(0.0, 1.0), device);
        assert_ok(
            seed,
            name,
            check(
                state,
                |m| readout(m.forward(batch.clone()), w.clone()),
                5,
                1e-3,
                0.03,
                2e-3,
            ),
        );
    }

    /// A smooth scalar of a tensor: a fixed random projection, squared-ish.
    fn readout<const D: usize>(x: Tensor<D>, seed_tensor: Tensor<D>) -> Tensor<1> {
        (x.clone() * seed_tensor).sum() + x.powi_scalar(2).sum() * 0.1
    }

    fn assert_ok(seed: u64, name: &str, r: GradCheck) {
        let name = format!("{name} (seed {seed})");
        assert!(r.checked > 10, "{name}: {r:?}");
        assert_eq!(r.no_grad, 0, "{name}: a parameter got no gradient: {r:?}");
        // Kinks are measured again over smaller steps and one-sided; a cluster of them
        // within eps/4 can still leave a rare coordinate off, a wrong gradient many.
        assert!(r.mismatched * 20 <= r.checked, "{name}: {r:?}");
    }

    /// Several draws of weights and inputs: ReLU kinks fall differently in each.
    const SEEDS: std::ops::Range<u64> = 11..15;

    fn setup(seed: u64) -> (std::sync::MutexGuard<'static, ()>, Device) {
        let guard = crate::device::seeded(seed);
        (guard, Device::flex().autodiff())
    }

    #[test]
    fn behaviour_model_gradients() {
        for seed in SEEDS {
            let (_g, device) = setup(seed);
            let m = BehaviourModel::new(&shape(), &BcNetConfig { dim: 4, hidden: 5 }, &device);
            let uf = Tensor::<2>::random([2, 2], Distribution::Normal(0.0, 1.0), &device);
            let v = videos(&device);
            let cands = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 2, 0, 1], [2, 3]), &device);
            let shown = Tensor::<2>::from_floats([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], &device);
            let valid = Tensor::<2>::ones([2, 3], &device);
            let r = check(
                &m,
                |m| {
                    let u = m.users(ints(vec![0, 2], &device), uf.clone());
                    let (vv, b) = m.videos(v.clone());
                    BehaviourModel::loss(
                        BehaviourModel::logits(u, vv, b, cands.clone()),
                        shown.clone(),
                        valid.clone(),
                    )
                },
                6,
                1e-3,
                0.03,
                2e-3,
            );
            assert_ok(seed, "bc", r);
        }
    }

    #[test]
    fn mmrf_encoder_gradients() {
        for seed in SEEDS {
            let (_g, device) = setup(seed);
            let c = cfg(Collaboration::Attention);
            let items = ItemEncoder::new(&shape(), &c, &device);
            let v = videos(&device);
            let w = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
            assert_ok(
                seed,
                "items",
                check(
                    &items,
                    |m| readout(m.forward(v.clone()), w.clone()),
                    5,
                    1e-3,
                    0.03,
                    2e-3,
                ),
            );

            let state = StateEncoder::new(&shape(), &c, &device);
            assert_state_gradients(seed, "state", &state, state_batch(false, &device), &device);
        }
    }

    #[test]
    fn state_encoder_reading_candidates_gradients() {
        for seed in SEEDS {
            let (_g, device) = setup(seed);
            let c = MmrfNetConfig {
                candidates: 2,
                ..cfg(Collaboration::Attention)
            };
            let state = StateEncoder::new(&shape(), &c, &device);
            assert_state_gradients(
                seed,
                "state with candidates",
                &state,
                state_batch(true, &device),
                &device,
            );
        }
    }

    #[test]
    fn mmrf_agent_and_critic_gradients() {
        for seed in SEEDS {
            let (_g, device) = setup(seed);
            for collaboration in [Collaboration::Attention, Collaboration::Concat, Collaboration::None] {
                let c = cfg(collaboration);
                let agents = Agents::new(&c, &device);
                let s = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
                let w = Tensor::<3>::random([N_AGENTS, 3, 4], Distribution::Normal(0.0, 1.0), &device);
                let r = check(
                    &agents,
                    |m| {
                        let h = m.embeddings(s.clone());
                        let e = m.collaborate(h.clone());
                        readout(m.actions(h, e, 1.0), w.clone())
                    },
                    4,
                    1e-3,
                    0.03,
                    2e-3,
                );
                assert_ok(seed, &format!("agents {collaboration:?}"), r);
            }
            // Plain critics, and MASSA's critics with the signal network.
            for signal in [false, true] {
                let mut c = cfg(Collaboration::Attention);
                c.critic_signal = signal;
                let critics = Critics::new(&c, &device);
                let s = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
                let a = Tensor::<3>::random([N_AGENTS, 3, 4], Distribution::Normal(0.0, 1.0), &device);
                let items = Tensor::<3>::random([3, 2, 4], Distribution::Normal(0.0, 1.0), &device);
                let w = Tensor::<2>::random([N_AGENTS, 3], Distribution::Normal(0.0, 1.0), &device);
                let w2 = Tensor::<3>::random([3, 2, N_AGENTS], Distribution::Normal(0.0, 1.0), &device);
                let r = check(
                    &critics,
                    |m| {
                        readout(m.q(s.clone(), a.clone()), w.clone())
                            + readout(m.item_rewards(s.clone(), items.clone()), w2.clone())
                    },
                    5,
                    1e-3,
                    0.03,
                    2e-3,
                );
                assert_ok(seed, &format!("critics (signal: {signal})"), r);
            }
        }
    }

    #[test]
    fn a_wrong_gradient_is_caught() {
        // The checker itself: a loss whose forward value and autodiff graph disagree
        // (the graph sees 2θ, the value 3θ) must fail.
        for seed in SEEDS {
            let (_g, device) = setup(seed);
            let lin = burn::nn::LinearConfig::new(3, 2).init(&device);
            let x = Tensor::<2>::random([4, 3], Distribution::Normal(0.0, 1.0), &device);
            let r = check(
                &lin,
                |m| {
                    let y = m.forward(x.clone()).sum();
                    let value = y.clone().into_scalar::<f32>();
                    y.clone() * 2.0 + (y.detach() * 0.0 + value)
                },
                3,
                1e-3,
                0.03,
                2e-3,
            );
            assert!(r.mismatched * 2 > r.checked, "{r:?}");
        }
    }

    #[test]
    fn a_kink_is_held_to_its_one_sided_slope() {
        // relu(w) at w = 4e-4, inside ±eps of the kink: the central difference is 0.7, the
        // slope at w is 1 (forward 1, backward 0.4). A right gradient passes after the
        // recheck; one that is twice the slope in the graph still fails.
        let (_g, device) = setup(11);
        let mut lin = burn::nn::LinearConfig::new(1, 1).with_bias(false).init(&device);
        lin.weight = Param::from_tensor(Tensor::from_floats([[4e-4]], &device));
        let x = Tensor::<2>::from_floats([[1.0]], &device);
        let relu = |m: &burn::nn::Linear| burn::tensor::activation::relu(m.forward(x.clone())).sum();
        let right = check(&lin, relu, 1, 1e-3, 0.03, 2e-3);
        assert_eq!(
            (right.checked, right.rechecked, right.mismatched),
            (1, 1, 0),
            "{right:?}"
        );
        let doubled = |m: &burn::nn::Linear| {
            let y = relu(m);
            let value = y.clone().into_scalar::<f32>();
            y.clone() * 2.0 + (y.detach() * -2.0 + value)
        };
        let wrong = check(&lin, doubled, 1, 1e-3, 0.03, 2e-3);
        assert_eq!((wrong.rechecked, wrong.mismatched), (1, 1), "{wrong:?}");
    }
}
