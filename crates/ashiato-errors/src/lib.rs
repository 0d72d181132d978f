//! Error tracking: which errors happen, how often, since when, where to
//! look, and when something new (or resolved) breaks.
//!
//! Pipeline, and where each step runs:
//! 1. [`extract`] (inline on the ingest path, cheap): spans and log records
//!    with an error signal become small [`Candidate`]s — exception events,
//!    Datadog-style `error.*` attributes, status-only ERROR spans, and log
//!    records of severity ERROR or above (structured error fields, or just
//!    a message template). Spans without any signal cost one scan of their
//!    events and attribute keys.
//! 2. [`Tracker`] (its own thread, fed by a bounded channel so ingest feels
//!    back-pressure instead of losing errors): candidates wait per trace
//!    until the trace has been quiet for the settling window, then
//!    [`settle`] decides "one error, one occurrence" with the trace's
//!    parent links: those the ingested batches carried beside their
//!    candidates ([`extract::span_links`]) when they connect every
//!    candidate to its root, else the whole trace read from the store.
//! 3. Grouping: [`stack`] parses Go, Python, JVM, Node, Rust, .NET and Ruby
//!    stacks with in-app marking; [`normalize`] masks the variable parts of
//!    messages and reduces exception types to bare names (one exception is
//!    `__main__.PaymentDeclined` on a Python span, `PaymentDeclined` in its
//!    log record); [`fingerprint`] combines them into explainable components
//!    with an algorithm version. The issue id is the first 12 hex digits of
//!    the fingerprint hash.
//! 4. Counting and lifecycle (`db`): SQLite at `<data_dir>/errors.sqlite`.
//!    Every occurrence has an idempotency key (trace + representative span,
//!    or a log record's content hash), so replays never count twice; a
//!    recovery scan at start re-derives what a crash left undecided.
//!    Resolved issues regress on a newer occurrence (not from versions older
//!    than "resolved in"); ignored issues count silently. New issues and
//!    regressions become [`IssueEvent`]s for the notifier, never per
//!    occurrence.
//! 5. Notification outbox ([`outbox`]): webhook deliveries (pending,
//!    retrying with exponential backoff, delivered, failed) and the events
//!    held for an alert-storm digest live in the same file, so they resume
//!    after a restart; the server's notifier sends them.
//!
//! Cost (measured with a throwaway probe on a shared, loaded 2-core box,
//! release build): the fast path is about 20 ns a span; a span with an
//! error costs 1 to 3 µs to extract (its attributes and stack are copied),
//! so with 5 % error spans extraction adds roughly 60 to 170 ns a span to
//! ingest. The tracker thread (measured with the benchmark harness at 5 %
//! error spans, `docs/benchmarks.md` item 7) spends about 40 µs of CPU per
//! error span, off the ingest path: about half SQLite (the idempotency row,
//! one commit per 500 ms round with each touched issue, hour and facet
//! value written once), a quarter freeing the candidates. Nested spans of
//! one failure count once, so occurrences are fewer than error spans.
//!
//! This crate knows the model and SQLite only: no HTTP, no store (the
//! server implements [`TraceSource`] over the store).

mod db;
pub mod extract;
pub mod fingerprint;
pub mod normalize;
pub mod outbox;
pub mod settle;
pub mod stack;
mod tracker;
mod types;

pub use db::{ErrorsDbError, older_version};
pub use fingerprint::{ALGORITHM_VERSION, Fingerprint};
pub use stack::Frame;
pub use tracker::{DEFAULT_SETTLE, IssueStore, RESCAN_MARGIN, Tracker, now_unix_nano};
pub use types::{
    Candidate, CandidateKind, Delivery, DeliveryStatus, Facet, IssueDetail, IssueEvent,
    IssueEventKind, IssueFilter, IssueId, IssueSort, IssueStatus, IssueSummary, Sample, Source,
    SpanLink, StatusChange, TraceSource, TreeNode,
};

/// The database file under the data directory.
pub const DB_FILE: &str = "errors.sqlite";
