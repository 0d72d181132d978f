//! The tracker: pending traces, settling, counting, recovery; and
//! [`IssueStore`], the read/patch handle the API uses.
//!
//! The tracker is single-threaded on purpose (the server runs it on its own
//! thread behind a bounded channel): candidates of a trace arrive in
//! several batches, and one owner of the pending map and the write
//! connection needs no locks.
//!
//! Exactness across restarts: pending traces live only in memory. Every
//! second the tracker records a watermark (wall-clock unix nanos) below
//! which everything received has been decided. At start the server scans
//! the store for every span and log at or after
//! [`Tracker::recovery_since`] (`watermark - RESCAN_MARGIN`) and feeds their
//! candidates in like new ones; occurrence keys make that idempotent, so
//! nothing counts twice and nothing acknowledged is lost, including what
//! sat in the channel or the pending map at a crash. The margin covers
//! spans whose start time lies before their arrival (long requests,
//! batching exporters, clock skew up to ten minutes); a span that arrives
//! later than that relative to its own timestamps and is caught by a crash
//! before it is decided is the one case recovery misses.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ashiato_model::{SpanId, TraceId};
use rusqlite::Connection;

use crate::db::{self, Counted, ErrorsDbError, NewOccurrence};
use crate::fingerprint::{Fingerprint, FingerprintInput};
use crate::normalize::normalize_message;
use crate::settle::{Decided, Tree, decide_lone, decide_trace};
use crate::stack::{self, Frame};
use crate::types::{
    Candidate, CandidateKind, IssueDetail, IssueEvent, IssueEventKind, IssueFilter, IssueId,
    IssueStatus, IssueSummary, Sample, SpanLink, TraceSource, TreeNode,
};

/// How far before the watermark recovery looks (data time vs arrival).
pub const RESCAN_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Default settling window after a trace's last candidate.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);
/// Traces pending at once; past it the oldest are decided early (memory bound).
const MAX_PENDING_TRACES: usize = 100_000;
/// Parent links kept per pending trace; past it the trace is read from the
/// store when it settles (memory bound for huge traces).
const MAX_LINKS_PER_TRACE: usize = 4_096;

struct PendingTrace {
    candidates: Vec<Candidate>,
    /// Parent links the batches carried (see [`Tracker::observe_with_links`]).
    links: Vec<TreeNode>,
    deadline: Instant,
    /// The watermark this trace holds (see `watermark_mark`).
    received_wall: u64,
}

/// Groups candidates into occurrences and issues. See the module docs.
pub struct Tracker {
    connection: Connection,
    settle: Duration,
    pending: HashMap<TraceId, PendingTrace>,
    lone: Vec<(Candidate, u64)>,
    source: Box<dyn TraceSource>,
    facets: FacetCache,
    recovering: bool,
    failed: bool,
}

/// The distinct values counted per (issue, key), so that a key past
/// [`db::MAX_FACET_VALUES`] values (user ids, request ids) costs no SQL for
/// its new values. Loaded lazily; cleared when it grows past its bound.
#[derive(Default)]
struct FacetCache {
    values: HashMap<(IssueId, String), HashSet<String>>,
    entries: usize,
}

/// Cached (issue, key) pairs before the cache starts over.
const MAX_FACET_CACHE: usize = 100_000;

impl FacetCache {
    fn clear(&mut self) {
        self.values.clear();
        self.entries = 0;
    }

    /// Adds this occurrence's attributes to the batch's facet counts.
    fn count(
        &mut self,
        connection: &Connection,
        issue: &IssueId,
        attributes: &[(String, String)],
        counts: &mut HashMap<(IssueId, String, String), i64>,
    ) -> Result<(), ErrorsDbError> {
        if self.entries > MAX_FACET_CACHE {
            self.clear();
        }
        for (key, value) in attributes {
            let slot = (issue.clone(), key.clone());
            let known = match self.values.entry(slot) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    self.entries += 1;
                    entry.insert(db::facet_values(connection, issue, key)?)
                }
            };
            if !known.contains(value) {
                if known.len() >= db::MAX_FACET_VALUES {
                    continue;
                }
                known.insert(value.clone());
            }
            *counts
                .entry((issue.clone(), key.clone(), value.clone()))
                .or_insert(0) += 1;
        }
        Ok(())
    }
}

