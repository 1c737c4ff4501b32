//! Defaults, precedence, sources, rendering and the key table.

use super::schema::{self, KEYS, Lookup};
use super::*;
use crate::policy::{PolicyKind, ResourceKind};
use std::collections::HashMap;
use std::path::Path;

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn file() -> &'static Path {
    Path::new("rmhost.toml")
}

#[test]
fn defaults_are_the_original_systems() {
    let c = Config::default();
    assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
    assert_eq!(c.shutdown_timeout_ms, 10_000);
    assert_eq!(
        (
            c.limits.max_memory_mb,
            c.limits.max_cpu_percentage,
            c.limits.max_connections,
            c.limits.max_requests_per_minute,
            c.limits.max_file_handles
        ),
        (2048, 80, 100, 1000, 1024)
    );
    let db = &c.connection_pools.database;
    assert_eq!(
        (db.min, db.max, db.acquire_timeout_ms, db.idle_timeout_ms),
        (2, 10, 30_000, 10_000)
    );
    assert_eq!(db.url, None);
    let r = &c.connection_pools.redis;
    assert_eq!((r.min, r.max, r.acquire_timeout_ms), (1, 10, 30_000));
    assert_eq!(r.url, None);
    let m = &c.memory;
    assert_eq!(
        (m.warning_threshold_percent, m.critical_threshold_percent),
        (70, 85)
    );
    assert!(!m.enable_memory_profiling);
    assert!(m.enable_leak_detection);
    let mon = &c.monitoring;
    assert_eq!(
        (
            mon.metrics_interval_ms,
            mon.health_check_interval_ms,
            mon.sample_interval_ms,
            mon.orphan_scan_interval_ms
        ),
        (60_000, 30_000, 1_000, 1_000)
    );
    assert!(!c.auth.is_set());
    let p = &c.policies;
    assert_eq!(p.dir, "policies");
    assert_eq!(
        (
            p.deadline_ms,
            p.memory_cap_mb,
            p.max_faults,
            p.fault_window_ms,
            p.max_file_bytes
        ),
        (10, 64, 5, 60_000, 64 << 20)
    );
    assert_eq!(p.cache_dir, None);
    assert!(p.bindings.is_empty() && p.policy.is_empty() && c.tenants.is_empty());
    assert_eq!(c.memory_budget_bytes(), 2048 * 1024 * 1024);
    c.validate().unwrap();

    // Loading nothing gives the defaults, every leaf sourced `Default`.
    let loaded = load(None, &no_env, &[]).unwrap();
    assert_eq!(loaded.config, c);
    assert_eq!(loaded, Loaded::defaults());
    assert!(loaded.sources.values().all(|s| *s == Source::Default));
    assert!(loaded.sources.contains_key("connection_pools.database.url"));
}

#[test]
fn empty_file_and_serde_alone_give_defaults() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c, Config::default());
    let loaded = load_str("", file(), &no_env, &[]).unwrap();
    assert_eq!(loaded.config, Config::default());
}

const FULL: &str = r#"
listen = "0.0.0.0:8080"
shutdown_timeout_ms = 5000

[limits]
max_memory_mb = 1024
max_cpu_percentage = 90

[connection_pools.database]
max = 20
url = "postgres://localhost/db"

[memory]
warning_threshold_percent = 60
enable_memory_profiling = true

[monitoring]
sample_interval_ms = 500

[auth]
admin_token_sha256 = "HASH_ADMIN"
[auth.tenants.acme]
token_sha256 = "HASH_ACME"

[policies]
dir = "/srv/policies"
cache_dir = "/var/cache/rmhost"
[policies.bindings]
eviction = "lru"
[policies.policy.lru]
deadline_ms = 20
[policies.policy.lru.settings]
algorithm = "lru"
capacity = 100
[policies.policy."my.policy"]

[tenants.acme]
memory = 1073741824
requests_per_minute = 600
[tenants.empty]
[pools.postgres.analytics]
url = "postgres://postgres@127.0.0.1:5432/test"
application_name = "rmhost-analytics"
[pools.redis.cache]
url = "redis://127.0.0.1:6379"
"#;

fn full_text() -> String {
    FULL.replace("HASH_ADMIN", &hash_token("admin-secret"))
        .replace("HASH_ACME", &hash_token("acme-secret"))
}

