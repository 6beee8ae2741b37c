//! Container logs in the CRI format that kubelet and `kubectl logs` read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <text>\n`, one record per line.
//!
//! A line longer than [`MAX_LINE_SIZE`] (containerd's default) is cut into `P` (partial)
//! records followed by one `F` (full) record, so a reader never needs unbounded memory per
//! record. The file rotates by size (`name.log` -> `name.log.1` -> ...) and a record is never
//! split across two files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest text of one record; longer lines become `P` records (containerd's
/// `max_container_log_line_size` default).
pub const MAX_LINE_SIZE: usize = 16 * 1024;
/// Default size at which `name.log` rotates (kubelet's `containerLogMaxSize`).
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of files kept, the current one included (kubelet's `containerLogMaxFiles`).
pub const DEFAULT_MAX_FILES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening log file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing log file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rotating log file {path}: {op} {target}: {source}")]
    Rotate {
        path: PathBuf,
        op: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading log file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("log file {path}: max_files must be at least 1 (the current file)")]
    InvalidRotation { path: PathBuf },
}

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Stream> {
        match s {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Size-based rotation: `max_bytes` per file, `max_files` files in total (current included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    pub max_bytes: u64,
    pub max_files: usize,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub time: String,
    pub stream: Stream,
    pub partial: bool,
    /// The record's text, without the terminating newline.
    pub text: Vec<u8>,
}

/// Appends a container's output to a CRI log file, rotating it by size.
///
/// Incomplete lines are buffered per stream so that stdout and stderr chunks interleave
/// without mixing their text; call [`CriLogWriter::close`] (or `flush_partial`) at EOF so a
/// last line without a newline is not lost.
#[derive(Debug)]
pub struct CriLogWriter {
    path: PathBuf,
    rotation: LogRotation,
    file: File,
    size: u64,
    /// Incomplete trailing line of stdout and stderr.
    pending: [Vec<u8>; 2],
    closed: bool,
}

impl CriLogWriter {
    pub fn open(path: impl Into<PathBuf>, rotation: LogRotation) -> Result<Self, LogError> {
        let path = path.into();
        if rotation.max_files == 0 {
            return Err(LogError::InvalidRotation { path });
        }
        let (file, size) = open_log(&path)?;
        let mut writer = CriLogWriter {
            path,
            rotation,
            file,
            size,
            pending: [Vec::new(), Vec::new()],
            closed: false,
        };
        writer.terminate_torn_record()?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a chunk of a stream's output, timestamped now.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogError> {
        self.write_at(stream, data, SystemTime::now())
    }

    /// Writes a chunk of a stream's output with the time it was read (the monitor knows it
    /// better than the moment the write happens).
    pub fn write_at(
        &mut self,
        stream: Stream,
        data: &[u8],
        time: SystemTime,
    ) -> Result<(), LogError> {
        let ts = format_rfc3339_nano(time);
        let mut batch = Batch::default();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(nl);
            rest = &after[1..];
            let mut text = std::mem::take(&mut self.pending[stream.index()]);
            text.extend_from_slice(line);
            self.emit_line(&mut batch, &ts, stream, &text)?;
        }
        let pending = &mut self.pending[stream.index()];
        pending.extend_from_slice(rest);
        // A line that keeps growing without a newline is cut now, not held in memory.
        if pending.len() > MAX_LINE_SIZE {
            // Keep a tail of 1..=MAX_LINE_SIZE bytes: a line of exactly that size must still
            // end in one F record, not a P plus an empty F.
            let cut = (pending.len() - 1) / MAX_LINE_SIZE * MAX_LINE_SIZE;
            let tail = pending.split_off(cut);
            let head = std::mem::replace(pending, tail);
            for chunk in head.chunks(MAX_LINE_SIZE) {
                self.push_record(&mut batch, &ts, stream, true, chunk)?;
            }
        }
        self.write_batch(&mut batch)
    }

    /// Emits any buffered incomplete line of both streams as `P` records (at EOF, or before
    /// the writer goes away); the rest of such a line, if it ever comes, starts a new record.
    pub fn flush_partial(&mut self) -> Result<(), LogError> {
        let ts = format_rfc3339_nano(SystemTime::now());
        let mut batch = Batch::default();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let text = std::mem::take(&mut self.pending[stream.index()]);
            for chunk in text.chunks(MAX_LINE_SIZE) {
                self.push_record(&mut batch, &ts, stream, true, chunk)?;
            }
        }
        self.write_batch(&mut batch)
    }

    /// Flushes incomplete lines as `P` records and closes the file.
    pub fn close(mut self) -> Result<(), LogError> {
        self.closed = true;
        self.flush_partial()
    }

    /// A complete line: `P` records for each full MAX_LINE_SIZE chunk but the last, then `F`.
    fn emit_line(
        &mut self,
        batch: &mut Batch,
        ts: &str,
        stream: Stream,
        text: &[u8],
    ) -> Result<(), LogError> {
        let mut rest = text;
        while rest.len() > MAX_LINE_SIZE {
            let (chunk, after) = rest.split_at(MAX_LINE_SIZE);
            self.push_record(batch, ts, stream, true, chunk)?;
            rest = after;
        }
        self.push_record(batch, ts, stream, false, rest)
    }

    /// Adds one record to the batch, first writing out the batch and rotating when the record
    /// would push the file past max_bytes. A record larger than max_bytes on its own goes
    /// whole into an empty file: records are never split.
    fn push_record(
        &mut self,
        batch: &mut Batch,
        ts: &str,
        stream: Stream,
        partial: bool,
        text: &[u8],
    ) -> Result<(), LogError> {
        let record = format_record(ts, stream, partial, text);
        let record_len = record.len() as u64;
        let file_len = self.size + batch.buf.len() as u64;
        if file_len > 0 && file_len + record_len > self.rotation.max_bytes {
            self.write_batch(batch)?;
            self.rotate()?;
        }
        batch.buf.extend_from_slice(&record);
        Ok(())
    }

    /// One write(2) per batch: a reader sees whole records, and O_APPEND keeps them in order.
    fn write_batch(&mut self, batch: &mut Batch) -> Result<(), LogError> {
        if batch.buf.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(&batch.buf);
        match res {
            Ok(()) => {
                self.size += batch.buf.len() as u64;
                batch.buf.clear();
                Ok(())
            }
            Err(source) => {
                // Part of the batch may be on disk: trust the file, not our count.
                if let Ok(meta) = self.file.metadata() {
                    self.size = meta.len();
                }
                batch.buf.clear();
                Err(LogError::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// `name.log.(n-1)` is dropped, each `name.log.i` becomes `name.log.(i+1)`, `name.log`
    /// becomes `name.log.1` and a new empty `name.log` is opened.
    fn rotate(&mut self) -> Result<(), LogError> {
        let keep = self.rotation.max_files - 1;
        // Drop the oldest, and any left by an earlier, larger max_files.
        let mut i = keep.max(1);
        loop {
            let old = rotated_path(&self.path, i);
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && i > keep => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(self.rotate_err("removing", old, source)),
            }
            i += 1;
        }
        if keep == 0 {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(self.rotate_err("removing", self.path.clone(), source)),
            }
        } else {
            for i in (1..keep).rev() {
                let from = rotated_path(&self.path, i);
                let to = rotated_path(&self.path, i + 1);
                match std::fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(self.rotate_err("renaming to", to, source)),
                }
            }
            let to = rotated_path(&self.path, 1);
            if let Err(source) = std::fs::rename(&self.path, &to) {
                if source.kind() != io::ErrorKind::NotFound {
                    return Err(self.rotate_err("renaming to", to, source));
                }
            }
        }
        let (file, size) = open_log(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    fn rotate_err(&self, op: &'static str, target: PathBuf, source: io::Error) -> LogError {
        LogError::Rotate {
            path: self.path.clone(),
            op,
            target,
            source,
        }
    }

    /// A writer killed in the middle of a record leaves a line without its newline; end it so
    /// the next record starts on a line of its own.
    fn terminate_torn_record(&mut self) -> Result<(), LogError> {
        if self.size == 0 {
            return Ok(());
        }
        let mut last = [0u8; 1];
        self.file
            .read_exact_at(&mut last, self.size - 1)
            .map_err(|source| LogError::Read {
                path: self.path.clone(),
                source,
            })?;
        if last[0] != b'\n' {
            let mut batch = Batch {
                buf: b"\n".to_vec(),
            };
            self.write_batch(&mut batch)?;
        }
        Ok(())
    }
}

impl Drop for CriLogWriter {
    fn drop(&mut self) {
        // Best effort: a caller that cares about errors uses close().
        if !self.closed {
            let _ = self.flush_partial();
        }
    }
}

#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
}

fn open_log(path: &Path) -> Result<(File, u64), LogError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let size = file
        .metadata()
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    Ok((file, size))
}

/// `name.log` -> `name.log.<n>`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn format_record(ts: &str, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(ts.len() + text.len() + 12);
    rec.extend_from_slice(ts.as_bytes());
    rec.push(b' ');
    rec.extend_from_slice(stream.as_str().as_bytes());
    rec.extend_from_slice(if partial { b" P " } else { b" F " });
    rec.extend_from_slice(text);
    rec.push(b'\n');
    rec
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

/// Parses one record line (without its newline). `None` for a line that is not a record.
pub fn parse_record(line: &[u8]) -> Option<LogRecord> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = parts.next().filter(|t| !t.is_empty())?;
    let stream = Stream::parse(parts.next()?)?;
    let tags = parts.next()?;
    // kubelet reads tags as a ':' separated list in which P marks a partial record.
    let mut partial = false;
    for tag in tags.split(|&b| b == b':') {
        match tag {
            b"P" => partial = true,
            b"F" => {}
            _ => return None,
        }
    }
    // A record with empty text may come without the space before it.
    let text = parts.next().unwrap_or(b"");
    Some(LogRecord {
        time: String::from_utf8(time.to_vec()).ok()?,
        stream,
        partial,
        text: text.to_vec(),
    })
}

