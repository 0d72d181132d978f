//! The notification outbox: webhook deliveries and storm-held issue events,
//! persisted in `<data_dir>/errors.sqlite` so that pending and retrying
//! deliveries survive a restart.
//!
//! Tables (beside the tracker's, same file, own connections):
//! - `deliveries`: one row per (notification, webhook) with its ready body,
//!   status (`pending`, `retrying`, `delivered`, `failed`), attempts, the
//!   earliest time of the next attempt and the last error. A row is marked
//!   delivered only after the endpoint answered 2xx, so delivery is at least
//!   once (a crash between the answer and the update sends it again).
//! - `held_events`: new issues and regressions of an alert storm, waiting
//!   to be summed up in one digest.
//!
//! Finished rows beyond the newest [`KEEP_FINISHED`] are pruned.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{self, ErrorsDbError, to_i64};
use crate::types::{Delivery, DeliveryStatus, IssueEventKind, IssueId};

/// Delivered and failed rows kept for `GET /api/v1/notifications`.
pub const KEEP_FINISHED: usize = 1_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    issue_id TEXT,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (url, status, next_attempt);
CREATE TABLE IF NOT EXISTS held_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    issue_id TEXT NOT NULL,
    title TEXT NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    count INTEGER NOT NULL
);
";

/// Exponential backoff of one delivery: the first retry waits `first`, each
/// further one twice as long, at most `max_delay`; after `max_attempts`
/// attempts the delivery has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after `attempts` failed attempts, or `None` when that was
    /// the last one.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        Some(
            self.first
                .saturating_mul(1u32 << doublings)
                .min(self.max_delay),
        )
    }
}

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// `None` for a digest.
    pub issue_id: Option<IssueId>,
    /// `new_issue`, `regression` or `digest`.
    pub event: String,
    pub url: String,
    pub body: String,
}

/// A delivery whose next attempt is due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub body: String,
    pub attempts: u32,
}

/// An issue event held back during an alert storm.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldEvent {
    pub time_unix_nano: u64,
    pub kind: IssueEventKind,
    pub issue_id: IssueId,
    pub title: String,
    pub service: String,
    pub environment: String,
    pub count: u64,
}

/// One connection to the outbox tables.
pub struct Outbox {
    connection: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, ErrorsDbError> {
        let connection = db::open(path)?;
        connection.execute_batch(SCHEMA)?;
        Ok(Outbox { connection })
    }

