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
//! - [`columnar`]: the same files as Parquet, read with the same checks and written by
//!   `mmrf data convert`;
//! - [`Dataset`]: a whole directory, with a binary cache next to the data;
//! - [`check`]: `mmrf data check`'s streaming validation and per-signal rates;
//! - [`staged`]: directories written whole (worlds, runs), [`write_atomic`] for files;
//! - [`session`]: impressions → sessions → requests with candidates (`DESIGN.md` §3).
//!
//! Every malformed input is a [`DataError`] naming the file, the line (a Parquet file's row
//! group and row) and the column.

pub mod cache;
pub mod check;
pub mod columnar;
mod csvio;
mod dataset;
pub mod error;
pub mod log;
pub mod schema;
pub mod session;
pub mod side;
pub mod staged;
pub mod table;
pub mod time;

pub use dataset::{Dataset, LoadInfo};
pub use error::{DataError, Result, Where};
pub use log::{LogColumns, LogRow};
pub use schema::{LogSplit, Signal, Version};
pub use table::{Column, FeatureTable, IdMap, Vocab};

use std::io::Write;
use std::path::Path;

/// A new temporary file in `dir`, created with the mode an ordinary file gets (0666 less
/// the process's umask, so usually 0644), not the 0600 of a bare temp file: worlds, runs
/// and caches are read by other accounts (a service reading a run), and none is a secret.
pub fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".mmrf-tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

/// Write `bytes` to `path` atomically: a temp file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(unix)]
    fn atomic_files_get_the_mode_of_an_ordinary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let atomic = dir.path().join("atomic");
        super::write_atomic(&atomic, b"x").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain), "a bare temp file's 0600 leaked through");
    }
}
