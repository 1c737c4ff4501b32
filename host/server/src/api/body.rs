//! `JsonObject<T>`: a JSON request body that must be an object. axum's `Json<T>` lets serde
//! build a struct from a JSON array of its fields in order (`[null, null]` set two quotas),
//! which the OpenAPI document forbids (every body is an object); this extractor refuses it
//! with 400 and otherwise answers as `Json` does (415 without a JSON content type, 413 over
//! `[http] max_body_bytes`, 400 naming the field serde refused).

use super::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// A request body that is a JSON object deserialized as `T`.
#[derive(Debug, Clone)]
pub struct JsonObject<T>(pub T);

/// What a handler takes: the body, or the error to answer.
pub type JsonBody<T> = Result<JsonObject<T>, ApiError>;

/// `application/json` or `application/*+json`, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type(
                "request body: expected `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(r.body_text())
            } else {
                ApiError::invalid(format!("request body: {}", r.body_text()))
            }
        })?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            return Err(ApiError::invalid("request body: must be a JSON object"));
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(JsonObject(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        a: Option<u64>,
        b: Option<u64>,
    }

    async fn extract(ct: Option<&str>, body: &str) -> Result<JsonObject<Two>, ApiError> {
        let mut req = Request::builder().method("PUT").uri("/");
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body.to_string())).expect("request");
        JsonObject::<Two>::from_request(req, &()).await
    }

    #[tokio::test]
    async fn only_json_objects_are_bodies() {
        let json = Some("application/json");
        assert!(extract(json, r#"{"a": 1}"#).await.is_ok());
        assert!(
            extract(Some("application/merge-patch+json; charset=utf-8"), "{}")
                .await
                .is_ok()
        );
        let e = extract(json, "[null, null]")
            .await
            .expect_err("an array is refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("JSON object"), "{}", e.message);
        assert_eq!(extract(json, "3").await.expect_err("a number").status, 400);
        let e = extract(json, r#"{"a": "x"}"#)
            .await
            .expect_err("wrong type");
        assert!(e.message.contains('a'), "{}", e.message);
        let e = extract(None, "{}").await.expect_err("no content type");
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            extract(Some("text/plain"), "{}")
                .await
                .expect_err("text")
                .status,
            415
        );
    }
}
