//! Error tracking routes: issue DTOs and handlers.
//!
//! - `GET /api/v1/issues?status=&service=&environment=&source=span|log&q=&sort=last_seen|first_seen|count&limit=`
//!   → `{"issues":[...]}`
//! - `GET /api/v1/issues/{id}` → the list fields plus `resolved_in_version`,
//!   `status_history` (who changed the status when), `stack`, `hourly_14d`,
//!   `fingerprint`, `samples`, `facets`
//! - `PATCH /api/v1/issues/{id}` with `{"status":"resolved"|"ignored"|"open",
//!   "resolved_in_version":optional}` → the updated issue
//! - `GET /api/v1/notifications` → recent webhook deliveries (per
//!   endpoint, `new_issue`, `regression` or `digest`; `pending`,
//!   `retrying`, `delivered` or `failed`), urls redacted
//!
//! Nanosecond times are JSON strings, like the rest of the API. Unknown
//! ids answer 404, malformed parameters and bodies 400.

use std::sync::Arc;

use ashiato_errors::{
    Delivery, DeliveryStatus, ErrorsDbError, Facet, Frame, IssueDetail, IssueFilter, IssueId,
    IssueSort, IssueStatus, IssueStore, IssueSummary, Sample, Source, StatusChange,
};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ApiError;

/// What the issue routes read from.
#[derive(Clone)]
pub struct IssuesState {
    pub issues: Arc<IssueStore>,
    /// Recent webhook deliveries, newest first.
    pub notifications: Arc<dyn Fn() -> Vec<Delivery> + Send + Sync>,
}

/// The issue routes (full paths under `/api/v1`), to merge into the API
/// listener's router next to [`crate::router`].
pub fn router(state: IssuesState) -> Router {
    Router::new()
        .route("/api/v1/issues", get(list_issues))
        .route("/api/v1/issues/{id}", get(get_issue).patch(patch_issue))
        .route("/api/v1/notifications", get(list_notifications))
        .with_state(state)
}

/// Default and largest list size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

#[derive(Serialize)]
pub struct IssuesResponse {
    pub issues: Vec<IssueDto>,
}

#[derive(Serialize)]
pub struct IssueDto {
    pub id: String,
    pub title: String,
    pub error_type: String,
    pub message: String,
    pub culprit: String,
    pub service: String,
    pub environment: String,
    pub status: &'static str,
    pub regressed: bool,
    pub sources: Vec<&'static str>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub first_version: String,
    pub last_version: String,
    pub hourly_24h: Vec<u64>,
}

