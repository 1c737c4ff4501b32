//! The watcher never reacts to reads, retries a broken file only when it changes, follows
//! a Kubernetes ConfigMap swap; policy files over the size limit are refused unread.

use std::path::Path;

use super::*;

/// Writes `name` into `dir` and waits until the watcher loaded it: every change queued
/// before the write has been handled by then (a later path is due later).
fn sentinel(bus: &EventBus, dir: &Path, name: &str) {
    let seq = bus.recent(0).last().map_or(0, |e| e.seq);
    std::fs::write(dir.join(format!("{name}.wasm")), wat::quota_grant_all()).unwrap();
    wait_for(
        bus,
        seq,
        |e| matches!(e, Event::PolicyLoaded { name: n, .. } if n == name),
    );
}

/// Load attempts (`PolicyLoaded` or `PolicyReloadFailed`) of `name` after `seq`.
fn attempts(bus: &EventBus, seq: u64, name: &str) -> usize {
    bus.recent(seq)
        .iter()
        .filter(|e| match &e.event {
            Event::PolicyLoaded { name: n, .. } | Event::PolicyReloadFailed { name: n, .. } => {
                n == name
            }
            _ => false,
        })
        .count()
}

/// Settles the watcher: two sentinels in a row, the second written after the first was
/// handled, so everything queued before either has been handled too.
fn settle(bus: &EventBus, dir: &Path, round: u32) {
    sentinel(bus, dir, &format!("s{round}a"));
    sentinel(bus, dir, &format!("s{round}b"));
}

#[test]
fn reads_and_touches_trigger_no_reload_and_a_broken_file_is_tried_once_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wasm");
    let good = dir.path().join("good.wasm");
    std::fs::write(&bad, b"garbage").unwrap();
    std::fs::write(&good, wat::quota_deny_all()).unwrap();
    let (rt, bus) = runtime();
    let _h = rt.watch_dir(dir.path()).unwrap();
    assert_eq!(
        attempts(&bus, 0, "bad"),
        1,
        "the initial load tries it once"
    );
    assert_eq!(attempts(&bus, 0, "good"), 1);
    settle(&bus, dir.path(), 0);
    let seq = bus.recent(0).last().unwrap().seq;

    // Reads (the host's own, or anyone's) and a touch change nothing.
    for _ in 0..20 {
        assert_eq!(std::fs::read(&bad).unwrap(), b"garbage");
        std::fs::read(&good).unwrap();
    }
    let f = std::fs::File::options().write(true).open(&bad).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    settle(&bus, dir.path(), 1);
    assert_eq!(attempts(&bus, seq, "bad"), 0, "{:?}", names(&bus));
    assert_eq!(attempts(&bus, seq, "good"), 0, "{:?}", names(&bus));

    // New content is tried, once.
    std::fs::write(&bad, b"other garbage").unwrap();
    settle(&bus, dir.path(), 2);
    assert_eq!(attempts(&bus, seq, "bad"), 1, "{:?}", names(&bus));
    settle(&bus, dir.path(), 3);
    assert_eq!(attempts(&bus, seq, "bad"), 1, "{:?}", names(&bus));
}

/// A ConfigMap volume: `q.wasm -> ..data/q.wasm`, `..data -> ..v1`; kubelet publishes v2
/// by renaming a `..data_tmp -> ..v2` symlink over `..data`.
#[cfg(unix)]
#[test]
fn a_configmap_swap_loads_the_new_content() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/q.wasm"), wat::quota_deny_all()).unwrap();
    symlink("..v1", d.join("..data")).unwrap();
    symlink("..data/q.wasm", d.join("q.wasm")).unwrap();
    let (rt, bus) = runtime();
    let _h = rt.watch_dir(d).unwrap();
    rt.bind(None, PolicyKind::Quota, Some("q")).unwrap();
    let q = rt.quota_policy();
    let s = SystemUsage::default();
    let within = TenantState { used: 0, ..TS };
    assert_eq!(
        q.decide(&req("t", 1), &within, &s, &[]),
        QuotaDecision::Deny("no".into())
    );
    let seq = bus.recent(0).last().unwrap().seq;
    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(d.join("..v2/q.wasm"), wat::quota_grant_all()).unwrap();
    symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..v1")).unwrap();
    wait_for(
        &bus,
        seq,
        |e| matches!(e, Event::PolicyLoaded { name, .. } if name == "q"),
    );
    assert_eq!(
        q.decide(&req("t", 1), &within, &s, &[]),
        QuotaDecision::Grant
    );
    assert_eq!(rt.list().len(), 1);
}

#[test]
fn a_policy_file_over_the_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    // Sparse: 1 GiB long, no block written. Reading it whole would take a second of CPU
    // and 1 GiB of memory; the refusal comes from its metadata.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (rt, bus) = runtime();
    let err = rt.load_file(&big).unwrap_err();
    let RuntimeError::TooLarge { path, size, limit } = &err else {
        panic!("expected TooLarge, got {err}")
    };
    assert_eq!(
        (path, *size, *limit),
        (&big, 1 << 30, DEFAULT_MAX_FILE_BYTES)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("big.wasm") && msg.contains("1073741824") && msg.contains("67108864"),
        "{msg}"
    );
    let Event::PolicyReloadFailed { name, reason } = &bus.recent(0)[0].event else {
        panic!("expected PolicyReloadFailed, saw {:?}", names(&bus))
    };
    assert_eq!((name.as_str(), reason.as_str()), ("big", msg.as_str()));
    // Through a directory load too: reported, skipped, the rest loads.
    std::fs::write(dir.path().join("ok.wasm"), wat::quota_grant_all()).unwrap();
    let out = rt.load_dir(dir.path()).unwrap();
    let actions: Vec<_> = out
        .iter()
        .map(|o| (o.name.as_str(), o.action.as_str()))
        .collect();
    assert_eq!(actions, [("big", "failed"), ("ok", "loaded")]);
}

#[test]
fn the_size_limit_is_inclusive_and_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.wasm");
    let text = wat::quota_grant_all();
    std::fs::write(&path, &text).unwrap();
    let len = text.len() as u64;
    let (rt, _) = runtime_with(RuntimeOptions {
        max_file_bytes: len - 1,
        ..opts()
    });
    let err = rt.load_file(&path).unwrap_err();
    assert!(
        matches!(err, RuntimeError::TooLarge { size, limit, .. } if size == len && limit == len - 1),
        "{err}"
    );
    let (rt, _) = runtime_with(RuntimeOptions {
        max_file_bytes: len,
        ..opts()
    });
    assert_eq!(rt.load_file(&path).unwrap().kinds, [PolicyKind::Quota]);
}
