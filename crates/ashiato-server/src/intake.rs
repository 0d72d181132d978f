//! The intake path every protocol shares, from request bytes to decoded
//! items: the bounded body read, decompression, and the one rule for when
//! decoding leaves the async workers. What comes after (appending through
//! [`Ingest`](crate::ingest::Ingest) and answering) is in `ingest.rs` and
//! each protocol's module.
//!
//! 1. [`request_compression`]: `Content-Encoding` → gzip, deflate, zstd or
//!    identity (else [`IntakeError::UnsupportedEncoding`]).
//! 2. [`read_body`]: at most `max_message_bytes`, refused early when
//!    `Content-Length` already says more ([`IntakeError::TooLarge`]).
//! 3. [`decode_body`]: decompression capped at the same limit while it
//!    runs (`ashiato_otlp::decompress`; an identity body is decoded in
//!    place, never copied), then the protocol's decoder.
//! 4. [`offload`]: decompression and decoding run on the blocking pool
//!    when the bytes in hand are over [`INLINE_DECODE_LIMIT`], inline
//!    otherwise.
//!
//! OTLP/gRPC enters at step 4: tonic reads, bounds and decompresses the
//! message itself (the same `max_message_bytes`), and its message bytes go
//! through [`offload`] like an HTTP body.

use std::borrow::Cow;

use ashiato_otlp::{Compression, DecompressError, decompress};
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Request bytes above this are decompressed and decoded on the blocking
/// pool, so one big batch cannot stall the async workers: at a few hundred
/// MB/s of decoding, 64 KiB is about the 100 µs an async task should run
/// between awaits. Compared with the size as received (compressed for a
/// compressed HTTP body, the decompressed message on gRPC), because that
/// is known before any work is done.
pub const INLINE_DECODE_LIMIT: usize = 64 * 1024;

/// Why a request's bytes could not be turned into a decoder's input; each
/// protocol maps these to its own status codes.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("unsupported content encoding {0:?}: use gzip, deflate, zstd or identity")]
    UnsupportedEncoding(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("failed to read request body: {0}")]
    BodyRead(String),
    #[error("invalid compressed body: {0}")]
    CorruptCompression(String),
    #[error("decoding task failed")]
    TaskFailed,
}

/// The body's compression from `Content-Encoding`; identity when absent.
pub fn request_compression(headers: &HeaderMap) -> Result<Compression, IntakeError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Compression::Identity);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    Compression::from_header(&text)
        .ok_or_else(|| IntakeError::UnsupportedEncoding(text.into_owned()))
}

/// Reads at most `limit` bytes of body; a declared or actual larger body is
/// refused without buffering it.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, IntakeError> {
    let declared_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(IntakeError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(IntakeError::TooLarge { limit })
        }
        Err(error) => Err(IntakeError::BodyRead(error.to_string())),
    }
}

/// The body decompressed with a cap of `limit` bytes that holds while it
/// runs; an identity body within the limit (as `read_body` left it) is
/// borrowed rather than copied.
pub fn decompressed(
    compression: Compression,
    body: &[u8],
    limit: usize,
) -> Result<Cow<'_, [u8]>, IntakeError> {
    if compression == Compression::Identity && body.len() <= limit {
        return Ok(Cow::Borrowed(body));
    }
    decompress(compression, body, limit)
        .map(Cow::Owned)
        .map_err(|error| match error {
            DecompressError::TooLarge { limit } => IntakeError::TooLarge { limit },
            DecompressError::Corrupt(reason) => IntakeError::CorruptCompression(reason),
        })
}

/// Decompresses `body` and hands the plain bytes to `decode`, both on the
/// blocking pool when the body is large (see [`offload`]).
pub async fn decode_body<T, E>(
    body: Bytes,
    compression: Compression,
    limit: usize,
    decode: impl FnOnce(&[u8]) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<IntakeError> + Send + 'static,
{
    let length = body.len();
    let work = move || decode(&decompressed(compression, &body, limit)?);
    offload(length, work).await?
}

/// Runs `work` inline when `length` (the bytes it is about to decode) is
/// at most [`INLINE_DECODE_LIMIT`], else on the blocking pool.
pub async fn offload<R: Send + 'static>(
    length: usize,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, IntakeError> {
    if length > INLINE_DECODE_LIMIT {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| IntakeError::TaskFailed)
    } else {
        Ok(work())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn test_identity_body_is_borrowed_not_copied() {
        let body = b"spans".as_slice();
        let plain = decompressed(Compression::Identity, body, 16).unwrap();
        assert!(matches!(plain, Cow::Borrowed(bytes) if bytes.as_ptr() == body.as_ptr()));
    }

    #[test]
    fn test_decompression_is_capped_at_the_limit() {
        let body = gzip(&[0u8; 4096]);
        let plain = decompressed(Compression::Gzip, &body, 4096).unwrap();
        assert_eq!(plain.len(), 4096);
        assert!(matches!(
            decompressed(Compression::Gzip, &body, 4095),
            Err(IntakeError::TooLarge { limit: 4095 })
        ));
        assert!(matches!(
            decompressed(Compression::Gzip, b"not gzip", 4096),
            Err(IntakeError::CorruptCompression(_))
        ));
    }

    #[tokio::test]
    async fn test_offload_rule_is_the_bytes_in_hand() {
        let caller = std::thread::current().id();
        let inline = offload(INLINE_DECODE_LIMIT, move || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(inline, caller);
        let offloaded = offload(INLINE_DECODE_LIMIT + 1, move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(offloaded, caller);
    }
}
