//! The error tracker's vocabulary: ids, candidates (possible errors seen at
//! ingest), issues and what the API shows of them.

use std::fmt;

use ashiato_model::{SpanId, TraceId};

use crate::fingerprint::Fingerprint;
use crate::stack::Frame;

/// An issue's short, stable id: the first 12 hex digits of its fingerprint
/// hash, so the same fingerprint gets the same id on every install.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssueId(String);

impl IssueId {
    pub const LENGTH: usize = 12;

    pub(crate) fn from_hash(hash: &str) -> IssueId {
        IssueId(hash.chars().take(IssueId::LENGTH).collect())
    }

    /// Accepts exactly 12 lowercase (or uppercase) hex digits.
    pub fn parse(text: &str) -> Option<IssueId> {
        let text = text.trim();
        (text.len() == IssueId::LENGTH && text.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .then(|| IssueId(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an occurrence was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Span,
    Log,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Span => "span",
            Source::Log => "log",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "span" => Some(Source::Span),
            "log" => Some(Source::Log),
            _ => None,
        }
    }

    pub(crate) fn bit(self) -> i64 {
        match self {
            Source::Span => 1,
            Source::Log => 2,
        }
    }

    pub(crate) fn from_bits(bits: i64) -> Vec<Source> {
        [Source::Span, Source::Log]
            .into_iter()
            .filter(|source| bits & source.bit() != 0)
            .collect()
    }
}

/// An issue's workflow state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStatus {
    Open,
    Resolved,
    Ignored,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Open => "open",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }

    pub fn parse(text: &str) -> Option<IssueStatus> {
        match text {
            "open" => Some(IssueStatus::Open),
            "resolved" => Some(IssueStatus::Resolved),
            "ignored" => Some(IssueStatus::Ignored),
            _ => None,
        }
    }
}

/// What kind of error signal a candidate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateKind {
    /// An exception: event, Datadog-style `error.*` attributes, or a log
    /// record with error fields.
    Exception,
    /// Status ERROR without any exception detail.
    StatusOnly,
    /// An ERROR log record without error fields: grouped by its template.
    LogMessage,
}

/// A possible error, extracted cheaply at ingest and decided later (after
/// the trace settles). Small on purpose: only what grouping, samples and
/// facets need.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub source: Source,
    pub kind: CandidateKind,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub parent_span_id: Option<SpanId>,
    /// Root, SERVER or CONSUMER span (a parent in another service is
    /// found when the trace settles).
    pub entry: bool,
    pub time_unix_nano: u64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub error_type: String,
    pub message: String,
    pub stack: String,
    /// `http.route`, `rpc.method` or the span name.
    pub operation: String,
    /// `error.fingerprint`, when the application chose its own grouping.
    pub fingerprint_override: Option<String>,
    /// Attributes kept for samples and facets (text values).
    pub attributes: Vec<(String, String)>,
    /// Distinguishes log records of one span (content hash).
    pub log_hash: u64,
}

/// One parent link of a settled trace: enough for ancestry questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub service: String,
}

/// A span's parent link that an ingested batch carries beside its
/// candidates (see [`crate::extract::span_links`]), so the tracker can
/// decide nesting without reading the trace back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub node: TreeNode,
}

/// What the tracker needs from the store, kept as a trait so this crate
/// stays free of the store.
pub trait TraceSource: Send {
    /// Every stored span of the trace as a parent link (empty if unknown).
    fn trace_tree(&self, trace_id: TraceId) -> Vec<TreeNode>;
}

/// An issue as lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueSummary {
    pub id: IssueId,
    pub title: String,
    pub error_type: String,
    pub message: String,
    pub culprit: String,
    pub service: String,
    pub environment: String,
    pub status: IssueStatus,
    pub regressed: bool,
    pub sources: Vec<Source>,
    pub count: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    pub first_version: String,
    pub last_version: String,
    pub resolved_in_version: Option<String>,
    /// Per-hour counts of the last 24 hours, oldest first.
    pub hourly_24h: Vec<u64>,
}

/// One recorded occurrence, as samples show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub time_unix_nano: u64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub source: Source,
    pub message: String,
    pub attributes: Vec<(String, String)>,
    pub ancestors: Vec<SpanId>,
}

/// The top values of one attribute over an issue's occurrences.
#[derive(Debug, Clone, PartialEq)]
pub struct Facet {
    pub key: String,
    pub values: Vec<(String, u64)>,
}

/// Everything known about one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueDetail {
    pub summary: IssueSummary,
    pub stack: Vec<Frame>,
    /// Per-hour counts of the last 14 days, oldest first.
    pub hourly_14d: Vec<u64>,
    pub fingerprint: Fingerprint,
    /// The first occurrence, then the latest 20 (newest first).
    pub samples: Vec<Sample>,
    pub facets: Vec<Facet>,
}

/// One status change made through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub time_unix_nano: u64,
    pub status: IssueStatus,
    pub resolved_in_version: Option<String>,
    /// The token name (or source network) that made it; `None` without
    /// access control.
    pub changed_by: Option<String>,
}

/// How lists are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueSort {
    #[default]
    LastSeen,
    FirstSeen,
    Count,
}

/// Filters of an issue list; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub status: Option<IssueStatus>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub source: Option<Source>,
    /// Case-insensitive substring of title, message, type or culprit.
    pub q: Option<String>,
    pub sort: IssueSort,
    pub limit: usize,
}

/// Why a notification fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueEventKind {
    NewIssue,
    Regression,
}

impl IssueEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueEventKind::NewIssue => "new_issue",
            IssueEventKind::Regression => "regression",
        }
    }
}

/// A lifecycle change worth a notification (never per occurrence).
#[derive(Debug, Clone, PartialEq)]
pub struct IssueEvent {
    pub kind: IssueEventKind,
    pub issue: IssueSummary,
    /// The top in-app frame, if the issue has a stack.
    pub top_frame: Option<Frame>,
}

/// One webhook delivery (a notification to one endpoint), for
/// `GET /api/v1/notifications`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    /// When it was queued.
    pub time_unix_nano: u64,
    /// `None` for a digest.
    pub issue_id: Option<IssueId>,
    /// `new_issue`, `regression` or `digest`.
    pub event: String,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due (pending and retrying deliveries).
    pub next_attempt_unix_nano: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Queued, not attempted yet.
    Pending,
    Delivered,
    /// Gave up after the last attempt.
    Failed,
    Retrying,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Retrying => "retrying",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Retrying,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}
