//! Maintenance endpoints: `POST /api/v1/admin/snapshot`, a point-in-time
//! backup of the data dir under `<data_dir>/snapshots/<timestamp>/` that
//! `ashiato serve --data-dir <that directory>` (or a copy of it) opens with
//! the same traces, logs and issues.
//!
//! Order matters: the errors database is copied first (SQLite `VACUUM
//! INTO`, a consistent copy while the tracker writes), then the store
//! (sealed, catalog copied, segments hard-linked: `Store::snapshot_into`).
//! So the store copy holds everything the issue copy has counted, and what
//! the issue copy lacks is found again by the tracker's recovery scan when
//! the snapshot is opened (counting is idempotent, nothing is counted
//! twice).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_store::Store;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

#[derive(Clone)]
struct AdminState {
    store: Store,
    data_dir: PathBuf,
}

/// The admin routes, to merge into the HTTP listener.
pub fn router(store: Store, data_dir: PathBuf) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/admin/snapshot", post(snapshot))
        .with_state(AdminState { store, data_dir })
}

/// Why a snapshot failed; details are logged, the client gets the message.
#[derive(Debug, thiserror::Error)]
enum SnapshotError {
    #[error("snapshot directory {0} already exists")]
    Exists(PathBuf),
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copying the errors database: {0}")]
    Errors(#[from] rusqlite::Error),
    #[error("snapshot of the store: {0}")]
    Store(#[from] ashiato_store::StoreError),
    #[error("snapshot task failed")]
    Task,
}

async fn snapshot(State(state): State<AdminState>) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let dest = state
        .data_dir
        .join("snapshots")
        .join(timestamp(now.as_millis()));
    let target = dest.clone();
    // sealing and copying are blocking disk work
    let made = tokio::task::spawn_blocking(move || write_snapshot(&state, &target))
        .await
        .unwrap_or(Err(SnapshotError::Task));
    match made {
        Ok(summary) => {
            tracing::info!(path = %dest.display(), segments = summary.segments, "snapshot written");
            Json(json!({
                "path": dest.display().to_string(),
                "segments": summary.segments,
                "segment_bytes": summary.segment_bytes,
            }))
            .into_response()
        }
        Err(error) => {
            tracing::error!(path = %dest.display(), %error, "snapshot failed");
            let status = match error {
                SnapshotError::Exists(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(json!({ "error": error.to_string() }))).into_response()
        }
    }
}

fn write_snapshot(
    state: &AdminState,
    dest: &Path,
) -> Result<ashiato_store::SnapshotSummary, SnapshotError> {
    if dest.exists() {
        return Err(SnapshotError::Exists(dest.to_owned()));
    }
    std::fs::create_dir_all(dest).map_err(|source| SnapshotError::Io {
        path: dest.to_owned(),
        source,
    })?;
    let errors_db = state.data_dir.join(ashiato_errors::DB_FILE);
    if errors_db.exists() {
        let connection = rusqlite::Connection::open_with_flags(
            &errors_db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let copy = dest.join(ashiato_errors::DB_FILE);
        connection.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])?;
    }
    Ok(state.store.snapshot_into(dest)?)
}

/// `YYYYMMDDTHHMMSS.mmmZ` (UTC) for `millis` since the epoch: sortable,
/// and distinct for snapshots a millisecond apart.
fn timestamp(millis: u128) -> String {
    let seconds = (millis / 1000) as i64;
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_timestamps_are_utc_calendar_times() {
        let cases = [
            (0, "19700101T000000.000Z"),
            (951_782_400_123, "20000229T000000.123Z"),
            (1_798_761_599_999, "20261231T235959.999Z"),
        ];
        for (millis, expected) in cases {
            assert_eq!(timestamp(millis), expected);
        }
    }
}
