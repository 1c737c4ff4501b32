//! `rmhost_http_requests_total` and `rmhost_http_request_duration_seconds`, by method,
//! route template and status class, recorded by a middleware on the router.
//!
//! The route is axum's [`MatchedPath`] (`/v1/caches/{name}`), never the raw path, and an
//! unrouted request counts as `unmatched`: a tenant's names and a scanner's paths must not
//! add series. Methods outside the standard set count as `other`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// Latency bounds, seconds: 250 µs to 10 s.
const BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One series' labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, ... or `other`.
    pub method: &'static str,
    /// The route template, or `unmatched`.
    pub route: String,
    /// `2xx`, `4xx`, `5xx`, ...
    pub status: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The HTTP families.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
        }
    }
}

impl HttpMetrics {
    /// Registers both families in `registry` (clones share the series).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status class",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by method, route template and status class",
            self.duration.clone(),
        );
    }

    /// Records one answered request.
    pub fn record(&self, method: &Method, route: Option<&str>, status: StatusCode, secs: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.unwrap_or("unmatched").to_string(),
            status: status_class(status),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(secs);
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The middleware: times the request to its response head and records it.
pub async fn track(
    State(metrics): State<std::sync::Arc<super::Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    metrics.http().record(
        &method,
        route.as_deref(),
        resp.status(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
