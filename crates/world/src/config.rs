//! World configuration: sizes, calendar, logging policy and exploration share.

use serde::{Deserialize, Serialize};

/// Preset sizes of `mmrf world generate --scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    /// 200 users, 1,500 videos, short visits: seconds to generate, for tests.
    Small,
    /// 1,000 users, KuaiRand-1K's pool size (7,388 videos), ≥ 1 M standard-log rows.
    Default,
    /// KuaiRand-1K's volume: 1,000 users, about 11.7 M standard-log rows.
    OneK,
    /// KuaiRand-27K's users (27,285) and file layout (`_27k_part1/_part2` logs,
    /// statistics in `part1..3`), over KuaiRand-Pure's pool (7,551 videos), at the default
    /// scale's visit rate: about 33 M log rows, a tenth of KuaiRand-27K's 322 M. At full
    /// volume the candidate log alone (|C| = 400 ids per request) would take about 100 GB.
    TwentySevenK,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Default => "default",
            Scale::OneK => "1k",
            Scale::TwentySevenK => "27k",
        }
    }

    /// The KuaiRand file layout a world of this scale is written in.
    pub fn version(self) -> mmrf_data::Version {
        match self {
            Scale::TwentySevenK => mmrf_data::Version::TwentySevenK,
            _ => mmrf_data::Version::OneK,
        }
    }

    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "small" => Some(Scale::Small),
            "default" => Some(Scale::Default),
            "1k" => Some(Scale::OneK),
            "27k" => Some(Scale::TwentySevenK),
            _ => None,
        }
    }
}

/// The most users a world may have: 70 times KuaiRand-27K's; its latent parameters alone
/// then take a few GB, and its logs far more.
pub const MAX_USERS: usize = 2_000_000;
/// The most videos a world may have.
pub const MAX_VIDEOS: usize = 10_000_000;

/// Everything that defines a world; with the seed it reproduces every byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldConfig {
    pub seed: u64,
    pub scale: Scale,
    pub n_users: usize,
    pub n_videos: usize,
    /// Latent topic clusters of the item catalogue.
    pub n_clusters: usize,
    /// Dimension of the latent interest / topic space.
    pub dim: usize,
    /// First and last simulated day (`YYYYMMDD`), KuaiRand's range by default.
    pub first_day: u32,
    pub last_day: u32,
    /// Mean visits (sessions) per user per day, before each user's activity multiplier.
    pub sessions_per_day: f64,
    /// Videos shown per request (paper: K = 6).
    pub k: usize,
    /// Candidates per request (paper: |C| = 400).
    pub n_candidates: usize,
    /// Share of test-period requests served uniformly at random (`is_rand = 1`).
    pub random_share: f64,
    /// Softmax temperature of the noisy logging policy (Plackett–Luce over candidates).
    pub logging_temperature: f32,
    /// How many recent impressions a policy sees as behaviour history.
    pub history_len: usize,
}

/// The world seeds settings are chosen on: every method's settings are tuned on these
/// worlds and nowhere else (`mmrf tune` runs here by default).
pub const TUNING_SEEDS: [u64; 3] = [7, 8, 9];

/// The held-out world seeds: reported, never tuned on (`mmrf tune` refuses them).
pub const HELD_OUT_SEEDS: [u64; 3] = [10, 11, 12];

impl WorldConfig {
    pub fn new(scale: Scale, seed: u64) -> Self {
        let base = WorldConfig {
            seed,
            scale,
            n_users: 1_000,
            n_videos: 7_388,
            n_clusters: 40,
            dim: 16,
            first_day: mmrf_data::schema::TRAIN_FIRST_DAY,
            last_day: mmrf_data::schema::TEST_LAST_DAY,
            sessions_per_day: 2.2,
            k: 6,
            n_candidates: 400,
            random_share: 0.02,
            logging_temperature: 0.35,
            history_len: 20,
        };
        match scale {
            Scale::Small => WorldConfig {
                n_users: 200,
                n_videos: 1_500,
                n_clusters: 20,
                sessions_per_day: 0.6,
                n_candidates: 100,
                ..base
            },
            Scale::Default => base,
            Scale::OneK => WorldConfig {
                sessions_per_day: 37.0,
                ..base
            },
            Scale::TwentySevenK => WorldConfig {
                n_users: 27_285,
                n_videos: 7_551,
                ..base
            },
        }
    }

