//! Generate a world's KuaiRand file set: logs, feature files, statistics and side files.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;
use rayon::prelude::*;

use mmrf_data::log::LogRow;
use mmrf_data::schema::{LogSplit, Version, TEST_FIRST_DAY, USER_COLUMNS, VIDEO_BASIC_COLUMNS, VIDEO_STAT_COLUMNS};
use mmrf_data::side::LoggedRequest;
use mmrf_data::{time, write_atomic, IdMap};

use crate::model::{rng, Stream, WorldModel};
use crate::policy::LoggingPolicy;
use crate::sim::{day_visits, simulate_session, Chooser, Scratch, UserRngs};
use crate::WorldError;
use mmrf_data::side::WORLD_FILE;
use mmrf_data::staged::StagedDir;

/// Minimum idle time between two visits: longer than the 30-minute session gap, so
/// rebuilding sessions from the logs recovers the visits exactly.
pub const MIN_VISIT_GAP_MS: i64 = 31 * 60 * 1000;

/// What one user's simulated month produced.
#[derive(Default)]
struct UserLog {
    rows: [Vec<LogRow>; 3],
    props: [Vec<f32>; 3],
    /// (split, first row within this user's rows of the split, viewed, local session).
    requests: Vec<(LogSplit, u32, u16, u32)>,
    candidates: Vec<u32>,
    /// Per request: the true interest and fatigue when it was ranked.
    truth: Vec<f32>,
    n_sessions: u32,
}

/// Counts of a generated world, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub users: usize,
    pub videos: usize,
    pub standard_train_rows: usize,
    pub standard_test_rows: usize,
    pub random_rows: usize,
    pub requests: usize,
    pub sessions: usize,
}

fn simulate_user(model: &WorldModel, user: u32) -> UserLog {
    let cfg = &model.config;
    let seed = cfg.seed;
    let mut rngs = UserRngs {
        candidates: rng(seed, Stream::Candidates, user as u64),
        feedback: rng(seed, Stream::Feedback, user as u64),
        policy: rng(seed, Stream::Logging, user as u64),
    };
    let mut schedule = rng(seed, Stream::Schedule, user as u64);
    let mut drift = rng(seed, Stream::Drift, user as u64);
    let mut state = model.initial_state(user, 0);
    let policy = LoggingPolicy { model };
    let mut scratch = Scratch::default();
    let mut out = UserLog::default();
    let first = time::yyyymmdd_to_days(cfg.first_day);
    let mut last_end = i64::MIN / 2;
    for day in 0..cfg.n_days() {
        if day > 0 {
            model.next_day(&mut state, &mut drift);
        }
        let date = time::days_to_yyyymmdd(first + day);
        let day_start = time::day_start_ms(date);
        let test_period = date >= TEST_FIRST_DAY;
        let chooser = Chooser {
            policy: &policy,
            random_share: if test_period { cfg.random_share } else { 0.0 },
        };
        for (planned, tab) in day_visits(model, user, day_start, &mut schedule) {
            let t0 = planned.max(last_end + MIN_VISIT_GAP_MS);
            if t0 >= day_start + time::DAY_MS {
                continue;
            }
            let session = out.n_sessions;
            out.n_sessions += 1;
            last_end = simulate_session(
                model,
                &mut state,
                t0,
                day_start + time::DAY_MS,
                tab,
                &chooser,
                &mut rngs,
                &mut scratch,
                &mut |req| {
                    let (req_date, _) = time::date_hourmin(req.viewed[0].time_ms);
                    let split = if req_date < TEST_FIRST_DAY {
                        LogSplit::Train
                    } else if req.is_rand {
                        LogSplit::Random
                    } else {
                        LogSplit::Test
                    };
                    let s = split as usize;
                    out.requests
                        .push((split, out.rows[s].len() as u32, req.viewed.len() as u16, session));
                    out.candidates.extend_from_slice(req.candidates);
                    out.truth.extend_from_slice(req.interest);
                    out.truth.push(req.fatigue);
                    for v in req.viewed {
                        let (date, hourmin) = time::date_hourmin(v.time_ms);
                        let f = &v.feedback;
                        out.rows[s].push(LogRow {
                            user,
                            video: v.video,
                            date,
                            hourmin,
                            time_ms: v.time_ms,
                            is_click: f.click,
                            is_like: f.like,
                            is_follow: f.follow,
                            is_comment: f.comment,
                            is_forward: f.forward,
                            is_hate: f.hate,
                            long_view: f.long_view,
                            play_time_ms: f.play_time_ms,
                            duration_ms: model.item_duration_ms[v.video as usize],
                            profile_stay_time: f.profile_stay_time,
                            comment_stay_time: f.comment_stay_time,
                            is_profile_enter: f.profile_enter,
                            is_rand: req.is_rand,
                            tab: req.tab,
                        });
                        out.props[s].push(v.propensity);
                    }
                },
            );
        }
    }
    out
}

