//! Datadog logs intake (`POST /api/v2/logs`, `/v1/input`) → `LogRecord`s.
//!
//! Bodies are a JSON object or an array of them (what the Datadog Agent,
//! Vector and the HTTP log forwarders post), or `text/plain` with one log per
//! line. Per item:
//! - `message` is the body; `status` (or `level`/`severity`, names or syslog
//!   numbers) the severity, info when absent as in Datadog;
//! - `service` and `hostname` make the resource (`service.name`,
//!   `host.name`); `ddsource` is kept as an attribute;
//! - `ddtags` (`env:prod,version:1.2,team`) become one string attribute per
//!   tag (a tag without `:` gets an empty value); the `env`, `version` and
//!   `service` tags also go to the resource (`deployment.environment.name`,
//!   `service.version`, `service.name` when no `service` field), as for
//!   spans;
//! - `timestamp` (or `date`, `@timestamp`): epoch milliseconds as Datadog
//!   documents (seconds, micro- and nanoseconds are recognised by size) or
//!   RFC 3339;
//! - `error.kind`/`error.message`/`error.stack`, flat or nested under
//!   `error`, are kept as flat `error.*` attributes (error tracking reads
//!   them as it reads OpenTelemetry's `exception.*`);
//! - `dd.trace_id`/`dd.span_id` (decimal, or 32/16 hex) correlate with traces;
//!   a decimal id is only the low 64 bits, so the high half comes from the
//!   [`TraceIdHighCache`] the trace decoder filled, when it knows the trace;
//! - every other field is an attribute, nested objects flattened with dots.
//!
//! Query parameters (`?service=&ddsource=&ddtags=&hostname=`) are defaults
//! that item fields override (tags are merged).

use std::collections::HashMap;
use std::sync::Arc;

use ashiato_model::{
    AttrValue, Attributes, KeyValue, LogRecord, Resource, Scope, SpanId, TraceId, attr_str,
};

use crate::mapping::{TraceIdHighCache, json_attr};
use crate::time::parse_rfc3339_nanos;

/// A body that is not a JSON log payload.
#[derive(Debug, thiserror::Error)]
pub enum LogsDecodeError {
    #[error("invalid json logs payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("logs payload must be a json object or an array of them, found {0}")]
    NotObjects(&'static str),
}

/// Reserved attributes given as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDefaults {
    pub service: Option<String>,
    pub ddsource: Option<String>,
    pub ddtags: Option<String>,
    pub hostname: Option<String>,
}

/// How the body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsFormat {
    Json,
    /// `text/plain`: one message per line.
    Text,
}

impl LogsFormat {
    pub fn from_content_type(value: &str) -> LogsFormat {
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("text/plain") {
            LogsFormat::Text
        } else {
            LogsFormat::Json
        }
    }
}

/// Decodes one intake request. `now_unix_nano` becomes the observed time
/// (and the time of items without a usable timestamp); `trace_ids` widens
/// decimal 64-bit trace ids to the 128-bit ids of traces already seen.
pub fn decode_logs(
    body: &[u8],
    format: LogsFormat,
    defaults: &LogDefaults,
    now_unix_nano: u64,
    trace_ids: Option<&TraceIdHighCache>,
) -> Result<Vec<LogRecord>, LogsDecodeError> {
    let mut builder = Builder {
        defaults,
        trace_ids,
        now: now_unix_nano,
        scope: Arc::new(Scope {
            name: "datadog.logs".to_owned(),
            ..Scope::default()
        }),
        resources: HashMap::new(),
    };
    if format == LogsFormat::Text {
        let text = String::from_utf8_lossy(body);
        return Ok(text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| builder.record(&serde_json::Map::new(), Some(line)))
            .collect());
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let json: serde_json::Value = serde_json::from_slice(body)?;
    let items = match &json {
        serde_json::Value::Array(items) => items.as_slice(),
        serde_json::Value::Object(_) => std::slice::from_ref(&json),
        serde_json::Value::Null => &[],
        serde_json::Value::Bool(_) => return Err(LogsDecodeError::NotObjects("a bool")),
        serde_json::Value::Number(_) => return Err(LogsDecodeError::NotObjects("a number")),
        serde_json::Value::String(_) => return Err(LogsDecodeError::NotObjects("a string")),
    };
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        match item {
            // `{}` is "nothing" to the real intake
            serde_json::Value::Object(map) if map.is_empty() => {}
            serde_json::Value::Object(map) => records.push(builder.record(map, None)),
            serde_json::Value::String(message) => {
                records.push(builder.record(&serde_json::Map::new(), Some(message)));
            }
            _ => {}
        }
    }
    Ok(records)
}

