//! The online interface: run any [`Policy`] in the world and measure what users do.
//!
//! Every user's visits, candidate draws and feedback noise come from streams keyed by
//! (seed, user), so two policies run with the same [`OnlineConfig`] face the same users on
//! the same visits: the arms of an A/B test are paired.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{rng, Stream, WorldModel};
use crate::policy::Policy;
use crate::sim::{day_visits, simulate_session, Chooser, Scratch, UserRngs};

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineConfig {
    /// First simulated day (`YYYYMMDD`); the users' long-term interests have drifted to it.
    pub start_day: u32,
    pub days: u32,
    /// Seed of the online streams (distinct from the logs' so the test is fresh).
    pub seed: u64,
    /// Users to simulate (`None`: all).
    pub users: Option<Vec<u32>>,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            start_day: mmrf_data::schema::TEST_FIRST_DAY,
            days: 7,
            seed: 1,
            users: None,
        }
    }
}

/// Totals of one user over the run, and per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserOutcome {
    pub user: u32,
    pub sessions: u32,
    /// Videos viewed.
    pub depth: u32,
    pub watch_time_s: f64,
    pub click: u32,
    pub like: u32,
    pub follow: u32,
    pub comment: u32,
    pub forward: u32,
    pub hate: u32,
    pub long_view: u32,
    /// Per simulated day: (sessions, depth, watch time in seconds).
    pub per_day: Vec<(u32, u32, f64)>,
    /// The first video of every request alone.
    #[serde(default)]
    pub first_slot: FirstSlot,
}

/// Totals over the first video of every request. For a stochastic policy that video is
/// one draw from `softmax(score/τ)` (Gumbel-top-K's first pick), the distribution its
/// per-impression propensity `π(j|s)` describes; the later videos of a request are drawn
/// without replacement and so follow flatter distributions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FirstSlot {
    /// Requests with at least one video viewed.
    pub views: u32,
    pub watch_time_s: f64,
    pub click: u32,
    pub like: u32,
    pub follow: u32,
    pub comment: u32,
    pub hate: u32,
    pub long_view: u32,
}

/// Run `policy` for every selected user over `cfg.days` days.
pub fn run_policy(model: &WorldModel, policy: &dyn Policy, cfg: &OnlineConfig) -> Vec<UserOutcome> {
    let users: Vec<u32> = cfg
        .users
        .clone()
        .unwrap_or_else(|| (0..model.n_users() as u32).collect());
    users.par_iter().map(|&u| run_user(model, policy, cfg, u)).collect()
}

fn run_user(model: &WorldModel, policy: &dyn Policy, cfg: &OnlineConfig, user: u32) -> UserOutcome {
    let seed = model.config.seed ^ cfg.seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut rngs = UserRngs {
        candidates: rng(seed, Stream::Candidates, user as u64),
        feedback: rng(seed, Stream::Feedback, user as u64),
        policy: rng(seed, Stream::Logging, user as u64),
    };
    let mut schedule = rng(seed, Stream::Schedule, user as u64);
    let first = mmrf_data::time::yyyymmdd_to_days(model.config.first_day);
    let start = mmrf_data::time::yyyymmdd_to_days(cfg.start_day);
    let mut state = model.initial_state(user, (start - first).max(0));
    let mut drift = rng(seed, Stream::Drift, user as u64);
    let chooser = Chooser {
        policy,
        random_share: 0.0,
    };
    let mut scratch = Scratch::default();
    let mut out = UserOutcome {
        user,
        ..UserOutcome::default()
    };
    let mut last_end = i64::MIN / 2;
    for day in 0..cfg.days as i64 {
        if day > 0 {
            model.next_day(&mut state, &mut drift);
        }
        let day_start = mmrf_data::time::day_start_ms(mmrf_data::time::days_to_yyyymmdd(start + day));
        let mut today = (0u32, 0u32, 0f64);
        for (planned, tab) in day_visits(model, user, day_start, &mut schedule) {
            let t0 = planned.max(last_end + crate::generate::MIN_VISIT_GAP_MS);
            if t0 >= day_start + mmrf_data::time::DAY_MS {
                continue;
            }
            today.0 += 1;
            last_end = simulate_session(
                model,
                &mut state,
                t0,
                day_start + mmrf_data::time::DAY_MS,
                tab,
                &chooser,
                &mut rngs,
                &mut scratch,
                &mut |req| {
                    if let Some(v) = req.viewed.first() {
                        let (f, s) = (&v.feedback, &mut out.first_slot);
                        s.views += 1;
                        s.watch_time_s += f.play_time_ms as f64 / 1000.0;
                        s.click += f.click as u32;
                        s.like += f.like as u32;
                        s.follow += f.follow as u32;
                        s.comment += f.comment as u32;
                        s.hate += f.hate as u32;
                        s.long_view += f.long_view as u32;
                    }
                    for v in req.viewed {
                        let f = &v.feedback;
                        today.1 += 1;
                        today.2 += f.play_time_ms as f64 / 1000.0;
                        out.click += f.click as u32;
                        out.like += f.like as u32;
                        out.follow += f.follow as u32;
                        out.comment += f.comment as u32;
                        out.forward += f.forward as u32;
                        out.hate += f.hate as u32;
                        out.long_view += f.long_view as u32;
                    }
                },
            );
        }
        out.sessions += today.0;
        out.depth += today.1;
        out.watch_time_s += today.2;
        out.per_day.push(today);
    }
    out
}