/// Generate the world of `model` into `dir`, whole or not at all. `progress` is called
/// with the number of users simulated so far.
///
/// The files are written into a staging directory beside `dir` and moved into place in one
/// rename, so a killed generation never leaves a world whose logs and side files come from
/// two generations: `dir` holds the old world or the new one. `dir` may be new, empty, or
/// an earlier world (replaced); any other non-empty directory is refused. Staging left by
/// a killed generation is removed by the next one.
pub fn generate(model: &WorldModel, dir: &Path, progress: &(dyn Fn(usize) + Sync)) -> Result<Summary, WorldError> {
    if mmrf_data::staged::is_nonempty_dir(dir) && !dir.join(WORLD_FILE).is_file() {
        return Err(WorldError::Invalid {
            path: dir.to_path_buf(),
            reason: format!(
                "not empty and not an mmrf world (no {WORLD_FILE}); generate into a new or empty directory"
            ),
        });
    }
    let staged = StagedDir::new(dir).map_err(|e| WorldError::io(dir, e))?;
    let summary = generate_into(model, staged.path(), progress)?;
    staged.commit().map_err(|e| WorldError::io(dir, e))?;
    Ok(summary)
}

/// Users simulated together before their files are appended: bounds generation's memory
/// (a user's month at the 1k scale holds a few MB of candidate ids) whatever the scale.
const SHARD_USERS: usize = 256;

/// The log files of a world being generated, one per split and part, appended user by user.
struct LogWriters {
    /// Per split: the part files (with their paths, for errors), users spread over them in
    /// id order.
    files: [Vec<(PathBuf, std::io::BufWriter<std::fs::File>)>; 3],
    rows: [usize; 3],
    n_users: usize,
}

impl LogWriters {
    fn create(dir: &Path, version: Version, n_users: usize) -> Result<LogWriters, WorldError> {
        let open = |split: LogSplit| -> Result<Vec<_>, WorldError> {
            version
                .log_files(split)
                .iter()
                .map(|name| {
                    let path = dir.join(name);
                    let mut w = std::io::BufWriter::with_capacity(
                        1 << 20,
                        std::fs::File::create(&path).map_err(|e| WorldError::io(&path, e))?,
                    );
                    let mut header = mmrf_data::schema::LOG_COLUMNS.join(",").into_bytes();
                    header.push(b'\n');
                    w.write_all(&header).map_err(|e| WorldError::io(&path, e))?;
                    Ok((path, w))
                })
                .collect()
        };
        Ok(LogWriters {
            files: [open(LogSplit::Train)?, open(LogSplit::Test)?, open(LogSplit::Random)?],
            rows: [0; 3],
            n_users,
        })
    }

    /// Append one user's rows of `split`, already as CSV text.
    fn append(&mut self, split: LogSplit, user: u32, rows: usize, text: &[u8]) -> Result<(), WorldError> {
        let parts = &mut self.files[split as usize];
        let n_parts = parts.len();
        let (path, w) = &mut parts[user as usize * n_parts / self.n_users];
        w.write_all(text).map_err(|e| WorldError::io(path, e))?;
        self.rows[split as usize] += rows;
        Ok(())
    }

    fn finish(self) -> Result<(), WorldError> {
        for (path, w) in self.files.into_iter().flatten() {
            w.into_inner().map_err(|e| WorldError::io(&path, e.into_error()))?;
        }
        Ok(())
    }
}

