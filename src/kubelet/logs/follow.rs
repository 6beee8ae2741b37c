//! Streams a container's log records to a bounded queue on a thread of its own: the
//! rotated files oldest first, then the current one; with `follow`, new records as they
//! are written (a rotation is noticed by the current path's inode changing), until the
//! container stops or the client goes away. A slow client makes the thread wait on the
//! queue, and nothing else.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::timestamp::go_nano;
use super::LogOptions;
use crate::runtime::logs::{list_rotated, parse_record, LogRecord};

/// How often a followed log is looked at when nothing new came.
const POLL: Duration = Duration::from_millis(100);
/// A followed container's state is looked at every this many idle polls.
const RUNNING_EVERY: u32 = 10;
/// Output is sent in pieces of about this size.
const CHUNK: usize = 32 * 1024;

struct Emitter {
    opts: LogOptions,
    written: u64,
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    /// With tailLines: the newest records of the initial read.
    tail: Option<VecDeque<LogRecord>>,
}

impl Emitter {
    /// False once nothing more is to be written (limit reached, client gone).
    fn record(&mut self, rec: LogRecord) -> bool {
        if let Some(tail) = self.tail.as_mut() {
            let keep = self.opts.tail_lines.unwrap_or(0) as usize;
            if keep > 0 {
                if tail.len() == keep {
                    tail.pop_front();
                }
                tail.push_back(rec);
            }
            return true;
        }
        self.write(&rec)
    }

