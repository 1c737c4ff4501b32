//! One `tracing` span per guest call: the policy's name, the kind and call, and the
//! outcome (`ok`, `fault` or `deadline`).
//!
//! The runtime only emits spans; where they go is the binary's choice (the daemon exports
//! them over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set). They are at DEBUG under the
//! target [`TARGET`], so the daemon's default `info` log filter leaves them disabled: a
//! disabled span is one cached-interest check at the callsite, and its fields are never
//! evaluated, which keeps the hot path (a ~200 ns call) as it was (docs/measurements.md).

use super::version::Fault;
use rmhost_core::policy::PolicyKind;
use tracing::Span;

/// The target of every policy-call span (the binary's OTLP layer selects it).
pub const TARGET: &str = "rmhost::policy";

/// The span's OpenTelemetry name: `kind.call`, static so nothing is formatted per call.
fn call_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Eviction => "policy eviction.observe",
        PolicyKind::Quota => "policy quota.decide",
        PolicyKind::Priority => "policy priority.rank",
        PolicyKind::Pressure => "policy pressure.respond",
    }
}

fn call(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Eviction => "observe",
        PolicyKind::Quota => "decide",
        PolicyKind::Priority => "rank",
        PolicyKind::Pressure => "respond",
    }
}

/// A span for one call of `policy`'s `kind` export, started now and ended when dropped.
/// The caller records the outcome with [`outcome`].
pub(crate) fn call_span(policy: &str, kind: PolicyKind) -> Span {
    span(policy, kind, call_name(kind), call(kind))
}

/// A span for one `eviction-run.next-victims` call (victim runs), like [`call_span`].
pub(crate) fn run_span(policy: &str) -> Span {
    span(
        policy,
        PolicyKind::Eviction,
        "policy eviction-run.next-victims",
        "next-victims",
    )
}

fn span(policy: &str, kind: PolicyKind, otel_name: &'static str, call: &'static str) -> Span {
    tracing::debug_span!(
        target: TARGET,
        "policy call",
        otel.name = otel_name,
        policy.name = policy,
        policy.kind = kind.as_str(),
        policy.call = call,
        policy.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records how the call ended: `ok`, `deadline` (interrupted at the policy's deadline) or
/// `fault` (a trap, the memory cap, a malformed answer, or no instance).
pub(crate) fn outcome(span: &Span, fault: Option<&Fault>) {
    if span.is_disabled() {
        return;
    }
    let outcome = match fault {
        None => "ok",
        Some(Fault::Deadline(_)) => "deadline",
        Some(_) => "fault",
    };
    span.record("policy.outcome", outcome);
    if fault.is_some() {
        span.record("otel.status_code", "error");
    }
}
