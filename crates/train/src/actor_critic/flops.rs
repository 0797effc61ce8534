//! The matmul cost of one update, from the layer sizes (`mmrf bench train-step`).

use mmrf_model::mmrf::{Collaboration, CriticForm, N_AGENTS};

use super::config::{ActorCriticConfig, Augment};
use super::trainer::StepStats;

/// Matmul FLOPs of one update, counted from the layer sizes: every linear layer and batched
/// product of the trained parts three times (forward, and the two products of the backward
/// pass), the target networks' and the labelling forward passes once, the simulator's refit
/// spread over the updates it is refit in. Elementwise work is not counted. The target side
/// is assumed to embed as many videos as the online side.
pub fn update_flops(cfg: &ActorCriticConfig, shape: &mmrf_model::FeatureShape, stats: &StepStats) -> f64 {
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
