use super::*;
use crate::clock::ManualClock;
use std::path::Path;

const PSI_FULL: &str = "some avg10=24.53 avg60=38.47 avg300=20.49 total=91556501\n\
                        full avg10=1.50 avg60=0.00 avg300=0.00 total=42\n";

#[test]
fn psi_with_and_without_full() {
    let psi = parse_psi(PSI_FULL).unwrap();
    assert_eq!(
        psi.some,
        PsiLine {
            avg10: 24.53,
            avg60: 38.47,
            avg300: 20.49,
            total: 91_556_501
        }
    );
    assert_eq!(psi.full.unwrap().avg10, 1.5);
    assert_eq!(psi.full.unwrap().total, 42);

    let some_only = parse_psi("some avg10=0.00 avg60=0.10 avg300=0.20 total=7\n").unwrap();
    assert_eq!(some_only.full, None);
    assert_eq!(some_only.some.avg300, 0.2);
}

#[test]
fn malformed_psi_is_none() {
    for bad in [
        "",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", // no `some`
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
        "some garbage\n",
        "other avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull nonsense\n",
    ] {
        assert_eq!(parse_psi(bad), None, "{bad:?}");
    }
}

#[test]
fn read_pressure_of_a_missing_root_is_all_none() {
    let p = read_pressure(Path::new("/nonexistent/pressure"));
    assert_eq!(p, Pressure::default());
}

#[test]
fn cgroup_limits() {
    assert_eq!(parse_cgroup_limit("max\n"), None);
    assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
    assert_eq!(
        parse_cgroup_limit("9223372036854771712\n"),
        None,
        "v1 unlimited"
    );
    assert_eq!(parse_cgroup_limit("lots"), None);
    assert_eq!(parse_cgroup_limit(""), None);
    assert_eq!(
        parse_inactive_file("anon 5\ninactive_file 100\nactive_file 3\n"),
        Some(100)
    );
    assert_eq!(
        parse_inactive_file("inactive_file 100\ntotal_inactive_file 200\n"),
        Some(200),
        "v1 hierarchical total wins"
    );
    assert_eq!(parse_inactive_file("anon 5\n"), None);
}

#[test]
fn cgroup_discovery_walks_to_the_root() {
    let root = tempfile::tempdir().unwrap();
    // v2: limit at the parent, none at the leaf.
    let leaf = root.path().join("a/b");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::write(root.path().join("a/memory.max"), "1000\n").unwrap();
    std::fs::write(leaf.join("memory.max"), "max\n").unwrap();
    std::fs::write(leaf.join("memory.current"), "800\n").unwrap();
    std::fs::write(leaf.join("memory.stat"), "inactive_file 300\n").unwrap();
    let cg = CgroupMemory::discover("0::/a/b\n", root.path());
    assert_eq!(cg.limit(), Some(1000));
    assert_eq!(cg.working_set(), Some(500));

    // v1 in a namespace: the process sees `/`.
    let v1 = root.path().join("memory");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(v1.join("memory.limit_in_bytes"), "2048\n").unwrap();
    std::fs::write(v1.join("memory.usage_in_bytes"), "1024\n").unwrap();
    let cg = CgroupMemory::discover("4:memory:/\n0::/\n", root.path());
    assert_eq!(cg.limit(), Some(2048));
    assert_eq!(cg.working_set(), Some(1024));

    let none = CgroupMemory::discover("", Path::new("/nonexistent"));
    assert_eq!((none.limit(), none.working_set()), (None, None));
}

#[test]
fn sliding_minute_with_a_manual_clock() {
    let w = RequestWindow::new();
    w.record_at(0, 5);
    w.record_at(0, 1);
    w.record_at(30, 10);
    assert_eq!(w.per_minute_at(30), 16);
    assert_eq!(w.per_minute_at(59), 16);
    assert_eq!(w.per_minute_at(60), 10, "second 0 left the window");
    w.record_at(60, 2); // reuses second 0's bucket
    assert_eq!(w.per_minute_at(60), 12);
    assert_eq!(w.per_minute_at(89), 12);
    assert_eq!(w.per_minute_at(90), 2);
    assert_eq!(w.per_minute_at(500), 0);
    w.record_at(500, u64::MAX);
    w.record_at(500, 1);
    assert_eq!(
        w.per_minute_at(500),
        u64::from(u32::MAX),
        "saturates per second"
    );
}

