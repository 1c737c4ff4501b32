//! The monitor without a terminal or a daemon: the SSE parser, state updates from sample
//! answers, keys, and the rendering of a fixed state against a golden screen.

use super::app::{PollError, Snapshot, apply_snapshot, handle_key};
use super::draw::draw;
use super::sse::{SseMessage, SseParser};
use super::state::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use rmhost_core::memory::CacheStats;
use rmhost_core::memory::pressure::MemoryDetails;
use rmhost_core::policy::{PolicyKind, PressureLevel, ResourceKind};
use rmhost_core::resources::{KindUsage, LedgerUsage, TenantUsage};
use rmhost_server::wire::{
    BindingInfo, CacheInfo, MemoryStatus, PolicyInfo, PolicyList, PoolList, PoolMetrics,
    UsageReport,
};

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

/// The screen as text, one line per row, trailing spaces trimmed (so the golden survives
/// editors that strip them).
fn render(s: &DashboardState, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, s)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn sse_parser_handles_split_chunks_crlf_comments_and_multiline_data() {
    let stream = "event: ResourceAllocated\r\nid: 7\r\ndata: {\"tenant\":\"acme\",\"note\":\"caf\u{e9}\"}\r\n\r\n\
                  : keep-alive\n\n\
                  event: Alert\nid: 8\ndata: line one\ndata:line two\n\n\
                  data: no-type\n\n";
    let bytes = stream.as_bytes();
    // Feed it one byte at a time: every split point (inside `é` too) must work.
    let mut p = SseParser::new();
    let mut got = Vec::new();
    for b in bytes {
        got.extend(p.feed(std::slice::from_ref(b)));
    }
    assert_eq!(
        got,
        vec![
            SseMessage {
                event: Some("ResourceAllocated".into()),
                id: Some("7".into()),
                data: "{\"tenant\":\"acme\",\"note\":\"caf\u{e9}\"}".into(),
            },
            SseMessage {
                event: Some("Alert".into()),
                id: Some("8".into()),
                data: "line one\nline two".into(),
            },
            SseMessage {
                event: None,
                id: None,
                data: "no-type".into(),
            },
        ]
    );
    // The same in one chunk, and an unfinished message stays pending.
    let mut p = SseParser::new();
    assert_eq!(p.feed(bytes), got);
    assert!(p.feed(b"event: X\ndata: {}").is_empty());
    assert_eq!(p.feed(b"\n\n").len(), 1);
}

fn kind_usage(kind: ResourceKind, used: u64, allocations: u32) -> KindUsage {
    KindUsage {
        kind,
        used,
        limit: None,
        percentage: None,
        allocations,
    }
}

fn usage(cpu: f64, total: u64) -> UsageReport {
    let mut u = rmhost_core::telemetry::Usage::default();
    u.cpu.percentage = cpu;
    u.cpu.process_percentage = 3.5;
    u.cpu.load_average = [1.25, 1.0, 0.5];
    u.memory.used = 4 << 30;
    u.memory.total = 8 << 30;
    u.memory.process_rss = 50 << 20;
    u.memory.percentage = 50.0;
    u.connections.active = 4;
    u.requests.per_minute = 600;
    u.requests.total = total;
    let tenants = vec![
        TenantUsage {
            tenant: "zeta".into(),
            kinds: vec![kind_usage(ResourceKind::Memory, 0, 0)],
            requests_per_minute_limit: 600,
        },
        TenantUsage {
            tenant: "acme".into(),
            kinds: vec![
                kind_usage(ResourceKind::Memory, 1048576, 2),
                kind_usage(ResourceKind::Cpu, 250, 1),
                kind_usage(ResourceKind::Connections, 3, 1),
            ],
            requests_per_minute_limit: 600,
        },
    ];
    UsageReport {
        usage: u,
        allocations: LedgerUsage {
            global: vec![],
            tenants,
            allocations: 4,
        },
        host_id: "test".into(),
    }
}

