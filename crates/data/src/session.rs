//! Impressions → sessions → requests (`DESIGN.md` §3).
//!
//! A **request** is one call of the ranker: a user, a time, a context, a candidate set and
//! the impressions it showed. A **session** is the requests of one visit.
//!
//! - With a candidate log (generated worlds) the requests are the logged ones, with their
//!   real candidate sets.
//! - Real KuaiRand logs carry impressions only: each user's impressions are sorted by time,
//!   split into sessions at an inactivity gap (default 30 min) and chunked into requests of
//!   K; the non-impression candidates are drawn popularity-proportionally from the video
//!   pool, seeded per request so any request's candidates can be re-drawn on demand.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{weighted::WeightedAliasIndex, Distribution};

use crate::log::LogColumns;
use crate::schema::LogSplit;
use crate::side::CandidateLog;

/// How requests are rebuilt from plain impressions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionConfig {
    /// A gap longer than this between two impressions starts a new session.
    pub gap_ms: i64,
    /// Impressions per request (paper: K = 6).
    pub k: usize,
    /// Candidates per request, shown ones included (paper: |C| = 400).
    pub n_candidates: usize,
    /// Seed of the candidate sampler.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            gap_ms: 30 * 60 * 1000,
            k: 6,
            n_candidates: 400,
            seed: 0,
        }
    }
}

/// One request: which log rows it showed and where its candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub user: u32,
    /// Global session index (dense, in order of first appearance).
    pub session: u32,
    /// Index of the request within its session, from 0.
    pub position: u16,
    /// The shown rows are `RequestSet::rows[row_start..row_start + n_shown]`.
    pub row_start: u32,
    pub n_shown: u16,
    /// Index into the candidate log when the data has one.
    pub logged: Option<u32>,
}

/// The requests of one log split.
pub struct RequestSet<'a> {
    pub split: LogSplit,
    pub requests: Vec<Request>,
    /// Log row indices, grouped by request.
    pub rows: Vec<u32>,
    pub n_sessions: u32,
    source: CandidateSource<'a>,
}

enum CandidateSource<'a> {
    Logged(&'a CandidateLog),
    Sampled {
        alias: WeightedAliasIndex<f32>,
        n_candidates: usize,
        seed: u64,
        n_videos: usize,
    },
}

/// Video popularity (impression counts + 1) over a log, the default candidate-pool weight.
pub fn popularity(log: &LogColumns, n_videos: usize) -> Vec<f32> {
    let mut w = vec![1.0f32; n_videos];
    for &v in &log.video {
        w[v as usize] += 1.0;
    }
    w
}

impl<'a> RequestSet<'a> {
    /// Requests from a candidate log (only those of `split`).
    pub fn from_candidate_log(split: LogSplit, log: &'a CandidateLog) -> Self {
        let mut requests = Vec::new();
        let mut rows = Vec::new();
        let mut n_sessions = 0;
        let mut last: Option<(u32, u32)> = None;
        let mut position = 0u16;
        for (i, r) in log.requests.iter().enumerate() {
            if r.split != split {
                continue;
            }
            let key = (r.user, r.session);
            if last != Some(key) {
                n_sessions += 1;
                position = 0;
                last = Some(key);
            } else {
                position += 1;
            }
            requests.push(Request {
                user: r.user,
                session: n_sessions - 1,
                position,
                row_start: rows.len() as u32,
                n_shown: r.n_shown,
                logged: Some(i as u32),
            });
            rows.extend(r.first_row..r.first_row + r.n_shown as u32);
        }
        RequestSet {
            split,
            requests,
            rows,
            n_sessions,
            source: CandidateSource::Logged(log),
        }
    }

    /// Requests rebuilt from impressions; candidates sampled from `pool_weight`.
    ///
    /// Panics if `pool_weight` is empty or has no positive weight (a caller bug: the
    /// pool is the dataset's videos).
    pub fn rebuild(split: LogSplit, log: &LogColumns, pool_weight: &[f32], cfg: &SessionConfig) -> Self {
        let mut order: Vec<u32> = (0..log.len() as u32).collect();
        order.sort_by_key(|&i| (log.user[i as usize], log.time_ms[i as usize], i));
        let mut requests = Vec::with_capacity(log.len() / cfg.k.max(1) + 1);
        let mut n_sessions = 0u32;
        let k = cfg.k.max(1);
        let mut i = 0;
        while i < order.len() {
            // One session: same user, consecutive gaps within the limit.
            let start = i;
            let user = log.user[order[i] as usize];
            i += 1;
            while i < order.len()
                && log.user[order[i] as usize] == user
                && log.time_ms[order[i] as usize] - log.time_ms[order[i - 1] as usize] <= cfg.gap_ms
            {
                i += 1;
            }
            for (position, chunk_start) in (start..i).step_by(k).enumerate() {
                requests.push(Request {
                    user,
                    session: n_sessions,
                    position: position.min(u16::MAX as usize) as u16,
                    row_start: chunk_start as u32,
                    n_shown: (i - chunk_start).min(k) as u16,
                    logged: None,
                });
            }
            n_sessions += 1;
        }
        let alias = WeightedAliasIndex::new(pool_weight.to_vec())
            .expect("candidate pool weights must be non-empty, finite and not all zero");
        RequestSet {
            split,
            requests,
            rows: order,
            n_sessions,
            source: CandidateSource::Sampled {
                alias,
                n_candidates: cfg.n_candidates,
                seed: cfg.seed,
                n_videos: pool_weight.len(),
            },
        }
    }

