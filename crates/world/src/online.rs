//! The online interface: run any [`Policy`] in the world and measure what users do.
//!
//! Every user's visits, candidate draws and feedback noise come from streams keyed by
//! (seed, user), so two policies run with the same [`OnlineConfig`] face the same users on
//! the same visits: the arms of an A/B test are paired.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use mmrf_data::Signal;

use crate::model::{rng, Feedback, Stream, WorldModel};
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

/// The days of `config`'s test period (its first test day to its last day): the most an
/// online test from the test period's start can simulate.
pub fn test_period_days(config: &crate::WorldConfig) -> u32 {
    let first = mmrf_data::time::yyyymmdd_to_days(mmrf_data::schema::TEST_FIRST_DAY);
    let last = mmrf_data::time::yyyymmdd_to_days(config.last_day);
    (last - first + 1).max(0) as u32
}

/// Totals of one user over the run, and per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserOutcome {
    pub user: u32,
    pub sessions: u32,
    /// Every video viewed (`views` is the depth).
    pub viewed: Tally,
    /// The first video of every request alone. For a stochastic policy that video is one
    /// draw from `softmax(score/τ)` (Gumbel-top-K's first pick), the distribution its
    /// per-impression propensity `π(j|s)` describes; the later videos of a request are
    /// drawn without replacement and so follow flatter distributions.
    pub first_slot: Tally,
    /// Per simulated day: (sessions, depth, watch time in seconds).
    pub per_day: Vec<(u32, u32, f64)>,
}

/// Counts and play time over a set of viewed videos.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub views: u32,
    pub watch_time_s: f64,
    pub click: u32,
    pub like: u32,
    pub follow: u32,
    pub comment: u32,
    pub forward: u32,
    pub hate: u32,
    pub long_view: u32,
}

impl Tally {
    /// Count one viewed video.
    pub fn add(&mut self, f: &Feedback) {
        self.views += 1;
        self.watch_time_s += f.play_time_ms as f64 / 1000.0;
        self.click += f.click as u32;
        self.like += f.like as u32;
        self.follow += f.follow as u32;
        self.comment += f.comment as u32;
        self.forward += f.forward as u32;
        self.hate += f.hate as u32;
        self.long_view += f.long_view as u32;
    }

    /// The total of a signal over the videos (seconds of play for WatchTime).
    pub fn total(&self, signal: Signal) -> f64 {
        match signal {
            Signal::Click => self.click as f64,
            Signal::Like => self.like as f64,
            Signal::Follow => self.follow as f64,
            Signal::Comment => self.comment as f64,
            Signal::Hate => self.hate as f64,
            Signal::LongView => self.long_view as f64,
            Signal::WatchTime => self.watch_time_s,
        }
    }
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
                        out.first_slot.add(&v.feedback);
                    }
                    for v in req.viewed {
                        out.viewed.add(&v.feedback);
                        today.1 += 1;
                        today.2 += v.feedback.play_time_ms as f64 / 1000.0;
                    }
                },
            );
        }
        out.sessions += today.0;
        out.per_day.push(today);
    }
    out
}