fn generate_into(model: &WorldModel, dir: &Path, progress: &(dyn Fn(usize) + Sync)) -> Result<Summary, WorldError> {
    let version = model.config.scale.version();
    let n_users = model.n_users();
    let ident_users = IdMap::from_raw((0..n_users as i64).collect()).expect("distinct");
    let ident_videos = IdMap::from_raw((0..model.n_videos() as i64).collect()).expect("distinct");
    let n_candidates = model.config.n_candidates.min(model.n_videos()) as u16;

    let mut logs = LogWriters::create(dir, version, n_users)?;
    let mut candidates = mmrf_data::side::CandidateLogWriter::create(dir, &ident_users, &ident_videos)
        .map_err(|e| WorldError::io(dir, e))?;
    let mut props =
        mmrf_data::side::PropensityWriter::create(dir, &ident_videos).map_err(|e| WorldError::io(dir, e))?;
    let states = dir.join(crate::oracle::STATES_FILE);
    let mut truth = crate::oracle::TruthWriter::create(&states, model.dim).map_err(|e| WorldError::io(&states, e))?;
    let mut stats = VideoStatistics::new(model.n_videos());
    let mut requests = 0usize;
    let mut sessions = 0u32;

    // Users are simulated a shard at a time, in parallel, and appended in id order: the
    // files are the same whatever the shard size, and memory is bounded by one shard.
    let done = std::sync::atomic::AtomicUsize::new(0);
    for first in (0..n_users).step_by(SHARD_USERS) {
        let shard = first as u32..(first + SHARD_USERS).min(n_users) as u32;
        let users: Vec<(UserLog, [Vec<u8>; 3])> = shard
            .clone()
            .into_par_iter()
            .map(|u| {
                let log = simulate_user(model, u);
                let text = LogSplit::ALL.map(|split| {
                    let rows = &log.rows[split as usize];
                    let mut buf = Vec::with_capacity(rows.len() * 80);
                    for row in rows {
                        row.write_csv(&mut buf, row.user as i64, row.video as i64);
                        buf.push(b'\n');
                    }
                    buf
                });
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                (log, text)
            })
            .collect();
        for (user, (u, text)) in shard.zip(&users) {
            let offsets = logs.rows;
            for split in LogSplit::ALL {
                let s = split as usize;
                logs.append(split, user, u.rows[s].len(), &text[s])?;
                for (r, &p) in u.rows[s].iter().zip(&u.props[s]) {
                    props.push(split, r.video, p).map_err(|e| WorldError::io(dir, e))?;
                }
            }
            let per_request = n_candidates as usize;
            for (i, &(split, first_row, n_shown, session)) in u.requests.iter().enumerate() {
                let request = LoggedRequest {
                    user,
                    session: sessions + session,
                    split,
                    first_row: (offsets[split as usize] + first_row as usize) as u32,
                    n_shown,
                    candidate_offset: candidates.offset(),
                    n_candidates,
                };
                candidates
                    .push(&request, &u.candidates[i * per_request..(i + 1) * per_request])
                    .map_err(|e| WorldError::io(dir, e))?;
            }
            truth.push(&u.truth).map_err(|e| WorldError::io(&states, e))?;
            stats.add_user(user, u);
            requests += u.requests.len();
            sessions += u.n_sessions;
        }
    }
    let summary = Summary {
        users: n_users,
        videos: model.n_videos(),
        standard_train_rows: logs.rows[LogSplit::Train as usize],
        standard_test_rows: logs.rows[LogSplit::Test as usize],
        random_rows: logs.rows[LogSplit::Random as usize],
        requests,
        sessions: sessions as usize,
    };
    logs.finish()?;
    candidates.finish().map_err(|e| WorldError::io(dir, e))?;
    props.finish().map_err(|e| WorldError::io(dir, e))?;
    truth.finish().map_err(|e| WorldError::io(&states, e))?;

    write_user_features(model, &dir.join(version.user_features()))?;
    write_video_features(model, &dir.join(version.video_features_basic()))?;
    stats.write(model, dir, &version.video_features_statistic())?;

    let meta = crate::WorldFile {
        format: crate::WORLD_FORMAT,
        generator: format!("mmrf-world {}", env!("CARGO_PKG_VERSION")),
        config: model.config.clone(),
        checksum: format!("{:016x}", model.checksum()),
        summary: summary.clone(),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("serialisable");
    write_atomic(&dir.join(WORLD_FILE), &json).map_err(|e| WorldError::io(dir, e))?;
    Ok(summary)
}

fn csv_bytes(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(&r);
    }
    w.into_inner().unwrap_or_default()
}

