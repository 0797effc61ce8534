//! KuaiRand's files as Parquet: read with the CSV files' schema checks, written by
//! `mmrf data convert`.
//!
//! A Parquet data directory holds one `.parquet` file for each of the version's CSV files,
//! under the same name (`log_standard_4_08_to_4_21_1k.parquet`, `user_features_1k.parquet`,
//! ...), and the world's side files as they are. What Spark, DataFusion, Polars or pandas
//! write from KuaiRand's columns is read:
//!
//! - **logs**: the 19 columns of [`LOG_COLUMNS`] by name, in any order (another column is
//!   refused, as a CSV file's header is checked exactly), each of any integer type (or a
//!   float holding an integer), no nulls; every value passes the CSV logs' checks
//!   (the log module checks both);
//! - **feature files**: the columns the CSV header would have, by position and name; each
//!   value is read as the CSV cell that holds it (integers and floats in decimal, strings
//!   as they are, a date as `YYYY-MM-DD`, a list as its items joined by commas, a null as a
//!   blank cell) and typed by the same parser, so both formats give the same table.
//!
//! An error names the file, the row group, the row within it and the column
//! ([`Where::Row`]). Pages may be compressed with Snappy, Zstd, LZ4 or gzip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{DataError, Result, Where};
use crate::log::{push_checked, LogColumns, LogIds};
use crate::schema::{Version, LOG_COLUMNS};
use crate::table::Records;

/// Rows per row group of the files `mmrf data convert` writes: bounded, so a reader can
/// stream a file a few groups at a time, and decode them on every core.
pub const ROW_GROUP_ROWS: usize = 1 << 18;

/// How a data directory stores KuaiRand's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// The version and format of `dir`, from its user-feature file (each file's own
    /// format is [`locate`]d where it is read).
    pub fn detect(dir: &Path) -> Option<(Version, Format)> {
        Version::ALL.into_iter().find_map(|v| {
            let csv = dir.join(v.user_features());
            if csv.is_file() {
                Some((v, Format::Csv))
            } else {
                csv.with_extension("parquet").exists().then_some((v, Format::Parquet))
            }
        })
    }

    /// The format of a file, by its extension (`.parquet`, else CSV).
    pub fn of_path(path: &Path) -> Format {
        match path.extension() {
            Some(e) if e.eq_ignore_ascii_case("parquet") => Format::Parquet,
            _ => Format::Csv,
        }
    }

    /// The path in `dir` of the file the schema names `csv_name`, in this format.
    pub fn path(self, dir: &Path, csv_name: &str) -> PathBuf {
        match self {
            Format::Csv => dir.join(csv_name),
            Format::Parquet => dir.join(csv_name).with_extension("parquet"),
        }
    }
}

/// Where the file the schema names `csv_name` is in `dir`: the CSV file, or else the
/// Parquet file (or Parquet dataset folder) of the same name. Both is an error naming
/// both, since which one is the data cannot be guessed; neither gives the CSV path, which
/// the caller reports missing. Each file is located on its own, so a directory may mix
/// the two formats.
pub fn locate(dir: &Path, csv_name: &str) -> Result<PathBuf> {
    let csv = dir.join(csv_name);
    let parquet = csv.with_extension("parquet");
    match (csv.exists(), parquet.exists()) {
        (true, true) => Err(DataError::Directory {
            path: dir.to_path_buf(),
            reason: format!(
                "both {} and {} are here: keep the one that is the data (one format per file)",
                csv.file_name().unwrap_or_default().to_string_lossy(),
                parquet.file_name().unwrap_or_default().to_string_lossy()
            ),
        }),
        (false, true) => Ok(parquet),
        _ => Ok(csv),
    }
}

/// A feature table's file in `dir` ([`locate`]); a Parquet dataset folder is refused with
/// its name (only a log may be a folder of parts).
pub fn locate_table(dir: &Path, csv_name: &str) -> Result<PathBuf> {
    let path = locate(dir, csv_name)?;
    if path.is_dir() {
        return Err(DataError::invalid(
            &path,
            "a Parquet dataset folder: a feature table must be one file (a log may be a folder of parts)",
        ));
    }
    Ok(path)
}

