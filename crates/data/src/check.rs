//! `mmrf data check`: validate a KuaiRand directory and summarise every log, streaming.
//!
//! The logs are streamed ([`crate::log::stream_log_file`]), never held, so a 27K directory
//! (322 M rows) is checked in constant memory.

use std::path::Path;

use serde::Serialize;

use crate::columnar::Format;
use crate::error::{DataError, Result};
use crate::log::{LogColumns, LogIds};
use crate::schema::LogSplit;
use crate::table::{self, FeatureTable};

/// One expected file and what was found.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub name: String,
    pub present: bool,
    /// Data rows (without the header), when the file was read.
    pub rows: Option<u64>,
    /// The header as found (first line), when present.
    pub header: Option<String>,
}

/// Counts and rates of one log split.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LogReport {
    pub rows: u64,
    pub users: u64,
    pub videos: u64,
    /// First and last `date` (YYYYMMDD), `None` for an empty log.
    pub date_range: Option<(u32, u32)>,
    /// Mean of each binary column, KuaiRand names (`is_click`, `long_view`, ...).
    pub rates: std::collections::BTreeMap<String, f64>,
    /// Mean `play_time_ms` / 1000.
    pub mean_play_time_s: f64,
    pub mean_duration_s: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub dir: String,
    pub version: String,
    pub files: Vec<FileReport>,
    pub users: u64,
    pub videos: u64,
    pub logs: std::collections::BTreeMap<String, LogReport>,
    /// The side files (candidate log, propensities) were present and checked against the
    /// logs.
    pub side_files: bool,
    /// What makes the directory unusable though every file parses (an empty log split).
    pub problems: Vec<String>,
    /// Every file present and valid, and no problem.
    pub complete: bool,
}

#[derive(Default)]
struct Acc {
    rows: u64,
    sums: [u64; 9],
    play: f64,
    duration: f64,
    min_date: u32,
    max_date: u32,
    users: Vec<bool>,
    videos: Vec<bool>,
}

const RATE_NAMES: [&str; 9] = [
    "is_click",
    "is_like",
    "is_follow",
    "is_comment",
    "is_forward",
    "is_hate",
    "long_view",
    "is_profile_enter",
    "is_rand",
];

impl Acc {
    fn add(&mut self, b: &LogColumns) {
        let cols = [
            &b.is_click,
            &b.is_like,
            &b.is_follow,
            &b.is_comment,
            &b.is_forward,
            &b.is_hate,
            &b.long_view,
            &b.is_profile_enter,
            &b.is_rand,
        ];
        for (s, c) in self.sums.iter_mut().zip(cols) {
            *s += c.iter().map(|&v| v as u64).sum::<u64>();
        }
        self.play += b.play_time_ms.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        self.duration += b.duration_ms.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        for &d in &b.date {
            self.min_date = self.min_date.min(d);
            self.max_date = self.max_date.max(d);
        }
        for &u in &b.user {
            self.users[u as usize] = true;
        }
        for &v in &b.video {
            self.videos[v as usize] = true;
        }
        self.rows += b.len() as u64;
    }

    fn report(&self) -> LogReport {
        let n = self.rows.max(1) as f64;
        LogReport {
            rows: self.rows,
            users: self.users.iter().filter(|&&b| b).count() as u64,
            videos: self.videos.iter().filter(|&&b| b).count() as u64,
            date_range: (self.rows > 0).then_some((self.min_date, self.max_date)),
            rates: RATE_NAMES
                .iter()
                .zip(self.sums)
                .map(|(k, s)| (k.to_string(), s as f64 / n))
                .collect(),
            mean_play_time_s: self.play / n,
            mean_duration_s: self.duration / n,
        }
    }
}

