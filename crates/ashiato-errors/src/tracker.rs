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
//!
//! A clean stop (SIGTERM: listeners drained, everything pending decided)
//! records that nothing is left to re-derive, and the next start skips the
//! scan; only a crash (or a stop with something undecided) pays for it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ashiato_model::{SpanId, TraceId};
use rusqlite::{Connection, TransactionBehavior};

use crate::db::{self, Counted, ErrorsDbError, NewOccurrence};
use crate::fingerprint::{Fingerprint, FingerprintInput};
use crate::normalize::{normalize_message, same_type};
use crate::settle::{Decided, Tree, decide_lone, decide_trace};
use crate::stack::{self, Frame};
use crate::types::{
    Candidate, CandidateKind, IssueDetail, IssueEvent, IssueEventKind, IssueFilter, IssueId,
    IssueStatus, IssueSummary, Sample, SpanLink, StatusChange, TraceSource, TreeNode,
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
    /// `(deadline, trace)` of every pending trace, soonest first, so a
    /// round finds its due traces without scanning them all.
    deadlines: BTreeSet<(Instant, TraceId)>,
    lone: Vec<(Candidate, u64)>,
    source: Box<dyn TraceSource>,
    facets: FacetCache,
    recovering: bool,
    failed: bool,
}

/// The distinct values counted per (issue, key), so that a key past
/// [`db::MAX_FACET_VALUES`] values (user ids, request ids) costs no SQL for
/// its new values. Loaded lazily; cleared when it grows past its bound.
/// Nested maps, so that a lookup borrows the occurrence's strings instead
/// of cloning them (every occurrence looks up each of its attributes).
#[derive(Default)]
struct FacetCache {
    values: HashMap<IssueId, HashMap<String, HashSet<String>>>,
    entries: usize,
}

/// Cached (issue, key) pairs before the cache starts over.
const MAX_FACET_CACHE: usize = 100_000;

impl FacetCache {
    fn clear(&mut self) {
        self.values.clear();
        self.entries = 0;
    }

