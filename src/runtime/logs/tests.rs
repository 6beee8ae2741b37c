//! Tests of writing, rotating and reading CRI log files.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    }
}

fn small(max_bytes: u64, max_files: usize) -> LogRotation {
    LogRotation {
        max_bytes,
        max_files,
    }
}

fn texts(records: &[LogRecord]) -> Vec<(Stream, bool, String)> {
    records
        .iter()
        .map(|r| {
            (
                r.stream,
                r.partial,
                String::from_utf8_lossy(&r.text).into_owned(),
            )
        })
        .collect()
}

#[test]
fn a_line_split_across_writes_becomes_one_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stdout, b"hel").unwrap();
    w.write(Stream::Stdout, b"lo wor").unwrap();
    w.write(Stream::Stdout, b"ld\nnext\n").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stdout, false, "hello world".to_string()),
            (Stream::Stdout, false, "next".to_string()),
        ]
    );
}

#[test]
fn records_have_the_cri_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write_at(
        Stream::Stderr,
        b"oops \xff\n",
        at(1_795_712_703, 123_456_789),
    )
    .unwrap();
    w.close().unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(
        raw,
        b"2026-11-26T17:05:03.123456789Z stderr F oops \xff\n".to_vec()
    );
}

#[test]
fn a_forty_kib_line_becomes_partial_partial_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    let line: Vec<u8> = (0..40 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    // In small chunks, so the cut happens while the line is still incomplete.
    for chunk in line.chunks(1000) {
        w.write(Stream::Stdout, chunk).unwrap();
    }
    w.write(Stream::Stdout, b"\n").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    let shape: Vec<(bool, usize)> = recs.iter().map(|r| (r.partial, r.text.len())).collect();
    assert_eq!(
        shape,
        vec![
            (true, MAX_LINE_SIZE),
            (true, MAX_LINE_SIZE),
            (false, 40 * 1024 - 2 * MAX_LINE_SIZE)
        ]
    );
    assert_eq!(join_partial(&recs), vec![(Stream::Stdout, line)]);
}

#[test]
fn a_line_of_exactly_the_max_size_is_one_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    let line = vec![b'x'; 2 * MAX_LINE_SIZE];
    w.write(Stream::Stdout, &line).unwrap();
    w.write(Stream::Stdout, b"\n").unwrap();
    w.write(Stream::Stdout, &line[..MAX_LINE_SIZE]).unwrap();
    w.write(Stream::Stdout, b"\n").unwrap();
    w.close().unwrap();
    let shape: Vec<(bool, usize)> = read_records(&path)
        .unwrap()
        .iter()
        .map(|r| (r.partial, r.text.len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (true, MAX_LINE_SIZE),
            (false, MAX_LINE_SIZE),
            (false, MAX_LINE_SIZE)
        ]
    );
}

#[test]
fn stdout_and_stderr_interleave_without_mixing_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stdout, b"out-a").unwrap();
    w.write(Stream::Stderr, b"err-1\nerr-").unwrap();
    w.write(Stream::Stdout, b"\nout-b\n").unwrap();
    w.write(Stream::Stderr, b"2\n").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stderr, false, "err-1".to_string()),
            (Stream::Stdout, false, "out-a".to_string()),
            (Stream::Stdout, false, "out-b".to_string()),
            (Stream::Stderr, false, "err-2".to_string()),
        ]
    );
}

#[test]
fn an_unterminated_last_line_is_written_as_partial_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stdout, b"done\nno newline").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stdout, false, "done".to_string()),
            (Stream::Stdout, true, "no newline".to_string()),
        ]
    );
    assert_eq!(
        join_partial(&recs),
        vec![
            (Stream::Stdout, b"done".to_vec()),
            (Stream::Stdout, b"no newline".to_vec())
        ]
    );
}

#[test]
fn flush_partial_emits_a_p_record_and_the_rest_completes_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stdout, b"prompt> ").unwrap();
    w.flush_partial().unwrap();
    assert_eq!(read_records(&path).unwrap().len(), 1);
    w.write(Stream::Stdout, b"answer\n").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stdout, true, "prompt> ".to_string()),
            (Stream::Stdout, false, "answer".to_string()),
        ]
    );
    assert_eq!(
        join_partial(&recs),
        vec![(Stream::Stdout, b"prompt> answer".to_vec())]
    );
}

