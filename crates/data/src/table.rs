//! Typed, columnar feature tables (users, videos, video statistics).
//!
//! A feature file becomes a [`FeatureTable`]: the id column remapped to dense indices
//! ([`IdMap`], mapping kept) and one typed [`Column`] per remaining column. Which type a
//! column gets is fixed by the schema ([`ColumnKind`]); category sets are open, so an unseen
//! string becomes a new category. Missing values (a blank cell or KuaiRand's `-124`) are
//! `NaN` in numeric columns and code [`Vocab::MISSING`] in categorical ones.

use std::collections::HashMap;
use std::path::Path;

use crate::columnar::{Format, TableRecords};
use crate::csvio::{self, CsvFile};
use crate::error::{DataError, Result, Where};
use crate::schema::{USER_COLUMNS, VIDEO_BASIC_COLUMNS, VIDEO_STAT_COLUMNS};

/// Raw ids (as written in the files) to dense indices `0..len`, both ways.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    raw: Vec<i64>,
    index: HashMap<i64, u32>,
    /// `raw[i] == i` for every `i`: lookups skip the hash map (the common KuaiRand case).
    identity: bool,
}

impl IdMap {
    /// Build from raw ids in file order; `Err(position)` names the first duplicate.
    pub fn from_raw(raw: Vec<i64>) -> Result<Self, usize> {
        let identity = raw.iter().enumerate().all(|(i, &r)| r == i as i64);
        let mut index = HashMap::new();
        if !identity {
            index.reserve(raw.len());
            for (i, &r) in raw.iter().enumerate() {
                if index.insert(r, i as u32).is_some() {
                    return Err(i);
                }
            }
        }
        Ok(IdMap { raw, index, identity })
    }

    /// Dense index of a raw id, if known.
    #[inline]
    pub fn get(&self, raw: i64) -> Option<u32> {
        if self.identity {
            (raw >= 0 && (raw as usize) < self.raw.len()).then_some(raw as u32)
        } else {
            self.index.get(&raw).copied()
        }
    }

    /// The raw id of a dense index.
    pub fn raw(&self, dense: u32) -> i64 {
        self.raw[dense as usize]
    }

    pub fn raw_ids(&self) -> &[i64] {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// An open set of category strings; code 0 is reserved for a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Vocab {
    fn default() -> Self {
        Vocab {
            names: vec![String::new()],
            index: HashMap::new(),
        }
    }
}

impl Vocab {
    /// The code of a missing value.
    pub const MISSING: u32 = 0;

    /// The code of `name`, adding it if new.
    pub fn code(&mut self, name: &str) -> u32 {
        if let Some(&c) = self.index.get(name) {
            return c;
        }
        let c = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), c);
        c
    }

    /// The code of `name` if it has been seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The category string of a code (`""` for missing).
    pub fn name(&self, code: u32) -> &str {
        &self.names[code as usize]
    }

    /// Number of codes, the missing code included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Number of real categories (the missing code excluded).
    pub fn categories(&self) -> usize {
        self.names.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() == 1
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn from_names(names: Vec<String>) -> Self {
        let index = names
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Vocab { names, index }
    }
}

/// How a column is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A number (`f32`), `NaN` when missing.
    Numeric,
    /// A category; numeric categories are canonicalised so `1` and `1.0` are one category.
    Categorical,
    /// A `YYYY-MM-DD` date, stored as days since 1970-01-01 (`NaN` when missing).
    Date,
    /// A quoted comma-separated list of categories (KuaiRand's `tag`).
    MultiCategorical,
}

/// One typed column.
#[derive(Debug, Clone)]
pub enum Column {
    Numeric(Vec<f32>),
    Categorical {
        codes: Vec<u32>,
        vocab: Vocab,
    },
    /// Row `i` holds `codes[offsets[i]..offsets[i + 1]]`.
    MultiCategorical {
        offsets: Vec<u32>,
        codes: Vec<u32>,
        vocab: Vocab,
    },
}

/// Bitwise equality of float slices, so that two missing values (`NaN`) compare equal.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl PartialEq for Column {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Column::Numeric(a), Column::Numeric(b)) => same_bits(a, b),
            (Column::Categorical { codes: a, vocab: va }, Column::Categorical { codes: b, vocab: vb }) => {
                a == b && va == vb
            }
            (
                Column::MultiCategorical {
                    offsets: oa,
                    codes: a,
                    vocab: va,
                },
                Column::MultiCategorical {
                    offsets: ob,
                    codes: b,
                    vocab: vb,
                },
            ) => oa == ob && a == b && va == vb,
            _ => false,
        }
    }
}

