//! The binary cache: a dataset's columns as raw little-endian arrays in one file.
//!
//! The cache lives next to the data (`DIR/.mmrf-cache/`), or under the system temp
//! directory when the data directory is read-only. It is written atomically (temp file +
//! rename), so a crash never leaves a partial cache behind, and it cannot lie:
//!
//! - it is keyed by a fingerprint of the source files: name, size, modification time, the
//!   inode's change time (which any write moves, even one that restores the modification
//!   time) and a hash of each file's first and last 64 KiB, so a changed file is re-read;
//! - its body carries an xxh3 checksum, verified on every load (one pass over the mapped
//!   file), so a damaged cache is reported, deleted and rebuilt from the sources instead of
//!   being decoded into wrong numbers.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::table::{Column, FeatureTable, IdMap, Vocab};

const MAGIC: &[u8; 8] = b"MMRFDS04";

/// How much of each end of a source file the fingerprint hashes.
const FINGERPRINT_EDGE: u64 = 64 << 10;

/// Sequential writer of cache sections.
#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn vec<T: bytemuck::Pod>(&mut self, v: &[T]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(bytemuck::cast_slice(v));
    }

    pub fn str(&mut self, s: &str) {
        self.vec(s.as_bytes());
    }

    pub fn strings(&mut self, v: &[String]) {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    pub fn table(&mut self, t: &FeatureTable) {
        self.vec(t.ids.raw_ids());
        self.strings(&t.names);
        self.u64(t.missing_markers);
        self.u64(t.blank_cells);
        for c in &t.columns {
            match c {
                Column::Numeric(v) => {
                    self.u64(0);
                    self.vec(v);
                }
                Column::Categorical { codes, vocab } => {
                    self.u64(1);
                    self.vec(codes);
                    self.strings(vocab.names());
                }
                Column::MultiCategorical { offsets, codes, vocab } => {
                    self.u64(2);
                    self.vec(offsets);
                    self.vec(codes);
                    self.strings(vocab.names());
                }
            }
        }
    }
}

/// Sequential reader of cache sections; any inconsistency is a corrupt cache.
pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

#[derive(Debug)]
pub(crate) struct Corrupt;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.pos.checked_add(n).ok_or(Corrupt)?;
        let s = self.data.get(self.pos..end).ok_or(Corrupt)?;
        self.pos = end;
        Ok(s)
    }

    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Corrupt)?))
    }

    pub fn vec<T: bytemuck::Pod>(&mut self) -> Result<Vec<T>, Corrupt> {
        let n = self.u64()? as usize;
        let bytes = self.take(n.checked_mul(std::mem::size_of::<T>()).ok_or(Corrupt)?)?;
        Ok(bytemuck::pod_collect_to_vec(bytes))
    }

    pub fn str(&mut self) -> Result<String, Corrupt> {
        String::from_utf8(self.vec::<u8>()?).map_err(|_| Corrupt)
    }

    pub fn strings(&mut self) -> Result<Vec<String>, Corrupt> {
        let n = self.u64()? as usize;
        (0..n).map(|_| self.str()).collect()
    }

    pub fn table(&mut self) -> Result<FeatureTable, Corrupt> {
        let ids = IdMap::from_raw(self.vec()?).map_err(|_| Corrupt)?;
        let names = self.strings()?;
        let missing_markers = self.u64()?;
        let blank_cells = self.u64()?;
        let mut columns = Vec::with_capacity(names.len());
        for _ in 0..names.len() {
            columns.push(match self.u64()? {
                0 => Column::Numeric(self.vec()?),
                1 => Column::Categorical {
                    codes: self.vec()?,
                    vocab: Vocab::from_names(self.strings()?),
                },
                2 => Column::MultiCategorical {
                    offsets: self.vec()?,
                    codes: self.vec()?,
                    vocab: Vocab::from_names(self.strings()?),
                },
                _ => return Err(Corrupt),
            });
        }
        Ok(FeatureTable {
            ids,
            names,
            columns,
            missing_markers,
            blank_cells,
        })
    }
}

