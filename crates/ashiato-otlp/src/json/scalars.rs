//! Lenient scalar readers for OTLP/JSON.
//!
//! Real producers disagree on scalar encodings: int64 as string or number,
//! doubles as `"NaN"`, enums as ints or names, `null` for anything. Each
//! newtype here accepts every form we have seen and reads `null` as the
//! proto3 default, so one odd field never costs a whole batch.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Reads `null` as the type's default; used on every field because proto3
/// JSON allows `null` wherever a value may be absent.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An integer sent as a JSON number, a decimal string, or an integral float.
fn integer_from_text<E: de::Error>(text: &str) -> Result<i128, E> {
    let text = text.trim();
    if let Ok(value) = text.parse::<i128>() {
        return Ok(value);
    }
    text.parse::<f64>()
        .ok()
        .and_then(integer_from_float)
        .ok_or_else(|| E::custom(format!("expected an integer, got {text:?}")))
}

fn integer_from_float(value: f64) -> Option<i128> {
    // Beyond 1e30 no integer type we read fits, so refuse early and avoid a saturating cast.
    (value.is_finite() && value.fract() == 0.0 && value.abs() < 1e30).then_some(value as i128)
}

/// Integer fields of every width share this visitor; the caller narrows.
struct IntegerVisitor {
    expecting: &'static str,
}

impl Visitor<'_> for IntegerVisitor {
    type Value = i128;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i128, E> {
        Ok(i128::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i128, E> {
        Ok(i128::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i128, E> {
        integer_from_float(value)
            .ok_or_else(|| E::custom(format!("expected an integer, got {value}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<i128, E> {
        integer_from_text(text)
    }

    fn visit_unit<E: de::Error>(self) -> Result<i128, E> {
        Ok(0)
    }
}

fn deserialize_integer<'de, D, T>(deserializer: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let value = deserializer.deserialize_any(IntegerVisitor { expecting })?;
    T::try_from(value)
        .map_err(|_| de::Error::custom(format!("{value} is out of range for {expecting}")))
}

/// A `fixed64`/`uint64` (timestamps).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct U64(pub u64);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<U64, D::Error> {
        deserialize_integer(deserializer, "an unsigned 64-bit integer").map(U64)
    }
}

/// An `int64` (`intValue`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct I64(pub i64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<I64, D::Error> {
        deserialize_integer(deserializer, "a 64-bit integer").map(I64)
    }
}

/// A `fixed32`/`uint32` (flags, dropped counts).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct U32(pub u32);

impl<'de> Deserialize<'de> for U32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<U32, D::Error> {
        deserialize_integer(deserializer, "an unsigned 32-bit integer").map(U32)
    }
}

/// A `double`: a number, or a string holding a number, `NaN`, `Infinity`
/// or `-Infinity` (the proto3 JSON spellings).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct F64(pub f64);

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<F64, D::Error> {
        struct FloatVisitor;

        impl Visitor<'_> for FloatVisitor {
            type Value = f64;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number or a numeric string")
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
                Ok(value)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
                Ok(value as f64)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
                Ok(value as f64)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<f64, E> {
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| E::custom(format!("expected a number, got {text:?}")))
            }

            fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
                Ok(0.0)
            }
        }

        deserializer.deserialize_any(FloatVisitor).map(F64)
    }
}

/// A `bool`, also as the strings `"true"`/`"false"`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bool, D::Error> {
        struct BoolVisitor;

        impl Visitor<'_> for BoolVisitor {
            type Value = bool;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a boolean")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
                Ok(value)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
                match text.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(E::custom(format!("expected a boolean, got {text:?}"))),
                }
            }

            fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }
        }

        deserializer.deserialize_any(BoolVisitor).map(Bool)
    }
}

/// A proto enum's names, for enums sent as strings.
pub(crate) trait EnumNames {
    /// The common prefix of the generated names (`SPAN_KIND_`).
    const PREFIX: &'static str;
    fn number_of(name: &str) -> Option<i32>;
}

#[derive(Debug)]
pub(crate) struct SpanKindNames;
#[derive(Debug)]
pub(crate) struct StatusCodeNames;
#[derive(Debug)]
pub(crate) struct SeverityNames;

impl EnumNames for SpanKindNames {
    const PREFIX: &'static str = "SPAN_KIND_";
    fn number_of(name: &str) -> Option<i32> {
        SpanKind::from_str_name(name).map(|kind| kind as i32)
    }
}

impl EnumNames for StatusCodeNames {
    const PREFIX: &'static str = "STATUS_CODE_";
    fn number_of(name: &str) -> Option<i32> {
        StatusCode::from_str_name(name).map(|code| code as i32)
    }
}

impl EnumNames for SeverityNames {
    const PREFIX: &'static str = "SEVERITY_NUMBER_";
    fn number_of(name: &str) -> Option<i32> {
        SeverityNumber::from_str_name(name).map(|severity| severity as i32)
    }
}

/// An enum sent as its number (the OTLP rule) or its name
/// (`"SPAN_KIND_SERVER"`, or the short `"server"`). Unknown names read as
/// 0, the unspecified value, rather than failing the batch.
#[derive(Debug)]
pub(crate) struct EnumNumber<N> {
    pub number: i32,
    names: PhantomData<N>,
}

