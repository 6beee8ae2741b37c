//! Time as layerlet writes and reads it, in one place: the clock, RFC 3339 with nanoseconds
//! (CRI log records, layerlet's own records), and the Kubernetes API's formats.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, as the records keep them.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the epoch, as the database keeps them.
pub fn unix_secs_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// UTC time as RFC 3339 with exactly nine fractional digits, e.g.
/// `2026-11-26T17:05:03.123456789Z`. Fixed width keeps records sortable as text; Go's
/// RFC3339Nano parser (kubelet) accepts it.
pub fn format_rfc3339_nano(time: SystemTime) -> String {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            // Before 1970: floor to the whole second below, keep nanos positive.
            let d = e.duration();
            let mut secs = -(d.as_secs() as i64);
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, exact for every i64 day count that fits a year in i64.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64, nanos: u32) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(nanos.into())
        }
    }

    /// Days from 1970-01-01 by counting, to check the closed form against.
    fn days_by_counting(y: i64, m: u32, d: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days = 0i64;
        for yy in 1970..y {
            days += if leap(yy) { 366 } else { 365 };
        }
        for mm in 1..m {
            days += month_len(y, mm);
        }
        days + i64::from(d) - 1
    }

    #[test]
    fn timestamps_match_known_epochs() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000000Z"),
            (1_234_567_890, 5, "2009-02-13T23:31:30.000000005Z"),
            (946_684_799, 999_999_999, "1999-12-31T23:59:59.999999999Z"),
            (1_795_712_703, 123_456_789, "2026-11-26T17:05:03.123456789Z"),
            (253_402_300_799, 0, "9999-12-31T23:59:59.000000000Z"),
            (-1, 0, "1969-12-31T23:59:59.000000000Z"),
            (-1, 500_000_000, "1969-12-31T23:59:59.500000000Z"),
            (-62_135_596_800, 0, "0001-01-01T00:00:00.000000000Z"),
        ];
        for (secs, nanos, want) in cases {
            assert_eq!(format_rfc3339_nano(at(secs, nanos)), want, "{secs}");
        }
    }

    #[test]
    fn timestamps_handle_leap_days_and_century_rules() {
        let cases = [
            (68_256_000, "1972-03-01T00:00:00.000000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000000Z"),
            (1_709_164_800, "2024-02-29T00:00:00.000000000Z"),
            (4_102_444_800, "2100-01-01T00:00:00.000000000Z"),
            // 2100 is not a leap year: Feb 28 is followed by Mar 1.
            (4_107_542_400, "2100-03-01T00:00:00.000000000Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_rfc3339_nano(at(secs, 0)), want, "{secs}");
        }
    }

    #[test]
    fn civil_from_days_agrees_with_counting_for_four_centuries() {
        let mut days = 0i64;
        for y in 1970..2400 {
            for m in 1..=12u32 {
                let first = days_by_counting(y, m, 1);
                assert_eq!(civil_from_days(first), (y, m, 1));
                days = first;
            }
        }
        assert!(days > 0);
    }
}
