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
//!
//! Memory across requests: every body held is charged to one
//! [`BodyBudget`] shared by all listeners (`--max-inflight-size`), as it
//! arrives (its whole `Content-Length` up front when declared), and the
//! charge is kept until the request is answered. A request that does not
//! fit is refused at once with [`IntakeError::Busy`] (503 + `Retry-After`,
//! gRPC RESOURCE_EXHAUSTED with retry info) rather than queued. The budget
//! counts bytes as received (compressed, for compressed HTTP bodies; the
//! message tonic already read, for gRPC, which it charges before decoding):
//! what one request grows to beyond that is bounded per request by
//! `max_message_bytes`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use ashiato_otlp::{Compression, DecompressError, decompress};
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The delay asked of a client refused for the in-flight budget: bodies
/// in flight are answered within a second or two.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The bytes of request bodies all listeners may hold at once.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// Bytes charged to a [`BodyBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Charge(Vec<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Charges `bytes` more to `charge`, or refuses when they do not fit.
    pub fn charge(&self, charge: &mut Charge, bytes: usize) -> Result<(), IntakeError> {
        if bytes == 0 {
            return Ok(());
        }
        let permits = u32::try_from(bytes).map_err(|_| IntakeError::Busy)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| {
                tracing::warn!(
                    bytes,
                    "request refused: request bodies in flight are at the limit"
                );
                IntakeError::Busy
            })?;
        charge.0.push(permit);
        Ok(())
    }
}

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
    /// The bodies in flight across all listeners are at `--max-inflight-size`.
    #[error("server is busy with other requests, retry after {}s", BUSY_RETRY.as_secs())]
    Busy,
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

/// Reads at most `limit` bytes of body, charging them to `budget` (the
/// declared length up front, the rest as it arrives); a declared or actual
/// larger body is refused without buffering it. Keep the [`Charge`] until
/// the request is answered.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, Charge), IntakeError> {
    let declared_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(IntakeError::TooLarge { limit });
    }
    let mut charge = Charge::default();
    let mut charged = declared_length.map_or(0, |length| length as usize);
    budget.charge(&mut charge, charged)?;
    let mut body = Limited::new(body, limit);
    // chunks are kept as they came, so a body in one chunk is not copied
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(IntakeError::TooLarge { limit });
            }
            Err(error) => return Err(IntakeError::BodyRead(error.to_string())),
        };
        if let Ok(data) = frame.into_data() {
            received += data.len();
            if received > charged {
                budget.charge(&mut charge, received - charged)?;
                charged = received;
            }
            chunks.push(data);
        }
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    };
    Ok((body, charge))
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