    /// Queues deliveries, due at once (one transaction).
    pub fn enqueue(&mut self, deliveries: &[NewDelivery], now: u64) -> Result<(), ErrorsDbError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let tx = self.connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (created, issue_id, event, url, body, status, attempts, next_attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?1)",
            )?;
            for delivery in deliveries {
                insert.execute(params![
                    to_i64(now),
                    delivery.issue_id.as_ref().map(IssueId::as_str),
                    delivery.event,
                    delivery.url,
                    delivery.body,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Holds storm events for the next digest (one transaction).
    pub fn hold(&mut self, events: &[HeldEvent]) -> Result<(), ErrorsDbError> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self.connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO held_events (time, kind, issue_id, title, service, environment, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for event in events {
                insert.execute(params![
                    to_i64(event.time_unix_nano),
                    event.kind.as_str(),
                    event.issue_id.as_str(),
                    event.title,
                    event.service,
                    event.environment,
                    to_i64(event.count),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// When the oldest held event arrived, if any is held.
    pub fn oldest_held(&self) -> Result<Option<u64>, ErrorsDbError> {
        let time: Option<i64> =
            self.connection
                .query_row("SELECT MIN(time) FROM held_events", [], |row| row.get(0))?;
        Ok(time.map(|time| u64::try_from(time).unwrap_or(0)))
    }

    /// Turns every held event into deliveries (`build` makes them, e.g. one
    /// digest per webhook) and forgets the held events, in one
    /// transaction. Returns how many events were summed up.
    pub fn flush_held(
        &mut self,
        now: u64,
        build: impl FnOnce(&[HeldEvent]) -> Vec<NewDelivery>,
    ) -> Result<usize, ErrorsDbError> {
        let tx = self.connection.transaction()?;
        let held = {
            let mut select = tx.prepare(
                "SELECT time, kind, issue_id, title, service, environment, count
                 FROM held_events ORDER BY id",
            )?;
            let rows = select.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })?;
            let mut held = Vec::new();
            for row in rows {
                let (time, kind, issue_id, title, service, environment, count) = row?;
                // a row this code did not write is skipped, not fatal
                let Some(issue_id) = IssueId::parse(&issue_id) else {
                    continue;
                };
                held.push(HeldEvent {
                    time_unix_nano: u64::try_from(time).unwrap_or(0),
                    kind: if kind == IssueEventKind::Regression.as_str() {
                        IssueEventKind::Regression
                    } else {
                        IssueEventKind::NewIssue
                    },
                    issue_id,
                    title,
                    service,
                    environment,
                    count: u64::try_from(count).unwrap_or(0),
                });
            }
            held
        };
        if !held.is_empty() {
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (created, issue_id, event, url, body, status, attempts, next_attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?1)",
            )?;
            for delivery in build(&held) {
                insert.execute(params![
                    to_i64(now),
                    delivery.issue_id.as_ref().map(IssueId::as_str),
                    delivery.event,
                    delivery.url,
                    delivery.body,
                ])?;
            }
        }
        tx.execute("DELETE FROM held_events", [])?;
        tx.commit()?;
        Ok(held.len())
    }

    /// The due delivery to `url` that has waited longest.
    pub fn next_due(&self, url: &str, now: u64) -> Result<Option<DueDelivery>, ErrorsDbError> {
        Ok(self
            .connection
            .query_row(
                "SELECT id, body, attempts FROM deliveries
                 WHERE url = ?1 AND status IN ('pending', 'retrying') AND next_attempt <= ?2
                 ORDER BY next_attempt, id LIMIT 1",
                params![url, to_i64(now)],
                |row| {
                    Ok(DueDelivery {
                        id: row.get(0)?,
                        body: row.get(1)?,
                        attempts: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                    })
                },
            )
            .optional()?)
    }

    /// The earliest next attempt of any unfinished delivery to `url`.
    pub fn next_attempt(&self, url: &str) -> Result<Option<u64>, ErrorsDbError> {
        let time: Option<i64> = self.connection.query_row(
            "SELECT MIN(next_attempt) FROM deliveries
             WHERE url = ?1 AND status IN ('pending', 'retrying')",
            [url],
            |row| row.get(0),
        )?;
        Ok(time.map(|time| u64::try_from(time).unwrap_or(0)))
    }

    /// Records an attempt: delivered, or retrying after the backoff, or
    /// failed when the backoff gives up. Returns the new status.
    pub fn record_attempt(
        &self,
        delivery: &DueDelivery,
        outcome: Result<(), String>,
        now: u64,
        backoff: &Backoff,
    ) -> Result<DeliveryStatus, ErrorsDbError> {
        let attempts = delivery.attempts.saturating_add(1);
        let (status, next, error) = match outcome {
            Ok(()) => (DeliveryStatus::Delivered, now, None),
            Err(error) => match backoff.after(attempts) {
                Some(wait) => (
                    DeliveryStatus::Retrying,
                    now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX)),
                    Some(error),
                ),
                None => (DeliveryStatus::Failed, now, Some(error)),
            },
        };
        self.connection.execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, next_attempt = ?4, error = ?5
             WHERE id = ?1",
            params![delivery.id, status.as_str(), attempts, to_i64(next), error],
        )?;
        Ok(status)
    }

    /// Unfinished deliveries to webhooks that are no longer configured fail
    /// (nothing would ever send them).
    pub fn abandon_others(&self, urls: &[String]) -> Result<usize, ErrorsDbError> {
        let mut select = self.connection.prepare(
            "SELECT DISTINCT url FROM deliveries WHERE status IN ('pending', 'retrying')",
        )?;
        let pending: Vec<String> = select
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut abandoned = 0;
        for url in pending.iter().filter(|url| !urls.contains(url)) {
            abandoned += self.connection.execute(
                "UPDATE deliveries SET status = 'failed', error = 'webhook no longer configured'
                 WHERE url = ?1 AND status IN ('pending', 'retrying')",
                [url],
            )?;
        }
        Ok(abandoned)
    }

    /// Deletes finished deliveries beyond the newest `keep`.
    pub fn prune(&self, keep: usize) -> Result<usize, ErrorsDbError> {
        Ok(self.connection.execute(
            "DELETE FROM deliveries WHERE status IN ('delivered', 'failed') AND id NOT IN
             (SELECT id FROM deliveries WHERE status IN ('delivered', 'failed')
              ORDER BY id DESC LIMIT ?1)",
            [to_i64(keep as u64)],
        )?)
    }

    /// Unfinished deliveries and held events (the queue depth).
    pub fn backlog(&self) -> Result<(u64, u64), ErrorsDbError> {
        let count = |sql: &str| -> Result<u64, ErrorsDbError> {
            let count: i64 = self.connection.query_row(sql, [], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        };
        Ok((
            count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'retrying')")?,
            count("SELECT COUNT(*) FROM held_events")?,
        ))
    }

    /// The newest deliveries, newest first, with their full urls.
    pub fn recent(&self, limit: usize) -> Result<Vec<Delivery>, ErrorsDbError> {
        let mut select = self.connection.prepare(
            "SELECT id, created, issue_id, event, url, status, attempts, next_attempt, error
             FROM deliveries ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = select.query_map([to_i64(limit as u64)], |row| {
            let status: String = row.get(5)?;
            Ok(Delivery {
                id: row.get(0)?,
                time_unix_nano: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                issue_id: row
                    .get::<_, Option<String>>(2)?
                    .and_then(|id| IssueId::parse(&id)),
                event: row.get(3)?,
                url: row.get(4)?,
                status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
                attempts: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(u32::MAX),
                next_attempt_unix_nano: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
                error: row.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn backoff() -> Backoff {
        Backoff {
            first: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            max_attempts: 6,
        }
    }

    #[test]
    fn test_backoff_doubles_up_to_the_cap_then_gives_up() {
        let cases = [
            (0, Some(1)),
            (1, Some(1)),
            (2, Some(2)),
            (3, Some(4)),
            (4, Some(8)),
            (5, Some(10)),
            (6, None),
            (100, None),
        ];
        for (attempts, seconds) in cases {
            assert_eq!(
                backoff().after(attempts),
                seconds.map(Duration::from_secs),
                "after {attempts} attempts"
            );
        }
    }

    fn delivery(url: &str, event: &str) -> NewDelivery {
        NewDelivery {
            issue_id: IssueId::parse("0123456789ab"),
            event: event.into(),
            url: url.into(),
            body: format!("{{\"event\":\"{event}\"}}"),
        }
    }

    #[test]
    fn test_retry_until_failed_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.sqlite");
        let mut outbox = Outbox::open(&path).unwrap();
        outbox
            .enqueue(&[delivery("http://a/x", "new_issue")], 10 * SECOND)
            .unwrap();
        assert_eq!(outbox.next_due("http://b/x", 10 * SECOND).unwrap(), None);
        let mut now = 10 * SECOND;
        let mut statuses = Vec::new();
        loop {
            let due = outbox.next_due("http://a/x", now).unwrap().unwrap();
            let status = outbox
                .record_attempt(&due, Err("refused".into()), now, &backoff())
                .unwrap();
            statuses.push(status);
            if status == DeliveryStatus::Failed {
                break;
            }
            // not due before its backoff passed
            assert_eq!(outbox.next_due("http://a/x", now).unwrap(), None);
            now = outbox.next_attempt("http://a/x").unwrap().unwrap();
        }
        assert_eq!(statuses.len(), 6);
        // 1 + 2 + 4 + 8 + 10 seconds of backoff
        assert_eq!(now, 35 * SECOND);
        // reopened (a restart): the failure is visible, nothing is due
        let outbox = Outbox::open(&path).unwrap();
        let recent = outbox.recent(10).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].status, DeliveryStatus::Failed);
        assert_eq!(recent[0].attempts, 6);
        assert_eq!(recent[0].error.as_deref(), Some("refused"));
        assert_eq!(outbox.next_attempt("http://a/x").unwrap(), None);
    }

    #[test]
    fn test_pending_survives_reopen_and_is_delivered_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.sqlite");
        let mut outbox = Outbox::open(&path).unwrap();
        outbox
            .enqueue(&[delivery("http://a/x", "new_issue")], SECOND)
            .unwrap();
        let due = outbox.next_due("http://a/x", SECOND).unwrap().unwrap();
        outbox
            .record_attempt(&due, Err("timed out".into()), SECOND, &backoff())
            .unwrap();
        drop(outbox);
        let outbox = Outbox::open(&path).unwrap();
        let due = outbox.next_due("http://a/x", 3 * SECOND).unwrap().unwrap();
        assert_eq!(due.attempts, 1);
        let status = outbox
            .record_attempt(&due, Ok(()), 3 * SECOND, &backoff())
            .unwrap();
        assert_eq!(status, DeliveryStatus::Delivered);
        assert_eq!(outbox.next_due("http://a/x", 100 * SECOND).unwrap(), None);
        assert_eq!(outbox.backlog().unwrap(), (0, 0));
    }

    #[test]
    fn test_held_events_flush_into_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&dir.path().join("errors.sqlite")).unwrap();
        assert_eq!(outbox.oldest_held().unwrap(), None);
        let held: Vec<HeldEvent> = (0..3u64)
            .map(|index| HeldEvent {
                time_unix_nano: (index + 5) * SECOND,
                kind: IssueEventKind::NewIssue,
                issue_id: IssueId::parse(&format!("00000000000{index}")).unwrap(),
                title: format!("E{index}"),
                service: "shop".into(),
                environment: String::new(),
                count: index,
            })
            .collect();
        outbox.hold(&held).unwrap();
        assert_eq!(outbox.oldest_held().unwrap(), Some(5 * SECOND));
        assert_eq!(outbox.backlog().unwrap(), (0, 3));
        let summed = outbox
            .flush_held(9 * SECOND, |events| {
                assert_eq!(events, held.as_slice());
                vec![NewDelivery {
                    issue_id: None,
                    event: "digest".into(),
                    url: "http://a/x".into(),
                    body: "{}".into(),
                }]
            })
            .unwrap();
        assert_eq!(summed, 3);
        assert_eq!(outbox.oldest_held().unwrap(), None);
        let recent = outbox.recent(10).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].event, "digest");
        assert_eq!(recent[0].issue_id, None);
        assert_eq!(recent[0].status, DeliveryStatus::Pending);
    }

    #[test]
    fn test_unconfigured_webhooks_fail_and_finished_rows_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&dir.path().join("errors.sqlite")).unwrap();
        let rows: Vec<NewDelivery> = (0..5)
            .map(|index| delivery(&format!("http://{index}/x"), "new_issue"))
            .collect();
        outbox.enqueue(&rows, SECOND).unwrap();
        let abandoned = outbox
            .abandon_others(&["http://0/x".into(), "http://1/x".into()])
            .unwrap();
        assert_eq!(abandoned, 3);
        assert_eq!(outbox.backlog().unwrap(), (2, 0));
        assert_eq!(outbox.prune(1).unwrap(), 2);
        let statuses: Vec<DeliveryStatus> = outbox
            .recent(10)
            .unwrap()
            .iter()
            .map(|delivery| delivery.status)
            .collect();
        assert_eq!(
            statuses,
            [
                DeliveryStatus::Failed,
                DeliveryStatus::Pending,
                DeliveryStatus::Pending
            ]
        );
    }
}