#[test]
fn file_overrides_defaults() {
    let loaded = load_str(&full_text(), file(), &no_env, &[]).unwrap();
    let c = &loaded.config;
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.shutdown_timeout_ms, 5000);
    assert_eq!(c.limits.max_memory_mb, 1024);
    assert_eq!(c.limits.max_cpu_percentage, 90);
    assert_eq!(
        c.limits.max_connections, 100,
        "untouched keys keep defaults"
    );
    assert_eq!(c.connection_pools.database.max, 20);
    assert_eq!(
        c.connection_pools.database.url.as_deref(),
        Some("postgres://localhost/db")
    );
    assert_eq!(c.memory.warning_threshold_percent, 60);
    assert!(c.memory.enable_memory_profiling);
    assert_eq!(c.monitoring.sample_interval_ms, 500);
    assert!(c.auth.is_set());
    assert_eq!(
        c.auth.admin_token_sha256.as_deref(),
        Some(hash_token("admin-secret").as_str())
    );
    assert_eq!(
        c.auth.tenants["acme"].token_sha256,
        hash_token("acme-secret")
    );
    assert_eq!(c.policies.dir, "/srv/policies");
    assert_eq!(
        c.policies
            .bindings
            .get(&PolicyKind::Eviction)
            .map(String::as_str),
        Some("lru")
    );
    assert_eq!(c.policies.setting("lru", "algorithm"), Some("lru"));
    assert_eq!(
        c.policies.setting("lru", "capacity"),
        Some("100"),
        "numbers are kept as text"
    );
    assert_eq!(c.policies.deadline_ms_for("lru"), 20);
    assert_eq!(c.policies.deadline_ms_for("other"), 10);
    assert_eq!(c.policies.memory_cap_mb_for("lru"), 64);
    assert!(c.policies.policy.contains_key("my.policy"));
    assert_eq!(c.tenants["acme"].limit(ResourceKind::Memory), Some(1 << 30));
    assert_eq!(c.tenants["acme"].requests_per_minute, Some(600));
    assert_eq!(c.tenants["empty"], TenantQuota::default());

    let f = Source::File("rmhost.toml".into());
    assert_eq!(loaded.source("limits.max_memory_mb"), &f);
    assert_eq!(loaded.source("limits.max_connections"), &Source::Default);
    assert_eq!(loaded.source("policies.policy.lru.settings.algorithm"), &f);
    assert_eq!(loaded.source("policies.bindings.eviction"), &f);
    assert_eq!(loaded.source("tenants.acme.memory"), &f);
    assert_eq!(loaded.sources["tenants.acme.cpu"], Source::Default);
    assert_eq!(loaded.sources["tenants.empty.memory"], Source::Default);
    assert_eq!(loaded.sources["auth.tenants.acme.token_sha256"], f);
    assert!(
        loaded
            .sources
            .contains_key("policies.policy.\"my.policy\".deadline_ms")
    );
}

