//! rmhost as a library in a tokio service: the host built from a config in code, the Wasm
//! LRU deciding for a typed `Cache<String, Bytes>`, allocations under a tenant quota, and
//! the host's events printed as they happen. No HTTP server, no CLI.
//!
//! cargo run -p rmhost-runtime --example embed   (after `policies/build`)

use bytes::Bytes;
use rmhost_core::config::{Config, TenantQuota};
use rmhost_core::host::Host;
use rmhost_core::memory::{Cache, CacheConfig};
use rmhost_core::policy::ResourceKind;
use rmhost_core::resources::AllocationRequest;
use rmhost_runtime::{PolicyRuntime, RuntimeOptions};
use std::path::Path;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    let acme = TenantQuota {
        memory: Some(64 << 20),
        ..TenantQuota::default()
    };
    config.tenants.insert("acme".into(), acme);

    // The runtime and the host share one event bus; the runtime decides for the host.
    let events = rmhost_core::events::EventBus::new();
    let runtime = PolicyRuntime::new(RuntimeOptions::default(), events.clone())?;
    let host = Host::builder(config)
        .events(events.clone())
        .policies(Arc::new(runtime.clone()))
        .build()?;
    let mut feed = events.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(e) = feed.recv().await {
            println!(
                "event #{} {}",
                e.seq,
                serde_json::to_string(&e.event).unwrap_or_default()
            );
        }
    });
    let background = host.spawn_background();

    // The Wasm LRU, built from policies/lru, decides what the cache evicts.
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/lru.wasm");
    let lru = runtime
        .load_file(&wasm)
        .map_err(|e| format!("{e} (run policies/build first)"))?;
    let policy = host.eviction_policy("acme", Some(&lru.name))?;
    let cache = Arc::new(Cache::<String, Bytes>::new(
        CacheConfig::new(64 << 10),
        policy,
    ));
    host.caches.attach("sessions", "acme", cache.clone())?; // pressure, gc and stats see it
    for i in 0..2_000u32 {
        // Three reads in four go to 60 hot users, the rest sweep 900 cold ones.
        let key = format!("user:{}", if i % 4 == 0 { i % 900 } else { i % 60 });
        let size = 256 + (i % 7) as u64 * 64;
        cache.get_or_insert_with(key, || (Bytes::from(vec![b'x'; size as usize]), size));
    }
    let s = cache.stats();
    println!(
        "cache: {} entries, {} of {} bytes, hit ratio {:.3}, {} evictions by {}",
        s.entries, s.bytes, s.capacity_bytes, s.hit_ratio, s.evictions, s.policy
    );

    // Allocations count against acme's 64 MiB memory quota; the third one does not fit.
    let ask = |mb: u64| AllocationRequest {
        tenant: "acme".into(),
        kind: ResourceKind::Memory,
        amount: mb << 20,
        owner: "embed".into(),
        priority: 5,
        ttl_ms: None,
        pid: None,
    };
    for mb in [24, 24, 24] {
        match host.resources.allocate(ask(mb)) {
            Ok(a) => println!("granted allocation {} of {mb} MiB", a.id),
            Err(e) => println!("refused {mb} MiB: {e}"),
        }
    }
    let usage = host.resources.tenant_usage("acme")?;
    let memory = usage
        .kinds
        .iter()
        .find(|k| k.kind == ResourceKind::Memory)
        .map_or(0, |k| k.used);
    println!("acme uses {memory} bytes of memory");

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    background.iter().for_each(|t| t.abort());
    printer.abort();
    Ok(())
}