    /// The most impressions any request shows (K; 0 without requests).
    pub fn max_shown(&self) -> usize {
        self.requests.iter().map(|r| r.n_shown as usize).max().unwrap_or(0)
    }

    /// The log rows a request showed.
    pub fn shown_rows(&self, r: &Request) -> &[u32] {
        &self.rows[r.row_start as usize..r.row_start as usize + r.n_shown as usize]
    }

    /// The videos request `index` showed, in the order shown.
    pub fn shown_videos(&self, index: usize, log: &LogColumns) -> Vec<u32> {
        self.shown_rows(&self.requests[index])
            .iter()
            .map(|&row| log.video[row as usize])
            .collect()
    }

    /// The request's candidate set (shown videos included) into `out`.
    ///
    /// Sampled sets are deterministic in (seed, request index) and shuffled, so a
    /// candidate's position carries no information about whether it was shown. Logged sets
    /// are read from the candidate file, which fails only if it became unreadable.
    pub fn candidates(&self, index: usize, log: &LogColumns, out: &mut Vec<u32>) -> crate::Result<()> {
        out.clear();
        let r = &self.requests[index];
        match &self.source {
            CandidateSource::Logged(c) => {
                let lr = &c.requests[r.logged.expect("logged request") as usize];
                c.candidates_into(lr, out)?;
            }
            CandidateSource::Sampled {
                alias,
                n_candidates,
                seed,
                n_videos,
            } => {
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                rng.set_stream(index as u64 + 1);
                out.extend(self.shown_rows(r).iter().map(|&row| log.video[row as usize]));
                out.sort_unstable();
                out.dedup();
                let target = (*n_candidates).min(*n_videos).max(out.len());
                let mut taken = out.clone();
                // Rejection sampling; bounded so a tiny pool cannot loop forever.
                let mut tries = 0;
                while out.len() < target && tries < target * 50 {
                    let v = alias.sample(&mut rng) as u32;
                    tries += 1;
                    if let Err(pos) = taken.binary_search(&v) {
                        taken.insert(pos, v);
                        out.push(v);
                    }
                }
                out.shuffle(&mut rng);
            }
        }
        Ok(())
    }
}

/// One past impression in a user's behaviour history, with its feedback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impression {
    pub video: u32,
    pub play_time_ms: u32,
    pub duration_ms: u32,
    pub click: bool,
    pub like: bool,
    pub follow: bool,
    pub comment: bool,
    pub hate: bool,
    pub long_view: bool,
}

impl Impression {
    /// The impression at row `i` of a log.
    pub fn from_log(log: &LogColumns, i: usize) -> Self {
        Impression {
            video: log.video[i],
            play_time_ms: log.play_time_ms[i],
            duration_ms: log.duration_ms[i],
            click: log.is_click[i] != 0,
            like: log.is_like[i] != 0,
            follow: log.is_follow[i] != 0,
            comment: log.is_comment[i] != 0,
            hate: log.is_hate[i] != 0,
            long_view: log.long_view[i] != 0,
        }
    }

    /// The value of a signal: 0/1, or seconds for WatchTime.
    pub fn label(&self, signal: crate::Signal) -> f32 {
        use crate::Signal::*;
        match signal {
            Click => self.click as u8 as f32,
            Like => self.like as u8 as f32,
            Follow => self.follow as u8 as f32,
            Comment => self.comment as u8 as f32,
            Hate => self.hate as u8 as f32,
            LongView => self.long_view as u8 as f32,
            WatchTime => self.play_time_ms as f32 / 1000.0,
        }
    }
}

/// What a ranker sees when it is called: the state `s_t` of `DESIGN.md` §3, less the
/// profile and item features, which a policy looks up by id in its own tables.
#[derive(Debug, Clone, Copy)]
pub struct RequestState<'a> {
    pub user: u32,
    pub time_ms: i64,
    /// Hour of day (Beijing time), 0..24.
    pub hour: u8,
    pub tab: u8,
    /// Index of the request within its session, from 0.
    pub position: u16,
    /// The user's last impressions, oldest first.
    pub history: &'a [Impression],
}

/// Every user's impressions over all splits in time order, so that any request's history
/// (the impressions before it, across train, test and random exposure) is a slice.
pub struct Timelines {
    /// User `u`'s impressions are `items[offsets[u]..offsets[u + 1]]`.
    offsets: Vec<u32>,
    items: Vec<Impression>,
    /// Per split, the position of each log row in its user's timeline.
    position: [Vec<u32>; 3],
}

