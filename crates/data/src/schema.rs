//! The KuaiRand schema: file names, column names and the feedback signals.
//!
//! These are facts about the published dataset (see `DESIGN.md` §2); the world generator
//! writes exactly these names so that the synthetic and the real path never fork.

use std::path::{Path, PathBuf};

/// The 19 columns of every KuaiRand log file, in order.
pub const LOG_COLUMNS: [&str; 19] = [
    "user_id",
    "video_id",
    "date",
    "hourmin",
    "time_ms",
    "is_click",
    "is_like",
    "is_follow",
    "is_comment",
    "is_forward",
    "is_hate",
    "long_view",
    "play_time_ms",
    "duration_ms",
    "profile_stay_time",
    "comment_stay_time",
    "is_profile_enter",
    "is_rand",
    "tab",
];

/// The 31 columns of `user_features_*.csv`, in order.
pub const USER_COLUMNS: [&str; 31] = [
    "user_id",
    "user_active_degree",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
    "follow_user_num",
    "follow_user_num_range",
    "fans_user_num",
    "fans_user_num_range",
    "friend_user_num",
    "friend_user_num_range",
    "register_days",
    "register_days_range",
    "onehot_feat0",
    "onehot_feat1",
    "onehot_feat2",
    "onehot_feat3",
    "onehot_feat4",
    "onehot_feat5",
    "onehot_feat6",
    "onehot_feat7",
    "onehot_feat8",
    "onehot_feat9",
    "onehot_feat10",
    "onehot_feat11",
    "onehot_feat12",
    "onehot_feat13",
    "onehot_feat14",
    "onehot_feat15",
    "onehot_feat16",
    "onehot_feat17",
];

/// The 12 columns of `video_features_basic_*.csv`, in order.
pub const VIDEO_BASIC_COLUMNS: [&str; 12] = [
    "video_id",
    "author_id",
    "video_type",
    "upload_dt",
    "upload_type",
    "visible_status",
    "video_duration",
    "server_width",
    "server_height",
    "music_id",
    "music_type",
    "tag",
];

/// The columns of `video_features_statistic_*.csv`. Read by header name: all but
/// `video_id` and `counts` are floats (daily averages over the month).
pub const VIDEO_STAT_COLUMNS: [&str; 52] = [
    "video_id",
    "counts",
    "show_cnt",
    "show_user_num",
    "play_cnt",
    "play_user_num",
    "play_duration",
    "complete_play_cnt",
    "complete_play_user_num",
    "valid_play_cnt",
    "valid_play_user_num",
    "long_time_play_cnt",
    "long_time_play_user_num",
    "short_time_play_cnt",
    "short_time_play_user_num",
    "play_progress",
    "comment_stay_duration",
    "like_cnt",
    "like_user_num",
    "click_like_cnt",
    "double_click_cnt",
    "cancel_like_cnt",
    "cancel_like_user_num",
    "comment_cnt",
    "comment_user_num",
    "direct_comment_cnt",
    "reply_comment_cnt",
    "delete_comment_cnt",
    "delete_comment_user_num",
    "comment_like_cnt",
    "comment_like_user_num",
    "follow_cnt",
    "follow_user_num",
    "cancel_follow_cnt",
    "cancel_follow_user_num",
    "share_cnt",
    "share_user_num",
    "download_cnt",
    "download_user_num",
    "report_cnt",
    "report_user_num",
    "reduce_similar_cnt",
    "reduce_similar_user_num",
    "collect_cnt",
    "collect_user_num",
    "cancel_collect_cnt",
    "cancel_collect_user_num",
    "direct_comment_user_num",
    "reply_comment_user_num",
    "share_all_cnt",
    "share_all_user_num",
    "outsite_share_all_cnt",
];

/// KuaiRand's marker for a missing value in the feature files.
pub const MISSING_MARKER: i64 = -124;

/// First day of the standard log's training period (`4_08_to_4_21`).
pub const TRAIN_FIRST_DAY: u32 = 20220408;
/// First day of the test period (`4_22_to_5_08`), also the random log's period.
pub const TEST_FIRST_DAY: u32 = 20220422;
/// Last day of the test period.
pub const TEST_LAST_DAY: u32 = 20220508;

/// A published KuaiRand version; decides the file-name suffix and the file splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// KuaiRand-1K: 1,000 users (suffix `_1k`).
    OneK,
    /// KuaiRand-Pure: 27,285 users, the 7,583-video candidate pool (suffix `_pure`).
    Pure,
    /// KuaiRand-27K: logs in `_part1/_part2`, statistics in `part1..3` (suffix `_27k`).
    TwentySevenK,
}

/// Which split a log file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LogSplit {
    /// `log_standard_4_08_to_4_21_*`: the training period.
    Train,
    /// `log_standard_4_22_to_5_08_*`: the held-out test period.
    Test,
    /// `log_random_4_22_to_5_08_*`: random exposure, the unbiased test set.
    Random,
}

impl LogSplit {
    pub const ALL: [LogSplit; 3] = [LogSplit::Train, LogSplit::Test, LogSplit::Random];

    pub fn name(self) -> &'static str {
        match self {
            LogSplit::Train => "standard_train",
            LogSplit::Test => "standard_test",
            LogSplit::Random => "random",
        }
    }
}

impl Version {
    pub const ALL: [Version; 3] = [Version::OneK, Version::Pure, Version::TwentySevenK];