/// The name of a feature table's file in `dir` as it is ([`locate_table`]): what messages
/// about its ids name.
pub fn table_name(dir: &Path, csv_name: &str) -> Result<String> {
    Ok(locate_table(dir, csv_name)?
        .file_name()
        .map_or_else(|| csv_name.to_string(), |n| n.to_string_lossy().into_owned()))
}

/// The files of the log the schema names `csv_name` in `dir` ([`locate`]): the file
/// itself, or the part files of a Parquet dataset folder (Spark's `NAME.parquet/part-*`) in
/// name order, hidden and `_`-prefixed entries (`_SUCCESS`, checksums) passed over.
pub fn locate_log(dir: &Path, csv_name: &str) -> Result<Vec<PathBuf>> {
    let path = locate(dir, csv_name)?;
    if !path.is_dir() {
        return Ok(vec![path]);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&path)
        .map_err(|e| DataError::io(&path, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            p.is_file() && !name.starts_with('.') && !name.starts_with('_') && Format::of_path(p) == Format::Parquet
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        return Err(DataError::invalid(
            &path,
            "a Parquet dataset folder with no .parquet part file",
        ));
    }
    Ok(parts)
}

/// The key of the per-row-group checksums `mmrf data convert` stores in a log file's
/// footer: each row group's values, column by column as `i64`, hashed with XXH3; the
/// values a reader decodes are checked against it, so a damaged page that still decodes
/// to valid values is an error, not other figures. (The `parquet` crate writes no page
/// CRC of its own.)
pub const CHECKSUM_KEY: &str = "mmrf.row_group_xxh3";

/// The key of the checksum `mmrf data convert` stores in a feature table's footer: its
/// cells as a reader turns them back into CSV cells, column by column, hashed with XXH3.
pub const TABLE_CHECKSUM_KEY: &str = "mmrf.cells_xxh3";

/// One row group's checksum, fed a column's values at a time in the file's column order
/// (any number of slices per column: a column's hash does not depend on how its values
/// are split).
struct GroupHash {
    columns: Vec<xxhash_rust::xxh3::Xxh3>,
}

impl GroupHash {
    fn new(columns: usize) -> GroupHash {
        GroupHash {
            columns: (0..columns).map(|_| xxhash_rust::xxh3::Xxh3::new()).collect(),
        }
    }

    /// One cell of `column` (its text and a separator, so cells cannot run together).
    fn update_cell(&mut self, column: usize, cell: &str) {
        self.columns[column].update(cell.as_bytes());
        self.columns[column].update(&[0x1f]);
    }

    fn update(&mut self, column: usize, values: &[i64]) {
        // The values' little-endian bytes, in one call where that is the memory's order.
        if cfg!(target_endian = "little") {
            self.columns[column].update(bytemuck::cast_slice(values));
        } else {
            for v in values {
                self.columns[column].update(&v.to_le_bytes());
            }
        }
    }

    /// The group's checksum; the hasher starts over for the next group.
    fn finish(&mut self) -> u64 {
        let mut all = xxhash_rust::xxh3::Xxh3::new();
        for c in &mut self.columns {
            all.update(&c.digest().to_le_bytes());
            c.reset();
        }
        all.digest()
    }
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::invalid(path, format!("not a readable Parquet file: {e}"))
}

/// A Parquet file's record batches, with each batch's row group and first row.
struct Batches {
    path: PathBuf,
    schema: Arc<Schema>,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// Rows before each row group, and the total last.
    starts: Vec<usize>,
    next_row: usize,
    /// The per-row-group checksums the file's footer stores ([`CHECKSUM_KEY`]), if any.
    checksums: Option<Vec<u64>>,
    /// The cells' checksum a feature table's footer stores ([`TABLE_CHECKSUM_KEY`]), if any.
    cells_checksum: Option<u64>,
}

impl Batches {
    /// The file's batches (`group`: only that row group's).
    fn open(path: &Path, group: Option<usize>) -> Result<Batches> {
        let file = File::open(path).map_err(|e| crate::csvio::open_error(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
        let mut starts = vec![0usize];
        for g in builder.metadata().row_groups() {
            starts.push(starts.last().copied().unwrap_or(0) + g.num_rows().max(0) as usize);
        }
        let schema = builder.schema().clone();
        // The checksums mmrf's writer stored, as hex, comma-separated for a log's groups.
        let stored = |key: &str| -> Result<Option<Vec<u64>>> {
            let Some(kv) = builder.metadata().file_metadata().key_value_metadata() else {
                return Ok(None);
            };
            kv.iter()
                .find(|e| e.key == key)
                .map(|e| {
                    e.value
                        .as_deref()
                        .unwrap_or("")
                        .split(',')
                        .filter(|x| !x.is_empty())
                        .map(|x| u64::from_str_radix(x, 16))
                        .collect::<std::result::Result<Vec<u64>, _>>()
                        .map_err(|err| parquet_error(path, format!("{key}: {err}")))
                })
                .transpose()
        };
        let checksums = stored(CHECKSUM_KEY)?;
        let cells_checksum = stored(TABLE_CHECKSUM_KEY)?.and_then(|v| v.first().copied());
        let builder = match group {
            Some(g) => builder.with_row_groups(vec![g]),
            None => builder,
        };
        let reader = builder
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| parquet_error(path, e))?;
        Ok(Batches {
            path: path.to_path_buf(),
            schema,
            reader,
            next_row: group.map_or(0, |g| starts[g]),
            starts,
            checksums,
            cells_checksum,
        })
    }

    /// How many row groups the file has.
    fn groups(&self) -> usize {
        self.starts.len() - 1
    }

    fn header(&self) -> Vec<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The place of the file's `row`-th row (from 0).
    fn place(&self, row: usize) -> Where {
        let group = self.starts.partition_point(|&s| s <= row).saturating_sub(1);
        Where::Row {
            group,
            row: row - self.starts[group],
        }
    }

    /// The next batch and the file row of its first row.
    fn next_batch(&mut self) -> Result<Option<(RecordBatch, usize)>> {
        match self.reader.next() {
            None => Ok(None),
            Some(Err(e)) => Err(parquet_error(&self.path, e)),
            Some(Ok(batch)) => {
                let first = self.next_row;
                self.next_row += batch.num_rows();
                Ok(Some((batch, first)))
            }
        }
    }
}

/// A column of integers as `i64`, or the error for its first null or non-integer value.
/// `place(i)` says where value `i` is in `path`, for the error.
fn integers(path: &Path, place: &dyn Fn(usize) -> Where, array: &ArrayRef, column: &str) -> Result<Vec<i64>> {
    let bad = |i: usize, cell: String, why: &str| DataError::cell(path, place(i), column, cell.as_bytes(), why);
    if let Some(i) = (0..array.len()).find(|&i| array.is_null(i)) {
        return Err(bad(i, String::new(), "a null value: every log value is required"));
    }
    macro_rules! ints {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect()
        };
    }
    Ok(match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().values();
            if let Some(i) = v.iter().position(|&x| x > i64::MAX as u64) {
                return Err(bad(i, v[i].to_string(), "expected an integer below 2^63"));
            }
            v.iter().map(|&x| x as i64).collect()
        }
        DataType::Float32 | DataType::Float64 => {
            let v: Vec<f64> = match array.data_type() {
                DataType::Float32 => array
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .map(|&x| x as f64)
                    .collect(),
                _ => array.as_primitive::<Float64Type>().values().to_vec(),
            };
            if let Some(i) = v.iter().position(|x| !(x.fract() == 0.0 && x.abs() < 9.0e15)) {
                return Err(bad(i, v[i].to_string(), "expected an integer"));
            }
            v.iter().map(|&x| x as i64).collect()
        }
        other => {
            return Err(DataError::invalid(
                path,
                format!("column `{column}` has type {other}: expected integers"),
            ))
        }
    })
}