struct Builder<'d> {
    defaults: &'d LogDefaults,
    trace_ids: Option<&'d TraceIdHighCache>,
    now: u64,
    scope: Arc<Scope>,
    resources: HashMap<ResourceKey, Arc<Resource>>,
}

/// What a log's resource is made of: service, host, env, version.
type ResourceKey = (String, String, String, String);

/// Fields with a meaning of their own; everything else is an attribute.
const RESERVED: &[&str] = &[
    "message",
    "msg",
    "status",
    "level",
    "severity",
    "service",
    "hostname",
    "host",
    "ddsource",
    "ddtags",
    "timestamp",
    "date",
    "@timestamp",
    "dd.trace_id",
    "dd.span_id",
    "error",
    "error.kind",
    "error.message",
    "error.stack",
];

impl Builder<'_> {
    fn record(
        &mut self,
        item: &serde_json::Map<String, serde_json::Value>,
        line: Option<&str>,
    ) -> LogRecord {
        let field = |key: &str| item.get(key).filter(|value| !value.is_null());
        let string_field = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| field(key).and_then(scalar_text))
                .filter(|text| !text.is_empty())
        };
        let nested = item
            .get("dd")
            .and_then(serde_json::Value::as_object)
            .cloned()
            .unwrap_or_default();

        let body = match line {
            Some(line) => AttrValue::Str(line.to_owned()),
            None => match field("message").or_else(|| field("msg")) {
                Some(serde_json::Value::String(text)) => AttrValue::Str(text.clone()),
                Some(other) => AttrValue::Str(other.to_string()),
                None => AttrValue::Empty,
            },
        };
        let status = string_field(&["status", "level", "severity"]);
        let (severity_number, severity_text) = severity(status.as_deref());
        let service = string_field(&["service"])
            .or_else(|| nested.get("service").and_then(scalar_text))
            .or_else(|| self.defaults.service.clone());
        let hostname = string_field(&["hostname", "host"])
            .or_else(|| self.defaults.hostname.clone())
            .unwrap_or_default();
        let time = ["timestamp", "date", "@timestamp"]
            .iter()
            .find_map(|key| field(key).and_then(timestamp_nanos))
            .unwrap_or(0);

        let mut attributes: Attributes = Vec::new();
        if let Some(source) = string_field(&["ddsource"]).or_else(|| self.defaults.ddsource.clone())
        {
            attributes.push(KeyValue::new("ddsource", AttrValue::Str(source)));
        }
        if let Some(tags) = &self.defaults.ddtags {
            push_tags(&mut attributes, tags);
        }
        if let Some(tags) = string_field(&["ddtags"]) {
            push_tags(&mut attributes, &tags);
        }
        push_error_fields(&mut attributes, item);
        for (key, value) in item {
            if RESERVED.contains(&key.as_str()) || (key == "dd" && value.is_object()) {
                continue;
            }
            flatten(&mut attributes, key.clone(), value);
        }
        let tag = |key: &str| attr_str(&attributes, key).unwrap_or_default().to_owned();
        let service = service.unwrap_or_else(|| tag("service"));
        let key = (service, hostname, tag("env"), tag("version"));

        let trace_id = field("dd.trace_id")
            .or_else(|| nested.get("trace_id"))
            .and_then(scalar_text)
            .and_then(|text| parse_trace_id(&text, self.trace_ids));
        let span_id = field("dd.span_id")
            .or_else(|| nested.get("span_id"))
            .and_then(scalar_text)
            .and_then(|text| parse_span_id(&text));

        LogRecord {
            time_unix_nano: if time == 0 { self.now } else { time },
            observed_time_unix_nano: self.now,
            severity_number,
            severity_text,
            body,
            attributes,
            trace_id,
            span_id,
            flags: 0,
            event_name: String::new(),
            resource: self.resource(key),
            scope: self.scope.clone(),
        }
    }

    fn resource(&mut self, key: ResourceKey) -> Arc<Resource> {
        if let Some(resource) = self.resources.get(&key) {
            return resource.clone();
        }
        let (service, host, env, version) = &key;
        let mut attributes = Vec::new();
        let pairs = [
            ("service.name", service),
            ("host.name", host),
            ("deployment.environment.name", env),
            ("service.version", version),
        ];
        for (name, value) in pairs {
            if !value.is_empty() {
                attributes.push(KeyValue::new(name, AttrValue::Str(value.clone())));
            }
        }
        let resource = Arc::new(Resource::new(attributes));
        self.resources.insert(key, resource.clone());
        resource
    }
}