/// How far back one undecided candidate may hold the watermark.
const MAX_WATERMARK_LAG_NS: u64 = 24 * 3_600_000_000_000;

/// The watermark a pending candidate holds: the earlier of its arrival and
/// its own time (a candidate re-derived after downtime, or sent late, is
/// older than its arrival; the recovery scan filters on data time), but at
/// most a day back.
fn watermark_mark(arrival: u64, data_time: u64) -> u64 {
    arrival.min(data_time.max(arrival.saturating_sub(MAX_WATERMARK_LAG_NS)))
}

/// Current wall-clock time, unix nanos.
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

impl Tracker {
    pub fn open(
        path: &Path,
        settle: Duration,
        source: Box<dyn TraceSource>,
    ) -> Result<Tracker, ErrorsDbError> {
        Ok(Tracker {
            connection: db::open(path)?,
            settle,
            pending: HashMap::new(),
            lone: Vec::new(),
            source,
            facets: FacetCache::default(),
            recovering: false,
            failed: false,
        })
    }

    /// Where the recovery scan starts: the watermark minus
    /// [`RESCAN_MARGIN`], or 0 (everything stored) on a first start. Until
    /// [`Tracker::set_recovering`]`(false)`, the watermark stays put, so a
    /// crash during recovery scans the same range again.
    pub fn recovery_since(&mut self) -> Result<u64, ErrorsDbError> {
        self.recovering = true;
        Ok(db::watermark(&self.connection)?.map_or(0, |mark| {
            mark.saturating_sub(RESCAN_MARGIN.as_nanos() as u64)
        }))
    }

    /// Marks the recovery scan as running or finished.
    pub fn set_recovering(&mut self, recovering: bool) {
        self.recovering = recovering;
    }

    /// Takes candidates of one ingested batch.
    pub fn observe(&mut self, candidates: Vec<Candidate>, now: Instant) {
        self.observe_with_links(candidates, Vec::new(), now);
    }

    /// Takes candidates of one ingested batch with the parent links the
    /// batch holds for them ([`crate::extract::span_links`]). A trace
    /// whose links connect every candidate to its root is decided from them
    /// alone; otherwise its spans are read from the store when it settles.
    pub fn observe_with_links(
        &mut self,
        candidates: Vec<Candidate>,
        links: Vec<SpanLink>,
        now: Instant,
    ) {
        self.take_candidates(candidates, now);
        for link in links {
            // links of traces without a pending candidate serve nothing
            if let Some(pending) = self.pending.get_mut(&link.trace_id)
                && pending.links.len() < MAX_LINKS_PER_TRACE
            {
                pending.links.push(link.node);
            }
        }
    }

    fn take_candidates(&mut self, candidates: Vec<Candidate>, now: Instant) {
        let wall = now_unix_nano();
        for candidate in candidates {
            let mark = watermark_mark(wall, candidate.time_unix_nano);
            match candidate.trace_id {
                Some(trace) => {
                    let pending = self.pending.entry(trace).or_insert_with(|| PendingTrace {
                        candidates: Vec::new(),
                        links: Vec::new(),
                        deadline: now,
                        received_wall: mark,
                    });
                    pending.deadline = now + self.settle;
                    pending.received_wall = pending.received_wall.min(mark);
                    pending.candidates.push(candidate);
                }
                None => self.lone.push((candidate, mark)),
            }
        }
    }

