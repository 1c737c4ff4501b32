//! Several daemons on one PostgreSQL ledger (`[state] ledger = "postgres://…"`): one quota
//! across hosts, nothing acknowledged lost to `kill -9`, leases and pid-bound allocations
//! of a dead host reclaimed by the others, and a database that goes away and comes back.
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and its server binaries
//! (initdb, pg_ctl) for the private cluster; scripts/services provides both. Each test
//! makes its own database.

use crate::harness::Daemon;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need psql and PostgreSQL on 127.0.0.1:5432 (run scripts/services): {e}"
            )
        });
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fresh_database(name: &str) -> (String, String) {
    let db = format!("rmhost_e2e_{name}_{}", std::process::id());
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    psql("postgres", &format!("CREATE DATABASE {db}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    (db, url)
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "[state]\nledger = \"{url}\"\nbackend_timeout_ms = 500\nhost_lapse_ms = 1000\n\
         [monitoring]\norphan_scan_interval_ms = 200\n{extra}"
    )
}

async fn allocate(d: &Daemon, body: Value) -> (u16, Value) {
    let (s, v) = d.post("/v1/allocations", body).await;
    (s.as_u16(), v)
}

async fn live_ids(d: &Daemon, tenant: &str) -> Vec<u64> {
    let (s, v) = d.get(&format!("/v1/allocations?tenant={tenant}")).await;
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_daemons_share_one_quota_under_600_concurrent_requests() {
    let (db, url) = fresh_database("quota");
    // 200 requests in flight per host on a 2-core machine: the bound on one call is raised
    // so the test is about the quota, not about the timeout (tested below).
    let cfg = config(
        &url,
        "[limits]\nmax_connections = 1000\n[tenants.acme]\nconnections = 150\n",
    )
    .replace("backend_timeout_ms = 500", "backend_timeout_ms = 10000");
    let hosts = [
        Daemon::start(&cfg, &[], &[]),
        Daemon::start(&cfg, &[], &[]),
        Daemon::start(&cfg, &[], &[]),
    ];
    let mut tasks = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for _ in 0..200 {
            let url = h.url("/v1/allocations");
            tasks.push(tokio::spawn(async move {
                let r = crate::harness::http()
                    .post(url)
                    .json(&json!({"tenant": "acme", "kind": "connections", "amount": 1, "owner": format!("h{i}")}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }));
        }
    }
    let mut granted = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            201 => granted.push(v["id"].as_u64().unwrap()),
            409 => assert_eq!(v["error"], "quota_exceeded", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(
        granted.len(),
        150,
        "exactly the quota is granted across three hosts"
    );
    granted.sort_unstable();
    granted.dedup();
    assert_eq!(granted.len(), 150, "ids are unique across hosts");
    let rows = psql(
        &db,
        "SELECT sum(amount) FROM rm_allocations WHERE tenant = 'acme'",
    );
    assert_eq!(rows, "150", "the sum of the rows in PostgreSQL");
    for h in &hosts {
        let (_, q) = h.get("/v1/tenants/acme/quotas").await;
        assert_eq!(q["quotas"]["connections"]["used"], 150, "{q}");
        assert_eq!(q["quotas"]["connections"]["limit"], 150, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_what_was_acknowledged_and_the_others_reclaim_the_rest() {
    let (_db, url) = fresh_database("kill");
    let cfg = config(&url, "");
    let mut a = Daemon::start(&cfg, &[], &[]);
    let b = Daemon::start(&cfg, &[], &[]);
    // A live process on this machine: only its own host may judge it, so after host a
    // dies its pid-bound allocation is reclaimed for the heartbeat, not for the process.
    let mut sleeper = Command::new("sleep").arg("120").spawn().unwrap();
    let mut kept = Vec::new();
    for i in 0..20 {
        let (s, v) = allocate(
            &a,
            json!({"tenant": "t", "kind": "memory", "amount": 1000 + i}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        kept.push(v["id"].as_u64().unwrap());
    }
    let (s, lease) = allocate(
        &a,
        json!({"tenant": "t", "kind": "memory", "amount": 7, "ttl_ms": 800}),
    )
    .await;
    assert_eq!(s, 201, "{lease}");
    let (s, bound) = allocate(
        &a,
        json!({"tenant": "t", "kind": "memory", "amount": 9, "pid": sleeper.id()}),
    )
    .await;
    assert_eq!(s, 201, "{bound}");
    let mut events = b.events().await;
    a.signal(libc::SIGKILL);
    a.wait_exit(Duration::from_secs(10))
        .expect("host a exits on SIGKILL");

    // Through the surviving host: all 20 plain ones are there.
    let ids = live_ids(&b, "t").await;
    for id in &kept {
        assert!(
            ids.contains(id),
            "acknowledged allocation {id} lost: {ids:?}"
        );
    }
    // The lease runs out and the dead host's heartbeat lapses: b reclaims both.
    let mut buf = String::new();
    assert!(
        crate::harness::wait_for_event(&mut events, &mut buf, "lease_expired").await,
        "the dead host's lease is reaped by b: {buf}"
    );
    assert!(
        crate::harness::wait_for_event(&mut events, &mut buf, "owner_gone").await,
        "the dead host's pid-bound allocation is reclaimed by b: {buf}"
    );
    let ids = live_ids(&b, "t").await;
    assert_eq!(
        ids.len(),
        20,
        "only the 20 plain allocations are left: {ids:?}"
    );

    // After a restart the host serves the same ledger, and ids go on from where they were.
    let a2 = Daemon::start(&cfg, &[], &[]);
    assert_eq!(live_ids(&a2, "t").await, ids);
    let (s, v) = allocate(&a2, json!({"tenant": "t", "kind": "memory", "amount": 1})).await;
    assert_eq!(s, 201, "{v}");
    assert!(
        v["id"].as_u64().unwrap() > *kept.iter().max().unwrap(),
        "{v}"
    );
    let (s, _) = a2.delete(&format!("/v1/allocations/{}", lease["id"])).await;
    assert_eq!(
        s, 404,
        "a reclaimed id stays gone; it is never given out again"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// A PostgreSQL cluster of the test's own on a private port, so the test can stop it.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).find(|p| p.join("initdb").exists()))
            .expect("PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql: apt-get install postgresql");
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pg = PrivatePg { dir, port, bin };
        // initdb refuses to run as root: the cluster belongs to postgres.
        run_as_postgres(
            &["chown", "-R", "postgres", pg.dir.path().to_str().unwrap()],
            true,
        );
        let data = pg.data();
        run_as_postgres(
            &[
                pg.bin.join("initdb").to_str().unwrap(),
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            false,
        );
        pg.ctl("start");
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn ctl(&self, what: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").to_string_lossy().into_owned();
        let ctl = self.bin.join("pg_ctl");
        let data = self.data();
        let mut args = vec![
            ctl.to_str().unwrap(),
            "-D",
            &data,
            "-l",
            &log,
            "-w",
            "-o",
            &opts,
        ];
        if what == "stop" {
            args.extend(["-m", "immediate"]);
        }
        args.push(what);
        run_as_postgres(&args, false);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // Already stopped by the test is fine; a panic here would abort the test binary.
        let ctl = self.bin.join("pg_ctl");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(ctl)
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn run_as_postgres(args: &[&str], as_root: bool) {
    let out = if as_root {
        Command::new(args[0]).args(&args[1..]).output()
    } else {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
    }
    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_stopped_writes_answer_503_and_service_resumes_when_it_returns() {
    let pg = PrivatePg::start();
    let d = Daemon::start(&config(&pg.url(), ""), &[], &[]);
    let (s, v) = allocate(&d, json!({"tenant": "t", "kind": "cpu", "amount": 10})).await;
    assert_eq!(s, 201, "{v}");
    pg.ctl("stop");

    let began = Instant::now();
    let (s, v) = allocate(&d, json!({"tenant": "t", "kind": "cpu", "amount": 10})).await;
    println!(
        "write with the ledger down answered {s} after {:?}",
        began.elapsed()
    );
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "unavailable", "{v}");
    assert!(v["message"].as_str().unwrap().contains("postgres"), "{v}");
    let (s, r) = d.get("/ready").await;
    assert_eq!(s, 503, "{r}");
    let (_, h) = d.get("/health").await;
    let state = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "state")
        .cloned()
        .unwrap();
    assert_eq!(state["status"], "unhealthy", "{state}");
    assert!(
        state["message"].as_str().unwrap().contains("postgres"),
        "the state check says why: {state}"
    );

    pg.ctl("start");
    let back = Instant::now();
    let mut resumed = None;
    for _ in 0..200 {
        let (s, _) = allocate(&d, json!({"tenant": "t", "kind": "cpu", "amount": 1})).await;
        if s == 201 {
            resumed = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed = resumed.expect("the daemon serves writes again once PostgreSQL is back");
    println!("service resumed {resumed:?} after PostgreSQL came back");
    let (s, _) = d.get("/ready").await;
    assert_eq!(s, 200);
    let ids = live_ids(&d, "t").await;
    assert_eq!(
        ids.len(),
        2,
        "the allocation from before the outage is still there"
    );
}

/// Polls `path` on `d` until `ok` holds for the answer (or 15 s pass); answers the last one.
async fn eventually(d: &Daemon, path: &str, ok: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = d.get(path).await;
        if ok(s.as_u16(), &v) || Instant::now() > deadline {
            return (s.as_u16(), v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bound(v: &Value, tenant: &str, kind: &str) -> Option<String> {
    v["bindings"].as_array()?.iter().find_map(|b| {
        (b["tenant"] == tenant && b["kind"] == kind).then(|| b["policy"].as_str().unwrap().into())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_and_caches_set_on_one_host_hold_on_every_host_and_after_kill_9() {
    let (db, url) = fresh_database("catalog");
    let dir = tempfile::tempdir().unwrap();
    for p in ["s3fifo", "fair-quota"] {
        std::fs::copy(
            crate::policies::built(p),
            dir.path().join(format!("{p}.wasm")),
        )
        .unwrap();
    }
    let args = ["--policies-dir", dir.path().to_str().unwrap()];
    let cfg = config(&url, "");
    let mut a = Daemon::start(&cfg, &args, &[]);
    let b = Daemon::start(&cfg, &args, &[]);
    // Wait for a's policies (loaded in the background) before binding through it.
    eventually(&a, "/v1/policies/s3fifo", |s, _| s == 200).await;

    let (s, v) = a
        .put(
            "/v1/tenants/acme/policies/eviction",
            json!({"policy": "s3fifo"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = a
        .put(
            "/v1/caches/sessions",
            json!({"capacity_bytes": 100000, "tenant": "acme", "policy": "s3fifo"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // A binding the runtime refuses is neither applied nor stored.
    let (s, v) = a
        .put("/v1/tenants/acme/policies/quota", json!({"policy": "nope"}))
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        psql(
            &db,
            "SELECT tenant || '/' || kind || '=' || policy FROM rm_bindings ORDER BY 1"
        ),
        "acme/eviction=s3fifo"
    );

    // The other host applies both, having heard of them.
    let (_, v) = eventually(&b, "/v1/policies", |_, v| {
        bound(v, "acme", "eviction").is_some()
    })
    .await;
    assert_eq!(
        bound(&v, "acme", "eviction").as_deref(),
        Some("s3fifo"),
        "{v}"
    );
    let (s, v) = eventually(&b, "/v1/caches/sessions", |s, _| s == 200).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["capacity_bytes"], 100000, "{v}");
    assert_eq!(v["tenant"], "acme", "{v}");

    // kill -9 and a restart: the new process gets both back from the ledger.
    a.signal(libc::SIGKILL);
    a.wait_exit(Duration::from_secs(10))
        .expect("host a exits on SIGKILL");
    let a2 = Daemon::start(&cfg, &args, &[]);
    let (_, v) = eventually(&a2, "/v1/policies", |_, v| {
        bound(v, "acme", "eviction").is_some()
    })
    .await;
    assert_eq!(
        bound(&v, "acme", "eviction").as_deref(),
        Some("s3fifo"),
        "{v}"
    );
    let (s, v) = eventually(&a2, "/v1/caches/sessions", |s, _| s == 200).await;
    assert_eq!(s, 200, "{v}");

    // Deleting on one host deletes everywhere; unbinding too.
    let (s, v) = b.delete("/v1/caches/sessions").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = b.delete("/v1/tenants/acme/policies/eviction").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = eventually(&a2, "/v1/caches/sessions", |s, _| s == 404).await;
    assert_eq!(s, 404, "{v}");
    let (_, v) = eventually(&a2, "/v1/policies", |_, v| {
        bound(v, "acme", "eviction").is_none()
    })
    .await;
    assert_eq!(bound(&v, "acme", "eviction"), None, "{v}");
    assert_eq!(psql(&db, "SELECT count(*) FROM rm_caches"), "0");
    assert_eq!(psql(&db, "SELECT count(*) FROM rm_bindings"), "0");

    // Drift repair on demand: a counter row set wrong behind the ledger's back is put right.
    let (s, v) = allocate(&b, json!({"tenant": "t", "kind": "memory", "amount": 5})).await;
    assert_eq!(s, 201, "{v}");
    psql(&db, "UPDATE rm_usage SET used = used + 40");
    let (s, v) = b.post("/v1/ledger/repair", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"ledger": "postgres", "fixed": 1}));
    assert_eq!(
        psql(
            &db,
            "SELECT used FROM rm_usage WHERE tenant = 't' AND kind = 'memory'"
        ),
        "5"
    );
}
