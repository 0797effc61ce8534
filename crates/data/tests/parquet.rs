//! The Parquet form of a data directory: the same dataset as its CSVs, and bad Parquet
//! input refused with the file, row group, row and column.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use mmrf_data::columnar::{convert, Format};
use mmrf_data::schema::{Version, LOG_COLUMNS};
use mmrf_data::{Dataset, LogSplit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

mod common;
use common::write_valid;

/// The valid CSV fixture and its Parquet copy.
fn both() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    write_valid(&csv);
    let pq = tmp.path().join("parquet");
    let done = convert(&csv, &pq).unwrap();
    assert_eq!(done.files.len(), Version::OneK.all_files().len());
    (tmp, csv, pq)
}

#[test]
fn the_parquet_copy_is_the_same_dataset_and_reloads_from_its_cache() {
    let (_tmp, csv, pq) = both();
    assert_eq!(Format::detect(&pq), Some((Version::OneK, Format::Parquet)));
    assert_eq!(Format::detect(&csv), Some((Version::OneK, Format::Csv)));
    let (from_csv, _) = Dataset::open_with(&csv, false).unwrap();
    let (mut from_pq, info) = Dataset::open(&pq).unwrap();
    assert!(!info.from_cache);
    let (again, info) = Dataset::open(&pq).unwrap();
    assert!(info.from_cache && again == from_pq);
    // Every column, id map, vocabulary and count of missing markers and blank cells.
    from_pq.dir = from_csv.dir.clone();
    assert!(from_pq == from_csv);
    assert_eq!(from_pq.users.missing_markers, 2);
    assert_eq!(from_pq.users.blank_cells, 2);
    let report = mmrf_data::check::check_dir(&pq).unwrap();
    assert!(report.complete && report.problems.is_empty(), "{report:?}");
    // Converting into a directory that holds something is refused.
    let err = convert(&csv, &pq).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

/// Write `columns` (name, values) as a log file in row groups of 2 rows.
fn write_log(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(2)).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Three good rows of the fixture's training log as columns, with `edit` applied.
fn log_columns(edit: impl Fn(&str, &mut Vec<Option<i64>>)) -> Vec<(&'static str, ArrayRef)> {
    let good: Vec<i64> = common::GOOD_ROW.split(',').map(|c| c.parse().unwrap()).collect();
    LOG_COLUMNS
        .iter()
        .zip(good)
        .map(|(&name, v)| {
            let mut values = vec![Some(v); 3];
            edit(name, &mut values);
            (name, Arc::new(Int64Array::from(values)) as ArrayRef)
        })
        .collect()
}

fn train_log(dir: &Path) -> std::path::PathBuf {
    Format::Parquet.path(dir, &Version::OneK.log_files(LogSplit::Train)[0])
}

fn load_err(dir: &Path) -> String {
    let _ = std::fs::remove_dir_all(dir.join(".mmrf-cache"));
    let msg = Dataset::open(dir).expect_err("bad input must fail").to_string();
    assert!(!mmrf_data::cache::cache_path(dir).exists(), "no cache for bad input");
    msg
}

#[test]
fn a_bad_value_is_named_by_file_row_group_row_and_column() {
    let (_tmp, _, pq) = both();
    write_log(
        &train_log(&pq),
        log_columns(|name, v| {
            if name == "is_click" {
                v[2] = Some(2);
            }
        }),
    );
    let err = load_err(&pq);
    assert!(
        err.contains("log_standard_4_08_to_4_21_1k.parquet")
            && err.contains("row group 1, row 0")
            && err.contains("`is_click`")
            && err.contains("expected 0 or 1"),
        "{err}"
    );
    write_log(
        &train_log(&pq),
        log_columns(|name, v| {
            if name == "video_id" {
                v[1] = Some(99);
            }
        }),
    );
    let err = load_err(&pq);
    assert!(
        err.contains("row group 0, row 1")
            && err.contains("video id out of range: not in video_features_basic_1k.parquet"),
        "{err}"
    );
    write_log(
        &train_log(&pq),
        log_columns(|name, v| {
            if name == "play_time_ms" {
                v[0] = None;
            }
        }),
    );
    let err = load_err(&pq);
    assert!(err.contains("row group 0, row 0") && err.contains("null"), "{err}");
}

#[test]
fn a_log_of_the_wrong_columns_or_types_is_refused() {
    let (_tmp, _, pq) = both();
    let mut columns = log_columns(|_, _| {});
    columns.retain(|(n, _)| *n != "tab");
    write_log(&train_log(&pq), columns);
    let err = load_err(&pq);
    assert!(err.contains("column `tab` is missing"), "{err}");
    // A Parquet file's header is its schema, not a line.
    assert!(
        err.contains(".parquet: schema: wrong header") && !err.contains("line 1"),
        "{err}"
    );

    let mut columns = log_columns(|_, _| {});
    columns.push(("extra", Arc::new(Int64Array::from(vec![1, 2, 3]))));
    write_log(&train_log(&pq), columns);
    let err = load_err(&pq);
    assert!(err.contains("`extra` is not a KuaiRand log column"), "{err}");

    let mut columns = log_columns(|_, _| {});
    columns[5] = ("is_click", Arc::new(StringArray::from(vec!["1", "0", "1"])));
    write_log(&train_log(&pq), columns);
    let err = load_err(&pq);
    assert!(err.contains("`is_click` has type Utf8: expected integers"), "{err}");

    // Columns in another order and of other integer widths are the same log.
    let (from_csv, _) = Dataset::open_with(&both().1, false).unwrap();
    let mut columns: Vec<(&str, ArrayRef)> = log_columns(|_, _| {})
        .into_iter()
        .map(|(n, a)| {
            let v = a.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
            let narrow: ArrayRef = match n {
                "date" | "hourmin" | "tab" => Arc::new(arrow_array::UInt32Array::from(
                    v.iter().map(|&x| x as u32).collect::<Vec<_>>(),
                )),
                _ => Arc::new(arrow_array::Float64Array::from(
                    v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
                )),
            };
            (n, narrow)
        })
        .collect();
    columns.reverse();
    write_log(&train_log(&pq), columns);
    let (ds, _) = Dataset::open(&pq).unwrap();
    assert_eq!(ds.train.len(), 3);
    assert_eq!(ds.train.row(2), from_csv.train.row(0));
}

#[test]
fn typed_feature_columns_read_as_the_csv_cells_that_hold_them() {
    let (_tmp, csv, pq) = both();
    // The basic video features as a Spark job might write them: a date column and the
    // tags as a list of integers.
    let text = std::fs::read_to_string(csv.join(Version::OneK.video_features_basic())).unwrap();
    let rows: Vec<Vec<String>> = {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        r.records()
            .map(|x| x.unwrap().iter().map(str::to_string).collect())
            .collect()
    };
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (c, name) in header.iter().enumerate() {
        let cells: Vec<&str> = rows.iter().map(|r| r[c].as_str()).collect();
        let (kind, array): (DataType, ArrayRef) = match *name {
            "upload_dt" => (
                DataType::Date32,
                Arc::new(arrow_array::Date32Array::from(
                    cells.iter().map(|_| 19083).collect::<Vec<i32>>(), // 2022-04-01
                )),
            ),
            "tag" => {
                let mut b = arrow_array::builder::ListBuilder::new(arrow_array::builder::Int64Builder::new());
                for cell in &cells {
                    for t in cell.split(',') {
                        b.values().append_value(t.parse().unwrap());
                    }
                    b.append(true);
                }
                let a = b.finish();
                (a.data_type().clone(), Arc::new(a))
            }
            _ => (DataType::Utf8, Arc::new(StringArray::from(cells.clone()))),
        };
        fields.push(Field::new(*name, kind, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let path = Format::Parquet.path(&pq, &Version::OneK.video_features_basic());
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, arrays).unwrap()).unwrap();
    w.close().unwrap();
    let from_pq = mmrf_data::table::read_video_features(&path).unwrap();
    let from_csv = mmrf_data::table::read_video_features(&csv.join(Version::OneK.video_features_basic())).unwrap();
    assert!(from_pq == from_csv);
}

/// Each file is read in its own format: a directory may mix them, a log may be a Parquet
/// dataset folder of parts, and the same file in both formats is refused by name.
#[test]
fn each_file_in_its_own_format_and_never_both() {
    let (tmp, csv, pq) = both();
    let (reference, _) = Dataset::open_with(&csv, false).unwrap();
    let same = |dir: &Path| {
        let (mut ds, _) = Dataset::open_with(dir, false).unwrap();
        ds.dir = reference.dir.clone();
        assert!(ds == reference, "{}", dir.display());
        let report = mmrf_data::check::check_dir(dir).unwrap();
        assert!(report.complete, "{}", report.to_text());
    };
    let test_log = Version::OneK.log_files(LogSplit::Test)[0].clone();
    let pq_name = |name: &str| Path::new(name).with_extension("parquet");
    // A Parquet test log in an otherwise CSV directory.
    let mixed = tmp.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    for e in std::fs::read_dir(&csv)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
    {
        std::fs::copy(e.path(), mixed.join(e.file_name())).unwrap();
    }
    std::fs::remove_file(mixed.join(&test_log)).unwrap();
    std::fs::copy(pq.join(pq_name(&test_log)), mixed.join(pq_name(&test_log))).unwrap();
    same(&mixed);
    // The same log in both formats: which is the data cannot be guessed.
    std::fs::copy(csv.join(&test_log), mixed.join(&test_log)).unwrap();
    let err = Dataset::open_with(&mixed, false).unwrap_err().to_string();
    assert!(
        err.contains(&test_log)
            && err.contains("log_standard_4_22_to_5_08_1k.parquet")
            && err.contains("one format per file"),
        "{err}"
    );
    let check = mmrf_data::check::check_dir(&mixed).unwrap_err().to_string();
    assert_eq!(check, err);
    // A Spark-style dataset folder: NAME.parquet/part-*.parquet with a _SUCCESS marker.
    std::fs::remove_file(mixed.join(&test_log)).unwrap();
    let folder = mixed.join(pq_name(&test_log));
    std::fs::remove_file(&folder).unwrap();
    std::fs::create_dir(&folder).unwrap();
    let whole = pq.join(pq_name(&test_log));
    std::fs::copy(&whole, folder.join("part-00000.parquet")).unwrap();
    std::fs::write(folder.join("_SUCCESS"), "").unwrap();
    same(&mixed);
    // Its parts are read in name order, as one log (here one real part and an empty one
    // with the same columns would change nothing; a folder without parts is refused).
    std::fs::remove_file(folder.join("part-00000.parquet")).unwrap();
    let err = Dataset::open_with(&mixed, false).unwrap_err().to_string();
    assert!(err.contains("no .parquet part file"), "{err}");
    // A feature table must be one file.
    let users = Version::OneK.user_features();
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::copy(&whole, &folder).unwrap();
    std::fs::remove_file(mixed.join(&users)).unwrap();
    std::fs::create_dir(mixed.join(pq_name(&users))).unwrap();
    std::fs::copy(
        pq.join(pq_name(&users)),
        mixed.join(pq_name(&users)).join("part-0.parquet"),
    )
    .unwrap();
    let err = Dataset::open_with(&mixed, false).unwrap_err().to_string();
    assert!(err.contains("a feature table must be one file"), "{err}");
}

#[test]
#[cfg(unix)]
fn converted_files_get_the_mode_of_an_ordinary_file() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, _csv, pq) = both();
    let plain = tmp.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for e in std::fs::read_dir(&pq).unwrap().flatten().filter(|e| e.path().is_file()) {
        assert_eq!(mode(&e.path()), mode(&plain), "{}", e.path().display());
    }
}

