//! `/containerLogs/{namespace}/{pod}/{container}`: a container's CRI log files decoded and
//! written as kubelet writes them (stdout and stderr records in file order, a partial
//! record without its newline), with kubelet's query parameters.

pub mod follow;
pub mod timestamp;

use std::time::{Duration, SystemTime};

use crate::time::format_rfc3339_nano;

/// What the client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Records older than this are left out; in the records' own format (fixed-width UTC
    /// RFC 3339 with nine digits), so it compares as text.
    pub since: Option<String>,
}

/// Go's `strconv.ParseBool`, which kubelet's query decoding uses.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{name}: {value:?} is not a boolean")),
    }
}

fn parse_count(name: &str, value: &str, min: i64) -> Result<u64, String> {
    let n: i64 = value
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not a number"))?;
    if n < min {
        return Err(format!("{name}: must be at least {min}"));
    }
    Ok(n as u64)
}

/// kubelet's validation of the log options (`PodLogOptions`).
pub fn options(query: &[(String, String)], now: SystemTime) -> Result<LogOptions, String> {
    let mut opts = LogOptions::default();
    let mut since_seconds = None;
    let mut since_time = None;
    for (name, value) in query {
        match name.as_str() {
            "follow" => opts.follow = parse_bool(name, value)?,
            "previous" => opts.previous = parse_bool(name, value)?,
            "timestamps" => opts.timestamps = parse_bool(name, value)?,
            "tailLines" => opts.tail_lines = Some(parse_count(name, value, 0)?),
            "limitBytes" => opts.limit_bytes = Some(parse_count(name, value, 1)?),
            "sinceSeconds" => since_seconds = Some(parse_count(name, value, 1)?),
            "sinceTime" => {
                since_time = Some(
                    timestamp::parse_rfc3339(value)
                        .ok_or_else(|| format!("sinceTime: {value:?} is not an RFC 3339 time"))?,
                )
            }
            _ => {}
        }
    }
    let since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into())
        }
        (Some(s), None) => Some(now.checked_sub(Duration::from_secs(s)).unwrap_or(now)),
        (None, t) => t,
    };
    opts.since = since.map(format_rfc3339_nano);
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn kubelets_log_parameters_are_read_and_checked() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let o = options(
            &q(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("limitBytes", "10"),
                ("timestamps", "1"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(10)));
        let o = options(&q(&[("sinceSeconds", "10")]), now).unwrap();
        assert_eq!(o.since.as_deref(), Some("1970-01-01T00:16:30.000000000Z"));
        assert!(options(
            &q(&[("sinceSeconds", "1"), ("sinceTime", "2024-01-01T00:00:00Z")]),
            now
        )
        .is_err());
        assert!(options(&q(&[("limitBytes", "0")]), now).is_err());
        assert!(options(&q(&[("tailLines", "-1")]), now).is_err());
        assert!(options(&q(&[("follow", "maybe")]), now).is_err());
    }
}