/// A fingerprint of source files: names, sizes, modification and change times, and a
/// hash of each file's head and tail.
pub(crate) fn fingerprint(files: &[PathBuf]) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = String::from(std::str::from_utf8(MAGIC).unwrap_or("MMRF"));
    for f in files {
        let meta = std::fs::metadata(f).map_err(|e| DataError::io(f, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let changed = {
            use std::os::unix::fs::MetadataExt;
            (meta.ctime() as i128) * 1_000_000_000 + meta.ctime_nsec() as i128
        };
        #[cfg(not(unix))]
        let changed = 0i128;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut file = std::fs::File::open(f).map_err(|e| DataError::io(f, e))?;
        let mut buf = vec![0u8; FINGERPRINT_EDGE as usize];
        let len = meta.len();
        for start in [0, len.saturating_sub(FINGERPRINT_EDGE)] {
            let n = FINGERPRINT_EDGE.min(len) as usize;
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_exact(&mut buf[..n]))
                .map_err(|e| DataError::io(f, e))?;
            hasher.update(&buf[..n]);
        }
        let name = f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        out.push_str(&format!("|{name}:{len}:{mtime}:{changed}:{:016x}", hasher.digest()));
    }
    Ok(out)
}

/// Where the cache of a data directory lives.
pub fn cache_path(dir: &Path) -> PathBuf {
    let local = dir.join(".mmrf-cache");
    if std::fs::create_dir_all(&local).is_ok() && is_writable(&local) {
        return local.join("dataset.bin");
    }
    // Read-only data (e.g. a shared mount): a per-directory cache under the temp dir.
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let key: String = canonical
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join("mmrf-cache").join(key).join("dataset.bin")
}

fn is_writable(dir: &Path) -> bool {
    crate::temp_file_in(dir).is_ok()
}

/// Write `body` behind the magic, the fingerprint and the body's checksum, atomically.
pub(crate) fn write(path: &Path, fingerprint: &str, body: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut tmp = crate::temp_file_in(dir).map_err(|e| DataError::io(dir, e))?;
    let mut head = Writer::default();
    head.buf.extend_from_slice(MAGIC);
    head.str(fingerprint);
    head.u64(xxhash_rust::xxh3::xxh3_64(body));
    tmp.write_all(&head.buf)
        .and_then(|_| tmp.write_all(body))
        .and_then(|_| tmp.flush())
        .map_err(|e| DataError::io(path, e))?;
    tmp.persist(path).map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// What a cache file holds for a given fingerprint.
pub(crate) enum Cached {
    /// No cache, or one for other sources (or an older format): rebuild quietly.
    Absent,
    /// A cache for these sources whose body does not match its checksum.
    Damaged,
    /// The mapped file and the offset of its verified body.
    Valid(memmap2::Mmap, usize),
}

/// Read the cache at `path` if it exists and matches `fingerprint`, verifying its body.
pub(crate) fn read(path: &Path, fingerprint: &str) -> Cached {
    let Ok(file) = std::fs::File::open(path) else {
        return Cached::Absent;
    };
    // SAFETY: read-only map of a file only mmrf writes, and only by atomic rename (a
    // replaced cache is a new inode; this map keeps the old one).
    let Ok(data) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return Cached::Absent;
    };
    if data.get(..8) != Some(MAGIC.as_slice()) {
        return Cached::Absent;
    }
    let mut r = Reader { data: &data, pos: 8 };
    match r.str() {
        Ok(fp) if fp == fingerprint => {}
        _ => return Cached::Absent,
    }
    let Ok(sum) = r.u64() else {
        return Cached::Damaged;
    };
    let pos = r.pos;
    if xxhash_rust::xxh3::xxh3_64(&data[pos..]) != sum {
        return Cached::Damaged;
    }
    Cached::Valid(data, pos)
}
