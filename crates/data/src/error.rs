//! One error type for everything the data layer reads or writes.
//!
//! Every variant that comes from a file names the file, and where it comes from a cell,
//! its place ([`Where`]: the 1-based line of a CSV file, the row group and row of a
//! Parquet file) and the column, so a user can open the file and see the problem.

use std::path::{Path, PathBuf};

/// An error while reading, validating or caching KuaiRand-format data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: required file is missing ({what})", path.display())]
    MissingFile { path: PathBuf, what: String },
    #[error("{}: {}: wrong header: {reason}", path.display(), header_place(path))]
    Header { path: PathBuf, reason: String },
    #[error("{}: line {line}: expected {expected} columns, found {found}{hint}", path.display())]
    RowLength {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
        hint: String,
    },
    #[error("{}: {at}, column `{column}`: {reason} (cell: {cell:?})", path.display())]
    Cell {
        path: PathBuf,
        at: Where,
        column: String,
        cell: String,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: cannot be used as a data directory: {reason}", path.display())]
    Directory { path: PathBuf, reason: String },
}

/// Where a file's header is: a CSV file's first line, a Parquet file's schema.
fn header_place(path: &std::path::Path) -> &'static str {
    match crate::columnar::Format::of_path(path) {
        crate::columnar::Format::Csv => "line 1",
        crate::columnar::Format::Parquet => "schema",
    }
}

/// Where a cell is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// A CSV file's 1-based line.
    Line(u64),
    /// A Parquet file's row group (from 0) and row within it (from 0).
    Row { group: usize, row: usize },
}

impl From<u64> for Where {
    fn from(line: u64) -> Where {
        Where::Line(line)
    }
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Where::Line(line) => write!(f, "line {line}"),
            Where::Row { group, row } => write!(f, "row group {group}, row {row}"),
        }
    }
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn cell(path: &Path, at: impl Into<Where>, column: &str, cell: &[u8], reason: &str) -> Self {
        DataError::Cell {
            path: path.to_path_buf(),
            at: at.into(),
            column: column.to_string(),
            cell: String::from_utf8_lossy(cell).into_owned(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the data layer.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