/// The positions of [`LOG_COLUMNS`] in a log file's columns, or the header error.
fn log_index(path: &Path, header: &[String]) -> Result<Vec<usize>> {
    if let Some(extra) = header.iter().find(|h| !LOG_COLUMNS.contains(&h.as_str())) {
        return Err(DataError::Header {
            path: path.to_path_buf(),
            reason: format!("column `{extra}` is not a KuaiRand log column"),
        });
    }
    LOG_COLUMNS
        .iter()
        .map(|c| {
            header.iter().position(|h| h == c).ok_or_else(|| DataError::Header {
                path: path.to_path_buf(),
                reason: format!("column `{c}` is missing"),
            })
        })
        .collect()
}

/// One row group of a log file, decoded and checked.
fn log_group(path: &Path, group: usize, index: &[usize], ids: &LogIds<'_>) -> Result<LogColumns> {
    let mut batches = Batches::open(path, Some(group))?;
    let mut block = LogColumns::default();
    let mut hash = GroupHash::new(LOG_COLUMNS.len());
    while let Some((batch, first)) = batches.next_batch()? {
        let columns = index
            .iter()
            .zip(LOG_COLUMNS)
            .map(|(&i, name)| integers(&batches.path, &|r| batches.place(first + r), batch.column(i), name))
            .collect::<Result<Vec<Vec<i64>>>>()?;
        if batches.checksums.is_some() {
            // The file's own column order, as the writer hashed it.
            for (k, col) in columns.iter().enumerate() {
                hash.update(index[k], col);
            }
        }
        let mut values = [0i64; LOG_COLUMNS.len()];
        for r in 0..batch.num_rows() {
            for (v, col) in values.iter_mut().zip(&columns) {
                *v = col[r];
            }
            push_checked(&mut block, &values, ids, |c, why| {
                DataError::cell(
                    path,
                    batches.place(first + r),
                    LOG_COLUMNS[c],
                    values[c].to_string().as_bytes(),
                    why,
                )
            })?;
        }
    }
    if let Some(sums) = &batches.checksums {
        if sums.get(group) != Some(&hash.finish()) {
            return Err(DataError::invalid(
                path,
                format!(
                    "row group {group}: its values do not match the checksum stored when the file was written \
                     (the file is damaged; convert it again from its CSV)"
                ),
            ));
        }
    }
    Ok(block)
}

