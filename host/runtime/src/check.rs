//! `rmhost policy check FILE [--conformance]`: compile, validate and smoke-test a policy
//! without loading it, and optionally run the eviction conformance sequence.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::RuntimeError;
use super::registry::{PolicyRuntime, policy_name, read_bounded};
use super::timing::{CallTiming, time_calls};
use super::version::PolicyVersion;
use rmhost_core::policy::{
    EventKind, EvictionPolicy, NativeLru, PackedEvent, PolicyKind, encode_event,
};

/// The result of checking one file.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Policy name (file stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Whether it would load (and pass conformance, when asked).
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Kinds it implements.
    pub kinds: Vec<PolicyKind>,
    /// Component size, bytes.
    pub size_bytes: usize,
    /// SHA-256, hex.
    pub hash: String,
    /// Whether it imports WASI.
    pub wasi: bool,
    /// Compile (or artifact-cache load) time, ms.
    pub compile_ms: f64,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
    /// Time of the first instantiation, µs.
    pub instantiate_us: f64,
    /// `ok`, or why the smoke call failed.
    pub smoke: String,
    /// Per-call times of every kind under the policy's real deadline.
    pub timing: Vec<CallTiming>,
    /// The eviction conformance run, when asked for and the policy evicts.
    pub conformance: Option<ConformanceReport>,
}

/// The eviction conformance run.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    /// Whether every check held.
    pub passed: bool,
    /// Operations run.
    pub ops: u32,
    /// Victim requests among them.
    pub victim_requests: u32,
    /// Whether victims were compared with the native LRU's.
    pub compared_with_lru: bool,
    /// The first failed check.
    pub first_divergence: Option<String>,
    /// Live entries held before the random operations start.
    pub live_entries: u32,
    /// The per-call deadline the run was held to, µs.
    pub deadline_us: u64,
    /// Median `observe` call time, µs.
    pub p50_us: f64,
    /// 99th percentile `observe` call time, µs (over the deadline fails the run).
    pub p99_us: f64,
}

/// Live entries the conformance run inserts first: policies that misbehave only with many
/// entries (quadratic scans, deadline misses) must show it here, not in production.
pub(crate) const CONFORMANCE_LIVE: u32 = 5000;

impl PolicyRuntime {
    /// Checks `path`; the error is only for a file that cannot be read.
    pub fn check_file(&self, path: &Path, conformance: bool) -> Result<CheckReport, RuntimeError> {
        self.check_file_with(path, conformance, false)
    }

    /// As [`Self::check_file`]; `assume_lru` (the `--lru` flag) compares the victims with
    /// the native LRU's, as does a policy whose `algorithm` setting is `lru`.
    pub fn check_file_with(
        &self,
        path: &Path,
        conformance: bool,
        assume_lru: bool,
    ) -> Result<CheckReport, RuntimeError> {
        let name = policy_name(path)?;
        let bytes = read_bounded(path, self.shared.opts.max_file_bytes)?;
        let mut r = CheckReport {
            name: name.clone(),
            path: path.to_path_buf(),
            ok: false,
            error: None,
            kinds: Vec::new(),
            size_bytes: bytes.len(),
            hash: super::engine::content_hash(&bytes),
            wasi: false,
            compile_ms: 0.0,
            from_cache: false,
            instantiate_us: 0.0,
            smoke: "not run".into(),
            timing: Vec::new(),
            conformance: None,
        };
        let v = match self.shared.build(&name, &bytes, Some(path.to_path_buf())) {
            Ok(v) => v,
            Err(e) => {
                r.error = Some(e);
                return Ok(r);
            }
        };
        r.kinds = v.kinds.clone();
        r.wasi = v.wasi;
        r.compile_ms = v.compile_time.as_secs_f64() * 1e3;
        r.from_cache = v.from_cache;
        match v.smoke() {
            Ok(t) => {
                r.instantiate_us = t.as_secs_f64() * 1e6;
                r.smoke = "ok".into();
            }
            Err(e) => {
                r.smoke = e.clone();
                r.error = Some(e);
                return Ok(r);
            }
        }
        r.ok = true;
        if conformance && v.has(PolicyKind::Eviction) {
            // Answers are checked under the relaxed setup deadline (one scheduler hiccup
            // on a loaded machine must not fail a correct policy); speed is checked by the
            // run's p99 against the policy's deadline.
            let lru = assume_lru || v.setting("algorithm") == Some("lru");
            let c = eviction_conformance(&v, lru, 0x5eed, 3000);
            if let Some(d) = &c.first_divergence {
                r.ok = false;
                r.error = Some(format!("conformance: {d}"));
            }
            r.conformance = Some(c);
        }
        // The timing calls run under the policy's real deadline, as when loaded: a policy
        // that answers correctly but slowly must not pass here and then fall back on every
        // call in production.
        v.arm();
        r.timing = time_calls(&v);
        if let Some(p) = r.timing.iter().find_map(CallTiming::problem)
            && r.error.is_none()
        {
            r.ok = false;
            r.error = Some(format!("timing: {p}"));
        }
        Ok(r)
    }
}

