//! One visit of one user: the loop shared by log generation and online evaluation.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use mmrf_data::session::RequestState;

use crate::model::{Feedback, UserState, WorldModel};
use crate::policy::{softmax, Policy};

/// Longest visit, in requests; bounds the loop whatever a policy does.
pub const MAX_REQUESTS_PER_SESSION: u16 = 200;

/// The random streams of one user, split by purpose so that arms of an A/B test that
/// rank differently still see the same visits and the same first candidates.
pub struct UserRngs {
    pub candidates: ChaCha8Rng,
    pub feedback: ChaCha8Rng,
    pub policy: ChaCha8Rng,
}

/// How the shown items are chosen: by a policy, except that `random_share` of requests
/// are served uniformly at random (`is_rand = 1`), as KuaiRand's random-exposure traffic.
pub struct Chooser<'a> {
    pub policy: &'a dyn Policy,
    pub random_share: f64,
}

/// One shown and viewed video.
#[derive(Debug, Clone, Copy)]
pub struct Viewed {
    pub video: u32,
    pub time_ms: i64,
    pub feedback: Feedback,
    /// `π(j|s)` of the choosing policy: its softmax probability over the candidates
    /// (1/|C| for random exposure; NaN for a deterministic policy).
    pub propensity: f32,
}

/// What one request did, handed to the caller's sink.
pub struct RequestOutcome<'a> {
    /// The user's true interest and fatigue when the request was ranked (what the world's
    /// oracle ranks by; recorded in a generated world's `mmrf_states.bin`).
    pub interest: &'a [f32],
    pub fatigue: f32,
    pub position: u16,
    pub hour: u8,
    pub tab: u8,
    pub is_rand: bool,
    pub candidates: &'a [u32],
    pub viewed: &'a [Viewed],
}

/// Reusable buffers for [`simulate_session`].
#[derive(Default)]
pub struct Scratch {
    pub(crate) candidates: Vec<u32>,
    seen: Vec<u32>,
    pub(crate) scores: Vec<f32>,
    keys: Vec<(f32, u32)>,
    probs: Vec<f32>,
    pub(crate) viewed: Vec<Viewed>,
    interest: Vec<f32>,
}