impl<N> Default for EnumNumber<N> {
    fn default() -> Self {
        EnumNumber {
            number: 0,
            names: PhantomData,
        }
    }
}

fn enum_number_from_name<N: EnumNames>(text: &str) -> i32 {
    let upper = text.trim().to_ascii_uppercase();
    if let Ok(number) = upper.parse::<i32>() {
        return number;
    }
    N::number_of(&upper)
        .or_else(|| N::number_of(&format!("{}{upper}", N::PREFIX)))
        .unwrap_or(0)
}

impl<'de, N: EnumNames> Deserialize<'de> for EnumNumber<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnumVisitor<N>(PhantomData<N>);

        impl<N: EnumNames> Visitor<'_> for EnumVisitor<N> {
            type Value = i32;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an enum number or name")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<i32, E> {
                Ok(i32::try_from(value).unwrap_or(0))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<i32, E> {
                Ok(i32::try_from(value).unwrap_or(0))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<i32, E> {
                Ok(integer_from_float(value)
                    .and_then(|number| i32::try_from(number).ok())
                    .unwrap_or(0))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<i32, E> {
                Ok(enum_number_from_name::<N>(text))
            }

            fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
                Ok(0)
            }
        }

        deserializer
            .deserialize_any(EnumVisitor::<N>(PhantomData))
            .map(|number| EnumNumber {
                number,
                names: PhantomData,
            })
    }
}

/// A trace/span id as OTLP/JSON sends it: hex, case-insensitive, `""` for
/// absent. Bad hex is kept as a problem so the item, not the batch, is
/// rejected.
#[derive(Debug)]
pub(crate) struct HexId(pub Result<Vec<u8>, HexProblem>);

/// A missing id is an empty one, as in protobuf.
impl Default for HexId {
    fn default() -> Self {
        HexId(Ok(Vec::new()))
    }
}

/// Why an id string is not hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HexProblem {
    NotHex,
    OddLength,
}

impl fmt::Display for HexProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            HexProblem::NotHex => "not a hex string",
            HexProblem::OddLength => "odd number of hex digits",
        })
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, HexProblem> {
    let digits = text.trim().as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(HexProblem::OddLength);
    }
    digits
        .chunks_exact(2)
        .map(|pair| match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(high), Some(low)) => Ok((high << 4) | low),
            _ => Err(HexProblem::NotHex),
        })
        .collect()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HexId, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        Ok(HexId(decode_hex(&text)))
    }
}

/// `bytesValue`: base64, standard or URL-safe alphabet, padded or not.
#[derive(Debug, Default)]
pub(crate) struct Base64Bytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Base64Bytes, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        let text = text.trim();
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Base64Bytes)
            .ok_or_else(|| de::Error::custom("bytesValue is not valid base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hex_ids() {
        assert_eq!(decode_hex("0aFF").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(decode_hex("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode_hex("abc"), Err(HexProblem::OddLength));
        assert_eq!(decode_hex("zz"), Err(HexProblem::NotHex));
        assert_eq!(decode_hex("é"), Err(HexProblem::NotHex));
    }

    #[test]
    fn test_enum_names() {
        assert_eq!(
            enum_number_from_name::<SpanKindNames>("SPAN_KIND_SERVER"),
            2
        );
        assert_eq!(enum_number_from_name::<SpanKindNames>("client"), 3);
        assert_eq!(
            enum_number_from_name::<StatusCodeNames>("STATUS_CODE_ERROR"),
            2
        );
        assert_eq!(
            enum_number_from_name::<SeverityNames>("SEVERITY_NUMBER_ERROR"),
            17
        );
        assert_eq!(enum_number_from_name::<SeverityNames>("warn2"), 14);
        assert_eq!(enum_number_from_name::<SpanKindNames>("bogus"), 0);
        assert_eq!(enum_number_from_name::<SpanKindNames>("2"), 2);
    }
}

/// A JSON string that may not be Unicode: a lone surrogate (`"\ud800"`)
/// or raw bytes that are not UTF-8. serde_json refuses those for `String`,
/// which would fail the whole request; read as bytes (serde_json then
/// keeps lone surrogates as WTF-8), the text is checked here and the item
/// holding it is rejected on its own (`unicode` is false; `text` is then a
/// lossy copy, never stored).
#[derive(Debug)]
pub(crate) struct Text {
    pub text: String,
    pub unicode: bool,
}

impl Default for Text {
    fn default() -> Self {
        Text {
            text: String::new(),
            unicode: true,
        }
    }
}

impl Text {
    /// The text, clearing `valid` when it is not Unicode.
    pub(crate) fn take(self, valid: &mut bool) -> String {
        *valid &= self.unicode;
        self.text
    }

    fn from_bytes(bytes: Vec<u8>) -> Text {
        match String::from_utf8(bytes) {
            Ok(text) => Text {
                text,
                unicode: true,
            },
            Err(error) => Text {
                text: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                unicode: false,
            },
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Text, E> {
                Ok(Text {
                    text: value.to_owned(),
                    unicode: true,
                })
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<Text, E> {
                Ok(Text {
                    text: value,
                    unicode: true,
                })
            }

            fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Text, E> {
                Ok(Text::from_bytes(value.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, value: Vec<u8>) -> Result<Text, E> {
                Ok(Text::from_bytes(value))
            }
        }

        deserializer.deserialize_bytes(TextVisitor)
    }
}