/// Stream a Parquet log file: its row groups decoded and checked in parallel, a few at a
/// time, and handed to `sink` in file order. Returns the number of rows.
pub fn stream_log(path: &Path, ids: &LogIds<'_>, mut sink: impl FnMut(LogColumns) -> Result<()>) -> Result<u64> {
    use rayon::prelude::*;
    let batches = Batches::open(path, None)?;
    let index = log_index(path, &batches.header())?;
    let wave = rayon::current_num_threads().max(1) * 2;
    let mut rows = 0u64;
    let groups: Vec<usize> = (0..batches.groups()).collect();
    for chunk in groups.chunks(wave) {
        let decoded: Vec<Result<LogColumns>> = chunk.par_iter().map(|&g| log_group(path, g, &index, ids)).collect();
        for block in decoded {
            let block = block?;
            rows += block.len() as u64;
            sink(block)?;
        }
    }
    Ok(rows)
}

/// The column names of a Parquet file, as a CSV header line.
pub fn header_line(path: &Path) -> Option<String> {
    Batches::open(path, None).ok().map(|b| b.header().join(","))
}

/// A Parquet feature file's rows as the CSV cells that would hold its values.
pub(crate) struct TableRecords {
    batches: Batches,
    header: Vec<String>,
    batch: Option<(RecordBatch, usize)>,
    row: usize,
    /// The cells read so far, against the stored checksum when the file has one.
    hash: GroupHash,
}

impl TableRecords {
    pub fn open(path: &Path) -> Result<TableRecords> {
        let batches = Batches::open(path, None)?;
        let header = batches.header();
        Ok(TableRecords {
            hash: GroupHash::new(header.len()),
            batches,
            header,
            batch: None,
            row: 0,
        })
    }
}

/// The CSV cell of value `i` of `array`.
fn cell(array: &dyn Array, i: usize) -> Option<String> {
    if array.is_null(i) {
        return Some(String::new());
    }
    macro_rules! num {
        ($t:ty) => {
            array.as_primitive::<$t>().value(i).to_string()
        };
    }
    Some(match array.data_type() {
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => num!(Float32Type),
        DataType::Float64 => num!(Float64Type),
        DataType::Boolean => (array.as_boolean().value(i) as u8).to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => array.as_string_view().value(i).to_string(),
        DataType::Date32 => {
            let (y, m, d) = crate::time::civil_from_days(array.as_primitive::<Date32Type>().value(i) as i64);
            format!("{y:04}-{m:02}-{d:02}")
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            (0..items.len())
                .map(|j| cell(items.as_ref(), j))
                .collect::<Option<Vec<_>>>()?
                .join(",")
        }
        DataType::LargeList(_) => {
            let items = array.as_list::<i64>().value(i);
            (0..items.len())
                .map(|j| cell(items.as_ref(), j))
                .collect::<Option<Vec<_>>>()?
                .join(",")
        }
        _ => return None,
    })
}

