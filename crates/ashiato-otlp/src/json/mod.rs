//! Tolerant OTLP/JSON reading, translated into the protobuf messages.
//!
//! We use our own serde structs instead of opentelemetry-proto's serde
//! derives: those reject `{"arrayValue":{}}`, string doubles and enum names,
//! and silently read snake_case keys as an empty request. Here every field
//! accepts lowerCamelCase and snake_case, `null`, and the scalar spellings in
//! [`scalars`]; unknown fields are ignored.
//!
//! The result is translated into the opentelemetry-proto messages so that
//! validation and mapping to the model live in one place (`convert`). Ids
//! that are not hex and text that is not Unicode (lone surrogates, raw
//! non-UTF-8 bytes: [`scalars::Text`]) cannot be represented there, so
//! items carrying them are rejected during translation, with the same report.

mod scalars;

use std::fmt;
use std::marker::PhantomData;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::convert::{Report, log_problem, span_problem};
use scalars::{
    Base64Bytes, Bool, EnumNumber, F64, HexId, I64, SeverityNames, SpanKindNames, StatusCodeNames,
    Text, U32, U64, nullable,
};

/// Which top-level key holds a request's payload.
pub(crate) trait TopLevelKey {
    const CAMEL: &'static str;
    const SNAKE: &'static str;
}

/// The top-level object of an export request, with the keys we did not
/// recognise, so a body that decodes to nothing can say why.
#[derive(Debug)]
pub(crate) struct TopLevel<T, K> {
    pub items: Vec<T>,
    pub unknown_keys: Vec<String>,
    has_payload_key: bool,
    key: PhantomData<K>,
}

impl<T, K> Default for TopLevel<T, K> {
    fn default() -> Self {
        TopLevel {
            items: Vec::new(),
            unknown_keys: Vec::new(),
            has_payload_key: false,
            key: PhantomData,
        }
    }
}

impl<T, K: TopLevelKey> TopLevel<T, K> {
    /// A warning when the body had keys but none of them was the payload key.
    pub(crate) fn unknown_keys_warning(&self) -> Option<String> {
        if !self.has_payload_key && !self.unknown_keys.is_empty() {
            let shown: Vec<&str> = self
                .unknown_keys
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            return Some(format!(
                "request has no \"{}\" (unknown top-level keys: {})",
                K::CAMEL,
                shown.join(", ")
            ));
        }
        None
    }
}

impl<'de, T: Deserialize<'de>, K: TopLevelKey> Deserialize<'de> for TopLevel<T, K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopLevelVisitor<T, K>(PhantomData<(T, K)>);

        impl<'de, T: Deserialize<'de>, K: TopLevelKey> Visitor<'de> for TopLevelVisitor<T, K> {
            type Value = TopLevel<T, K>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                write!(formatter, "an OTLP request object with \"{}\"", K::CAMEL)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TopLevel::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut top = TopLevel::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == K::CAMEL || key == K::SNAKE {
                        top.has_payload_key = true;
                        let items: Option<Vec<T>> = map.next_value()?;
                        top.items.extend(items.unwrap_or_default());
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        top.unknown_keys.push(key);
                    }
                }
                Ok(top)
            }
        }

        deserializer.deserialize_any(TopLevelVisitor(PhantomData))
    }
}

#[derive(Debug)]
pub(crate) struct ResourceSpansKey;
#[derive(Debug)]
pub(crate) struct ResourceLogsKey;
#[derive(Debug)]
pub(crate) struct ResourceMetricsKey;

impl TopLevelKey for ResourceSpansKey {
    const CAMEL: &'static str = "resourceSpans";
    const SNAKE: &'static str = "resource_spans";
}

impl TopLevelKey for ResourceLogsKey {
    const CAMEL: &'static str = "resourceLogs";
    const SNAKE: &'static str = "resource_logs";
}

impl TopLevelKey for ResourceMetricsKey {
    const CAMEL: &'static str = "resourceMetrics";
    const SNAKE: &'static str = "resource_metrics";
}

