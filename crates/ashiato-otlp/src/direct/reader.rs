//! Protobuf wire reading over a borrowed slice, with prost's acceptance rules.
//!
//! Every check prost makes while decoding the OTLP messages is made here
//! too (wire type of known fields, varint overflow, lengths, UTF-8 of
//! strings, the recursion limit of 100 nested messages or groups, end-group
//! tags of skipped groups), because the direct decoder must fail exactly
//! where the message-tree decoder fails. The failure itself carries no
//! detail: the caller then runs prost, whose error is the one reported.

use prost::encoding::{WireType, decode_key, decode_varint};

/// The input is not a message prost would accept; prost says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Wire-level: keys, lengths, varints, wire types, recursion.
    Wire,
    /// A `string` field that is not UTF-8. The lenient pass rejects the
    /// item holding it instead of the whole body (see `direct::request`).
    Utf8,
}

pub(crate) type Wire<T> = Result<T, Malformed>;

/// prost's recursion budget (`DecodeContext`): 100 at the top-level
/// message's fields, one less inside each nested message or skipped group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Depth(u32);

impl Depth {
    /// The budget of a top-level message's own fields.
    pub(crate) const TOP: Depth = Depth(100);

    /// The budget inside a nested message or group; prost refuses to enter
    /// one when the budget is spent.
    fn enter(self) -> Wire<Depth> {
        match self.0 {
            0 => Err(Malformed::Wire),
            budget => Ok(Depth(budget - 1)),
        }
    }
}

/// A cursor over the fields of one message body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// The next field's tag and wire type, or `None` at the end.
    #[inline]
    pub(crate) fn next_key(&mut self) -> Wire<Option<(u32, WireType)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        decode_key(&mut self.buf)
            .map(Some)
            .map_err(|_| Malformed::Wire)
    }

    #[inline]
    fn varint(&mut self) -> Wire<u64> {
        decode_varint(&mut self.buf).map_err(|_| Malformed::Wire)
    }

    #[inline]
    fn take(&mut self, len: usize) -> Wire<&'a [u8]> {
        if len > self.buf.len() {
            return Err(Malformed::Wire);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    /// A `uint64`/`int64`/`int32`/`uint32`/`bool`/enum field's raw value.
    #[inline]
    pub(crate) fn varint_field(&mut self, wire_type: WireType) -> Wire<u64> {
        expect(WireType::Varint, wire_type)?;
        self.varint()
    }

    #[inline]
    pub(crate) fn fixed32(&mut self, wire_type: WireType) -> Wire<u32> {
        expect(WireType::ThirtyTwoBit, wire_type)?;
        let bytes = self.take(4)?;
        let mut word = [0; 4];
        word.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(word))
    }

    #[inline]
    pub(crate) fn fixed64(&mut self, wire_type: WireType) -> Wire<u64> {
        expect(WireType::SixtyFourBit, wire_type)?;
        let bytes = self.take(8)?;
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }

    /// A `bytes` field, borrowed.
    #[inline]
    pub(crate) fn bytes(&mut self, wire_type: WireType) -> Wire<&'a [u8]> {
        expect(WireType::LengthDelimited, wire_type)?;
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| Malformed::Wire)?;
        self.take(len)
    }

    /// A `string` field, borrowed; prost refuses invalid UTF-8.
    #[inline]
    pub(crate) fn str(&mut self, wire_type: WireType) -> Wire<&'a str> {
        let bytes = self.bytes(wire_type)?;
        std::str::from_utf8(bytes).map_err(|_| Malformed::Utf8)
    }

    /// A nested message field: its body and the budget inside it.
    #[inline]
    pub(crate) fn message(
        &mut self,
        wire_type: WireType,
        depth: Depth,
    ) -> Wire<(Reader<'a>, Depth)> {
        expect(WireType::LengthDelimited, wire_type)?;
        let inner = depth.enter()?;
        let body = self.bytes(wire_type)?;
        Ok((Reader::new(body), inner))
    }

    /// Skips a field this decoder does not know, as prost's `skip_field`
    /// does (groups are walked to their matching end tag).
    pub(crate) fn skip(&mut self, wire_type: WireType, tag: u32, depth: Depth) -> Wire<()> {
        let inner = depth.enter()?;
        match wire_type {
            WireType::Varint => self.varint().map(|_| ()),
            WireType::ThirtyTwoBit => self.take(4).map(|_| ()),
            WireType::SixtyFourBit => self.take(8).map(|_| ()),
            WireType::LengthDelimited => self.bytes(wire_type).map(|_| ()),
            WireType::StartGroup => self.skip_group(tag, inner),
            WireType::EndGroup => Err(Malformed::Wire),
        }
    }

    fn skip_group(&mut self, tag: u32, inner: Depth) -> Wire<()> {
        loop {
            let Some((inner_tag, inner_wire_type)) = self.next_key()? else {
                return Err(Malformed::Wire);
            };
            if inner_wire_type == WireType::EndGroup {
                return if inner_tag == tag {
                    Ok(())
                } else {
                    Err(Malformed::Wire)
                };
            }
            self.skip(inner_wire_type, inner_tag, inner)?;
        }
    }
}

#[inline]
fn expect(expected: WireType, actual: WireType) -> Wire<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Malformed::Wire)
    }
}

/// prost reads `int32` and enum fields as the low 32 bits of the varint.
#[inline]
pub(crate) fn as_i32(value: u64) -> i32 {
    value as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_skip_refuses_what_prost_refuses() {
        // (bytes after the key of field 1, wire type, prost accepts)
        let cases: &[(&[u8], WireType, bool)] = &[
            (&[0x01], WireType::Varint, true),
            (&[0xff; 10], WireType::Varint, false),
            (&[1, 2, 3], WireType::ThirtyTwoBit, false),
            (&[1, 2, 3, 4], WireType::ThirtyTwoBit, true),
            (&[2, b'a'], WireType::LengthDelimited, false),
            (&[0x0c], WireType::StartGroup, true),
            (&[0x14], WireType::StartGroup, false),
            (&[], WireType::StartGroup, false),
            (&[], WireType::EndGroup, false),
        ];
        for (bytes, wire_type, accepted) in cases {
            let mut reader = Reader::new(bytes);
            let ours = reader.skip(*wire_type, 1, Depth::TOP).is_ok();
            let mut buf: &[u8] = bytes;
            let theirs = prost::encoding::skip_field(
                *wire_type,
                1,
                &mut buf,
                prost::encoding::DecodeContext::default(),
            )
            .is_ok();
            assert_eq!(
                (ours, theirs),
                (*accepted, *accepted),
                "{bytes:?} {wire_type:?}"
            );
        }
    }

    #[test]
    fn test_nested_groups_hit_the_recursion_limit_like_prost() {
        for levels in [98, 99, 100, 101] {
            let mut bytes = vec![0x0b; levels];
            bytes.extend(std::iter::repeat_n(0x0c, levels + 1));
            let mut reader = Reader::new(&bytes);
            let ours = reader.skip(WireType::StartGroup, 1, Depth::TOP).is_ok();
            let mut buf: &[u8] = &bytes;
            let theirs = prost::encoding::skip_field(
                WireType::StartGroup,
                1,
                &mut buf,
                prost::encoding::DecodeContext::default(),
            )
            .is_ok();
            assert_eq!(ours, theirs, "{levels} levels");
        }
    }
}