#[test]
fn dropping_the_writer_keeps_a_buffered_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stderr, b"last words").unwrap();
    drop(w);
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![(Stream::Stderr, true, "last words".to_string())]
    );
}

#[test]
fn rotation_keeps_max_files_in_total_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    // Each record is 30 (time) + 8 + 4 ("NNN\n"-ish) bytes; 100 bytes hold two.
    let mut w = CriLogWriter::open(&path, small(100, 3)).unwrap();
    for i in 0..20 {
        w.write(Stream::Stdout, format!("{i:03}\n").as_bytes())
            .unwrap();
    }
    w.close().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["c.log", "c.log.1", "c.log.2"]);
    for name in &names {
        let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(len <= 100, "{name} is {len} bytes");
    }
    let lines: Vec<String> = join_partial(&read_all(&path).unwrap())
        .into_iter()
        .map(|(_, t)| String::from_utf8(t).unwrap())
        .collect();
    // Three files of two records each: the last six lines, in order.
    assert_eq!(lines, vec!["014", "015", "016", "017", "018", "019"]);
    assert_eq!(
        texts(&read_records(&rotated_path(&path, 2)).unwrap())[0].2,
        "014"
    );
}

#[test]
fn one_file_in_total_means_rotation_starts_the_file_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, small(100, 1)).unwrap();
    for i in 0..5 {
        w.write(Stream::Stdout, format!("{i:03}\n").as_bytes())
            .unwrap();
    }
    w.close().unwrap();
    assert!(!rotated_path(&path, 1).exists());
    let recs = read_all(&path).unwrap();
    assert_eq!(texts(&recs).last().unwrap().2, "004");
    assert!(recs.len() <= 2);
}

#[test]
fn zero_max_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = CriLogWriter::open(dir.path().join("c.log"), small(100, 0)).unwrap_err();
    assert!(matches!(err, LogError::InvalidRotation { .. }), "{err}");
}

#[test]
fn no_record_is_split_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, small(1000, 50)).unwrap();
    let mut sent = Vec::new();
    for i in 0..200 {
        let line = format!("line {i} {}", "z".repeat(i % 37));
        // One write with many lines, some of them larger than the room left.
        w.write(Stream::Stdout, format!("{line}\n").as_bytes())
            .unwrap();
        sent.push(line);
    }
    w.close().unwrap();
    let mut files = vec![path.clone()];
    let mut n = 1;
    while rotated_path(&path, n).exists() {
        files.push(rotated_path(&path, n));
        n += 1;
    }
    assert!(files.len() > 5);
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        assert!(raw.len() <= 1000);
        assert_eq!(raw.last(), Some(&b'\n'), "{}", f.display());
        let lines = raw.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        for l in lines {
            assert!(parse_record(l).is_some(), "{}", String::from_utf8_lossy(l));
        }
    }
    let got: Vec<String> = join_partial(&read_all(&path).unwrap())
        .into_iter()
        .map(|(_, t)| String::from_utf8(t).unwrap())
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn a_batch_of_lines_in_one_write_rotates_between_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, small(200, 10)).unwrap();
    let data: String = (0..30).map(|i| format!("{i:04}\n")).collect();
    w.write(Stream::Stdout, data.as_bytes()).unwrap();
    w.close().unwrap();
    let got: Vec<String> = join_partial(&read_all(&path).unwrap())
        .into_iter()
        .map(|(_, t)| String::from_utf8(t).unwrap())
        .collect();
    let want: Vec<String> = (0..30).map(|i| format!("{i:04}")).collect();
    assert_eq!(got, want);
}

#[test]
fn write_then_read_round_trips_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    let lines: Vec<(Stream, Vec<u8>)> = vec![
        (Stream::Stdout, b"plain".to_vec()),
        (Stream::Stderr, b"  spaces  and\ttabs ".to_vec()),
        (Stream::Stdout, Vec::new()),
        (Stream::Stdout, b"crlf\r".to_vec()),
        (Stream::Stderr, vec![0, 1, 2, 0xfe, 0xff]),
        (Stream::Stdout, vec![b'q'; 3 * MAX_LINE_SIZE + 7]),
        (
            Stream::Stdout,
            b"2026-01-01T00:00:00Z stdout F fake".to_vec(),
        ),
    ];
    for (s, l) in &lines {
        let mut data = l.clone();
        data.push(b'\n');
        w.write(*s, &data).unwrap();
    }
    w.close().unwrap();
    let recs = read_all(&path).unwrap();
    assert!(recs
        .iter()
        .all(|r| r.time.len() == 30 && r.time.ends_with('Z')));
    assert_eq!(join_partial(&recs), lines);
}

