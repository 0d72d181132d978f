//! The error tracker's own SQLite file (`<data_dir>/errors.sqlite`):
//! issues, occurrence keys (idempotency), hourly counts, facets, samples
//! and the re-derivation watermark.
//!
//! Tables:
//! - `issues`: one row per fingerprint, with counts, lifecycle and the
//!   first sample;
//! - `occurrences`: one row per counted occurrence, primary key = its
//!   idempotency key, so a replayed occurrence is ignored (`INSERT OR
//!   IGNORE` decides whether anything is counted); kept 15 days, which
//!   also feeds the latest samples;
//! - `hourly`: counts per issue and hour; `facets`: counts per issue,
//!   attribute key and value (at most [`MAX_FACET_VALUES`] values a key);
//! - `meta`: the watermark (unix nanos) below which everything was decided,
//!   and whether the last run stopped cleanly.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ashiato_model::{SpanId, TraceId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Value, json};

use crate::fingerprint::Fingerprint;
use crate::stack::Frame;
use crate::types::{
    Facet, IssueDetail, IssueFilter, IssueId, IssueSort, IssueStatus, IssueSummary, Sample, Source,
    StatusChange,
};

/// Distinct values kept per issue and attribute key; more are not counted
/// (a user-id facet must not grow without bound).
pub const MAX_FACET_VALUES: usize = 50;
/// Occurrence rows (keys and samples) older than this are pruned.
pub const OCCURRENCE_RETENTION_NS: u64 = 15 * 24 * HOUR_NS;
pub const HOUR_NS: u64 = 3_600_000_000_000;

/// The hour bucket of a time (unix nanos).
pub fn hour_of(time_unix_nano: u64) -> i64 {
    to_i64(time_unix_nano / HOUR_NS)
}

/// Errors of the issue database.
#[derive(Debug, thiserror::Error)]
pub enum ErrorsDbError {
    #[error("errors database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("issue {0} not found")]
    NotFound(IssueId),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS issues (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    components TEXT NOT NULL,
    algorithm_version INTEGER NOT NULL,
    title TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    culprit TEXT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT NOT NULL,
    regressed INTEGER NOT NULL,
    resolved_in_version TEXT,
    resolved_at INTEGER NOT NULL DEFAULT 0,
    sources INTEGER NOT NULL,
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    first_version TEXT NOT NULL,
    last_version TEXT NOT NULL,
    stack TEXT NOT NULL,
    first_sample TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS occurrences (
    key TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    trace_id TEXT,
    sample TEXT NOT NULL,
    members TEXT NOT NULL,
    error_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS occurrences_issue_time ON occurrences (issue_id, time);
CREATE INDEX IF NOT EXISTS occurrences_trace ON occurrences (trace_id);
CREATE TABLE IF NOT EXISTS hourly (
    issue_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (issue_id, hour)
);
CREATE TABLE IF NOT EXISTS facets (
    issue_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (issue_id, key, value)
);
CREATE TABLE IF NOT EXISTS status_changes (
    issue_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    status TEXT NOT NULL,
    resolved_in_version TEXT,
    changed_by TEXT
);
CREATE INDEX IF NOT EXISTS status_changes_issue ON status_changes (issue_id, time);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Opens (creating) the database with WAL journaling, so the API's reads
/// never wait for the tracker's writes.
pub fn open(path: &Path) -> Result<Connection, ErrorsDbError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "wal")?;
    connection.pragma_update(None, "synchronous", "normal")?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// Page cache of the tracker's connection, KiB: the occurrence indexes
/// (keys, traces) take random inserts, and with SQLite's default 2 MiB
/// cache most of them read a page back from the file first.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// WAL pages between checkpoints: hot pages (issues, facets, index
/// interiors) rewritten by many rounds are copied to the database once per
/// checkpoint, so fewer checkpoints copy fewer pages.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 4_000;

/// Opens the tracker's (only writing) connection.
pub fn open_writer(path: &Path) -> Result<Connection, ErrorsDbError> {
    let connection = open(path)?;
    connection.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    connection.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    Ok(connection)
}

/// An occurrence ready to be counted.
pub struct NewOccurrence<'a> {
    pub key: &'a str,
    pub issue_id: &'a IssueId,
    pub fingerprint: &'a Fingerprint,
    pub title: &'a str,
    pub error_type: &'a str,
    pub culprit: &'a str,
    pub stack: &'a [Frame],
    pub sources: i64,
    pub sample: &'a Sample,
    pub members: &'a [SpanId],
    pub service: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
}

/// What counting a new occurrence did to its issue (a replayed one is
/// not counted at all: see [`insert_occurrence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    New,
    Regressed,
    Repeated,
}