    /// The file-name suffix, without the leading underscore.
    pub fn suffix(self) -> &'static str {
        match self {
            Version::OneK => "1k",
            Version::Pure => "pure",
            Version::TwentySevenK => "27k",
        }
    }

    pub fn user_features(self) -> String {
        format!("user_features_{}.csv", self.suffix())
    }

    pub fn video_features_basic(self) -> String {
        format!("video_features_basic_{}.csv", self.suffix())
    }

    /// The statistics file(s), in the order their rows are concatenated.
    pub fn video_features_statistic(self) -> Vec<String> {
        match self {
            Version::TwentySevenK => (1..=3)
                .map(|p| format!("video_features_statistic_27k_part{p}.csv"))
                .collect(),
            v => vec![format!("video_features_statistic_{}.csv", v.suffix())],
        }
    }

    /// The log file(s) of a split, in the order their rows are concatenated.
    pub fn log_files(self, split: LogSplit) -> Vec<String> {
        let stem = match split {
            LogSplit::Train => "log_standard_4_08_to_4_21",
            LogSplit::Test => "log_standard_4_22_to_5_08",
            LogSplit::Random => "log_random_4_22_to_5_08",
        };
        match (self, split) {
            (Version::TwentySevenK, LogSplit::Train | LogSplit::Test) => {
                (1..=2).map(|p| format!("{stem}_27k_part{p}.csv")).collect()
            }
            (v, _) => vec![format!("{stem}_{}.csv", v.suffix())],
        }
    }

    /// Whether `name` is one of the version's log files.
    pub fn is_log(self, name: &str) -> bool {
        LogSplit::ALL
            .iter()
            .any(|&s| self.log_files(s).iter().any(|f| f == name))
    }

    /// Every file of the version, as shipped.
    pub fn all_files(self) -> Vec<String> {
        let mut files = Vec::new();
        for split in LogSplit::ALL {
            files.extend(self.log_files(split));
        }
        files.push(self.user_features());
        files.push(self.video_features_basic());
        files.extend(self.video_features_statistic());
        files
    }

    /// Guess the version of a directory from its user-feature file.
    pub fn detect(dir: &Path) -> Option<Version> {
        Version::ALL.into_iter().find(|v| dir.join(v.user_features()).is_file())
    }

    /// Paths of a split's log files inside `dir`.
    pub fn log_paths(self, dir: &Path, split: LogSplit) -> Vec<PathBuf> {
        self.log_files(split).iter().map(|f| dir.join(f)).collect()
    }
}

/// The feedback signals, one agent each, in the paper's order; the last is the main goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Signal {
    Click,
    Like,
    Follow,
    Comment,
    Hate,
    LongView,
    WatchTime,
}

impl Signal {
    /// All signals; agent `i` optimises `Signal::ALL[i]`.
    pub const ALL: [Signal; 7] = [
        Signal::Click,
        Signal::Like,
        Signal::Follow,
        Signal::Comment,
        Signal::Hate,
        Signal::LongView,
        Signal::WatchTime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::Click => "Click",
            Signal::Like => "Like",
            Signal::Follow => "Follow",
            Signal::Comment => "Comment",
            Signal::Hate => "Hate",
            Signal::LongView => "LongView",
            Signal::WatchTime => "WatchTime",
        }
    }

    /// The KuaiRand log column holding the signal.
    pub fn log_column(self) -> &'static str {
        match self {
            Signal::Click => "is_click",
            Signal::Like => "is_like",
            Signal::Follow => "is_follow",
            Signal::Comment => "is_comment",
            Signal::Hate => "is_hate",
            Signal::LongView => "long_view",
            Signal::WatchTime => "play_time_ms",
        }
    }

    /// Hate is a cost: lower is better.
    pub fn higher_is_better(self) -> bool {
        self != Signal::Hate
    }

    /// WatchTime is continuous; the others are binary.
    pub fn is_binary(self) -> bool {
        self != Signal::WatchTime
    }
}

/// KuaiRand's `is_click` rule for the single-column UI: a valid play.
pub fn is_valid_play(play_time_ms: u32, duration_ms: u32) -> bool {
    if duration_ms <= 7_000 {
        play_time_ms >= duration_ms
    } else {
        play_time_ms > 7_000
    }
}

/// KuaiRand's `long_view` rule.
pub fn is_long_view(play_time_ms: u32, duration_ms: u32) -> bool {
    if duration_ms <= 18_000 {
        play_time_ms >= duration_ms
    } else {
        play_time_ms >= 18_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_match_kuairand() {
        assert_eq!(
            Version::OneK.all_files(),
            vec![
                "log_standard_4_08_to_4_21_1k.csv",
                "log_standard_4_22_to_5_08_1k.csv",
                "log_random_4_22_to_5_08_1k.csv",
                "user_features_1k.csv",
                "video_features_basic_1k.csv",
                "video_features_statistic_1k.csv",
            ]
        );
        let k27 = Version::TwentySevenK.all_files();
        assert!(k27.contains(&"log_standard_4_08_to_4_21_27k_part2.csv".to_string()));
        assert!(k27.contains(&"video_features_statistic_27k_part3.csv".to_string()));
        assert!(k27.contains(&"log_random_4_22_to_5_08_27k.csv".to_string()));
        assert_eq!(k27.len(), 10);
    }

    #[test]
    fn kuairand_rules() {
        assert!(is_valid_play(5_000, 5_000));
        assert!(!is_valid_play(4_999, 5_000));
        assert!(!is_valid_play(7_000, 60_000));
        assert!(is_valid_play(7_001, 60_000));
        assert!(is_long_view(12_000, 12_000));
        assert!(!is_long_view(17_999, 60_000));
        assert!(is_long_view(18_000, 60_000));
    }
}