#[test]
fn sliding_minute_is_exact_under_concurrency() {
    let w = Arc::new(RequestWindow::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    w.record_at(100 + i % 3, 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(w.per_minute_at(102), 40_000);
}

#[test]
fn telemetry_counters_follow_the_clock() {
    let clock = ManualClock::new();
    let t = Telemetry::with_clock(Box::new(FakeSource::new()), clock.clock());
    t.record_request();
    t.record_requests(9);
    clock.advance(45_000);
    t.record_requests(5);
    assert_eq!(t.requests_per_minute(), 15);
    clock.advance(15_000);
    assert_eq!(t.requests_per_minute(), 5);
    let u = t.usage();
    assert_eq!(
        u.requests,
        RequestUsage {
            per_minute: 5,
            total: 15
        }
    );

    {
        let _a = t.connection();
        let _b = t.connection();
        assert_eq!(t.active_connections(), 2);
    }
    t.connection_opened();
    t.connection_closed();
    t.connection_closed(); // unmatched: stays at 0
    t.connection_refused();
    t.grpc_connection_refused();
    t.grpc_connection_refused();
    assert_eq!(
        t.usage().connections,
        ConnectionUsage {
            active: 0,
            total: 3,
            refused: 1,
            grpc_refused: 2,
        }
    );
}

#[test]
fn fake_source_drives_usage() {
    let fake = FakeSource::new().with_memory(700, 1000).with_rss(123);
    let t = Telemetry::new(Box::new(fake.clone()));
    assert_eq!(fake.samples_taken(), 1, "new() samples once");
    let u = t.usage();
    assert_eq!(
        (u.memory.used, u.memory.total, u.memory.available),
        (700, 1000, 300)
    );
    assert_eq!(u.memory.percentage, 70.0);
    assert_eq!(u.memory.process_rss, 123);

    fake.update(|s| {
        s.memory_used = 900;
        s.cpu_percent = 55.5;
        s.load_average = [1.5, 1.0, 0.5];
    });
    let _conn = t.connection();
    let psi = parse_psi(PSI_FULL).unwrap();
    fake.set_pressure(None, Some(psi), None);
    assert_eq!(t.usage().memory.used, 700, "usage() does not sample");
    let u = t.sample_now();
    assert_eq!(u.memory.percentage, 90.0);
    assert_eq!(u.pressure.memory, Some(psi));
    assert_eq!(u.pressure.cpu, None);

    let s = t.system_usage(PressureLevel::Warning);
    assert_eq!(s.cpu_percent, 55.5);
    assert_eq!((s.memory_used_bytes, s.memory_total_bytes), (900, 1000));
    assert_eq!(s.process_rss_bytes, 123);
    assert_eq!(s.connections_active, 1);
    assert_eq!(s.load_average_1m, 1.5);
    assert_eq!(s.pressure, PressureLevel::Warning);

    // Queued samples come first, once each.
    fake.push(RawSample {
        memory_used: 1,
        memory_total: 4,
        ..RawSample::default()
    });
    assert_eq!(t.sample_now().memory.percentage, 25.0);
    assert_eq!(t.sample_now().memory.used, 900);
}

#[test]
fn cgroup_limit_binds_when_lower() {
    let fake = FakeSource::new().with_memory(8_000, 16_000);
    fake.update(|s| {
        s.cgroup_limit = Some(4_000);
        s.cgroup_usage = Some(3_000);
    });
    let t = Telemetry::new(Box::new(fake.clone()));
    let u = t.usage();
    assert_eq!(u.memory.effective(), (3_000, 4_000));
    assert_eq!(u.memory.percentage, 75.0);
    let s = t.system_usage(PressureLevel::Normal);
    assert_eq!((s.memory_used_bytes, s.memory_total_bytes), (3_000, 4_000));

    // A cgroup limit above system memory does not bind.
    fake.update(|s| s.cgroup_limit = Some(32_000));
    assert_eq!(t.sample_now().memory.effective(), (8_000, 16_000));
}

#[test]
fn percentage_math() {
    assert_eq!(percentage(0, 0), 0.0);
    assert_eq!(percentage(1, 4), 25.0);
    assert_eq!(percentage(3, 3), 100.0);
    assert_eq!(percentage(u64::MAX, u64::MAX), 100.0);
}

#[test]
fn usage_json_has_the_original_systems_shape() {
    let fake = FakeSource::new().with_memory(1, 2).with_memory_psi(3.5);
    let t = Telemetry::new(Box::new(fake));
    let v = serde_json::to_value(t.usage()).unwrap();
    for key in [
        "/timestamp_ms",
        "/cpu/percentage",
        "/cpu/cores",
        "/cpu/load_average/2",
        "/cpu/process_percentage",
        "/memory/used",
        "/memory/total",
        "/memory/available",
        "/memory/percentage",
        "/memory/process_rss",
        "/memory/cgroup_limit",
        "/connections/active",
        "/connections/total",
        "/requests/per_minute",
        "/requests/total",
        "/file_handles/open",
        "/file_handles/limit",
        "/pressure/cpu",
        "/pressure/memory/some/avg10",
        "/pressure/memory/some/avg60",
        "/pressure/memory/some/avg300",
        "/pressure/memory/some/total",
        "/pressure/memory/full",
        "/pressure/io",
    ] {
        assert!(v.pointer(key).is_some(), "{key} missing in {v}");
    }
    assert!(v["memory"]["used"].is_u64());
    assert_eq!(v["pressure"]["memory"]["some"]["avg10"], 3.5);
    let back: Usage = serde_json::from_value(v).unwrap();
    assert_eq!(back, t.usage());
}

#[test]
fn real_sysinfo_sample() {
    let mut source = SysinfoSource::new().unwrap();
    let s = source.sample();
    assert!(s.memory_total > 0);
    assert!(s.memory_used <= s.memory_total);
    assert!(s.cores > 0);
    assert!(s.process_rss > 0);
    assert!(s.timestamp_ms > 0);
    assert!(s.file_handles_open > 0, "stdin/stdout/stderr at least");
    if let Some(limit) = fd_limit() {
        assert!(limit > 0);
    }
}

#[tokio::test]
async fn spawn_samples_on_the_interval_and_stops_when_dropped() {
    let fake = FakeSource::new();
    let t = Telemetry::new(Box::new(fake.clone()));
    let handle = t.spawn(Duration::from_millis(5));
    // Waits for progress, not for a time: the bound only stops a hung test.
    tokio::time::timeout(Duration::from_secs(30), async {
        while fake.samples_taken() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the sampler never ran");
    drop(t);
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("the sampler did not stop after the last Telemetry was dropped")
        .unwrap();
}

#[test]
fn process_stat_parses_a_command_with_spaces_and_parens() {
    // Fields 14/15 (utime, stime) = 250/150 ticks, 22 (starttime) = 1000 ticks,
    // 23 (vsize) = 4096000 bytes, 24 (rss) = 100 pages.
    let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194304 10 0 0 0 250 150 0 0 20 0 4 0 1000 4096000 100 18446744073709551615";
    let p = parse_process_stat(stat, "cpu 1 2 3\nbtime 1700000000\n", 100.0, 4096).unwrap();
    assert_eq!(p.cpu_seconds, 4.0);
    assert_eq!(p.virtual_bytes, 4_096_000);
    assert_eq!(p.resident_bytes, 409_600);
    assert_eq!(p.start_time_seconds, 1_700_000_010.0);
    assert_eq!(parse_process_stat(stat, "no boot time", 100.0, 4096), None);
    assert_eq!(
        parse_process_stat("42 (x) S 1", "btime 1", 100.0, 4096),
        None
    );
    let live = process_stat().expect("/proc/self/stat on Linux");
    assert!(
        live.resident_bytes > 0 && live.start_time_seconds > 1e9,
        "{live:?}"
    );
}
