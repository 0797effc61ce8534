//! KuaiRand interaction logs as columns, read in parallel and streamed.
//!
//! A log file is read in blocks of whole lines; batches of blocks are parsed on all cores
//! (rayon) and handed, in file order, to a sink. Only one batch of raw text is in memory
//! at a time, so a 27K-size log (322 M rows) can be processed by a streaming sink (as
//! `mmrf data check` does) without holding the text, and loaded as columns when it fits.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rayon::prelude::*;

use crate::csvio::{self, parse_int};
use crate::error::{DataError, Result};
use crate::schema::{Signal, LOG_COLUMNS};
use crate::table::IdMap;

/// The rows of one or more log files, one vector per column, ids as dense indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogColumns {
    pub user: Vec<u32>,
    pub video: Vec<u32>,
    /// `YYYYMMDD`, Beijing time.
    pub date: Vec<u32>,
    /// `HHMM` at hour granularity.
    pub hourmin: Vec<u16>,
    pub time_ms: Vec<i64>,
    pub is_click: Vec<u8>,
    pub is_like: Vec<u8>,
    pub is_follow: Vec<u8>,
    pub is_comment: Vec<u8>,
    pub is_forward: Vec<u8>,
    pub is_hate: Vec<u8>,
    pub long_view: Vec<u8>,
    pub play_time_ms: Vec<u32>,
    pub duration_ms: Vec<u32>,
    pub profile_stay_time: Vec<u32>,
    pub comment_stay_time: Vec<u32>,
    pub is_profile_enter: Vec<u8>,
    pub is_rand: Vec<u8>,
    pub tab: Vec<u8>,
}

/// Apply a macro-like closure to every column pair (used by append and the cache).
macro_rules! for_each_column {
    ($m:ident) => {
        $m!(
            user,
            video,
            date,
            hourmin,
            time_ms,
            is_click,
            is_like,
            is_follow,
            is_comment,
            is_forward,
            is_hate,
            long_view,
            play_time_ms,
            duration_ms,
            profile_stay_time,
            comment_stay_time,
            is_profile_enter,
            is_rand,
            tab
        )
    };
}
pub(crate) use for_each_column;