fn range_label(v: u64, edges: &[(u64, &'static str)], last: &'static str) -> &'static str {
    edges.iter().find(|(hi, _)| v < *hi).map_or(last, |(_, l)| l)
}

fn write_user_features(model: &WorldModel, path: &Path) -> Result<(), WorldError> {
    let rows = (0..model.n_users()).map(|u| {
        let mut r = rng(model.config.seed, Stream::Users, 1_000_000 + u as u64);
        let act = model.user_activity[u];
        let degree = if r.random::<f32>() < 0.01 {
            [
                "2_14_day_new",
                "single_low_active",
                "30day_retention",
                "day_new",
                "UNKNOWN",
            ][r.random_range(0..5)]
        } else if act > 1.3 {
            "full_active"
        } else if act > 0.8 {
            "high_active"
        } else if act > 0.5 {
            "middle_active"
        } else {
            "low_active"
        };
        let lognormal = |r: &mut rand_chacha::ChaCha8Rng, median: f64, sigma: f64| -> u64 {
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, r);
            if r.random::<f64>() < 0.05 {
                0
            } else {
                (median * (sigma * z).exp()).round() as u64
            }
        };
        let follow = lognormal(&mut r, 60.0, 1.2);
        let fans = lognormal(&mut r, 20.0, 1.8);
        let friends = lognormal(&mut r, 8.0, 1.3);
        let register = 15 + (r.random::<f64>().powf(0.6) * 2_400.0) as u64;
        let follow_range = if follow == 0 {
            "0"
        } else {
            range_label(
                follow,
                &[
                    (11, "(0,10]"),
                    (51, "(10,50]"),
                    (101, "(50,100]"),
                    (151, "(100,150]"),
                    (251, "(150,250]"),
                    (501, "(250,500]"),
                ],
                "500+",
            )
        };
        let fans_range = if fans == 0 {
            "0"
        } else {
            range_label(
                fans,
                &[
                    (10, "[1,10)"),
                    (100, "[10,100)"),
                    (1_000, "[100,1k)"),
                    (5_000, "[1k,5k)"),
                    (10_000, "[5k,1w)"),
                    (100_000, "[1w,10w)"),
                ],
                "[10w,100w)",
            )
        };
        let friend_range = if friends == 0 {
            "0"
        } else {
            range_label(
                friends,
                &[
                    (5, "[1,5)"),
                    (30, "[5,30)"),
                    (60, "[30,60)"),
                    (120, "[60,120)"),
                    (250, "[120,250)"),
                ],
                "250+",
            )
        };
        let register_range = range_label(
            register,
            &[
                (15, "8-14"),
                (31, "15-30"),
                (61, "31-60"),
                (91, "61-90"),
                (181, "91-180"),
                (366, "181-365"),
                (731, "366-730"),
            ],
            "730+",
        );
        let bucket = |x: f32, n: usize| (((x + 2.0) / 4.0 * n as f32).clamp(0.0, n as f32 - 1.0)) as usize;
        let mut row = vec![
            u.to_string(),
            degree.to_string(),
            "0".to_string(),
            if r.random::<f32>() < 0.2 { "1" } else { "-124" }.to_string(),
            ((r.random::<f32>() < 0.6) as u8).to_string(),
            follow.to_string(),
            follow_range.to_string(),
            fans.to_string(),
            fans_range.to_string(),
            friends.to_string(),
            friend_range.to_string(),
            register.to_string(),
            register_range.to_string(),
        ];
        // onehot_feat0..17: anonymised categories; feat1 and feat9 carry the user's
        // patience and like propensity (as real profile features carry some signal),
        // feat4 and feat12..17 are floats with blanks as in KuaiRand.
        let blank = r.random::<f32>() < 0.026;
        for f in 0..18 {
            let v = match f {
                0 => r.random_range(0..2).to_string(),
                1 => bucket(model.user_patience[u] * 2.0, 7).to_string(),
                2 => r.random_range(0..50).to_string(),
                3 => r.random_range(0..1471).to_string(),
                4 if r.random::<f32>() < 0.032 => String::new(),
                4 => format!("{:.1}", r.random_range(0..15) as f32),
                5 => r.random_range(0..34).to_string(),
                6 => r.random_range(0..3).to_string(),
                7 => r.random_range(0..118).to_string(),
                8 => r.random_range(0..454).to_string(),
                9 => bucket(model.user_like[u], 7).to_string(),
                10 | 11 => r.random_range(0..5).to_string(),
                _ if blank => String::new(),
                _ => format!("{:.1}", (r.random::<f32>() < 0.3) as u8 as f32),
            };
            row.push(v);
        }
        row
    });
    let bytes = csv_bytes(&USER_COLUMNS, rows);
    write_atomic(path, &bytes).map_err(|e| WorldError::io(path, e))
}