    /// When the next pending trace is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let trace = self.pending.values().map(|pending| pending.deadline).min();
        if self.lone.is_empty() {
            trace
        } else {
            Some(Instant::now())
        }
    }

    pub fn pending_traces(&self) -> usize {
        self.pending.len()
    }

    /// Decides every trace whose window has passed (all of them when
    /// `everything`), counts the occurrences in one transaction and returns
    /// the notifications to send.
    pub fn settle(
        &mut self,
        now: Instant,
        everything: bool,
    ) -> Result<Vec<IssueEvent>, ErrorsDbError> {
        let overflow = self.pending.len().saturating_sub(MAX_PENDING_TRACES);
        let mut due: Vec<TraceId> = self
            .pending
            .iter()
            .filter(|(_, pending)| everything || pending.deadline <= now)
            .map(|(trace, _)| *trace)
            .collect();
        if overflow > 0 {
            let mut oldest: Vec<(Instant, TraceId)> = self
                .pending
                .iter()
                .map(|(trace, pending)| (pending.deadline, *trace))
                .collect();
            oldest.sort();
            due.extend(oldest.into_iter().take(overflow).map(|(_, trace)| trace));
        }
        // a fixed order (not the map's) makes which occurrence opens an
        // issue, and so its first sample, independent of hashing
        due.sort();
        due.dedup();
        let mut decided = Vec::new();
        for trace in due {
            let Some(pending) = self.pending.remove(&trace) else {
                continue;
            };
            decided.extend(self.decide(trace, pending.candidates, pending.links)?);
        }
        decided.extend(
            self.lone
                .drain(..)
                .map(|(candidate, _)| decide_lone(candidate)),
        );
        if decided.is_empty() {
            return Ok(Vec::new());
        }
        let counted = self.count(decided);
        if counted.is_err() {
            // these occurrences are gone from memory: keep the watermark
            // where it is, so the next start's recovery scan finds them
            self.failed = true;
        }
        counted
    }

    fn decide(
        &self,
        trace: TraceId,
        candidates: Vec<Candidate>,
        links: Vec<TreeNode>,
    ) -> Result<Vec<Decided>, ErrorsDbError> {
        let counted = db::trace_members(&self.connection, trace)?;
        // the trace's spans are read only when the decision depends on spans
        // that neither the candidates nor their batches' links hold: reading
        // a sealed trace costs Parquet IO and zstd, and most failing traces
        // either hold one candidate that decides alone or arrived in one batch
        let tree = if counted.is_empty() && decides_alone(&candidates) {
            Tree::new(&[], &candidates)
        } else {
            let linked = Tree::new(&links, &candidates);
            // a late batch is checked against spans counted before, whose
            // chains these links need not hold
            if counted.is_empty() && chains_complete(&linked, &candidates) {
                linked
            } else {
                Tree::new(&self.source.trace_tree(trace), &candidates)
            }
        };
        let decided = decide_trace(candidates, &tree);
        if counted.is_empty() {
            return Ok(decided);
        }
        // a late batch of a trace decided before: what nests with an
        // occurrence already counted is the same error
        let covered: HashSet<SpanId> = counted
            .iter()
            .flat_map(|(spans, _)| spans.iter().copied())
            .collect();
        Ok(decided
            .into_iter()
            .filter(|occurrence| {
                let candidate = &occurrence.candidate;
                let overlaps = occurrence.members.iter().any(|span| covered.contains(span));
                let nested = candidate.span_id.is_some_and(|span| {
                    counted.iter().any(|(spans, error_type)| {
                        (candidate.kind == CandidateKind::StatusOnly
                            || *error_type == candidate.error_type)
                            && spans.iter().any(|other| {
                                tree.is_ancestor(span, *other) || tree.is_ancestor(*other, span)
                            })
                    })
                });
                !(overlaps || nested)
            })
            .collect())
    }

    fn count(&mut self, decided: Vec<Decided>) -> Result<Vec<IssueEvent>, ErrorsDbError> {
        let now = now_unix_nano();
        let tx = self.connection.transaction()?;
        let mut events = Vec::new();
        // hourly and facet counts are summed over the batch: one upsert per
        // distinct row instead of one per occurrence
        let mut hourly = HashMap::new();
        let mut facets = HashMap::new();
        for occurrence in &decided {
            let grouped = Grouped::new(occurrence);
            let sample = grouped.sample(occurrence);
            let counted = db::count_occurrence(
                &tx,
                &NewOccurrence {
                    key: &occurrence.key,
                    issue_id: &grouped.id,
                    fingerprint: &grouped.fingerprint,
                    title: &grouped.title,
                    error_type: &occurrence.candidate.error_type,
                    culprit: &grouped.culprit,
                    stack: &grouped.frames,
                    sources: occurrence.sources,
                    sample: &sample,
                    members: &occurrence.members,
                    service: &occurrence.candidate.service,
                    environment: &occurrence.candidate.environment,
                    version: &occurrence.candidate.version,
                },
            )?;
            if counted != Counted::Duplicate {
                *hourly
                    .entry((grouped.id.clone(), db::hour_of(sample.time_unix_nano)))
                    .or_insert(0) += 1;
                self.facets
                    .count(&tx, &grouped.id, &sample.attributes, &mut facets)?;
            }
            let kind = match counted {
                Counted::New => IssueEventKind::NewIssue,
                Counted::Regressed => IssueEventKind::Regression,
                Counted::Duplicate | Counted::Repeated => continue,
            };
            if let Ok(issue) = db::summary(&tx, &grouped.id, now) {
                tracing::info!(issue = %issue.id, event = kind.as_str(), title = %issue.title, "issue event");
                events.push(IssueEvent {
                    kind,
                    top_frame: grouped.frames.iter().find(|frame| frame.in_app).cloned(),
                    issue,
                });
            }
        }
        db::add_hourly(&tx, &hourly)?;
        db::add_facets(&tx, &facets)?;
        match tx.commit() {
            Ok(()) => Ok(events),
            Err(error) => {
                // the cache may now know values the database does not
                self.facets.clear();
                Err(error.into())
            }
        }
    }

    /// Records that everything received before the oldest pending trace
    /// (or now) is decided; called about once a second.
    pub fn checkpoint(&mut self) -> Result<(), ErrorsDbError> {
        if self.recovering || self.failed {
            return Ok(());
        }
        let now = now_unix_nano();
        let oldest = self
            .pending
            .values()
            .map(|pending| pending.received_wall)
            .chain(self.lone.iter().map(|(_, wall)| *wall))
            .min()
            .unwrap_or(now);
        db::set_watermark(&self.connection, oldest)
    }

    /// Drops occurrence rows past retention; called hourly.
    pub fn prune(&mut self) -> Result<usize, ErrorsDbError> {
        db::prune(&self.connection, now_unix_nano())
    }
}