    /// Adds this occurrence's attributes to the round's facet counts.
    fn count(
        &mut self,
        connection: &Connection,
        issue: &IssueId,
        attributes: &[(String, String)],
        counts: &mut db::FacetCounts,
    ) -> Result<(), ErrorsDbError> {
        if self.entries > MAX_FACET_CACHE {
            self.clear();
        }
        let keys = self.values.entry(issue.clone()).or_default();
        let round = counts.entry(issue.clone()).or_default();
        for (key, value) in attributes {
            if !keys.contains_key(key.as_str()) {
                self.entries += 1;
                keys.insert(key.clone(), db::facet_values(connection, issue, key)?);
            }
            let Some(known) = keys.get_mut(key.as_str()) else {
                continue;
            };
            if !known.contains(value.as_str()) {
                if known.len() >= db::MAX_FACET_VALUES {
                    continue;
                }
                known.insert(value.clone());
            }
            let values = match round.get_mut(key.as_str()) {
                Some(values) => values,
                None => round.entry(key.clone()).or_default(),
            };
            match values.get_mut(value.as_str()) {
                Some(count) => *count += 1,
                None => {
                    values.insert(value.clone(), 1);
                }
            }
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
            connection: db::open_writer(path)?,
            settle,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            lone: Vec::new(),
            source,
            facets: FacetCache::default(),
            recovering: false,
            failed: false,
        })
    }

    /// Where the recovery scan starts: the watermark minus
    /// [`RESCAN_MARGIN`], or 0 (everything stored) on a first start; `None`
    /// when the last run stopped cleanly (everything it received was
    /// decided, so there is nothing to re-derive). Until
    /// [`Tracker::set_recovering`]`(false)`, the watermark stays put, so a
    /// crash during recovery scans the same range again.
    pub fn recovery_since(&mut self) -> Result<Option<u64>, ErrorsDbError> {
        if db::clean_stop(&self.connection)? {
            // cleared before anything new is counted, so a crash of this
            // run falls back to the watermark
            db::set_clean_stop(&self.connection, false)?;
            self.recovering = false;
            return Ok(None);
        }
        self.recovering = true;
        Ok(Some(db::watermark(&self.connection)?.map_or(0, |mark| {
            mark.saturating_sub(RESCAN_MARGIN.as_nanos() as u64)
        })))
    }

    /// Called last, after a final `settle(.., true)`: records the
    /// watermark and, when nothing received is left undecided (no failed
    /// transaction, no unfinished recovery scan, nothing pending), that
    /// the next start needs no recovery scan. Without this a restart
    /// re-reads the store from ten minutes before the watermark, which on a
    /// large store costs minutes of CPU for occurrences already counted.
    pub fn stop_cleanly(&mut self) -> Result<(), ErrorsDbError> {
        self.checkpoint()?;
        let clean =
            !self.recovering && !self.failed && self.pending.is_empty() && self.lone.is_empty();
        if clean {
            db::set_clean_stop(&self.connection, true)?;
        }
        Ok(())
    }

    /// Forgets a clean stop of an earlier run: the server calls it when
    /// tracking is off, so what arrives meanwhile is scanned when tracking
    /// is turned on again.
    pub fn forget_clean_stop(path: &Path) -> Result<(), ErrorsDbError> {
        let connection = db::open_writer(path)?;
        db::set_clean_stop(&connection, false)
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
                    self.deadlines.remove(&(pending.deadline, trace));
                    pending.deadline = now + self.settle;
                    self.deadlines.insert((pending.deadline, trace));
                    pending.received_wall = pending.received_wall.min(mark);
                    pending.candidates.push(candidate);
                }
                None => self.lone.push((candidate, mark)),
            }
        }
    }

    /// When the next pending trace is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let trace = self.deadlines.first().map(|(deadline, _)| *deadline);
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
        // past the bound, the soonest due are decided early
        let mut overflow = self.pending.len().saturating_sub(MAX_PENDING_TRACES);
        let mut due: Vec<(TraceId, PendingTrace)> = Vec::new();
        while let Some(&(deadline, trace)) = self.deadlines.first() {
            if !(everything || deadline <= now || overflow > 0) {
                break;
            }
            self.deadlines.pop_first();
            overflow = overflow.saturating_sub(1);
            if let Some(pending) = self.pending.remove(&trace) {
                due.push((trace, pending));
            }
        }
        // a fixed order (not the map's) makes which occurrence opens an
        // issue, and so its first sample, independent of hashing
        due.sort_by_key(|(trace, _)| *trace);
        let mut decided = Vec::new();
        for (trace, pending) in due {
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
                            || same_type(error_type, &candidate.error_type))
                            && spans.iter().any(|other| {
                                tree.is_ancestor(span, *other) || tree.is_ancestor(*other, span)
                            })
                    })
                });
                !(overlaps || nested)
            })
            .collect())
    }

    /// Counts a round's occurrences in one transaction: one idempotency row
    /// per occurrence (with its sample only if it is among the issue's 21
    /// newest of the round), and one write per touched issue, hour and
    /// facet value.
    fn count(&mut self, mut decided: Vec<Decided>) -> Result<Vec<IssueEvent>, ErrorsDbError> {
        let now = now_unix_nano();
        let grouped = group_round(&mut decided);
        let sampled = newest_per_issue(&decided, &grouped);
        // immediate: the issue states read below stay true until commit
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut issues: HashMap<IssueId, db::IssueState> = HashMap::new();
        let mut changed: Vec<(IssueEventKind, IssueId, Option<Frame>)> = Vec::new();
        // hourly and facet counts are summed over the round: one upsert per
        // distinct row instead of one per occurrence
        let mut hourly = HashMap::new();
        let mut facets = db::FacetCounts::new();
        // a fingerprint without an issue may be one seen from another depth
        let mut resolved: HashMap<IssueId, IssueId> = HashMap::new();
        for (index, (occurrence, (grouped, sample))) in decided.iter().zip(&grouped).enumerate() {
            let grouped: &Grouped = grouped;
            let issue_id = match resolved.get(&grouped.id) {
                Some(id) => id.clone(),
                None => {
                    let id = issue_for(&tx, grouped, &occurrence.candidate)?;
                    resolved.insert(grouped.id.clone(), id.clone());
                    id
                }
            };
            let new = NewOccurrence {
                key: &occurrence.key,
                issue_id: &issue_id,
                fingerprint: &grouped.fingerprint,
                title: &grouped.title,
                error_type: &occurrence.candidate.error_type,
                culprit: &grouped.culprit,
                stack: &grouped.frames,
                sources: occurrence.sources,
                sample,
                members: &occurrence.members,
                service: &occurrence.candidate.service,
                environment: &occurrence.candidate.environment,
                version: &occurrence.candidate.version,
            };
            let sample_json = sampled[index].then(|| db::sample_json(sample));
            if !db::insert_occurrence(&tx, &new, sample_json.as_deref())? {
                continue; // counted before (replay)
            }
            let counted = match issues.entry(issue_id.clone()) {
                Entry::Occupied(mut state) => state.get_mut().add(&new),
                Entry::Vacant(slot) => match db::load_issue(&tx, &issue_id)? {
                    Some(state) => slot.insert(state).add(&new),
                    None => {
                        let first = sample_json.unwrap_or_else(|| db::sample_json(sample));
                        slot.insert(db::insert_issue(&tx, &new, &first)?);
                        Counted::New
                    }
                },
            };
            *hourly
                .entry((issue_id.clone(), db::hour_of(sample.time_unix_nano)))
                .or_insert(0) += 1;
            self.facets
                .count(&tx, &issue_id, &sample.attributes, &mut facets)?;
            let kind = match counted {
                Counted::New => IssueEventKind::NewIssue,
                Counted::Regressed => IssueEventKind::Regression,
                Counted::Repeated => continue,
            };
            let top_frame = grouped.frames.iter().find(|frame| frame.in_app).cloned();
            changed.push((kind, issue_id, top_frame));
        }
        for (id, state) in &issues {
            db::store_issue(&tx, id, state)?;
        }
        db::add_hourly(&tx, &hourly)?;
        db::add_facets(&tx, &facets)?;
        // events carry the issue as this round leaves it
        let mut events = Vec::new();
        for (kind, id, top_frame) in changed {
            if let Ok(issue) = db::summary(&tx, &id, now) {
                tracing::info!(issue = %issue.id, event = kind.as_str(), title = %issue.title, "issue event");
                events.push(IssueEvent {
                    kind,
                    top_frame,
                    issue,
                });
            }
        }
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

    /// The occurrence's sample; its attributes, message and ancestors are
    /// moved out of `occurrence` (grouping has read it already, counting
    /// reads only its other fields), which spares cloning every attribute.
    fn take_sample(occurrence: &mut Decided) -> Sample {
        let candidate = &mut occurrence.candidate;
        let mut attributes = std::mem::take(&mut candidate.attributes);
        for (key, value) in std::mem::take(&mut occurrence.extra_attributes) {
            if !attributes.iter().any(|(existing, _)| *existing == key) {
                attributes.push((key, value));
            }
        }
        Sample {
            time_unix_nano: candidate.time_unix_nano,
            trace_id: candidate.trace_id,
            span_id: candidate.span_id,
            source: candidate.source,
            message: std::mem::take(&mut candidate.message),
            attributes,
            ancestors: std::mem::take(&mut occurrence.ancestors),
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
        self.set_status_by(id, status, resolved_in_version, None)
    }

    /// Status changes made by hand (resolve, ignore, reopen), newest first.
    pub fn status_history(&self, id: &IssueId) -> Result<Vec<StatusChange>, ErrorsDbError> {
        self.with(|connection| db::status_history(connection, id))
    }

    /// [`IssueStore::set_status`], recording who made the change.
    pub fn set_status_by(
        &self,
        id: &IssueId,
        status: IssueStatus,
        resolved_in_version: Option<&str>,
        changed_by: Option<&str>,
    ) -> Result<IssueSummary, ErrorsDbError> {
        self.with(|connection| {
            db::set_status(
                connection,
                id,
                status,
                resolved_in_version,
                changed_by,
                now_unix_nano(),
            )
        })
    }
}

/// What grouping reads of a candidate: equal keys group identically.
type GroupKey<'a> = (
    bool,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
);