/// A scalar as text: strings as they are, numbers and bools printed.
fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}

/// Datadog statuses (and syslog severities 0–7) → OpenTelemetry severity
/// numbers; the text keeps what the shipper said. Absent means info.
fn severity(status: Option<&str>) -> (u8, String) {
    let Some(status) = status else {
        return (9, "info".to_owned());
    };
    let number = match status.trim().to_ascii_lowercase().as_str() {
        "emerg" | "emergency" | "0" | "panic" => 24,
        "alert" | "1" => 23,
        "critical" | "crit" | "fatal" | "2" => 21,
        "error" | "err" | "3" => 17,
        "warning" | "warn" | "4" => 13,
        "notice" | "5" => 10,
        "info" | "informational" | "ok" | "success" | "6" => 9,
        "debug" | "7" => 5,
        "trace" => 1,
        _ => 9,
    };
    (number, status.to_owned())
}

/// `env:prod,version:1.2,team` → `env=prod`, `version=1.2`, `team=""`.
fn push_tags(attributes: &mut Attributes, tags: &str) {
    for tag in tags.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
        let (key, value) = tag.split_once(':').unwrap_or((tag, ""));
        if key.is_empty() {
            continue;
        }
        attributes.retain(|kv| kv.key != key);
        attributes.push(KeyValue::new(key, AttrValue::Str(value.to_owned())));
    }
}

/// Error fields, flat (`"error.kind"`) or nested (`"error": {"kind"}`),
/// kept as flat `error.*` attributes.
fn push_error_fields(
    attributes: &mut Attributes,
    item: &serde_json::Map<String, serde_json::Value>,
) {
    let nested = item.get("error").and_then(serde_json::Value::as_object);
    for name in ["kind", "message", "stack"] {
        let flat_key = format!("error.{name}");
        let value = item
            .get(&flat_key)
            .or_else(|| nested.and_then(|error| error.get(name)))
            .and_then(scalar_text);
        if let Some(value) = value {
            attributes.push(KeyValue::new(flat_key, AttrValue::Str(value)));
        }
    }
    // anything else under a nested `error` object stays, flattened
    if let Some(error) = nested {
        for (key, value) in error {
            if !matches!(key.as_str(), "kind" | "message" | "stack") {
                flatten(attributes, format!("error.{key}"), value);
            }
        }
    }
}

/// Nested objects become dotted keys; arrays and scalars stay typed.
fn flatten(attributes: &mut Attributes, key: String, value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (child, value) in map {
                flatten(attributes, format!("{key}.{child}"), value);
            }
        }
        other => attributes.push(KeyValue::new(key, json_attr(other))),
    }
}

