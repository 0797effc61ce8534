//! Every kind of bad input is one clear error naming the file, the line and the column,
//! never a panic, and never leaves a cache behind.

use std::fs;
use std::path::Path;

use mmrf_data::schema::{Version, LOG_COLUMNS};
use mmrf_data::{DataError, Dataset};

mod common;
use common::{write_valid, GOOD_ROW};

fn train_log(dir: &Path) -> std::path::PathBuf {
    dir.join(&Version::OneK.log_files(mmrf_data::LogSplit::Train)[0])
}

/// Load, expect an error, and check no cache was left behind.
fn load_err(dir: &Path) -> String {
    let err = Dataset::open(dir).expect_err("bad input must fail");
    assert!(
        !mmrf_data::cache::cache_path(dir).exists(),
        "no cache may be written for bad input"
    );
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

/// A valid fixture whose training log holds `rows` (after the header): the load error.
fn train_log_error(rows: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let mut text = LOG_COLUMNS.join(",") + "\n";
    for row in rows {
        text += row;
        text.push('\n');
    }
    fs::write(train_log(tmp.path()), text).unwrap();
    load_err(tmp.path())
}

#[test]
fn valid_fixture_loads_and_caches() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let (ds, info) = Dataset::open(tmp.path()).unwrap();
    assert!(!info.from_cache);
    assert_eq!((ds.train.len(), ds.test.len(), ds.random.len()), (1, 1, 1));
    assert_eq!(ds.train.play_time_ms[0], 20_000);
    assert_eq!(ds.random.is_rand[0], 1);
    let (again, info) = Dataset::open(tmp.path()).unwrap();
    assert!(info.from_cache);
    assert_eq!(ds, again, "the cache round-trips every column");
}

#[test]
fn missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    fs::remove_file(tmp.path().join("video_features_statistic_1k.csv")).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("video_features_statistic_1k.csv") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn wrong_header() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let text = fs::read_to_string(train_log(tmp.path()))
        .unwrap()
        .replacen("is_like", "is_love", 1);
    fs::write(train_log(tmp.path()), text).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("log_standard_4_08_to_4_21_1k.csv: line 1") && msg.contains("`is_love`"),
        "{msg}"
    );
}

#[test]
fn short_row() {
    let msg = train_log_error(&[GOOD_ROW, "0,1,20220408"]);
    assert!(msg.contains("line 3: expected 19 columns, found 3"), "{msg}");
}

#[test]
fn non_numeric_cell() {
    let msg = train_log_error(&[GOOD_ROW, &GOOD_ROW.replace(",20000,", ",20s,")]);
    assert!(
        msg.contains("line 3, column `play_time_ms`: expected an integer"),
        "{msg}"
    );
}

#[test]
fn id_out_of_range() {
    let msg = train_log_error(&[&GOOD_ROW.replacen("0,1,", "0,99,", 1)]);
    assert!(
        msg.contains("line 2, column `video_id`: video id out of range"),
        "{msg}"
    );
}

#[test]
fn tab_separated_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let text = format!("{}\n{}\n", LOG_COLUMNS.join("\t"), GOOD_ROW.replace(',', "\t"));
    fs::write(train_log(tmp.path()), text).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("line 1") && msg.contains("tab-separated"), "{msg}");
}

#[test]
fn flag_out_of_range_and_bad_date() {
    let msg = train_log_error(&[&GOOD_ROW.replace(",1,0,0,0,0,0,1,", ",2,0,0,0,0,0,1,")]);
    assert!(msg.contains("column `is_click`: expected 0 or 1"), "{msg}");
    let msg = train_log_error(&[&GOOD_ROW.replace("20220408", "20221340")]);
    assert!(msg.contains("column `date`"), "{msg}");
}

#[test]
fn bad_feature_cell_names_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let path = tmp.path().join("video_features_basic_1k.csv");
    let text = fs::read_to_string(&path).unwrap().replacen("15000.0", "long", 1);
    fs::write(&path, text).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("video_features_basic_1k.csv: line 2, column `video_duration`"),
        "{msg}"
    );
}

#[test]
fn stale_cache_is_replaced_when_a_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    Dataset::open(tmp.path()).unwrap();
    let two = format!("{}\n{GOOD_ROW}\n{GOOD_ROW}\n", LOG_COLUMNS.join(","));
    fs::write(train_log(tmp.path()), two).unwrap();
    let (ds, info) = Dataset::open(tmp.path()).unwrap();
    assert!(!info.from_cache, "a changed source invalidates the cache");
    assert_eq!(ds.train.len(), 2);
}

#[test]
fn not_a_kuairand_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Dataset::open(tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::Directory { .. }), "{err}");
}

#[test]
fn kuairand_27k_parts_are_concatenated_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    let dir = tmp.path();
    // Rename the 1K set to 27K names, splitting the train log and the statistics in parts.
    let one = Version::OneK;
    let k27 = Version::TwentySevenK;
    fs::rename(dir.join(one.user_features()), dir.join(k27.user_features())).unwrap();
    fs::rename(
        dir.join(one.video_features_basic()),
        dir.join(k27.video_features_basic()),
    )
    .unwrap();
    let header = LOG_COLUMNS.join(",");
    let second = GOOD_ROW.replacen("0,1,", "1,2,", 1);
    let train = k27.log_files(mmrf_data::LogSplit::Train);
    fs::write(dir.join(&train[0]), format!("{header}\n{GOOD_ROW}\n")).unwrap();
    fs::write(dir.join(&train[1]), format!("{header}\n{second}\n")).unwrap();
    let test = k27.log_files(mmrf_data::LogSplit::Test);
    fs::rename(
        dir.join(&one.log_files(mmrf_data::LogSplit::Test)[0]),
        dir.join(&test[0]),
    )
    .unwrap();
    fs::write(dir.join(&test[1]), format!("{header}\n")).unwrap();
    fs::rename(
        dir.join(&one.log_files(mmrf_data::LogSplit::Random)[0]),
        dir.join(&k27.log_files(mmrf_data::LogSplit::Random)[0]),
    )
    .unwrap();
    fs::remove_file(train_log(dir)).unwrap();
    let stats = fs::read_to_string(dir.join(&one.video_features_statistic()[0])).unwrap();
    let mut lines = stats.lines();
    let head = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    for (p, name) in k27.video_features_statistic().iter().enumerate() {
        fs::write(dir.join(name), format!("{head}\n{}\n", rows[p])).unwrap();
    }
    fs::remove_file(dir.join(&one.video_features_statistic()[0])).unwrap();
    let (ds, _) = Dataset::open(dir).unwrap();
    assert_eq!(ds.version, Version::TwentySevenK);
    assert_eq!(ds.train.user, vec![0, 1], "part1 then part2");
    assert_eq!(ds.train.video, vec![1, 2]);
    assert_eq!(ds.test.len(), 1);
    assert_eq!(ds.video_stats.len(), 3, "three statistics parts");
}
