//! The SQLite catalog: which segments exist, what they hold, and how much of
//! the WAL they cover.
//!
//! Registering a segment and advancing the "WAL covered up to" mark happen in
//! one transaction, so after a crash either both are visible (the WAL files
//! are redundant and deleted) or neither (the segment file is an orphan and
//! deleted, the WAL is replayed).

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::segment::WrittenSegment;
use crate::stats::{Counts, OpStats};

/// Whether a segment holds spans or logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    Spans,
    Logs,
}

impl SegmentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SegmentKind::Spans => "spans",
            SegmentKind::Logs => "logs",
        }
    }
}

/// A catalog row, as loaded at open.
pub struct CatalogSegment {
    pub id: i64,
    pub kind: SegmentKind,
    pub file: String,
    pub written: WrittenSegment,
}

/// A segment about to be registered.
pub struct NewSegment<'a> {
    pub kind: SegmentKind,
    pub file: &'a str,
    pub written: &'a WrittenSegment,
}

pub struct Catalog {
    connection: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    created_unix_nano INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_services (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    PRIMARY KEY (segment_id, service)
);
CREATE TABLE IF NOT EXISTS segment_operations (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    PRIMARY KEY (segment_id, service, name)
);
";

/// SQLite stores signed 64-bit integers; times and counts are stored with
/// their bits preserved.
fn to_sql(value: u64) -> i64 {
    value as i64
}

fn from_sql(value: i64) -> u64 {
    value as u64
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog, StoreError> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Catalog { connection })
    }

    /// Writes a consistent copy of the catalog to `path` (`VACUUM INTO`),
    /// which must not exist yet.
    pub fn backup_into(&self, path: &Path) -> Result<(), StoreError> {
        let Some(text) = path.to_str() else {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "snapshot path is not valid UTF-8",
                ),
            });
        };
        self.connection.execute("VACUUM INTO ?1", [text])?;
        Ok(())
    }

    /// The highest WAL file sequence whose records are all in segments (0: none).
    pub fn wal_covered(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = self
            .connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'wal_covered'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.map_or(0, from_sql))
    }

    /// Registers the segments of one seal and the WAL mark, atomically.
    /// Returns the new segment ids in order.
    pub fn commit_seal(
        &mut self,
        segments: &[NewSegment<'_>],
        wal_covered: u64,
        now_unix_nano: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.connection.transaction()?;
        let mut ids = Vec::with_capacity(segments.len());
        for segment in segments {
            let written = segment.written;
            tx.execute(
                "INSERT INTO segments (kind, file, rows, bytes, min_time, max_time, created_unix_nano)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    segment.kind.as_str(),
                    segment.file,
                    to_sql(written.rows),
                    to_sql(written.bytes),
                    to_sql(written.min_time),
                    to_sql(written.max_time),
                    to_sql(now_unix_nano),
                ],
            )?;
            let id = tx.last_insert_rowid();
            for service in &written.services {
                tx.execute(
                    "INSERT INTO segment_services (segment_id, service) VALUES (?1, ?2)",
                    params![id, service],
                )?;
            }
            for (service, name, counts) in written.ops.iter() {
                tx.execute(
                    "INSERT INTO segment_operations (segment_id, service, name, span_count, error_count)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, service, name, to_sql(counts.spans), to_sql(counts.errors)],
                )?;
            }
            ids.push(id);
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('wal_covered', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![to_sql(wal_covered)],
        )?;
        tx.commit()?;
        Ok(ids)
    }

    /// Forgets segments (their files are deleted afterwards by the caller).
    pub fn remove_segments(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        for id in ids {
            tx.execute("DELETE FROM segments WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every registered segment with its services and operation counts.
    pub fn load_segments(&self) -> Result<Vec<CatalogSegment>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, kind, file, rows, bytes, min_time, max_time FROM segments ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        let mut segments = Vec::new();
        for row in rows {
            let (id, kind, file, rows, bytes, min_time, max_time) = row?;
            let kind = if kind == "logs" {
                SegmentKind::Logs
            } else {
                SegmentKind::Spans
            };
            segments.push(CatalogSegment {
                id,
                kind,
                file,
                written: WrittenSegment {
                    rows: from_sql(rows),
                    bytes: from_sql(bytes),
                    min_time: from_sql(min_time),
                    max_time: from_sql(max_time),
                    services: self.services_of(id)?,
                    ops: self.ops_of(id)?,
                },
            });
        }
        Ok(segments)
    }

    fn services_of(&self, id: i64) -> Result<BTreeSet<String>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT service FROM segment_services WHERE segment_id = ?1")?;
        let services = statement.query_map(params![id], |row| row.get::<_, String>(0))?;
        Ok(services.collect::<Result<_, _>>()?)
    }

    fn ops_of(&self, id: i64) -> Result<OpStats, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT service, name, span_count, error_count FROM segment_operations WHERE segment_id = ?1",
        )?;
        let rows = statement.query_map(params![id], |row| {
            let counts = Counts {
                spans: from_sql(row.get::<_, i64>(2)?),
                errors: from_sql(row.get::<_, i64>(3)?),
            };
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, counts))
        })?;
        let mut stats = OpStats::new();
        for row in rows {
            let (service, name, counts) = row?;
            stats.add(&service, &name, counts);
        }
        Ok(stats)
    }
}
