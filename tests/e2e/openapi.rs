//! The OpenAPI document against a live daemon: `openapi-spec-validator` accepts what
//! `GET /openapi.json` serves, and schemathesis runs every operation with a tenant token
//! and with the admin token: no 5xx, no status, content type, header or body the document
//! does not allow, no schema-violating request accepted, and (a custom check,
//! `openapi_hooks.py`) no tenant answer naming another tenant's objects.
//!
//! Needs `python3 -m pip install schemathesis==4.32.5 openapi-spec-validator==0.9.0`
//! (scripts/test installs them); the test fails, never skips, without them.

use crate::harness::Daemon;
use crate::policies::built;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ADMIN: &str = "openapi-admin-secret";
/// The tenant whose token fuzzes.
const ACME: &str = "acme-openapi-secret";
/// The tenant whose objects must never show in acme's answers.
const ZETA: &str = "zeta-openapi-secret";
/// Names only zeta's objects carry: a tenant answer holding one of them leaks.
const ZETA_MARKERS: [&str; 4] = [
    "zeta",
    "zeta-ledger-owner",
    "zeta-private",
    "zeta-secret-key",
];

const PIP: &str = "python3 -m pip install schemathesis==4.32.5 openapi-spec-validator==0.9.0 \
                   (scripts/test does this)";

fn config() -> String {
    let h = rmhost_core::config::hash_token;
    format!(
        "[auth]\nadmin_token_sha256 = \"{}\"\n[auth.tenants.acme]\ntoken_sha256 = \"{}\"\n\
         [auth.tenants.zeta]\ntoken_sha256 = \"{}\"\n",
        h(ADMIN),
        h(ACME),
        h(ZETA)
    )
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e")
}

/// Runs `python3 ARGS`; fails with the pip command when python3 or the module is missing.
fn python(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new("python3");
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("python3 could not be run ({e}); install Python 3, then {PIP}"))
}

