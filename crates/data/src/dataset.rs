//! A whole KuaiRand directory (real or generated) loaded as typed columns, with a cache.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::{self, Corrupt, Reader, Writer};
use crate::columnar::Format;
use crate::error::{DataError, Result};
use crate::log::{for_each_column, read_logs, LogColumns, LogIds};
use crate::schema::{LogSplit, Version};
use crate::side::{self, CandidateLog, LoggedRequest};
use crate::table::{self, FeatureTable};

/// A loaded KuaiRand-format dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub dir: PathBuf,
    pub version: Version,
    pub users: FeatureTable,
    pub videos: FeatureTable,
    pub video_stats: FeatureTable,
    /// Standard log, 4_08–4_21: the training split.
    pub train: LogColumns,
    /// Standard log, 4_22–5_08: the held-out test split.
    pub test: LogColumns,
    /// Random-exposure log, 4_22–5_08: the unbiased test split.
    pub random: LogColumns,
    /// The candidate log, when the data has one (generated worlds do).
    pub candidates: Option<CandidateLog>,
    /// True logging propensities per row of `[train, test, random]`, when known.
    pub propensities: Option<[Vec<f32>; 3]>,
}

impl PartialEq for Dataset {
    /// Equal data; missing propensities (`NaN`) compare equal.
    fn eq(&self, o: &Self) -> bool {
        let props = match (&self.propensities, &o.propensities) {
            (None, None) => true,
            (Some(a), Some(b)) => a.iter().zip(b).all(|(x, y)| crate::table::same_bits(x, y)),
            _ => false,
        };
        self.dir == o.dir
            && self.version == o.version
            && self.users == o.users
            && self.videos == o.videos
            && self.video_stats == o.video_stats
            && self.train == o.train
            && self.test == o.test
            && self.random == o.random
            && self.candidates == o.candidates
            && props
    }
}

/// How a [`Dataset`] was obtained, for reports and `mmrf bench ingest`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadInfo {
    pub from_cache: bool,
    pub seconds: f64,
}

impl Dataset {
    /// Load `dir` through the cache (read it if valid, otherwise parse and write it).
    pub fn open(dir: &Path) -> Result<(Dataset, LoadInfo)> {
        Self::open_with(dir, true)
    }

