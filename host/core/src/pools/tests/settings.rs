//! Settings (no server): TOML shape and defaults, unknown keys rejected, validation
//! messages that name the key and the value, and the original system's `main` pools.

use crate::events::EventBus;
use crate::pools::{PoolManager, PoolsSettings, RecycleCheck, redact};

fn parse(toml_text: &str) -> Result<PoolsSettings, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

#[test]
fn a_full_table_parses_with_defaults_for_the_rest() {
    let s = parse(
        r#"
        [postgres.main]
        url = "postgres://app@db/app"
        max = 20
        recycle_check = "fast"
        retry = { attempts = 5, base_ms = 10, max_ms = 100 }
        [redis.cache]
        url = "redis://127.0.0.1:6379"
        "#,
    )
    .unwrap();
    s.validate().unwrap();
    let pg = &s.postgres["main"];
    assert_eq!((pg.min, pg.max, pg.acquire_timeout_ms), (2, 20, 30_000));
    assert_eq!(pg.recycle_check, RecycleCheck::Fast);
    assert_eq!(pg.retry.attempts, 5);
    assert_eq!(s.redis["cache"].max, 10);
    // Not a key of its own: the host sets it from `monitoring.health_check_interval_ms`.
    assert_eq!(s.health_check_interval_ms, 10_000);
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = parse("[postgres.main]\nurl = \"postgres://x@y/z\"\nmax_size = 3\n").unwrap_err();
    assert!(err.contains("max_size"), "{err}");
    let err = parse("[redis.c]\nurl = \"redis://x\"\nretry = { tries = 3 }\n").unwrap_err();
    assert!(err.contains("tries"), "{err}");
}

#[test]
fn validation_names_the_key_and_the_value() {
    let cases = [
        (
            "[postgres.main]\nurl = \"postgres://x@y/z\"\nmin = 5\nmax = 2\n",
            "pools.postgres.main.min = 5: is above pools.postgres.main.max = 2",
        ),
        (
            "[redis.c]\nurl = \"redis://x\"\nmax = 0\n",
            "pools.redis.c.max = 0: must be at least 1",
        ),
        (
            "[postgres.main]\n",
            "pools.postgres.main.url = \"\": is required",
        ),
        (
            "[redis.c]\nurl = \"ftp://nope\"\n",
            "pools.redis.c.url = \"ftp://nope\": is not a Redis URL",
        ),
        (
            "[postgres.p]\nurl = \"postgres://x@y/z\"\nretry = { base_ms = 10, max_ms = 5 }\n",
            "pools.postgres.p.retry.base_ms = 10: is above pools.postgres.p.retry.max_ms = 5",
        ),
        (
            "[postgres.\"bad name\"]\nurl = \"postgres://x@y/z\"\n",
            "pools.postgres.bad name = \"bad name\"",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text).unwrap().validate().unwrap_err().to_string();
        assert!(err.starts_with(want), "{err:?} should start with {want:?}");
    }
}

#[test]
fn database_and_redis_urls_define_the_main_pools_and_win_over_the_file() {
    let mut s =
        parse("[postgres.main]\nurl = \"postgres://file@y/z\"\nmax_lifetime_ms = 7\n").unwrap();
    s.apply_main_postgres("postgres://env@y/z", 3, 30, 1_000, 2_000);
    s.apply_main_redis("redis://env", 1, 4, 500);
    let pg = &s.postgres["main"];
    assert_eq!(pg.url, "postgres://env@y/z");
    assert_eq!(
        (pg.min, pg.max, pg.acquire_timeout_ms, pg.idle_timeout_ms),
        (3, 30, 1_000, 2_000)
    );
    assert_eq!(
        pg.max_lifetime_ms, 7,
        "fields the original system lacks keep the file's value"
    );
    assert_eq!(s.redis["main"].max, 4);
    s.validate().unwrap();
    // Building needs no server: pools connect lazily.
    let pools = PoolManager::new(&s, EventBus::new()).unwrap();
    assert_eq!(pools.names(), ["postgres/main", "redis/main"]);
    let err = pools.redis("cache").unwrap_err().to_string();
    assert!(
        err.contains("no redis pool named \"cache\" (configured: main)"),
        "{err}"
    );
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact("redis://h:6379"), "redis://h:6379");
}
