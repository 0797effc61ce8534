//! The cache cannot lie and side files cannot describe other logs: a damaged cache is
//! rebuilt from the sources, a same-size edit is seen, and side files that do not match
//! their logs (a partly rewritten world) are refused by the loader and by `data check`
//! with one line naming the file.

use std::fs;
use std::path::Path;

use mmrf_data::schema::{Version, LOG_COLUMNS};
use mmrf_data::side::{self, LoggedRequest};
use mmrf_data::{Dataset, IdMap, LogSplit};

mod common;
use common::{write_valid, GOOD_ROW};

fn log_path(dir: &Path, split: LogSplit) -> std::path::PathBuf {
    dir.join(&Version::OneK.log_files(split)[0])
}

/// The side files of the fixture: one request per split showing its one row (user 0,
/// video 1) among two candidates, and that row's propensity.
fn write_side(dir: &Path, train_rows: u16) {
    let users = IdMap::from_raw(vec![0, 1]).unwrap();
    let videos = IdMap::from_raw(vec![0, 1, 2]).unwrap();
    let requests: Vec<LoggedRequest> = LogSplit::ALL
        .iter()
        .enumerate()
        .map(|(i, &split)| LoggedRequest {
            user: 0,
            session: 0,
            split,
            first_row: 0,
            n_shown: if split == LogSplit::Train { train_rows } else { 1 },
            candidate_offset: 2 * i as u64,
            n_candidates: 2,
        })
        .collect();
    let blocks: [&[u32]; 3] = [&[1, 2], &[1, 0], &[1, 2]];
    side::write_candidate_log(dir, &requests, &blocks, &users, &videos).unwrap();
    let props: Vec<(LogSplit, Vec<(u32, f32)>)> = LogSplit::ALL.iter().map(|&s| (s, vec![(1, 0.5)])).collect();
    side::write_propensities(dir, &props, &videos).unwrap();
}

fn world_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    write_side(tmp.path(), 1);
    // The world's own two files, which the data layer checks are there but does not read.
    fs::write(tmp.path().join(side::WORLD_FILE), "{}").unwrap();
    fs::write(tmp.path().join(side::STATES_FILE), "").unwrap();
    tmp
}

/// The loader's and `data check`'s errors for `dir`: both must refuse, in one line.
fn refused(dir: &Path) -> String {
    let err = Dataset::open(dir).expect_err("the loader must refuse").to_string();
    let check = mmrf_data::check::check_dir(dir)
        .expect_err("data check must refuse")
        .to_string();
    assert_eq!(err, check, "the loader and data check give the same reason");
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

#[test]
fn side_files_load_check_and_round_trip_the_cache() {
    let tmp = world_fixture();
    let (ds, info) = Dataset::open(tmp.path()).unwrap();
    assert!(!info.from_cache);
    let log = ds.candidates.as_ref().expect("a candidate log");
    assert_eq!(log.candidates_of(&log.requests[1]).unwrap(), vec![1, 0]);
    assert_eq!(ds.true_propensity(LogSplit::Test, 0), Some(0.5));
    let (again, info) = Dataset::open(tmp.path()).unwrap();
    assert!(info.from_cache);
    assert_eq!(ds, again);
    let report = mmrf_data::check::check_dir(tmp.path()).unwrap();
    assert!(report.side_files && report.complete, "{}", report.to_text());
}

#[test]
fn every_flipped_cache_byte_is_caught_and_the_cache_rebuilt() {
    let tmp = world_fixture();
    let (reference, _) = Dataset::open_with(tmp.path(), false).unwrap();
    Dataset::open(tmp.path()).unwrap();
    let cache = mmrf_data::cache::cache_path(tmp.path());
    let good = fs::read(&cache).unwrap();
    for i in 8..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        fs::write(&cache, &bad).unwrap();
        let (ds, info) = Dataset::open(tmp.path()).unwrap_or_else(|e| panic!("byte {i}: {e}"));
        assert!(!info.from_cache, "byte {i}: a damaged cache was used");
        assert!(ds == reference, "byte {i}: the figures changed");
        assert_eq!(fs::read(&cache).unwrap(), good, "byte {i}: the cache was not rebuilt");
    }
    let (_, info) = Dataset::open(tmp.path()).unwrap();
    assert!(info.from_cache, "the rebuilt cache is used again");
}

#[test]
fn a_same_size_edit_that_restores_the_modification_time_is_seen() {
    let tmp = world_fixture();
    let (ds, _) = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.train.play_time_ms[0], 20_000);
    let path = log_path(tmp.path(), LogSplit::Train);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let text = fs::read_to_string(&path).unwrap().replace(",20000,", ",30000,");
    fs::write(&path, text).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    let (ds, info) = Dataset::open(tmp.path()).unwrap();
    assert!(!info.from_cache, "the edited source invalidates the cache");
    assert_eq!(ds.train.play_time_ms[0], 30_000);
}

#[test]
fn a_missing_side_file_is_an_error_not_a_fallback() {
    for name in side::SIDE_FILES {
        let tmp = world_fixture();
        fs::remove_file(tmp.path().join(name)).unwrap();
        let msg = refused(tmp.path());
        assert!(msg.contains(name) && msg.contains("regenerate"), "{msg}");
    }
    // The world's parameter file without any side file.
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    fs::write(tmp.path().join(side::WORLD_FILE), "{}").unwrap();
    let msg = refused(tmp.path());
    assert!(
        msg.contains(side::REQUESTS_FILE) && msg.contains(side::WORLD_FILE),
        "{msg}"
    );
}

