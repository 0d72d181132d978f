//! Point-in-time copies of a store directory for backups
//! ([`crate::Store::snapshot_into`]).
//!
//! A snapshot is a directory that `Store::open` reads like any data dir:
//! the memtables are sealed first (so everything acknowledged before the
//! call is in segments), then, holding the catalog lock that seals and
//! retention also take, the catalog is copied with SQLite's `VACUUM INTO`
//! (a consistent copy even while other connections write) and exactly the
//! segment files that copy lists are hard-linked (segments are immutable
//! once registered, so a link costs no space; retention may delete the
//! live name later and the snapshot keeps the data). The per-minute
//! aggregate files are copied as well. The snapshot has an empty WAL: its
//! catalog's covered mark says everything it holds is in segments.

use std::fs;
use std::path::Path;

use crate::error::StoreError;
use crate::shared::Shared;
use crate::wal::{io_error, sync_dir};

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Segment files linked into the snapshot.
    pub segments: usize,
    /// Their total size in bytes.
    pub segment_bytes: u64,
}

/// Writes the snapshot into `dest`, which must not exist yet or be empty.
/// The caller has sealed the memtables.
pub fn write(shared: &Shared, dest: &Path) -> Result<SnapshotSummary, StoreError> {
    let segments_dir = dest.join("segments");
    let aggregates_dir = dest.join("aggregates");
    for dir in [dest, &segments_dir, &dest.join("wal"), &aggregates_dir] {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut summary = SnapshotSummary::default();
    {
        // seals commit and retention forgets segments under this lock, so
        // the catalog copy and the files linked below agree
        let catalog = shared.catalog.lock().unwrap_or_else(|e| e.into_inner());
        catalog.backup_into(&dest.join("catalog.sqlite"))?;
        for segment in catalog.load_segments()? {
            let from = shared.paths.segments_dir.join(&segment.file);
            let to = segments_dir.join(&segment.file);
            fs::hard_link(&from, &to).map_err(|e| io_error(&to, e))?;
            summary.segments += 1;
            summary.segment_bytes += segment.written.bytes;
        }
        copy_aggregates(&shared.config.data_dir.join("aggregates"), &aggregates_dir)?;
    }
    for dir in [&segments_dir, &aggregates_dir, &dest.to_path_buf()] {
        sync_dir(dir)?;
    }
    Ok(summary)
}

/// Copies the finished aggregate files (`<seq>.agg`; never a `.tmp` being
/// written). `Store::open` keeps those the catalog's covered mark allows.
fn copy_aggregates(from: &Path, to: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(from) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error(from, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(from, e))?;
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(".agg") {
            continue;
        }
        let target = to.join(&name);
        fs::copy(entry.path(), &target).map_err(|e| io_error(&target, e))?;
        fs::File::open(&target)
            .and_then(|file| file.sync_all())
            .map_err(|e| io_error(&target, e))?;
    }
    Ok(())
}
