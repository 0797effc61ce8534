//! Side files that real KuaiRand lacks and the world writes: the candidate log (which
//! candidates each request had and which log rows it showed) and the logging policy's true
//! propensities. Both are optional for the loader; their formats are fixed here.
//!
//! - `mmrf_requests.csv`: `request_id,user_id,session_id,split,first_row,n_shown,n_candidates`;
//!   a request shows rows `first_row..first_row + n_shown` of its split's log (files
//!   concatenated in order), and owns the next `n_candidates` ids of the candidate file.
//! - `mmrf_candidates.bin`: magic `MMRFCAN1`, a little-endian `u64` count, then that many
//!   `u32` raw video ids, requests in `request_id` order.
//! - `mmrf_propensities.csv`: `split,row,video_id,propensity`: per logged impression the
//!   logging policy's softmax probability of the shown video over the request's candidates.
//!
//! A generated world writes all three, with its parameter file `mmrf_world.json`
//! ([`WORLD_FILE`]), so they are a set: a directory with some of them but not all, or with
//! the parameter file but none, is an error, never a silent fallback to rebuilt requests.
//! Both readers check the files against the logs they describe ([`LogKeys`]): every log
//! row shown by exactly one request of its user, one propensity per row for the row's
//! video. A world whose logs and side files come from two generations is refused.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::csvio::{parse_int, CsvFile};
use crate::error::{DataError, Result};
use crate::schema::LogSplit;
use crate::table::IdMap;

pub const REQUESTS_FILE: &str = "mmrf_requests.csv";
pub const CANDIDATES_FILE: &str = "mmrf_candidates.bin";
pub const PROPENSITIES_FILE: &str = "mmrf_propensities.csv";
/// A generated world's parameter file (written by `mmrf-world`, last of its files).
pub const WORLD_FILE: &str = "mmrf_world.json";
/// A generated world's true user states at its logged requests (written by `mmrf-world`
/// with the side files; the offline oracle reads it).
pub const STATES_FILE: &str = "mmrf_states.bin";
/// The side files, in the order they are checked.
pub const SIDE_FILES: [&str; 3] = [REQUESTS_FILE, CANDIDATES_FILE, PROPENSITIES_FILE];

/// The logs' user and video columns (dense ids), per split in [`LogSplit::ALL`] order:
/// what the side files are checked against.
#[derive(Debug, Clone, Copy)]
pub struct LogKeys<'a> {
    pub users: [&'a [u32]; 3],
    pub videos: [&'a [u32]; 3],
}

/// Whether `dir` has side files: `Ok(true)` for the whole set, `Ok(false)` for none (real
/// KuaiRand), an error naming the first missing file for a partial set or a generated
/// world's parameter file without them.
pub fn present(dir: &Path) -> Result<bool> {
    let found: Vec<bool> = SIDE_FILES.iter().map(|f| dir.join(f).is_file()).collect();
    let world = dir.join(WORLD_FILE).is_file();
    if !world && found.iter().all(|&f| !f) {
        return Ok(false);
    }
    match SIDE_FILES.iter().zip(&found).find(|(_, &f)| !f) {
        None => Ok(true),
        Some((missing, _)) => Err(DataError::MissingFile {
            path: dir.join(missing),
            what: format!(
                "a side file of this generated world ({} are written together{}); regenerate the world",
                SIDE_FILES.join(", "),
                if world {
                    format!(" with {WORLD_FILE}")
                } else {
                    String::new()
                }
            ),
        }),
    }
}
const REQUEST_COLUMNS: [&str; 7] = [
    "request_id",
    "user_id",
    "session_id",
    "split",
    "first_row",
    "n_shown",
    "n_candidates",
];
const PROPENSITY_COLUMNS: [&str; 4] = ["split", "row", "video_id", "propensity"];
const CANDIDATE_MAGIC: &[u8; 8] = b"MMRFCAN1";

/// One logged request of the candidate log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedRequest {
    pub user: u32,
    pub session: u32,
    pub split: LogSplit,
    pub first_row: u32,
    pub n_shown: u16,
    /// Offset of the request's candidates in the candidate log (read them with [`CandidateLog::candidates_of`]).
    pub candidate_offset: u64,
    pub n_candidates: u16,
}

