//! Rate limits shared by several daemons on one Redis (`[state] ratelimit`), and what a
//! daemon does when that Redis is gone. Needs Redis on 127.0.0.1:6379 (scripts/services
//! starts it); each test uses its own key prefix.

use crate::harness::Daemon;
use serde_json::{Value, json};

fn require_redis() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        panic!(
            "these tests need Redis on 127.0.0.1:6379: run scripts/services (or apt-get install redis-server)"
        );
    }
}

fn prefix(test: &str) -> String {
    format!("rmhost-test-{test}-{}", std::process::id())
}

fn config(url: &str, prefix: &str, failure: &str) -> String {
    format!(
        "[limits]\nmax_requests_per_minute = 60\n[state]\nratelimit = \"{url}\"\nkey_prefix = \"{prefix}\"\n\
         ratelimit_failure = \"{failure}\"\nbackend_timeout_ms = 300\n"
    )
}

async fn check(d: &Daemon, tenant: &str) -> (u16, Value) {
    let (s, v) = d
        .post("/v1/ratelimit/check", json!({"tenant": tenant}))
        .await;
    (s.as_u16(), v)
}

#[tokio::test]
async fn two_daemons_on_one_redis_enforce_one_limit() {
    require_redis();
    let p = prefix("shared");
    let a = Daemon::start(&config("redis://127.0.0.1:6379/", &p, "closed"), &[], &[]);
    let b = Daemon::start(&config("redis://127.0.0.1:6379/", &p, "closed"), &[], &[]);
    let mut allowed = 0;
    for i in 0..100 {
        let d = if i % 2 == 0 { &a } else { &b };
        let (s, v) = check(d, "acme").await;
        match s {
            200 => allowed += 1,
            429 => assert_eq!(v["error"], "rate_limited", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    // One minute's burst of 60 across both hosts (two local limiters would admit 100),
    // plus what refills while the test runs (one a second).
    assert!(
        (60..=63).contains(&allowed),
        "admitted {allowed} of 100 across two hosts"
    );
    let (_, u) = a.get("/v1/usage").await;
    assert!(u["host_id"].as_str().is_some_and(|h| !h.is_empty()), "{u}");
    let (_, h) = a.get("/health").await;
    let state = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "state")
        .unwrap();
    assert_eq!(state["status"], "healthy", "{state}");
    assert!(
        state["message"].as_str().unwrap().contains("2 live host"),
        "{state}"
    );
}

#[tokio::test]
async fn with_redis_gone_checks_fail_closed_or_open_as_configured() {
    // Nothing listens on port 1: every connection is refused at once.
    let closed = Daemon::start(
        &config("redis://127.0.0.1:1/", &prefix("closed"), "closed"),
        &[],
        &[],
    );
    let (s, v) = check(&closed, "acme").await;
    assert_eq!(s, 503, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("redis"),
        "names the backend: {v}"
    );
    let (ready, _) = closed.get("/ready").await;
    assert_eq!(
        ready.as_u16(),
        503,
        "a host that cannot enforce shared limits is not ready"
    );

    let open = Daemon::start(
        &config("redis://127.0.0.1:1/", &prefix("open"), "open"),
        &[],
        &[],
    );
    let mut allowed = 0;
    for _ in 0..70 {
        if check(&open, "acme").await.0 == 200 {
            allowed += 1;
        }
    }
    // Fails open to the local limiter at the whole limit (one live host known).
    assert!((60..=62).contains(&allowed), "admitted {allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_daemons_admit_one_global_limit_within_one_percent() {
    require_redis();
    let p = prefix("global");
    // 24 clients on a 2-core machine that runs other tests too: the bound on one Redis call
    // is raised so this test is about the shared limit, not the timeout (tested above).
    let cfg = config("redis://127.0.0.1:6379/", &p, "closed")
        .replace(
            "max_requests_per_minute = 60",
            "max_requests_per_minute = 1200",
        )
        .replace("backend_timeout_ms = 300", "backend_timeout_ms = 5000");
    let hosts = [
        Daemon::start(&cfg, &[], &[]),
        Daemon::start(&cfg, &[], &[]),
        Daemon::start(&cfg, &[], &[]),
    ];
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for _ in 0..8 {
            let url = h.url("/v1/ratelimit/check");
            tasks.push(tokio::spawn(async move {
                let client = crate::harness::http();
                let (mut ok, mut refused) = (0u32, 0u32);
                for _ in 0..100 {
                    let r = client
                        .post(&url)
                        .json(&json!({"tenant": "acme"}))
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        429 => refused += 1,
                        other => panic!(
                            "host {i}: unexpected {other}: {}",
                            r.text().await.unwrap_or_default()
                        ),
                    }
                }
                (ok, refused)
            }));
        }
    }
    let mut allowed = 0u32;
    for t in tasks {
        allowed += t.await.unwrap().0;
    }
    // A minute's burst (1200) plus what GCRA refills while the 2400 checks run (20/s).
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 1200.0 + 20.0 * elapsed;
    println!(
        "admitted {allowed} of 2400 across three hosts in {elapsed:.2} s (expected {expected:.0})"
    );
    assert!(
        (allowed as f64 - expected).abs() <= 12.0 + 1.0,
        "admitted {allowed}, expected {expected:.0} ± 1%"
    );
}

/// Three Redis masters on private loopback ports, made a Cluster by `redis-cli --cluster
/// create`; stopped when dropped.
struct RedisCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<std::process::Child>,
    ports: Vec<u16>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

fn free_port() -> u16 {
    // Cluster bus ports are port + 10000: keep both below 65536.
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn redis_cli(args: &[String]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools, or run scripts/services)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|p| {
                std::process::Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{p}.conf"),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .current_dir(dir.path())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("redis-server (apt-get install redis-server, or run scripts/services)")
            })
            .collect();
        let c = RedisCluster {
            _dir: dir,
            nodes,
            ports,
        };
        for p in &c.ports {
            let mut up = false;
            for _ in 0..100 {
                if redis_cli(&["-p".into(), p.to_string(), "ping".into()]).contains("PONG") {
                    up = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            assert!(up, "redis node on port {p} did not start");
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(c.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend([
            "--cluster-replicas".into(),
            "0".into(),
            "--cluster-yes".into(),
        ]);
        let out = redis_cli(&args);
        assert!(
            out.contains("All 16384 slots covered"),
            "cluster create: {out}"
        );
        for _ in 0..200 {
            let ok = c.ports.iter().all(|p| {
                redis_cli(&["-p".into(), p.to_string(), "cluster".into(), "info".into()])
                    .contains("cluster_state:ok")
            });
            if ok {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the cluster never reported cluster_state:ok");
    }
}

#[tokio::test]
async fn a_redis_cluster_of_three_masters_serves_rate_limits_without_crossslot() {
    let cluster = RedisCluster::start();
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        cluster.ports[0], cluster.ports[1]
    );
    let d = Daemon::start(&config(&url, &prefix("cluster"), "closed"), &[], &[]);
    // Twelve tenants hash to slots on every master.
    for t in 0..12 {
        let tenant = format!("tenant-{t}");
        let mut allowed = 0;
        for _ in 0..64 {
            let (s, v) = check(&d, &tenant).await;
            match s {
                200 => allowed += 1,
                429 => assert_eq!(v["error"], "rate_limited", "{v}"),
                // Fail-closed: a CROSSSLOT (or any Redis error) would be a 503 here.
                other => panic!("tenant {tenant}: {other} {v}"),
            }
        }
        assert!(
            (60..=61).contains(&allowed),
            "tenant {tenant} admitted {allowed}"
        );
    }
    let holding = cluster
        .ports
        .iter()
        .filter(|p| {
            let n: u64 = redis_cli(&["-p".into(), p.to_string(), "dbsize".into()])
                .trim()
                .parse()
                .unwrap_or(0);
            n > 0
        })
        .count();
    assert!(
        holding >= 2,
        "the tenants' keys spread over the masters ({holding} hold keys)"
    );
}
