//! Terminal rendering for `ashiato trace`, `traces` and `logs`: query API
//! JSON in, text out.
//!
//! Pure functions (no IO) so every layout decision is pinned by snapshot
//! tests. The input comes from a server, possibly an older or newer one, so
//! the documents are read leniently: missing fields and `null`s become
//! defaults and int64 times may be strings or numbers. Text that came from
//! telemetry is stripped of control characters before it reaches a terminal.

use std::collections::{HashMap, HashSet};

use ashiato_model::format_duration_ns;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use unicode_width::UnicodeWidthStr;

pub(crate) mod timefmt;

use timefmt::format_unix_nanos;

/// Attributes shown next to a span without `--attrs`: the ones that tell
/// spans of the same name apart (business ids, HTTP/RPC/DB shape). Shown in
/// this order.
const KEY_ATTRIBUTES: &[&str] = &[
    "http.request.method",
    "http.method",
    "http.route",
    "http.target",
    "http.response.status_code",
    "http.status_code",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "db.system",
    "db.system.name",
    "db.operation.name",
    "messaging.system",
    "messaging.destination.name",
    "user_id",
    "order_id",
    "product_id",
    "amount",
];

/// Column gap; two spaces keep CJK text readable next to ASCII.
const GAP: &str = "  ";

/// How much of each span `render_trace` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceRenderOptions {
    /// Every attribute and every event attribute, not just the key ones.
    pub all_attributes: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TraceDoc {
    #[serde(deserialize_with = "null_as_default")]
    spans: Vec<SpanDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpanDoc {
    #[serde(deserialize_with = "null_as_default")]
    span_id: String,
    #[serde(deserialize_with = "null_as_default")]
    parent_span_id: String,
    #[serde(deserialize_with = "null_as_default")]
    service: String,
    #[serde(deserialize_with = "null_as_default")]
    name: String,
    #[serde(deserialize_with = "lenient_u64")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "lenient_u64")]
    duration_ns: u64,
    #[serde(deserialize_with = "null_as_default")]
    status: StatusDoc,
    #[serde(deserialize_with = "null_as_default")]
    attributes: Map<String, Value>,
    #[serde(deserialize_with = "null_as_default")]
    events: Vec<EventDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusDoc {
    #[serde(deserialize_with = "null_as_default")]
    code: String,
    #[serde(deserialize_with = "null_as_default")]
    message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventDoc {
    #[serde(deserialize_with = "null_as_default")]
    name: String,
    #[serde(deserialize_with = "lenient_u64")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "null_as_default")]
    attributes: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TraceListDoc {
    #[serde(deserialize_with = "null_as_default")]
    traces: Vec<TraceSummaryDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TraceSummaryDoc {
    #[serde(deserialize_with = "null_as_default")]
    trace_id: String,
    #[serde(deserialize_with = "null_as_default")]
    root_service: String,
    #[serde(deserialize_with = "null_as_default")]
    root_name: String,
    #[serde(deserialize_with = "lenient_u64")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "lenient_u64")]
    duration_ns: u64,
    #[serde(deserialize_with = "lenient_u64")]
    span_count: u64,
    #[serde(deserialize_with = "lenient_u64")]
    error_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogListDoc {
    #[serde(deserialize_with = "null_as_default")]
    logs: Vec<LogDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogDoc {
    #[serde(deserialize_with = "lenient_u64")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "null_as_default")]
    severity_text: String,
    #[serde(deserialize_with = "lenient_u64")]
    severity_number: u64,
    body: Value,
    #[serde(deserialize_with = "null_as_default")]
    service: String,
    #[serde(deserialize_with = "null_as_default")]
    trace_id: String,
}

/// Renders `GET /api/v1/traces/{id}` as a span tree, one line per span and
/// per shown event, columns aligned by display width.
pub fn render_trace(document: &Value, options: TraceRenderOptions) -> anyhow::Result<String> {
    let trace: TraceDoc = TraceDoc::deserialize(document)
        .map_err(|error| anyhow::anyhow!("unexpected trace document from server: {error}"))?;
    let rows = span_tree_rows(&trace.spans, options);
    Ok(layout_tree(&rows))
}

/// Renders `GET /api/v1/traces` as a table, newest first as the server sent it.
pub fn render_trace_list(document: &Value) -> anyhow::Result<String> {
    let list: TraceListDoc = TraceListDoc::deserialize(document)
        .map_err(|error| anyhow::anyhow!("unexpected trace list from server: {error}"))?;
    let header = [
        "TRACE ID", "START", "SERVICE", "NAME", "DURATION", "SPANS", "ERRORS",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = vec![header];
    for trace in &list.traces {
        rows.push(vec![
            clean(&trace.trace_id),
            format_unix_nanos(trace.start_time_unix_nano),
            or_dash(&trace.root_service),
            or_dash(&trace.root_name),
            format_duration_ns(trace.duration_ns),
            trace.span_count.to_string(),
            trace.error_count.to_string(),
        ]);
    }
    let right_aligned = [false, false, false, false, true, true, true];
    Ok(layout_table(&rows, &right_aligned))
}

/// Renders `GET /api/v1/logs`: one line per record with time, severity,
/// service, body and the trace id when the record has one.
pub fn render_log_list(document: &Value) -> anyhow::Result<String> {
    let list: LogListDoc = LogListDoc::deserialize(document)
        .map_err(|error| anyhow::anyhow!("unexpected log list from server: {error}"))?;
    let rows: Vec<Vec<String>> = list
        .logs
        .iter()
        .map(|log| {
            let mut row = vec![
                format_unix_nanos(log.time_unix_nano),
                severity_label(&log.severity_text, log.severity_number),
                or_dash(&log.service),
                body_text(&log.body),
            ];
            if !log.trace_id.is_empty() {
                row.push(format!("trace={}", clean(&log.trace_id)));
            }
            row
        })
        .collect();
    Ok(layout_table(&rows, &[]))
}

/// One line of the span tree before column alignment.
#[derive(Debug)]
enum TreeRow {
    Span {
        prefix: String,
        name: String,
        service: String,
        duration: String,
        details: String,
    },
    Note {
        prefix: String,
        text: String,
    },
}

/// A row still to be emitted by the depth-first walk: events are leaves,
/// spans expand into their own events and children.
enum Work {
    Span {
        index: usize,
        prefix: String,
        child_prefix: String,
        marker: &'static str,
    },
    Event {
        prefix: String,
        text: String,
    },
}

/// Walks the spans depth first into rows. Roots and orphans (parent not in
/// the trace) start trees; spans caught in a parent cycle are listed last so
/// nothing the server returned is silently dropped. Iterative, so a hostile
/// thousands-deep trace cannot overflow the stack.
fn span_tree_rows(spans: &[SpanDoc], options: TraceRenderOptions) -> Vec<TreeRow> {
    let known: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut tops = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        let parent = span.parent_span_id.as_str();
        if parent.is_empty() || parent == span.span_id || !known.contains(parent) {
            tops.push(index);
        } else {
            children.entry(parent).or_default().push(index);
        }
    }
    sort_by_start(&mut tops, spans);
    let mut walk = TreeWalk {
        spans,
        children,
        visited: vec![false; spans.len()],
        options,
    };
    let mut rows = Vec::new();
    for top in tops {
        let marker = top_marker(&spans[top], &known);
        walk.emit_tree(top, marker, &mut rows);
    }
    let mut leftovers: Vec<usize> = (0..spans.len())
        .filter(|&index| !walk.visited[index])
        .collect();
    sort_by_start(&mut leftovers, spans);
    for index in leftovers {
        if !walk.visited[index] {
            walk.emit_tree(index, "(parent cycle)", &mut rows);
        }
    }
    rows
}

fn top_marker(span: &SpanDoc, known: &HashSet<&str>) -> &'static str {
    let parent = span.parent_span_id.as_str();
    if parent.is_empty() || parent == span.span_id || known.contains(parent) {
        ""
    } else {
        "(parent missing)"
    }
}

fn sort_by_start(indexes: &mut [usize], spans: &[SpanDoc]) {
    indexes.sort_by_key(|&index| spans[index].start_time_unix_nano);
}

struct TreeWalk<'a> {
    spans: &'a [SpanDoc],
    children: HashMap<&'a str, Vec<usize>>,
    /// A span is marked when it is scheduled, so duplicate span ids or
    /// cycles can never render a span twice or loop.
    visited: Vec<bool>,
    options: TraceRenderOptions,
}

impl TreeWalk<'_> {
    fn emit_tree(&mut self, top: usize, marker: &'static str, rows: &mut Vec<TreeRow>) {
        self.visited[top] = true;
        let mut stack = vec![Work::Span {
            index: top,
            prefix: String::new(),
            child_prefix: String::new(),
            marker,
        }];
        while let Some(work) = stack.pop() {
            match work {
                Work::Event { prefix, text } => rows.push(TreeRow::Note { prefix, text }),
                Work::Span {
                    index,
                    prefix,
                    child_prefix,
                    marker,
                } => {
                    let span = &self.spans[index];
                    rows.push(span_row(span, &prefix, marker, self.options));
                    let below = self.work_below(index, &child_prefix);
                    stack.extend(below.into_iter().rev());
                }
            }
        }
    }

    /// The events and child spans under one span, in time order, with their
    /// tree connectors.
    fn work_below(&mut self, index: usize, child_prefix: &str) -> Vec<Work> {
        let span = &self.spans[index];
        let mut timed: Vec<(u64, Option<usize>, String)> = span
            .events
            .iter()
            .filter(|event| shows_event(span, event, self.options))
            .map(|event| (event.time_unix_nano, None, event_text(event, self.options)))
            .collect();
        let child_indexes = self
            .children
            .get(span.span_id.as_str())
            .cloned()
            .unwrap_or_default();
        for child in child_indexes {
            if !self.visited[child] {
                self.visited[child] = true;
                timed.push((
                    self.spans[child].start_time_unix_nano,
                    Some(child),
                    String::new(),
                ));
            }
        }
        // Stable sort: at equal times events stay before children, as sent.
        timed.sort_by_key(|(time, _, _)| *time);
        let count = timed.len();
        timed
            .into_iter()
            .enumerate()
            .map(|(position, (_, child, text))| {
                let last = position + 1 == count;
                let prefix = format!("{child_prefix}{}", if last { "└── " } else { "├── " });
                match child {
                    None => Work::Event { prefix, text },
                    Some(index) => Work::Span {
                        index,
                        prefix,
                        child_prefix: format!(
                            "{child_prefix}{}",
                            if last { "    " } else { "│   " }
                        ),
                        marker: "",
                    },
                }
            })
            .collect()
    }
}

fn span_row(span: &SpanDoc, prefix: &str, marker: &str, options: TraceRenderOptions) -> TreeRow {
    let mut name = or_dash(&span.name);
    if !marker.is_empty() {
        name = format!("{name} {marker}");
    }
    let mut details = attribute_pairs(&span.attributes, options.all_attributes);
    if let Some(error) = error_summary(span) {
        details.push(error);
    }
    TreeRow::Span {
        prefix: prefix.to_owned(),
        name,
        service: or_dash(&span.service),
        duration: format_duration_ns(span.duration_ns),
        details: details.join(GAP),
    }
}

/// `k=v` pairs: the key attributes in their fixed order, or all of them
/// sorted by key.
fn attribute_pairs(attributes: &Map<String, Value>, all: bool) -> Vec<String> {
    if all {
        let mut keys: Vec<&String> = attributes.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|key| attributes.get(key).map(|value| pair(key, value)))
            .collect()
    } else {
        KEY_ATTRIBUTES
            .iter()
            .filter_map(|key| attributes.get(*key).map(|value| pair(key, value)))
            .collect()
    }
}

fn pair(key: &str, value: &Value) -> String {
    format!("{}={}", clean(key), value_text(value))
}

/// `ERROR <why>` for a span whose status is error. The status message is the
/// SDK's summary; without one the recorded exception says what happened.
fn error_summary(span: &SpanDoc) -> Option<String> {
    if !span.status.code.eq_ignore_ascii_case("error") {
        return None;
    }
    let reason = if !span.status.message.is_empty() {
        Some(span.status.message.clone())
    } else {
        span.events
            .iter()
            .filter(|event| event.name == "exception")
            .find_map(|event| {
                ["exception.message", "exception.type"]
                    .iter()
                    .find_map(|key| event.attributes.get(*key).map(plain_text))
            })
    };
    Some(match reason {
        Some(reason) if !reason.is_empty() => format!("ERROR {}", clean(&reason)),
        _ => "ERROR".to_owned(),
    })
}

/// The exception event of a failed span is already summarised in its
/// `ERROR` text; repeating it adds a line without news. `--attrs` shows it.
fn shows_event(span: &SpanDoc, event: &EventDoc, options: TraceRenderOptions) -> bool {
    options.all_attributes
        || event.name != "exception"
        || !span.status.code.eq_ignore_ascii_case("error")
}

fn event_text(event: &EventDoc, options: TraceRenderOptions) -> String {
    let mut text = format!("event: {}", clean(&event.name));
    if options.all_attributes {
        for pair in attribute_pairs(&event.attributes, true) {
            text.push_str(GAP);
            text.push_str(&pair);
        }
    } else if event.name == "exception" {
        let kind = event.attributes.get("exception.type").map(plain_text);
        let message = event.attributes.get("exception.message").map(plain_text);
        let summary = match (kind, message) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => String::new(),
        };
        if !summary.is_empty() {
            text.push_str(GAP);
            text.push_str(&clean(&summary));
        }
    }
    text
}

/// Aligns the span rows in columns (name with its tree prefix, service,
/// duration right-aligned, details); event rows just follow their prefix.
fn layout_tree(rows: &[TreeRow]) -> String {
    let mut name_width = 0;
    let mut service_width = 0;
    let mut duration_width = 0;
    for row in rows {
        if let TreeRow::Span {
            prefix,
            name,
            service,
            duration,
            ..
        } = row
        {
            name_width = name_width.max(display_width(prefix) + display_width(name));
            service_width = service_width.max(display_width(service));
            duration_width = duration_width.max(display_width(duration));
        }
    }
    let mut out = String::new();
    for row in rows {
        let line = match row {
            TreeRow::Span {
                prefix,
                name,
                service,
                duration,
                details,
            } => {
                let head = format!("{prefix}{name}");
                format!(
                    "{}{GAP}{}{GAP}{}{GAP}{details}",
                    pad_right(&head, name_width),
                    pad_right(service, service_width),
                    pad_left(duration, duration_width),
                )
            }
            TreeRow::Note { prefix, text } => format!("{prefix}{text}"),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Aligns rows of cells in columns; rows may have different lengths (the
/// optional trailing cell of a log line).
fn layout_table(rows: &[Vec<String>], right_aligned: &[bool]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(display_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if right_aligned.get(column).copied().unwrap_or(false) {
                    pad_left(cell, widths[column])
                } else {
                    pad_right(cell, widths[column])
                }
            })
            .collect();
        out.push_str(cells.join(GAP).trim_end());
        out.push('\n');
    }
    out
}

/// Terminal columns a string takes: CJK and other wide characters count 2.
fn display_width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

fn pad_right(text: &str, width: usize) -> String {
    let fill = width.saturating_sub(display_width(text));
    format!("{text}{}", " ".repeat(fill))
}

fn pad_left(text: &str, width: usize) -> String {
    let fill = width.saturating_sub(display_width(text));
    format!("{}{text}", " ".repeat(fill))
}

/// An attribute value as it reads on a command line: strings bare unless
/// they would be ambiguous, arrays as `[a,b]`, maps as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => {
            if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == '=') {
                clean(&Value::String(text.clone()).to_string())
            } else {
                clean(text)
            }
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", inner.join(","))
        }
        other => clean(&other.to_string()),
    }
}

/// Prose (an error message): strings unquoted even with spaces.
fn plain_text(value: &Value) -> String {
    match value {
        Value::String(text) => clean(text),
        other => value_text(other),
    }
}

fn body_text(body: &Value) -> String {
    match body {
        Value::Null => String::new(),
        Value::String(text) => clean(text),
        other => clean(&other.to_string()),
    }
}

fn severity_label(text: &str, number: u64) -> String {
    if !text.is_empty() {
        return clean(&text.to_uppercase());
    }
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "-",
    }
    .to_owned()
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        clean(text)
    }
}

/// Telemetry text is untrusted: a newline would break the one-line layout
/// and an escape sequence could drive the terminal, so control characters
/// are shown escaped (`\n`, `\u{1b}`).
fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `null` reads as the type's default, as a missing field does.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// int64 nanos are strings in the API (browsers lose precision on big
/// numbers); numbers and `null` are tolerated, garbage reads as 0 rather
/// than failing the whole rendering.
fn lenient_u64<'de, D>(deserializer: D) -> Result<u64, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text.trim().parse().unwrap_or(0),
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|v| *v >= 0.0).map(|v| v as u64))
            .unwrap_or(0),
        _ => 0,
    })
}

#[cfg(test)]
mod tests;