impl LogColumns {
    pub fn len(&self) -> usize {
        self.user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Empty columns with room for `rows` rows each.
    pub fn with_capacity(rows: usize) -> LogColumns {
        let mut out = LogColumns::default();
        macro_rules! reserve {
            ($($c:ident),*) => { $( out.$c.reserve_exact(rows); )* };
        }
        for_each_column!(reserve);
        out
    }

    /// The rows of `parts`, in order, in columns allocated once at their total size (a
    /// large log grown block by block would copy and fault in every column many times).
    pub fn concat(parts: Vec<LogColumns>) -> LogColumns {
        let mut out = LogColumns::with_capacity(parts.iter().map(LogColumns::len).sum());
        for part in parts {
            macro_rules! ext {
                ($($c:ident),*) => { $( out.$c.extend_from_slice(&part.$c); )* };
            }
            for_each_column!(ext);
        }
        out
    }

    /// Move every row of `other` to the end of `self`.
    pub fn append(&mut self, mut other: LogColumns) {
        macro_rules! app {
            ($($c:ident),*) => { $( self.$c.append(&mut other.$c); )* };
        }
        for_each_column!(app);
    }

    /// The value of a signal at row `i`: 0/1 for binary signals, seconds for WatchTime.
    #[inline]
    pub fn label(&self, signal: Signal, i: usize) -> f32 {
        match signal {
            Signal::Click => self.is_click[i] as f32,
            Signal::Like => self.is_like[i] as f32,
            Signal::Follow => self.is_follow[i] as f32,
            Signal::Comment => self.is_comment[i] as f32,
            Signal::Hate => self.is_hate[i] as f32,
            Signal::LongView => self.long_view[i] as f32,
            Signal::WatchTime => self.play_time_ms[i] as f32 / 1000.0,
        }
    }

    /// Append one row (used by writers and tests).
    pub fn push_row(&mut self, row: &LogRow) {
        self.user.push(row.user);
        self.video.push(row.video);
        self.date.push(row.date);
        self.hourmin.push(row.hourmin);
        self.time_ms.push(row.time_ms);
        self.is_click.push(row.is_click as u8);
        self.is_like.push(row.is_like as u8);
        self.is_follow.push(row.is_follow as u8);
        self.is_comment.push(row.is_comment as u8);
        self.is_forward.push(row.is_forward as u8);
        self.is_hate.push(row.is_hate as u8);
        self.long_view.push(row.long_view as u8);
        self.play_time_ms.push(row.play_time_ms);
        self.duration_ms.push(row.duration_ms);
        self.profile_stay_time.push(row.profile_stay_time);
        self.comment_stay_time.push(row.comment_stay_time);
        self.is_profile_enter.push(row.is_profile_enter as u8);
        self.is_rand.push(row.is_rand as u8);
        self.tab.push(row.tab);
    }

    /// Row `i` as a struct.
    pub fn row(&self, i: usize) -> LogRow {
        LogRow {
            user: self.user[i],
            video: self.video[i],
            date: self.date[i],
            hourmin: self.hourmin[i],
            time_ms: self.time_ms[i],
            is_click: self.is_click[i] != 0,
            is_like: self.is_like[i] != 0,
            is_follow: self.is_follow[i] != 0,
            is_comment: self.is_comment[i] != 0,
            is_forward: self.is_forward[i] != 0,
            is_hate: self.is_hate[i] != 0,
            long_view: self.long_view[i] != 0,
            play_time_ms: self.play_time_ms[i],
            duration_ms: self.duration_ms[i],
            profile_stay_time: self.profile_stay_time[i],
            comment_stay_time: self.comment_stay_time[i],
            is_profile_enter: self.is_profile_enter[i] != 0,
            is_rand: self.is_rand[i] != 0,
            tab: self.tab[i],
        }
    }
}

/// One log row, ids as written in the file (for writers) or dense (for readers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRow {
    pub user: u32,
    pub video: u32,
    pub date: u32,
    pub hourmin: u16,
    pub time_ms: i64,
    pub is_click: bool,
    pub is_like: bool,
    pub is_follow: bool,
    pub is_comment: bool,
    pub is_forward: bool,
    pub is_hate: bool,
    pub long_view: bool,
    pub play_time_ms: u32,
    pub duration_ms: u32,
    pub profile_stay_time: u32,
    pub comment_stay_time: u32,
    pub is_profile_enter: bool,
    pub is_rand: bool,
    pub tab: u8,
}

impl LogRow {
    /// The row as a CSV line in KuaiRand's column order (no newline), raw ids.
    pub fn write_csv(&self, out: &mut Vec<u8>, user_raw: i64, video_raw: i64) {
        use std::io::Write;
        let b = |v: bool| v as u8;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            user_raw,
            video_raw,
            self.date,
            self.hourmin,
            self.time_ms,
            b(self.is_click),
            b(self.is_like),
            b(self.is_follow),
            b(self.is_comment),
            b(self.is_forward),
            b(self.is_hate),
            b(self.long_view),
            self.play_time_ms,
            self.duration_ms,
            self.profile_stay_time,
            self.comment_stay_time,
            b(self.is_profile_enter),
            b(self.is_rand),
            self.tab
        );
    }
}

/// How the ids of a log are resolved.
pub struct LogIds<'a> {
    pub users: &'a IdMap,
    pub videos: &'a IdMap,
    /// File names the ids must come from, for the error message.
    pub user_file: &'a str,
    pub video_file: &'a str,
}

const BLOCK_BYTES: usize = 4 << 20;

