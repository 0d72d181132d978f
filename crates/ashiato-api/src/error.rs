//! API errors and their JSON form `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why an API request failed; each variant has one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or path segment is malformed; the message names it.
    #[error("invalid {param}: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Store or runtime failure; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_param(param: &'static str, reason: impl ToString) -> ApiError {
        ApiError::BadParam {
            param,
            reason: reason.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "api request failed");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}
