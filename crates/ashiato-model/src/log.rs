//! Log records and severities.

use std::sync::Arc;

use crate::{AttrValue, Attributes, Resource, Scope, SpanId, TraceId};

/// The six severity ranges of the OpenTelemetry log data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// The lowest severity number of the range (`warn` → 13).
    pub fn min_number(&self) -> u8 {
        match self {
            Severity::Trace => 1,
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
            Severity::Fatal => 21,
        }
    }

    /// The range a severity number falls in; `None` for 0 (unspecified) or out of range.
    pub fn from_number(number: u8) -> Option<Severity> {
        Some(match number {
            1..=4 => Severity::Trace,
            5..=8 => Severity::Debug,
            9..=12 => Severity::Info,
            13..=16 => Severity::Warn,
            17..=20 => Severity::Error,
            21..=24 => Severity::Fatal,
            _ => return None,
        })
    }

    /// Parses the usual names (`warn`, `warning`, `ERROR`, `err`, `critical`…).
    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Severity::Trace,
            "debug" => Severity::Debug,
            "info" | "information" | "notice" => Severity::Info,
            "warn" | "warning" => Severity::Warn,
            "error" | "err" => Severity::Error,
            "fatal" | "critical" | "crit" | "emergency" | "alert" | "panic" => Severity::Fatal,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// One log record, with its resource and scope attached.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    /// 0 (unspecified) to 24.
    pub severity_number: u8,
    pub severity_text: String,
    pub body: AttrValue,
    pub attributes: Attributes,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub flags: u32,
    pub event_name: String,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl LogRecord {
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// The record's time, falling back to when the collector saw it (OTLP
    /// says 0 means unknown).
    pub fn effective_time_unix_nano(&self) -> u64 {
        if self.time_unix_nano != 0 {
            self.time_unix_nano
        } else {
            self.observed_time_unix_nano
        }
    }

    /// The severity number, or one derived from the text when the number is 0
    /// (some bridges only send text).
    pub fn effective_severity_number(&self) -> u8 {
        if self.severity_number != 0 {
            return self.severity_number;
        }
        Severity::parse(&self.severity_text).map_or(0, |severity| severity.min_number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_severity_ranges() {
        assert_eq!(Severity::from_number(17), Some(Severity::Error));
        assert_eq!(Severity::from_number(0), None);
        assert_eq!(Severity::parse("Warning").map(|s| s.min_number()), Some(13));
    }
}