impl Records for TableRecords {
    fn header(&self) -> &[String] {
        &self.header
    }

    fn next_record(&mut self, record: &mut csv::StringRecord, expected: usize) -> Result<Option<Where>> {
        loop {
            if let Some((batch, first)) = &self.batch {
                if self.row < batch.num_rows() {
                    let (r, at) = (self.row, self.batches.place(first + self.row));
                    self.row += 1;
                    if batch.num_columns() != expected {
                        return Err(DataError::invalid(
                            &self.batches.path,
                            format!("{at}: expected {expected} columns, found {}", batch.num_columns()),
                        ));
                    }
                    record.clear();
                    for (c, column) in batch.columns().iter().enumerate() {
                        let value = cell(column.as_ref(), r).ok_or_else(|| {
                            DataError::invalid(
                                &self.batches.path,
                                format!(
                                    "column `{}` has type {}: expected numbers, strings, dates or lists of them",
                                    self.header[c],
                                    column.data_type()
                                ),
                            )
                        })?;
                        if self.batches.cells_checksum.is_some() {
                            self.hash.update_cell(c, &value);
                        }
                        record.push_field(&value);
                    }
                    return Ok(Some(at));
                }
            }
            match self.batches.next_batch()? {
                None => {
                    if let Some(stored) = self.batches.cells_checksum {
                        if self.hash.finish() != stored {
                            return Err(DataError::invalid(
                                &self.batches.path,
                                "its cells do not match the checksum stored when the file was written \
                                 (the file is damaged; convert it again from its CSV)",
                            ));
                        }
                    }
                    return Ok(None);
                }
                Some(b) => {
                    self.batch = Some(b);
                    self.row = 0;
                }
            }
        }
    }
}

/// Which checksum a written file's footer carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// A log's: each row group's values ([`CHECKSUM_KEY`]).
    RowGroups,
    /// A feature table's: its cells ([`TABLE_CHECKSUM_KEY`]).
    Cells,
}

/// Write `batch`es of `schema` to `path` (atomically: a temporary file renamed into place),
/// with the `checksum` its reader verifies in the footer.
fn write_parquet(
    path: &Path,
    schema: Arc<Schema>,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    checksum: Checksum,
) -> Result<u64> {
    let checksums = checksum == Checksum::RowGroups;
    let dir = path.parent().unwrap_or(Path::new("."));
    // The mode an ordinary file gets, as every file mmrf writes (not a temp file's 0600).
    let tmp = crate::temp_file_in(dir).map_err(|e| DataError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let file = tmp.reopen().map_err(|e| DataError::io(path, e))?;
    let columns = schema.fields().len();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| parquet_error(path, e))?;
    let mut rows = 0u64;
    let mut hash = GroupHash::new(columns);
    let (mut sums, mut in_group) = (Vec::new(), 0usize);
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        // Row groups are cut every ROW_GROUP_ROWS rows: hash the batch in those pieces.
        let mut at = 0;
        while checksums && at < batch.num_rows() {
            let take = (ROW_GROUP_ROWS - in_group).min(batch.num_rows() - at);
            let piece = batch.slice(at, take);
            let place = |r: usize| Where::Row {
                group: sums.len(),
                row: in_group + r,
            };
            for (c, (column, field)) in piece.columns().iter().zip(piece.schema().fields()).enumerate() {
                hash.update(c, &integers(path, &place, column, field.name())?);
            }
            (at, in_group) = (at + take, in_group + take);
            if in_group == ROW_GROUP_ROWS {
                sums.push(hash.finish());
                in_group = 0;
            }
        }
        if checksum == Checksum::Cells {
            for (c, column) in batch.columns().iter().enumerate() {
                for i in 0..batch.num_rows() {
                    let text = cell(column.as_ref(), i)
                        .ok_or_else(|| DataError::invalid(path, "a column of a type a reader cannot read"))?;
                    hash.update_cell(c, &text);
                }
            }
        }
        writer.write(&batch).map_err(|e| parquet_error(path, e))?;
    }
    if checksum == Checksum::Cells {
        let value = format!("{:016x}", hash.finish());
        writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
            TABLE_CHECKSUM_KEY.to_string(),
            value,
        ));
    }
    if checksums {
        if in_group > 0 {
            sums.push(hash.finish());
        }
        let value: Vec<String> = sums.iter().map(|h| format!("{h:016x}")).collect();
        writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
            CHECKSUM_KEY.to_string(),
            value.join(","),
        ));
    }
    writer.close().map_err(|e| parquet_error(path, e))?;
    tmp.persist(path).map_err(|e| DataError::io(path, e.error))?;
    Ok(rows)
}

