//! Optional OTLP traces of the daemon: API requests and policy calls, exported over gRPC
//! to an OpenTelemetry collector. Configured by the standard `OTEL_*` environment
//! variables and **off unless an endpoint is set** (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! or `OTEL_EXPORTER_OTLP_ENDPOINT`): with neither, no exporter exists and nothing
//! connects anywhere, even if other `OTEL_*` variables are set.
//!
//! The libraries only emit `tracing` spans (targets [`rmhost_server::api::SPAN_TARGET`]
//! and [`rmhost_runtime::SPAN_TARGET`], at DEBUG); this module is the only place that
//! knows about OpenTelemetry. The exporter layer selects those two targets alone, so
//! neither the log lines nor the exporter's own transport (tonic, hyper, h2) become spans.
//!
//! A bad value is a startup error naming the variable (exit 2), not a warning with traces
//! silently off: an operator who set `OTEL_*` wants traces, and a typo that quietly
//! exported nothing (or sampled everything) would be found only when the traces are
//! needed. Values the SDK reads itself and we pass through unchecked: the
//! `OTEL_EXPORTER_OTLP_*HEADERS` pairs' values, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_BSP_*`.
//!
//! The batch processor runs as a tokio task (the SDK's thread-based one cannot drive
//! tonic's I/O: there is no reactor on its thread), so [`Settings::install`] is called
//! inside the runtime and [`Tracing::shutdown`] after the daemon returned, while the
//! runtime still runs, to flush what is queued.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::time::Duration;
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;

/// The service name when `OTEL_SERVICE_NAME` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "rmhost";

/// How long shutdown waits for the last spans to be exported before giving up on them.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A bad `OTEL_*` value.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The variable's value is not one we accept.
    #[error("{var}={value:?}: {why}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is accepted instead.
        why: String,
    },
    /// The exporter refused its configuration.
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(String),
}

/// The sampler `OTEL_TRACES_SAMPLER` (and `_ARG`) names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with its ratio.
    Ratio(f64),
    /// `parentbased_always_on` (the default).
    ParentOn,
    /// `parentbased_always_off`.
    ParentOff,
    /// `parentbased_traceidratio` with its ratio.
    ParentRatio(f64),
}

impl SamplerChoice {
    fn sampler(self) -> Sampler {
        let parent = |s| Sampler::ParentBased(Box::new(s));
        match self {
            SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
            SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
            SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
            SamplerChoice::ParentOn => parent(Sampler::AlwaysOn),
            SamplerChoice::ParentOff => parent(Sampler::AlwaysOff),
            SamplerChoice::ParentRatio(r) => parent(Sampler::TraceIdRatioBased(r)),
        }
    }
}

/// What the `OTEL_*` variables ask for, when they turn traces on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The collector's gRPC endpoint (`http://host:4317`).
    pub endpoint: String,
    /// The variable it came from.
    pub endpoint_var: &'static str,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which traces are kept.
    pub sampler: SamplerChoice,
}

/// Reads a variable, empty meaning unset (as the OpenTelemetry spec says).
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Longest part of a bad value repeated in the error (a 2 MB variable is not echoed).
const SHOWN_CHARS: usize = 100;

fn invalid(var: &'static str, value: &str, why: impl Into<String>) -> OtelError {
    let value = match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &value[..cut], value.len()),
        None => value.to_string(),
    };
    OtelError::Invalid {
        var,
        value,
        why: why.into(),
    }
}