fn group_key(candidate: &Candidate) -> GroupKey<'_> {
    (
        candidate.kind == CandidateKind::StatusOnly,
        &candidate.service,
        &candidate.environment,
        &candidate.error_type,
        &candidate.message,
        &candidate.stack,
        &candidate.operation,
        candidate.fingerprint_override.as_deref(),
    )
}

/// The issue an occurrence counts in: its fingerprint's own, else an
/// existing issue of the same error seen from another depth
/// ([`Fingerprint::same_error_deeper`]), else a new one of its own.
fn issue_for(
    tx: &rusqlite::Transaction<'_>,
    grouped: &Grouped,
    candidate: &Candidate,
) -> Result<IssueId, ErrorsDbError> {
    if db::load_issue(tx, &grouped.id)?.is_some() {
        return Ok(grouped.id.clone());
    }
    let deeper = db::deeper_issue(
        tx,
        &grouped.fingerprint,
        &candidate.service,
        &candidate.environment,
    )?;
    Ok(deeper.unwrap_or_else(|| grouped.id.clone()))
}

/// Each occurrence's grouping and sample. Occurrences of one round mostly
/// repeat a few errors, so a grouping (stack parse, normalization,
/// fingerprint hash) is computed once per distinct input and shared.
fn group_round(decided: &mut [Decided]) -> Vec<(Rc<Grouped>, Sample)> {
    let mut known: HashMap<GroupKey<'_>, Rc<Grouped>> = HashMap::new();
    let groups: Vec<Rc<Grouped>> = decided
        .iter()
        .map(|occurrence| {
            known
                .entry(group_key(&occurrence.candidate))
                .or_insert_with(|| Rc::new(Grouped::new(occurrence)))
                .clone()
        })
        .collect();
    drop(known);
    groups
        .into_iter()
        .zip(decided.iter_mut())
        .map(|(grouped, occurrence)| (grouped, Grouped::take_sample(occurrence)))
        .collect()
}