impl From<&IssueSummary> for IssueDto {
    fn from(issue: &IssueSummary) -> IssueDto {
        IssueDto {
            id: issue.id.to_string(),
            title: issue.title.clone(),
            error_type: issue.error_type.clone(),
            message: issue.message.clone(),
            culprit: issue.culprit.clone(),
            service: issue.service.clone(),
            environment: issue.environment.clone(),
            status: issue.status.as_str(),
            regressed: issue.regressed,
            sources: issue.sources.iter().map(|source| source.as_str()).collect(),
            count: issue.count,
            first_seen: issue.first_seen.to_string(),
            last_seen: issue.last_seen.to_string(),
            first_version: issue.first_version.clone(),
            last_version: issue.last_version.clone(),
            hourly_24h: issue.hourly_24h.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct IssueDetailDto {
    #[serde(flatten)]
    pub issue: IssueDto,
    pub resolved_in_version: Option<String>,
    /// Status changes made through the API, newest first, with who made
    /// them (token name or source network; `null` without access control).
    pub status_history: Vec<StatusChangeDto>,
    pub stack: Vec<FrameDto>,
    pub hourly_14d: Vec<u64>,
    pub fingerprint: FingerprintDto,
    pub samples: Vec<SampleDto>,
    pub facets: Vec<FacetDto>,
}

#[derive(Serialize)]
pub struct StatusChangeDto {
    pub time_unix_nano: String,
    pub status: &'static str,
    pub resolved_in_version: Option<String>,
    pub changed_by: Option<String>,
}

impl From<&StatusChange> for StatusChangeDto {
    fn from(change: &StatusChange) -> StatusChangeDto {
        StatusChangeDto {
            time_unix_nano: change.time_unix_nano.to_string(),
            status: change.status.as_str(),
            resolved_in_version: change.resolved_in_version.clone(),
            changed_by: change.changed_by.clone(),
        }
    }
}

/// The detail DTO with the status history, which the issue store keeps
/// apart from the detail.
fn detail_dto(detail: &IssueDetail, history: &[StatusChange]) -> IssueDetailDto {
    let mut dto = IssueDetailDto::from(detail);
    dto.status_history = history.iter().map(StatusChangeDto::from).collect();
    dto
}

#[derive(Serialize)]
pub struct FrameDto {
    pub function: String,
    pub module: String,
    pub file: String,
    pub line: Option<u32>,
    pub in_app: bool,
}

impl From<&Frame> for FrameDto {
    fn from(frame: &Frame) -> FrameDto {
        FrameDto {
            function: frame.function.clone(),
            module: frame.module.clone(),
            file: frame.file.clone(),
            line: frame.line,
            in_app: frame.in_app,
        }
    }
}

#[derive(Serialize)]
pub struct FingerprintDto {
    pub hash: String,
    pub components: Vec<String>,
    pub algorithm_version: u32,
}

#[derive(Serialize)]
pub struct SampleDto {
    pub time_unix_nano: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub source: &'static str,
    pub message: String,
    pub attributes: Map<String, Value>,
    pub ancestors: Vec<String>,
}

impl From<&Sample> for SampleDto {
    fn from(sample: &Sample) -> SampleDto {
        SampleDto {
            time_unix_nano: sample.time_unix_nano.to_string(),
            trace_id: sample.trace_id.map(|id| id.to_hex()),
            span_id: sample.span_id.map(|id| id.to_hex()),
            source: sample.source.as_str(),
            message: sample.message.clone(),
            attributes: sample
                .attributes
                .iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect(),
            ancestors: sample.ancestors.iter().map(|id| id.to_hex()).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct FacetDto {
    pub key: String,
    pub values: Vec<FacetValueDto>,
}

#[derive(Serialize)]
pub struct FacetValueDto {
    pub value: String,
    pub count: u64,
}

impl From<&Facet> for FacetDto {
    fn from(facet: &Facet) -> FacetDto {
        FacetDto {
            key: facet.key.clone(),
            values: facet
                .values
                .iter()
                .map(|(value, count)| FacetValueDto {
                    value: value.clone(),
                    count: *count,
                })
                .collect(),
        }
    }
}

impl From<&IssueDetail> for IssueDetailDto {
    fn from(detail: &IssueDetail) -> IssueDetailDto {
        IssueDetailDto {
            issue: IssueDto::from(&detail.summary),
            resolved_in_version: detail.summary.resolved_in_version.clone(),
            status_history: Vec::new(),
            stack: detail.stack.iter().map(FrameDto::from).collect(),
            hourly_14d: detail.hourly_14d.clone(),
            fingerprint: FingerprintDto {
                hash: detail.fingerprint.hash.clone(),
                components: detail.fingerprint.components.clone(),
                algorithm_version: detail.fingerprint.algorithm_version,
            },
            samples: detail.samples.iter().map(SampleDto::from).collect(),
            facets: detail.facets.iter().map(FacetDto::from).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct NotificationsResponse {
    pub notifications: Vec<NotificationDto>,
}

#[derive(Serialize)]
pub struct NotificationDto {
    pub id: i64,
    pub time_unix_nano: String,
    /// `null` for a digest.
    pub issue_id: Option<String>,
    pub event: String,
    /// Redacted: scheme and host only.
    pub url: String,
    pub status: &'static str,
    pub attempts: u32,
    /// When a pending or retrying delivery is tried next.
    pub next_attempt_unix_nano: Option<String>,
    pub error: Option<String>,
}

/// The PATCH body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuePatch {
    pub status: String,
    #[serde(default)]
    pub resolved_in_version: Option<String>,
}

/// Runs a blocking SQLite call off the async runtime.
async fn blocking<T: Send + 'static>(
    state: &IssuesState,
    run: impl FnOnce(&IssueStore) -> Result<T, ErrorsDbError> + Send + 'static,
) -> Result<T, ApiError> {
    let issues = state.issues.clone();
    tokio::task::spawn_blocking(move || run(&issues))
        .await
        .map_err(|error| ApiError::Internal(format!("issue task failed: {error}")))?
        .map_err(|error| match error {
            ErrorsDbError::NotFound(id) => ApiError::NotFound(format!("issue {id} not found")),
            other => ApiError::Internal(other.to_string()),
        })
}

fn filter_from(raw: Option<&str>) -> Result<IssueFilter, ApiError> {
    let mut filter = IssueFilter {
        limit: DEFAULT_LIMIT,
        ..IssueFilter::default()
    };
    let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes());
    for (key, value) in pairs {
        let value = value.trim().to_owned();
        if value.is_empty() {
            continue;
        }
        match key.as_ref() {
            "status" => {
                filter.status = Some(IssueStatus::parse(&value).ok_or_else(|| {
                    ApiError::bad_param("status", "expected open, resolved or ignored")
                })?);
            }
            "service" => filter.service = Some(value),
            "environment" => filter.environment = Some(value),
            "source" => {
                filter.source = Some(
                    Source::parse(&value)
                        .ok_or_else(|| ApiError::bad_param("source", "expected span or log"))?,
                );
            }
            "q" => filter.q = Some(value),
            "sort" => {
                filter.sort = match value.as_str() {
                    "last_seen" => IssueSort::LastSeen,
                    "first_seen" => IssueSort::FirstSeen,
                    "count" => IssueSort::Count,
                    _ => {
                        return Err(ApiError::bad_param(
                            "sort",
                            "expected last_seen, first_seen or count",
                        ));
                    }
                };
            }
            "limit" => {
                let limit: usize = value
                    .parse()
                    .map_err(|_| ApiError::bad_param("limit", "expected a positive integer"))?;
                if limit == 0 {
                    return Err(ApiError::bad_param("limit", "expected a positive integer"));
                }
                filter.limit = limit.min(MAX_LIMIT);
            }
            _ => {}
        }
    }
    Ok(filter)
}

fn issue_id(path: &str) -> Result<IssueId, ApiError> {
    // a well-formed id that matches nothing is a 404, like any unknown id
    IssueId::parse(path).ok_or_else(|| ApiError::NotFound(format!("issue {path} not found")))
}

async fn list_issues(
    State(state): State<IssuesState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<IssuesResponse>, ApiError> {
    let filter = filter_from(raw.as_deref())?;
    let issues = blocking(&state, move |issues| issues.list(&filter)).await?;
    Ok(Json(IssuesResponse {
        issues: issues.iter().map(IssueDto::from).collect(),
    }))
}

async fn get_issue(
    State(state): State<IssuesState>,
    Path(id): Path<String>,
) -> Result<Json<IssueDetailDto>, ApiError> {
    let id = issue_id(&id)?;
    let (detail, history) = blocking(&state, move |issues| {
        Ok((issues.get(&id)?, issues.status_history(&id)?))
    })
    .await?;
    Ok(Json(detail_dto(&detail, &history)))
}

async fn patch_issue(
    State(state): State<IssuesState>,
    Path(id): Path<String>,
    actor: Option<axum::Extension<crate::Actor>>,
    body: Result<Json<IssuePatch>, JsonRejection>,
) -> Result<Json<IssueDetailDto>, ApiError> {
    let id = issue_id(&id)?;
    let Json(patch) =
        body.map_err(|rejection| ApiError::bad_param("body", rejection.body_text()))?;
    let status = IssueStatus::parse(&patch.status)
        .ok_or_else(|| ApiError::bad_param("status", "expected open, resolved or ignored"))?;
    let version = patch
        .resolved_in_version
        .filter(|text| !text.trim().is_empty());
    let actor = actor.map(|axum::Extension(crate::Actor(name))| name);
    let changed_by = actor.clone();
    let (detail, history) = blocking(&state, move |issues| {
        issues.set_status_by(&id, status, version.as_deref(), changed_by.as_deref())?;
        Ok((issues.get(&id)?, issues.status_history(&id)?))
    })
    .await?;
    tracing::info!(
        issue = %detail.summary.id,
        status = status.as_str(),
        by = actor.as_deref().unwrap_or("-"),
        "issue status changed"
    );
    Ok(Json(detail_dto(&detail, &history)))
}

async fn list_notifications(
    State(state): State<IssuesState>,
) -> Result<Json<NotificationsResponse>, ApiError> {
    // an SQLite read: off the async workers
    let notifications = state.notifications.clone();
    let deliveries = tokio::task::spawn_blocking(move || notifications())
        .await
        .map_err(|error| ApiError::Internal(format!("notification task failed: {error}")))?;
    Ok(Json(NotificationsResponse {
        notifications: deliveries
            .iter()
            .map(|delivery| NotificationDto {
                id: delivery.id,
                time_unix_nano: delivery.time_unix_nano.to_string(),
                issue_id: delivery.issue_id.as_ref().map(ToString::to_string),
                event: delivery.event.clone(),
                url: delivery.url.clone(),
                status: delivery.status.as_str(),
                attempts: delivery.attempts,
                next_attempt_unix_nano: matches!(
                    delivery.status,
                    DeliveryStatus::Pending | DeliveryStatus::Retrying
                )
                .then(|| delivery.next_attempt_unix_nano.to_string()),
                error: delivery.error.clone(),
            })
            .collect(),
    }))
}