/// A converted file's values are checksummed (a log per row group, a feature table whole):
/// a flipped byte anywhere before the footer is an error or changes nothing, never other
/// figures.
#[test]
fn a_flipped_byte_in_a_converted_file_is_an_error_or_changes_nothing() {
    let (_tmp, csv, pq) = both();
    let (mut reference, _) = Dataset::open_with(&csv, false).unwrap();
    reference.dir = pq.clone();
    let log = Version::OneK.log_files(LogSplit::Train)[0].clone();
    for name in [log, Version::OneK.user_features(), Version::OneK.video_features_basic()] {
        let file = pq.join(Path::new(&name).with_extension("parquet"));
        let good = std::fs::read(&file).unwrap();
        let n = good.len();
        let footer = u32::from_le_bytes(good[n - 8..n - 4].try_into().unwrap()) as usize;
        let (mut caught_by_checksum, mut same) = (0, 0);
        for i in 4..n - 8 - footer {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&file, &bad).unwrap();
            match Dataset::open_with(&pq, false) {
                Err(e) => {
                    let e = e.to_string();
                    let shown = file.file_name().unwrap().to_string_lossy().into_owned();
                    assert!(e.contains(&shown), "{name} byte {i}: {e}");
                    caught_by_checksum += e.contains("do not match the checksum") as usize;
                }
                Ok((ds, _)) => {
                    assert!(ds == reference, "{name} byte {i}: other figures");
                    same += 1;
                }
            }
        }
        std::fs::write(&file, &good).unwrap();
        assert!(
            caught_by_checksum > 0,
            "{name}: no flip reached the checksum ({same} changed nothing)"
        );
    }
}