/// The Arrow type of a log column in the files `mmrf data convert` writes.
fn log_type(column: &str) -> DataType {
    match column {
        "user_id" | "video_id" | "time_ms" | "play_time_ms" | "duration_ms" | "profile_stay_time"
        | "comment_stay_time" => DataType::Int64,
        "date" | "hourmin" | "tab" => DataType::Int32,
        _ => DataType::Int8,
    }
}

/// A block of log rows as a record batch, ids raw as in the feature files.
fn log_batch(schema: &Arc<Schema>, block: &LogColumns, ids: &LogIds<'_>) -> Result<RecordBatch> {
    let i64s = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let i32s = |v: Vec<i32>| Arc::new(Int32Array::from(v)) as ArrayRef;
    let i8s = |v: &[u8]| Arc::new(Int8Array::from(v.iter().map(|&x| x as i8).collect::<Vec<_>>())) as ArrayRef;
    let wide = |v: &[u32]| i64s(v.iter().map(|&x| x as i64).collect());
    let columns = vec![
        i64s(block.user.iter().map(|&u| ids.users.raw(u)).collect()),
        i64s(block.video.iter().map(|&v| ids.videos.raw(v)).collect()),
        i32s(block.date.iter().map(|&x| x as i32).collect()),
        i32s(block.hourmin.iter().map(|&x| x as i32).collect()),
        i64s(block.time_ms.clone()),
        i8s(&block.is_click),
        i8s(&block.is_like),
        i8s(&block.is_follow),
        i8s(&block.is_comment),
        i8s(&block.is_forward),
        i8s(&block.is_hate),
        i8s(&block.long_view),
        wide(&block.play_time_ms),
        wide(&block.duration_ms),
        wide(&block.profile_stay_time),
        wide(&block.comment_stay_time),
        i8s(&block.is_profile_enter),
        i8s(&block.is_rand),
        i32s(block.tab.iter().map(|&x| x as i32).collect()),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| DataError::invalid(Path::new(""), e.to_string()))
}

/// Convert a CSV log file to Parquet, streaming it block by block.
fn convert_log(src: &Path, dst: &Path, ids: &LogIds<'_>) -> Result<u64> {
    let schema = Arc::new(Schema::new(
        LOG_COLUMNS
            .iter()
            .map(|c| Field::new(*c, log_type(c), false))
            .collect::<Vec<_>>(),
    ));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let streamed = crate::log::stream_log(src, ids, |block| {
                tx.send(log_batch(&schema, &block, ids))
                    .map_err(|_| DataError::invalid(dst, "the Parquet writer stopped"))
            });
            drop(tx);
            streamed
        });
        let written = write_parquet(dst, schema.clone(), rx, Checksum::RowGroups);
        let streamed = reader
            .join()
            .unwrap_or_else(|_| Err(DataError::invalid(src, "the reader panicked")));
        streamed?;
        written
    })
}