fn first_line(path: &Path) -> Option<String> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Check `dir`: every file of its version, feature files typed, logs streamed, and the
/// side files of a generated world read and checked against the logs exactly as the loader
/// does (for that, the logs' user and video ids are kept: 8 bytes a row).
///
/// An invalid file (bad header, bad cell, side files that do not match the logs) is an
/// error naming it; missing files and empty log splits are reported (`complete == false`)
/// so a partial directory can still be inspected.
pub fn check_dir(dir: &Path) -> Result<CheckReport> {
    let (version, _) = Format::detect(dir).ok_or_else(|| DataError::Directory {
        path: dir.to_path_buf(),
        reason: "no user_features_{1k,pure,27k}.csv (or .parquet) found".into(),
    })?;
    // Each file in its own format (a log may be a Parquet dataset folder of parts).
    let file = |name: &str| crate::columnar::locate_table(dir, name);
    let mut files = Vec::new();
    for name in version.all_files() {
        let path = crate::columnar::locate(dir, &name)?;
        let present = path.exists();
        let first = if version.is_log(&name) && present {
            crate::columnar::locate_log(dir, &name)?.into_iter().next()
        } else {
            Some(path.clone()).filter(|p| p.is_file())
        };
        files.push(FileReport {
            header: first.and_then(|p| match Format::of_path(&p) {
                Format::Csv => first_line(&p),
                Format::Parquet => crate::columnar::header_line(&p),
            }),
            name: path.file_name().map_or(name, |n| n.to_string_lossy().into_owned()),
            present,
            rows: None,
        });
    }
    let users = table::read_user_features(&file(&version.user_features())?)?;
    let videos_path = file(&version.video_features_basic())?;
    let videos = if videos_path.is_file() {
        table::read_video_features(&videos_path)?
    } else {
        return Err(DataError::MissingFile {
            path: videos_path,
            what: "needed to resolve the logs' video ids".into(),
        });
    };
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    set_rows(
        &mut files,
        &name_of(&file(&version.user_features())?),
        users.len() as u64,
    );
    set_rows(&mut files, &name_of(&videos_path), videos.len() as u64);
    for f in version.video_features_statistic() {
        let p = file(&f)?;
        if p.is_file() {
            let t: FeatureTable = table::read_video_statistics(&p)?;
            set_rows(&mut files, &name_of(&p), t.len() as u64);
        }
    }
    // The files' own names (CSV or Parquet) in messages about unknown ids.
    let user_file = crate::columnar::table_name(dir, &version.user_features())?;
    let video_file = crate::columnar::table_name(dir, &version.video_features_basic())?;
    let ids = LogIds {
        users: &users.ids,
        videos: &videos.ids,
        user_file: &user_file,
        video_file: &video_file,
    };
    let side_files = crate::side::present(dir)?;
    let mut keys: [(Vec<u32>, Vec<u32>); 3] = Default::default();
    let mut logs = std::collections::BTreeMap::new();
    for split in LogSplit::ALL {
        let mut acc = Acc {
            min_date: u32::MAX,
            users: vec![false; users.len()],
            videos: vec![false; videos.len()],
            ..Acc::default()
        };
        for name in version.log_files(split) {
            let parts = crate::columnar::locate_log(dir, &name)?;
            if !parts[0].is_file() {
                continue;
            }
            let path = crate::columnar::locate(dir, &name)?;
            let (users, videos) = &mut keys[split as usize];
            let mut sink = |b: crate::log::LogColumns| {
                acc.add(&b);
                if side_files {
                    users.extend_from_slice(&b.user);
                    videos.extend_from_slice(&b.video);
                }
                Ok(())
            };
            let mut rows = 0;
            for part in &parts {
                rows += crate::log::stream_log_file(part, &ids, &mut sink)?;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            set_rows(&mut files, &name, rows);
        }
        logs.insert(split.name().to_string(), acc.report());
    }
    if side_files {
        let keys = crate::side::LogKeys {
            users: [&keys[0].0[..], &keys[1].0[..], &keys[2].0[..]],
            videos: [&keys[0].1[..], &keys[1].1[..], &keys[2].1[..]],
        };
        for name in crate::side::SIDE_FILES {
            files.push(FileReport {
                name: name.to_string(),
                present: true,
                rows: None,
                header: None,
            });
        }
        let log = crate::side::read_candidate_log(dir, &users.ids, &videos.ids, keys)?;
        if let Some(log) = log {
            set_rows(&mut files, crate::side::REQUESTS_FILE, log.requests.len() as u64);
            set_rows(&mut files, crate::side::CANDIDATES_FILE, log.len() as u64);
        }
        crate::side::read_propensities(dir, &videos.ids, keys)?;
        let rows: u64 = keys.users.iter().map(|u| u.len() as u64).sum();
        set_rows(&mut files, crate::side::PROPENSITIES_FILE, rows);
    }
    let mut problems: Vec<String> = [LogSplit::Train, LogSplit::Test]
        .iter()
        .filter(|s| logs.get(s.name()).is_some_and(|l| l.rows == 0))
        .map(|s| {
            format!(
                "the {} log has no rows: nothing to {}",
                s.name(),
                if *s == LogSplit::Train {
                    "train on"
                } else {
                    "evaluate on"
                }
            )
        })
        .collect();
    // A generated world writes its side files, its parameter file and its states as one
    // set: the side files without the other two are a world cut short.
    if side_files {
        for f in [crate::side::WORLD_FILE, crate::side::STATES_FILE] {
            if !dir.join(f).is_file() {
                problems.push(format!(
                    "{f} is missing: a generated world's files ({}, {}, {}) are written together; regenerate the world",
                    crate::side::SIDE_FILES.join(", "),
                    crate::side::WORLD_FILE,
                    crate::side::STATES_FILE
                ));
            }
        }
    }
    Ok(CheckReport {
        dir: dir.display().to_string(),
        version: format!("KuaiRand-{}", version.suffix()),
        complete: files.iter().all(|f| f.present) && problems.is_empty(),
        side_files,
        problems,
        files,
        users: users.len() as u64,
        videos: videos.len() as u64,
        logs,
    })
}

fn set_rows(files: &mut [FileReport], name: &str, rows: u64) {
    if let Some(f) = files.iter_mut().find(|f| f.name == name) {
        f.rows = Some(rows);
    }
}

impl CheckReport {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} at {}: {} users, {} videos",
            self.version, self.dir, self.users, self.videos
        );
        for f in &self.files {
            let state = match (f.present, f.rows) {
                (false, _) => "MISSING".to_string(),
                (true, Some(r)) => format!("{r} rows"),
                (true, None) => "present".to_string(),
            };
            let _ = writeln!(s, "  {:<44} {state}", f.name);
        }
        for (name, l) in &self.logs {
            let range = l.date_range.map_or("-".into(), |(a, b)| format!("{a}..{b}"));
            let _ = writeln!(
                s,
                "{name}: {} rows, {} users, {} videos, dates {range}, mean play {:.1}s / duration {:.1}s",
                l.rows, l.users, l.videos, l.mean_play_time_s, l.mean_duration_s
            );
            let rates: Vec<String> = l.rates.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
            let _ = writeln!(s, "  {}", rates.join(" "));
        }
        if self.side_files {
            let _ = writeln!(s, "side files: checked against the logs");
        }
        for p in &self.problems {
            let _ = writeln!(s, "problem: {p}");
        }
        if self.files.iter().any(|f| !f.present) {
            let _ = writeln!(s, "incomplete: some files of the KuaiRand file set are missing");
        }
        s
    }
}