/// Stream a log file: parse it in parallel, call `sink` with consecutive row blocks in file
/// order. Returns the number of data rows.
pub fn stream_log(path: &Path, ids: &LogIds<'_>, mut sink: impl FnMut(LogColumns) -> Result<()>) -> Result<u64> {
    let file = File::open(path).map_err(|e| csvio::open_error(path, e))?;
    let mut reader = BufReader::with_capacity(BLOCK_BYTES, file);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(|e| DataError::io(path, e))?;
    let header: Vec<String> = header
        .trim_end_matches(['\n', '\r'])
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    if header.len() == 1 && header[0].is_empty() {
        return Err(DataError::Header {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    csvio::check_exact_header(path, &header, &LOG_COLUMNS)?;

    let batch = rayon::current_num_threads().max(1) * 2;
    let mut next_line: u64 = 2;
    let mut carry: Vec<u8> = Vec::new();
    let mut rows = 0u64;
    let mut eof = false;
    while !eof {
        // Cut a batch of blocks, each ending at a newline.
        let mut blocks: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch);
        while blocks.len() < batch && !eof {
            let mut buf = std::mem::take(&mut carry);
            let start = buf.len();
            buf.resize(start + BLOCK_BYTES, 0);
            let mut filled = start;
            while filled < buf.len() {
                let n = reader.read(&mut buf[filled..]).map_err(|e| DataError::io(path, e))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            if !eof {
                match memchr::memrchr(b'\n', &buf) {
                    Some(pos) => {
                        carry = buf[pos + 1..].to_vec();
                        buf.truncate(pos + 1);
                    }
                    None => {
                        // A line longer than a block: keep it and read on.
                        carry = buf;
                        continue;
                    }
                }
            }
            if buf.is_empty() {
                continue;
            }
            let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
            blocks.push((next_line, buf));
            next_line += lines;
        }
        let parsed: Vec<Result<LogColumns>> = blocks
            .par_iter()
            .map(|(first_line, text)| parse_block(path, *first_line, text, ids))
            .collect();
        for block in parsed {
            let block = block?;
            rows += block.len() as u64;
            sink(block)?;
        }
    }
    Ok(rows)
}

/// [`stream_log`] for a CSV file, [`crate::columnar::stream_log`] for a `.parquet` one.
pub fn stream_log_file(path: &Path, ids: &LogIds<'_>, sink: impl FnMut(LogColumns) -> Result<()>) -> Result<u64> {
    match crate::columnar::Format::of_path(path) {
        crate::columnar::Format::Csv => stream_log(path, ids, sink),
        crate::columnar::Format::Parquet => crate::columnar::stream_log(path, ids, sink),
    }
}

/// Read whole log files, CSV or Parquet (concatenated in order), into columns.
pub fn read_logs(paths: &[std::path::PathBuf], ids: &LogIds<'_>) -> Result<LogColumns> {
    let mut blocks = Vec::new();
    for path in paths {
        stream_log_file(path, ids, |block| {
            blocks.push(block);
            Ok(())
        })?;
    }
    Ok(LogColumns::concat(blocks))
}

/// Append one log row, `values` in [`LOG_COLUMNS`] order, after the schema's checks: known
/// user and video ids, a `YYYYMMDD` date, `HHMM`, flags of 0 or 1, non-negative times
/// below 2^32, a tab in 0..255. `bad(column, why)` is the error for a value that fails,
/// placed in its file by the caller (a CSV line, a Parquet row).
pub(crate) fn push_checked(
    out: &mut LogColumns,
    values: &[i64; LOG_COLUMNS.len()],
    ids: &LogIds<'_>,
    bad: impl Fn(usize, &str) -> DataError,
) -> Result<()> {
    let ranged = |c: usize, lo: i64, hi: i64, what: &str| -> Result<i64> {
        let v = values[c];
        if v < lo || v > hi {
            return Err(bad(c, what));
        }
        Ok(v)
    };
    let flag = |c: usize| -> Result<u8> { Ok(ranged(c, 0, 1, "expected 0 or 1")? as u8) };
    let nonneg = |c: usize| -> Result<u32> {
        Ok(ranged(c, 0, u32::MAX as i64, "expected a non-negative integer below 2^32")? as u32)
    };
    let user = ids
        .users
        .get(values[0])
        .ok_or_else(|| bad(0, &format!("user id out of range: not in {}", ids.user_file)))?;
    let video = ids
        .videos
        .get(values[1])
        .ok_or_else(|| bad(1, &format!("video id out of range: not in {}", ids.video_file)))?;
    let date = values[2];
    if !(0..=u32::MAX as i64).contains(&date) || crate::time::parse_yyyymmdd(date as u32).is_none() {
        return Err(bad(2, "expected a YYYYMMDD date"));
    }
    let hourmin = ranged(3, 0, 2359, "expected HHMM")?;
    if hourmin % 100 > 59 {
        return Err(bad(3, "expected HHMM"));
    }
    // Every check before the first push: a failing row leaves `out` as it was.
    let row = [
        flag(5)?,
        flag(6)?,
        flag(7)?,
        flag(8)?,
        flag(9)?,
        flag(10)?,
        flag(11)?,
        flag(16)?,
        flag(17)?,
    ];
    let times = [nonneg(12)?, nonneg(13)?, nonneg(14)?, nonneg(15)?];
    let tab = ranged(18, 0, 255, "expected a tab number 0..255")? as u8;
    out.user.push(user);
    out.video.push(video);
    out.date.push(date as u32);
    out.hourmin.push(hourmin as u16);
    out.time_ms.push(values[4]);
    out.is_click.push(row[0]);
    out.is_like.push(row[1]);
    out.is_follow.push(row[2]);
    out.is_comment.push(row[3]);
    out.is_forward.push(row[4]);
    out.is_hate.push(row[5]);
    out.long_view.push(row[6]);
    out.play_time_ms.push(times[0]);
    out.duration_ms.push(times[1]);
    out.profile_stay_time.push(times[2]);
    out.comment_stay_time.push(times[3]);
    out.is_profile_enter.push(row[7]);
    out.is_rand.push(row[8]);
    out.tab.push(tab);
    Ok(())
}

fn parse_block(path: &Path, first_line: u64, text: &[u8], ids: &LogIds<'_>) -> Result<LogColumns> {
    if let Some(out) = parse_plain_block(path, text, ids) {
        return Ok(out);
    }
    // Anything the plain reader leaves (quotes, blank lines, `\r\n`, floats, a bad value):
    // the CSV reader, which also words every error.
    parse_csv_block(path, first_line, text, ids)
}

/// A block whose every line is [`LOG_COLUMNS`]' 19 plain decimal integers (`-?[0-9]{1,18}`)
/// separated by commas, as KuaiRand's logs and generated worlds are written, every row
/// passing [`push_checked`]; `None` at the first line that is not, before any error is
/// worded. It gives exactly the CSV reader's columns for such a block (integers parse as
/// [`parse_int`]'s fast path does), in one pass over the bytes, no record buffer. The digit
/// loop is its own rather than a call of that fast path per field: finding each field's end
/// first and then parsing it was 15–20 % slower at the 27k scale.
fn parse_plain_block(path: &Path, text: &[u8], ids: &LogIds<'_>) -> Option<LogColumns> {
    const N: usize = LOG_COLUMNS.len();
    let mut out = LogColumns::with_capacity(text.len() / 64);
    let mut values = [0i64; N];
    let mut pos = 0;
    while pos < text.len() {
        for (c, value) in values.iter_mut().enumerate() {
            let neg = text[pos] == b'-';
            pos += neg as usize;
            let start = pos;
            let mut v: i64 = 0;
            while let Some(&b) = text.get(pos).filter(|b| b.is_ascii_digit()) {
                v = v * 10 + (b - b'0') as i64;
                pos += 1;
            }
            if pos == start || pos - start > 18 {
                return None;
            }
            *value = if neg { -v } else { v };
            // A comma between fields; a newline (or the end of the file) after the last.
            match text.get(pos) {
                Some(b',') if c + 1 < N => pos += 1,
                Some(b'\n') if c + 1 == N => pos += 1,
                None if c + 1 == N => {}
                _ => return None,
            }
            if pos == text.len() && c + 1 < N {
                return None;
            }
        }
        push_checked(&mut out, &values, ids, |_, _| DataError::invalid(path, "")).ok()?;
    }
    Some(out)
}

fn parse_csv_block(path: &Path, first_line: u64, text: &[u8], ids: &LogIds<'_>) -> Result<LogColumns> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    // About one row per 64 bytes of text: each column allocated once.
    let mut out = LogColumns::with_capacity(text.len() / 64);
    let mut rec = csv::ByteRecord::new();
    loop {
        let more = reader
            .read_byte_record(&mut rec)
            .map_err(|e| csvio::csv_error(path, e))?;
        if !more {
            break;
        }
        let line = first_line + rec.position().map_or(1, |p| p.line()) - 1;
        if rec.len() != LOG_COLUMNS.len() {
            if rec.len() == 1 && rec[0].is_empty() {
                continue;
            }
            return Err(csvio::row_length_error(
                path,
                line,
                LOG_COLUMNS.len(),
                rec.len(),
                rec.iter().any(|c| c.contains(&b'\t')),
            ));
        }
        let mut values = [0i64; LOG_COLUMNS.len()];
        for (c, v) in values.iter_mut().enumerate() {
            *v = parse_int(path, line, LOG_COLUMNS[c], &rec[c])?;
        }
        push_checked(&mut out, &values, ids, |c, why| {
            DataError::cell(path, line, LOG_COLUMNS[c], &rec[c], why)
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One field as a file might write it: mostly plain, sometimes quoted, as a float or
    /// padded (what only the CSV reader takes).
    fn cell(v: i64, style: u8) -> String {
        match style {
            97 => format!("\"{v}\""),
            98 => format!("{v}.0"),
            99 => format!(" {v}"),
            _ => v.to_string(),
        }
    }

    /// A field's value: in the schema's range unless `v` is one of the few large draws.
    fn value(column: usize, v: i64) -> i64 {
        let ok = v < 197;
        match column {
            0 | 1 if ok => v % 60,
            2 if ok => 20220408 + v % 20,
            2 => 20220432,
            3 if ok => 100 * (v % 24),
            3 => 2360,
            4 => v * 1_000,
            5..=11 | 16 | 17 if ok => v % 2,
            12..=15 if ok => v * 1_000,
            12..=15 => -5,
            18 if ok => v % 15,
            _ => v * 2,
        }
    }

    proptest! {
        /// The plain reader is only a faster road to the CSV reader's answer: for any block,
        /// the same columns or the same error.
        #[test]
        fn the_plain_reader_agrees_with_the_csv_reader(
            rows in prop::collection::vec(
                (prop::collection::vec((0i64..200, 0u8..100), LOG_COLUMNS.len()), 0u8..40),
                1..8,
            ),
            final_newline: bool,
        ) {
            let ids = IdMap::from_raw((0..60).collect()).unwrap();
            let log_ids = LogIds { users: &ids, videos: &ids, user_file: "u.csv", video_file: "v.csv" };
            let mut text = String::new();
            for (fields, ending) in &rows {
                let line: Vec<String> = fields
                    .iter()
                    .enumerate()
                    .map(|(c, &(v, style))| cell(value(c, v), style))
                    .collect();
                let mut line = line.join(",");
                if *ending == 0 {
                    line.push_str(",9");
                }
                text.push_str(&line);
                text.push_str(match ending { 1 => "\r\n", 2 => "\n\n", _ => "\n" });
            }
            if !final_newline {
                text.pop();
            }
            let path = Path::new("log.csv");
            let plain = parse_block(path, 2, text.as_bytes(), &log_ids);
            let csv = parse_csv_block(path, 2, text.as_bytes(), &log_ids);
            match (plain, csv) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "plain {:?} against csv {:?}", a.map(|c| c.len()), b.map(|c| c.len())),
            }
        }
    }

    #[test]
    fn a_plain_block_takes_the_plain_road() {
        let ids = IdMap::from_raw((0..10).collect()).unwrap();
        let log_ids = LogIds {
            users: &ids,
            videos: &ids,
            user_file: "u",
            video_file: "v",
        };
        let row = "3,4,20220410,1300,1649566800000,1,0,0,0,0,0,1,9000,8000,0,0,0,0,1";
        let text = format!("{row}\n{row}");
        let cols = parse_plain_block(Path::new("x"), text.as_bytes(), &log_ids).expect("plain");
        assert_eq!(cols.len(), 2);
        assert_eq!(
            (cols.user[1], cols.video[1], cols.play_time_ms[1], cols.tab[1]),
            (3, 4, 9000, 1)
        );
        for odd in [
            format!("{row}\r\n"),
            format!("\"3\"{}", &row[1..]),
            format!("{row}\n\n{row}\n"),
        ] {
            assert!(
                parse_plain_block(Path::new("x"), odd.as_bytes(), &log_ids).is_none(),
                "{odd:?}"
            );
        }
    }
}
