//! `GET /api/v1/services/stats?start=&end=&step=`: request rate, error
//! rate and latency percentiles per service and per operation over a range,
//! with a per-step series for sparklines. Answered from the per-minute
//! aggregates the store keeps at ingest, never from a span scan.
//!
//! `start`/`end` are RFC 3339 or unix nanoseconds (default: the last hour);
//! `step` is a duration such as `5m` (default: the range over 60 points),
//! rounded to whole minutes and widened to at most 1440 points. Service
//! figures count entry spans (server, consumer or root) when the service
//! has any, all its spans otherwise; operation figures count every span of
//! that name. Like every `*_ns` field, latencies are decimal strings.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ashiato_model::parse_duration_ns;
use ashiato_query::{
    AggregateQuery, LatencySummary, MINUTE_NS, OperationAggregate, QueryService, ServiceAggregate,
    parse_time,
};
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use crate::error::ApiError;

/// The range when `start` is not given.
const DEFAULT_RANGE_NS: u64 = 60 * MINUTE_NS;
/// Points per series when `step` is not given.
const DEFAULT_POINTS: u64 = 60;

#[derive(Debug, Serialize)]
pub struct ServiceStatsResponse {
    /// Start of the first series point (minute aligned).
    pub start_unix_nano: String,
    pub end_unix_nano: String,
    pub step_ns: String,
    pub services: Vec<ServiceFiguresDto>,
}

#[derive(Debug, Serialize)]
pub struct ServiceFiguresDto {
    pub name: String,
    #[serde(flatten)]
    pub figures: FiguresDto,
    pub series: Vec<PointDto>,
    pub operations: Vec<OperationFiguresDto>,
}

#[derive(Debug, Serialize)]
pub struct OperationFiguresDto {
    pub name: String,
    #[serde(flatten)]
    pub figures: FiguresDto,
    pub series: Vec<PointDto>,
}

/// Totals over the whole range.
#[derive(Debug, Serialize)]
pub struct FiguresDto {
    pub count: u64,
    pub error_count: u64,
    /// Requests per second over the range.
    pub rate_per_second: f64,
    /// Errors over requests, 0..=1 (0 when there are none).
    pub error_rate: f64,
    pub p50_ns: String,
    pub p95_ns: String,
    pub p99_ns: String,
}

/// One step of a series.
#[derive(Debug, Serialize)]
pub struct PointDto {
    pub count: u64,
    pub error_count: u64,
    pub p50_ns: String,
    pub p95_ns: String,
    pub p99_ns: String,
}

impl FiguresDto {
    fn new(summary: &LatencySummary, seconds: f64) -> FiguresDto {
        FiguresDto {
            count: summary.count,
            error_count: summary.errors,
            rate_per_second: summary.count as f64 / seconds,
            error_rate: if summary.count == 0 {
                0.0
            } else {
                summary.errors as f64 / summary.count as f64
            },
            p50_ns: summary.p50_ns.to_string(),
            p95_ns: summary.p95_ns.to_string(),
            p99_ns: summary.p99_ns.to_string(),
        }
    }
}

impl From<&LatencySummary> for PointDto {
    fn from(summary: &LatencySummary) -> PointDto {
        PointDto {
            count: summary.count,
            error_count: summary.errors,
            p50_ns: summary.p50_ns.to_string(),
            p95_ns: summary.p95_ns.to_string(),
            p99_ns: summary.p99_ns.to_string(),
        }
    }
}

fn operation_dto(operation: OperationAggregate, seconds: f64) -> OperationFiguresDto {
    OperationFiguresDto {
        figures: FiguresDto::new(&operation.total, seconds),
        series: operation.series.iter().map(PointDto::from).collect(),
        name: operation.name,
    }
}

fn service_dto(service: ServiceAggregate, seconds: f64) -> ServiceFiguresDto {
    ServiceFiguresDto {
        figures: FiguresDto::new(&service.total, seconds),
        series: service.series.iter().map(PointDto::from).collect(),
        operations: service
            .operations
            .into_iter()
            .map(|operation| operation_dto(operation, seconds))
            .collect(),
        name: service.name,
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The last non-empty value of each parameter.
fn param(raw: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, value)| key == name && !value.trim().is_empty())
        .map(|(_, value)| value.trim().to_owned())
        .last()
}

fn time_param(raw: Option<&str>, name: &'static str) -> Result<Option<u64>, ApiError> {
    param(raw, name)
        .map(|value| parse_time(&value).map_err(|error| ApiError::bad_param(name, error)))
        .transpose()
}

/// Builds the aggregate query from `start`, `end` and `step`.
pub fn parse_query(raw: Option<&str>, now_ns: u64) -> Result<AggregateQuery, ApiError> {
    let end_ns = time_param(raw, "end")?.unwrap_or(now_ns);
    let start_ns = time_param(raw, "start")?.unwrap_or(end_ns.saturating_sub(DEFAULT_RANGE_NS));
    if start_ns >= end_ns {
        return Err(ApiError::bad_param("start", "start must be before end"));
    }
    let step_ns = match param(raw, "step") {
        Some(value) => {
            parse_duration_ns(&value).map_err(|error| ApiError::bad_param("step", error))?
        }
        None => (end_ns - start_ns) / DEFAULT_POINTS,
    };
    Ok(AggregateQuery {
        start_ns,
        end_ns,
        step_ns,
    })
}

/// Handler for `/api/v1/services/stats`.
pub async fn service_stats(
    State(query): State<Arc<QueryService>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ServiceStatsResponse>, ApiError> {
    let aggregate_query = parse_query(raw.as_deref(), now_ns())?;
    let services = tokio::task::spawn_blocking(move || query.service_aggregates(&aggregate_query))
        .await
        .map_err(|error| ApiError::Internal(format!("query task failed: {error}")))?;
    let seconds = (aggregate_query.end_ns - aggregate_query.start_ns) as f64 / 1e9;
    let step_ns = aggregate_query.step_minutes() * MINUTE_NS;
    Ok(Json(ServiceStatsResponse {
        start_unix_nano: aggregate_query.aligned_start_ns().to_string(),
        end_unix_nano: aggregate_query.end_ns.to_string(),
        step_ns: step_ns.to_string(),
        services: services
            .into_iter()
            .map(|service| service_dto(service, seconds))
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: u64 = 1_767_225_600 * 1_000_000_000;

    #[test]
    fn test_defaults_are_the_last_hour_in_sixty_points() {
        let query = parse_query(None, NOW).unwrap();
        assert_eq!(query.end_ns, NOW);
        assert_eq!(query.start_ns, NOW - 60 * MINUTE_NS);
        assert_eq!(query.step_minutes(), 1);
        assert_eq!(query.points(), 60);
    }

    #[test]
    fn test_explicit_range_and_step() {
        let raw = "start=2026-01-01T00:00:00Z&end=2026-01-01T06:00:00Z&step=15m";
        let query = parse_query(Some(raw), NOW).unwrap();
        assert_eq!(query.start_ns, NOW);
        assert_eq!(query.step_minutes(), 15);
        assert_eq!(query.points(), 24);
    }

    #[test]
    fn test_bad_parameters_are_named() {
        for (raw, name) in [
            ("start=yesterday", "start"),
            ("step=often", "step"),
            ("start=2&end=1", "start"),
        ] {
            let error = parse_query(Some(raw), NOW).unwrap_err();
            assert!(error.to_string().contains(name), "{raw}: {error}");
        }
    }
}