#[test]
fn state_follows_the_json_of_every_route() {
    let mut s = DashboardState::new("127.0.0.1:7070");
    s.apply_usage(&usage(12.4, 1000), 10_000);
    assert!(s.rate_history.is_empty(), "no rate from a single sample");
    s.apply_usage(&usage(40.6, 1500), 12_000);
    assert_eq!(s.rate_history.back(), Some(&250));
    assert_eq!(s.cpu_history.iter().copied().collect::<Vec<_>>(), [12, 41]);
    assert_eq!(s.cpu.load1, 1.25);
    assert_eq!(s.requests_total, 1500);
    // Tenants holding nothing are left out.
    assert_eq!(
        s.tenants,
        vec![TenantRow {
            tenant: "acme".into(),
            memory: 1048576,
            cpu: 250,
            connections: 3,
            allocations: 4
        }]
    );
    // A restarted daemon (total back to 0) gives a zero rate, not a huge one.
    s.apply_usage(&usage(1.0, 10), 13_000);
    assert_eq!(s.rate_history.back(), Some(&0));

    s.apply_memory(&MemoryStatus {
        status: PressureLevel::Warning,
        details: MemoryDetails {
            budget_bytes: 2 << 30,
            budget_source: "max_memory_mb".into(),
            rss_bytes: 60 << 20,
            rss_percent: 2.9,
            cache_bytes: 4096,
            allocation_bytes: 1048576,
            accounted_percent: 0.1,
            psi_some_avg10: Some(0.5),
            psi_full_avg10: None,
            raw_level: PressureLevel::Warning,
            reasons: vec![],
        },
    });
    assert_eq!(s.memory.pressure, "warning");
    assert_eq!(s.memory.rss, 60 << 20);
    assert_eq!(s.memory.psi_some, Some(0.5));

    s.apply_pools(&PoolList {
        pools: vec![PoolMetrics {
            pool: "postgres/main".into(),
            kind: "postgres".into(),
            size: 3,
            idle: 1,
            in_use: 2,
            waiting: 0,
            max: 10,
            timeouts: 1,
            ..Default::default()
        }],
    });
    assert_eq!(s.pools[0].pool, "postgres/main");
    assert_eq!((s.pools[0].in_use, s.pools[0].max), (2, 10));

    let binding = |tenant: Option<&str>, kind| BindingInfo {
        tenant: tenant.map(str::to_string),
        kind,
        policy: "fair-quota".into(),
    };
    s.apply_policies(&PolicyList {
        policies: vec![PolicyInfo {
            name: "fair-quota".into(),
            kinds: vec![PolicyKind::Quota, PolicyKind::Eviction],
            calls: 42,
            faults: 1,
            p99_ns: 15300,
            quarantined: false,
            bindings: vec![
                binding(None, PolicyKind::Quota),
                binding(Some("acme"), PolicyKind::Eviction),
            ],
            ..Default::default()
        }],
        bindings: vec![],
        pooling_allocator: true,
    });
    assert_eq!(s.policies[0].kinds, "quota,eviction");
    assert_eq!(s.policies[0].bindings, ["default:quota", "acme:eviction"]);

    s.apply_caches(&[CacheInfo {
        name: "demo".into(),
        tenant: "acme".into(),
        mode: "accounting".into(),
        stats: CacheStats {
            policy: "lru".into(),
            capacity_bytes: 1024,
            entries: 3,
            bytes: 512,
            hits: 3,
            misses: 1,
            hit_ratio: 0.75,
            evictions: 2,
            ..Default::default()
        },
    }]);
    assert_eq!(s.caches[0].hit_ratio, 0.75);

    // Events: the summary puts the telling fields first, drops the envelope.
    s.push_event(&SseMessage {
        event: Some("AllocationDenied".into()),
        id: Some("9".into()),
        data: r#"{"seq":9,"at_ms":3723000,"type":"AllocationDenied","amount":5,"code":"quota_exceeded","kind":"cpu","reason":"full","tenant":"acme"}"#.into(),
    });
    let e = s.events.back().unwrap();
    assert_eq!((e.seq, e.time.as_str()), (9, "01:02:03"));
    assert_eq!(
        e.summary,
        "tenant=acme kind=cpu amount=5 code=quota_exceeded reason=full"
    );
    // A pressure event updates the level at once.
    s.push_event(&SseMessage {
        event: Some("MemoryPressure".into()),
        id: Some("10".into()),
        data: r#"{"seq":10,"at_ms":0,"type":"MemoryPressure","level":"critical"}"#.into(),
    });
    assert_eq!(s.memory.pressure, "critical");
    assert_eq!(s.last_seq, 10);
    // Numbers starting again mean the daemon restarted: noted in the log.
    s.push_event(&SseMessage {
        event: Some("Alert".into()),
        id: Some("1".into()),
        data: r#"{"seq":1,"at_ms":0,"type":"Alert","message":"hi"}"#.into(),
    });
    let kinds: Vec<&str> = s.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["AllocationDenied", "MemoryPressure", "Restarted", "Alert"]
    );
    assert_eq!(s.last_seq, 1);
}

#[test]
fn the_event_log_and_histories_are_bounded() {
    let mut s = DashboardState::new("x");
    for i in 0..(EVENT_LOG as u64 + 20) {
        s.push_event(&SseMessage {
            event: Some("Alert".into()),
            id: Some((i + 1).to_string()),
            data: "{}".into(),
        });
    }
    assert_eq!(s.events.len(), EVENT_LOG);
    assert_eq!(s.events.front().unwrap().seq, 21);
    for i in 0..(HISTORY as u64 + 5) {
        s.apply_usage(&usage(5.0, i * 10), i * 1000);
    }
    assert_eq!(s.cpu_history.len(), HISTORY);
    assert_eq!(s.rate_history.len(), HISTORY);
}

