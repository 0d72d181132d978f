//! Request body decompression for OTLP/HTTP, bounded while it runs.
//!
//! The limit is enforced on the decompressed stream as it is produced, so a
//! small "decompression bomb" can never make us allocate more than about
//! `limit` bytes: we stop reading one byte past the limit and refuse.

use std::io::{self, Read};

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// `Content-Encoding` values we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

impl Compression {
    /// Reads a `Content-Encoding` header value, case-insensitively. `None`
    /// means an encoding we do not know, which HTTP answers with 415.
    pub fn from_header(value: &str) -> Option<Compression> {
        let value = value.trim();
        let known = [
            ("identity", Compression::Identity),
            ("", Compression::Identity),
            ("gzip", Compression::Gzip),
            ("x-gzip", Compression::Gzip),
            ("deflate", Compression::Deflate),
            ("zstd", Compression::Zstd),
        ];
        known
            .into_iter()
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map(|(_, compression)| compression)
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The decompressed body would exceed the limit (HTTP 413).
    #[error("request body exceeds the limit of {limit} bytes after decompression")]
    TooLarge { limit: usize },
    /// The compressed stream is malformed (HTTP 400).
    #[error("invalid compressed body: {0}")]
    Corrupt(String),
}

/// Decompresses `body`, refusing as soon as the output would pass `limit`
/// bytes. Gzip may have several members (concatenated streams); `deflate`
/// is zlib-wrapped (RFC 1950, what most clients send), with a fallback to
/// raw deflate (RFC 1951) for clients that read the name literally.
pub fn decompress(
    compression: Compression,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    match compression {
        Compression::Identity => {
            if body.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        Compression::Gzip => read_bounded(MultiGzDecoder::new(body), "gzip", limit),
        Compression::Deflate => inflate(body, limit),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(body).map_err(|error| corrupt("zstd", &error))?;
            // The frame header declares the window the decoder allocates up
            // front; cap it so a tiny body cannot make us reserve 128 MiB.
            decoder
                .window_log_max(window_log_for(limit))
                .map_err(|error| corrupt("zstd", &error))?;
            read_bounded(decoder, "zstd", limit)
        }
    }
}

fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    if !looks_like_zlib(body) {
        return read_bounded(DeflateDecoder::new(body), "deflate", limit);
    }
    match read_bounded(ZlibDecoder::new(body), "deflate", limit) {
        // A raw deflate stream can start with two bytes that happen to form
        // a valid zlib header; give the raw reading a chance before failing.
        Err(DecompressError::Corrupt(zlib_error)) => {
            read_bounded(DeflateDecoder::new(body), "deflate", limit)
                .map_err(|_| DecompressError::Corrupt(zlib_error))
        }
        other => other,
    }
}

/// RFC 1950 header check: compression method 8 and a header checksum that
/// is a multiple of 31.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && (u16::from(*cmf) * 256 + u16::from(*flg)).is_multiple_of(31)
        }
        _ => false,
    }
}

/// The largest zstd window we let a frame header claim: enough for the
/// limit, but never below 2^23 (8 MiB), because streaming encoders declare
/// their level's window (2^21 at level 3, up to 2^23 at level 19) without
/// knowing the content size; and never above libzstd's default cap of 2^27.
fn window_log_for(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

fn read_bounded(reader: impl Read, what: &str, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut output = Vec::new();
    let allowance = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(allowance)
        .read_to_end(&mut output)
        .map_err(|error| corrupt(what, &error))?;
    if output.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(output)
}

fn corrupt(what: &str, error: &io::Error) -> DecompressError {
    DecompressError::Corrupt(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_header_names() {
        let cases = [
            ("gzip", Some(Compression::Gzip)),
            ("GZIP", Some(Compression::Gzip)),
            ("x-gzip", Some(Compression::Gzip)),
            (" deflate ", Some(Compression::Deflate)),
            ("zstd", Some(Compression::Zstd)),
            ("identity", Some(Compression::Identity)),
            ("", Some(Compression::Identity)),
            ("br", None),
            ("gzip, br", None),
        ];
        for (header, expected) in cases {
            assert_eq!(Compression::from_header(header), expected, "{header:?}");
        }
    }

    #[test]
    fn test_window_log() {
        assert_eq!(window_log_for(0), 23);
        assert_eq!(window_log_for(1 << 20), 23);
        assert_eq!(window_log_for(32 << 20), 25);
        assert_eq!(window_log_for(usize::MAX), 27);
    }
}