/// Records an occurrence's idempotency key (with its sample, or `""` when
/// the round has 21 newer ones of the same issue: the detail view shows
/// the latest 20 besides the first); `false` when the key was counted before.
pub fn insert_occurrence(
    tx: &Transaction<'_>,
    occurrence: &NewOccurrence<'_>,
    sample: Option<&str>,
) -> Result<bool, ErrorsDbError> {
    let members: Vec<String> = occurrence.members.iter().map(SpanId::to_hex).collect();
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO occurrences (key, issue_id, time, trace_id, sample, members, error_type)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            occurrence.key,
            occurrence.issue_id.as_str(),
            to_i64(occurrence.sample.time_unix_nano),
            occurrence.sample.trace_id.map(|trace| trace.to_hex()),
            sample.unwrap_or_default(),
            json!(members).to_string(),
            occurrence.error_type,
        ])?;
    Ok(inserted > 0)
}

/// The fields of an issue that counting changes, held in memory for one
/// round so that an issue's row is written once per round, not once per
/// occurrence. [`IssueState::add`] applies an occurrence exactly as one
/// `UPDATE` per occurrence would, in the same order.
#[derive(Debug, Clone)]
pub struct IssueState {
    status: String,
    resolved_in: Option<String>,
    resolved_at: i64,
    regressed: bool,
    sources: i64,
    message: String,
    first_version: String,
    last_version: String,
    first_seen: i64,
    last_seen: i64,
    /// Occurrences added this round and not yet written.
    added: i64,
}

impl IssueState {
    /// Applies one more occurrence of this issue.
    pub fn add(&mut self, occurrence: &NewOccurrence<'_>) -> Counted {
        let time = to_i64(occurrence.sample.time_unix_nano);
        let regresses = self.status == IssueStatus::Resolved.as_str()
            && time > self.resolved_at
            && !older_version(occurrence.version, self.resolved_in.as_deref());
        self.added += 1;
        self.sources |= occurrence.sources;
        // the latest message and version follow the newest occurrence;
        // replays of older data only add to the count
        if time >= self.last_seen {
            self.message.clone_from(&occurrence.sample.message);
            if !occurrence.version.is_empty() {
                self.last_version = occurrence.version.to_owned();
            }
        }
        if self.first_version.is_empty() {
            self.first_version = occurrence.version.to_owned();
        }
        self.last_seen = self.last_seen.max(time);
        self.first_seen = self.first_seen.min(time);
        if regresses {
            self.status = IssueStatus::Open.as_str().to_owned();
            self.regressed = true;
            Counted::Regressed
        } else {
            Counted::Repeated
        }
    }
}

/// The issue's current state, or `None` if it does not exist yet.
pub fn load_issue(tx: &Transaction<'_>, id: &IssueId) -> Result<Option<IssueState>, ErrorsDbError> {
    Ok(tx
        .prepare_cached(
            "SELECT status, resolved_in_version, resolved_at, regressed, sources, message,
                first_version, last_version, first_seen, last_seen
             FROM issues WHERE id = ?1",
        )?
        .query_row([id.as_str()], |row| {
            Ok(IssueState {
                status: row.get(0)?,
                resolved_in: row.get(1)?,
                resolved_at: row.get(2)?,
                regressed: row.get::<_, i64>(3)? != 0,
                sources: row.get(4)?,
                message: row.get(5)?,
                first_version: row.get(6)?,
                last_version: row.get(7)?,
                first_seen: row.get(8)?,
                last_seen: row.get(9)?,
                added: 0,
            })
        })
        .optional()?)
}