/// The grouping of one decided occurrence: parsed stack, fingerprint, id,
/// title and culprit.
struct Grouped {
    frames: Vec<Frame>,
    fingerprint: Fingerprint,
    id: IssueId,
    title: String,
    culprit: String,
}

impl Grouped {
    fn new(occurrence: &Decided) -> Grouped {
        let candidate = &occurrence.candidate;
        let frames = stack::parse(&candidate.stack);
        let fingerprint = Fingerprint::compute(&FingerprintInput {
            service: &candidate.service,
            environment: &candidate.environment,
            error_type: &candidate.error_type,
            // status-only errors group by type and operation: their status
            // messages ("500 Internal Server Error") add nothing stable
            message: if candidate.kind == CandidateKind::StatusOnly {
                ""
            } else {
                &candidate.message
            },
            operation: &candidate.operation,
            frames: &frames,
            custom: candidate.fingerprint_override.as_deref(),
        });
        let id = IssueId::from_hash(&fingerprint.hash);
        let normalized = normalize_message(&candidate.message);
        let title = match (candidate.error_type.is_empty(), normalized.is_empty()) {
            _ if candidate.kind == CandidateKind::StatusOnly => {
                format!("{} {}", candidate.error_type, candidate.operation)
            }
            (false, false) => format!("{}: {normalized}", candidate.error_type),
            (false, true) => candidate.error_type.clone(),
            (true, false) => normalized,
            (true, true) => candidate.operation.clone(),
        };
        let culprit = frames
            .iter()
            .find(|frame| frame.in_app)
            .map(|frame| format!("{} in {}", frame.module, frame.function))
            .unwrap_or_else(|| candidate.operation.clone());
        Grouped {
            frames,
            fingerprint,
            id,
            title,
            culprit,
        }
    }

