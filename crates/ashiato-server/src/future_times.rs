//! Times from the future are brought back at ingest.
//!
//! Retention drops a whole segment once its newest row is older than
//! `--retention`, so one span or log record dated years ahead (a clock set
//! wrong, a unit mistake: microseconds read as nanoseconds do the opposite,
//! seconds × 10⁹ twice do this) would keep its segment, and disk use would
//! no longer be bounded by retention. Before a batch is stored:
//!
//! - a span starting more than [`FUTURE_BOUND`] after now is moved back so
//!   it starts now, its duration (and its events' offsets) kept; an end
//!   still beyond the bound is cut to it;
//! - a log record's time or observed time beyond the bound becomes now;
//! - the original value is kept as an int attribute
//!   (`ashiato.original_start_time_unix_nano`,
//!   `ashiato.original_time_unix_nano`), so nothing is silently lost.
//!
//! One hour covers real clock skew between hosts by a wide margin while
//! keeping a segment's retention at most an hour late.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ashiato_model::{AttrValue, KeyValue, LogRecord, Span};

/// How far ahead of the server's clock a time may be before it is moved.
pub const FUTURE_BOUND: Duration = Duration::from_secs(3600);

const ORIGINAL_START: &str = "ashiato.original_start_time_unix_nano";
const ORIGINAL_TIME: &str = "ashiato.original_time_unix_nano";

pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

fn bound(now: u64) -> u64 {
    now.saturating_add(u64::try_from(FUTURE_BOUND.as_nanos()).unwrap_or(u64::MAX))
}

fn original(key: &str, value: u64) -> KeyValue {
    KeyValue::new(
        key,
        AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

/// Brings spans dated beyond `now` + [`FUTURE_BOUND`] back; returns how many moved.
pub fn clamp_spans(spans: &mut [Span], now: u64) -> usize {
    let limit = bound(now);
    let mut moved = 0;
    for span in spans {
        if span.start_time_unix_nano > limit {
            let shift = span.start_time_unix_nano - now;
            span.attributes
                .push(original(ORIGINAL_START, span.start_time_unix_nano));
            span.start_time_unix_nano = now;
            span.end_time_unix_nano = span.end_time_unix_nano.saturating_sub(shift).max(now);
            for event in &mut span.events {
                event.time_unix_nano = event.time_unix_nano.saturating_sub(shift);
            }
            moved += 1;
        }
        if span.end_time_unix_nano > limit {
            span.end_time_unix_nano = limit;
            moved += usize::from(span.start_time_unix_nano <= limit);
        }
        for event in &mut span.events {
            event.time_unix_nano = event.time_unix_nano.min(limit);
        }
    }
    moved
}

/// Brings log records dated beyond `now` + [`FUTURE_BOUND`] back; returns how many moved.
pub fn clamp_logs(records: &mut [LogRecord], now: u64) -> usize {
    let limit = bound(now);
    let mut moved = 0;
    for record in records {
        let mut changed = false;
        if record.time_unix_nano > limit {
            record
                .attributes
                .push(original(ORIGINAL_TIME, record.time_unix_nano));
            record.time_unix_nano = now;
            changed = true;
        }
        if record.observed_time_unix_nano > limit {
            record.observed_time_unix_nano = now;
            changed = true;
        }
        moved += usize::from(changed);
    }
    moved
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ashiato_model::{Resource, Scope, SpanId, SpanKind, Status, TraceId};

    use super::*;

    const NOW: u64 = 1_800_000_000_000_000_000;
    const HOUR: u64 = 3_600_000_000_000;

    fn span(start: u64, end: u64) -> Span {
        Span {
            trace_id: TraceId::from_halves(1, 2),
            span_id: SpanId::from_u64(3).unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind: SpanKind::default(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: Arc::new(Resource::new(Vec::new())),
            scope: Arc::new(Scope::default()),
        }
    }

    fn record(time: u64) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: NOW,
            severity_number: 0,
            severity_text: String::new(),
            body: AttrValue::Empty,
            attributes: Vec::new(),
            trace_id: None,
            span_id: None,
            flags: 0,
            event_name: String::new(),
            resource: Arc::new(Resource::new(Vec::new())),
            scope: Arc::new(Scope::default()),
        }
    }

    #[test]
    fn test_future_spans_are_moved_back_keeping_duration() {
        // (start, end, expected start, expected end, original kept)
        let cases = [
            (NOW, NOW + 5, NOW, NOW + 5, false),
            (NOW + HOUR, NOW + HOUR + 5, NOW + HOUR, NOW + HOUR, false),
            (NOW + 100 * HOUR, NOW + 100 * HOUR + 7, NOW, NOW + 7, true),
            (u64::MAX - 1, u64::MAX, NOW, NOW + 1, true),
            (NOW - 10, NOW + 50 * HOUR, NOW - 10, NOW + HOUR, false),
        ];
        for (start, end, want_start, want_end, kept) in cases {
            let mut spans = vec![span(start, end)];
            clamp_spans(&mut spans, NOW);
            let span = &spans[0];
            assert_eq!(
                (span.start_time_unix_nano, span.end_time_unix_nano),
                (want_start, want_end),
                "{start} {end}"
            );
            assert_eq!(
                span.attributes.iter().any(|kv| kv.key == ORIGINAL_START),
                kept
            );
        }
    }

    #[test]
    fn test_future_log_times_become_now() {
        let mut records = vec![record(NOW + 1000 * HOUR), record(NOW)];
        assert_eq!(clamp_logs(&mut records, NOW), 1);
        assert_eq!(records[0].time_unix_nano, NOW);
        assert_eq!(
            records[0].attributes,
            vec![original(ORIGINAL_TIME, NOW + 1000 * HOUR)]
        );
        assert_eq!(records[1].time_unix_nano, NOW);
    }
}
