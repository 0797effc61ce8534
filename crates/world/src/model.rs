//! The latent world: users, items, authors, and how a user responds to a video.
//!
//! Everything here is drawn from the seed by [`WorldModel::new`], so a world is reloaded by
//! rebuilding it from its configuration (checked against a stored checksum).
//!
//! The response model ([`WorldModel::respond`]) has the structure the paper relies on:
//! - relevance = interest·topic + quality + the user's patience − fatigue + noise;
//! - engagement follows relevance closely, and even a swiped video is watched longer the
//!   more relevant it is, so play time is predictable from the user, the video and the
//!   state about as much as on KuaiRand (the oracle's WatchTime GAUC is above the best
//!   real-data figure of the paper's Table 1, 0.6833);
//! - like, comment and hate depend on relevance; **commenting and liking lengthen
//!   watching** (collaborative signals); **follow depends on author affinity**;
//! - within a session interest drifts toward what was watched, fatigue grows (faster on
//!   repetitive content), satisfaction is a running average of the experience, and the
//!   leave hazard after every video falls with satisfaction, rises with fatigue and jumps
//!   after a hate, so session WatchTime and Depth depend on the whole sequence.

// Vector updates below index several arrays by dimension; explicit loops read clearer.
#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{weighted::WeightedAliasIndex, Distribution, LogNormal, Normal};

use crate::config::WorldConfig;
use mmrf_data::session::Impression;

/// Independent random streams; each is further split by user (`set_stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    Catalogue = 1,
    Users = 2,
    Schedule = 3,
    Candidates = 4,
    Feedback = 5,
    Logging = 6,
    Drift = 7,
}

/// A seeded ChaCha stream for `(seed, purpose, index)`; the same triple, the same numbers.
pub fn rng(seed: u64, purpose: Stream, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ (purpose as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.set_stream(index);
    r
}

/// Standard deviation of the per-impression relevance noise.
pub const RELEVANCE_NOISE: f32 = 0.3;
/// Standard deviation of the logit noise of the share of a video an engaged user watches.
pub const FRACTION_NOISE: f32 = 0.36;
/// Slope of the engagement decision, `P(engage) = σ(k · z)`: a user's engaging with a
/// video follows what they expect of it, rather than a coin flip near even odds.
pub const ENGAGEMENT_SLOPE: f32 = 2.0;
/// Share of a swiped video's play time set by its relevance (the rest is uniform): a user
/// lingers longer on a relevant video before swiping it away.
pub const SWIPE_RELEVANCE_SHARE: f32 = 0.7;
/// Shortest and longest play of a swiped video, in ms.
pub const SWIPE_MS: (f32, f32) = (300.0, 6_500.0);

#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An index drawn with probability proportional to `weights` (which sum to `total`).
pub(crate) fn pick_weighted(weights: &[f32], total: f32, r: &mut impl Rng) -> usize {
    let mut x = r.random::<f32>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

pub(crate) fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= n);
}

fn random_unit(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    let n = Normal::new(0.0f32, 1.0).expect("valid normal");
    let mut v: Vec<f32> = (0..dim).map(|_| n.sample(rng)).collect();
    normalize(&mut v);
    v
}

/// The latent catalogue and population.
pub struct WorldModel {
    pub config: WorldConfig,
    pub dim: usize,
    // Items (videos), dense ids 0..n_videos.
    pub item_topic: Vec<f32>,
    pub item_cluster: Vec<u16>,
    pub item_quality: Vec<f32>,
    pub item_duration_ms: Vec<u32>,
    pub item_author: Vec<u32>,
    pub item_like_appeal: Vec<f32>,
    pub item_comment_appeal: Vec<f32>,
    pub item_hate_risk: Vec<f32>,
    /// Prior popularity (exposure weight of the popularity retrieval channel).
    pub item_popularity: Vec<f32>,
    pub item_tags: Vec<Vec<u16>>,
    pub cluster_center: Vec<f32>,
    pub cluster_items: Vec<Vec<u32>>,
    pub author_topic: Vec<f32>,
    // Users, dense ids 0..n_users.
    pub user_interest: Vec<f32>,
    /// Sessions per day multiplier.
    pub user_activity: Vec<f32>,
    pub user_patience: Vec<f32>,
    pub user_like: Vec<f32>,
    pub user_comment: Vec<f32>,
    pub user_follow: Vec<f32>,
    pub user_hate: Vec<f32>,
    pub user_leave: Vec<f32>,
    /// The production ranker's (noisy) estimate of each user's interest.
    pub logger_interest: Vec<f32>,
    /// The production ranker's (noisy) estimate of each item's quality.
    pub logger_quality: Vec<f32>,
    pub(crate) popularity_alias: WeightedAliasIndex<f32>,
}

