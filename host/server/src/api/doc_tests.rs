//! The OpenAPI document against the router: valid JSON of OpenAPI 3.1, unique operation
//! ids, every operation described (security, responses), every documented operation
//! served, and no route added outside `routes!` (which would serve an undocumented one).

use super::{document, router};
use crate::daemon::Daemon;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rmhost_core::config::Config;
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// (method, path template, operation) for every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn doc_json() -> Value {
    let text = document()
        .to_pretty_json()
        .expect("the document serializes");
    serde_json::from_str(&text).expect("the document is JSON")
}

#[test]
fn the_document_is_openapi_3_1_with_unique_operation_ids() {
    let doc = doc_json();
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 40, "only {} operations documented", ops.len());
    let mut ids = BTreeSet::new();
    for (m, path, op) in &ops {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {path}: no operationId"));
        assert!(
            ids.insert(id.to_string()),
            "operationId {id:?} is used twice"
        );
        assert!(
            op["security"].is_array(),
            "{m} {path}: no security requirement (say `security(())` for a public route)"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{m} {path}: no success response"
        );
        let needs_token = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if needs_token {
            assert!(responses.contains_key("401"), "{m} {path}: no 401");
        }
        // Every path parameter of the template is described.
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            let described = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
            });
            assert!(
                described,
                "{m} {path}: path parameter {name} is not described"
            );
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{m} {path}: no {status}");
            }
        }
    }
    let schemes = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(schemes["scheme"], "bearer");
}

#[test]
fn the_documented_bounds_are_the_handlers_bounds() {
    let doc = doc_json();
    let schemas = &doc["components"]["schemas"];
    let req = &schemas["AllocationRequest"]["properties"];
    assert_eq!(req["priority"]["maximum"], 255);
    assert_eq!(req["amount"]["minimum"], 1);
    assert_eq!(
        schemas["EntryBody"]["properties"]["priority"]["maximum"],
        255
    );
    let profile = &doc["paths"]["/v1/profile"]["get"]["parameters"];
    let duration = profile
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "duration_ms"))
        .expect("duration_ms is documented");
    assert_eq!(duration["schema"]["maximum"], super::system::MAX_PROFILE_MS);
    assert_eq!(duration["required"], true);
}

/// What the router answers to `method path` (auth off: the caller is the admin).
async fn call(app: &axum::Router, method: &str, path: &str) -> (StatusCode, String) {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(
            if method == Method::GET || method == Method::DELETE {
                ""
            } else {
                "{}"
            },
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    // The event stream never ends: its status and headers are enough.
    if resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, String::new());
    }
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.policies.dir = dir.path().to_string_lossy().into_owned();
    let daemon = Daemon::new(config).expect("daemon");
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(daemon, stop_rx);
    let doc = doc_json();
    for (m, template, _) in operations(&doc) {
        let path = template
            .replace("{id}", "1")
            .replace("{kind}", "eviction")
            .replace("{tenant}", "acme")
            .replace("{name}", "some-name")
            .replace("{key}", "k");
        let (status, body) = call(&app, &m, &path).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{m} {template}: {body}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no such route")),
            "{m} {template} is documented but not routed"
        );
    }
    // The fallback is what an unrouted path gets, so the check above can fail.
    let (status, body) = call(&app, "get", "/v1/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no such route"), "{body}");
    // And the document is served, as the handler sees it.
    let (status, body) = call(&app, "get", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let served: Value = serde_json::from_str(&body).expect("served document is JSON");
    assert_eq!(served, doc);
}

#[test]
fn routes_are_added_only_with_their_documentation() {
    // A route added with axum's own `.route(...)` (or a merged or nested router) would be
    // served without an operation in the document.
    let api_sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("doc.rs", include_str!("doc.rs")),
        ("system.rs", include_str!("system.rs")),
        ("resources.rs", include_str!("resources.rs")),
        ("memory.rs", include_str!("memory.rs")),
        ("entries.rs", include_str!("entries.rs")),
        ("policies.rs", include_str!("policies.rs")),
        ("events.rs", include_str!("events.rs")),
        ("probes.rs", include_str!("probes.rs")),
        ("metrics.rs", include_str!("metrics.rs")),
    ];
    for (file, text) in api_sources {
        for needle in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
            "routing::",
        ] {
            assert!(
                !text.contains(needle),
                "api/{file} uses `{needle}`: add routes with `routes!` and a #[utoipa::path]"
            );
        }
    }
}
