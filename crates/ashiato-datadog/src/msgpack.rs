//! A small, lenient MessagePack reader: bytes → a borrowed [`Value`] tree.
//!
//! Markers are classified with `rmp`; payload bytes are read from the slice
//! directly. The reader checks the *structure* only (well-formed, not
//! truncated, bounded depth); what the values mean, and how lenient to be
//! about their types, is up to the trace decoders. Declared lengths are
//! checked against the bytes left before anything is allocated, so a tiny
//! body cannot ask for a huge array.

use rmp::Marker;

/// Deepest nesting accepted. Real trace payloads nest four or five levels
/// (payload → trace → span → meta/links → attributes); the cap only stops
/// hostile inputs from exhausting the stack.
const MAX_DEPTH: usize = 32;

/// One decoded MessagePack value, borrowing strings from the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    /// Any unsigned integer, or a non-negative signed one.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    Float(f64),
    /// `str` or `bin`: Datadog clients use both for strings.
    Str(&'a [u8]),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// Extension types carry nothing Datadog uses; kept as a placeholder.
    Ext,
}

/// Why a body is not well-formed MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    #[error("msgpack body ends early at byte {0}")]
    Truncated(usize),
    #[error("msgpack reserved marker 0xc1 at byte {0}")]
    Reserved(usize),
    #[error("msgpack nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} trailing bytes after the msgpack value")]
    Trailing(usize),
}

/// Decodes exactly one value that spans the whole body.
pub fn parse(body: &[u8]) -> Result<Value<'_>, MsgpackError> {
    let mut reader = Reader { body, pos: 0 };
    let value = reader.value(0)?;
    let left = body.len() - reader.pos;
    if left > 0 {
        return Err(MsgpackError::Trailing(left));
    }
    Ok(value)
}

struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self
            .pos
            .checked_add(count)
            .filter(|end| *end <= self.body.len())
            .ok_or(MsgpackError::Truncated(self.pos))?;
        let bytes = &self.body[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.fixed::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, MsgpackError> {
        Ok(u16::from_be_bytes(self.fixed()?))
    }

    fn u32(&mut self) -> Result<u32, MsgpackError> {
        Ok(u32::from_be_bytes(self.fixed()?))
    }

    fn u64(&mut self) -> Result<u64, MsgpackError> {
        Ok(u64::from_be_bytes(self.fixed()?))
    }

    fn signed(value: i64) -> Value<'a> {
        match u64::try_from(value) {
            Ok(unsigned) => Value::Uint(unsigned),
            Err(_) => Value::Int(value),
        }
    }

    /// A length that must leave at least `min_bytes_each` per element in the
    /// rest of the body.
    fn checked_len(&self, len: usize, min_bytes_each: usize) -> Result<usize, MsgpackError> {
        let left = self.body.len() - self.pos;
        if len.saturating_mul(min_bytes_each) > left {
            return Err(MsgpackError::Truncated(self.body.len()));
        }
        Ok(len)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, MsgpackError> {
        if depth > MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        let at = self.pos;
        let marker = Marker::from_u8(self.u8()?);
        Ok(match marker {
            Marker::FixPos(value) => Value::Uint(u64::from(value)),
            Marker::FixNeg(value) => Value::Int(i64::from(value)),
            Marker::Null => Value::Nil,
            Marker::Reserved => return Err(MsgpackError::Reserved(at)),
            Marker::False => Value::Bool(false),
            Marker::True => Value::Bool(true),
            Marker::U8 => Value::Uint(u64::from(self.u8()?)),
            Marker::U16 => Value::Uint(u64::from(self.u16()?)),
            Marker::U32 => Value::Uint(u64::from(self.u32()?)),
            Marker::U64 => Value::Uint(self.u64()?),
            Marker::I8 => Self::signed(i64::from(self.u8()? as i8)),
            Marker::I16 => Self::signed(i64::from(self.u16()? as i16)),
            Marker::I32 => Self::signed(i64::from(self.u32()? as i32)),
            Marker::I64 => Self::signed(self.u64()? as i64),
            Marker::F32 => Value::Float(f64::from(f32::from_bits(self.u32()?))),
            Marker::F64 => Value::Float(f64::from_bits(self.u64()?)),
            Marker::FixStr(len) => Value::Str(self.take(usize::from(len))?),
            Marker::Str8 | Marker::Bin8 => {
                let len = self.u8()?;
                Value::Str(self.take(usize::from(len))?)
            }
            Marker::Str16 | Marker::Bin16 => {
                let len = self.u16()?;
                Value::Str(self.take(usize::from(len))?)
            }
            Marker::Str32 | Marker::Bin32 => {
                let len = self.u32()? as usize;
                Value::Str(self.take(len)?)
            }
            Marker::FixArray(len) => self.array(usize::from(len), depth)?,
            Marker::Array16 => {
                let len = self.u16()?;
                self.array(usize::from(len), depth)?
            }
            Marker::Array32 => {
                let len = self.u32()? as usize;
                self.array(len, depth)?
            }
            Marker::FixMap(len) => self.map(usize::from(len), depth)?,
            Marker::Map16 => {
                let len = self.u16()?;
                self.map(usize::from(len), depth)?
            }
            Marker::Map32 => {
                let len = self.u32()? as usize;
                self.map(len, depth)?
            }
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let len = self.u8()?;
                self.ext(usize::from(len))?
            }
            Marker::Ext16 => {
                let len = self.u16()?;
                self.ext(usize::from(len))?
            }
            Marker::Ext32 => {
                let len = self.u32()? as usize;
                self.ext(len)?
            }
        })
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value<'a>, MsgpackError> {
        let len = self.checked_len(len, 1)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value<'a>, MsgpackError> {
        let len = self.checked_len(len, 2)?;
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }

    /// Skips an extension's type byte and data.
    fn ext(&mut self, len: usize) -> Result<Value<'a>, MsgpackError> {
        self.take(1 + len)?;
        Ok(Value::Ext)
    }
}