/// `true` / `false`, any case.
fn boolean(env: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, OtelError> {
    match var(env, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(invalid(name, &v, "expected true or false")),
    }
}

/// The per-signal variable, else the general one (the spec's precedence).
fn signal_var(
    env: &dyn Fn(&str) -> Option<String>,
    traces: &'static str,
    general: &'static str,
) -> Option<(&'static str, String)> {
    var(env, traces)
        .map(|v| (traces, v))
        .or_else(|| var(env, general).map(|v| (general, v)))
}

/// Reads the `OTEL_*` variables through `env`: `Ok(None)` when traces are off (no
/// endpoint, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`), an error naming
/// the variable when a value is bad. Every variable is checked even when traces are off,
/// so a typo surfaces the day it is made, not the day an endpoint is added.
pub fn settings(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Settings>, OtelError> {
    let disabled = boolean(env, "OTEL_SDK_DISABLED")?;
    let exporter_on = match var(env, "OTEL_TRACES_EXPORTER") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("otlp") => true,
        Some(v) if v.eq_ignore_ascii_case("none") => false,
        Some(v) => {
            return Err(invalid(
                "OTEL_TRACES_EXPORTER",
                &v,
                "rmhost exports traces over OTLP only: otlp or none",
            ));
        }
    };
    if let Some((name, v)) = signal_var(
        env,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ) && v != "grpc"
    {
        return Err(invalid(
            name,
            &v,
            "rmhost's OTLP exporter speaks grpc only (port 4317 on a collector)",
        ));
    }
    if let Some((name, v)) = signal_var(
        env,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ) && v.parse::<u32>().is_err()
    {
        return Err(invalid(
            name,
            &v,
            "expected milliseconds, a whole number up to 4294967295",
        ));
    }
    if let Some((name, v)) = signal_var(
        env,
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ) && !v.eq_ignore_ascii_case("none")
    {
        return Err(invalid(
            name,
            &v,
            "rmhost is built without OTLP compression: none or unset",
        ));
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
        "OTEL_EXPORTER_OTLP_INSECURE",
    ] {
        boolean(env, name)?;
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if let Some(v) = var(env, name)
            && let Some(bad) = v.split(',').find(|pair| {
                pair.split_once('=')
                    .is_none_or(|(k, _)| k.trim().is_empty())
            })
        {
            return Err(invalid(
                name,
                &v,
                format!("{bad:?} is not key=value (pairs are separated by commas)"),
            ));
        }
    }
    let sampler = sampler(env)?;
    let service_name =
        var(env, "OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    let endpoint = signal_var(
        env,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
    if let Some((name, v)) = &endpoint {
        check_endpoint(name, v)?;
    }
    let Some((endpoint_var, endpoint)) = endpoint else {
        return Ok(None);
    };
    if disabled || !exporter_on {
        return Ok(None);
    }
    Ok(Some(Settings {
        endpoint,
        endpoint_var,
        service_name,
        sampler,
    }))
}

/// An `http://` URL with a host (and, for gRPC, nothing after the port but an optional
/// `/`: the path is the service's, not the endpoint's). `https://` is refused by name:
/// the exporter is built without TLS (it would pull a second TLS setup into tonic, which
/// the rate-limit service does not need); send to a collector or agent on the host or
/// pod network, which forwards over TLS.
fn check_endpoint(name: &'static str, v: &str) -> Result<(), OtelError> {
    if v.starts_with("https://") {
        return Err(invalid(
            name,
            v,
            "this build exports without TLS: point it at a local collector over http://",
        ));
    }
    let Some(rest) = v.strip_prefix("http://") else {
        return Err(invalid(
            name,
            v,
            "expected an http:// URL, e.g. http://127.0.0.1:4317",
        ));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', ' ']) {
        return Err(invalid(
            name,
            v,
            "expected scheme://host[:port] (gRPC endpoints have no path)",
        ));
    }
    Ok(())
}

fn ratio(env: &dyn Fn(&str) -> Option<String>) -> Result<f64, OtelError> {
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    match var(env, ARG) {
        None => Ok(1.0),
        Some(v) => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(ARG, &v, "expected a ratio from 0 to 1")),
        },
    }
}

fn sampler(env: &dyn Fn(&str) -> Option<String>) -> Result<SamplerChoice, OtelError> {
    const NAME: &str = "OTEL_TRACES_SAMPLER";
    let Some(v) = var(env, NAME) else {
        return Ok(SamplerChoice::ParentOn);
    };
    Ok(match v.to_ascii_lowercase().as_str() {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::Ratio(ratio(env)?),
        "parentbased_always_on" => SamplerChoice::ParentOn,
        "parentbased_always_off" => SamplerChoice::ParentOff,
        "parentbased_traceidratio" => SamplerChoice::ParentRatio(ratio(env)?),
        _ => {
            return Err(invalid(
                NAME,
                &v,
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

/// The installed exporter, to be shut down (flushed) when the daemon stops.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

/// The exporter's `tracing` layer, selecting the request and policy-call spans only.
pub type OtelLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

impl Settings {
    /// Builds the exporter and its layer. Must run inside the tokio runtime (the channel
    /// and the batch processor's task are made on it); nothing connects until the first
    /// batch is sent.
    pub fn install(&self) -> Result<(Tracing, OtelLayer), OtelError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(self.endpoint.clone())
            .build()
            .map_err(|e| OtelError::Exporter(format!("{} ({e})", self.endpoint_var)))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(self.sampler.sampler())
            .with_resource(
                Resource::builder()
                    .with_service_name(self.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("rmhost");
        let targets = Targets::new()
            .with_target(rmhost_server::api::SPAN_TARGET, Level::DEBUG)
            .with_target(rmhost_runtime::SPAN_TARGET, Level::DEBUG);
        // No thread ids or busy/idle times: a request hops threads, and the span's own
        // duration is what is asked.
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(targets)
            .boxed();
        Ok((Tracing { provider }, layer))
    }
}

impl Tracing {
    /// Exports what is still queued, waiting at most `FLUSH_TIMEOUT` (5 s) (a collector that
    /// went away must not hold the daemon's exit). Call with the runtime still running.
    pub fn shutdown(self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let provider = self.provider;
        std::thread::spawn(move || {
            let _ = tx.send(provider.shutdown());
        });
        match rx.recv_timeout(FLUSH_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("rmhost: flushing OTLP traces failed: {e}"),
            Err(_) => eprintln!(
                "rmhost: OTLP traces not flushed within {} s; the last spans are lost",
                FLUSH_TIMEOUT.as_secs()
            ),
        }
    }
}

#[cfg(test)]
#[path = "otel_tests.rs"]
mod tests;