/// A feature file as typed columns, rows in dense-id order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    pub ids: IdMap,
    /// Column names, without the id column.
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    /// How many cells held KuaiRand's `-124` missing marker.
    pub missing_markers: u64,
    /// How many cells were blank.
    pub blank_cells: u64,
}

impl FeatureTable {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names.iter().position(|n| n == name).map(|i| &self.columns[i])
    }

    /// A numeric (or date) column by name.
    pub fn numeric(&self, name: &str) -> Option<&[f32]> {
        match self.column(name)? {
            Column::Numeric(v) => Some(v),
            _ => None,
        }
    }

    /// A categorical column's codes and vocabulary by name.
    pub fn categorical(&self, name: &str) -> Option<(&[u32], &Vocab)> {
        match self.column(name)? {
            Column::Categorical { codes, vocab } => Some((codes, vocab)),
            _ => None,
        }
    }

    /// The categories of row `row` of a multi-categorical column.
    pub fn multi(&self, name: &str, row: usize) -> Option<&[u32]> {
        match self.column(name)? {
            Column::MultiCategorical { offsets, codes, .. } => {
                Some(&codes[offsets[row] as usize..offsets[row + 1] as usize])
            }
            _ => None,
        }
    }
}

/// The schema type of a user-feature column.
pub fn user_column_kind(name: &str) -> ColumnKind {
    match name {
        "follow_user_num" | "fans_user_num" | "friend_user_num" | "register_days" => ColumnKind::Numeric,
        _ => ColumnKind::Categorical,
    }
}

/// The schema type of a basic video-feature column.
pub fn video_column_kind(name: &str) -> ColumnKind {
    match name {
        "video_duration" | "server_width" | "server_height" => ColumnKind::Numeric,
        "upload_dt" => ColumnKind::Date,
        "tag" => ColumnKind::MultiCategorical,
        _ => ColumnKind::Categorical,
    }
}

enum Builder {
    Numeric(Vec<f32>),
    Categorical(Vec<u32>, Vocab),
    Multi(Vec<u32>, Vec<u32>, Vocab),
}

/// Canonical category string: integral numbers lose a `.0` so `1` and `1.0` coincide.
fn canonical(cell: &str) -> std::borrow::Cow<'_, str> {
    if let Some(stripped) = cell.strip_suffix(".0") {
        if !stripped.is_empty() && stripped.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return std::borrow::Cow::Owned(stripped.to_string());
        }
    }
    std::borrow::Cow::Borrowed(cell)
}

/// KuaiRand's `-124` marker ([`crate::schema::MISSING_MARKER`]), as an integer or a float.
fn is_missing_marker(cell: &str) -> bool {
    cell == "-124" || cell == "-124.0"
}

/// The rows of a feature file as text cells, whatever its format: a CSV file's records, or
/// a Parquet file's values written as a CSV cell would hold them.
pub(crate) trait Records {
    fn header(&self) -> &[String];
    /// The next row into `record` (`expected` cells), and where it is in the file.
    fn next_record(&mut self, record: &mut csv::StringRecord, expected: usize) -> Result<Option<Where>>;
}

impl Records for CsvFile {
    fn header(&self) -> &[String] {
        CsvFile::header(self)
    }

    fn next_record(&mut self, record: &mut csv::StringRecord, expected: usize) -> Result<Option<Where>> {
        Ok(CsvFile::next_record(self, record, expected)?.map(Where::Line))
    }
}

/// Read a feature file (CSV, or Parquet by its `.parquet` extension) whose first column is
/// the id and the rest typed by `kind`.
///
/// `expected` is the exact header (`None`: any header that names the `required` columns;
/// the statistics file is read by header name).
pub(crate) fn read_feature_table(
    path: &Path,
    expected: Option<&[&str]>,
    required: &[&str],
    kind: fn(&str) -> ColumnKind,
) -> Result<FeatureTable> {
    match Format::of_path(path) {
        Format::Csv => build_feature_table(path, CsvFile::open(path)?, expected, required, kind),
        Format::Parquet => build_feature_table(path, TableRecords::open(path)?, expected, required, kind),
    }
}