/// The Arrow type that holds every non-blank cell of a CSV column: integers, else
/// floats, else strings.
fn table_type(cells: &[&str]) -> DataType {
    let present = || cells.iter().filter(|c| !c.is_empty());
    if present().all(|c| c.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if present().all(|c| c.parse::<f64>().is_ok_and(|x| x.is_finite())) {
        DataType::Float64
    } else {
        DataType::Utf8
    }
}

/// Convert a CSV feature file to Parquet: each column typed by its cells, blanks as nulls.
fn convert_table(src: &Path, dst: &Path) -> Result<u64> {
    let mut file = crate::csvio::CsvFile::open(src)?;
    let header = file.header().to_vec();
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    let mut record = csv::StringRecord::new();
    while file.next_record(&mut record, header.len())?.is_some() {
        for (col, value) in rows.iter_mut().zip(record.iter()) {
            col.push(value.to_string());
        }
    }
    let mut fields = Vec::with_capacity(header.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(header.len());
    for (name, cells) in header.iter().zip(&rows) {
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        let kind = table_type(&cells);
        let present = |c: &&str| !c.is_empty();
        columns.push(match kind {
            DataType::Int64 => Arc::new(Int64Array::from(
                cells
                    .iter()
                    .map(|c| present(c).then(|| c.parse::<i64>().unwrap_or_default()))
                    .collect::<Vec<_>>(),
            )),
            DataType::Float64 => Arc::new(arrow_array::Float64Array::from(
                cells
                    .iter()
                    .map(|c| present(c).then(|| c.parse::<f64>().unwrap_or_default()))
                    .collect::<Vec<_>>(),
            )),
            _ => Arc::new(StringArray::from(
                cells.iter().map(|c| present(c).then_some(*c)).collect::<Vec<_>>(),
            )),
        });
        fields.push(Field::new(name, kind, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| DataError::invalid(src, e.to_string()))?;
    write_parquet(dst, schema, [Ok(batch)], Checksum::Cells)
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Converted {
    /// Each written file with its rows.
    pub files: Vec<(PathBuf, u64)>,
    /// Side files copied as they are.
    pub copied: Vec<PathBuf>,
}

/// Write the CSV data directory `dir` as a Parquet data directory `out`: every KuaiRand
/// file as Parquet (logs streamed, in row groups of at most [`ROW_GROUP_ROWS`] rows,
/// Snappy pages), the side files (`mmrf_*`) copied. The result is written to a staging
/// directory and renamed into place when complete; `out` must not hold anything yet.
pub fn convert(dir: &Path, out: &Path) -> Result<Converted> {
    let (version, format) = Format::detect(dir).ok_or_else(|| DataError::Directory {
        path: dir.to_path_buf(),
        reason: "no user_features_{1k,pure,27k}.csv found".into(),
    })?;
    if format != Format::Csv {
        return Err(DataError::Directory {
            path: dir.to_path_buf(),
            reason: "it is already a Parquet data directory".into(),
        });
    }
    if crate::staged::is_nonempty_dir(out) {
        return Err(DataError::Directory {
            path: out.to_path_buf(),
            reason: "it is not empty: convert into a new directory".into(),
        });
    }
    let staged = crate::staged::StagedDir::new(out).map_err(|e| DataError::io(out, e))?;
    let tmp = staged.path().to_path_buf();
    let mut files = Vec::new();
    let users = crate::table::read_user_features(&dir.join(version.user_features()))?;
    let videos = crate::table::read_video_features(&dir.join(version.video_features_basic()))?;
    let mut tables = vec![version.user_features(), version.video_features_basic()];
    tables.extend(version.video_features_statistic());
    for name in &tables {
        let rows = convert_table(&dir.join(name), &Format::Parquet.path(&tmp, name))?;
        files.push((Format::Parquet.path(out, name), rows));
    }
    let (user_file, video_file) = (version.user_features(), version.video_features_basic());
    let ids = LogIds {
        users: &users.ids,
        videos: &videos.ids,
        user_file: &user_file,
        video_file: &video_file,
    };
    for split in crate::schema::LogSplit::ALL {
        for name in version.log_files(split) {
            let rows = convert_log(&dir.join(&name), &Format::Parquet.path(&tmp, &name), &ids)?;
            files.push((Format::Parquet.path(out, &name), rows));
        }
    }
    // The side files (`mmrf_*`: candidate log, propensities, a world's own files).
    let mut copied = Vec::new();
    let mut side: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mmrf_")))
        .collect();
    side.sort();
    for src in side {
        let name = src.file_name().unwrap_or_default();
        std::fs::copy(&src, tmp.join(name)).map_err(|e| DataError::io(&src, e))?;
        copied.push(out.join(name));
    }
    staged.commit().map_err(|e| DataError::io(out, e))?;
    Ok(Converted { files, copied })
}
