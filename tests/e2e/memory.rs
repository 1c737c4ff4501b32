//! Caches, memory, gc, snapshot, leaks, profile and sim through the daemon and the CLI.

use crate::harness::{Daemon, run_cli, wait_for_event};
use serde_json::{Value, json};

#[tokio::test]
async fn caches_store_evict_and_report_through_the_api() {
    let d = Daemon::start("", &[], &[]);
    let (status, body) = d
        .put(
            "/v1/caches/sessions",
            json!({"capacity_bytes": 1000, "policy": "lru"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut events = d.events().await;

    let put = |key: String, body: Value| {
        let path = format!("/v1/caches/sessions/entries/{key}");
        let d = &d;
        async move { d.put(&path, body).await }
    };
    let (_, r) = put("a".into(), json!({"value": {"user": 7}})).await;
    assert_eq!(r["held"], true);
    let (_, got) = d.get("/v1/caches/sessions/entries/a").await;
    assert_eq!(got["value"], json!({"user": 7}));
    // Fill past capacity with accounted (value-less) entries: the least recent go.
    for i in 0..12 {
        let (status, _) = put(format!("k{i}"), json!({"size": 100, "priority": 1})).await;
        assert_eq!(status, 200);
    }
    let (_, info) = d.get("/v1/caches/sessions").await;
    assert!(info["bytes"].as_u64().unwrap() <= 1000, "{info}");
    assert!(info["evictions"].as_u64().unwrap() >= 3, "{info}");
    assert_eq!(d.get("/v1/caches/sessions/entries/k0").await.0, 404);
    assert_eq!(d.get("/v1/caches/sessions/entries/k11").await.0, 200);

    // Remote apps learn of evictions through events.
    let mut buf = String::new();
    let seen = wait_for_event(&mut events, &mut buf, "event: CacheEvicted").await;
    assert!(seen, "{buf}");

    // Bad input names the field; unknown caches are 404.
    let (status, e) = put("x".into(), json!({})).await;
    assert_eq!(status, 400);
    assert!(e.to_string().contains("size"), "{e}");
    let (status, _) = d.put("/v1/caches/nope/entries/x", json!({"size": 1})).await;
    assert_eq!(status, 404);
    let (status, _) = d
        .put(
            "/v1/caches/other",
            json!({"capacity_bytes": 10, "policy": "nonsense"}),
        )
        .await;
    assert_eq!(status, 400);
    // A trim frees bytes through the policy.
    let (_, t) = d
        .post("/v1/caches/sessions/trim", json!({"bytes": 300}))
        .await;
    assert!(t["freed_bytes"].as_u64().unwrap() >= 300, "{t}");
    let (_, list) = d.get("/v1/caches").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, m) = d.get("/v1/memory").await;
    assert!(
        ["normal", "warning", "critical"].contains(&m["status"].as_str().unwrap()),
        "{m}"
    );
    assert!(m["details"]["rss_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn gc_snapshot_leaks_and_profile_verbs() {
    let d = Daemon::start("", &[], &[]);
    d.put(
        "/v1/caches/c1",
        json!({"capacity_bytes": 100000, "tenant": "acme"}),
    )
    .await;
    d.put("/v1/caches/c1/entries/k", json!({"size": 5000}))
        .await;
    let addr = d.addr.as_str();

    let (code, out, err) = run_cli(&["gc", "--addr", addr], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rss "), "{out}");

    let snap = d._dir.path().join("snap.json");
    let (code, _, err) = run_cli(
        &["snapshot", "--addr", addr, "-o", snap.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&snap).unwrap()).unwrap();
    assert_eq!(v["caches"][0]["name"], "c1");
    assert_eq!(v["tenants"]["acme"], 5000);
    assert!(v["rss_bytes"].as_u64().unwrap() > 0);

    let (code, out, err) = run_cli(&["leaks", "--addr", addr, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["leaks"].is_array());

    let json_out = d._dir.path().join("p.json");
    let svg_out = d._dir.path().join("p.svg");
    let (code, _, err) = run_cli(
        &[
            "profile",
            "--addr",
            addr,
            "-d",
            "1",
            "--interval",
            "200",
            "-o",
            json_out.to_str().unwrap(),
            "--svg",
            svg_out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    assert!(v["points"].as_array().unwrap().len() >= 4, "{v}");
    let svg = std::fs::read_to_string(&svg_out).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 4);
}

#[test]
fn sim_prints_a_table_and_json_with_belady_as_the_bound() {
    let spec = "zipf:alpha=1.0,objects=2000,requests=20000,seed=7";
    let (code, out, err) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            "200",
            "--builtin",
            "lru,fifo",
            "--belady",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(names, ["builtin:lru", "builtin:fifo", "belady"]);
    for r in &v {
        assert_eq!(r["requests"], 20000);
        for k in ["misses", "miss_ratio", "byte_miss_ratio", "ns_per_request"] {
            assert!(r[k].is_number(), "{k} in {r}");
        }
    }
    let opt = v[2]["misses"].as_u64().unwrap();
    assert!(opt <= v[0]["misses"].as_u64().unwrap() && opt <= v[1]["misses"].as_u64().unwrap());

    let (code, out, _) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            "200",
            "--builtin",
            "lru",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(
        out.starts_with("POLICY") && out.contains("builtin:lru"),
        "{out}"
    );

    // Bad input is named.
    let (code, _, err) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            "200",
            "--builtin",
            "nope",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("t.csv");
    std::fs::write(&bad, "1,10\n2,big\n").unwrap();
    let (code, _, err) = run_cli(
        &[
            "sim",
            "--trace",
            bad.to_str().unwrap(),
            "--format",
            "csv",
            "--cache-size",
            "10",
            "--builtin",
            "lru",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("line 2"), "{err}");
}

/// A sweep (`--cache-size 1%,5%,10%`, several policies, both cores) gives, job for job, what
/// single runs give; the Wasm LRU (victim runs) misses exactly as often as the native one,
/// and the table names the speed ratio of each Wasm policy to its builtin twin.
#[test]
fn sim_sweeps_sizes_and_policies_in_parallel_with_exact_wasm_misses() {
    let spec = "zipf:alpha=0.9,objects=5000,requests=60000,seed=11";
    let lru = crate::policies::built("lru");
    let fifo = crate::policies::built("fifo");
    let sweep = |jobs: &str| {
        let (code, out, err) = run_cli(
            &[
                "sim",
                "--synthetic",
                spec,
                "--cache-size",
                "1%,5%,10%",
                "--builtin",
                "lru,fifo",
                "--policy",
                lru.to_str().unwrap(),
                "--policy",
                fifo.to_str().unwrap(),
                "--belady",
                "--jobs",
                jobs,
                "--json",
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Vec<Value>>(&out).unwrap()
    };
    let v = sweep("2");
    // 3 sizes x (2 builtins + 2 Wasm + Belady), in job order.
    assert_eq!(v.len(), 15, "{v:?}");
    let footprint = 5000u64; // at most 5000 distinct objects
    let sizes: Vec<u64> = v
        .iter()
        .map(|r| r["cache_size"].as_u64().unwrap())
        .collect();
    assert!(sizes[..5].iter().all(|&s| s == sizes[0]));
    let distinct: std::collections::BTreeSet<u64> = sizes.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{sizes:?}");
    assert!(sizes[10] > sizes[5] && sizes[5] > sizes[0] && sizes[10] <= footprint / 10);
    let misses = |r: &Value| r["misses"].as_u64().unwrap();
    for chunk in v.chunks(5) {
        let names: Vec<&str> = chunk
            .iter()
            .map(|r| r["policy"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "builtin:lru",
                "builtin:fifo",
                "lru.wasm",
                "fifo.wasm",
                "belady"
            ]
        );
        assert_eq!(
            misses(&chunk[2]),
            misses(&chunk[0]),
            "Wasm LRU vs native: {chunk:?}"
        );
        assert_eq!(
            misses(&chunk[3]),
            misses(&chunk[1]),
            "Wasm FIFO vs native: {chunk:?}"
        );
        assert!(
            misses(&chunk[4]) <= misses(&chunk[0]),
            "Belady is the bound: {chunk:?}"
        );
    }
    // The thread count changes nothing but the time.
    let one = sweep("1");
    for (a, b) in v.iter().zip(&one) {
        assert_eq!(
            (&a["policy"], a["cache_size"].as_u64(), misses(a)),
            (&b["policy"], b["cache_size"].as_u64(), misses(b))
        );
    }
    // A single size as bytes gives the same as that size as a percentage.
    let (code, out, err) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            &sizes[5].to_string(),
            "--builtin",
            "lru",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let single: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(misses(&single[0]), misses(&v[5]));

    // The table says how fast each Wasm policy runs next to its twin.
    let (code, out, err) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            "5%",
            "--builtin",
            "lru",
            "--policy",
            lru.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CACHE SIZE"), "{out}");
    assert!(
        out.contains("lru.wasm at size")
            && out.contains("the speed of builtin:lru")
            && out.contains("misses equal"),
        "{out}"
    );

    // Bad sizes are named.
    for bad in ["0%", "101%", "abc", "0", "5%,x"] {
        let (code, _, err) = run_cli(
            &[
                "sim",
                "--synthetic",
                spec,
                "--cache-size",
                bad,
                "--builtin",
                "lru",
            ],
            &[],
        );
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("--cache-size"), "{bad}: {err}");
    }
    let (code, _, err) = run_cli(
        &[
            "sim",
            "--synthetic",
            spec,
            "--cache-size",
            "5%",
            "--builtin",
            "lru",
            "--jobs",
            "0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--jobs"), "{err}");
}