/// The oldest issue of the same service and environment that is the same
/// error as `fingerprint` seen from another depth
/// ([`Fingerprint::same_error_deeper`]), for a fingerprint that has no
/// issue of its own yet.
pub fn deeper_issue(
    tx: &Transaction<'_>,
    fingerprint: &Fingerprint,
    service: &str,
    environment: &str,
) -> Result<Option<IssueId>, ErrorsDbError> {
    let mut statement = tx.prepare_cached(
        "SELECT id, components FROM issues WHERE service = ?1 AND environment = ?2
         ORDER BY first_seen, id",
    )?;
    let mut rows = statement.query(params![service, environment])?;
    while let Some(row) = rows.next()? {
        let components: String = row.get(1)?;
        let components: Vec<String> = serde_json::from_str(&components).unwrap_or_default();
        if fingerprint.same_error_deeper(&components) {
            let id: String = row.get(0)?;
            if let Some(id) = IssueId::parse(&id) {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// Opens an issue with its first occurrence (counted once) and returns its
/// state for the rest of the round.
pub fn insert_issue(
    tx: &Transaction<'_>,
    occurrence: &NewOccurrence<'_>,
    sample: &str,
) -> Result<IssueState, ErrorsDbError> {
    let time = to_i64(occurrence.sample.time_unix_nano);
    let stack: Vec<Value> = occurrence.stack.iter().map(frame_json).collect();
    tx.prepare_cached(
        "INSERT INTO issues (id, hash, components, algorithm_version, title, error_type, message,
            culprit, service, environment, status, regressed, sources, count, first_seen,
            last_seen, first_version, last_version, stack, first_sample)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', 0, ?11, 1, ?12, ?12, ?13, ?13, ?14, ?15)",
    )?
    .execute(params![
        occurrence.issue_id.as_str(),
        occurrence.fingerprint.hash,
        json!(occurrence.fingerprint.components).to_string(),
        occurrence.fingerprint.algorithm_version,
        occurrence.title,
        occurrence.error_type,
        occurrence.sample.message,
        occurrence.culprit,
        occurrence.service,
        occurrence.environment,
        occurrence.sources,
        time,
        occurrence.version,
        Value::Array(stack).to_string(),
        sample,
    ])?;
    Ok(IssueState {
        status: IssueStatus::Open.as_str().to_owned(),
        resolved_in: None,
        resolved_at: 0,
        regressed: false,
        sources: occurrence.sources,
        message: occurrence.sample.message.clone(),
        first_version: occurrence.version.to_owned(),
        last_version: occurrence.version.to_owned(),
        first_seen: time,
        last_seen: time,
        added: 0,
    })
}

/// Writes what a round added to an issue (nothing if it added nothing).
pub fn store_issue(
    tx: &Transaction<'_>,
    id: &IssueId,
    state: &IssueState,
) -> Result<(), ErrorsDbError> {
    if state.added == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE issues SET count = count + ?2, sources = ?3, message = ?4, first_version = ?5,
            last_version = ?6, first_seen = ?7, last_seen = ?8, status = ?9, regressed = ?10
         WHERE id = ?1",
    )?
    .execute(params![
        id.as_str(),
        state.added,
        state.sources,
        state.message,
        state.first_version,
        state.last_version,
        state.first_seen,
        state.last_seen,
        state.status,
        state.regressed,
    ])?;
    Ok(())
}

/// Adds per-hour counts, aggregated over a batch: `(issue, hour) → count`.
pub fn add_hourly(
    tx: &Transaction<'_>,
    counts: &HashMap<(IssueId, i64), i64>,
) -> Result<(), ErrorsDbError> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO hourly (issue_id, hour, count) VALUES (?1, ?2, ?3)
         ON CONFLICT (issue_id, hour) DO UPDATE SET count = count + ?3",
    )?;
    for ((issue, hour), count) in counts {
        upsert.execute(params![issue.as_str(), hour, count])?;
    }
    Ok(())
}

