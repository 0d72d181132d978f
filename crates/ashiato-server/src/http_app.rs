//! The UI/API listener (`--http`): the query API under `/api`, health
//! probes, and the web UI (`ashiato-ui`) as the fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ashiato_query::QueryService;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ingest::DiskHealth;

/// Whether the server is ready for traffic: every listener bound and the
/// store open. Cleared again when shutdown starts, so load balancers drain,
/// and not ready while writes fail for a full disk (`DiskHealth`).
#[derive(Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    disk: DiskHealth,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.disk.is_full()
    }

    /// The disk state ingest reports into.
    pub(crate) fn disk(&self) -> DiskHealth {
        self.disk.clone()
    }
}

/// Everything served on the UI/API listener.
pub fn router(query: Arc<QueryService>, readiness: Readiness) -> Router {
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    // the web UI answers everything else (its assets, and its index page for
    // client-side routes); `/api`, `/healthz` and `/readyz` keep priority
    Router::new()
        .merge(ashiato_api::router(query))
        .merge(probes)
        .merge(ashiato_ui::router())
        .layer(CatchPanicLayer::new())
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(
    axum::extract::State(readiness): axum::extract::State<Readiness>,
) -> (StatusCode, &'static str) {
    if readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else if readiness.disk.is_full() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: disk full")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use ashiato_query::memory::MemoryStore;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn status_of(app: &Router, path: &str) -> StatusCode {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn test_readyz_follows_readiness_and_healthz_always_answers() {
        let readiness = Readiness::default();
        let query = Arc::new(QueryService::new(Arc::new(MemoryStore::new())));
        let app = router(query, readiness.clone());
        assert_eq!(
            status_of(&app, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_of(&app, "/healthz").await, StatusCode::OK);
        readiness.set(true);
        assert_eq!(status_of(&app, "/readyz").await, StatusCode::OK);
        assert_eq!(status_of(&app, "/api/v1/services").await, StatusCode::OK);
        assert_eq!(
            status_of(&app, "/api/v1/unknown").await,
            StatusCode::NOT_FOUND
        );
    }
}
