//! Appending a container's output to its CRI log file, rotating by size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::record::{LogError, LogRotation, Stream, MAX_LINE_SIZE};
use crate::time::format_rfc3339_nano;

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