pub(crate) type TracesRequest = TopLevel<ResourceSpans, ResourceSpansKey>;
pub(crate) type LogsRequest = TopLevel<ResourceLogs, ResourceLogsKey>;
pub(crate) type MetricsRequest = TopLevel<ResourceMetrics, ResourceMetricsKey>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ResourceSpans {
    #[serde(deserialize_with = "nullable")]
    resource: Resource,
    #[serde(alias = "scope_spans", deserialize_with = "nullable")]
    scope_spans: Vec<ScopeSpans>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ScopeSpans {
    #[serde(deserialize_with = "nullable")]
    scope: Scope,
    #[serde(deserialize_with = "nullable")]
    spans: Vec<Span>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Resource {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Scope {
    #[serde(deserialize_with = "nullable")]
    name: Text,
    #[serde(deserialize_with = "nullable")]
    version: Text,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Span {
    #[serde(alias = "trace_id", deserialize_with = "nullable")]
    trace_id: HexId,
    #[serde(alias = "span_id", deserialize_with = "nullable")]
    span_id: HexId,
    #[serde(alias = "trace_state", deserialize_with = "nullable")]
    trace_state: Text,
    #[serde(alias = "parent_span_id", deserialize_with = "nullable")]
    parent_span_id: HexId,
    #[serde(deserialize_with = "nullable")]
    flags: U32,
    #[serde(deserialize_with = "nullable")]
    name: Text,
    #[serde(deserialize_with = "nullable")]
    kind: EnumNumber<SpanKindNames>,
    #[serde(alias = "start_time_unix_nano", deserialize_with = "nullable")]
    start_time_unix_nano: U64,
    #[serde(alias = "end_time_unix_nano", deserialize_with = "nullable")]
    end_time_unix_nano: U64,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
    #[serde(deserialize_with = "nullable")]
    events: Vec<Event>,
    #[serde(alias = "dropped_events_count", deserialize_with = "nullable")]
    dropped_events_count: U32,
    #[serde(deserialize_with = "nullable")]
    links: Vec<Link>,
    #[serde(alias = "dropped_links_count", deserialize_with = "nullable")]
    dropped_links_count: U32,
    #[serde(deserialize_with = "nullable")]
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Event {
    #[serde(alias = "time_unix_nano", deserialize_with = "nullable")]
    time_unix_nano: U64,
    #[serde(deserialize_with = "nullable")]
    name: Text,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Link {
    #[serde(alias = "trace_id", deserialize_with = "nullable")]
    trace_id: HexId,
    #[serde(alias = "span_id", deserialize_with = "nullable")]
    span_id: HexId,
    #[serde(alias = "trace_state", deserialize_with = "nullable")]
    trace_state: Text,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
    #[serde(deserialize_with = "nullable")]
    flags: U32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    #[serde(deserialize_with = "nullable")]
    message: Text,
    #[serde(deserialize_with = "nullable")]
    code: EnumNumber<StatusCodeNames>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ResourceLogs {
    #[serde(deserialize_with = "nullable")]
    resource: Resource,
    #[serde(alias = "scope_logs", deserialize_with = "nullable")]
    scope_logs: Vec<ScopeLogs>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ScopeLogs {
    #[serde(deserialize_with = "nullable")]
    scope: Scope,
    #[serde(alias = "log_records", deserialize_with = "nullable")]
    log_records: Vec<LogRecord>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LogRecord {
    #[serde(alias = "time_unix_nano", deserialize_with = "nullable")]
    time_unix_nano: U64,
    #[serde(alias = "observed_time_unix_nano", deserialize_with = "nullable")]
    observed_time_unix_nano: U64,
    #[serde(alias = "severity_number", deserialize_with = "nullable")]
    severity_number: EnumNumber<SeverityNames>,
    #[serde(alias = "severity_text", deserialize_with = "nullable")]
    severity_text: Text,
    #[serde(deserialize_with = "nullable")]
    body: AnyValue,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "nullable")]
    dropped_attributes_count: U32,
    #[serde(deserialize_with = "nullable")]
    flags: U32,
    #[serde(alias = "trace_id", deserialize_with = "nullable")]
    trace_id: HexId,
    #[serde(alias = "span_id", deserialize_with = "nullable")]
    span_id: HexId,
    #[serde(alias = "event_name", deserialize_with = "nullable")]
    event_name: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValue {
    #[serde(deserialize_with = "nullable")]
    key: Text,
    #[serde(deserialize_with = "nullable")]
    value: AnyValue,
}

/// `{}` and `null` are the empty value. When a producer sets several
/// variants, the first in declaration order wins.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AnyValue {
    #[serde(alias = "string_value")]
    string_value: Option<Text>,
    #[serde(alias = "bool_value")]
    bool_value: Option<Bool>,
    #[serde(alias = "int_value")]
    int_value: Option<I64>,
    #[serde(alias = "double_value")]
    double_value: Option<F64>,
    #[serde(alias = "array_value")]
    array_value: Option<ArrayValue>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<KeyValueList>,
    #[serde(alias = "bytes_value")]
    bytes_value: Option<Base64Bytes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArrayValue {
    #[serde(deserialize_with = "nullable")]
    values: Vec<AnyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValueList {
    #[serde(deserialize_with = "nullable")]
    values: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ResourceMetrics {
    #[serde(alias = "scope_metrics", deserialize_with = "nullable")]
    scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScopeMetrics {
    #[serde(deserialize_with = "nullable")]
    metrics: Vec<Metric>,
}

/// Only the data point counts matter: metrics are answered, not stored.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Metric {
    #[serde(deserialize_with = "nullable")]
    gauge: DataPoints,
    #[serde(deserialize_with = "nullable")]
    sum: DataPoints,
    #[serde(deserialize_with = "nullable")]
    histogram: DataPoints,
    #[serde(alias = "exponential_histogram", deserialize_with = "nullable")]
    exponential_histogram: DataPoints,
    #[serde(deserialize_with = "nullable")]
    summary: DataPoints,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DataPoints {
    #[serde(alias = "data_points", deserialize_with = "nullable")]
    data_points: Vec<IgnoredAny>,
}

impl MetricsRequest {
    pub(crate) fn data_points(&self) -> u64 {
        self.items
            .iter()
            .flat_map(|resource_metrics| &resource_metrics.scope_metrics)
            .flat_map(|scope_metrics| &scope_metrics.metrics)
            .map(|metric| {
                [
                    &metric.gauge,
                    &metric.sum,
                    &metric.histogram,
                    &metric.exponential_histogram,
                    &metric.summary,
                ]
                .iter()
                .map(|points| points.data_points.len() as u64)
                .sum::<u64>()
            })
            .sum()
    }
}

/// Translates the JSON traces request into protobuf messages, rejecting
/// spans whose ids are not hex or whose text is not Unicode (text outside
/// spans, in the resource or scope, rejects every span of the group).
pub(crate) fn traces_to_proto(
    request: TracesRequest,
    report: &mut Report,
) -> ExportTraceServiceRequest {
    if let Some(warning) = request.unknown_keys_warning() {
        report.warn(warning);
    }
    let resource_spans = request
        .items
        .into_iter()
        .map(|resource_spans| {
            let mut resource_valid = true;
            let resource = resource_spans.resource.into_proto(&mut resource_valid);
            let schema_url = resource_spans.schema_url.take(&mut resource_valid);
            trace::ResourceSpans {
                resource: Some(resource),
                scope_spans: resource_spans
                    .scope_spans
                    .into_iter()
                    .map(|scope_spans| {
                        let mut group_valid = resource_valid;
                        let scope = scope_spans.scope.into_proto(&mut group_valid);
                        let schema_url = scope_spans.schema_url.take(&mut group_valid);
                        trace::ScopeSpans {
                            scope: Some(scope),
                            spans: scope_spans
                                .spans
                                .into_iter()
                                .filter_map(|span| span.into_proto(report, group_valid))
                                .collect(),
                            schema_url,
                        }
                    })
                    .collect(),
                schema_url,
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Translates the JSON logs request into protobuf messages, rejecting
/// records whose ids are not hex or whose text is not Unicode (as for spans).
pub(crate) fn logs_to_proto(request: LogsRequest, report: &mut Report) -> ExportLogsServiceRequest {
    if let Some(warning) = request.unknown_keys_warning() {
        report.warn(warning);
    }
    let resource_logs = request
        .items
        .into_iter()
        .map(|resource_logs| {
            let mut resource_valid = true;
            let resource = resource_logs.resource.into_proto(&mut resource_valid);
            let schema_url = resource_logs.schema_url.take(&mut resource_valid);
            logs::ResourceLogs {
                resource: Some(resource),
                scope_logs: resource_logs
                    .scope_logs
                    .into_iter()
                    .map(|scope_logs| {
                        let mut group_valid = resource_valid;
                        let scope = scope_logs.scope.into_proto(&mut group_valid);
                        let schema_url = scope_logs.schema_url.take(&mut group_valid);
                        logs::ScopeLogs {
                            scope: Some(scope),
                            log_records: scope_logs
                                .log_records
                                .into_iter()
                                .filter_map(|record| record.into_proto(report, group_valid))
                                .collect(),
                            schema_url,
                        }
                    })
                    .collect(),
                schema_url,
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

impl Resource {
    fn into_proto(self, valid: &mut bool) -> resource::Resource {
        resource::Resource {
            attributes: attributes_to_proto(self.attributes, valid),
            dropped_attributes_count: self.dropped_attributes_count.0,
            entity_refs: Vec::new(),
        }
    }
}

impl Scope {
    fn into_proto(self, valid: &mut bool) -> common::InstrumentationScope {
        common::InstrumentationScope {
            name: self.name.take(valid),
            version: self.version.take(valid),
            attributes: attributes_to_proto(self.attributes, valid),
            dropped_attributes_count: self.dropped_attributes_count.0,
        }
    }
}

impl Span {
    /// `group_valid` is false when the span's resource or scope holds text
    /// that is not Unicode.
    fn into_proto(self, report: &mut Report, group_valid: bool) -> Option<trace::Span> {
        let mut valid = group_valid;
        let name = self.name.take(&mut valid);
        let ids = [
            ("trace id", self.trace_id.0),
            ("span id", self.span_id.0),
            ("parent span id", self.parent_span_id.0),
        ];
        let mut decoded = Vec::with_capacity(3);
        for (field, id) in ids {
            match id {
                Ok(bytes) => decoded.push(bytes),
                Err(problem) => {
                    report.reject(span_problem(&name, field, &problem));
                    return None;
                }
            }
        }
        let mut decoded = decoded.into_iter();
        let mut dropped_links = 0;
        let span = trace::Span {
            trace_id: decoded.next().unwrap_or_default(),
            span_id: decoded.next().unwrap_or_default(),
            parent_span_id: decoded.next().unwrap_or_default(),
            trace_state: self.trace_state.take(&mut valid),
            flags: self.flags.0,
            name,
            kind: self.kind.number,
            start_time_unix_nano: self.start_time_unix_nano.0,
            end_time_unix_nano: self.end_time_unix_nano.0,
            attributes: attributes_to_proto(self.attributes, &mut valid),
            dropped_attributes_count: self.dropped_attributes_count.0,
            events: self
                .events
                .into_iter()
                .map(|event| event.into_proto(&mut valid))
                .collect(),
            dropped_events_count: self.dropped_events_count.0,
            links: self
                .links
                .into_iter()
                .filter_map(|link| {
                    let link = link.into_proto(&mut valid);
                    dropped_links += u64::from(link.is_none());
                    link
                })
                .collect(),
            dropped_links_count: self.dropped_links_count.0,
            status: Some(trace::Status {
                message: self.status.message.take(&mut valid),
                code: self.status.code.number,
            }),
        };
        if !valid {
            report.reject_invalid_text();
            return None;
        }
        // links are counted only for kept spans, as the protobuf paths do
        report.add_dropped_links(dropped_links);
        Some(span)
    }
}

impl Event {
    fn into_proto(self, valid: &mut bool) -> trace::span::Event {
        trace::span::Event {
            time_unix_nano: self.time_unix_nano.0,
            name: self.name.take(valid),
            attributes: attributes_to_proto(self.attributes, valid),
            dropped_attributes_count: self.dropped_attributes_count.0,
        }
    }
}

impl Link {
    /// `None` for a link whose ids are not hex (dropped, the span kept).
    fn into_proto(self, valid: &mut bool) -> Option<trace::span::Link> {
        let trace_state = self.trace_state.take(valid);
        let attributes = attributes_to_proto(self.attributes, valid);
        let (Ok(trace_id), Ok(span_id)) = (self.trace_id.0, self.span_id.0) else {
            return None;
        };
        Some(trace::span::Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: self.dropped_attributes_count.0,
            flags: self.flags.0,
        })
    }
}

impl LogRecord {
    /// `group_valid` as for spans.
    fn into_proto(self, report: &mut Report, group_valid: bool) -> Option<logs::LogRecord> {
        let trace_id = match self.trace_id.0 {
            Ok(bytes) => bytes,
            Err(problem) => {
                report.reject(log_problem("trace id", &problem));
                return None;
            }
        };
        let span_id = match self.span_id.0 {
            Ok(bytes) => bytes,
            Err(problem) => {
                report.reject(log_problem("span id", &problem));
                return None;
            }
        };
        let mut valid = group_valid;
        let record = logs::LogRecord {
            time_unix_nano: self.time_unix_nano.0,
            observed_time_unix_nano: self.observed_time_unix_nano.0,
            severity_number: self.severity_number.number,
            severity_text: self.severity_text.take(&mut valid),
            body: Some(self.body.into_proto(&mut valid)),
            attributes: attributes_to_proto(self.attributes, &mut valid),
            dropped_attributes_count: self.dropped_attributes_count.0,
            flags: self.flags.0,
            trace_id,
            span_id,
            event_name: self.event_name.take(&mut valid),
        };
        if !valid {
            report.reject_invalid_text();
            return None;
        }
        Some(record)
    }
}

fn attributes_to_proto(attributes: Vec<KeyValue>, valid: &mut bool) -> Vec<common::KeyValue> {
    attributes
        .into_iter()
        .map(|attribute| attribute.into_proto(valid))
        .collect()
}

impl KeyValue {
    fn into_proto(self, valid: &mut bool) -> common::KeyValue {
        common::KeyValue {
            key: self.key.take(valid),
            value: Some(self.value.into_proto(valid)),
            ..Default::default()
        }
    }
}

impl AnyValue {
    fn into_proto(self, valid: &mut bool) -> common::AnyValue {
        use common::any_value::Value;
        let value = if let Some(text) = self.string_value {
            Some(Value::StringValue(text.take(valid)))
        } else if let Some(flag) = self.bool_value {
            Some(Value::BoolValue(flag.0))
        } else if let Some(number) = self.int_value {
            Some(Value::IntValue(number.0))
        } else if let Some(number) = self.double_value {
            Some(Value::DoubleValue(number.0))
        } else if let Some(array) = self.array_value {
            Some(Value::ArrayValue(common::ArrayValue {
                values: array
                    .values
                    .into_iter()
                    .map(|value| value.into_proto(valid))
                    .collect(),
            }))
        } else if let Some(list) = self.kvlist_value {
            Some(Value::KvlistValue(common::KeyValueList {
                values: attributes_to_proto(list.values, valid),
            }))
        } else {
            self.bytes_value.map(|bytes| Value::BytesValue(bytes.0))
        };
        common::AnyValue { value }
    }
}