/// Reads every record of one log file. A last line without its newline is a record still
/// being written (or torn by a crash) and is left out; a malformed line is skipped with a
/// warning, as kubelet does, so one bad line never hides the rest of a log.
pub fn read_records(path: &Path) -> Result<Vec<LogRecord>, LogError> {
    let file = File::open(path).map_err(|source| LogError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| LogError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        number += 1;
        line.pop();
        match parse_record(&line) {
            Some(rec) => records.push(rec),
            None => tracing::warn!(
                path = %path.display(),
                line = number,
                "skipping a line that is not a CRI log record"
            ),
        }
    }
    Ok(records)
}

/// Reads a container's whole log: rotated files oldest first (`name.log.N` ... `name.log.1`),
/// then the current file. Rotated files are found by listing the directory, so a gap left by
/// a crash during rotation loses nothing; files that vanish under a concurrent rotation are
/// skipped.
pub fn read_all(current: &Path) -> Result<Vec<LogRecord>, LogError> {
    let mut rotated = list_rotated(current)?;
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut records = Vec::new();
    for (_, path) in &rotated {
        match read_records(path) {
            Ok(mut recs) => records.append(&mut recs),
            Err(LogError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match read_records(current) {
        Ok(mut recs) => records.append(&mut recs),
        // Between a rotation's rename and the new file's creation only rotated files exist.
        Err(LogError::Read { source, .. })
            if source.kind() == io::ErrorKind::NotFound && !rotated.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(records)
}

fn list_rotated(current: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let read_err = |path: &Path, source| LogError::Read {
        path: path.to_path_buf(),
        source,
    };
    let Some(name) = current.file_name() else {
        return Err(read_err(
            current,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        ));
    };
    let dir = match current.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => return Err(read_err(dir, source)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| read_err(dir, source))?;
        let file_name = entry.file_name();
        let Some(suffix) = file_name.as_encoded_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        if suffix.is_empty() || !suffix.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Some(n) = std::str::from_utf8(suffix)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((n, dir.join(&file_name)));
    }
    Ok(found)
}

/// Merges `P`... `F` runs into whole lines per stream, in the order lines completed. A run
/// of `P` records that never got its `F` (output that ended without a newline) is still a
/// line; such lines come last, in the order their first fragments appeared.
pub fn join_partial(records: &[LogRecord]) -> Vec<(Stream, Vec<u8>)> {
    // Each stream's open run: (index of its first record, text so far).
    let mut open: [Option<(usize, Vec<u8>)>; 2] = [None, None];
    let mut out = Vec::new();
    for (n, rec) in records.iter().enumerate() {
        let run = &mut open[rec.stream.index()];
        let (_, text) = run.get_or_insert_with(|| (n, Vec::new()));
        text.extend_from_slice(&rec.text);
        if !rec.partial {
            if let Some((_, text)) = run.take() {
                out.push((rec.stream, text));
            }
        }
    }
    let mut unfinished: Vec<(usize, Stream, Vec<u8>)> = [Stream::Stdout, Stream::Stderr]
        .into_iter()
        .filter_map(|s| open[s.index()].take().map(|(first, text)| (first, s, text)))
        .collect();
    unfinished.sort_by_key(|u| u.0);
    out.extend(unfinished.into_iter().map(|(_, s, text)| (s, text)));
    out
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
}
