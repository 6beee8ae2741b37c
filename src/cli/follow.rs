//! Following a container's log in the foreground, as `docker run` attaches.

use std::path::PathBuf;

use layerlet::runtime::logs::Stream;

/// Streams what a container writes to its log onto our stdout and stderr, as `docker run`
/// attaches: reads the CRI file from where it stopped last time.
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    pub done: bool,
}

impl LogFollower {
    pub fn new(path: PathBuf) -> Self {
        LogFollower {
            path,
            offset: 0,
            pending: Vec::new(),
            done: false,
        }
    }

    /// Prints what was written since the last pump.
    pub fn pump(&mut self) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut chunk = Vec::new();
        if let Ok(n) = file.read_to_end(&mut chunk) {
            self.offset += n as u64;
        }
        self.pending.extend_from_slice(&chunk);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(record) = layerlet::runtime::logs::parse_record(&line[..line.len() - 1]) {
                let newline: &[u8] = if record.partial { b"" } else { b"\n" };
                let _ = match record.stream {
                    Stream::Stdout => {
                        std::io::stdout().write_all(&[record.text.as_slice(), newline].concat())
                    }
                    Stream::Stderr => {
                        std::io::stderr().write_all(&[record.text.as_slice(), newline].concat())
                    }
                };
            }
        }
        let _ = std::io::stdout().flush();
    }
}
