//! The JSON query API under `/api/v1`: the only crate that knows its JSON
//! shapes.
//!
//! Routes (all `GET`):
//! - `/api/v1/services`: span and error counts per service
//! - `/api/v1/services/{service}/operations`: the same per span name
//! - `/api/v1/services/stats?start=&end=&step=`: rates, errors and latency
//!   percentiles per service and operation from ingest aggregates
//! - `/api/v1/traces?service=&operation=&error=&min_duration=&max_duration=&attr=k:v&start=&end=&limit=`
//! - `/api/v1/traces/{trace_id}`: every span of one trace
//! - `/api/v1/logs?service=&severity=&trace_id=&q=&start=&end=&limit=`
//!
//! Errors are `{"error": "..."}`: 400 for a malformed parameter (the message
//! names it), 404 for an unknown trace or path under `/api`, 405 for a wrong
//! method, 500 for a store failure (logged). Queries block on store scans,
//! so handlers run them on the blocking thread pool.

mod dto;
mod error;
pub mod issues;
mod params;
mod services;

use std::sync::Arc;

use ashiato_model::TraceId;
use ashiato_query::QueryService;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};

pub use error::ApiError;

/// Who makes a request, when access control identified them (a token's
/// name or a source network): put in the request's extensions by the
/// server's access gate, recorded on issue changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

use crate::dto::{
    LogDto, LogsResponse, OperationsResponse, ServicesResponse, TraceResponse, TraceSummaryDto,
    TracesResponse,
};
use crate::params::Params;

type QueryState = State<Arc<QueryService>>;

/// The `/api` routes, ready to merge into the UI/API listener's router.
pub fn router(query: Arc<QueryService>) -> Router {
    let v1 = Router::new()
        .route("/v1/services", get(list_services))
        .route("/v1/services/stats", get(services::service_stats))
        .route("/v1/services/{service}/operations", get(list_operations))
        .route("/v1/traces", get(search_traces))
        .route("/v1/traces/{trace_id}", get(get_trace))
        .route("/v1/logs", get(search_logs))
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .with_state(query);
    Router::new().nest("/api", v1)
}

/// Runs a blocking query off the async runtime.
async fn blocking<T: Send + 'static>(
    query: Arc<QueryService>,
    run: impl FnOnce(&QueryService) -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || run(&query))
        .await
        .map_err(|error| ApiError::Internal(format!("query task failed: {error}")))
}

fn store_failure(error: ashiato_query::QueryError) -> ApiError {
    ApiError::Internal(error.to_string())
}

async fn list_services(State(query): QueryState) -> Result<Json<ServicesResponse>, ApiError> {
    let services = blocking(query, QueryService::services).await?;
    Ok(Json(ServicesResponse {
        services: services.into_iter().map(Into::into).collect(),
    }))
}

async fn list_operations(
    State(query): QueryState,
    service: Result<Path<String>, PathRejection>,
) -> Result<Json<OperationsResponse>, ApiError> {
    let Path(service) =
        service.map_err(|rejection| ApiError::bad_param("service", rejection.body_text()))?;
    let operations = blocking(query, move |query| query.operations(&service)).await?;
    Ok(Json(OperationsResponse {
        operations: operations.into_iter().map(Into::into).collect(),
    }))
}

async fn search_traces(
    State(query): QueryState,
    RawQuery(raw): RawQuery,
) -> Result<Json<TracesResponse>, ApiError> {
    let trace_query = Params::parse(raw.as_deref()).trace_query()?;
    let summaries = blocking(query, move |query| query.find_traces(&trace_query))
        .await?
        .map_err(store_failure)?;
    Ok(Json(TracesResponse {
        traces: summaries.into_iter().map(TraceSummaryDto::from).collect(),
    }))
}

async fn get_trace(
    State(query): QueryState,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<Json<TraceResponse>, ApiError> {
    let Path(text) =
        trace_id.map_err(|rejection| ApiError::bad_param("trace_id", rejection.body_text()))?;
    let trace_id =
        TraceId::from_hex(text.trim()).map_err(|error| ApiError::bad_param("trace_id", error))?;
    let spans = blocking(query, move |query| query.get_trace(trace_id))
        .await?
        .map_err(store_failure)?;
    match spans {
        Some(spans) => Ok(Json(TraceResponse::new(trace_id, &spans))),
        None => Err(ApiError::NotFound(format!("trace {trace_id} not found"))),
    }
}

async fn search_logs(
    State(query): QueryState,
    RawQuery(raw): RawQuery,
) -> Result<Json<LogsResponse>, ApiError> {
    let log_query = Params::parse(raw.as_deref()).log_query()?;
    let logs = blocking(query, move |query| query.find_logs(&log_query))
        .await?
        .map_err(store_failure)?;
    Ok(Json(LogsResponse {
        logs: logs.iter().map(LogDto::from).collect(),
    }))
}

async fn unknown_path() -> ApiError {
    ApiError::NotFound("no such api endpoint".to_owned())
}

async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}
