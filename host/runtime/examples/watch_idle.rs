//! Idle cost of the policy watcher: loads every `*.wasm` in a directory (default
//! `policies/`), watches it, and reports the process CPU time and the policy events of a
//! quiet interval (default 10 s). Nothing touches the directory meanwhile, so any CPU or
//! event is the watcher reacting to itself.
//!
//! `cargo run -p rmhost-runtime --example watch_idle -- [DIR] [SECONDS]`

use std::time::Duration;

use rmhost_core::events::{Event, EventBus};
use rmhost_runtime::{PolicyRuntime, RuntimeOptions};

/// utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    n(11) + n(12)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "policies".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let bus = EventBus::new();
    let opts = RuntimeOptions {
        // A private artifact cache, so the second run does not recompile.
        cache_dir: Some(std::env::temp_dir().join("rmhost-watch-idle-cwasm")),
        ..RuntimeOptions::default()
    };
    let rt = match PolicyRuntime::new(opts, bus.clone()) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watch_idle: {e}");
            std::process::exit(1);
        }
    };
    let handle = match rt.watch_dir(std::path::Path::new(&dir)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("watch_idle: {e}");
            std::process::exit(1);
        }
    };
    println!("loaded {} policies from {dir}", rt.list().len());
    // Let the initial load's own notifications drain before the quiet interval starts.
    std::thread::sleep(Duration::from_secs(1));
    let seq = bus.recent(0).last().map_or(0, |e| e.seq);
    let t0 = cpu_ticks();
    std::thread::sleep(Duration::from_secs(secs));
    let ticks = cpu_ticks() - t0;
    let events = bus.recent(seq);
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(&e.event)).count();
    // /proc reports clock ticks of USER_HZ, which is 100 on every Linux ABI.
    let hz = 100.0;
    let cpu_s = ticks as f64 / hz;
    println!(
        "idle {secs} s: cpu {cpu_s:.2} s ({:.1}% of a core), PolicyLoaded {}, PolicyReloadFailed {}",
        100.0 * cpu_s / secs as f64,
        count(|e| matches!(e, Event::PolicyLoaded { .. })),
        count(|e| matches!(e, Event::PolicyReloadFailed { .. })),
    );
    drop(handle);
}