#[test]
fn env_overrides_file_and_cli_overrides_env() {
    let text = "[limits]\nmax_memory_mb = 1024\nmax_connections = 50\n\
                [connection_pools.redis]\nurl = \"redis://file\"\n";
    let env = env_of(&[
        ("MAX_MEMORY_MB", "4096"),
        ("REDIS_URL", "redis://env"),
        ("DATABASE_URL", "postgres://env/db"),
        ("ENABLE_LEAK_DETECTION", "no"),
        ("ENABLE_MEMORY_PROFILING", "YES"),
        ("METRICS_INTERVAL", "15000"),
        ("HEALTH_CHECK_INTERVAL", "5000"),
        ("DB_POOL_MIN", "3"),
        ("DB_POOL_MAX", "30"),
        ("DB_ACQUIRE_TIMEOUT", "1000"),
        ("DB_IDLE_TIMEOUT", "2000"),
        ("REDIS_POOL_MIN", "2"),
        ("REDIS_POOL_MAX", "4"),
        ("MAX_CPU_PERCENT", "50"),
        ("MAX_REQUESTS_PER_MINUTE", "7"),
        ("MEMORY_WARNING_THRESHOLD", "50"),
        ("MEMORY_CRITICAL_THRESHOLD", "95"),
        ("MAX_CONNECTIONS", ""), // empty counts as unset
    ]);
    let loaded = load_str(text, file(), &env, &[]).unwrap();
    let c = &loaded.config;
    assert_eq!(c.limits.max_memory_mb, 4096);
    assert_eq!(c.limits.max_connections, 50, "file value kept");
    assert_eq!(c.connection_pools.redis.url.as_deref(), Some("redis://env"));
    assert_eq!(
        c.connection_pools.database.url.as_deref(),
        Some("postgres://env/db")
    );
    assert!(!c.memory.enable_leak_detection);
    assert!(c.memory.enable_memory_profiling);
    assert_eq!(c.monitoring.metrics_interval_ms, 15_000);
    assert_eq!(c.monitoring.health_check_interval_ms, 5_000);
    let db = &c.connection_pools.database;
    assert_eq!(
        (db.min, db.max, db.acquire_timeout_ms, db.idle_timeout_ms),
        (3, 30, 1000, 2000)
    );
    assert_eq!(
        (c.connection_pools.redis.min, c.connection_pools.redis.max),
        (2, 4)
    );
    assert_eq!(c.limits.max_cpu_percentage, 50);
    assert_eq!(c.limits.max_requests_per_minute, 7);
    assert_eq!(
        (
            c.memory.warning_threshold_percent,
            c.memory.critical_threshold_percent
        ),
        (50, 95)
    );
    assert_eq!(
        loaded.source("limits.max_memory_mb"),
        &Source::Env("MAX_MEMORY_MB".into())
    );
    assert_eq!(
        loaded.source("limits.max_connections"),
        &Source::File("rmhost.toml".into())
    );
    // Every original-system variable maps to a known leaf.
    for (var, key) in ENV_VARS {
        let path = schema::split_dotted(key).unwrap();
        assert!(
            matches!(schema::lookup(&path), Lookup::Leaf(_)),
            "{var} -> {key}"
        );
        assert!(loaded.sources.contains_key(*key), "{key}");
    }

    let overrides = [
        Override::new("limits.max_memory_mb", "8192", "--set"),
        Override::new("listen", "0.0.0.0:9", "--listen"),
        Override::parse_set("tenants.acme.memory=100").unwrap(),
        Override::parse_set("policies.policy.lru.settings.k=v=w").unwrap(),
        Override::parse_set("policies.dir=/tmp/p").unwrap(),
    ];
    let loaded = load_str(text, file(), &env, &overrides).unwrap();
    let c = &loaded.config;
    assert_eq!(c.limits.max_memory_mb, 8192);
    assert_eq!(c.listen.to_string(), "0.0.0.0:9");
    assert_eq!(c.tenants["acme"].memory, Some(100));
    assert_eq!(c.policies.setting("lru", "k"), Some("v=w"));
    assert_eq!(c.policies.dir, "/tmp/p");
    assert_eq!(
        loaded.source("limits.max_memory_mb"),
        &Source::Cli("--set".into())
    );
    assert_eq!(loaded.source("listen"), &Source::Cli("--listen".into()));
    assert_eq!(
        loaded.source("tenants.acme.memory"),
        &Source::Cli("--set".into())
    );
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rmhost.toml");
    std::fs::write(&path, "[limits]\nmax_memory_mb = 512\n").unwrap();
    let loaded = load(Some(&path), &no_env, &[]).unwrap();
    assert_eq!(loaded.config.limits.max_memory_mb, 512);
    assert_eq!(
        loaded.source("limits.max_memory_mb"),
        &Source::File(path.clone())
    );
    let json = render(&loaded, Format::Json);
    assert!(json.contains(&format!("\"file:{}\"", path.display())));
}

#[test]
fn every_leaf_has_a_source_and_matches_the_key_table() {
    let loaded = load_str(&full_text(), file(), &no_env, &[]).unwrap();
    for key in loaded.sources.keys() {
        let path = schema::split_dotted(key).unwrap();
        assert!(
            matches!(schema::lookup(&path), Lookup::Leaf(_)),
            "{key} not in the key table"
        );
    }
    // And every pattern of the table is reachable from a full config.
    for (pattern, _) in KEYS {
        let hit = loaded.sources.keys().any(|k| {
            let path = schema::split_dotted(k).unwrap();
            let pat: Vec<&str> = pattern.split('.').collect();
            pat.len() == path.len()
                && path
                    .iter()
                    .zip(&pat)
                    .all(|(s, p)| *p == schema::WILD || p == s)
        });
        let binding_unset =
            pattern.starts_with("policies.bindings.") && *pattern != "policies.bindings.eviction";
        assert!(hit || binding_unset, "{pattern} has no leaf in Config");
    }
}

