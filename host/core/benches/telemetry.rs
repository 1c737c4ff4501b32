//! What telemetry costs: CPU time per real sample (the design budget is well under 1% of a
//! core at a 1 s interval) and time per recorded request. Prints numbers, asserts nothing.
//!
//! Run: `cargo bench --bench telemetry` (needs `[[bench]] name = "telemetry"`,
//! `harness = false` in host/Cargo.toml).

use rmhost_core::telemetry::{SysinfoSource, Telemetry, TelemetrySource};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SAMPLES: u32 = 200;
const REQUESTS: u64 = 10_000_000;

/// User + system CPU time this process has used.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is valid; getrusage only writes through the pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, aligned local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let mut source = SysinfoSource::new().expect("sysinfo");
    black_box(source.sample()); // warm up: first reads allocate buffers

    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..SAMPLES {
        black_box(source.sample());
    }
    let cpu = cpu_time() - cpu0;
    let wall = wall0.elapsed();
    let per_sample = cpu / SAMPLES;
    let core_share = per_sample.as_secs_f64() * 100.0; // one sample per second
    println!(
        "telemetry sample: {:.1} µs CPU per sample = {:.4}% of a core at a 1 s interval \
         ({:.1} µs wall per sample, {SAMPLES} samples)",
        per_sample.as_secs_f64() * 1e6,
        core_share,
        (wall / SAMPLES).as_secs_f64() * 1e6,
    );

    // Recording requests: one thread, then four contending on the same buckets.
    let telemetry = Telemetry::new(Box::new(source));
    let start = Instant::now();
    for _ in 0..REQUESTS {
        telemetry.record_request();
    }
    let single = start.elapsed();
    println!(
        "record_request: {:.1} ns per op (1 thread, {REQUESTS} ops)",
        single.as_nanos() as f64 / REQUESTS as f64
    );

    let threads = 4u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let t = telemetry.clone();
            s.spawn(move || {
                for _ in 0..REQUESTS / threads {
                    t.record_request();
                }
            });
        }
    });
    let contended = start.elapsed();
    println!(
        "record_request: {:.1} ns per op ({threads} threads contending, {REQUESTS} ops in all, wall)",
        contended.as_nanos() as f64 / REQUESTS as f64
    );

    let start = Instant::now();
    for _ in 0..1000 {
        black_box(telemetry.usage());
    }
    println!(
        "usage(): {:.0} ns per call",
        start.elapsed().as_nanos() as f64 / 1000.0
    );
    black_box(telemetry.requests_per_minute());
}
