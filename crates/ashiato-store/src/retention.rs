//! Retention: whole segments whose newest row is older than the retention
//! period are forgotten by the catalog, dropped from memory, then deleted.
//!
//! The catalog goes first: if the process dies before the file is removed,
//! the file is an orphan that the next open deletes.

use std::fs;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use crate::error::StoreError;
use crate::sealer::now_unix_nano;
use crate::shared::Shared;

/// Runs `enforce` every `interval` until the stop channel fires or closes.
pub fn run(shared: Arc<Shared>, stop: Receiver<()>, interval: Duration) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {
                if let Err(failure) = enforce(&shared) {
                    warn!(error = %failure, "retention pass failed");
                }
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Drops expired segments; returns how many were dropped.
pub fn enforce(shared: &Shared) -> Result<usize, StoreError> {
    let retention_ns = u64::try_from(shared.config.retention.as_nanos()).unwrap_or(u64::MAX);
    let cutoff = now_unix_nano().saturating_sub(retention_ns);
    // Serializes with seals, which also take the catalog first.
    let catalog_lock: &Mutex<_> = &shared.catalog;
    let mut catalog = catalog_lock.lock().unwrap_or_else(|e| e.into_inner());
    let expired: Vec<i64> = {
        let state = shared.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .span_segments
            .iter()
            .chain(state.log_segments.iter())
            .filter(|segment| segment.max_time < cutoff)
            .map(|segment| segment.id)
            .collect()
    };
    if expired.is_empty() {
        return Ok(0);
    }
    catalog.remove_segments(&expired)?;
    drop(catalog);

    let mut removed = Vec::new();
    {
        let mut state = shared.state.write().unwrap_or_else(|e| e.into_inner());
        let (kept, gone): (Vec<_>, Vec<_>) = state
            .span_segments
            .drain(..)
            .partition(|s| !expired.contains(&s.id));
        state.span_segments = kept;
        for segment in &gone {
            state.sealed_stats.subtract(&segment.ops);
        }
        removed.extend(gone);
        let (kept, gone): (Vec<_>, Vec<_>) = state
            .log_segments
            .drain(..)
            .partition(|s| !expired.contains(&s.id));
        state.log_segments = kept;
        removed.extend(gone);
    }
    for segment in &removed {
        if let Err(failure) = fs::remove_file(&segment.path) {
            warn!(path = %segment.path.display(), error = %failure, "could not delete expired segment");
        }
        info!(path = %segment.path.display(), max_time = segment.max_time, "dropped expired segment");
    }
    Ok(removed.len())
}
