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

use std::io::{Read, Write};
use std::path::Path;

use crate::csvio::{parse_int, CsvFile};
use crate::error::{DataError, Result};
use crate::schema::LogSplit;
use crate::table::IdMap;

pub const REQUESTS_FILE: &str = "mmrf_requests.csv";
pub const CANDIDATES_FILE: &str = "mmrf_candidates.bin";
pub const PROPENSITIES_FILE: &str = "mmrf_propensities.csv";
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
    /// Offset of the request's candidates in [`CandidateLog::candidates`].
    pub candidate_offset: u64,
    pub n_candidates: u16,
}

/// The candidate log: every request with its full candidate set (dense video ids).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidateLog {
    pub requests: Vec<LoggedRequest>,
    pub candidates: Vec<u32>,
}

impl CandidateLog {
    pub fn candidates_of(&self, r: &LoggedRequest) -> &[u32] {
        let s = r.candidate_offset as usize;
        &self.candidates[s..s + r.n_candidates as usize]
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

/// Write the candidate log (requests in order; raw ids through `video_raw`).
pub fn write_candidate_log(dir: &Path, log: &CandidateLog, user_raw: &IdMap, video_raw: &IdMap) -> std::io::Result<()> {
    let mut csv = Vec::with_capacity(log.requests.len() * 40);
    csv.extend_from_slice(REQUEST_COLUMNS.join(",").as_bytes());
    csv.push(b'\n');
    for (i, r) in log.requests.iter().enumerate() {
        writeln!(
            csv,
            "{i},{},{},{},{},{},{}",
            user_raw.raw(r.user),
            r.session,
            r.split.name(),
            r.first_row,
            r.n_shown,
            r.n_candidates
        )?;
    }
    crate::write_atomic(&dir.join(REQUESTS_FILE), &csv)?;
    let mut bin = Vec::with_capacity(16 + log.candidates.len() * 4);
    bin.extend_from_slice(CANDIDATE_MAGIC);
    bin.extend_from_slice(&(log.candidates.len() as u64).to_le_bytes());
    for &c in &log.candidates {
        bin.extend_from_slice(&(video_raw.raw(c) as u32).to_le_bytes());
    }
    crate::write_atomic(&dir.join(CANDIDATES_FILE), &bin)
}

/// Write per-impression propensities for each split (`props[split][row]`).
pub fn write_propensities(dir: &Path, props: &[(LogSplit, Vec<(u32, f32)>)], video_raw: &IdMap) -> std::io::Result<()> {
    let mut csv = Vec::new();
    csv.extend_from_slice(PROPENSITY_COLUMNS.join(",").as_bytes());
    csv.push(b'\n');
    for (split, rows) in props {
        for (row, &(video, p)) in rows.iter().enumerate() {
            writeln!(csv, "{},{row},{},{p:e}", split.name(), video_raw.raw(video))?;
        }
    }
    crate::write_atomic(&dir.join(PROPENSITIES_FILE), &csv)
}

/// Read the candidate log if the directory has one.
pub fn read_candidate_log(dir: &Path, users: &IdMap, videos: &IdMap) -> Result<Option<CandidateLog>> {
    let path = dir.join(REQUESTS_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let mut file = CsvFile::open(&path)?;
    crate::csvio::check_exact_header(&path, file.header(), &REQUEST_COLUMNS)?;
    let mut rec = csv::StringRecord::new();
    let mut log = CandidateLog::default();
    let mut offset = 0u64;
    while let Some(line) = file.next_record(&mut rec, REQUEST_COLUMNS.len())? {
        let int = |c: usize| parse_int(&path, line, REQUEST_COLUMNS[c], rec[c].as_bytes());
        let bad = |c: usize, why: &str| DataError::cell(&path, line, REQUEST_COLUMNS[c], rec[c].as_bytes(), why);
        if int(0)? != log.requests.len() as i64 {
            return Err(bad(0, "request ids must be 0, 1, 2, ... in order"));
        }
        let user = users.get(int(1)?).ok_or_else(|| bad(1, "user id out of range"))?;
        let split = split_from_name(&rec[3]).ok_or_else(|| bad(3, "unknown split"))?;
        let n_candidates = u16::try_from(int(6)?).map_err(|_| bad(6, "out of range"))?;
        log.requests.push(LoggedRequest {
            user,
            session: u32::try_from(int(2)?).map_err(|_| bad(2, "out of range"))?,
            split,
            first_row: u32::try_from(int(4)?).map_err(|_| bad(4, "out of range"))?,
            n_shown: u16::try_from(int(5)?).map_err(|_| bad(5, "out of range"))?,
            candidate_offset: offset,
            n_candidates,
        });
        offset += n_candidates as u64;
    }
    let cpath = dir.join(CANDIDATES_FILE);
    let mut bytes = Vec::new();
    std::fs::File::open(&cpath)
        .map_err(|e| crate::csvio::open_error(&cpath, e))?
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(&cpath, e))?;
    if bytes.len() < 16 || &bytes[..8] != CANDIDATE_MAGIC {
        return Err(DataError::invalid(&cpath, "not an mmrf candidate file (bad magic)"));
    }
    let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if count != offset || bytes.len() as u64 != 16 + 4 * count {
        return Err(DataError::invalid(
            &cpath,
            format!(
                "holds {} ids, {REQUESTS_FILE} needs {offset}",
                (bytes.len() as u64 - 16) / 4
            ),
        ));
    }
    log.candidates = bytes[16..]
        .chunks_exact(4)
        .enumerate()
        .map(|(i, b)| {
            let raw = u32::from_le_bytes(b.try_into().expect("4 bytes")) as i64;
            videos
                .get(raw)
                .ok_or_else(|| DataError::invalid(&cpath, format!("candidate #{i}: video id {raw} out of range")))
        })
        .collect::<Result<_>>()?;
    Ok(Some(log))
}

/// Read per-impression propensities if present: `[train, test, random]`, aligned to rows.
pub fn read_propensities(dir: &Path, rows: [usize; 3]) -> Result<Option<[Vec<f32>; 3]>> {
    let path = dir.join(PROPENSITIES_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let mut file = CsvFile::open(&path)?;
    crate::csvio::check_exact_header(&path, file.header(), &PROPENSITY_COLUMNS)?;
    let mut out: [Vec<f32>; 3] = rows.map(|n| vec![f32::NAN; n]);
    let mut rec = csv::StringRecord::new();
    while let Some(line) = file.next_record(&mut rec, PROPENSITY_COLUMNS.len())? {
        let bad = |c: usize, why: &str| DataError::cell(&path, line, PROPENSITY_COLUMNS[c], rec[c].as_bytes(), why);
        let split = split_from_name(&rec[0]).ok_or_else(|| bad(0, "unknown split"))?;
        let row = parse_int(&path, line, "row", rec[1].as_bytes())?;
        let p = crate::csvio::parse_float(&path, line, "propensity", rec[3].as_bytes())?;
        if !(p > 0.0 && p <= 1.0) {
            return Err(bad(3, "a propensity must be in (0, 1]"));
        }
        let slot = out[split_code(split) as usize]
            .get_mut(row as usize)
            .filter(|_| row >= 0)
            .ok_or_else(|| bad(1, "row out of range of the split's log"))?;
        *slot = p;
    }
    Ok(Some(out))
}
