//! Typed attribute values, as OpenTelemetry's `AnyValue` defines them.

/// One attribute value. Types are kept as sent: an int stays an int, so the
/// API can return `200`, not `"200"`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A key that was sent without a value (OTLP allows it).
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<KeyValue>),
}

/// One key/value pair; attribute lists keep the order they arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: AttrValue,
}

/// Attribute lists are small (tens of entries), so a vector beats a map.
pub type Attributes = Vec<KeyValue>;

impl KeyValue {
    pub fn new(key: impl Into<String>, value: AttrValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
        }
    }
}

impl AttrValue {
    /// The value as text, for display and substring search: strings as they
    /// are, numbers and bools in their usual form, composites in a JSON-like form.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Str(text) => text.clone(),
            other => {
                let mut out = String::new();
                other.write_text(&mut out);
                out
            }
        }
    }

    fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            AttrValue::Empty => {}
            AttrValue::Str(text) => out.push_str(text),
            AttrValue::Bool(value) => {
                let _ = write!(out, "{value}");
            }
            AttrValue::Int(value) => {
                let _ = write!(out, "{value}");
            }
            AttrValue::Float(value) => {
                let _ = write!(out, "{value}");
            }
            AttrValue::Bytes(bytes) => {
                for byte in bytes {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            AttrValue::Array(values) => {
                out.push('[');
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    value.write_text(out);
                }
                out.push(']');
            }
            AttrValue::Map(entries) => {
                out.push('{');
                for (index, entry) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(&entry.key);
                    out.push('=');
                    entry.value.write_text(out);
                }
                out.push('}');
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Whether a query value (always text) matches this value: exact text
    /// match, or numeric equality for ints and floats (`http.status_code:500`).
    pub fn matches_text(&self, query: &str) -> bool {
        match self {
            AttrValue::Str(text) => text == query,
            AttrValue::Int(value) => query.parse::<i64>().is_ok_and(|q| q == *value),
            AttrValue::Float(value) => query.parse::<f64>().is_ok_and(|q| q == *value),
            AttrValue::Bool(value) => query.parse::<bool>().is_ok_and(|q| q == *value),
            other => other.to_text() == query,
        }
    }
}

/// The first value for `key`.
pub fn attr_get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

/// The first value for `key` if it is a string.
pub fn attr_str<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attr_get(attributes, key).and_then(AttrValue::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_text_forms() {
        let value = AttrValue::Array(vec![AttrValue::Str("a".into()), AttrValue::Int(2)]);
        assert_eq!(value.to_text(), "[a,2]");
        assert!(AttrValue::Int(500).matches_text("500"));
        assert!(!AttrValue::Int(500).matches_text("5xx"));
        assert!(AttrValue::Float(99.99).matches_text("99.99"));
    }
}
