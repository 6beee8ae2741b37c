//! Reading CRI log files back: records, rotated files in order, partial lines joined.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::record::{LogError, LogRecord, Stream};

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

pub fn list_rotated(current: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
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
