//! SPDY/3 header blocks: name/value pairs (32-bit counts and lengths, names lowercase,
//! several values NUL-separated), zlib-compressed with the dictionary the SPDY/3
//! specification defines. One compression context per direction lives as long as the
//! connection: every block continues the stream of the ones before it (sync-flushed).

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest uncompressed header block accepted (a header-size limit, as for HTTP).
pub const MAX_BLOCK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("SPDY header block does not decompress: {0}")]
    Inflate(String),
    #[error("SPDY header block is over {MAX_BLOCK} bytes")]
    TooLarge,
    #[error("SPDY header block is malformed")]
    Malformed,
}

/// The words of the SPDY/3 dictionary, each stored as a 32-bit length and the word.
const WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes and phrases, dates, common values, as one string.
const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, ",
    "Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

pub type Headers = Vec<(String, String)>;

/// The first value of `name` (names compare lowercase).
pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

fn serialize(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn deserialize(block: &[u8]) -> Result<Headers, HeaderError> {
    let mut rest = block;
    let mut take = |n: usize| -> Result<&[u8], HeaderError> {
        if rest.len() < n {
            return Err(HeaderError::Malformed);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let len = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = len(take(4)?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let n = len(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).into_owned();
        let n = len(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// Compresses the blocks one side sends.
pub struct Deflater {
    z: Compress,
    primed: bool,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater {
            z: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Deflater {
    pub fn block(&mut self, headers: &Headers) -> Vec<u8> {
        if !self.primed {
            // Only fails on a stream already started, which this one is not.
            let _ = self.z.set_dictionary(dictionary());
            self.primed = true;
        }
        let input = serialize(headers);
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            out.reserve(256);
            let before = self.z.total_in();
            if self
                .z
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            consumed += (self.z.total_in() - before) as usize;
            // Done once all input is in and the flush had room to finish.
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

/// Decompresses the blocks the other side sends.
pub struct Inflater {
    z: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            z: Decompress::new(true),
        }
    }
}

impl Inflater {
    pub fn block(&mut self, compressed: &[u8]) -> Result<Headers, HeaderError> {
        let mut out = Vec::with_capacity(1024);
        let mut consumed = 0;
        loop {
            if out.len() >= MAX_BLOCK {
                return Err(HeaderError::TooLarge);
            }
            out.reserve(4096.min(MAX_BLOCK + 1 - out.len()));
            let before = self.z.total_in();
            let status =
                self.z
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.z.total_in() - before) as usize;
            match status {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    if consumed >= compressed.len() && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| HeaderError::Inflate(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError::Inflate(e.to_string())),
            }
        }
        if out.len() > MAX_BLOCK {
            return Err(HeaderError::TooLarge);
        }
        deserialize(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_one_spdy_3_defines() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib's Adler-32 of the specification's dictionary.
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in d {
            a = (a + byte as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_through_one_context_per_direction() {
        let mut tx = Deflater::default();
        let mut rx = Inflater::default();
        for n in 0..5 {
            let headers: Headers = vec![
                ("streamtype".into(), "stdout".into()),
                ("port".into(), format!("80{n}")),
                ("requestid".into(), n.to_string()),
            ];
            let block = tx.block(&headers);
            assert_eq!(rx.block(&block).unwrap(), headers);
        }
    }

    #[test]
    fn a_block_from_another_zlib_with_the_dictionary_decodes() {
        // What a peer's zlib makes: a fresh stream primed with the dictionary.
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary()).unwrap();
        let mut block = Vec::with_capacity(4096);
        let headers: Headers = vec![("streamtype".into(), "error".into())];
        z.compress_vec(&serialize(&headers), &mut block, FlushCompress::Sync)
            .unwrap();
        let mut rx = Inflater::default();
        assert_eq!(rx.block(&block).unwrap(), headers);
        assert_eq!(get(&headers, "StreamType"), Some("error"));
    }

    #[test]
    fn garbage_and_oversized_blocks_are_refused() {
        let mut rx = Inflater::default();
        assert!(rx.block(b"not zlib at all").is_err());
        let huge: Headers = vec![("x".into(), "y".repeat(MAX_BLOCK + 10))];
        let block = Deflater::default().block(&huge);
        assert_eq!(
            Inflater::default().block(&block),
            Err(HeaderError::TooLarge)
        );
    }
}