/// Samples kept per issue and round: the detail view shows the first
/// occurrence and the latest 20, so an occurrence with 21 newer ones of
/// its issue in the same round can never be shown (rows only grow newer).
const SAMPLES_PER_ROUND: usize = 21;

/// Which occurrences of a round keep their sample: per issue, the
/// [`SAMPLES_PER_ROUND`] newest in the detail view's order (time
/// descending, then key).
fn newest_per_issue(decided: &[Decided], grouped: &[(Rc<Grouped>, Sample)]) -> Vec<bool> {
    let mut by_issue: HashMap<&IssueId, Vec<usize>> = HashMap::new();
    for (index, (grouped, _)) in grouped.iter().enumerate() {
        by_issue.entry(&grouped.id).or_default().push(index);
    }
    let mut keep = vec![false; decided.len()];
    for indices in by_issue.values_mut() {
        if indices.len() > SAMPLES_PER_ROUND {
            indices.sort_by(|a, b| {
                let time = |index: &usize| db::to_i64(grouped[*index].1.time_unix_nano);
                time(b)
                    .cmp(&time(a))
                    .then_with(|| decided[*a].key.cmp(&decided[*b].key))
            });
        }
        for index in indices.iter().take(SAMPLES_PER_ROUND) {
            keep[*index] = true;
        }
    }
    keep
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