/// Values already counted for one issue and attribute key.
pub fn facet_values(
    connection: &Connection,
    issue: &IssueId,
    key: &str,
) -> Result<HashSet<String>, ErrorsDbError> {
    let mut statement =
        connection.prepare_cached("SELECT value FROM facets WHERE issue_id = ?1 AND key = ?2")?;
    let rows = statement.query_map(params![issue.as_str(), key], |row| row.get(0))?;
    let mut values = HashSet::new();
    for row in rows {
        values.insert(row?);
    }
    Ok(values)
}

/// A round's facet counts: issue → key → value → count.
pub type FacetCounts = HashMap<IssueId, HashMap<String, HashMap<String, i64>>>;

/// Adds facet counts, aggregated over a round. The caller has already
/// bounded the distinct values per key.
pub fn add_facets(tx: &Transaction<'_>, counts: &FacetCounts) -> Result<(), ErrorsDbError> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO facets (issue_id, key, value, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (issue_id, key, value) DO UPDATE SET count = count + ?4",
    )?;
    for (issue, keys) in counts {
        for (key, values) in keys {
            for (value, count) in values {
                upsert.execute(params![issue.as_str(), key, value, count])?;
            }
        }
    }
    Ok(())
}

/// Whether `version` is older than `resolved_in` (then it cannot regress
/// an issue resolved in that version). Unknown versions are not older.
pub fn older_version(version: &str, resolved_in: Option<&str>) -> bool {
    let Some(resolved_in) = resolved_in.filter(|text| !text.is_empty()) else {
        return false;
    };
    if version.is_empty() {
        return false;
    }
    version_parts(version) < version_parts(resolved_in)
}

/// `v1.10.2-rc1` → numbers compare as numbers, words as text.
fn version_parts(version: &str) -> Vec<(u64, String)> {
    version
        .trim_start_matches(['v', 'V'])
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| match part.parse::<u64>() {
            Ok(number) => (number, String::new()),
            Err(_) => (u64::MAX, part.to_owned()),
        })
        .collect()
}

/// Spans already counted for a trace: every member of its occurrences,
/// with the error type, for deduplicating late candidates.
pub fn trace_members(
    connection: &Connection,
    trace: TraceId,
) -> Result<Vec<(Vec<SpanId>, String)>, ErrorsDbError> {
    let mut statement = connection
        .prepare_cached("SELECT members, error_type FROM occurrences WHERE trace_id = ?1")?;
    let rows = statement.query_map([trace.to_hex()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (members, error_type) = row?;
        let spans = serde_json::from_str::<Vec<String>>(&members)
            .unwrap_or_default()
            .iter()
            .filter_map(|hex| SpanId::from_hex(hex).ok())
            .collect();
        out.push((spans, error_type));
    }
    Ok(out)
}

pub fn watermark(connection: &Connection) -> Result<Option<u64>, ErrorsDbError> {
    let value: Option<i64> = connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'watermark'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.map(|value| u64::try_from(value).unwrap_or(0)))
}

pub fn set_watermark(connection: &Connection, unix_nano: u64) -> Result<(), ErrorsDbError> {
    connection
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('watermark', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
        )?
        .execute([to_i64(unix_nano)])?;
    Ok(())
}

/// Whether the last run stopped with everything it received decided (see
/// `Tracker::stop_cleanly`).
pub fn clean_stop(connection: &Connection) -> Result<bool, ErrorsDbError> {
    let value: Option<i64> = connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'clean_stop'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value == Some(1))
}

pub fn set_clean_stop(connection: &Connection, clean: bool) -> Result<(), ErrorsDbError> {
    connection
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('clean_stop', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
        )?
        .execute([i64::from(clean)])?;
    Ok(())
}