    fn write(&mut self, rec: &LogRecord) -> bool {
        if self
            .opts
            .since
            .as_deref()
            .is_some_and(|s| rec.time.as_str() < s)
        {
            return true;
        }
        let mut line = Vec::with_capacity(rec.text.len() + 40);
        if self.opts.timestamps {
            line.extend_from_slice(go_nano(&rec.time).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&rec.text);
        if !rec.partial {
            line.push(b'\n');
        }
        if let Some(limit) = self.opts.limit_bytes {
            let room = limit.saturating_sub(self.written) as usize;
            if line.len() >= room {
                line.truncate(room);
                self.written += line.len() as u64;
                self.buf.extend_from_slice(&line);
                self.flush();
                return false;
            }
        }
        self.written += line.len() as u64;
        self.buf.extend_from_slice(&line);
        if self.buf.len() >= CHUNK {
            return self.flush();
        }
        true
    }

    /// Ends the tail phase: writes the records kept.
    fn end_tail(&mut self) -> bool {
        if let Some(tail) = self.tail.take() {
            for rec in tail {
                if !self.write(&rec) {
                    return false;
                }
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.tx.is_closed();
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(chunk).is_ok()
    }
}

/// Reads whole records from `reader`; a last line without its newline waits in `partial`.
fn read_records(
    reader: &mut BufReader<File>,
    partial: &mut Vec<u8>,
    emit: &mut Emitter,
) -> Option<bool> {
    let mut any = false;
    loop {
        match reader.read_until(b'\n', partial) {
            Ok(0) => return Some(any),
            Ok(_) if partial.last() == Some(&b'\n') => {
                partial.pop();
                any = true;
                if let Some(rec) = parse_record(partial) {
                    if !emit.record(rec) {
                        return None;
                    }
                }
                partial.clear();
            }
            Ok(_) => return Some(any),
            Err(_) => return Some(any),
        }
    }
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The file written after the one with inode `ino`: the log's files oldest first are the
/// rotated ones by falling number, then the current one. When `ino` is no longer among
/// them (rotated away), the oldest left comes next. None when the listing raced with a
/// rotation (the caller falls back to the current file).
fn next_file(current: &Path, ino: u64) -> Option<(BufReader<File>, u64)> {
    let mut files = list_rotated(current).unwrap_or_default();
    files.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut chain: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
    chain.push(current.to_path_buf());
    let inodes: Vec<Option<u64>> = chain.iter().map(|p| inode(p)).collect();
    let next = match inodes.iter().position(|i| *i == Some(ino)) {
        Some(at) => at + 1,
        None => 0,
    };
    let path = chain.get(next)?;
    let file = File::open(path).ok()?;
    let opened = file.metadata().ok()?.ino();
    // Renamed between the listing and the open: not the file we meant.
    (Some(opened) == inodes[next]).then(|| (BufReader::new(file), opened))
}

/// Streams the log whose current file is `current` into `tx`. `running` tells whether the
/// container still runs (follow ends once it does not and everything is read).
pub fn stream(
    current: PathBuf,
    opts: LogOptions,
    running: impl Fn() -> bool + Send + 'static,
    tx: mpsc::Sender<Bytes>,
) {
    let tail = opts
        .tail_lines
        .map(|n| VecDeque::with_capacity((n as usize).min(4096)));
    let mut emit = Emitter {
        opts,
        written: 0,
        buf: Vec::with_capacity(CHUNK),
        tx,
        tail,
    };
    let _ = std::thread::Builder::new()
        .name("kubelet-logs".into())
        .spawn(move || run(&current, &mut emit, running));
}

fn run(current: &Path, emit: &mut Emitter, running: impl Fn() -> bool) {
    let mut rotated = list_rotated(current).unwrap_or_default();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, path) in rotated {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let mut reader = BufReader::new(file);
        let mut partial = Vec::new();
        if read_records(&mut reader, &mut partial, emit).is_none() {
            return;
        }
    }
    let mut open = File::open(current).ok().map(|f| {
        let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
        (BufReader::new(f), ino)
    });
    let mut partial = Vec::new();
    if let Some((reader, _)) = open.as_mut() {
        if read_records(reader, &mut partial, emit).is_none() {
            return;
        }
    }
    if !emit.end_tail() || !emit.opts.follow {
        return;
    }
    let mut last_look = false;
    let mut idle_polls = 0u32;
    loop {
        let got = match open.as_mut() {
            Some((reader, _)) => match read_records(reader, &mut partial, emit) {
                None => return,
                Some(got) => got,
            },
            None => false,
        };
        if got {
            continue;
        }
        if !emit.flush() || last_look {
            return;
        }
        // Rotated: the old file is read to its end above; go on with the file that came
        // after it, which is a rotated one when the log rotated more than once since.
        let now = inode(current);
        let reading = open.as_ref().map(|(_, ino)| *ino);
        if now.is_some() && now != reading {
            open = reading.and_then(|ino| next_file(current, ino)).or_else(|| {
                File::open(current)
                    .ok()
                    .map(|f| (BufReader::new(f), now.unwrap_or(0)))
            });
            partial.clear();
            continue;
        }
        idle_polls += 1;
        if idle_polls.is_multiple_of(RUNNING_EVERY) && !running() {
            // One more read for what was written just before the end.
            last_look = true;
            continue;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path, opts: LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel::<Bytes>(4);
        let current = dir.join("c.log");
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while let Some(b) = rx.blocking_recv() {
                out.extend_from_slice(&b);
            }
            out
        });
        stream(current, opts, || false, tx);
        String::from_utf8(handle.join().unwrap()).unwrap()
    }

    #[test]
    fn after_several_rotations_the_file_after_the_one_read_comes_next() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("c.log");
        for (name, text) in [
            ("c.log.3", "a"),
            ("c.log.2", "b"),
            ("c.log.1", "c"),
            ("c.log", "d"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let read_next = |ino: u64| {
            let (mut r, _) = next_file(&current, ino).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut r, &mut s).unwrap();
            s
        };
        let ino3 = inode(&dir.path().join("c.log.3")).unwrap();
        let ino1 = inode(&dir.path().join("c.log.1")).unwrap();
        assert_eq!(read_next(ino3), "b");
        assert_eq!(read_next(ino1), "d");
        // A file no longer there was older than every file left.
        assert_eq!(read_next(u64::MAX), "a");
    }

    fn write_logs(dir: &Path) {
        std::fs::write(
            dir.join("c.log.1"),
            "2024-01-01T00:00:01.000000000Z stdout F one\n2024-01-01T00:00:02.500000000Z stderr F two\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("c.log"),
            "2024-01-01T00:00:03.000000000Z stdout P thr\n2024-01-01T00:00:03.100000000Z stdout F ee\n2024-01-01T00:00:04.000000000Z stdout F four\n2024-01-01T00:00:05.000000000Z stdout F torn",
        )
        .unwrap();
    }

    #[test]
    fn rotated_and_current_files_come_in_order_with_partial_records_joined_as_written() {
        let dir = tempfile::tempdir().unwrap();
        write_logs(dir.path());
        assert_eq!(
            collect(dir.path(), LogOptions::default()),
            "one\ntwo\nthree\nfour\n"
        );
    }

    #[test]
    fn tail_since_limit_and_timestamps_apply_as_kubelet_applies_them() {
        let dir = tempfile::tempdir().unwrap();
        write_logs(dir.path());
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(dir.path(), tail), "ee\nfour\n");
        let since = LogOptions {
            since: Some("2024-01-01T00:00:02.000000000Z".into()),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            collect(dir.path(), since),
            "2024-01-01T00:00:02.5Z two\n2024-01-01T00:00:03Z thr2024-01-01T00:00:03.1Z ee\n2024-01-01T00:00:04Z four\n"
        );
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(collect(dir.path(), limit), "one\ntw");
        let none = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(collect(dir.path(), none), "");
    }

    #[test]
    fn a_followed_log_sees_new_records_and_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("c.log");
        std::fs::write(&current, "2024-01-01T00:00:01.000000000Z stdout F a\n").unwrap();
        let (tx, mut rx) = mpsc::channel::<Bytes>(4);
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = alive.clone();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        stream(
            current.clone(),
            opts,
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
            tx,
        );
        let mut got = String::new();
        let mut next = || String::from_utf8(rx.blocking_recv().unwrap().to_vec()).unwrap();
        got.push_str(&next());
        assert_eq!(got, "a\n");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&current)
            .unwrap();
        f.write_all(b"2024-01-01T00:00:02.000000000Z stdout F b\n")
            .unwrap();
        assert_eq!(next(), "b\n");
        std::fs::rename(&current, dir.path().join("c.log.1")).unwrap();
        std::fs::write(&current, "2024-01-01T00:00:03.000000000Z stdout F c\n").unwrap();
        assert_eq!(next(), "c\n");
        alive.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(rx.blocking_recv().is_none());
    }
}