/// What a user does with one video.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Feedback {
    pub play_time_ms: u32,
    pub click: bool,
    pub like: bool,
    pub follow: bool,
    pub comment: bool,
    pub forward: bool,
    pub hate: bool,
    pub long_view: bool,
    pub profile_enter: bool,
    pub profile_stay_time: u32,
    pub comment_stay_time: u32,
}

/// A user's evolving state: within a session and across days.
#[derive(Debug, Clone)]
pub struct UserState {
    pub user: u32,
    /// Long-term interest, drifting slowly day to day (change it through
    /// [`WorldModel::next_day`], which keeps the retrieval weights in step).
    pub base: Vec<f32>,
    /// Retrieval weight of each topic cluster, `exp(5 · base·centre)`; they follow `base`,
    /// so they are computed once a day rather than on every request.
    retrieval: Vec<f32>,
    retrieval_total: f32,
    /// Current interest, drifting within a session toward what was watched.
    pub interest: Vec<f32>,
    pub fatigue: f32,
    pub satisfaction: f32,
    /// Mean topic of the recent videos (repetition raises fatigue).
    pub recent_topic: Vec<f32>,
    pub followed: Vec<u32>,
    /// Last impressions, oldest first, bounded by `history_len`.
    pub history: std::collections::VecDeque<Impression>,
    pub day_index: i64,
}