/// Drops occurrence rows and hourly counts past retention (hourly, so a
/// table scan is fine; an index on time would cost every insert).
pub fn prune(connection: &Connection, now: u64) -> Result<usize, ErrorsDbError> {
    let cutoff = to_i64(now.saturating_sub(OCCURRENCE_RETENTION_NS));
    let removed = connection.execute("DELETE FROM occurrences WHERE time < ?1", [cutoff])?;
    connection.execute(
        "DELETE FROM hourly WHERE hour < ?1",
        [cutoff / HOUR_NS as i64],
    )?;
    Ok(removed)
}

pub fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn frame_json(frame: &Frame) -> Value {
    json!({
        "function": frame.function,
        "module": frame.module,
        "file": frame.file,
        "line": frame.line,
        "in_app": frame.in_app,
    })
}

fn frame_from_json(value: &Value) -> Frame {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    Frame {
        function: text("function"),
        module: text("module"),
        file: text("file"),
        line: value["line"]
            .as_u64()
            .and_then(|line| u32::try_from(line).ok()),
        in_app: value["in_app"].as_bool().unwrap_or(false),
    }
}

/// A sample as stored: serialized straight from borrowed fields (building
/// a `serde_json::Value` first cost an allocation per attribute).
#[derive(serde::Serialize)]
struct SampleJson<'a> {
    time: u64,
    trace_id: Option<String>,
    span_id: Option<String>,
    source: &'static str,
    message: &'a str,
    #[serde(serialize_with = "attributes_map")]
    attributes: &'a [(String, String)],
    ancestors: Vec<String>,
}