    fn sample(&self, occurrence: &Decided) -> Sample {
        let candidate = &occurrence.candidate;
        let mut attributes = candidate.attributes.clone();
        for (key, value) in &occurrence.extra_attributes {
            if !attributes.iter().any(|(existing, _)| existing == key) {
                attributes.push((key.clone(), value.clone()));
            }
        }
        Sample {
            time_unix_nano: candidate.time_unix_nano,
            trace_id: candidate.trace_id,
            span_id: candidate.span_id,
            source: candidate.source,
            message: candidate.message.clone(),
            attributes,
            ancestors: occurrence.ancestors.clone(),
        }
    }
}

/// The API's handle on the issues: reads and status changes on its own
/// connection (SQLite WAL mode lets it read while the tracker writes).
pub struct IssueStore {
    connection: Mutex<Connection>,
}

impl IssueStore {
    pub fn open(path: &Path) -> Result<IssueStore, ErrorsDbError> {
        Ok(IssueStore {
            connection: Mutex::new(db::open(path)?),
        })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&Connection) -> Result<T, ErrorsDbError>,
    ) -> Result<T, ErrorsDbError> {
        // a panic while holding the lock leaves the connection usable
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        run(&connection)
    }

    pub fn list(&self, filter: &IssueFilter) -> Result<Vec<IssueSummary>, ErrorsDbError> {
        self.with(|connection| db::list(connection, filter, now_unix_nano()))
    }

    pub fn get(&self, id: &IssueId) -> Result<IssueDetail, ErrorsDbError> {
        self.with(|connection| db::detail(connection, id, now_unix_nano()))
    }

    pub fn set_status(
        &self,
        id: &IssueId,
        status: IssueStatus,
        resolved_in_version: Option<&str>,
    ) -> Result<IssueSummary, ErrorsDbError> {
        self.with(|connection| {
            db::set_status(connection, id, status, resolved_in_version, now_unix_nano())
        })
    }
}

/// Whether `tree` knows the whole parent chain of every candidate's span:
/// then the decision is the same as with every span of the trace.
fn chains_complete(tree: &Tree, candidates: &[Candidate]) -> bool {
    candidates
        .iter()
        .filter_map(|candidate| candidate.span_id)
        .all(|span| tree.reaches_root(span))
}

/// Whether a trace's candidates decide without the rest of the trace: one
/// candidate with nothing to nest, fold or cluster with, unless it is a
/// status-only error that is not visibly an entry span (whether its parent
/// is in another service needs the parent).
fn decides_alone(candidates: &[Candidate]) -> bool {
    match candidates {
        [only] => only.kind != CandidateKind::StatusOnly || only.entry,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_watermark_mark_is_the_earlier_time_at_most_a_day_back() {
        let day = MAX_WATERMARK_LAG_NS;
        let now = 10 * day;
        assert_eq!(watermark_mark(now, now - 5), now - 5);
        assert_eq!(watermark_mark(now, now + 5), now);
        assert_eq!(watermark_mark(now, 0), now - day);
    }
}
