//! The official KuaiRand-Pure feature files (in `../shared/data/kuairand/`) load with every
//! column typed and the real quirks handled.

use std::path::PathBuf;

use mmrf_data::table::{read_user_features, read_video_features, Column};
use mmrf_data::Vocab;

fn shared(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/kuairand/kuairand_dataset_preprocessed")
        .join(file)
}

#[test]
fn pure_user_features_load_with_quirks() {
    let t = read_user_features(&shared("user_features_pure.csv")).expect("official file loads");
    assert_eq!(t.len(), 27_285);
    assert_eq!(t.names.len(), 30, "every column but the id");
    assert_eq!(t.ids.get(27_284), Some(27_284));
    let (codes, vocab) = t.categorical("user_active_degree").unwrap();
    assert_eq!(vocab.categories(), 9, "nine activity degrees");
    for name in [
        "full_active",
        "2_14_day_new",
        "single_low_active",
        "30day_retention",
        "day_new",
        "UNKNOWN",
    ] {
        assert!(vocab.get(name).is_some(), "{name}");
    }
    let full = vocab.get("full_active").unwrap();
    assert_eq!(codes.iter().filter(|&&c| c == full).count(), 17_959);
    // -124 is KuaiRand's missing marker: 21,127 cells, all in is_live_streamer.
    assert_eq!(t.missing_markers, 21_127);
    let (live, _) = t.categorical("is_live_streamer").unwrap();
    assert_eq!(live.iter().filter(|&&c| c == Vocab::MISSING).count(), 21_127);
    // Quoted range strings are categories, not split cells.
    let (_, fans) = t.categorical("fans_user_num_range").unwrap();
    assert!(fans.get("[100,1k)").is_some());
    let (_, reg) = t.categorical("register_days_range").unwrap();
    assert!(reg.get("730+").is_some());
    // Float onehot columns with blanks: 1.0 and 1 are one category, blanks are missing.
    let (f12, v12) = t.categorical("onehot_feat12").unwrap();
    assert_eq!(f12.iter().filter(|&&c| c == Vocab::MISSING).count(), 714);
    assert_eq!(v12.categories(), 2);
    let (f4, _) = t.categorical("onehot_feat4").unwrap();
    assert_eq!(f4.iter().filter(|&&c| c == Vocab::MISSING).count(), 874);
    let follow = t.numeric("follow_user_num").unwrap();
    assert_eq!(follow[0], 514.0);
    assert_eq!(t.blank_cells, 874 + 6 * 714);
}

#[test]
fn pure_video_features_load_with_quirks() {
    let t = read_video_features(&shared("video_features_basic_pure.csv")).expect("official file loads");
    assert_eq!(t.len(), 7_583);
    let dur = t.numeric("video_duration").unwrap();
    assert_eq!(
        dur.iter().filter(|d| d.is_nan()).count(),
        239,
        "blank durations are missing"
    );
    assert_eq!(dur[0], 87_433.0);
    let (_, kinds) = t.categorical("video_type").unwrap();
    assert_eq!(kinds.categories(), 3);
    // Quoted comma-separated tags become several categories of one row.
    let Some(Column::MultiCategorical { offsets, codes, vocab }) = t.column("tag") else {
        panic!("tag is multi-categorical");
    };
    let multi = (0..t.len()).filter(|&i| offsets[i + 1] - offsets[i] > 1).count();
    assert!(multi > 0, "some videos have several tags");
    let blank = (0..t.len()).filter(|&i| offsets[i + 1] == offsets[i]).count();
    assert_eq!(blank, 96);
    assert!(vocab.categories() < 120 && codes.len() > t.len());
    let upload = t.numeric("upload_dt").unwrap();
    assert_eq!(upload[0], mmrf_data::time::days_from_civil(2022, 4, 10) as f32);
    let (authors, av) = t.categorical("author_id").unwrap();
    assert_eq!(av.categories(), 6_510);
    assert!(authors.iter().all(|&c| c != Vocab::MISSING));
}