fn attributes_map<S: serde::Serializer>(
    attributes: &&[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(attributes.iter().map(|(key, value)| (key, value)))
}

/// The JSON text of a sample (what [`sample_from_json`] reads).
pub fn sample_json(sample: &Sample) -> String {
    serde_json::to_string(&SampleJson {
        time: sample.time_unix_nano,
        trace_id: sample.trace_id.map(|id| id.to_hex()),
        span_id: sample.span_id.map(|id| id.to_hex()),
        source: sample.source.as_str(),
        message: &sample.message,
        attributes: &sample.attributes,
        ancestors: sample.ancestors.iter().map(SpanId::to_hex).collect(),
    })
    // serializing strings and numbers cannot fail
    .unwrap_or_default()
}

fn sample_from_json(value: &Value) -> Sample {
    let attributes = value["attributes"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Sample {
        time_unix_nano: value["time"].as_u64().unwrap_or(0),
        trace_id: value["trace_id"]
            .as_str()
            .and_then(|hex| TraceId::from_hex(hex).ok()),
        span_id: value["span_id"]
            .as_str()
            .and_then(|hex| SpanId::from_hex(hex).ok()),
        source: value["source"]
            .as_str()
            .and_then(Source::parse)
            .unwrap_or(Source::Span),
        message: value["message"].as_str().unwrap_or_default().to_owned(),
        attributes,
        ancestors: value["ancestors"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().and_then(|hex| SpanId::from_hex(hex).ok()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

const SUMMARY_COLUMNS: &str = "id, title, error_type, message, culprit, service, environment,
    status, regressed, sources, count, first_seen, last_seen, first_version, last_version,
    resolved_in_version";

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IssueSummary> {
    let id: String = row.get(0)?;
    let status: String = row.get(7)?;
    let nanos = |index: usize| -> rusqlite::Result<u64> {
        Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
    };
    Ok(IssueSummary {
        id: IssueId::parse(&id).unwrap_or_else(|| IssueId::from_hash(&id)),
        title: row.get(1)?,
        error_type: row.get(2)?,
        message: row.get(3)?,
        culprit: row.get(4)?,
        service: row.get(5)?,
        environment: row.get(6)?,
        status: IssueStatus::parse(&status).unwrap_or(IssueStatus::Open),
        regressed: row.get::<_, i64>(8)? != 0,
        sources: Source::from_bits(row.get(9)?),
        count: nanos(10)?,
        first_seen: nanos(11)?,
        last_seen: nanos(12)?,
        first_version: row.get(13)?,
        last_version: row.get(14)?,
        resolved_in_version: row.get(15)?,
        hourly_24h: Vec::new(),
    })
}

/// Issues matching `filter`, with their last 24 hours of counts.
pub fn list(
    connection: &Connection,
    filter: &IssueFilter,
    now: u64,
) -> Result<Vec<IssueSummary>, ErrorsDbError> {
    let order = match filter.sort {
        IssueSort::LastSeen => "last_seen DESC",
        IssueSort::FirstSeen => "first_seen DESC",
        IssueSort::Count => "count DESC",
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM issues
         WHERE (?1 IS NULL OR status = ?1)
           AND (?2 IS NULL OR service = ?2)
           AND (?3 IS NULL OR environment = ?3)
           AND (?4 IS NULL OR (sources & ?4) != 0)
           AND (?5 IS NULL OR instr(lower(title || ' ' || message || ' ' || error_type || ' ' || culprit), lower(?5)) > 0)
         ORDER BY {order}, id LIMIT ?6"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let limit = i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX);
    let rows = statement.query_map(
        params![
            filter.status.map(IssueStatus::as_str),
            filter.service,
            filter.environment,
            filter.source.map(Source::bit),
            filter.q,
            limit
        ],
        summary_from_row,
    )?;
    let mut issues = Vec::new();
    for row in rows {
        let mut issue = row?;
        issue.hourly_24h = hourly(connection, &issue.id, now, 24)?;
        issues.push(issue);
    }
    Ok(issues)
}

pub fn summary(
    connection: &Connection,
    id: &IssueId,
    now: u64,
) -> Result<IssueSummary, ErrorsDbError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM issues WHERE id = ?1");
    let mut issue = connection
        .prepare_cached(&sql)?
        .query_row([id.as_str()], summary_from_row)
        .optional()?
        .ok_or_else(|| ErrorsDbError::NotFound(id.clone()))?;
    issue.hourly_24h = hourly(connection, id, now, 24)?;
    Ok(issue)
}

/// Counts per hour for the `hours` hours up to `now`, oldest first.
fn hourly(
    connection: &Connection,
    id: &IssueId,
    now: u64,
    hours: u64,
) -> Result<Vec<u64>, ErrorsDbError> {
    let current = now / HOUR_NS;
    let first = current.saturating_sub(hours - 1);
    let mut counts = vec![0u64; hours as usize];
    let mut statement = connection.prepare_cached(
        "SELECT hour, count FROM hourly WHERE issue_id = ?1 AND hour >= ?2 AND hour <= ?3",
    )?;
    let rows = statement.query_map(
        params![id.as_str(), to_i64(first), to_i64(current)],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
    )?;
    for row in rows {
        let (hour, count) = row?;
        let index = u64::try_from(hour).unwrap_or(0).saturating_sub(first) as usize;
        if let Some(slot) = counts.get_mut(index) {
            *slot = u64::try_from(count).unwrap_or(0);
        }
    }
    Ok(counts)
}

/// Everything about one issue.
pub fn detail(
    connection: &Connection,
    id: &IssueId,
    now: u64,
) -> Result<IssueDetail, ErrorsDbError> {
    let summary = summary(connection, id, now)?;
    let (hash, components, version, stack, first_sample): (String, String, u32, String, String) =
        connection.query_row(
            "SELECT hash, components, algorithm_version, stack, first_sample FROM issues WHERE id = ?1",
            [id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
        )?;
    let fingerprint = Fingerprint {
        hash,
        components: serde_json::from_str(&components).unwrap_or_default(),
        algorithm_version: version,
    };
    let stack = serde_json::from_str::<Value>(&stack)
        .ok()
        .and_then(|value| {
            value
                .as_array()
                .map(|frames| frames.iter().map(frame_from_json).collect())
        })
        .unwrap_or_default();
    let mut samples = Vec::new();
    if let Ok(first) = serde_json::from_str::<Value>(&first_sample) {
        samples.push(sample_from_json(&first));
    }
    let mut statement = connection.prepare_cached(
        "SELECT sample FROM occurrences WHERE issue_id = ?1 AND sample != ''
         ORDER BY time DESC, key LIMIT 21",
    )?;
    let rows = statement.query_map([id.as_str()], |row| row.get::<_, String>(0))?;
    for row in rows {
        let Ok(value) = serde_json::from_str::<Value>(&row?) else {
            continue;
        };
        let sample = sample_from_json(&value);
        if samples.first() != Some(&sample) && samples.len() < 21 {
            samples.push(sample);
        }
    }
    Ok(IssueDetail {
        hourly_14d: hourly(connection, id, now, 14 * 24)?,
        summary,
        stack,
        fingerprint,
        samples,
        facets: facets(connection, id)?,
    })
}

/// The latest hand-made status changes of an issue (twenty), newest first.
pub fn status_history(
    connection: &Connection,
    id: &IssueId,
) -> Result<Vec<StatusChange>, ErrorsDbError> {
    let mut statement = connection.prepare_cached(
        "SELECT time, status, resolved_in_version, changed_by FROM status_changes
         WHERE issue_id = ?1 ORDER BY time DESC, rowid DESC LIMIT 20",
    )?;
    let rows = statement.query_map([id.as_str()], |row| {
        let status: String = row.get(1)?;
        Ok(StatusChange {
            time_unix_nano: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
            status: IssueStatus::parse(&status).unwrap_or(IssueStatus::Open),
            resolved_in_version: row.get(2)?,
            changed_by: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, rusqlite::Error>>()?)
}

/// Top values per key (ten), keys by how many occurrences carry them.
fn facets(connection: &Connection, id: &IssueId) -> Result<Vec<Facet>, ErrorsDbError> {
    let mut statement = connection.prepare_cached(
        "SELECT key, value, count FROM facets WHERE issue_id = ?1 ORDER BY key, count DESC, value",
    )?;
    let rows = statement.query_map([id.as_str()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut facets: Vec<(u64, Facet)> = Vec::new();
    for row in rows {
        let (key, value, count) = row?;
        let count = u64::try_from(count).unwrap_or(0);
        match facets.last_mut() {
            Some((total, facet)) if facet.key == key => {
                *total += count;
                if facet.values.len() < 10 {
                    facet.values.push((value, count));
                }
            }
            _ => facets.push((
                count,
                Facet {
                    key,
                    values: vec![(value, count)],
                },
            )),
        }
    }
    facets.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
    Ok(facets
        .into_iter()
        .take(30)
        .map(|(_, facet)| facet)
        .collect())
}

/// Sets an issue's status (resolving optionally in a version), recording
/// the change and who made it (`changed_by`, when known) in its history.
pub fn set_status(
    connection: &Connection,
    id: &IssueId,
    status: IssueStatus,
    resolved_in_version: Option<&str>,
    changed_by: Option<&str>,
    now: u64,
) -> Result<IssueSummary, ErrorsDbError> {
    let resolved_in = match status {
        IssueStatus::Resolved => resolved_in_version.filter(|text| !text.is_empty()),
        _ => None,
    };
    let changed = connection.execute(
        "UPDATE issues SET status = ?2, resolved_in_version = ?3, resolved_at = ?4,
            regressed = CASE WHEN ?2 = 'open' THEN regressed ELSE 0 END
         WHERE id = ?1",
        params![id.as_str(), status.as_str(), resolved_in, to_i64(now)],
    )?;
    if changed == 0 {
        return Err(ErrorsDbError::NotFound(id.clone()));
    }
    connection.execute(
        "INSERT INTO status_changes (issue_id, time, status, resolved_in_version, changed_by)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id.as_str(),
            to_i64(now),
            status.as_str(),
            resolved_in,
            changed_by
        ],
    )?;
    summary(connection, id, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_version_order() {
        assert!(older_version("1.2.9", Some("1.10.0")));
        assert!(!older_version("1.10.0", Some("1.10.0")));
        assert!(!older_version("2.0", Some("v1.9")));
        assert!(!older_version("", Some("1.0")));
        assert!(!older_version("0.1", None));
    }
}