fn require_tools(cwd: &Path) {
    for module in ["schemathesis", "openapi_spec_validator"] {
        let out = python(&["-c", &format!("import {module}")], &[], cwd);
        assert!(
            out.status.success(),
            "the Python module {module} is missing: {PIP}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Gives both tenants state (allocations, caches with entries, quotas, a policy binding),
/// so a tenant answer has something of the other tenant's to leak.
async fn seed(d: &Daemon) {
    let (admin, acme, zeta) = (d.with_token(ADMIN), d.with_token(ACME), d.with_token(ZETA));
    // The policies directory loads in the background.
    let mut loaded = false;
    for _ in 0..200 {
        let (_, v) = admin.get("/v1/policies/lru").await;
        if v["name"] == "lru" {
            loaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        loaded,
        "lru.wasm was not loaded from the policies directory"
    );
    for (api, tenant, owner, cache, key) in [
        (&acme, "acme", "acme-owner", "acme-cache", "acme-key"),
        (
            &zeta,
            "zeta",
            "zeta-ledger-owner",
            "zeta-private",
            "zeta-secret-key",
        ),
    ] {
        let body = json!({"tenant": tenant, "kind": "memory", "amount": 4096, "owner": owner, "priority": 200});
        let (status, a) = api.post("/v1/allocations", body).await;
        assert_eq!(status, 201, "seed allocation for {tenant}: {a}");
        let (status, c) = api
            .put(
                &format!("/v1/caches/{cache}"),
                json!({"capacity_bytes": 1 << 20}),
            )
            .await;
        assert_eq!(status, 201, "seed cache for {tenant}: {c}");
        let (status, e) = api
            .put(
                &format!("/v1/caches/{cache}/entries/{key}"),
                json!({"value": {"owner": owner}}),
            )
            .await;
        assert_eq!(status, 200, "seed entry for {tenant}: {e}");
        let (status, q) = admin
            .put(
                &format!("/v1/tenants/{tenant}/quotas"),
                json!({"memory": 1u64 << 30, "requests_per_minute": 100_000}),
            )
            .await;
        assert_eq!(status, 200, "seed quotas for {tenant}: {q}");
    }
    let (status, b) = admin
        .put(
            "/v1/tenants/zeta/policies/eviction",
            json!({"policy": "lru"}),
        )
        .await;
    assert_eq!(status, 200, "seed binding for zeta: {b}");
}

/// One schemathesis run over every operation (but the endless event stream) as `token`.
fn schemathesis(url: &str, token: &str, markers: &str, work: &Path) -> Output {
    let auth = format!("Authorization: Bearer {token}");
    let config_file = here()
        .join("schemathesis.toml")
        .to_string_lossy()
        .into_owned();
    let report = work.join(format!("junit-{}.xml", &token[..4]));
    let args = [
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "--config-file",
        &config_file,
        "run",
        url,
        "--header",
        &auth,
        "--checks",
        "all",
        // Schema-valid requests the daemon refuses by its state or config, on purpose: an
        // amount over the configured global limit (400), an integer sent as `425.0`
        // (serde reads integers, JSON Schema counts 425.0 as one), an entry with neither
        // a value nor a size. Every other check runs, the custom one included.
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-operation-id",
        "stream_events",
        "--max-examples",
        "60",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        report.to_str().expect("utf-8 path"),
        "--no-color",
    ];
    let hooks_path = here();
    let out = python(
        &args,
        &[
            ("SCHEMATHESIS_HOOKS", "openapi_hooks"),
            ("PYTHONPATH", hooks_path.to_str().expect("utf-8 path")),
            ("RMHOST_FOREIGN_MARKERS", markers),
        ],
        // Schemathesis keeps a cache (`.schemathesis/`) in its working directory.
        work,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("No such option") && !text.contains("Invalid value"),
        "schemathesis refused its arguments (is the pinned version installed? {PIP}):\n{text}"
    );
    out
}

#[tokio::test]
async fn the_document_validates_and_schemathesis_finds_nothing() {
    require_tools(&here());
    let policies = tempfile::tempdir().expect("tempdir");
    std::fs::copy(built("lru"), policies.path().join("lru.wasm")).expect("copy lru.wasm");
    let d = Daemon::start(
        &config(),
        &[
            "--policies-dir",
            policies.path().to_str().expect("utf-8 path"),
        ],
        &[],
    );
    // The document is public and JSON.
    let (status, doc) = d.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    let out = python(
        &[
            "-m",
            "openapi_spec_validator",
            file.to_str().expect("utf-8 path"),
        ],
        &[],
        work.path(),
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses /openapi.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The bounds schemathesis cannot reach (the profile's are overridden in
    // schemathesis.toml) and what it found, directly.
    let admin = d.with_token(ADMIN);
    for path in [
        "/v1/profile?duration_ms=600001",
        "/v1/profile?duration_ms=100&interval_ms=600001",
        "/v1/profile?duration_ms=100&interval_ms=18446744073709551615",
        "/v1/profile?duration_ms=0",
        "/v1/allocations/9223372036854775808",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    for (path, body) in [
        ("/v1/tenants/acme/quotas", json!([null, null])),
        (
            "/v1/tenants/acme/quotas",
            json!({"memory": 9_223_372_036_854_775_808u64}),
        ),
        ("/v1/tenants/a%20b/quotas", json!({})),
        (
            "/v1/allocations",
            json!({"tenant": "acme", "kind": "cpu", "amount": 1, "ttl_ms": u64::MAX}),
        ),
    ] {
        let method = if path.ends_with("quotas") {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let r = admin.request(method, path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
    }

    seed(&d).await;
    let url = d.url("/openapi.json");
    // The tenant first: the admin run may delete what was seeded.
    for (who, token, markers) in [
        ("tenant acme", ACME, ZETA_MARKERS.join(",")),
        ("admin", ADMIN, String::new()),
    ] {
        let out = schemathesis(&url, token, &markers, work.path());
        assert!(
            out.status.success(),
            "schemathesis with the {who} token found problems:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // What it ran, in the test's log.
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(summary) = text.find("WARNINGS") {
            eprintln!("schemathesis ({who}):\n{}", &text[summary..]);
        }
        // A run that tested nothing is no evidence: every operation but the stream ran.
        let report =
            std::fs::read_to_string(work.path().join(format!("junit-{}.xml", &token[..4])))
                .expect("schemathesis wrote its junit report");
        let tested: std::collections::BTreeSet<&str> = report
            .split("<testcase ")
            .skip(1)
            .filter_map(|t| t.split("name=\"").nth(1)?.split('"').next())
            .collect();
        // Schemathesis leaves out the document's own operation; the stream is excluded above.
        let expected: std::collections::BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let methods = item
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>());
                methods
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .filter(|op| op != "GET /v1/events" && op != "GET /openapi.json")
            .collect();
        let tested: std::collections::BTreeSet<String> =
            tested.into_iter().map(str::to_string).collect();
        assert_eq!(
            tested, expected,
            "schemathesis ({who}) did not test every operation"
        );
    }
}
