//! The client verbs against a live daemon and against none.

use crate::harness::{Daemon, run_cli};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_report_against_a_daemon() {
    let d = Daemon::start("", &[], &[]);
    let (status, _) = d
        .post(
            "/v1/allocations",
            json!({"tenant": "acme", "kind": "memory", "amount": 4096}),
        )
        .await;
    assert_eq!(status, 201);
    let addr = d.addr.as_str();

    let (code, out, err) = run_cli(&["health", "-v", "--addr", addr], &[]);
    assert!((0..=2).contains(&code), "health exit {code}: {err}");
    assert!(
        out.contains("CHECK") && out.contains("memory.process_rss"),
        "{out}"
    );
    let (code2, out, _) = run_cli(&["health", "--json", "--addr", addr], &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let expected = match v["status"].as_str().unwrap() {
        "healthy" => 0,
        "degraded" => 1,
        _ => 2,
    };
    assert_eq!(code2, expected);

    let (code, out, err) = run_cli(&["report", "--addr", addr], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Allocations by tenant"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("acme") && l.contains("memory") && l.contains("4.0 KiB")),
        "{out}"
    );
    let (code, out, _) = run_cli(&["report", "--json", "--addr", addr], &[]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allocations"]["allocations"], 1);
}

#[test]
fn client_verbs_exit_3_when_the_daemon_is_down() {
    // Bind then drop a listener: nothing answers on that port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for verb in ["health", "report"] {
        let (code, _, err) = run_cli(&[verb, "--addr", &addr], &[]);
        assert_eq!(code, 3, "{verb}: {err}");
        assert!(err.contains("cannot reach the rmhost daemon"), "{err}");
    }
}