    /// Load `dir`; with `use_cache == false` always parse and never touch the cache.
    pub fn open_with(dir: &Path, use_cache: bool) -> Result<(Dataset, LoadInfo)> {
        let start = Instant::now();
        let (version, _) = Format::detect(dir).ok_or_else(|| DataError::Directory {
            path: dir.to_path_buf(),
            reason: "no user_features_{1k,pure,27k}.csv (or .parquet) found".into(),
        })?;
        let mut sources: Vec<PathBuf> = Vec::new();
        for f in version.all_files() {
            if version.is_log(&f) {
                sources.extend(crate::columnar::locate_log(dir, &f)?);
            } else {
                sources.push(crate::columnar::locate_table(dir, &f)?);
            }
        }
        if side::present(dir)? {
            sources.extend(side::SIDE_FILES.iter().map(|f| dir.join(f)));
        }
        for s in &sources {
            if !s.is_file() {
                return Err(DataError::MissingFile {
                    path: s.clone(),
                    what: format!("part of the KuaiRand-{} file set", version.suffix()),
                });
            }
        }
        let fingerprint = cache::fingerprint(&sources)?;
        let cache_path = cache::cache_path(dir);
        if use_cache {
            let damaged = match cache::read(&cache_path, &fingerprint) {
                cache::Cached::Absent => false,
                cache::Cached::Damaged => true,
                cache::Cached::Valid(bytes, pos) => {
                    let mut r = Reader { data: &bytes, pos };
                    match Self::decode(&mut r, dir, version) {
                        Ok(ds) => {
                            let seconds = start.elapsed().as_secs_f64();
                            return Ok((
                                ds,
                                LoadInfo {
                                    from_cache: true,
                                    seconds,
                                },
                            ));
                        }
                        Err(Corrupt) => true,
                    }
                }
            };
            if damaged {
                tracing::warn!(cache = %cache_path.display(), "the cache is damaged: deleted, rebuilding it from the sources");
                // A failed removal is harmless: the rebuilt cache replaces it by rename.
                let _ = std::fs::remove_file(&cache_path);
            }
        }
        let ds = Self::parse(dir, version)?;
        if use_cache {
            let mut w = Writer::default();
            ds.encode(&mut w);
            if let Err(e) = cache::write(&cache_path, &fingerprint, &w.buf) {
                tracing::warn!("could not write the cache: {e}");
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok((
            ds,
            LoadInfo {
                from_cache: false,
                seconds,
            },
        ))
    }

    fn parse(dir: &Path, version: Version) -> Result<Dataset> {
        let file = |name: &str| crate::columnar::locate_table(dir, name);
        let users = table::read_user_features(&file(&version.user_features())?)?;
        let videos = table::read_video_features(&file(&version.video_features_basic())?)?;
        let stat_files = version.video_features_statistic();
        let stats = stat_files
            .iter()
            .map(|f| table::read_video_statistics(&file(f)?))
            .collect::<Result<Vec<_>>>()?;
        let video_stats = table::concat_tables(&file(&stat_files[0])?, stats)?;
        // The files' own names (CSV or Parquet) in messages about unknown ids.
        let user_file = crate::columnar::table_name(dir, &version.user_features())?;
        let video_file = crate::columnar::table_name(dir, &version.video_features_basic())?;
        let ids = LogIds {
            users: &users.ids,
            videos: &videos.ids,
            user_file: &user_file,
            video_file: &video_file,
        };
        let [train, test, random] = LogSplit::ALL.map(|s| {
            let paths: Vec<Vec<PathBuf>> = version
                .log_files(s)
                .iter()
                .map(|f| crate::columnar::locate_log(dir, f))
                .collect::<Result<_>>()?;
            read_logs(&paths.concat(), &ids)
        });
        let (train, test, random) = (train?, test?, random?);
        let keys = side::LogKeys {
            users: [&train.user[..], &test.user[..], &random.user[..]],
            videos: [&train.video[..], &test.video[..], &random.video[..]],
        };
        // The two side files are read at once: each is mostly one thread's parse.
        let (candidates, propensities) = rayon::join(
            || side::read_candidate_log(dir, &users.ids, &videos.ids, keys),
            || side::read_propensities(dir, &videos.ids, keys),
        );
        let (candidates, propensities) = (candidates?, propensities?);
        Ok(Dataset {
            dir: dir.to_path_buf(),
            version,
            users,
            videos,
            video_stats,
            train,
            test,
            random,
            candidates,
            propensities,
        })
    }

    /// The log of a split.
    /// The requests of a split: the logged ones when the data has a candidate log, else
    /// rebuilt from the impressions with candidates drawn by training-log popularity.
    pub fn requests(&self, split: LogSplit, cfg: &crate::session::SessionConfig) -> crate::session::RequestSet<'_> {
        match &self.candidates {
            Some(c) => crate::session::RequestSet::from_candidate_log(split, c),
            None => {
                let pool = crate::session::popularity(&self.train, self.videos.len());
                crate::session::RequestSet::rebuild(split, self.log(split), &pool, cfg)
            }
        }
    }

    /// The true logging propensity of row `row` of a split, when the data has them.
    pub fn true_propensity(&self, split: LogSplit, row: usize) -> Option<f32> {
        let i = LogSplit::ALL.iter().position(|&s| s == split)?;
        self.propensities.as_ref().map(|p| p[i][row])
    }

    pub fn log(&self, split: LogSplit) -> &LogColumns {
        match split {
            LogSplit::Train => &self.train,
            LogSplit::Test => &self.test,
            LogSplit::Random => &self.random,
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.table(&self.users);
        w.table(&self.videos);
        w.table(&self.video_stats);
        for log in [&self.train, &self.test, &self.random] {
            macro_rules! put {
                ($($c:ident),*) => { $( w.vec(&log.$c); )* };
            }
            for_each_column!(put);
        }
        match &self.candidates {
            None => w.u64(0),
            Some(c) => {
                w.u64(1);
                let col = |f: fn(&LoggedRequest) -> u64| -> Vec<u64> { c.requests.iter().map(f).collect() };
                w.vec(&col(|r| r.user as u64));
                w.vec(&col(|r| r.session as u64));
                w.vec(&col(|r| r.split as u64));
                w.vec(&col(|r| r.first_row as u64));
                w.vec(&col(|r| r.n_shown as u64));
                w.vec(&col(|r| r.n_candidates as u64));
            }
        }
        match &self.propensities {
            None => w.u64(0),
            Some(p) => {
                w.u64(1);
                p.iter().for_each(|v| w.vec(v));
            }
        }
    }

    fn decode(r: &mut Reader<'_>, dir: &Path, version: Version) -> Result<Dataset, Corrupt> {
        let users = r.table()?;
        let videos = r.table()?;
        let video_stats = r.table()?;
        let mut logs = Vec::with_capacity(3);
        for _ in 0..3 {
            let mut log = LogColumns::default();
            macro_rules! get {
                ($($c:ident),*) => { $( log.$c = r.vec()?; )* };
            }
            for_each_column!(get);
            if [log.video.len(), log.tab.len(), log.time_ms.len()]
                .iter()
                .any(|&n| n != log.user.len())
            {
                return Err(Corrupt);
            }
            logs.push(log);
        }
        let candidates = match r.u64()? {
            0 => None,
            _ => {
                let user: Vec<u64> = r.vec()?;
                let session: Vec<u64> = r.vec()?;
                let split: Vec<u64> = r.vec()?;
                let first_row: Vec<u64> = r.vec()?;
                let n_shown: Vec<u64> = r.vec()?;
                let n_cand: Vec<u64> = r.vec()?;
                let mut offset = 0u64;
                let mut requests = Vec::with_capacity(user.len());
                for i in 0..user.len() {
                    requests.push(LoggedRequest {
                        user: *user.get(i).ok_or(Corrupt)? as u32,
                        session: *session.get(i).ok_or(Corrupt)? as u32,
                        split: side::split_from_code(*split.get(i).ok_or(Corrupt)? as u8).ok_or(Corrupt)?,
                        first_row: *first_row.get(i).ok_or(Corrupt)? as u32,
                        n_shown: *n_shown.get(i).ok_or(Corrupt)? as u16,
                        candidate_offset: offset,
                        n_candidates: *n_cand.get(i).ok_or(Corrupt)? as u16,
                    });
                    offset += n_cand[i];
                }
                Some((requests, offset))
            }
        };
        let propensities = match r.u64()? {
            0 => None,
            _ => Some([r.vec()?, r.vec()?, r.vec()?]),
        };
        if r.pos != r.data.len() {
            return Err(Corrupt);
        }
        let candidates = match candidates {
            None => None,
            Some((requests, total)) => {
                Some(side::open_candidates(dir, requests, total, &videos.ids).map_err(|_| Corrupt)?)
            }
        };
        let mut it = logs.into_iter();
        let (train, test, random) = (
            it.next().ok_or(Corrupt)?,
            it.next().ok_or(Corrupt)?,
            it.next().ok_or(Corrupt)?,
        );
        let ds = Dataset {
            dir: dir.to_path_buf(),
            version,
            users,
            videos,
            video_stats,
            train,
            test,
            random,
            candidates,
            propensities,
        };
        // The checksum already vouches for the bytes; this keeps a cache written by another
        // build from indexing out of bounds.
        let (n_users, n_videos) = (ds.users.len() as u32, ds.videos.len() as u32);
        let in_range = [&ds.train, &ds.test, &ds.random]
            .iter()
            .all(|l| l.user.iter().all(|&u| u < n_users) && l.video.iter().all(|&v| v < n_videos));
        let lens = [ds.train.len(), ds.test.len(), ds.random.len()];
        let requests_fit = ds.candidates.as_ref().is_none_or(|c| {
            c.requests
                .iter()
                .all(|r| r.user < n_users && r.first_row as usize + r.n_shown as usize <= lens[r.split as usize])
        });
        let props_fit = ds
            .propensities
            .as_ref()
            .is_none_or(|p| p.iter().zip(lens).all(|(v, n)| v.len() == n));
        if !(in_range && requests_fit && props_fit) {
            return Err(Corrupt);
        }
        Ok(ds)
    }
}