impl<'a> Value<'a> {
    /// A string (repairing invalid UTF-8); nil and non-strings are "".
    pub fn text(&self) -> String {
        match self {
            Value::Str(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => String::new(),
        }
    }

    /// An unsigned 64-bit value, reinterpreting negative integers (languages
    /// without u64 send ids as signed) and truncating floats; nil is 0.
    pub fn as_u64_lenient(&self) -> u64 {
        match self {
            Value::Uint(value) => *value,
            Value::Int(value) => *value as u64,
            Value::Float(value) if value.is_finite() && *value >= 0.0 => *value as u64,
            _ => 0,
        }
    }

    /// A signed 64-bit value; unsigned values past `i64::MAX` are `None`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Uint(value) => i64::try_from(*value).ok(),
            Value::Int(value) => Some(*value),
            Value::Float(value) if value.is_finite() => Some(*value as i64),
            Value::Nil => Some(0),
            _ => None,
        }
    }

    /// A number as f64 (int, uint or float on the wire).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Uint(value) => Some(*value as f64),
            Value::Int(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            _ => None,
        }
    }

    /// Map entries; nil (and any non-map) is empty.
    pub fn entries(&self) -> &[(Value<'a>, Value<'a>)] {
        match self {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Array items; nil (and any non-array) is empty.
    pub fn items(&self) -> &[Value<'a>] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_scalars_of_every_width() {
        let cases: &[(&[u8], Value<'_>)] = &[
            (&[0x05], Value::Uint(5)),
            (&[0xff], Value::Int(-1)),
            (&[0xc0], Value::Nil),
            (&[0xcc, 0xfe], Value::Uint(254)),
            (&[0xcd, 0x01, 0x00], Value::Uint(256)),
            (&[0xd0, 0x80], Value::Int(-128)),
            (&[0xd3, 0, 0, 0, 0, 0, 0, 0, 7], Value::Uint(7)),
            (&[0xca, 0x3f, 0x80, 0, 0], Value::Float(1.0)),
            (&[0xa2, b'h', b'i'], Value::Str(b"hi")),
            (&[0xc4, 0x02, b'h', b'i'], Value::Str(b"hi")),
        ];
        for (bytes, expected) in cases {
            assert_eq!(&parse(bytes).unwrap(), expected, "{bytes:x?}");
        }
    }

    #[test]
    fn test_structure_errors() {
        assert_eq!(parse(&[]), Err(MsgpackError::Truncated(0)));
        assert_eq!(parse(&[0xc1]), Err(MsgpackError::Reserved(0)));
        assert_eq!(parse(&[0x01, 0x02]), Err(MsgpackError::Trailing(1)));
        // an array32 claiming four billion items in five bytes
        assert!(matches!(
            parse(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::Truncated(_))
        ));
        let deep = vec![0x91u8; 100];
        assert_eq!(parse(&deep), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn test_signed_ids_reinterpreted() {
        assert_eq!(Value::Int(-1).as_u64_lenient(), u64::MAX);
        assert_eq!(Value::Nil.as_u64_lenient(), 0);
    }
}
