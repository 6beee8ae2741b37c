//! Times of the log API: `sinceTime` as clients send it (RFC 3339, any offset), and record
//! times as kubelet prints them with `timestamps=true` (Go's RFC3339Nano: UTC, trailing
//! fractional zeros dropped).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `2024-05-01T10:00:00Z`, `...T10:00:00.5+02:00` and the like.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos as u32))
}

/// A record's time (layerlet writes nine fractional digits) as Go's RFC3339Nano prints it.
pub fn go_nano(record_time: &str) -> String {
    let Some((whole, frac)) = record_time.split_once('.') else {
        return record_time.to_string();
    };
    let Some(digits) = frac.strip_suffix('Z') else {
        return record_time.to_string();
    };
    match digits.trim_end_matches('0') {
        "" => format!("{whole}Z"),
        kept => format!("{whole}.{kept}Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_with_fractions_and_offsets() {
        let t = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_714_557_600
        );
        let t = parse_rfc3339("2024-05-01T12:00:00.25+02:00").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(
            (d.as_secs(), d.subsec_nanos()),
            (1_714_557_600, 250_000_000)
        );
        assert!(parse_rfc3339("2024-05-01 10:00:00").is_none());
        assert!(parse_rfc3339("2024-13-01T10:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn record_times_print_as_go_prints_rfc3339nano() {
        assert_eq!(
            go_nano("2024-05-01T10:00:00.123400000Z"),
            "2024-05-01T10:00:00.1234Z"
        );
        assert_eq!(
            go_nano("2024-05-01T10:00:00.000000000Z"),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            go_nano("2024-05-01T10:00:00.123456789Z"),
            "2024-05-01T10:00:00.123456789Z"
        );
    }
}
