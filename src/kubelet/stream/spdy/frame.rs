//! SPDY/3.1 frames on the wire: an 8-byte head (control bit, version 3 and type, or a
//! stream ID; flags; 24-bit length), then the body. Header blocks stay compressed here;
//! [`super::headers`] owns the connection's compression contexts.

use bytes::{BufMut, Bytes};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW: u32 = 7;
/// RST_STREAM status codes used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;
pub const FLOW_CONTROL_ERROR: u32 = 7;
pub const FRAME_TOO_LARGE: u32 = 11;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("SPDY frame of type {kind} has a short body ({len} bytes)")]
    Short { kind: u16, len: usize },
    #[error("SPDY frame of {0} bytes is over the limit")]
    TooLarge(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream: u32,
        fin: bool,
        unidirectional: bool,
        block: Bytes,
    },
    SynReply {
        stream: u32,
        fin: bool,
        block: Bytes,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Settings {
        entries: Vec<(u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        block: Bytes,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// A control frame type this server ignores (NOOP, CREDENTIAL, ...).
    Other {
        kind: u16,
    },
}

/// The parsed 8-byte head: (control type or None for data, stream ID of data, flags, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub control: Option<u16>,
    pub stream: u32,
    pub flags: u8,
    pub length: usize,
}

pub fn parse_head(h: &[u8; 8]) -> Result<Head, FrameError> {
    let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let flags = h[4];
    let length = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    if first & 0x8000_0000 != 0 {
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        Ok(Head {
            control: Some((first & 0xffff) as u16),
            stream: 0,
            flags,
            length,
        })
    } else {
        Ok(Head {
            control: None,
            stream: first & 0x7fff_ffff,
            flags,
            length,
        })
    }
}

fn u31(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The frame of `head` with `body` (exactly `head.length` bytes).
pub fn decode(head: Head, body: Bytes) -> Result<Frame, FrameError> {
    let fin = head.flags & FLAG_FIN != 0;
    let Some(kind) = head.control else {
        return Ok(Frame::Data {
            stream: head.stream,
            fin,
            data: body,
        });
    };
    let need = |n: usize| {
        if body.len() < n {
            Err(FrameError::Short {
                kind,
                len: body.len(),
            })
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        1 => {
            need(10)?;
            Frame::SynStream {
                stream: u31(&body),
                fin,
                unidirectional: head.flags & FLAG_UNIDIRECTIONAL != 0,
                block: body.slice(10..),
            }
        }
        2 => {
            need(4)?;
            Frame::SynReply {
                stream: u31(&body),
                fin,
                block: body.slice(4..),
            }
        }
        3 => {
            need(8)?;
            Frame::RstStream {
                stream: u31(&body),
                status: u32_at(&body[4..]),
            }
        }
        4 => {
            need(4)?;
            let count = u32_at(&body) as usize;
            need(4 + count.saturating_mul(8))?;
            let entries = (0..count)
                .map(|i| {
                    let e = &body[4 + i * 8..];
                    (u32_at(e) & 0x00ff_ffff, u32_at(&e[4..]))
                })
                .collect();
            Frame::Settings { entries }
        }
        6 => {
            need(4)?;
            Frame::Ping { id: u32_at(&body) }
        }
        7 => {
            need(8)?;
            Frame::GoAway {
                last_good: u31(&body),
                status: u32_at(&body[4..]),
            }
        }
        8 => {
            need(4)?;
            Frame::Headers {
                stream: u31(&body),
                fin,
                block: body.slice(4..),
            }
        }
        9 => {
            need(8)?;
            Frame::WindowUpdate {
                stream: u31(&body),
                delta: u31(&body[4..]),
            }
        }
        other => Frame::Other { kind: other },
    })
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    out.put_uint(body.len() as u64, 3);
    out.extend_from_slice(body);
}

/// Appends the wire form of `frame` to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let fin = |f: bool| if f { FLAG_FIN } else { 0 };
    match frame {
        Frame::Data {
            stream,
            fin: f,
            data,
        } => {
            out.put_u32(stream & 0x7fff_ffff);
            out.put_u8(fin(*f));
            out.put_uint(data.len() as u64, 3);
            out.extend_from_slice(data);
        }
        Frame::SynStream {
            stream,
            fin: f,
            unidirectional,
            block,
        } => {
            let mut body = Vec::with_capacity(10 + block.len());
            body.put_u32(*stream);
            body.put_u32(0);
            body.put_u16(0);
            body.extend_from_slice(block);
            let uni = if *unidirectional {
                FLAG_UNIDIRECTIONAL
            } else {
                0
            };
            control(out, 1, fin(*f) | uni, &body);
        }
        Frame::SynReply {
            stream,
            fin: f,
            block,
        } => {
            let mut body = Vec::with_capacity(4 + block.len());
            body.put_u32(*stream);
            body.extend_from_slice(block);
            control(out, 2, fin(*f), &body);
        }
        Frame::RstStream { stream, status } => {
            let mut body = Vec::with_capacity(8);
            body.put_u32(*stream);
            body.put_u32(*status);
            control(out, 3, 0, &body);
        }
        Frame::Settings { entries } => {
            let mut body = Vec::with_capacity(4 + entries.len() * 8);
            body.put_u32(entries.len() as u32);
            for (id, value) in entries {
                body.put_u32(id & 0x00ff_ffff);
                body.put_u32(*value);
            }
            control(out, 4, 0, &body);
        }
        Frame::Ping { id } => control(out, 6, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            let mut body = Vec::with_capacity(8);
            body.put_u32(*last_good);
            body.put_u32(*status);
            control(out, 7, 0, &body);
        }
        Frame::Headers {
            stream,
            fin: f,
            block,
        } => {
            let mut body = Vec::with_capacity(4 + block.len());
            body.put_u32(*stream);
            body.extend_from_slice(block);
            control(out, 8, fin(*f), &body);
        }
        Frame::WindowUpdate { stream, delta } => {
            let mut body = Vec::with_capacity(8);
            body.put_u32(*stream);
            body.put_u32(*delta);
            control(out, 9, 0, &body);
        }
        Frame::Other { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Frame {
        let mut wire = Vec::new();
        encode(&frame, &mut wire);
        let head = parse_head(wire[..8].try_into().unwrap()).unwrap();
        assert_eq!(head.length, wire.len() - 8);
        decode(head, Bytes::copy_from_slice(&wire[8..])).unwrap()
    }

    #[test]
    fn every_frame_this_server_sends_reads_back_the_same() {
        for f in [
            Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::SynStream {
                stream: 1,
                fin: false,
                unidirectional: true,
                block: Bytes::from_static(b"x"),
            },
            Frame::SynReply {
                stream: 5,
                fin: false,
                block: Bytes::from_static(b"abc"),
            },
            Frame::RstStream {
                stream: 7,
                status: CANCEL,
            },
            Frame::Settings {
                entries: vec![(SETTINGS_INITIAL_WINDOW, 65536)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good: 9,
                status: 0,
            },
            Frame::Headers {
                stream: 1,
                fin: true,
                block: Bytes::new(),
            },
            Frame::WindowUpdate {
                stream: 1,
                delta: 4096,
            },
        ] {
            assert_eq!(round_trip(f.clone()), f);
        }
    }

    #[test]
    fn a_data_frame_head_is_its_stream_id_flags_and_length() {
        let mut wire = Vec::new();
        encode(
            &Frame::Data {
                stream: 0x0102_0304,
                fin: true,
                data: Bytes::from_static(b"ab"),
            },
            &mut wire,
        );
        assert_eq!(wire, [0x01, 0x02, 0x03, 0x04, 0x01, 0, 0, 2, b'a', b'b']);
        let mut wire = Vec::new();
        encode(&Frame::Ping { id: 1 }, &mut wire);
        assert_eq!(wire, [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
    }

    #[test]
    fn other_versions_and_short_bodies_are_errors() {
        assert_eq!(
            parse_head(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]),
            Err(FrameError::Version(2))
        );
        let head = parse_head(&[0x80, 0x03, 0, 3, 0, 0, 0, 2]).unwrap();
        assert!(matches!(
            decode(head, Bytes::from_static(b"ab")),
            Err(FrameError::Short { kind: 3, .. })
        ));
    }
}
