//! Calendar arithmetic for KuaiRand's `date` (YYYYMMDD), `hourmin` (HHMM) and `time_ms`.
//!
//! KuaiRand's wall-clock columns are Beijing time (UTC+8) while `time_ms` is the Unix epoch
//! in milliseconds; [`BEIJING_OFFSET_MS`] converts between them. Days are counted with
//! the proleptic Gregorian civil-date algorithm (H. Hinnant), exact for every date.

/// Beijing (UTC+8) offset of KuaiRand's `date` and `hourmin` columns.
pub const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// `YYYYMMDD` as an integer, validated: `None` for impossible dates.
pub fn parse_yyyymmdd(v: u32) -> Option<(i32, u32, u32)> {
    let (y, m, d) = ((v / 10_000) as i32, (v / 100) % 100, v % 100);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since epoch of a `YYYYMMDD` integer (assumed valid).
pub fn yyyymmdd_to_days(v: u32) -> i64 {
    days_from_civil((v / 10_000) as i32, (v / 100) % 100, v % 100)
}

/// The `YYYYMMDD` integer of a day count.
pub fn days_to_yyyymmdd(days: i64) -> u32 {
    let (y, m, d) = civil_from_days(days);
    y as u32 * 10_000 + m * 100 + d
}

/// KuaiRand's `date` and `hourmin` (hour granularity) of an epoch-ms timestamp.
pub fn date_hourmin(time_ms: i64) -> (u32, u16) {
    let local = time_ms + BEIJING_OFFSET_MS;
    let days = local.div_euclid(DAY_MS);
    let hour = (local.rem_euclid(DAY_MS) / 3_600_000) as u16;
    (days_to_yyyymmdd(days), hour * 100)
}

/// Epoch ms of Beijing midnight starting the given `YYYYMMDD` day.
pub fn day_start_ms(yyyymmdd: u32) -> i64 {
    yyyymmdd_to_days(yyyymmdd) * DAY_MS - BEIJING_OFFSET_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_to_yyyymmdd(days_from_civil(2022, 4, 8)), 20220408);
        // 2022-04-22 00:00 Beijing = 2022-04-21 16:00 UTC = 1650556800000 ms.
        assert_eq!(day_start_ms(20220422), 1_650_556_800_000);
        assert_eq!(
            date_hourmin(1_650_556_800_000 + 3_600_000 * 13 + 59_000),
            (20220422, 1300)
        );
        assert!(parse_yyyymmdd(20220230).is_none());
        assert!(parse_yyyymmdd(20240229).is_some());
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