impl Timelines {
    pub fn build(data: &crate::Dataset) -> Timelines {
        let n_users = data.users.len();
        let mut all: Vec<(u32, i64, u8, u32)> = Vec::new();
        for (s, split) in LogSplit::ALL.iter().enumerate() {
            let log = data.log(*split);
            all.extend((0..log.len()).map(|i| (log.user[i], log.time_ms[i], s as u8, i as u32)));
        }
        all.sort_unstable();
        let mut offsets = vec![0u32; n_users + 1];
        for &(u, ..) in &all {
            offsets[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            offsets[u + 1] += offsets[u];
        }
        let mut position: [Vec<u32>; 3] = LogSplit::ALL.map(|s| vec![0; data.log(s).len()]);
        let mut items = Vec::with_capacity(all.len());
        for (k, &(u, _, s, i)) in all.iter().enumerate() {
            position[s as usize][i as usize] = k as u32 - offsets[u as usize];
            items.push(Impression::from_log(data.log(LogSplit::ALL[s as usize]), i as usize));
        }
        Timelines {
            offsets,
            items,
            position,
        }
    }

    /// All of the user's logged impressions, oldest first (empty for an unknown user).
    pub fn user(&self, user: u32) -> &[Impression] {
        let u = user as usize;
        if u + 1 >= self.offsets.len() {
            return &[];
        }
        &self.items[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }

    /// The user's last `len` impressions before row `row` of `split`, oldest first.
    pub fn history(&self, user: u32, split: LogSplit, row: u32, len: usize) -> &[Impression] {
        let s = LogSplit::ALL.iter().position(|&x| x == split).unwrap_or(0);
        let start = self.offsets[user as usize] as usize;
        let at = start + self.position[s][row as usize] as usize;
        &self.items[at.saturating_sub(len).max(start)..at]
    }

    /// The state a ranker saw at request `index` of `set` (`len` impressions of history).
    pub fn state<'t>(&'t self, set: &RequestSet<'_>, log: &LogColumns, index: usize, len: usize) -> RequestState<'t> {
        let r = &set.requests[index];
        let first = set
            .shown_rows(r)
            .iter()
            .copied()
            .min_by_key(|&row| (log.time_ms[row as usize], row))
            .unwrap_or(0);
        let i = first as usize;
        RequestState {
            user: r.user,
            time_ms: log.time_ms[i],
            hour: (log.hourmin[i] / 100) as u8,
            tab: log.tab[i],
            position: r.position,
            history: self.history(r.user, set.split, first, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogRow;

    fn log_of(rows: &[(u32, u32, i64)]) -> LogColumns {
        let mut log = LogColumns::default();
        for &(user, video, time_ms) in rows {
            log.push_row(&LogRow {
                user,
                video,
                time_ms,
                ..LogRow::default()
            });
        }
        log
    }

    #[test]
    fn sessions_split_on_gap_and_chunk_by_k() {
        let min = 60_000;
        // user 1: 7 impressions in one visit, then one after 31 minutes; user 0: 2, out of order.
        let mut rows: Vec<(u32, u32, i64)> = (0..7).map(|i| (1, i, i as i64 * min)).collect();
        rows.push((1, 9, 6 * min + 31 * min));
        rows.push((0, 3, 5 * min));
        rows.push((0, 4, min));
        let log = log_of(&rows);
        let cfg = SessionConfig {
            k: 3,
            n_candidates: 8,
            ..SessionConfig::default()
        };
        let pool = vec![1.0; 10];
        let set = RequestSet::rebuild(LogSplit::Train, &log, &pool, &cfg);
        assert_eq!(set.n_sessions, 3);
        let shape: Vec<(u32, u32, u16, u16)> = set
            .requests
            .iter()
            .map(|r| (r.user, r.session, r.position, r.n_shown))
            .collect();
        assert_eq!(
            shape,
            vec![(0, 0, 0, 2), (1, 1, 0, 3), (1, 1, 1, 3), (1, 1, 2, 1), (1, 2, 0, 1)]
        );
        assert_eq!(set.max_shown(), 3);
        // user 0's impressions come out in time order: video 4 (t=1min) before video 3.
        let first: Vec<u32> = set
            .shown_rows(&set.requests[0])
            .iter()
            .map(|&r| log.video[r as usize])
            .collect();
        assert_eq!(first, vec![4, 3]);
        let mut c = Vec::new();
        set.candidates(1, &log, &mut c).unwrap();
        let mut again = Vec::new();
        set.candidates(1, &log, &mut again).unwrap();
        assert_eq!(c, again, "candidates are deterministic");
        assert_eq!(c.len(), 8);
        let mut sorted = c.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "no duplicate candidates");
        for v in [0, 1, 2] {
            assert!(c.contains(&v), "shown video {v} is a candidate");
        }
    }
}
