//! `policy check --conformance` holds a policy to the configured deadline (its timing calls
//! under it, its conformance p99 against it), with thousands of live entries.

use super::*;

/// An eviction policy that spins ~20 M iterations per call (several ms): fine under the
/// relaxed setup deadline, too slow for a 1 ms one.
fn eviction_slow() -> String {
    wat::eviction(
        r#"
    (func (export "configure") (param i64 i32))
    (func (export "observe") (param $ev i32) (param $n i32) (param $bytes i64) (param $max i32)
      (result i32)
      (local $i i32)
      (local.set $i (i32.const 20000000))
      (loop $l
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br_if $l (local.get $i)))
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 0))
      (i32.const 16))
    "#,
    )
}

#[test]
fn conformance_runs_under_the_configured_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.wasm");
    std::fs::write(&path, eviction_slow()).unwrap();
    let (rt, _) = runtime_with(RuntimeOptions {
        deadline: Duration::from_millis(1),
        ..opts()
    });
    let r = rt.check_file(&path, true).unwrap();
    assert_eq!(r.smoke, "ok", "{r:?}");
    let c = r.conformance.clone().unwrap();
    assert!(!c.passed && !r.ok);
    assert_eq!(c.deadline_us, 1000);
    // Conformance checks answers under the relaxed deadline and reports the call times:
    // several ms against a 1 ms deadline.
    assert!(c.p99_us > c.deadline_us as f64, "{c:?}");
    // The timing calls run under the real deadline and miss it.
    let t = &r.timing[0];
    assert_eq!(t.missed, MAX_MISSED, "{t:?}");
    assert!(
        t.fault.as_deref().is_some_and(|f| f.contains("deadline")),
        "{t:?}"
    );
}

#[test]
fn conformance_holds_thousands_of_live_entries_and_reports_call_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tricky.wasm");
    std::fs::write(&path, wat::eviction_tricky()).unwrap();
    let (rt, _) = runtime();
    let c = rt.check_file(&path, true).unwrap().conformance.unwrap();
    assert_eq!(c.live_entries, check::CONFORMANCE_LIVE);
    assert!(c.live_entries >= 1000);
    assert!(c.p50_us > 0.0 && c.p99_us >= c.p50_us, "{c:?}");
    assert_eq!(c.deadline_us, 10_000);
}