/// Simulate a visit starting at `t0`; returns the time the user left.
///
/// No video starts at or after `deadline` (the end of the visit's day): visits never
/// cross midnight, so each day's rows, and each KuaiRand date-named file, are whole.
#[allow(clippy::too_many_arguments)]
pub fn simulate_session(
    model: &WorldModel,
    state: &mut UserState,
    t0: i64,
    deadline: i64,
    tab: u8,
    chooser: &Chooser<'_>,
    rngs: &mut UserRngs,
    scratch: &mut Scratch,
    sink: &mut dyn FnMut(RequestOutcome<'_>),
) -> i64 {
    model.start_session(state, &mut rngs.feedback);
    let mut t = t0;
    for position in 0..MAX_REQUESTS_PER_SESSION {
        let hour = draw_request(model, state, t, rngs, scratch);
        let n = scratch.candidates.len();
        let policy = chooser.policy;
        let is_rand = chooser.random_share > 0.0 && rngs.policy.random::<f64>() < chooser.random_share;
        if is_rand {
            scratch.keys.clear();
            scratch.probs.clear();
            for i in 0..n {
                scratch.keys.push((rngs.policy.random::<f32>(), i as u32));
            }
            scratch.probs.resize(n, 1.0 / n as f32);
        } else {
            scratch.scores.resize(n, 0.0);
            let truth: &UserState = state;
            let rs = RequestState {
                user: truth.user,
                time_ms: t,
                hour,
                tab,
                position,
                history: truth.history.as_slices().0,
            };
            policy.score_in(truth, &rs, &scratch.candidates, &mut scratch.scores);
            rank_keys(policy.temperature(), &mut rngs.policy, scratch);
        }
        scratch.interest.clear();
        scratch.interest.extend_from_slice(&state.interest);
        let fatigue = state.fatigue;
        let left = show_best(model, state, &mut t, deadline, rngs, scratch).is_some();
        if scratch.viewed.is_empty() {
            break;
        }
        sink(RequestOutcome {
            interest: &scratch.interest,
            fatigue,
            position,
            hour,
            tab,
            is_rand,
            candidates: &scratch.candidates,
            viewed: &scratch.viewed,
        });
        if left {
            break;
        }
    }
    t
}

/// The next request's candidates into `scratch.candidates`, its history made one slice;
/// returns the request's hour of day.
pub(crate) fn draw_request(
    model: &WorldModel,
    state: &mut UserState,
    t: i64,
    rngs: &mut UserRngs,
    scratch: &mut Scratch,
) -> u8 {
    model.candidates(
        state,
        model.config.n_candidates,
        &mut rngs.candidates,
        &mut scratch.candidates,
        &mut scratch.seen,
    );
    state.history.make_contiguous();
    (mmrf_data::time::date_hourmin(t).1 / 100) as u8
}

/// `scratch.scores` into ranking keys and propensities: for a stochastic policy (`Some(τ)`)
/// Gumbel-top-K keys, so that the K best keys are K draws without replacement from
/// `softmax(score/τ)`; for a deterministic one the scores themselves, a NaN ranking last.
pub(crate) fn rank_keys(temperature: Option<f32>, policy_rng: &mut ChaCha8Rng, scratch: &mut Scratch) {
    scratch.keys.clear();
    scratch.probs.clear();
    match temperature {
        Some(tau) => {
            softmax(&scratch.scores, tau, &mut scratch.probs);
            for (i, &s) in scratch.scores.iter().enumerate() {
                let u: f32 = policy_rng.random::<f32>().max(1e-12);
                scratch.keys.push((s / tau - (-u.ln()).ln(), i as u32));
            }
        }
        None => {
            scratch.probs.resize(scratch.scores.len(), f32::NAN);
            for (i, &s) in scratch.scores.iter().enumerate() {
                // A NaN score ranks last rather than poisoning the order.
                scratch
                    .keys
                    .push((if s.is_nan() { f32::NEG_INFINITY } else { s }, i as u32));
            }
        }
    }
}

/// Show the K candidates of the best keys, best first, until the user leaves or the day
/// ends; the viewed videos go to `scratch.viewed` and `t` moves past them. Returns how the
/// visit ended, if it did.
pub(crate) fn show_best(
    model: &WorldModel,
    state: &mut UserState,
    t: &mut i64,
    deadline: i64,
    rngs: &mut UserRngs,
    scratch: &mut Scratch,
) -> Option<End> {
    let n = scratch.candidates.len();
    let k = model.config.k.min(n);
    let by_key = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if k < n {
        scratch.keys.select_nth_unstable_by(k - 1, by_key);
    }
    scratch.keys[..k].sort_unstable_by(by_key);
    scratch.viewed.clear();
    for &(_, i) in &scratch.keys[..k] {
        if *t >= deadline {
            return Some(End::Cut);
        }
        let video = scratch.candidates[i as usize];
        let (feedback, leave) = model.respond(state, video, &mut rngs.feedback);
        scratch.viewed.push(Viewed {
            video,
            time_ms: *t,
            feedback,
            propensity: scratch.probs[i as usize],
        });
        *t += feedback.play_time_ms as i64 + rngs.feedback.random_range(500..3_000);
        if leave {
            return Some(End::Left);
        }
    }
    None
}

/// How a visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The user left (the world's leave model): a terminal state.
    Left,
    /// The visit was cut short from outside: its day ended, or it reached
    /// [`MAX_REQUESTS_PER_SESSION`] requests.
    Cut,
}

/// Hour-of-day weights of visit starts (Beijing time): a lunch and an evening peak.
pub const HOUR_WEIGHT: [f32; 24] = [
    3.0, 1.5, 0.8, 0.5, 0.4, 0.5, 1.0, 2.0, 3.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 4.5, 5.5, 6.5, 7.0, 6.5,
    5.0,
];

/// The tabs visits start from (KuaiRand's `tab` takes 0..14; most traffic is on a few).
pub const TAB_WEIGHT: [f32; 15] = [
    2.0, 60.0, 6.0, 2.0, 10.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
];

fn pick(weights: &[f32], r: &mut impl Rng) -> usize {
    crate::model::pick_weighted(weights, weights.iter().sum(), r)
}

/// One visit's start on the day that starts at `day_start_ms`, and its tab, drawn as
/// [`day_visits`] draws each of its visits.
pub fn visit_start(day_start_ms: i64, r: &mut impl Rng) -> (i64, u8) {
    let hour = pick(&HOUR_WEIGHT, r) as i64;
    let t = day_start_ms + hour * 3_600_000 + r.random_range(0..3_600_000);
    (t, pick(&TAB_WEIGHT, r) as u8)
}

/// The planned visits of a user on a day: `(start_ms, tab)`, sorted. The count is
/// Poisson with mean `sessions_per_day × activity`; it does not depend on any policy,
/// so arms of an A/B test see the same visits.
pub fn day_visits(model: &WorldModel, user: u32, day_start_ms: i64, r: &mut impl Rng) -> Vec<(i64, u8)> {
    let mean = model.config.sessions_per_day * model.user_activity[user as usize] as f64;
    // Poisson by inversion (means are small).
    let (mut n, mut p, l) = (0usize, 1.0f64, (-mean).exp());
    loop {
        p *= r.random::<f64>();
        if p <= l || n >= 200 {
            break;
        }
        n += 1;
    }
    let mut visits: Vec<(i64, u8)> = (0..n).map(|_| visit_start(day_start_ms, r)).collect();
    visits.sort_unstable();
    visits
}