/// The candidate log: every request with its full candidate set.
///
/// The candidate file is read request by request with positioned reads, never held: at
/// |C| = 400 it is by far the largest file of a world (hundreds of MB at the default
/// scale, 10 GB at the 27k scale), and most consumers touch a fraction of it. Nor is it
/// memory-mapped: every page of a map that is touched counts in the process's resident
/// memory until it exits, so an evaluation that reads every held-out request would hold
/// half the file; the operating system's page cache serves repeated reads either way.
/// Ids are validated once when the log is first parsed; the cache's fingerprint
/// guarantees the file has not changed since.
#[derive(Debug, Clone)]
pub struct CandidateLog {
    pub requests: Vec<LoggedRequest>,
    /// Shared, read-only: clones of a dataset share one open file.
    file: std::sync::Arc<std::fs::File>,
    path: std::path::PathBuf,
    /// Ids in the file.
    count: u64,
    videos: IdMap,
}

impl PartialEq for CandidateLog {
    fn eq(&self, o: &Self) -> bool {
        if self.requests != o.requests || self.videos != o.videos || self.count != o.count {
            return false;
        }
        // The ids themselves, a block at a time; a file that cannot be read equals nothing.
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let end = 16 + 4 * self.count;
        let mut at = 16;
        while at < end {
            let n = (end - at).min(a.len() as u64) as usize;
            let same = read_at(&self.file, &mut a[..n], at).is_ok()
                && read_at(&o.file, &mut b[..n], at).is_ok()
                && a[..n] == b[..n];
            if !same {
                return false;
            }
            at += n as u64;
        }
        true
    }
}

/// Fill `buf` from `file` at `offset`, without moving a shared cursor (threads read at once).
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut buf) = (0u64, buf);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset + done)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    done += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl CandidateLog {
    /// Total number of candidate ids.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// A request's candidates as dense video ids, into `out`. Fails only when the file
    /// cannot be read (it changed or went away since it was checked).
    pub fn candidates_into(&self, r: &LoggedRequest, out: &mut Vec<u32>) -> Result<()> {
        // Read straight into `out` (no buffer per request), then map raw ids to dense ones.
        out.clear();
        out.resize(r.n_candidates as usize, 0);
        read_at(&self.file, bytemuck::cast_slice_mut(out), 16 + 4 * r.candidate_offset)
            .map_err(|e| DataError::io(&self.path, e))?;
        for id in out.iter_mut() {
            // Validated when the log was parsed (same fingerprint since).
            *id = self.videos.get(u32::from_le(*id) as i64).unwrap_or(0);
        }
        Ok(())
    }

    /// Check every id of the file against the catalogue, 4 MB at a time, a sub-block per
    /// core; the first one outside it is the error, with its position.
    fn check_ids(&self) -> Result<()> {
        const BLOCK: u64 = 1 << 22;
        const SUB: usize = 64 << 10;
        let mut block = vec![0u8; BLOCK as usize];
        let id = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
        let end = 16 + 4 * self.count;
        let mut at = 16;
        while at < end {
            let n = (end - at).min(BLOCK) as usize;
            read_at(&self.file, &mut block[..n], at).map_err(|e| DataError::io(&self.path, e))?;
            let bad = block[..n].par_chunks(SUB).enumerate().find_map_first(|(k, sub)| {
                sub.chunks_exact(4)
                    .position(|b| self.videos.get(id(b)).is_none())
                    .map(|i| k * SUB / 4 + i)
            });
            if let Some(i) = bad {
                return Err(DataError::invalid(
                    &self.path,
                    format!(
                        "candidate #{}: video id {} out of range",
                        (at - 16) / 4 + i as u64,
                        id(&block[4 * i..])
                    ),
                ));
            }
            at += n as u64;
        }
        Ok(())
    }

    /// A request's candidates as dense video ids.
    pub fn candidates_of(&self, r: &LoggedRequest) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(r.n_candidates as usize);
        self.candidates_into(r, &mut out)?;
        Ok(out)
    }
}

fn split_code(s: LogSplit) -> u8 {
    s as u8
}

pub(crate) fn split_from_code(c: u8) -> Option<LogSplit> {
    LogSplit::ALL.get(c as usize).copied()
}

fn split_from_name(name: &str) -> Option<LogSplit> {
    LogSplit::ALL.into_iter().find(|s| s.name() == name)
}

/// Write the candidate log: requests in order, each owning the next `n_candidates` ids of
/// the concatenated `candidates` blocks (dense ids, written raw through the id maps).
pub fn write_candidate_log(
    dir: &Path,
    requests: &[LoggedRequest],
    candidates: &[&[u32]],
    user_raw: &IdMap,
    video_raw: &IdMap,
) -> std::io::Result<()> {
    let total: usize = candidates.iter().map(|c| c.len()).sum();
    let expected: u64 = requests.iter().map(|r| r.n_candidates as u64).sum();
    if total as u64 != expected {
        return Err(invalid_input(format!(
            "{total} candidate ids for requests that own {expected}"
        )));
    }
    let mut w = CandidateLogWriter::create(dir, user_raw, video_raw)?;
    let mut flat = candidates.iter().flat_map(|b| b.iter().copied());
    let mut own = Vec::new();
    for r in requests {
        own.clear();
        own.extend(flat.by_ref().take(r.n_candidates as usize));
        w.push(r, &own)?;
    }
    w.finish()
}