/// Epoch milliseconds as documented; by magnitude also seconds, micro- and
/// nanoseconds; strings may be numbers or RFC 3339.
fn timestamp_nanos(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(number) => match number.as_u64() {
            Some(integer) => epoch_nanos_int(integer),
            None => epoch_nanos(number.as_f64()?),
        },
        serde_json::Value::String(text) => {
            let text = text.trim();
            if let Ok(integer) = text.parse::<u64>() {
                return epoch_nanos_int(integer);
            }
            match text.parse::<f64>() {
                Ok(number) => epoch_nanos(number),
                Err(_) => parse_rfc3339_nanos(text),
            }
        }
        _ => None,
    }
}

/// Integers exactly (floats would round milliseconds off).
fn epoch_nanos_int(value: u64) -> Option<u64> {
    let scale = match value {
        0 => return None,
        v if v >= 100_000_000_000_000_000 => 1,
        v if v >= 100_000_000_000_000 => 1_000,
        v if v >= 100_000_000_000 => 1_000_000,
        _ => 1_000_000_000,
    };
    value.checked_mul(scale)
}

fn epoch_nanos(value: f64) -> Option<u64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let nanos = if value >= 1e17 {
        value
    } else if value >= 1e14 {
        value * 1e3
    } else if value >= 1e11 {
        value * 1e6
    } else {
        value * 1e9
    };
    (nanos < u64::MAX as f64).then_some(nanos as u64)
}

/// Decimal (Datadog's 64-bit form, widened by the cache) or 32/16 hex digits.
fn parse_trace_id(text: &str, trace_ids: Option<&TraceIdHighCache>) -> Option<TraceId> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        let low = text.parse::<u64>().ok().filter(|low| *low != 0)?;
        let high = trace_ids.map_or(0, |cache| cache.lookup(low));
        return Some(TraceId::from_halves(high, low));
    }
    TraceId::from_hex(text).ok()
}

fn parse_span_id(text: &str) -> Option<SpanId> {
    let text = text.trim();
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        return SpanId::from_u64(text.parse().ok()?);
    }
    SpanId::from_hex(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_severity_names_and_syslog_numbers() {
        let cases = [
            ("emergency", 24),
            ("emerg", 24),
            ("alert", 23),
            ("critical", 21),
            ("error", 17),
            ("warn", 13),
            ("warning", 13),
            ("notice", 10),
            ("info", 9),
            ("debug", 5),
            ("3", 17),
            ("nonsense", 9),
        ];
        for (status, number) in cases {
            assert_eq!(severity(Some(status)).0, number, "{status}");
        }
        assert_eq!(severity(None), (9, "info".to_owned()));
    }

    #[test]
    fn test_timestamps_by_magnitude_and_rfc3339() {
        let ms = serde_json::json!(1_700_000_000_123u64);
        assert_eq!(timestamp_nanos(&ms), Some(1_700_000_000_123_000_000));
        let seconds = serde_json::json!(1_700_000_000);
        assert_eq!(timestamp_nanos(&seconds), Some(1_700_000_000_000_000_000));
        let text = serde_json::json!("2023-11-14T22:13:20.5Z");
        assert_eq!(timestamp_nanos(&text), Some(1_700_000_000_500_000_000));
        assert_eq!(timestamp_nanos(&serde_json::json!("soon")), None);
    }

    #[test]
    fn test_ids_decimal_or_hex() {
        assert_eq!(
            parse_trace_id("42", None).map(|id| id.to_hex()),
            Some("0000000000000000000000000000002a".to_owned())
        );
        let mut cache = TraceIdHighCache::default();
        cache.remember(42, 7);
        assert_eq!(
            parse_trace_id("42", Some(&cache)).map(|id| id.to_hex()),
            Some("0000000000000007000000000000002a".to_owned())
        );
        assert!(parse_trace_id("0af7651916cd43dd8448eb211c80319c", None).is_some());
        assert!(parse_trace_id("0", None).is_none());
        assert_eq!(parse_span_id("255").map(|id| id.as_u64()), Some(255));
    }
}