#[test]
fn reading_tolerates_a_truncated_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    std::fs::write(
        &path,
        b"2026-11-26T17:05:03.000000001Z stdout F one\n2026-11-26T17:05:03.0000",
    )
    .unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![(Stream::Stdout, false, "one".to_string())]
    );
}

#[test]
fn malformed_lines_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    std::fs::write(
        &path,
        b"garbage\n\nT stdin F x\nT stdout X x\nT stdout F\nT stderr P:F y\n",
    )
    .unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stdout, false, String::new()),
            (Stream::Stderr, true, "y".to_string())
        ]
    );
}

#[test]
fn reopening_after_a_torn_write_starts_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    std::fs::write(&path, b"2026-11-26T17:05:03.000000001Z stdout F to").unwrap();
    let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.write(Stream::Stdout, b"after\n").unwrap();
    w.close().unwrap();
    let recs = read_records(&path).unwrap();
    assert_eq!(
        texts(&recs),
        vec![
            (Stream::Stdout, false, "to".to_string()),
            (Stream::Stdout, false, "after".to_string())
        ]
    );
}

#[test]
fn reopening_appends_and_counts_the_existing_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut w = CriLogWriter::open(&path, small(60, 2)).unwrap();
    w.write(Stream::Stdout, b"first\n").unwrap();
    w.close().unwrap();
    let mut w = CriLogWriter::open(&path, small(60, 2)).unwrap();
    w.write(Stream::Stdout, b"second\n").unwrap();
    w.close().unwrap();
    assert_eq!(
        texts(&read_records(&rotated_path(&path, 1)).unwrap()),
        vec![(Stream::Stdout, false, "first".to_string())]
    );
    assert_eq!(
        texts(&read_records(&path).unwrap()),
        vec![(Stream::Stdout, false, "second".to_string())]
    );
}

#[test]
fn the_log_file_is_created_with_mode_0640_at_most() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
    w.close().unwrap();
    // The umask may take bits away, never add them: other users never read a log.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777 & !0o640, 0, "{mode:o}");
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
}

#[test]
fn read_all_follows_rotated_files_across_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let rec = |t: &str| format!("2026-11-26T17:05:03.000000001Z stdout F {t}\n");
    std::fs::write(rotated_path(&path, 3), rec("oldest")).unwrap();
    std::fs::write(rotated_path(&path, 1), rec("older")).unwrap();
    std::fs::write(&path, rec("now")).unwrap();
    std::fs::write(dir.path().join("c.log.bak"), rec("ignored")).unwrap();
    let got: Vec<String> = texts(&read_all(&path).unwrap())
        .into_iter()
        .map(|t| t.2)
        .collect();
    assert_eq!(got, vec!["oldest", "older", "now"]);
}

#[test]
fn read_all_of_a_missing_log_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.log");
    let err = read_all(&path).unwrap_err();
    assert!(err.to_string().contains("none.log"), "{err}");
}

#[test]
fn join_partial_completes_interleaved_partial_runs_per_stream() {
    let r = |stream, partial, text: &str| LogRecord {
        time: "t".into(),
        stream,
        partial,
        text: text.as_bytes().to_vec(),
    };
    let recs = vec![
        r(Stream::Stdout, true, "a1"),
        r(Stream::Stderr, true, "b1"),
        r(Stream::Stdout, false, "a2"),
        r(Stream::Stderr, true, "b2"),
        r(Stream::Stdout, true, "tail"),
    ];
    assert_eq!(
        join_partial(&recs),
        vec![
            (Stream::Stdout, b"a1a2".to_vec()),
            (Stream::Stderr, b"b1b2".to_vec()),
            (Stream::Stdout, b"tail".to_vec()),
        ]
    );
}