#[test]
fn data_check_reports_a_world_without_its_parameter_or_states_file() {
    for name in [side::WORLD_FILE, side::STATES_FILE] {
        let tmp = world_fixture();
        fs::remove_file(tmp.path().join(name)).unwrap();
        let report = mmrf_data::check::check_dir(tmp.path()).unwrap();
        assert!(!report.complete, "{name}: {}", report.to_text());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with(name) && p.contains("regenerate")),
            "{name}: {:?}",
            report.problems
        );
    }
}

#[test]
fn a_log_longer_than_its_side_files_is_refused() {
    // The mixed world: the train log rewritten by another generation, the side files not.
    let tmp = world_fixture();
    let two = format!("{}\n{GOOD_ROW}\n{GOOD_ROW}\n", LOG_COLUMNS.join(","));
    fs::write(log_path(tmp.path(), LogSplit::Train), two).unwrap();
    let msg = refused(tmp.path());
    assert!(
        msg.contains(side::REQUESTS_FILE) && msg.contains("show 1 rows of the standard_train log, which has 2"),
        "{msg}"
    );
}

#[test]
fn propensities_that_miss_a_row_are_refused() {
    let tmp = world_fixture();
    let two = format!("{}\n{GOOD_ROW}\n{GOOD_ROW}\n", LOG_COLUMNS.join(","));
    fs::write(log_path(tmp.path(), LogSplit::Train), two).unwrap();
    // Requests for both rows, propensities for the first only.
    let props = fs::read(tmp.path().join(side::PROPENSITIES_FILE)).unwrap();
    write_side(tmp.path(), 2);
    fs::write(tmp.path().join(side::PROPENSITIES_FILE), props).unwrap();
    let msg = refused(tmp.path());
    assert!(
        msg.contains(side::PROPENSITIES_FILE) && msg.contains("row 1 of the standard_train log has no propensity"),
        "{msg}"
    );
}

#[test]
fn a_propensity_for_another_video_or_twice_for_a_row_is_refused() {
    let path = |d: &Path| d.join(side::PROPENSITIES_FILE);
    let tmp = world_fixture();
    let text = fs::read_to_string(path(tmp.path())).unwrap();
    fs::write(path(tmp.path()), text.replacen("train,0,1,", "train,0,2,", 1)).unwrap();
    let msg = refused(tmp.path());
    assert!(
        msg.contains("line 2, column `video_id`") && msg.contains("row 0 of the standard_train log shows video 1"),
        "{msg}"
    );
    let tmp = world_fixture();
    let line = text.lines().nth(1).unwrap().to_string();
    fs::write(path(tmp.path()), format!("{text}{line}\n")).unwrap();
    let msg = refused(tmp.path());
    assert!(msg.contains("a second propensity for the same row"), "{msg}");
}

#[test]
fn a_request_for_another_users_rows_is_refused() {
    let tmp = world_fixture();
    let row = GOOD_ROW.replacen("0,", "1,", 1);
    fs::write(
        log_path(tmp.path(), LogSplit::Train),
        format!("{}\n{row}\n", LOG_COLUMNS.join(",")),
    )
    .unwrap();
    let msg = refused(tmp.path());
    assert!(
        msg.contains(side::REQUESTS_FILE) && msg.contains("row 0 of the standard_train log belongs to user 1"),
        "{msg}"
    );
}

#[test]
fn data_check_reports_an_empty_test_log() {
    let tmp = tempfile::tempdir().unwrap();
    write_valid(tmp.path());
    fs::write(
        log_path(tmp.path(), LogSplit::Test),
        format!("{}\n", LOG_COLUMNS.join(",")),
    )
    .unwrap();
    let report = mmrf_data::check::check_dir(tmp.path()).unwrap();
    assert!(!report.complete);
    assert_eq!(
        report.problems,
        vec!["the standard_test log has no rows: nothing to evaluate on".to_string()]
    );
}

#[test]
fn a_candidate_id_outside_the_catalogue_is_refused_with_its_position() {
    let tmp = world_fixture();
    let path = tmp.path().join(side::CANDIDATES_FILE);
    let mut bytes = fs::read(&path).unwrap();
    // Ids follow the 8-byte magic and the 8-byte count; the fourth is the test request's 0.
    bytes[16 + 4 * 3..16 + 4 * 4].copy_from_slice(&9u32.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let err = refused(tmp.path());
    assert!(err.contains("candidate #3: video id 9 out of range"), "{err}");
    assert!(err.contains(side::CANDIDATES_FILE), "{err}");
}

#[test]
fn the_candidate_writer_refuses_a_request_that_does_not_own_its_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let users = IdMap::from_raw(vec![0]).unwrap();
    let videos = IdMap::from_raw(vec![0, 1, 2]).unwrap();
    let mut w = side::CandidateLogWriter::create(tmp.path(), &users, &videos).unwrap();
    let r = LoggedRequest {
        user: 0,
        session: 0,
        split: LogSplit::Train,
        first_row: 0,
        n_shown: 1,
        candidate_offset: 0,
        n_candidates: 2,
    };
    assert!(w.push(&r, &[1]).is_err(), "one id for a request that owns two");
    w.push(&r, &[1, 2]).unwrap();
    assert!(w.push(&r, &[1, 2]).is_err(), "offset 0 where the log stands at 2");
    drop(w);
    assert!(
        !tmp.path().join(side::CANDIDATES_FILE).exists(),
        "nothing appears under the file's name before finish"
    );
}
