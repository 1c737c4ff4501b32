//! `/metrics`: one `prometheus-client` registry, encoded as OpenMetrics when the scraper
//! asks for it (`Accept: application/openmetrics-text`, as Prometheus does) and as the
//! Prometheus text format 0.0.4 otherwise.
//!
//! | module | owns |
//! |---|---|
//! | [`emit`] | small helpers that write a family from values read at scrape time |
//! | [`process`] | the standard `process_*` names every Prometheus client exports |
//! | [`host`] | rmhost's system, ledger and pool figures (`rmhost_*`) |
//! | [`caches`] | per-cache and per-policy figures (`rmhost_cache_*`, `rmhost_policy_*`) |
//! | [`http`] | the request counter and latency histogram, by route template and status class |
//!
//! Most figures already live in the managers (atomics, snapshots), so they are read by
//! collectors at scrape time rather than mirrored into `prometheus-client` metrics; only
//! the HTTP layer owns metrics of its own.
//!
//! Cardinality: every label comes from a bounded set: route templates and methods from
//! the router, status classes, cache names (capped per tenant by
//! `[limits] max_caches_per_tenant`), policy names (loaded files), pools, kinds, reasons.

pub mod caches;
pub mod emit;
pub mod host;
pub mod http;
pub mod process;

use prometheus_client::registry::Registry;
use rmhost_core::host::Host;
use rmhost_runtime::PolicyRuntime;
use std::sync::Arc;

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4, for scrapers that do not ask for OpenMetrics.
    Prometheus,
}

impl Format {
    /// OpenMetrics when `accept` lists `application/openmetrics-text` with a non-zero
    /// weight, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_om = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        });
        if wants_om {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The daemon's metrics: the registry and the HTTP layer's own families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: http::HttpMetrics,
}

impl Metrics {
    /// Registers every family: `process_*` unprefixed, the rest under `rmhost_`.
    pub fn new(host: Arc<Host>, runtime: PolicyRuntime) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(process::ProcessCollector));
        let http = http::HttpMetrics::default();
        let rmhost = registry.sub_registry_with_prefix("rmhost");
        http.register(rmhost);
        rmhost.register_collector(Box::new(host::HostCollector::new(host.clone())));
        rmhost.register_collector(Box::new(caches::CacheCollector::new(host)));
        rmhost.register_collector(Box::new(caches::PolicyCollector::new(runtime)));
        Metrics { registry, http }
    }

    /// The HTTP layer's families (for [`http::track`]).
    pub fn http(&self) -> &http::HttpMetrics {
        &self.http
    }

    /// One exposition. Collectors read the managers here, so call it off the async
    /// workers (a shared ledger's usage may wait on its backend).
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(32 * 1024);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Prometheus
        );
    }
}