/// [`read_feature_table`] from any [`Records`] of the file at `path`.
pub(crate) fn build_feature_table(
    path: &Path,
    mut file: impl Records,
    expected: Option<&[&str]>,
    required: &[&str],
    kind: fn(&str) -> ColumnKind,
) -> Result<FeatureTable> {
    let header = file.header().to_vec();
    match expected {
        Some(exp) => csvio::check_exact_header(path, &header, exp)?,
        None => csvio::check_required_header(path, &header, required)?,
    }
    let id_col = &header[0];
    let names: Vec<String> = header[1..].to_vec();
    let mut builders: Vec<Builder> = names
        .iter()
        .map(|n| match kind(n) {
            ColumnKind::Numeric | ColumnKind::Date => Builder::Numeric(Vec::new()),
            ColumnKind::Categorical => Builder::Categorical(Vec::new(), Vocab::default()),
            ColumnKind::MultiCategorical => Builder::Multi(vec![0], Vec::new(), Vocab::default()),
        })
        .collect();
    let kinds: Vec<ColumnKind> = names.iter().map(|n| kind(n)).collect();
    let mut raw_ids = Vec::new();
    let mut missing_markers = 0u64;
    let mut blank_cells = 0u64;
    let mut record = csv::StringRecord::new();
    while let Some(line) = file.next_record(&mut record, header.len())? {
        let id_cell = &record[0];
        raw_ids.push(csvio::parse_int(path, line, id_col, id_cell.as_bytes())?);
        for (c, builder) in builders.iter_mut().enumerate() {
            let cell = &record[c + 1];
            let col = &names[c];
            let missing = cell.is_empty() || is_missing_marker(cell);
            missing_markers += is_missing_marker(cell) as u64;
            blank_cells += cell.is_empty() as u64;
            match builder {
                Builder::Numeric(v) => {
                    let x = if missing {
                        f32::NAN
                    } else if kinds[c] == ColumnKind::Date {
                        csvio::parse_date_dashed(path, line, col, cell)? as f32
                    } else {
                        csvio::parse_float(path, line, col, cell.as_bytes())?
                    };
                    v.push(x);
                }
                Builder::Categorical(codes, vocab) => codes.push(if missing {
                    Vocab::MISSING
                } else {
                    vocab.code(&canonical(cell))
                }),
                Builder::Multi(offsets, codes, vocab) => {
                    if !missing {
                        for part in cell.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            codes.push(vocab.code(&canonical(part)));
                        }
                    }
                    offsets.push(codes.len() as u32);
                }
            }
        }
    }
    let ids = IdMap::from_raw(raw_ids)
        .map_err(|row| DataError::invalid(path, format!("duplicate {id_col} at data row {}", row + 1)))?;
    let columns = builders
        .into_iter()
        .map(|b| match b {
            Builder::Numeric(v) => Column::Numeric(v),
            Builder::Categorical(codes, vocab) => Column::Categorical { codes, vocab },
            Builder::Multi(offsets, codes, vocab) => Column::MultiCategorical { offsets, codes, vocab },
        })
        .collect();
    Ok(FeatureTable {
        ids,
        names,
        columns,
        missing_markers,
        blank_cells,
    })
}

/// Read `user_features_*.csv` or `.parquet` (exact 31-column header).
pub fn read_user_features(path: &Path) -> Result<FeatureTable> {
    read_feature_table(path, Some(&USER_COLUMNS), &[], user_column_kind)
}

/// Read `video_features_basic_*.csv` or `.parquet` (exact 12-column header).
pub fn read_video_features(path: &Path) -> Result<FeatureTable> {
    read_feature_table(path, Some(&VIDEO_BASIC_COLUMNS), &[], video_column_kind)
}

/// Read `video_features_statistic_*.csv` or `.parquet` by header name (all columns numeric).
pub fn read_video_statistics(path: &Path) -> Result<FeatureTable> {
    read_feature_table(path, None, &VIDEO_STAT_COLUMNS, |_| ColumnKind::Numeric)
}

/// Concatenate tables read from the parts of one split file (27K statistics).
pub fn concat_tables(path: &Path, parts: Vec<FeatureTable>) -> Result<FeatureTable> {
    let mut parts = parts.into_iter();
    let Some(mut first) = parts.next() else {
        return Err(DataError::invalid(path, "no parts to concatenate"));
    };
    let mut raw = first.ids.raw_ids().to_vec();
    for part in parts {
        if part.names != first.names {
            return Err(DataError::invalid(path, "parts have different headers"));
        }
        raw.extend_from_slice(part.ids.raw_ids());
        for (dst, src) in first.columns.iter_mut().zip(part.columns) {
            match (dst, src) {
                (Column::Numeric(a), Column::Numeric(b)) => a.extend(b),
                _ => return Err(DataError::invalid(path, "only numeric parts can be joined")),
            }
        }
        first.missing_markers += part.missing_markers;
        first.blank_cells += part.blank_cells;
    }
    first.ids =
        IdMap::from_raw(raw).map_err(|row| DataError::invalid(path, format!("duplicate video_id at row {row}")))?;
    Ok(first)
}
