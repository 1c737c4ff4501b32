//! `rmhost policy list | check | set | unset | reload`. `check` runs offline (it builds its
//! own runtime); the others are clients of a running daemon.

use super::report::table;
use super::{Client, ClientArgs, ConfigArgs, EXIT_USAGE};
use clap::Subcommand;
use rmhost_runtime::PolicyRuntime;
use rmhost_server::wire::{BindingAnswer, PolicyList, ReloadAction, ReloadAnswer};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Policy verbs.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Loaded policies with their kinds, bindings, calls, faults and call times.
    List(ClientArgs),
    /// Validate a policy file: kinds, size, compile and instantiate time, a smoke call
    /// (exit 0 when it would load, 1 when not, with the reason).
    Check {
        /// The component.
        file: PathBuf,
        /// Also run the kind's contract on random sequences (eviction: live victims, enough
        /// bytes freed, no trap; LRU-declared policies must match the native LRU).
        #[arg(long)]
        conformance: bool,
        /// Treat the policy as an LRU (compare victims with the native LRU) even without
        /// `algorithm = "lru"` in its settings.
        #[arg(long)]
        lru: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Config (for the policy's settings).
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Bind a policy for a tenant (or, without --tenant, as the default) for one kind.
    Set {
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
        /// The tenant; omit for the default binding.
        #[arg(long)]
        tenant: Option<String>,
        /// eviction, quota, priority or pressure.
        #[arg(long)]
        kind: String,
        /// The loaded policy's name.
        name: String,
    },
    /// Remove a binding (the tenant falls back to the default; the default to native).
    Unset {
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
        /// The tenant; omit for the default binding.
        #[arg(long)]
        tenant: Option<String>,
        /// eviction, quota, priority or pressure.
        #[arg(long)]
        kind: String,
    },
    /// Re-read the daemon's policies directory now.
    Reload(ClientArgs),
}

use super::client::report_error as fail;

/// Runs a policy verb.
pub async fn run(cmd: PolicyCommand) -> anyhow::Result<i32> {
    match cmd {
        PolicyCommand::List(c) => list(&c).await,
        PolicyCommand::Check {
            file,
            conformance,
            lru,
            json,
            config,
        } => {
            tokio::task::spawn_blocking(move || check(&file, conformance, lru, json, &config))
                .await?
        }
        PolicyCommand::Set {
            client,
            tenant,
            kind,
            name,
        } => {
            let path = binding_path(tenant.as_deref(), &kind);
            let c = Client::new(&client.addr, client.token.clone());
            match c
                .put::<BindingAnswer>(&path, &json!({"policy": name}))
                .await
            {
                Ok(v) => {
                    print_or_json(&client, &v, || {
                        format!("{kind} for {}: {name}", who(&tenant))
                    });
                    Ok(0)
                }
                Err(e) => Ok(fail(e)),
            }
        }
        PolicyCommand::Unset {
            client,
            tenant,
            kind,
        } => {
            let path = binding_path(tenant.as_deref(), &kind);
            let c = Client::new(&client.addr, client.token.clone());
            match c.delete::<BindingAnswer>(&path).await {
                Ok(v) => {
                    print_or_json(&client, &v, || {
                        format!("{kind} for {}: unbound", who(&tenant))
                    });
                    Ok(0)
                }
                Err(e) => Ok(fail(e)),
            }
        }
        PolicyCommand::Reload(client) => {
            let c = Client::new(&client.addr, client.token.clone());
            match c
                .post::<ReloadAnswer>("/v1/policies/reload", &Value::Null)
                .await
            {
                Ok(v) => {
                    let failed = v.outcomes.iter().any(|o| o.action == ReloadAction::Failed);
                    print_or_json(&client, &v, || {
                        v.outcomes
                            .iter()
                            .map(|o| {
                                format!(
                                    "{:<20} {}{}",
                                    o.name,
                                    o.action.as_str(),
                                    o.error
                                        .as_deref()
                                        .map(|e| format!(": {e}"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                    Ok(if failed { 1 } else { 0 })
                }
                Err(e) => Ok(fail(e)),
            }
        }
    }
}

fn who(tenant: &Option<String>) -> String {
    tenant
        .clone()
        .map_or_else(|| "the default".to_string(), |t| format!("tenant {t}"))
}

fn binding_path(tenant: Option<&str>, kind: &str) -> String {
    match tenant {
        Some(t) => format!("/v1/tenants/{t}/policies/{kind}"),
        None => format!("/v1/policies/default/{kind}"),
    }
}

fn print_or_json(c: &ClientArgs, v: &impl serde::Serialize, human: impl FnOnce() -> String) {
    if c.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", human());
    }
}

async fn list(c: &ClientArgs) -> anyhow::Result<i32> {
    let client = Client::new(&c.addr, c.token.clone());
    let v: PolicyList = match client.get("/v1/policies").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if c.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut rows = vec![
        [
            "NAME", "KINDS", "HASH", "CALLS", "FAULTS", "MEAN", "P99", "MEMORY", "STATE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in &v.policies {
        let kinds: Vec<&str> = p.kinds.iter().map(|k| k.as_str()).collect();
        rows.push(vec![
            p.name.clone(),
            kinds.join(","),
            p.hash.chars().take(12).collect(),
            p.calls.to_string(),
            p.faults.to_string(),
            format!("{:.1} µs", p.mean_ns as f64 / 1000.0),
            format!("{:.1} µs", p.p99_ns as f64 / 1000.0),
            super::report::human_bytes(p.memory_bytes),
            if p.quarantined {
                "quarantined".into()
            } else {
                "ok".into()
            },
        ]);
    }
    print!("{}", table(&rows));
    println!("\nBindings");
    if v.bindings.is_empty() {
        println!("(none: every kind uses the native default)");
    } else {
        let mut rows = vec![vec!["TENANT".to_string(), "KIND".into(), "POLICY".into()]];
        for b in v.bindings {
            rows.push(vec![
                b.tenant.unwrap_or_else(|| "(default)".into()),
                b.kind.as_str().into(),
                b.policy,
            ]);
        }
        print!("{}", table(&rows));
    }
    Ok(0)
}

fn check(
    file: &std::path::Path,
    conformance: bool,
    lru: bool,
    json_out: bool,
    config: &ConfigArgs,
) -> anyhow::Result<i32> {
    let loaded = match super::config_cmd::load(config, Vec::new()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rmhost: config error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let opts = rmhost_server::daemon::runtime_options(&loaded.config);
    let rt = match PolicyRuntime::new(opts, rmhost_core::events::EventBus::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rmhost: {e}");
            return Ok(1);
        }
    };
    let report = match rt.check_file_with(file, conformance, lru) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rmhost: {}: {e}", file.display());
            return Ok(1);
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let kinds: Vec<&str> = report.kinds.iter().map(|k| k.as_str()).collect();
        println!(
            "{}: {}",
            report.path.display(),
            if report.ok { "OK" } else { "REJECTED" }
        );
        if let Some(e) = &report.error {
            println!("  reason:      {e}");
        }
        println!(
            "  kinds:       {}",
            if kinds.is_empty() {
                "(none)".into()
            } else {
                kinds.join(", ")
            }
        );
        println!(
            "  size:        {} bytes (sha256 {})",
            report.size_bytes,
            &report.hash.chars().take(16).collect::<String>()
        );
        println!(
            "  wasi:        {}",
            if report.wasi {
                "imports WASI (granted nothing)"
            } else {
                "none"
            }
        );
        println!(
            "  compile:     {:.1} ms{}",
            report.compile_ms,
            if report.from_cache {
                " (artifact cache)"
            } else {
                ""
            }
        );
        println!("  instantiate: {:.1} µs", report.instantiate_us);
        println!("  smoke call:  {}", report.smoke);
        for t in &report.timing {
            println!(
                "  {:<12} p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} calls (deadline {} ms){}",
                format!("{}:", t.kind),
                t.p50_us,
                t.p99_us,
                t.max_us,
                t.calls,
                t.deadline_ms,
                t.problem().map(|p| format!(" — {p}")).unwrap_or_default()
            );
        }
        if let Some(c) = &report.conformance {
            println!(
                "  conformance: {} ({} ops, {} victim requests{})",
                if c.passed { "passed" } else { "FAILED" },
                c.ops,
                c.victim_requests,
                if c.compared_with_lru {
                    ", victims compared with the native LRU"
                } else {
                    ""
                }
            );
            println!(
                "    observe: p50 {:.1} µs, p99 {:.1} µs with {} live entries (deadline {} µs)",
                c.p50_us, c.p99_us, c.live_entries, c.deadline_us
            );
            if let Some(d) = &c.first_divergence {
                println!("    first divergence: {d}");
            }
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}
