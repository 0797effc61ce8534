//! The world one request at a time: a caller's scores in, the user's feedback out.
//!
//! An [`Episode`] is one visit of one user, driven by whoever holds it (a Python agent
//! through `mmrf-py`'s Gymnasium environment, a Rust loop) instead of by a [`Policy`]
//! inside [`crate::run_policy`]. It shares the online test's code for drawing candidates
//! and showing the best-scored K, and its random streams are keyed by the episode's seed
//! and user, so the same seed gives the same visit, the same candidates and the same
//! feedback to the same scores.
//!
//! [`Policy`]: crate::Policy

use rand::Rng;

use mmrf_data::session::RequestState;

use crate::model::{rng, Stream, UserState, WorldModel};
pub use crate::sim::End;
use crate::sim::{
    draw_request, rank_keys, show_best, visit_start, Scratch, UserRngs, Viewed, MAX_REQUESTS_PER_SESSION,
};

/// Days an episode's visit is drawn from, counted from the online test's first day: the
/// week that [`crate::OnlineConfig`]'s default simulates.
pub const EPISODE_DAYS: u32 = 7;

/// One visit of one user, a request at a time.
pub struct Episode {
    state: UserState,
    rngs: UserRngs,
    scratch: Scratch,
    /// The current request's start (ms since the epoch), and the end of the visit's day.
    t: i64,
    deadline: i64,
    tab: u8,
    hour: u8,
    position: u16,
    end: Option<End>,
}

/// What one step showed.
pub struct Step<'a> {
    /// The viewed videos, in the order shown, with the user's feedback.
    pub viewed: &'a [Viewed],
    /// `Some` when the visit is over.
    pub end: Option<End>,
}

impl Episode {
    /// A visit drawn by `seed`: the user (`user`, or one drawn uniformly), the day within
    /// the online test's week, the hour and the tab. The user's state is the world's state
    /// of that user at the start of that day, with no history yet.
    pub fn start(model: &WorldModel, seed: u64, user: Option<u32>) -> Result<Episode, String> {
        let n_users = model.n_users() as u32;
        if let Some(u) = user.filter(|&u| u >= n_users) {
            return Err(format!("user {u} is not in this world (it has users 0..{n_users})"));
        }
        let base = model.config.seed ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut pick = rng(base, Stream::Schedule, u64::from(u32::MAX) + 1);
        let user = user.unwrap_or_else(|| pick.random_range(0..n_users));
        let day = pick.random_range(0..EPISODE_DAYS) as i64;
        let first = mmrf_data::time::yyyymmdd_to_days(model.config.first_day);
        let start = mmrf_data::time::yyyymmdd_to_days(mmrf_data::schema::TEST_FIRST_DAY) + day;
        let day_start = mmrf_data::time::day_start_ms(mmrf_data::time::days_to_yyyymmdd(start));
        let (t0, tab) = visit_start(day_start, &mut pick);
        let mut episode = Episode {
            state: model.initial_state(user, (start - first).max(0)),
            rngs: UserRngs {
                candidates: rng(base, Stream::Candidates, user as u64),
                feedback: rng(base, Stream::Feedback, user as u64),
                policy: rng(base, Stream::Logging, user as u64),
            },
            scratch: Scratch::default(),
            t: t0,
            deadline: day_start + mmrf_data::time::DAY_MS,
            tab,
            hour: 0,
            position: 0,
            end: None,
        };
        model.start_session(&mut episode.state, &mut episode.rngs.feedback);
        episode.hour = draw_request(
            model,
            &mut episode.state,
            episode.t,
            &mut episode.rngs,
            &mut episode.scratch,
        );
        Ok(episode)
    }

    /// The current request as a ranker sees it: user, time, context and history.
    pub fn request(&self) -> RequestState<'_> {
        RequestState {
            user: self.state.user,
            time_ms: self.t,
            hour: self.hour,
            tab: self.tab,
            position: self.position,
            history: self.state.history.as_slices().0,
        }
    }

    /// The current request's candidates (video ids).
    pub fn candidates(&self) -> &[u32] {
        &self.scratch.candidates
    }

    /// The world's own state of the user: what only an oracle may read.
    pub fn truth(&self) -> &UserState {
        &self.state
    }

    /// `Some` once the visit is over.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// Show the request's K best-scored candidates (best first; ties to the earlier
    /// candidate, a NaN score last), or with `temperature` K draws without replacement
    /// from `softmax(score / τ)`; the user responds, and unless the visit is over the next
    /// request's candidates are drawn.
    pub fn step(&mut self, model: &WorldModel, scores: &[f32], temperature: Option<f32>) -> Result<Step<'_>, String> {
        if self.end.is_some() {
            return Err("the episode is over: start a new one".into());
        }
        if scores.len() != self.scratch.candidates.len() {
            return Err(format!(
                "{} scores for {} candidates: give one score per candidate",
                scores.len(),
                self.scratch.candidates.len()
            ));
        }
        if let Some(tau) = temperature.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(format!("temperature {tau} must be a positive number"));
        }
        self.scratch.scores.clear();
        self.scratch.scores.extend_from_slice(scores);
        rank_keys(temperature, &mut self.rngs.policy, &mut self.scratch);
        let ended = show_best(
            model,
            &mut self.state,
            &mut self.t,
            self.deadline,
            &mut self.rngs,
            &mut self.scratch,
        );
        self.position += 1;
        self.end = match ended {
            Some(end) => Some(end),
            // No video fits before the day ends.
            None if self.scratch.viewed.is_empty() => Some(End::Cut),
            None if self.position >= MAX_REQUESTS_PER_SESSION => Some(End::Cut),
            None => None,
        };
        if self.end.is_none() {
            self.hour = draw_request(model, &mut self.state, self.t, &mut self.rngs, &mut self.scratch);
        }
        Ok(Step {
            viewed: &self.scratch.viewed,
            end: self.end,
        })
    }
}
