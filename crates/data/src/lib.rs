//! # mmrf-data — the KuaiRand data layer
//!
//! Reads KuaiRand-1K, -Pure and -27K directories exactly as they ship (and the worlds that
//! `mmrf-world` generates in the same format) into typed columns:
//!
//! - [`schema`]: file names, column names, the seven feedback [`Signal`]s and KuaiRand's
//!   `is_click` / `long_view` rules;
//! - [`table`]: feature files as typed columns with dense ids ([`FeatureTable`], [`IdMap`]);
//! - [`log`]: interaction logs as columns ([`LogColumns`]), parsed in parallel and streamed;
//! - [`side`]: the world's side files (candidate log, true propensities);
//! - [`Dataset`]: a whole directory, with a binary cache next to the data;
//! - [`check`]: `mmrf data check`'s streaming validation and per-signal rates;
//! - [`session`]: impressions → sessions → requests with candidates (`DESIGN.md` §3).
//!
//! Every malformed input is a [`DataError`] naming the file, the line and the column.

pub mod cache;
pub mod check;
mod csvio;
mod dataset;
pub mod error;
pub mod log;
pub mod schema;
pub mod session;
pub mod side;
pub mod table;
pub mod time;

pub use dataset::{Dataset, LoadInfo};
pub use error::{DataError, Result};
pub use log::{LogColumns, LogRow};
pub use schema::{LogSplit, Signal, Version};
pub use table::{Column, FeatureTable, IdMap, Vocab};

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: a temp file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