fn invalid_input(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
}

/// A file of a directory written front to back through a buffer, then moved into place
/// whole; bytes near its start may be patched first (a count known only at the end).
struct StreamedFile {
    tmp: tempfile::NamedTempFile,
    out: std::io::BufWriter<std::fs::File>,
}

impl StreamedFile {
    fn create(dir: &Path) -> std::io::Result<Self> {
        let tmp = crate::temp_file_in(dir)?;
        let out = std::io::BufWriter::with_capacity(1 << 20, tmp.reopen()?);
        Ok(StreamedFile { tmp, out })
    }

    /// Flush, write `patch`'s bytes at its offset when given, and rename onto `path`.
    fn persist(self, path: &Path, patch: Option<(u64, &[u8])>) -> std::io::Result<()> {
        let StreamedFile { tmp, out } = self;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        if let Some((at, bytes)) = patch {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(at))?;
            file.write_all(bytes)?;
        }
        drop(file);
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes a candidate log request by request, so that a world too large to hold in memory
/// streams its side files to disk; [`CandidateLogWriter::finish`] moves both files into
/// place (nothing appears under their names before).
pub struct CandidateLogWriter<'a> {
    dir: std::path::PathBuf,
    user_raw: &'a IdMap,
    video_raw: &'a IdMap,
    requests: StreamedFile,
    candidates: StreamedFile,
    next_id: u64,
    total: u64,
}

impl<'a> CandidateLogWriter<'a> {
    pub fn create(dir: &Path, user_raw: &'a IdMap, video_raw: &'a IdMap) -> std::io::Result<Self> {
        let mut requests = StreamedFile::create(dir)?;
        requests.out.write_all(REQUEST_COLUMNS.join(",").as_bytes())?;
        requests.out.write_all(b"\n")?;
        let mut candidates = StreamedFile::create(dir)?;
        candidates.out.write_all(CANDIDATE_MAGIC)?;
        // The count, patched by `finish`.
        candidates.out.write_all(&0u64.to_le_bytes())?;
        Ok(CandidateLogWriter {
            dir: dir.to_path_buf(),
            user_raw,
            video_raw,
            requests,
            candidates,
            next_id: 0,
            total: 0,
        })
    }

    /// Append one request with its candidates (dense ids); its `candidate_offset` must be
    /// where the log stands, and it must own exactly `candidates`.
    pub fn push(&mut self, r: &LoggedRequest, candidates: &[u32]) -> std::io::Result<()> {
        if candidates.len() != r.n_candidates as usize || r.candidate_offset != self.total {
            return Err(invalid_input(format!(
                "request {} owns {} candidates from offset {}, given {} at offset {}",
                self.next_id,
                r.n_candidates,
                r.candidate_offset,
                candidates.len(),
                self.total
            )));
        }
        writeln!(
            self.requests.out,
            "{},{},{},{},{},{},{}",
            self.next_id,
            self.user_raw.raw(r.user),
            r.session,
            r.split.name(),
            r.first_row,
            r.n_shown,
            r.n_candidates
        )?;
        for &c in candidates {
            self.candidates
                .out
                .write_all(&(self.video_raw.raw(c) as u32).to_le_bytes())?;
        }
        self.next_id += 1;
        self.total += candidates.len() as u64;
        Ok(())
    }

    /// Where the next request's candidates start.
    pub fn offset(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> std::io::Result<()> {
        let count = self.total.to_le_bytes();
        self.candidates.persist(
            &self.dir.join(CANDIDATES_FILE),
            Some((CANDIDATE_MAGIC.len() as u64, &count)),
        )?;
        self.requests.persist(&self.dir.join(REQUESTS_FILE), None)
    }
}

/// Write the true propensities of `props`' rows, split by split.
pub fn write_propensities(dir: &Path, props: &[(LogSplit, Vec<(u32, f32)>)], video_raw: &IdMap) -> std::io::Result<()> {
    let mut w = PropensityWriter::create(dir, video_raw)?;
    for (split, rows) in props {
        for &(video, p) in rows {
            w.push(*split, video, p)?;
        }
    }
    w.finish()
}

/// Writes the propensity file row by row, in any order of splits: each split streams to its
/// own temporary file, joined in [`LogSplit::ALL`] order by [`PropensityWriter::finish`].
pub struct PropensityWriter<'a> {
    dir: std::path::PathBuf,
    video_raw: &'a IdMap,
    splits: [StreamedFile; 3],
    rows: [u64; 3],
}