#[test]
fn toml_round_trip() {
    let env = env_of(&[("MAX_MEMORY_MB", "1234"), ("REDIS_URL", "redis://x:6379/0")]);
    let overrides = [Override::new("policies.bindings.quota", "fair", "--set")];
    let loaded = load_str(&full_text(), file(), &env, &overrides).unwrap();
    let text = render(&loaded, Format::Toml);
    assert!(text.contains("max_memory_mb = 1234"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("max_memory_mb = 1234"))
        .unwrap();
    assert!(line.ends_with("# env MAX_MEMORY_MB"), "{line}");
    assert!(text.contains("# cli --set"));
    assert!(text.contains("# cpu = (unset)"));
    assert!(text.contains("[policies.policy.\"my.policy\"]"));
    let again = load_str(&text, Path::new("printed.toml"), &no_env, &[]).unwrap();
    assert_eq!(again.config, loaded.config, "{text}");

    // serde alone reads the printed file too.
    let direct: Config = toml::from_str(&text).unwrap();
    assert_eq!(direct, loaded.config);

    let defaults = render(&Loaded::defaults(), Format::Toml);
    let back = load_str(&defaults, file(), &no_env, &[]).unwrap();
    assert_eq!(back.config, Config::default());
}

#[test]
fn json_render_shape() {
    let env = env_of(&[("MAX_MEMORY_MB", "1234")]);
    let loaded = load_str(&full_text(), file(), &env, &[]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&render(&loaded, Format::Json)).unwrap();
    assert_eq!(json["config"]["limits"]["max_memory_mb"], 1234);
    assert_eq!(json["sources"]["limits.max_memory_mb"], "env:MAX_MEMORY_MB");
    assert_eq!(json["sources"]["limits.max_connections"], "default");
    assert_eq!(json["sources"]["listen"], "file:rmhost.toml");
    assert_eq!(json["config"]["listen"], "0.0.0.0:8080");
    assert_eq!(
        json["config"]["connection_pools"]["redis"]["url"],
        serde_json::Value::Null
    );
    let back: Config = serde_json::from_value(json["config"].clone()).unwrap();
    assert_eq!(back, loaded.config);
    assert_eq!("json".parse::<Format>(), Ok(Format::Json));
    assert!("yaml".parse::<Format>().is_err());
}

#[test]
fn hash_token_is_hex_sha256() {
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(validate::is_sha256_hex(&hash_token("")));
}

#[test]
fn dotted_keys_split_and_quote() {
    let p = schema::split_dotted("tenants.\"a.b\".memory").unwrap();
    assert_eq!(p, ["tenants", "a.b", "memory"]);
    assert_eq!(schema::dotted(&p), "tenants.\"a.b\".memory");
    assert_eq!(schema::split_dotted("a..b"), None);
    assert_eq!(schema::split_dotted(""), None);
    assert_eq!(schema::split_dotted("a.\"b"), None);
    assert_eq!(schema::split_dotted("a.\"b\"c"), None);
}

#[test]
fn grpc_is_off_by_default_and_set_from_file_env_or_cli() {
    let c = Config::default();
    assert_eq!(c.grpc.listen, None);
    assert_eq!(c.grpc.tenant_key, "tenant");
    assert_eq!(c.grpc.max_connections, 512, "as many as [http]");
    assert_eq!(c.grpc.max_concurrent_streams, 128);
    let printed = render(&Loaded::defaults(), Format::Toml);
    assert!(printed.contains("[grpc]"), "{printed}");
    assert!(printed.contains("# listen = (unset)"), "{printed}");

    let text = "[grpc]\nlisten = \"127.0.0.1:8081\"\ntenant_key = \"org\"\ndomain = \"edge\"\n";
    let loaded = load_str(text, file(), &no_env, &[]).unwrap();
    assert_eq!(
        loaded.config.grpc.listen,
        Some("127.0.0.1:8081".parse().unwrap())
    );
    assert_eq!(loaded.config.grpc.tenant_key, "org");
    assert_eq!(loaded.config.grpc.domain.as_deref(), Some("edge"));

    let env = env_of(&[("RMHOST_GRPC_LISTEN", "127.0.0.1:9001")]);
    let loaded = load_str(text, file(), &env, &[]).unwrap();
    assert_eq!(
        loaded.config.grpc.listen,
        Some("127.0.0.1:9001".parse().unwrap())
    );
    assert_eq!(
        loaded.source("grpc.listen"),
        &Source::Env("RMHOST_GRPC_LISTEN".into())
    );
    let set = [Override::parse_set("grpc.listen=127.0.0.1:9002").unwrap()];
    let loaded = load_str(text, file(), &env, &set).unwrap();
    assert_eq!(
        loaded.config.grpc.listen,
        Some("127.0.0.1:9002".parse().unwrap())
    );
    let printed = render(&loaded, Format::Toml);
    let line = printed
        .lines()
        .find(|l| l.starts_with("listen = \"127.0.0.1:9002\""))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(line.ends_with("# cli --set"), "{line}");

    let bad = load_str("[grpc]\ntenant_key = \"\"\n", file(), &no_env, &[]).unwrap_err();
    assert!(bad.to_string().contains("grpc.tenant_key"), "{bad}");
    let bad = load_str("[grpc]\nlisten = \"nope\"\n", file(), &no_env, &[]).unwrap_err();
    assert!(bad.to_string().contains("grpc.listen"), "{bad}");
    let same = "listen = \"127.0.0.1:7070\"\n[grpc]\nlisten = \"127.0.0.1:7070\"\n";
    let bad = load_str(same, file(), &no_env, &[]).unwrap_err();
    assert!(bad.to_string().contains("grpc.listen"), "{bad}");
}