    /// Days simulated, inclusive.
    pub fn n_days(&self) -> i64 {
        mmrf_data::time::yyyymmdd_to_days(self.last_day) - mmrf_data::time::yyyymmdd_to_days(self.first_day) + 1
    }

    /// Check sizes make sense; a clear message otherwise.
    /// About how many bytes the world's files take on disk: the default world's (553 MB for
    /// 1,000 users over 31 days at 2.2 visits a user a day, world 7) scaled by the visits
    /// and by the candidates per request (the candidate log, 400 ids a request, is 70 % of
    /// it). For refusing up front a world the disk cannot hold.
    pub fn estimated_bytes(&self) -> u64 {
        const DEFAULT_BYTES: f64 = 553e6;
        const DEFAULT_VISITS: f64 = 1_000.0 * 31.0 * 2.2;
        let visits = self.n_users as f64 * self.n_days().max(0) as f64 * self.sessions_per_day;
        let candidates = 0.3 + 0.7 * self.n_candidates as f64 / 400.0;
        (DEFAULT_BYTES * visits / DEFAULT_VISITS * candidates) as u64
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.n_users == 0 || self.n_videos == 0 {
            return Err("a world needs at least one user and one video".into());
        }
        // Bounds before anything is allocated from these sizes (a world file is input).
        for (name, value, max) in [
            ("n_users", self.n_users, MAX_USERS),
            ("n_videos", self.n_videos, MAX_VIDEOS),
            ("n_clusters", self.n_clusters, self.n_videos),
            ("dim", self.dim, 1024),
            ("history_len", self.history_len, 10_000),
        ] {
            if value > max {
                return Err(format!("{name} = {value} is above its bound {max}"));
            }
        }
        if !(self.sessions_per_day.is_finite() && (0.0..=100.0).contains(&self.sessions_per_day)) {
            return Err(format!(
                "sessions_per_day = {} must be in [0, 100]",
                self.sessions_per_day
            ));
        }
        if self.k == 0 || self.k > self.n_candidates {
            return Err(format!(
                "k = {} must be in 1..=n_candidates ({})",
                self.k, self.n_candidates
            ));
        }
        if self.n_candidates > self.n_videos || self.n_candidates > u16::MAX as usize {
            return Err(format!(
                "n_candidates = {} exceeds the pool ({} videos)",
                self.n_candidates, self.n_videos
            ));
        }
        if self.n_clusters == 0 || self.dim == 0 {
            return Err("n_clusters and dim must be positive".into());
        }
        if mmrf_data::time::parse_yyyymmdd(self.first_day).is_none()
            || mmrf_data::time::parse_yyyymmdd(self.last_day).is_none()
            || self.n_days() < 1
            || self.n_days() > 3660
        {
            return Err("first_day..last_day must be a valid YYYYMMDD range of at most 3,660 days".into());
        }
        if !(0.0..=1.0).contains(&self.random_share) || self.logging_temperature <= 0.0 {
            return Err("random_share must be in [0, 1] and logging_temperature positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_estimate_is_the_default_worlds_scaled_by_visits_and_candidates() {
        let default = WorldConfig::new(Scale::Default, 7).estimated_bytes() as f64;
        // World 7's files take 553 MB.
        assert!((500e6..600e6).contains(&default), "{default}");
        let onek = WorldConfig::new(Scale::OneK, 7).estimated_bytes() as f64;
        assert!((onek / default - 37.0 / 2.2).abs() < 0.01, "{onek}");
        let twice = WorldConfig {
            n_users: 2_000,
            ..WorldConfig::new(Scale::Default, 7)
        };
        assert!((twice.estimated_bytes() as f64 / default - 2.0).abs() < 1e-6);
        assert!(WorldConfig::new(Scale::Small, 7).estimated_bytes() < default as u64 / 10);
    }
}