fn write_video_features(model: &WorldModel, path: &Path) -> Result<(), WorldError> {
    const UPLOAD_TYPES: [&str; 6] = [
        "ShortImport",
        "LongImport",
        "Web",
        "ShortCamera",
        "Kmovie",
        "ShareFromOtherApp",
    ];
    let rows = (0..model.n_videos()).map(|j| {
        let mut r = rng(model.config.seed, Stream::Catalogue, 1_000_000 + j as u64);
        let kind = match r.random::<f32>() {
            x if x < 0.02 => "AD",
            x if x < 0.025 => "UNKNOWN",
            _ => "NORMAL",
        };
        let day = r.random_range(1..=10);
        let (w, h) = if r.random::<f32>() < 0.8 {
            (720.0, 1280.0)
        } else {
            (1080.0, 1080.0)
        };
        let tags: Vec<String> = model.item_tags[j].iter().map(u16::to_string).collect();
        vec![
            j.to_string(),
            (1_000_003 + model.item_author[j] as u64 * 1_009).to_string(),
            kind.to_string(),
            format!("2022-04-{day:02}"),
            UPLOAD_TYPES[r.random_range(0..UPLOAD_TYPES.len())].to_string(),
            "0.0".to_string(),
            // Blank durations occur in KuaiRand; the logs still carry duration_ms.
            if r.random::<f32>() < 0.03 {
                String::new()
            } else {
                format!("{:.1}", model.item_duration_ms[j] as f32)
            },
            format!("{w:.1}"),
            format!("{h:.1}"),
            (9_100_000_000u64 + r.random_range(0..90_000_000u64)).to_string(),
            if r.random::<f32>() < 0.03 {
                String::new()
            } else {
                format!("{:.1}", [4, 7, 8, 9, 11][r.random_range(0..5)] as f32)
            },
            if r.random::<f32>() < 0.01 {
                String::new()
            } else {
                tags.join(",")
            },
        ]
    });
    let bytes = csv_bytes(&VIDEO_BASIC_COLUMNS, rows);
    write_atomic(path, &bytes).map_err(|e| WorldError::io(path, e))
}

/// Daily averages per video over the standard logs, KuaiRand's statistics columns,
/// accumulated user by user. Counters the world does not simulate (cancel-like, download,
/// collect, ...) are 0.
struct VideoStatistics {
    /// Totals per video; "users" counters use last-user stamps (rows are grouped by user).
    tot: Vec<[f64; STAT_TOTALS]>,
    last_user: Vec<[u32; STAT_TOTALS]>,
    days: Vec<Vec<u32>>,
    progress_sum: Vec<f64>,
}

const STAT_TOTALS: usize = 23;

impl VideoStatistics {
    fn new(nv: usize) -> Self {
        VideoStatistics {
            tot: vec![[0f64; STAT_TOTALS]; nv],
            last_user: vec![[u32::MAX; STAT_TOTALS]; nv],
            days: vec![Vec::new(); nv],
            progress_sum: vec![0f64; nv],
        }
    }

