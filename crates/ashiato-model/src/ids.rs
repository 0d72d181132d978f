//! Trace and span id newtypes with the hex forms used on every wire and API.

use std::fmt;

/// Why a textual or binary id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be {expected} hex digits, got {got} characters")]
    HexLength {
        kind: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("{kind} contains a non-hex character")]
    NotHex { kind: &'static str },
    #[error("{kind} must be {expected} bytes, got {got}")]
    ByteLength {
        kind: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{kind} is all zeros")]
    Zero { kind: &'static str },
}

/// A 128-bit trace id. Never all-zero once constructed through the checked
/// constructors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id. Never all-zero once constructed through the checked
/// constructors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// Checks length and non-zero-ness of raw bytes from a wire format.
    pub fn from_bytes(bytes: &[u8]) -> Result<TraceId, IdError> {
        let array: [u8; 16] = bytes.try_into().map_err(|_| IdError::ByteLength {
            kind: "trace id",
            expected: 16,
            got: bytes.len(),
        })?;
        if array == [0; 16] {
            return Err(IdError::Zero { kind: "trace id" });
        }
        Ok(TraceId(array))
    }

    /// Builds a trace id from its two 64-bit halves (Datadog sends them apart).
    pub fn from_halves(high: u64, low: u64) -> TraceId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(bytes)
    }

    /// Parses 32 hex digits, or 16 hex digits read as a 64-bit id zero-extended
    /// (how Datadog and Zipkin 64-bit ids map into 128-bit space). Case-insensitive.
    pub fn from_hex(text: &str) -> Result<TraceId, IdError> {
        let mut bytes = [0u8; 16];
        match text.len() {
            32 => decode_hex_into("trace id", text, &mut bytes)?,
            16 => decode_hex_into("trace id", text, &mut bytes[8..])?,
            got => {
                return Err(IdError::HexLength {
                    kind: "trace id",
                    expected: "16 or 32",
                    got,
                });
            }
        }
        if bytes == [0; 16] {
            return Err(IdError::Zero { kind: "trace id" });
        }
        Ok(TraceId(bytes))
    }

    /// Lowercase 32-digit hex.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The low 64 bits, the part a 64-bit tracer knows.
    pub fn low_u64(&self) -> u64 {
        let mut low = [0u8; 8];
        low.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(low)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl SpanId {
    /// Checks length and non-zero-ness of raw bytes from a wire format.
    pub fn from_bytes(bytes: &[u8]) -> Result<SpanId, IdError> {
        let array: [u8; 8] = bytes.try_into().map_err(|_| IdError::ByteLength {
            kind: "span id",
            expected: 8,
            got: bytes.len(),
        })?;
        if array == [0; 8] {
            return Err(IdError::Zero { kind: "span id" });
        }
        Ok(SpanId(array))
    }

    /// From a Datadog-style unsigned 64-bit id; `None` for 0 (no span).
    pub fn from_u64(value: u64) -> Option<SpanId> {
        (value != 0).then(|| SpanId(value.to_be_bytes()))
    }

    /// Parses exactly 16 hex digits. Case-insensitive.
    pub fn from_hex(text: &str) -> Result<SpanId, IdError> {
        let mut bytes = [0u8; 8];
        if text.len() != 16 {
            return Err(IdError::HexLength {
                kind: "span id",
                expected: "16",
                got: text.len(),
            });
        }
        decode_hex_into("span id", text, &mut bytes)?;
        if bytes == [0; 8] {
            return Err(IdError::Zero { kind: "span id" });
        }
        Ok(SpanId(bytes))
    }

    /// Lowercase 16-digit hex.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    pub fn as_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

fn decode_hex_into(kind: &'static str, text: &str, out: &mut [u8]) -> Result<(), IdError> {
    let digits = text.as_bytes();
    for (index, byte) in out.iter_mut().enumerate() {
        let high = hex_digit(digits[2 * index]).ok_or(IdError::NotHex { kind })?;
        let low = hex_digit(digits[2 * index + 1]).ok_or(IdError::NotHex { kind })?;
        *byte = (high << 4) | low;
    }
    Ok(())
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    text
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_trace_id_hex_round_trip_and_case() {
        let id = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(id.to_hex(), "5b8efff798038103d269b633813fc60c");
    }

    #[test]
    fn test_short_trace_id_is_zero_extended() {
        let id = TraceId::from_hex("d269b633813fc60c").unwrap();
        assert_eq!(id.to_hex(), "0000000000000000d269b633813fc60c");
        assert_eq!(id.low_u64(), 0xd269b633813fc60c);
    }

    #[test]
    fn test_bad_ids_are_refused() {
        assert!(matches!(
            TraceId::from_hex("abc"),
            Err(IdError::HexLength { .. })
        ));
        assert!(matches!(
            TraceId::from_hex(&"g".repeat(32)),
            Err(IdError::NotHex { .. })
        ));
        assert!(matches!(
            TraceId::from_hex(&"0".repeat(32)),
            Err(IdError::Zero { .. })
        ));
        assert!(matches!(
            TraceId::from_bytes(&[1, 2]),
            Err(IdError::ByteLength { .. })
        ));
        assert!(matches!(
            SpanId::from_bytes(&[0; 8]),
            Err(IdError::Zero { .. })
        ));
        assert!(SpanId::from_hex("00f067aa0ba902b7").is_ok());
        assert!(SpanId::from_hex("é0f067aa0ba902b").is_err());
    }

    #[test]
    fn test_halves_and_u64() {
        let id = TraceId::from_halves(0x1234, 0x5678);
        assert_eq!(id.to_hex(), "00000000000012340000000000005678");
        assert_eq!(SpanId::from_u64(0), None);
        assert_eq!(SpanId::from_u64(42).map(|s| s.as_u64()), Some(42));
    }
}
