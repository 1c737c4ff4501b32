//! `/metrics` as Prometheus' own linter sees it, and every client verb's exit code when
//! the daemon is down.

use crate::harness::{Daemon, run_cli};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    let lru = crate::policies::built("lru");
    let pg = std::env::var("RMHOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let d = Daemon::start(
        "",
        &["--policy", lru.to_str().unwrap()],
        &[("DATABASE_URL", pg.as_str())],
    );
    // Give every family samples: an allocation, a denial, a rate check, a cache.
    d.put("/v1/tenants/t/quotas", json!({"memory": 10})).await;
    let alloc = |amount: u64| json!({"tenant": "t", "kind": "memory", "amount": amount});
    d.post("/v1/allocations", alloc(5)).await;
    d.post("/v1/allocations", alloc(50)).await;
    d.post("/v1/ratelimit/check", json!({"tenant": "t"})).await;
    d.put("/v1/caches/c", json!({"capacity_bytes": 100})).await;
    let (_, text) = d.text("/metrics").await;
    assert!(
        text.contains("rmhost_pool_acquire_duration_seconds_bucket"),
        "{text}"
    );

    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed to lint /metrics ({e}): install Debian's `prometheus` package (scripts/test does)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "rmhost_cpu_usage_ratio",
        "rmhost_process_resident_memory_bytes",
        "rmhost_allocation_denials_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")) && text.contains(&format!("# TYPE {name} ")),
            "{name}"
        );
    }
}

#[test]
fn every_client_verb_exits_3_when_the_daemon_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let verbs: Vec<Vec<&str>> = vec![
        vec!["health"],
        vec!["report"],
        vec!["connections"],
        vec!["gc"],
        vec!["snapshot"],
        vec!["leaks"],
        vec!["policy", "list"],
        vec!["policy", "reload"],
        vec!["policy", "set", "--kind", "quota", "x"],
        vec!["policy", "unset", "--kind", "quota"],
        vec!["profile", "-d", "1", "-o", out.to_str().unwrap()],
    ];
    for verb in verbs {
        let mut args = verb.clone();
        args.extend(["--addr", addr.as_str()]);
        let (code, _, err) = run_cli(&args, &[]);
        assert_eq!(code, 3, "{verb:?}: {err}");
        assert!(
            err.contains("cannot reach the rmhost daemon"),
            "{verb:?}: {err}"
        );
    }
}

#[tokio::test]
async fn client_verbs_print_json_of_the_documented_shape() {
    let d = Daemon::start("", &[], &[]);
    let addr = d.addr.as_str();
    let json_of = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--json", "--addr", addr]);
        let (code, out, err) = run_cli(&a, &[]);
        // `health` exits 1 or 2 when degraded or unhealthy (a busy machine's CPU check).
        let ok = if args == ["health"] {
            code <= 2
        } else {
            code == 0
        };
        assert!(ok, "{args:?} exited {code}: {err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    assert!(json_of(&["connections"])["pools"].is_array());
    let p = json_of(&["policy", "list"]);
    assert!(p["policies"].is_array() && p["bindings"].is_array(), "{p}");
    let g = json_of(&["gc"]);
    assert!(g["rss_before"].is_u64() && g["rss_after"].is_u64(), "{g}");
    let r = json_of(&["report"]);
    assert!(
        r["cpu"]["percentage"].is_number() && r["allocations"]["global"].is_array(),
        "{r}"
    );
    let h = json_of(&["health"]);
    assert!(h["status"].is_string() && h["checks"].is_array(), "{h}");
}
