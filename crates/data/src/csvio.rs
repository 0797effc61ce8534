//! CSV reading with errors that name the file, the line and the column.
//!
//! Parsing is the `csv` crate's; this module adds header validation, row-length checks
//! (with a hint when a tab-separated file is passed as CSV) and typed cell parsers.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result, Where};

/// A CSV file opened for record-by-record reading.
pub(crate) struct CsvFile {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    header: Vec<String>,
}

impl CsvFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let mut first = csv::StringRecord::new();
        let ok = reader.read_record(&mut first).map_err(|e| csv_error(path, e))?;
        if !ok {
            return Err(DataError::Header {
                path: path.to_path_buf(),
                reason: "the file is empty".into(),
            });
        }
        let header = first
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        Ok(CsvFile {
            path: path.to_path_buf(),
            reader,
            header,
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Read the next record; `Ok(Some(line))` with its 1-based line number.
    pub fn next_record(&mut self, record: &mut csv::StringRecord, expected: usize) -> Result<Option<u64>> {
        if !self.reader.read_record(record).map_err(|e| csv_error(&self.path, e))? {
            return Ok(None);
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != expected {
            // A trailing blank line is not a row.
            if record.len() == 1 && record[0].is_empty() {
                return self.next_record(record, expected);
            }
            return Err(row_length_error(
                &self.path,
                line,
                expected,
                record.len(),
                record.iter().any(|c| c.contains('\t')),
            ));
        }
        Ok(Some(line))
    }
}

pub(crate) fn open_error(path: &Path, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::MissingFile {
            path: path.to_path_buf(),
            what: "no such file".into(),
        }
    } else {
        DataError::io(path, e)
    }
}

pub(crate) fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io(path, io),
        csv::ErrorKind::Utf8 { err, .. } => DataError::Cell {
            path: path.to_path_buf(),
            at: line.into(),
            column: format!("#{}", err.field() + 1),
            cell: String::new(),
            reason: "not valid UTF-8".into(),
        },
        other => DataError::invalid(path, format!("line {line}: {other:?}")),
    }
}

pub(crate) fn row_length_error(path: &Path, line: u64, expected: usize, found: usize, has_tab: bool) -> DataError {
    DataError::RowLength {
        path: path.to_path_buf(),
        line,
        expected,
        found,
        hint: if has_tab {
            " (the row contains tabs: the file looks tab-separated, KuaiRand files are comma-separated)".into()
        } else {
            String::new()
        },
    }
}

fn tab_hint(header: &[String]) -> &'static str {
    if header.len() == 1 && header[0].contains('\t') {
        " (the file looks tab-separated; KuaiRand files are comma-separated)"
    } else {
        ""
    }
}

/// The header must be exactly `expected`, in order.
pub(crate) fn check_exact_header(path: &Path, header: &[String], expected: &[&str]) -> Result<()> {
    if header.len() != expected.len() {
        return Err(DataError::Header {
            path: path.to_path_buf(),
            reason: format!(
                "expected {} columns, found {}{}",
                expected.len(),
                header.len(),
                tab_hint(header)
            ),
        });
    }
    for (i, (h, e)) in header.iter().zip(expected).enumerate() {
        if h != e {
            return Err(DataError::Header {
                path: path.to_path_buf(),
                reason: format!("column {} is `{h}`, expected `{e}`", i + 1),
            });
        }
    }
    Ok(())
}

/// The header must name every `required` column, the id column first.
pub(crate) fn check_required_header(path: &Path, header: &[String], required: &[&str]) -> Result<()> {
    if let Some(first) = required.first() {
        if header.first().map(String::as_str) != Some(first) {
            return Err(DataError::Header {
                path: path.to_path_buf(),
                reason: format!("the first column must be `{first}`{}", tab_hint(header)),
            });
        }
    }
    if let Some(missing) = required.iter().find(|r| !header.iter().any(|h| h == *r)) {
        return Err(DataError::Header {
            path: path.to_path_buf(),
            reason: format!("column `{missing}` is missing"),
        });
    }
    Ok(())
}

/// An integer cell; an integral float such as `3.0` is accepted (KuaiRand writes some so).
#[inline]
pub(crate) fn parse_int(path: &Path, line: impl Into<Where> + Copy, column: &str, cell: &[u8]) -> Result<i64> {
    if let Some(v) = atoi_i64(cell) {
        return Ok(v);
    }
    let bad = || DataError::cell(path, line, column, cell, "expected an integer");
    let s = std::str::from_utf8(cell).map_err(|_| bad())?;
    match s.trim().parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Ok(f) if f.is_finite() && f.fract() == 0.0 => Err(DataError::cell(
            path,
            line,
            column,
            cell,
            "an integer out of range (at most 9e15 in magnitude)",
        )),
        _ => Err(bad()),
    }
}

/// A plain decimal integer, the fast path of [`parse_int`].
#[inline]
fn atoi_i64(cell: &[u8]) -> Option<i64> {
    let (neg, digits) = match cell.first()? {
        b'-' => (true, &cell[1..]),
        _ => (false, cell),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as i64;
    }
    Some(if neg { -v } else { v })
}

/// A finite float cell.
pub(crate) fn parse_float(path: &Path, line: impl Into<Where> + Copy, column: &str, cell: &[u8]) -> Result<f32> {
    std::str::from_utf8(cell)
        .ok()
        .and_then(|s| s.trim().parse::<f32>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| DataError::cell(path, line, column, cell, "expected a finite number"))
}

/// A `YYYY-MM-DD` date as days since 1970-01-01.
pub(crate) fn parse_date_dashed(path: &Path, line: impl Into<Where> + Copy, column: &str, cell: &str) -> Result<i64> {
    let bad = || DataError::cell(path, line, column, cell.as_bytes(), "expected a YYYY-MM-DD date");
    let mut parts = cell.trim().splitn(3, '-');
    let mut next = || -> Result<u32> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
    let (y, m, d) = (next()?, next()?, next()?);
    crate::time::parse_yyyymmdd(y * 10_000 + m * 100 + d).ok_or_else(bad)?;
    Ok(crate::time::days_from_civil(y as i32, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_floats() {
        let p = Path::new("f.csv");
        assert_eq!(parse_int(p, 2, "c", b"-124").unwrap(), -124);
        assert_eq!(parse_int(p, 2, "c", b"3.0").unwrap(), 3);
        let e = parse_int(p, 7, "play_time_ms", b"abc").unwrap_err().to_string();
        assert_eq!(
            e,
            "f.csv: line 7, column `play_time_ms`: expected an integer (cell: \"abc\")"
        );
        assert!(parse_int(p, 2, "c", b"3.5").is_err());
        // 2^62 is an integer, too large: said so, not "expected an integer".
        let e = parse_int(p, 3, "c", b"4611686018427387904").unwrap_err().to_string();
        assert!(e.contains("an integer out of range"), "{e}");
        assert!(parse_float(p, 2, "c", b"NaN").is_err());
        assert_eq!(parse_date_dashed(p, 2, "d", "1970-01-02").unwrap(), 1);
        assert!(parse_date_dashed(p, 2, "d", "2022-13-01").is_err());
    }
}