impl<'a> PropensityWriter<'a> {
    pub fn create(dir: &Path, video_raw: &'a IdMap) -> std::io::Result<Self> {
        Ok(PropensityWriter {
            dir: dir.to_path_buf(),
            video_raw,
            splits: [
                StreamedFile::create(dir)?,
                StreamedFile::create(dir)?,
                StreamedFile::create(dir)?,
            ],
            rows: [0; 3],
        })
    }

    /// The propensity of the split's next row (rows in log order), showing `video` (dense id).
    pub fn push(&mut self, split: LogSplit, video: u32, p: f32) -> std::io::Result<()> {
        let s = split as usize;
        writeln!(
            self.splits[s].out,
            "{},{},{},{p:e}",
            split.name(),
            self.rows[s],
            self.video_raw.raw(video)
        )?;
        self.rows[s] += 1;
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<()> {
        let mut all = StreamedFile::create(&self.dir)?;
        all.out.write_all(PROPENSITY_COLUMNS.join(",").as_bytes())?;
        all.out.write_all(b"\n")?;
        for part in self.splits {
            // Flushed and closed before it is read back.
            part.out.into_inner().map_err(|e| e.into_error())?;
            let mut text = std::fs::File::open(part.tmp.path())?;
            std::io::copy(&mut text, &mut all.out)?;
        }
        all.persist(&self.dir.join(PROPENSITIES_FILE), None)
    }
}

/// Read the candidate log if the directory has one, checked against the logs: each
/// split's rows are shown by its requests in order, each row by exactly one request of the
/// row's user.
pub fn read_candidate_log(
    dir: &Path,
    users: &IdMap,
    videos: &IdMap,
    logs: LogKeys<'_>,
) -> Result<Option<CandidateLog>> {
    let path = dir.join(REQUESTS_FILE);
    if !present(dir)? {
        return Ok(None);
    }
    let mut next_row = [0usize; 3];
    let mut file = CsvFile::open(&path)?;
    crate::csvio::check_exact_header(&path, file.header(), &REQUEST_COLUMNS)?;
    let mut rec = csv::StringRecord::new();
    let mut requests: Vec<LoggedRequest> = Vec::new();
    let mut offset = 0u64;
    while let Some(line) = file.next_record(&mut rec, REQUEST_COLUMNS.len())? {
        let int = |c: usize| parse_int(&path, line, REQUEST_COLUMNS[c], rec[c].as_bytes());
        let bad = |c: usize, why: &str| DataError::cell(&path, line, REQUEST_COLUMNS[c], rec[c].as_bytes(), why);
        if int(0)? != requests.len() as i64 {
            return Err(bad(0, "request ids must be 0, 1, 2, ... in order"));
        }
        let user = users.get(int(1)?).ok_or_else(|| bad(1, "user id out of range"))?;
        let split = split_from_name(&rec[3]).ok_or_else(|| bad(3, "unknown split"))?;
        let n_candidates = u16::try_from(int(6)?).map_err(|_| bad(6, "out of range"))?;
        let first_row = u32::try_from(int(4)?).map_err(|_| bad(4, "out of range"))?;
        let n_shown = u16::try_from(int(5)?).map_err(|_| bad(5, "out of range"))?;
        let s = split as usize;
        if first_row as usize != next_row[s] {
            return Err(bad(
                4,
                &format!(
                    "the {} log's rows must be shown by its requests in order: row {} is next \
                     (side files and logs of different generations? regenerate the world)",
                    split.name(),
                    next_row[s]
                ),
            ));
        }
        next_row[s] += n_shown as usize;
        let shown_users = logs.users[s].get(first_row as usize..next_row[s]).ok_or_else(|| {
            bad(
                5,
                &format!(
                    "the request runs past the end of the {} log ({} rows)",
                    split.name(),
                    logs.users[s].len()
                ),
            )
        })?;
        if let Some(k) = shown_users.iter().position(|&u| u != user) {
            return Err(bad(
                1,
                &format!(
                    "row {} of the {} log belongs to user {}, not to this request's user \
                     (side files and logs of different generations? regenerate the world)",
                    first_row as usize + k,
                    split.name(),
                    users.raw(shown_users[k])
                ),
            ));
        }
        requests.push(LoggedRequest {
            user,
            session: u32::try_from(int(2)?).map_err(|_| bad(2, "out of range"))?,
            split,
            first_row,
            n_shown,
            candidate_offset: offset,
            n_candidates,
        });
        offset += n_candidates as u64;
    }
    for split in LogSplit::ALL {
        let (shown, rows) = (next_row[split as usize], logs.users[split as usize].len());
        if shown != rows {
            return Err(DataError::invalid(
                &path,
                format!(
                    "its requests show {shown} rows of the {} log, which has {rows} \
                     (side files and logs of different generations? regenerate the world)",
                    split.name()
                ),
            ));
        }
    }
    let log = open_candidates(dir, requests, offset, videos)?;
    // Validate every id once, here; later reads trust the fingerprinted file.
    log.check_ids()?;
    Ok(Some(log))
}

/// Open the candidate file for `requests` (checked against the expected id count).
pub(crate) fn open_candidates(
    dir: &Path,
    requests: Vec<LoggedRequest>,
    expected: u64,
    videos: &IdMap,
) -> Result<CandidateLog> {
    let cpath = dir.join(CANDIDATES_FILE);
    let file = std::fs::File::open(&cpath).map_err(|e| crate::csvio::open_error(&cpath, e))?;
    let len = file.metadata().map_err(|e| DataError::io(&cpath, e))?.len();
    let mut head = [0u8; 16];
    if len < 16 || read_at(&file, &mut head, 0).is_err() || &head[..8] != CANDIDATE_MAGIC {
        return Err(DataError::invalid(&cpath, "not an mmrf candidate file (bad magic)"));
    }
    let count = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if count != expected || len != 16 + 4 * count {
        return Err(DataError::invalid(
            &cpath,
            format!("holds {} ids, {REQUESTS_FILE} needs {expected}", (len - 16) / 4),
        ));
    }
    Ok(CandidateLog {
        requests,
        file: std::sync::Arc::new(file),
        path: cpath,
        count,
        videos: videos.clone(),
    })
}

/// Read per-impression propensities if present: `[train, test, random]`, aligned to rows,
/// checked against the logs (one line per row, naming the row's own video).
pub fn read_propensities(dir: &Path, videos: &IdMap, logs: LogKeys<'_>) -> Result<Option<[Vec<f32>; 3]>> {
    let path = dir.join(PROPENSITIES_FILE);
    if !present(dir)? {
        return Ok(None);
    }
    let mut file = CsvFile::open(&path)?;
    crate::csvio::check_exact_header(&path, file.header(), &PROPENSITY_COLUMNS)?;
    let mut out: [Vec<f32>; 3] = logs.videos.map(|v| vec![f32::NAN; v.len()]);
    let mut rec = csv::StringRecord::new();
    while let Some(line) = file.next_record(&mut rec, PROPENSITY_COLUMNS.len())? {
        let bad = |c: usize, why: &str| DataError::cell(&path, line, PROPENSITY_COLUMNS[c], rec[c].as_bytes(), why);
        let split = split_from_name(&rec[0]).ok_or_else(|| bad(0, "unknown split"))?;
        let row = parse_int(&path, line, "row", rec[1].as_bytes())?;
        let video = parse_int(&path, line, "video_id", rec[2].as_bytes())?;
        let p = crate::csvio::parse_float(&path, line, "propensity", rec[3].as_bytes())?;
        if !(p > 0.0 && p <= 1.0) {
            return Err(bad(3, "a propensity must be in (0, 1]"));
        }
        let s = split_code(split) as usize;
        let logged = usize::try_from(row)
            .ok()
            .and_then(|r| logs.videos[s].get(r))
            .ok_or_else(|| {
                bad(
                    1,
                    &format!(
                        "row out of range of the {} log ({} rows)",
                        split.name(),
                        logs.videos[s].len()
                    ),
                )
            })?;
        if videos.get(video) != Some(*logged) {
            return Err(bad(
                2,
                &format!(
                    "row {row} of the {} log shows video {} (side files and logs of different \
                     generations? regenerate the world)",
                    split.name(),
                    videos.raw(*logged)
                ),
            ));
        }
        let slot = &mut out[s][row as usize];
        if !slot.is_nan() {
            return Err(bad(1, "a second propensity for the same row"));
        }
        *slot = p;
    }
    for split in LogSplit::ALL {
        if let Some(row) = out[split as usize].iter().position(|p| p.is_nan()) {
            return Err(DataError::invalid(
                &path,
                format!(
                    "row {row} of the {} log has no propensity (side files and logs of \
                     different generations? regenerate the world)",
                    split.name()
                ),
            ));
        }
    }
    Ok(Some(out))
}
