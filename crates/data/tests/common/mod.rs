//! The fixtures the data layer's integration tests share.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use mmrf_data::schema::{Version, LOG_COLUMNS, USER_COLUMNS, VIDEO_BASIC_COLUMNS, VIDEO_STAT_COLUMNS};

pub const GOOD_ROW: &str = "0,1,20220408,1000,1649383200000,1,0,0,0,0,0,1,20000,15000,0,0,0,0,1";

/// A minimal, valid KuaiRand-1K directory: 2 users, 3 videos, one row per log.
pub fn write_valid(dir: &Path) {
    let v = Version::OneK;
    let log = |row: &str| format!("{}\n{row}\n", LOG_COLUMNS.join(","));
    fs::write(dir.join(&v.log_files(mmrf_data::LogSplit::Train)[0]), log(GOOD_ROW)).unwrap();
    let test_row = GOOD_ROW.replace("20220408", "20220425");
    fs::write(dir.join(&v.log_files(mmrf_data::LogSplit::Test)[0]), log(&test_row)).unwrap();
    let rand_row = format!("{},1,1", test_row.strip_suffix(",0,1").unwrap());
    fs::write(dir.join(&v.log_files(mmrf_data::LogSplit::Random)[0]), log(&rand_row)).unwrap();
    let mut users = USER_COLUMNS.join(",") + "\n";
    for u in 0..2 {
        users += &format!(
            "{u},full_active,0,-124,1,5,\"(0,10]\",20,\"[10,100)\",3,\"[1,5)\",400,366-730,1,2,3,4,5.0,6,1,7,8,2,3,4,1.0,0.0,,1.0,0.0,0.0\n"
        );
    }
    fs::write(dir.join(v.user_features()), users).unwrap();
    let mut videos = VIDEO_BASIC_COLUMNS.join(",") + "\n";
    for j in 0..3 {
        videos += &format!("{j},77,NORMAL,2022-04-01,Web,0.0,15000.0,720.0,1280.0,9155697141,9.0,\"12,65\"\n");
    }
    fs::write(dir.join(v.video_features_basic()), videos).unwrap();
    let mut stats = VIDEO_STAT_COLUMNS.join(",") + "\n";
    for j in 0..3 {
        stats += &format!("{j},3{}\n", ",1.5".repeat(VIDEO_STAT_COLUMNS.len() - 2));
    }
    fs::write(dir.join(&v.video_features_statistic()[0]), stats).unwrap();
}
