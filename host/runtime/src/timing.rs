//! Per-call timing for `rmhost policy check`: each exported kind called repeatedly under
//! the policy's real deadline (not the relaxed setup one), with p50/p99 reported, so a
//! policy that answers correctly but takes 70 ms a call is caught before it is loaded.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::samples;
use super::version::{Fault, PolicyVersion};
use rmhost_core::policy::{
    EventKind, PackedEvent, PolicyKind, PressureLevel, SystemUsage, encode_event,
};

/// Calls timed per kind.
pub const TIMED_CALLS: u32 = 200;

/// One kind's call times.
#[derive(Debug, Clone, Serialize)]
pub struct CallTiming {
    /// The kind called.
    pub kind: PolicyKind,
    /// Calls made (fewer than [`TIMED_CALLS`] when one faulted).
    pub calls: u32,
    /// Median call time, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest call, µs.
    pub max_us: f64,
    /// The deadline the calls ran under, ms.
    pub deadline_ms: f64,
    /// Calls that missed it (counted at the deadline in the percentiles; one miss can be
    /// the machine, not the policy, so only a p99 over the deadline fails).
    pub missed: u32,
    /// The fault that ended the run, if any (a trap, a malformed answer, or
    /// [`MAX_MISSED`] missed deadlines).
    pub fault: Option<String>,
}

/// Missed deadlines that end a run: with this many of [`TIMED_CALLS`] the p99 is over.
pub const MAX_MISSED: u32 = 3;

impl CallTiming {
    /// Whether the policy is fit to serve: no fault, and p99 within the deadline.
    pub fn ok(&self) -> bool {
        self.fault.is_none() && self.p99_us <= self.deadline_ms * 1e3
    }

    /// Why not, for the report.
    pub fn problem(&self) -> Option<String> {
        if let Some(f) = &self.fault {
            return Some(format!("{}: call {} {f}", self.kind, self.calls));
        }
        (self.p99_us > self.deadline_ms * 1e3).then(|| {
            format!(
                "{}: p99 {:.0} µs exceeds the deadline of {} ms",
                self.kind, self.p99_us, self.deadline_ms
            )
        })
    }
}

fn summarise(
    kind: PolicyKind,
    deadline: Duration,
    mut t: Vec<Duration>,
    missed: u32,
    fault: Option<Fault>,
) -> CallTiming {
    t.sort_unstable();
    let us = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
    let at = |q: f64| t.get(((t.len() as f64 - 1.0) * q).round() as usize);
    CallTiming {
        kind,
        calls: t.len() as u32,
        p50_us: us(at(0.5)),
        p99_us: us(at(0.99)),
        max_us: us(t.last()),
        deadline_ms: deadline.as_secs_f64() * 1e3,
        missed,
        fault: fault.map(|f| f.to_string()),
    }
}

/// Times every kind `v` exports. `v` must be armed (its real deadline in force).
pub(crate) fn time_calls(v: &PolicyVersion) -> Vec<CallTiming> {
    let mut out = Vec::new();
    let usage = SystemUsage::default();
    let run = |kind: PolicyKind, call: &mut dyn FnMut(u32) -> Result<(), Fault>| {
        let mut times = Vec::with_capacity(TIMED_CALLS as usize);
        let (mut fault, mut missed) = (None, 0);
        for i in 0..TIMED_CALLS {
            let t = Instant::now();
            match call(i) {
                Ok(()) => times.push(t.elapsed()),
                Err(Fault::Deadline(d)) => {
                    times.push(t.elapsed().max(d));
                    missed += 1;
                    if missed >= MAX_MISSED {
                        fault = Some(Fault::Deadline(d));
                        break;
                    }
                }
                Err(f) => {
                    times.push(t.elapsed());
                    fault = Some(f);
                    break;
                }
            }
        }
        summarise(kind, v.deadline, times, missed, fault)
    };
    if v.has(PolicyKind::Eviction) {
        let timing = match v
            .new_eviction()
            .and_then(|mut inst| v.configure(&mut inst, 1 << 30, 4096).map(|_| inst))
        {
            Err(f) => summarise(PolicyKind::Eviction, v.deadline, Vec::new(), 0, Some(f)),
            Ok(mut inst) => {
                // Each call: the removes of the last victims, 16 inserts and 16 hits, then
                // a request for room (the host's miss path), so the live set grows to
                // thousands of entries over the run.
                let mut batch = Vec::new();
                let mut victims: Vec<u64> = Vec::new();
                run(PolicyKind::Eviction, &mut |i| {
                    batch.clear();
                    for id in victims.drain(..) {
                        encode_event(
                            &mut batch,
                            &PackedEvent {
                                id,
                                size: 0,
                                at_ms: u64::from(i),
                                kind: EventKind::Remove,
                                priority: 0,
                                fingerprint: id,
                            },
                        );
                    }
                    for j in 0..16u64 {
                        let id = u64::from(i) * 16 + j;
                        for kind in [EventKind::Insert, EventKind::Hit] {
                            encode_event(
                                &mut batch,
                                &PackedEvent {
                                    id,
                                    size: 64,
                                    at_ms: u64::from(i),
                                    kind,
                                    priority: 0,
                                    fingerprint: id,
                                },
                            );
                        }
                    }
                    match v.observe(&mut inst, &batch, 4 * 64, 8) {
                        Ok(ids) => {
                            victims = ids;
                            Ok(())
                        }
                        Err(f) => {
                            // A trapped instance cannot be entered again: start a new one
                            // for the calls that follow.
                            if let Ok(mut fresh) = v.new_eviction()
                                && v.configure(&mut fresh, 1 << 30, 4096).is_ok()
                            {
                                inst = fresh;
                            }
                            Err(f)
                        }
                    }
                })
            }
        };
        out.push(timing);
    }
    if v.has(PolicyKind::Quota) {
        out.push(run(PolicyKind::Quota, &mut |i| {
            let (req, ts) = samples::quota(i);
            v.decide(&req, &ts, &usage, &[]).map(|_| ())
        }));
    }
    if v.has(PolicyKind::Priority) {
        out.push(run(PolicyKind::Priority, &mut |i| {
            v.rank(&samples::waiter(i)).map(|_| ())
        }));
    }
    if v.has(PolicyKind::Pressure) {
        let (caches, pools) = samples::standing();
        out.push(run(PolicyKind::Pressure, &mut |i| {
            let level = [
                PressureLevel::Normal,
                PressureLevel::Warning,
                PressureLevel::Critical,
            ][(i % 3) as usize];
            v.respond(level, &usage, &caches, &pools).map(|_| ())
        }));
    }
    out
}
