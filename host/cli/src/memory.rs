//! Memory verbs: `sim` (offline), and the daemon clients `gc`, `snapshot`, `leaks`,
//! `profile`.

use super::report::{human_bytes, table};
use super::{Client, ClientArgs, EXIT_USAGE};
use clap::Args;
use rmhost_core::memory::{CacheSize, PolicyFactory, SimResult, Trace, TraceFormat, run_sweep};
use rmhost_server::wire::{GcReport, LeakList, MemorySnapshot};
use serde_json::Value;
use std::path::PathBuf;

use super::client::report_error as fail;

/// Flags of `rmhost sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// A trace file.
    #[arg(
        long,
        conflicts_with = "synthetic",
        required_unless_present = "synthetic"
    )]
    pub trace: Option<PathBuf>,
    /// The trace file's format: plain (one id per line), csv (id,size[,time]) or
    /// oracle-general (libCacheSim's binary format).
    #[arg(long, default_value = "plain")]
    pub format: String,
    /// A synthetic trace, e.g. zipf:alpha=1.0,objects=100000,requests=1000000,seed=42.
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Cache sizes, comma-separated: bytes (objects for plain traces, where every size is
    /// one) or percentages of the trace's footprint, e.g. `1%,5%,10%`. Several sizes make
    /// a sweep: every policy at every size.
    #[arg(long, value_delimiter = ',', required = true)]
    pub cache_size: Vec<CacheSize>,
    /// Replays to run at once (default: the machine's cores). Each (size, policy) pair is
    /// one replay with its own policy instance, so the results do not depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// A Wasm eviction policy to replay (repeatable).
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Native policies, comma-separated (lru, fifo, sieve, s3fifo, ...).
    #[arg(long, value_delimiter = ',')]
    pub builtin: Vec<String>,
    /// Also run Belady's OPT, the bound.
    #[arg(long)]
    pub belady: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Loads a Wasm eviction policy for `sim` and answers a factory of instances of it (one
/// per replay); the binary supplies the runtime-backed loader.
pub type WasmLoader<'a> = &'a dyn Fn(&std::path::Path) -> anyhow::Result<PolicyFactory>;

/// `rmhost sim`.
pub fn run_sim_cmd(args: &SimArgs, load_wasm: WasmLoader<'_>) -> anyhow::Result<i32> {
    let trace = match (&args.trace, &args.synthetic) {
        (_, Some(spec)) => Trace::synthetic(spec),
        (Some(path), None) => match args.format.parse::<TraceFormat>() {
            Ok(f) => Trace::read(path, f),
            Err(e) => {
                eprintln!("rmhost: --format: {e}");
                return Ok(EXIT_USAGE);
            }
        },
        (None, None) => unreachable_usage(),
    };
    let trace = match trace {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rmhost: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let footprint = trace.footprint();
    let mut sizes: Vec<u64> = Vec::new();
    for s in &args.cache_size {
        let b = s.resolve(footprint);
        if !sizes.contains(&b) {
            sizes.push(b);
        }
    }
    if args.jobs == Some(0) {
        eprintln!("rmhost: --jobs must be at least 1");
        return Ok(EXIT_USAGE);
    }
    let mut policies: Vec<(String, PolicyFactory)> = Vec::new();
    for name in &args.builtin {
        match rmhost_core::policy::builtin_eviction(name) {
            Some(_) => {
                let n = name.clone();
                let make: PolicyFactory = Box::new(move || {
                    // Checked above: the name is known.
                    rmhost_core::policy::builtin_eviction(&n)
                        .unwrap_or_else(|| Box::new(rmhost_core::policy::NativeLru::new()))
                });
                policies.push((format!("builtin:{name}"), make));
            }
            None => {
                eprintln!(
                    "rmhost: --builtin: unknown policy {name:?} (known: {})",
                    rmhost_core::policy::BUILTIN_EVICTION.join(", ")
                );
                return Ok(EXIT_USAGE);
            }
        }
    }
    for path in &args.policies {
        match load_wasm(path) {
            Ok(p) => {
                let label = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                policies.push((label, p));
            }
            Err(e) => {
                eprintln!("rmhost: --policy {}: {e}", path.display());
                return Ok(EXIT_USAGE);
            }
        }
    }
    if policies.is_empty() && !args.belady {
        eprintln!("rmhost: nothing to simulate: give --builtin, --policy or --belady");
        return Ok(EXIT_USAGE);
    }
    let spinner = sim_spinner(&policies, args.belady);
    let threads = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let results = run_sweep(&trace, &sizes, &policies, args.belady, threads);
    spinner.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", sim_table(&results));
        for line in twin_ratios(&results) {
            println!("{line}");
        }
    }
    Ok(0)
}

/// For each Wasm policy with a builtin twin of the same name replayed at the same size
/// (`lru.wasm` and `builtin:lru`): the twin's time per request over the Wasm one's (1.0x:
/// as fast as native) and whether their misses agree.
pub fn twin_ratios(results: &[SimResult]) -> Vec<String> {
    let mut out = Vec::new();
    for w in results.iter().filter(|r| r.policy.ends_with(".wasm")) {
        let stem = w.policy.trim_end_matches(".wasm");
        let Some(n) = results
            .iter()
            .find(|r| r.cache_size == w.cache_size && r.policy == format!("builtin:{stem}"))
        else {
            continue;
        };
        let speed = if w.ns_per_request > 0.0 {
            n.ns_per_request / w.ns_per_request
        } else {
            0.0
        };
        out.push(format!(
            "{} at size {}: {:.2}x the speed of {} ({:.1} vs {:.1} ns/request); misses {}",
            w.policy,
            w.cache_size,
            speed,
            n.policy,
            w.ns_per_request,
            n.ns_per_request,
            if w.misses == n.misses {
                format!("equal ({})", w.misses)
            } else {
                format!("DIFFER ({} vs {})", w.misses, n.misses)
            }
        ));
    }
    out
}

/// A spinner on stderr while the replay runs (indicatif ticks it from its own thread);
/// hidden when stderr is not a terminal, so pipes and scripts see only the results.
fn sim_spinner(policies: &[(String, PolicyFactory)], belady: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    let mut names: Vec<&str> = policies.iter().map(|(n, _)| n.as_str()).collect();
    if belady {
        names.push("belady");
    }
    bar.set_message(format!("replaying the trace through {}", names.join(", ")));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

fn unreachable_usage() -> Result<Trace, rmhost_core::memory::TraceError> {
    // clap's `required_unless_present` makes this impossible; keep a clear message anyway.
    Err(rmhost_core::memory::TraceError::Format(
        "give --trace FILE or --synthetic SPEC".into(),
    ))
}

/// `rmhost sim` with Wasm policies loaded by a local runtime (no daemon involved). The
/// runtime lives until every replay is done: its adapters need its epoch ticker.
pub fn sim_with_runtime(args: &SimArgs) -> anyhow::Result<i32> {
    let runtime = if args.policies.is_empty() {
        None
    } else {
        // Offline, a missed deadline would only perturb the result (the call falls back
        // and the instance is rebuilt): give guests a generous one.
        let opts = rmhost_runtime::RuntimeOptions {
            deadline: std::time::Duration::from_secs(2),
            ..Default::default()
        };
        match rmhost_runtime::PolicyRuntime::new(opts, rmhost_core::events::EventBus::new()) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("rmhost: {e}");
                return Ok(1);
            }
        }
    };
    let load = |path: &std::path::Path| -> anyhow::Result<PolicyFactory> {
        let runtime = runtime
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no policy runtime"))?;
        let info = runtime.load_file(path)?;
        if !info
            .kinds
            .contains(&rmhost_core::policy::PolicyKind::Eviction)
        {
            anyhow::bail!("does not export the eviction interface");
        }
        let (rt, name) = (runtime.clone(), info.name);
        Ok(Box::new(move || rt.eviction_policy("sim", Some(&name))))
    };
    run_sim_cmd(args, &load)
}

/// The human table of `sim`.
pub fn sim_table(results: &[SimResult]) -> String {
    let mut rows = vec![vec![
        "POLICY".to_string(),
        "CACHE SIZE".into(),
        "REQUESTS".into(),
        "MISSES".into(),
        "MISS RATIO".into(),
        "BYTE MISS RATIO".into(),
        "NS/REQ".into(),
    ]];
    for r in results {
        rows.push(vec![
            r.policy.clone(),
            r.cache_size.to_string(),
            r.requests.to_string(),
            r.misses.to_string(),
            format!("{:.4}", r.miss_ratio),
            format!("{:.4}", r.byte_miss_ratio),
            format!("{:.1}", r.ns_per_request),
        ]);
    }
    table(&rows)
}

/// `rmhost gc`.
pub async fn gc(args: &ClientArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let r: GcReport = match client.post("/v1/gc", &Value::Null).await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "rss {} -> {} ({} freed from caches; allocator {})",
            human_bytes(r.rss_before),
            human_bytes(r.rss_after),
            human_bytes(r.cache_bytes_freed),
            if r.allocator_released {
                "released memory"
            } else {
                "released nothing"
            }
        );
    }
    Ok(0)
}

/// `rmhost snapshot [-o FILE]`.
pub async fn snapshot(args: &ClientArgs, out: Option<&std::path::Path>) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let r: MemorySnapshot = match client.get("/v1/snapshot").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    let text = serde_json::to_string_pretty(&r)?;
    match out {
        Some(path) => {
            std::fs::write(path, text + "\n")?;
            eprintln!("rmhost: snapshot written to {}", path.display());
        }
        None => println!("{text}"),
    }
    Ok(0)
}

/// `rmhost leaks`.
pub async fn leaks(args: &ClientArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let r: LeakList = match client.get("/v1/leaks?scan=true").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(0);
    }
    if r.leaks.is_empty() {
        println!("no leaks suspected");
        return Ok(0);
    }
    let mut rows = vec![vec![
        "KIND".to_string(),
        "SUBJECT".into(),
        "GROWTH/MIN".into(),
        "CONFIDENCE".into(),
        "DETAIL".into(),
    ]];
    for l in r.leaks {
        rows.push(vec![
            l.kind,
            l.subject,
            human_bytes(l.bytes_per_minute.max(0.0) as u64),
            format!("{:.2}", l.confidence),
            l.message,
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}