/// Runs a seeded random sequence of inserts (varied sizes), hits, updates, removes and
/// victim requests against a fresh instance, checking every answer.
pub(crate) fn eviction_conformance(
    v: &PolicyVersion,
    compare_lru: bool,
    seed: u64,
    ops: u32,
) -> ConformanceReport {
    let mut rep = ConformanceReport {
        passed: false,
        ops: 0,
        victim_requests: 0,
        compared_with_lru: compare_lru,
        first_divergence: None,
        live_entries: 0,
        deadline_us: v.deadline.as_micros() as u64,
        p50_us: 0.0,
        p99_us: 0.0,
    };
    let mut times: Vec<Duration> = Vec::new();
    let fail = |mut rep: ConformanceReport, times: &mut Vec<Duration>, msg: String| {
        percentiles(&mut rep, times);
        rep.first_divergence = Some(msg);
        rep
    };
    let mut inst = match v.new_eviction() {
        Ok(i) => i,
        Err(f) => return fail(rep, &mut times, format!("instantiation failed: {f}")),
    };
    if let Err(f) = v.configure(&mut inst, 64 << 20, CONFORMANCE_LIVE) {
        return fail(rep, &mut times, format!("configure failed: {f}"));
    }
    let mut native = NativeLru::new();
    let runs = v.has_runs();
    let mut rng = seed;
    let mut sizes: Vec<Option<u64>> = Vec::new(); // by id; None = free
    let mut free: BTreeSet<u64> = BTreeSet::new();
    let mut batch = Vec::new();
    let ev = |batch: &mut Vec<u64>, kind, id, size, at_ms| {
        encode_event(
            batch,
            &PackedEvent {
                id,
                size,
                at_ms,
                kind,
                priority: 0,
                fingerprint: id,
            },
        );
    };
    // Warm-up: the live entries, delivered in batches of 64 with no victims asked.
    for id in 0..u64::from(CONFORMANCE_LIVE) {
        let size = 1 + next(&mut rng) % 4096;
        sizes.push(Some(size));
        ev(&mut batch, EventKind::Insert, id, size, 0);
        if (id + 1) % 64 == 0 || id + 1 == u64::from(CONFORMANCE_LIVE) {
            let t = Instant::now();
            let got = v.observe(&mut inst, &batch, 0, 0);
            times.push(t.elapsed());
            if let Err(f) = got {
                return fail(rep, &mut times, format!("warm-up insert of {id}: {f}"));
            }
            let _ = native.observe(&batch, 0, 0);
            batch.clear();
        }
    }
    rep.live_entries = CONFORMANCE_LIVE;
    for op in 0..ops {
        rep.ops = op + 1;
        let live: Vec<u64> = (0..sizes.len() as u64)
            .filter(|i| sizes[*i as usize].is_some())
            .collect();
        let r = next(&mut rng) % 100;
        let at = u64::from(op);
        if r < 40 || live.is_empty() {
            let id = free.pop_first().unwrap_or(sizes.len() as u64);
            if id as usize == sizes.len() {
                sizes.push(None);
            }
            let size = 1 + next(&mut rng) % 4096;
            sizes[id as usize] = Some(size);
            ev(&mut batch, EventKind::Insert, id, size, at);
        } else if r < 70 {
            let id = live[(next(&mut rng) % live.len() as u64) as usize];
            ev(
                &mut batch,
                EventKind::Hit,
                id,
                sizes[id as usize].unwrap_or(0),
                at,
            );
        } else if r < 80 {
            let id = live[(next(&mut rng) % live.len() as u64) as usize];
            let size = 1 + next(&mut rng) % 4096;
            sizes[id as usize] = Some(size);
            ev(&mut batch, EventKind::Update, id, size, at);
        } else if r < 88 {
            let id = live[(next(&mut rng) % live.len() as u64) as usize];
            sizes[id as usize] = None;
            free.insert(id);
            ev(&mut batch, EventKind::Remove, id, 0, at);
        } else {
            rep.victim_requests += 1;
            let total: u64 = live.iter().filter_map(|i| sizes[*i as usize]).sum();
            // A small share of the live bytes, so thousands of entries stay live.
            let bytes = 1 + next(&mut rng) % (total / 256 + 1);
            // Mostly room for every live id (then freeing `bytes` is possible), sometimes a
            // tight count to check the bound.
            let max = if next(&mut rng).is_multiple_of(4) {
                1 + (next(&mut rng) % 3) as u32
            } else {
                live.len() as u32
            };
            // A policy with victim runs gets every other request as a run, consumed as the
            // host does (from the front until `bytes` are freed), so both paths are checked.
            let as_run = runs && rep.victim_requests.is_multiple_of(2);
            let t = Instant::now();
            let got = if as_run {
                v.next_victims(&mut inst, &batch, max)
            } else {
                v.observe(&mut inst, &batch, bytes, max)
            };
            times.push(t.elapsed());
            let mut got = match got {
                Ok(g) => g,
                Err(f) => return fail(rep, &mut times, format!("op {op}: {f}")),
            };
            let want = if as_run {
                let want_run = native.next_victims(&batch, max).unwrap_or_default();
                if got.len() != (max as usize).min(live.len()) {
                    return fail(
                        rep,
                        &mut times,
                        format!(
                            "op {op}: next-victims answered {} ids for at most {max} with {} live",
                            got.len(),
                            live.len()
                        ),
                    );
                }
                if compare_lru && got != want_run {
                    return fail(
                        rep,
                        &mut times,
                        format!(
                            "op {op}: victim run {got:?} differs from the native LRU's {want_run:?}"
                        ),
                    );
                }
                let mut freed = 0u64;
                let take = got
                    .iter()
                    .take_while(|id| {
                        let before = freed;
                        freed += sizes.get(**id as usize).copied().flatten().unwrap_or(0);
                        before < bytes
                    })
                    .count();
                got.truncate(take);
                want_run.into_iter().take(take).collect()
            } else {
                native.observe(&batch, bytes, max)
            };
            batch.clear();
            if let Some(bad) = got
                .iter()
                .find(|id| sizes.get(**id as usize).copied().flatten().is_none())
            {
                return fail(
                    rep,
                    &mut times,
                    format!("op {op}: victim {bad} is not a live id"),
                );
            }
            let mut seen = BTreeSet::new();
            if let Some(dup) = got.iter().find(|id| !seen.insert(**id)) {
                return fail(
                    rep,
                    &mut times,
                    format!("op {op}: victim {dup} named twice"),
                );
            }
            let freed: u64 = got.iter().filter_map(|i| sizes[*i as usize]).sum();
            if max as usize >= live.len() && total >= bytes && freed < bytes {
                return fail(
                    rep,
                    &mut times,
                    format!(
                        "op {op}: asked to free {bytes} bytes (of {total} live) with room for every \
                     entry, but the victims free only {freed}"
                    ),
                );
            }
            if compare_lru && got != want {
                return fail(
                    rep,
                    &mut times,
                    format!(
                        "op {op}: victims {got:?} differ from the native LRU's {want:?} \
                     (free {bytes} bytes, at most {max})"
                    ),
                );
            }
            for id in got {
                sizes[id as usize] = None;
                free.insert(id);
                ev(&mut batch, EventKind::Remove, id, 0, at);
            }
        }
    }
    percentiles(&mut rep, &mut times);
    if rep.p99_us > rep.deadline_us as f64 {
        let msg = format!(
            "p99 of observe is {:.0} µs with {} live entries, over the {} µs deadline",
            rep.p99_us, rep.live_entries, rep.deadline_us
        );
        return fail(rep, &mut times, msg);
    }
    rep.passed = true;
    rep
}

fn percentiles(rep: &mut ConformanceReport, times: &mut [Duration]) {
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    rep.p50_us = at(0.50);
    rep.p99_us = at(0.99);
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