impl WorldModel {
    /// Draw the world of `config` (deterministic in `config.seed`).
    pub fn new(config: WorldConfig) -> Self {
        let dim = config.dim;
        let nv = config.n_videos;
        let nu = config.n_users;
        let mut r = rng(config.seed, Stream::Catalogue, 0);
        let std = Normal::new(0.0f32, 1.0).expect("valid normal");

        let cluster_center: Vec<f32> = (0..config.n_clusters).flat_map(|_| random_unit(&mut r, dim)).collect();
        // Authors: about one per 1.15 videos (KuaiRand-Pure: 6,510 authors, 7,583 videos),
        // each with a home cluster; a video's author comes from its cluster.
        let n_authors = (nv as f32 / 1.15).ceil() as usize;
        let mut author_cluster = Vec::with_capacity(n_authors);
        let mut author_topic = Vec::with_capacity(n_authors * dim);
        let mut authors_of_cluster: Vec<Vec<u32>> = vec![Vec::new(); config.n_clusters];
        for a in 0..n_authors {
            let c = r.random_range(0..config.n_clusters);
            author_cluster.push(c);
            authors_of_cluster[c].push(a as u32);
            let mut t: Vec<f32> = (0..dim)
                .map(|d| cluster_center[c * dim + d] + 0.45 * std.sample(&mut r) / (dim as f32).sqrt())
                .collect();
            normalize(&mut t);
            author_topic.extend(t);
        }
        // Cluster sizes are uneven (Zipf-like), as content categories are.
        let cluster_weight: Vec<f32> = (0..config.n_clusters)
            .map(|c| 1.0 / (1.0 + c as f32).powf(0.7))
            .collect();
        let cluster_alias = WeightedAliasIndex::new(cluster_weight).expect("positive weights");
        let duration = LogNormal::new((24_000f32).ln(), 0.85).expect("valid lognormal");
        let mut item_topic = Vec::with_capacity(nv * dim);
        let (mut item_cluster, mut item_quality, mut item_duration_ms, mut item_author) = (
            Vec::with_capacity(nv),
            Vec::with_capacity(nv),
            Vec::with_capacity(nv),
            Vec::with_capacity(nv),
        );
        let (mut item_like_appeal, mut item_comment_appeal, mut item_hate_risk, mut item_popularity, mut item_tags) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cluster_items: Vec<Vec<u32>> = vec![Vec::new(); config.n_clusters];
        for j in 0..nv {
            let mut c = cluster_alias.sample(&mut r);
            if authors_of_cluster[c].is_empty() {
                c = author_cluster[r.random_range(0..n_authors)];
            }
            let pool = &authors_of_cluster[c];
            let author = pool[(r.random::<f32>().powf(1.6) * pool.len() as f32) as usize % pool.len()];
            let mut t: Vec<f32> = (0..dim)
                .map(|d| {
                    0.6 * cluster_center[c * dim + d]
                        + 0.4 * author_topic[author as usize * dim + d]
                        + 0.35 * std.sample(&mut r) / (dim as f32).sqrt()
                })
                .collect();
            normalize(&mut t);
            item_topic.extend(t);
            item_cluster.push(c as u16);
            item_quality.push(std.sample(&mut r));
            item_duration_ms.push(duration.sample(&mut r).clamp(3_000.0, 600_000.0) as u32);
            item_author.push(author);
            item_like_appeal.push(0.5 * std.sample(&mut r));
            item_comment_appeal.push(0.6 * std.sample(&mut r));
            // A few controversial videos carry most of the hate.
            item_hate_risk.push(if r.random::<f32>() < 0.05 {
                2.0 + std.sample(&mut r).abs()
            } else {
                0.4 * std.sample(&mut r)
            });
            item_popularity.push((1.2 * std.sample(&mut r)).exp());
            let mut tags = vec![c as u16];
            if r.random::<f32>() < 0.35 {
                tags.push((config.n_clusters + r.random_range(0..30)) as u16);
            }
            item_tags.push(tags);
            cluster_items[c].push(j as u32);
        }
        let popularity_alias = WeightedAliasIndex::new(item_popularity.clone()).expect("positive weights");
        let logger_quality: Vec<f32> = item_quality.iter().map(|q| q + 0.7 * std.sample(&mut r)).collect();

        let mut ur = rng(config.seed, Stream::Users, 0);
        let mut user_interest = Vec::with_capacity(nu * dim);
        let mut logger_interest = Vec::with_capacity(nu * dim);
        let (mut user_activity, mut user_patience, mut user_like, mut user_comment) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut user_follow, mut user_hate, mut user_leave) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..nu {
            // Interest: a mixture of 1–3 clusters' centres plus a personal direction.
            let m = 1 + ur.random_range(0..3);
            let mut v = vec![0.0f32; dim];
            for _ in 0..m {
                let c = cluster_alias.sample(&mut ur);
                let w = 0.5 + ur.random::<f32>();
                for d in 0..dim {
                    v[d] += w * cluster_center[c * dim + d];
                }
            }
            let own = random_unit(&mut ur, dim);
            for d in 0..dim {
                v[d] += 0.35 * own[d];
            }
            normalize(&mut v);
            let mut est: Vec<f32> = v
                .iter()
                .map(|x| x + 0.5 * std.sample(&mut ur) / (dim as f32).sqrt())
                .collect();
            normalize(&mut est);
            user_interest.extend_from_slice(&v);
            logger_interest.extend(est);
            user_activity.push((0.7 * std.sample(&mut ur)).exp());
            user_patience.push(0.5 * std.sample(&mut ur));
            user_like.push(0.9 * std.sample(&mut ur));
            user_comment.push(1.0 * std.sample(&mut ur));
            user_follow.push(0.8 * std.sample(&mut ur));
            user_hate.push(0.8 * std.sample(&mut ur));
            user_leave.push(0.4 * std.sample(&mut ur));
        }
        WorldModel {
            dim,
            item_topic,
            item_cluster,
            item_quality,
            item_duration_ms,
            item_author,
            item_like_appeal,
            item_comment_appeal,
            item_hate_risk,
            item_popularity,
            item_tags,
            cluster_center,
            cluster_items,
            author_topic,
            user_interest,
            user_activity,
            user_patience,
            user_like,
            user_comment,
            user_follow,
            user_hate,
            user_leave,
            logger_interest,
            logger_quality,
            popularity_alias,
            config,
        }
    }

    pub fn n_users(&self) -> usize {
        self.config.n_users
    }

    pub fn n_videos(&self) -> usize {
        self.config.n_videos
    }

    pub fn n_authors(&self) -> usize {
        self.author_topic.len() / self.dim
    }

    pub fn topic(&self, item: u32) -> &[f32] {
        &self.item_topic[item as usize * self.dim..(item as usize + 1) * self.dim]
    }

    fn author_vec(&self, author: u32) -> &[f32] {
        &self.author_topic[author as usize * self.dim..(author as usize + 1) * self.dim]
    }

    pub fn interest(&self, user: u32) -> &[f32] {
        &self.user_interest[user as usize * self.dim..(user as usize + 1) * self.dim]
    }

    /// A checksum of every latent parameter, stored with a world to verify its reload.
    pub fn checksum(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: u32| {
            h ^= x as u64;
            h = h.wrapping_mul(0x1000_0000_01b3);
        };
        for v in [
            &self.item_topic,
            &self.item_quality,
            &self.item_popularity,
            &self.user_interest,
            &self.user_patience,
            &self.logger_interest,
            &self.logger_quality,
        ] {
            v.iter().for_each(|x| eat(x.to_bits()));
        }
        self.item_duration_ms.iter().for_each(|&x| eat(x));
        self.item_author.iter().for_each(|&x| eat(x));
        h
    }

    /// A user's state at the start of day `day_index` (0 = `first_day`), nothing followed.
    ///
    /// The long-term interest drifts as a random walk from the user's own drift stream, so
    /// the state on any day is reproducible without replaying the logs.
    pub fn initial_state(&self, user: u32, day_index: i64) -> UserState {
        let mut base = self.interest(user).to_vec();
        let mut r = rng(self.config.seed, Stream::Drift, user as u64);
        let n = Normal::new(0.0f32, 0.06 / (self.dim as f32).sqrt()).expect("valid normal");
        for _ in 0..day_index {
            base.iter_mut().for_each(|x| *x += n.sample(&mut r));
            normalize(&mut base);
        }
        let mut state = UserState {
            user,
            interest: base.clone(),
            base,
            retrieval: Vec::new(),
            retrieval_total: 0.0,
            fatigue: 0.0,
            satisfaction: 0.4,
            recent_topic: vec![0.0; self.dim],
            followed: Vec::new(),
            history: std::collections::VecDeque::with_capacity(self.config.history_len),
            day_index,
        };
        self.refresh_retrieval(&mut state);
        state
    }

    fn refresh_retrieval(&self, state: &mut UserState) {
        state.retrieval.clear();
        state.retrieval.extend(
            self.cluster_center
                .chunks_exact(self.dim)
                .map(|centre| (5.0 * dot(&state.base, centre)).exp()),
        );
        state.retrieval_total = state.retrieval.iter().sum();
    }

    /// Advance a state to the next day (same drift stream as [`Self::initial_state`]).
    pub fn next_day(&self, state: &mut UserState, drift_rng: &mut ChaCha8Rng) {
        let n = Normal::new(0.0f32, 0.06 / (self.dim as f32).sqrt()).expect("valid normal");
        state.base.iter_mut().for_each(|x| *x += n.sample(drift_rng));
        normalize(&mut state.base);
        self.refresh_retrieval(state);
        state.day_index += 1;
    }

    /// Start a visit: interest resets near the long-term one, fatigue to zero.
    pub fn start_session(&self, state: &mut UserState, r: &mut impl Rng) {
        let n = Normal::new(0.0f32, 0.25 / (self.dim as f32).sqrt()).expect("valid normal");
        for d in 0..self.dim {
            state.interest[d] = state.base[d] + n.sample(r);
        }
        normalize(&mut state.interest);
        state.fatigue = 0.0;
        state.satisfaction = 0.4;
        state.recent_topic.iter_mut().for_each(|x| *x = 0.0);
    }

    /// The fatigue that watching `item` adds: a little for any video, more the closer it
    /// is to the recent videos' topics (repetition tires).
    pub fn fatigue_added(&self, state: &UserState, item: u32) -> f32 {
        let repetition = dot(&state.recent_topic, self.topic(item)).max(0.0);
        0.02 + 0.10 * repetition * repetition
    }

    /// The relevance of `item` to the user now, without the per-impression noise.
    pub fn relevance(&self, state: &UserState, item: u32) -> f32 {
        self.relevance_at(state.user, &state.interest, state.fatigue, item)
    }

    /// [`Self::relevance`] from the parts of the state it reads.
    pub fn relevance_at(&self, user: u32, interest: &[f32], fatigue: f32, item: u32) -> f32 {
        2.3 * dot(interest, self.topic(item))
            + 0.7 * self.item_quality[item as usize]
            + self.user_patience[user as usize]
            - 1.1 * fatigue
    }

    fn author_affinity(&self, state: &UserState, author: u32) -> f32 {
        dot(&state.base, self.author_vec(author)) + if state.followed.contains(&author) { 1.0 } else { 0.0 }
    }

    /// The expected feedback of `item` for a user in `state`, by `samples` draws on copies
    /// of the state (which is left unchanged): click, like, follow, comment, hate,
    /// long_view rates and the mean play time in seconds.
    pub fn expected_feedback(&self, state: &UserState, item: u32, samples: usize, r: &mut impl Rng) -> [f64; 7] {
        let mut acc = [0f64; 7];
        for _ in 0..samples.max(1) {
            let mut s = state.clone();
            let (f, _) = self.respond(&mut s, item, r);
            let x = [
                f.click as u8 as f64,
                f.like as u8 as f64,
                f.follow as u8 as f64,
                f.comment as u8 as f64,
                f.hate as u8 as f64,
                f.long_view as u8 as f64,
                f.play_time_ms as f64 / 1000.0,
            ];
            acc.iter_mut().zip(x).for_each(|(a, v)| *a += v);
        }
        acc.map(|a| a / samples.max(1) as f64)
    }

    /// The user watches `item`: sample the feedback and update the state.
    /// Returns the feedback and whether the user leaves after this video.
    pub fn respond(&self, state: &mut UserState, item: u32, r: &mut impl Rng) -> (Feedback, bool) {
        let u = state.user as usize;
        let j = item as usize;
        let noise = Normal::new(0.0f32, 1.0).expect("valid normal");
        let rel = self.relevance(state, item) + RELEVANCE_NOISE * noise.sample(r);
        let author = self.item_author[j];
        let aff = self.author_affinity(state, author);
        let mut f = Feedback {
            hate: r.random::<f32>() < sigmoid(-6.8 + self.user_hate[u] - 1.1 * rel + self.item_hate_risk[j]),
            like: r.random::<f32>() < sigmoid(-7.2 + self.user_like[u] + 1.0 * rel + self.item_like_appeal[j]),
            comment: r.random::<f32>() < sigmoid(-8.9 + self.user_comment[u] + 1.0 * rel + self.item_comment_appeal[j]),
            forward: r.random::<f32>() < sigmoid(-9.0 + 0.9 * rel + 0.5 * self.item_like_appeal[j]),
            ..Feedback::default()
        };
        if f.hate {
            f.like = false;
        }
        let dur = self.item_duration_ms[j];
        // Commenting and liking lengthen watching: the paper's collaborative premise.
        let z = -3.0 + 1.25 * rel - 0.45 * (dur as f32 / 24_000.0).ln()
            + 1.1 * f.comment as u8 as f32
            + 0.5 * f.like as u8 as f32
            - 3.0 * f.hate as u8 as f32;
        // Videos are swiped away within seconds unless the user engages, sooner the less
        // relevant they are; an engaged user watches most of the video, sometimes more
        // than once. (`mmrf_world::oracle` computes the expectation of exactly this.)
        let play = if r.random::<f32>() < sigmoid(ENGAGEMENT_SLOPE * z) {
            let mut frac = sigmoid(z + 2.2 + FRACTION_NOISE * noise.sample(r));
            if frac > 0.85 && r.random::<f32>() < sigmoid(z - 1.5) {
                frac += r.random::<f32>() * if dur < 20_000 { 2.0 } else { 0.5 };
            }
            (dur as f32 * frac).round() as u32
        } else {
            let (lo, hi) = SWIPE_MS;
            let share = (1.0 - SWIPE_RELEVANCE_SHARE) * r.random::<f32>() + SWIPE_RELEVANCE_SHARE * sigmoid(rel);
            ((lo + (hi - lo) * share) as u32).min(dur)
        };
        f.play_time_ms = play;
        f.click = mmrf_data::schema::is_valid_play(play, dur);
        f.long_view = mmrf_data::schema::is_long_view(play, dur);
        if !state.followed.contains(&author) {
            f.follow = r.random::<f32>()
                < sigmoid(-9.9 + self.user_follow[u] + 2.2 * aff + 0.5 * rel + f.comment as u8 as f32);
        }
        f.profile_enter = f.follow || r.random::<f32>() < sigmoid(-5.2 + 1.5 * aff + 0.4 * rel);
        if f.profile_enter {
            f.profile_stay_time = 1 + (r.random::<f32>() * 30.0) as u32;
        }
        if f.comment || r.random::<f32>() < 0.01 {
            f.comment_stay_time = 1 + (r.random::<f32>() * 40.0) as u32;
        }
        if f.follow {
            state.followed.push(author);
        }

        // Session dynamics.
        let watched = (play as f32 / dur.max(1) as f32).min(1.0);
        let topic = self.topic(item);
        state.fatigue += self.fatigue_added(state, item);
        for d in 0..self.dim {
            state.interest[d] += 0.10 * watched * (topic[d] - state.interest[d]);
            state.recent_topic[d] = 0.6 * state.recent_topic[d] + 0.4 * topic[d];
        }
        normalize(&mut state.interest);
        let joy = watched + 0.6 * f.like as u8 as f32 + 0.8 * f.comment as u8 as f32 + 0.5 * f.follow as u8 as f32
            - 3.0 * f.hate as u8 as f32;
        state.satisfaction = 0.75 * state.satisfaction + 0.25 * joy;
        let mut hazard = sigmoid(-2.9 + self.user_leave[u] - 3.2 * (state.satisfaction - 0.4) + 1.3 * state.fatigue);
        if f.hate {
            hazard = hazard.max(0.45);
        }
        let leave = r.random::<f32>() < hazard;
        if state.history.len() == self.config.history_len {
            state.history.pop_front();
        }
        if self.config.history_len > 0 {
            state.history.push_back(Impression {
                video: item,
                play_time_ms: play,
                duration_ms: dur,
                click: f.click,
                like: f.like,
                follow: f.follow,
                comment: f.comment,
                hate: f.hate,
                long_view: f.long_view,
            });
        }
        (f, leave)
    }

    /// Draw `n` distinct candidates for a request: about 60 % from the user's interest
    /// clusters, the rest by popularity (a two-channel retrieval stage).
    pub fn candidates(&self, state: &UserState, n: usize, r: &mut impl Rng, out: &mut Vec<u32>, seen: &mut Vec<u32>) {
        out.clear();
        let n = n.min(self.n_videos());
        // `seen` is a per-caller stamp buffer: seen[v] == stamp marks v as taken.
        if seen.len() != self.n_videos() + 1 {
            seen.clear();
            seen.resize(self.n_videos() + 1, 0);
        }
        let stamp_slot = self.n_videos();
        seen[stamp_slot] = seen[stamp_slot].wrapping_add(1);
        if seen[stamp_slot] == 0 {
            seen.iter_mut().for_each(|x| *x = 0);
            seen[stamp_slot] = 1;
        }
        let stamp = seen[stamp_slot];
        let interest_n = (n as f32 * 0.6) as usize;
        let mut tries = 0;
        while out.len() < n && tries < n * 40 {
            tries += 1;
            let v = if out.len() < interest_n {
                let c = pick_weighted(&state.retrieval, state.retrieval_total, r);
                let items = &self.cluster_items[c];
                if items.is_empty() {
                    continue;
                }
                items[r.random_range(0..items.len())]
            } else {
                self.popularity_alias.sample(r) as u32
            };
            if seen[v as usize] != stamp {
                seen[v as usize] = stamp;
                out.push(v);
            }
        }
        // Fill deterministically if sampling was unlucky (tiny pools).
        let mut v = 0u32;
        while out.len() < n {
            if seen[v as usize] != stamp {
                seen[v as usize] = stamp;
                out.push(v);
            }
            v += 1;
        }
    }

    /// The production ranker's score: estimated interest, estimated quality, popularity.
    pub fn logging_score(&self, user: u32, item: u32) -> f32 {
        let est = &self.logger_interest[user as usize * self.dim..(user as usize + 1) * self.dim];
        2.0 * dot(est, self.topic(item))
            + 0.6 * self.logger_quality[item as usize]
            + 0.25 * self.item_popularity[item as usize].ln()
    }
}
