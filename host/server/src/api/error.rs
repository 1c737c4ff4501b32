//! The one error type HTTP clients see: a status, a stable code and a message. Internal
//! failures are logged with their detail and sent as a generic `internal` error.

use crate::wire::ErrorBody;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmhost_core::resources::ResourceError;

/// An error answered as `{"error": CODE, "message": TEXT}` (a [`ErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message naming what is wrong.
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after_s: Option<u64>,
    /// Extra fields merged into the body.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            extra: serde_json::Map::new(),
        }
    }

    /// 400: the request is malformed; the message names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401: no or a wrong token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token may not touch this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with a conflict code (`quota_exceeded`, `limit_exceeded`, `conflict`).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after_s = Some(retry_after_ms.div_ceil(1000).max(1));
        e
    }

    /// 413: the body is over `[http] max_body_bytes`.
    pub fn payload_too_large(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body: larger than the limit ([http] max_body_bytes): {detail}"),
        )
    }

    /// 415: the body is not sent as JSON.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: logs `detail`, sends nothing of it.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon's log",
        )
    }

    /// Adds the fields of `extra` (a struct or map) to the body; `error` and `message`
    /// keep their values.
    pub fn with_extra(mut self, extra: &impl serde::Serialize) -> Self {
        match serde_json::to_value(extra) {
            Ok(serde_json::Value::Object(fields)) => {
                for (k, v) in fields {
                    if k != "error" && k != "message" {
                        self.extra.entry(k).or_insert(v);
                    }
                }
            }
            // Only structs and maps have fields; anything else is a bug in the caller.
            Ok(other) => tracing::error!(extra = %other, "error extra is not an object"),
            Err(e) => tracing::error!(error = %e, "error extra does not serialize"),
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
            details: self.extra,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        let msg = e.to_string();
        match e {
            ResourceError::QuotaExceeded { .. } | ResourceError::Denied { .. } => {
                ApiError::conflict("quota_exceeded", msg)
            }
            ResourceError::LimitExceeded { .. } => ApiError::conflict("limit_exceeded", msg),
            ResourceError::UnknownAllocation { .. } => ApiError::not_found(msg),
            ResourceError::InvalidAmount { .. } => ApiError::invalid(format!("amount: {msg}")),
            ResourceError::InvalidRequest { .. } => ApiError::invalid(msg),
            ResourceError::Shed { .. } => {
                let mut e = ApiError::unavailable(msg);
                e.retry_after_s = Some(5);
                e
            }
            ResourceError::Unavailable { .. } => {
                let mut e = ApiError::unavailable(msg);
                e.retry_after_s = Some(1);
                e
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // The body text carries serde's path and reason, e.g. "kind: unknown variant `x`".
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request body: larger than the limit ([http] max_body_bytes): {}",
                    r.body_text()
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("request body: {}", r.body_text()),
            ),
            _ => ApiError::invalid(format!("request body: {}", r.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(format!("query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::invalid(format!("path: {}", r.body_text()))
    }
}