#[test]
fn keys_quit_pause_focus_and_scroll() {
    let mut s = DashboardState::new("x");
    assert!(!handle_key(&mut s, key(KeyCode::Char('p'))));
    assert!(s.paused);
    handle_key(&mut s, key(KeyCode::Char('p')));
    assert!(!s.paused);
    assert_eq!(s.focus, Pane::Events);
    handle_key(&mut s, key(KeyCode::Up));
    assert_eq!(s.scroll_of(Pane::Events), 1, "up goes back in the log");
    handle_key(&mut s, key(KeyCode::Tab));
    assert_eq!(s.focus, Pane::Pools);
    handle_key(&mut s, key(KeyCode::Down));
    handle_key(&mut s, key(KeyCode::Down));
    handle_key(&mut s, key(KeyCode::Up));
    assert_eq!(s.scroll_of(Pane::Pools), 1);
    handle_key(&mut s, key(KeyCode::Up));
    handle_key(&mut s, key(KeyCode::Up));
    assert_eq!(s.scroll_of(Pane::Pools), 0, "never below the first row");
    for _ in 0..4 {
        handle_key(&mut s, key(KeyCode::Tab));
    }
    assert_eq!(s.focus, Pane::Events, "tab wraps");
    assert!(handle_key(&mut s, key(KeyCode::Char('q'))));
    assert!(handle_key(
        &mut s,
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
    ));
}

/// The fixed state of the golden screen, built by hand.
fn fixed_state() -> DashboardState {
    let mut s = DashboardState::new("127.0.0.1:7070");
    s.link = Link::Connected;
    s.stream_open = true;
    s.cpu = Cpu {
        percent: 37.5,
        process_percent: 4.2,
        load1: 1.2,
    };
    s.cpu_history = (0..60).map(|i| (i * 7 % 100) as u64).collect();
    s.memory = Memory {
        used: 3 << 30,
        total: 8 << 30,
        rss: 512 << 20,
        budget: 2 << 30,
        budget_source: "max_memory_mb".into(),
        rss_percent: 25.0,
        cache_bytes: 96 << 20,
        allocation_bytes: 300 << 20,
        pressure: "warning".into(),
        psi_some: Some(0.42),
    };
    s.requests_per_minute = 5400;
    s.requests_total = 123_456;
    s.connections_active = 6;
    s.rate_history = (0..60).map(|i| 60 + (i * 13 % 40) as u64).collect();
    s.pools = vec![PoolRow {
        pool: "postgres/main".into(),
        size: 4,
        idle: 1,
        in_use: 3,
        waiting: 2,
        max: 10,
        timeouts: 1,
        circuit: "closed".into(),
    }];
    s.tenants = vec![
        TenantRow {
            tenant: "load-1".into(),
            memory: 48 << 20,
            cpu: 750,
            connections: 3,
            allocations: 9,
        },
        TenantRow {
            tenant: "load-2".into(),
            memory: 12 << 20,
            cpu: 100,
            connections: 0,
            allocations: 2,
        },
    ];
    s.policies = vec![PolicyRow {
        name: "fair-quota".into(),
        kinds: "quota".into(),
        bindings: vec!["default:quota".into()],
        calls: 1234,
        faults: 2,
        p99_ns: 18_500,
        quarantined: false,
    }];
    s.caches = vec![CacheRow {
        name: "demo-load-1".into(),
        policy: "s3fifo".into(),
        bytes: 3 << 20,
        capacity: 4 << 20,
        entries: 812,
        hit_ratio: 0.873,
        evictions: 97,
    }];
    for (seq, kind, summary) in [
        (
            41,
            "ResourceAllocated",
            "tenant=load-1 kind=memory amount=1048576 id=17 owner=load priority=3",
        ),
        (
            42,
            "AllocationDenied",
            "tenant=load-2 kind=cpu amount=900 code=quota_exceeded",
        ),
        (43, "RateLimited", "tenant=load-1 retry_after_ms=250"),
        (44, "MemoryPressure", "level=warning"),
    ] {
        s.events.push_back(EventLine {
            seq,
            time: "12:00:05".into(),
            kind: kind.into(),
            summary: summary.into(),
        });
    }
    s.last_seq = 44;
    s
}