    fn add_user(&mut self, u: u32, ul: &UserLog) {
        for row in ul.rows[0].iter().chain(&ul.rows[1]) {
            let j = row.video as usize;
            let complete = row.play_time_ms >= row.duration_ms;
            let short = row.play_time_ms < 3_000;
            // (count index, condition, value); the user counter is the next index.
            let events: [(usize, bool, f64); 11] = [
                (0, true, 1.0),
                (2, row.is_click, 1.0),
                (4, complete, 1.0),
                (6, row.long_view, 1.0),
                (8, short, 1.0),
                (10, row.is_like, 1.0),
                (12, row.is_comment, 1.0),
                (14, row.is_follow, 1.0),
                (16, row.is_forward, 1.0),
                (18, row.is_hate, 1.0),
                (20, true, row.comment_stay_time as f64),
            ];
            for (k, cond, v) in events {
                if cond {
                    self.tot[j][k] += v;
                    if self.last_user[j][k + 1] != u {
                        self.last_user[j][k + 1] = u;
                        self.tot[j][k + 1] += 1.0;
                    }
                }
            }
            self.tot[j][22] += row.play_time_ms as f64;
            self.progress_sum[j] += (row.play_time_ms as f64 / row.duration_ms.max(1) as f64).min(1.0);
            if self.days[j].last() != Some(&row.date) && !self.days[j].contains(&row.date) {
                self.days[j].push(row.date);
            }
        }
    }

    /// Write the statistics, videos in id order spread over the `files` in turn.
    fn write(&self, model: &WorldModel, dir: &Path, files: &[String]) -> Result<(), WorldError> {
        let nv = self.tot.len();
        let n_days = model.config.n_days() as f64;
        let row = |j: usize| {
            let t = &self.tot[j];
            let d = |x: f64| format!("{}", (x / n_days * 1e4).round() / 1e4);
            let progress = if t[0] > 0.0 { self.progress_sum[j] / t[0] } else { 0.0 };
            let mut out = Vec::with_capacity(VIDEO_STAT_COLUMNS.len());
            for name in VIDEO_STAT_COLUMNS {
                out.push(match name {
                    "video_id" => j.to_string(),
                    "counts" => self.days[j].len().to_string(),
                    "show_cnt" => d(t[0]),
                    "show_user_num" => d(t[1]),
                    "play_cnt" | "valid_play_cnt" => d(t[2]),
                    "play_user_num" | "valid_play_user_num" => d(t[3]),
                    "play_duration" => d(t[22]),
                    "complete_play_cnt" => d(t[4]),
                    "complete_play_user_num" => d(t[5]),
                    "long_time_play_cnt" => d(t[6]),
                    "long_time_play_user_num" => d(t[7]),
                    "short_time_play_cnt" => d(t[8]),
                    "short_time_play_user_num" => d(t[9]),
                    "play_progress" => format!("{:.4}", progress),
                    "comment_stay_duration" => d(t[20]),
                    "like_cnt" | "click_like_cnt" => d(t[10]),
                    "like_user_num" => d(t[11]),
                    "comment_cnt" | "direct_comment_cnt" => d(t[12]),
                    "comment_user_num" | "direct_comment_user_num" => d(t[13]),
                    "follow_cnt" => d(t[14]),
                    "follow_user_num" => d(t[15]),
                    "share_cnt" | "share_all_cnt" => d(t[16]),
                    "share_user_num" | "share_all_user_num" => d(t[17]),
                    "report_cnt" | "reduce_similar_cnt" => d(t[18]),
                    "report_user_num" | "reduce_similar_user_num" => d(t[19]),
                    _ => "0.0".to_string(),
                });
            }
            out
        };
        for (p, name) in files.iter().enumerate() {
            let videos = nv * p / files.len()..nv * (p + 1) / files.len();
            let path = dir.join(name);
            let bytes = csv_bytes(&VIDEO_STAT_COLUMNS, videos.map(row));
            write_atomic(&path, &bytes).map_err(|e| WorldError::io(&path, e))?;
        }
        Ok(())
    }
}