/// The golden screen (120x40, trailing spaces trimmed).
const GOLDEN: &str = r#" rmhost monitor 127.0.0.1:7070  ● connected  events: live
┌ CPU ─────────────────────────────┐┌ Memory ──────────────────────────────────────┐┌ Requests ────────────────────────┐
│█████████████ 37.5%               ││███████heap 512.0 MiB of 2.0 GiB budget       ││67/s  5400/min                    │
│load 1.20  rmhost 4.2%            ││pressure WARNING  psi 0.42%  heap 25.0%       ││total 123456  conns 6             │
│▃▅▇          ▁▃▄▆          ▁▂▄▆▇  ││caches 96.0 MiB  allocations 300.0 MiB        ││▂▆ ▂▅ ▂▅ ▂▅ ▁▅ ▁▄█▁▄▇▁▄▇ ▄▇ ▃▇ ▃▆ │
│███     ▁▂▄▆▇████      ▂▄▅▇█████  ││system 3.0 GiB of 8.0 GiB (37.5%)             ││██▇██▇██▇██▆██▆███████████████████│
│███ ▂▄▅▇█████████ ▁▃▅▆██████████▁▃││budget 2.0 GiB from max_memory_mb             ││██████████████████████████████████│
└──────────────────────────────────┘└──────────────────────────────────────────────┘└──────────────────────────────────┘
┌ Connection pools ────────────────────────────────────────┐┌ Allocations by tenant ───────────────────────────────────┐
│POOL                SIZE   IDLE USED WAIT TMOUTS CIRCUIT  ││TENANT                     MEMORY     CPU     CONN  ALLOCS│
│postgres/main       4/10   1    3    2    1      closed   ││load-1                     48.0 MiB   750m    3     9     │
│                                                          ││load-2                     12.0 MiB   100m    0     2     │
│                                                          ││                                                          │
│                                                          ││                                                          │
└──────────────────────────────────────────────────────────┘└──────────────────────────────────────────────────────────┘
┌ Policies ────────────────────────────────────────────────┐┌ Caches ──────────────────────────────────────────────────┐
│POLICY        KINDS    BINDINGS      CALLS  FAULTS P99    ││CACHE         POLICY  BYTES      FILL ITEMS  HITS   EVICT │
│fair-quota    quota    default:quota 1234   2      18.5µs ││demo-load-1   s3fifo  3.0 MiB    75%  812    87.3%  97    │
│                                                          ││                                                          │
│                                                          ││                                                          │
│                                                          ││                                                          │
└──────────────────────────────────────────────────────────┘└──────────────────────────────────────────────────────────┘
┌ ▶ Events (4 kept) ───────────────────────────────────────────────────────────────────────────────────────────────────┐
│12:00:05    #41 ResourceAllocated  tenant=load-1 kind=memory amount=1048576 id=17 owner=load priority=3               │
│12:00:05    #42 AllocationDenied   tenant=load-2 kind=cpu amount=900 code=quota_exceeded                              │
│12:00:05    #43 RateLimited        tenant=load-1 retry_after_ms=250                                                   │
│12:00:05    #44 MemoryPressure     level=warning                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
│                                                                                                                      │
└──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
 q quit  tab focus  ↑↓/PgUp/PgDn scroll  p pause
"#;

#[test]
fn a_fixed_state_draws_the_golden_screen() {
    let screen = render(&fixed_state(), 120, 40);
    for text in [
        "rmhost monitor",
        "connected",
        "37.5%",
        "WARNING",
        "heap 512.0 MiB of 2.0 GiB budget",
        "postgres/main",
        "load-1",
        "fair-quota",
        "default:quota",
        "18.5µs",
        "demo-load-1",
        "87.3%",
        "AllocationDenied",
        "\u{25b6} Events",
        "q quit",
    ] {
        assert!(screen.contains(text), "{text:?} missing from\n{screen}");
    }
    if screen != GOLDEN {
        panic!("the screen changed; if intended, paste it into GOLDEN:\n{screen}");
    }
}

#[test]
fn a_lost_daemon_shows_disconnected_and_paused_shows() {
    let mut s = fixed_state();
    let snap = Snapshot {
        at_ms: 0,
        usage: Err(PollError::Unreachable {
            reason: "Connection refused (os error 111)".into(),
        }),
        memory: None,
        pools: None,
        policies: None,
        caches: None,
    };
    apply_snapshot(&mut s, &snap);
    s.stream_open = false;
    s.paused = true;
    let screen = render(&s, 120, 40);
    let header = screen.lines().next().unwrap();
    assert!(
        header.contains("disconnected: Connection refused"),
        "{header}"
    );
    assert!(header.contains("events: down") && header.contains("PAUSED"));
    // The last figures stay on screen.
    assert!(screen.contains("postgres/main"));
    // A small terminal still draws without panicking.
    let _ = render(&s, 40, 12);
}
