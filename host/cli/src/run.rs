//! `rmhost run`: load the config, build the host, serve until SIGTERM/SIGINT.

use super::{ConfigArgs, EXIT_USAGE};
use clap::Args;
use rmhost_core::config::Override;
use rmhost_server::daemon::{self, Daemon};
use std::path::PathBuf;

/// Flags of `rmhost run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where the config comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Listen address (overrides `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Bind this policy as the default for every kind it exports (repeatable).
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Load and watch every *.wasm in this directory (overrides `policies.dir`).
    #[arg(long)]
    pub policies_dir: Option<PathBuf>,
}

/// Runs the daemon; returns the exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut overrides = Vec::new();
    if let Some(l) = &args.listen {
        overrides.push(Override::new("listen", l, "--listen"));
    }
    if let Some(d) = &args.policies_dir {
        overrides.push(Override::new(
            "policies.dir",
            d.display().to_string(),
            "--policies-dir",
        ));
    }
    let loaded = match super::config_cmd::load(&args.config, overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rmhost: config error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let config = loaded.config;
    let addr = config.listen;
    if let Err(e) = daemon::check_listen(&config, addr) {
        eprintln!("rmhost: {e}");
        return Ok(EXIT_USAGE);
    }
    let daemon = match Daemon::new(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rmhost: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    if let Err(e) = daemon
        .load_policy_files(&args.policies)
        .and_then(|()| daemon.apply_config_bindings())
    {
        eprintln!("rmhost: {e}");
        return Ok(EXIT_USAGE);
    }
    let dir = PathBuf::from(&daemon.host.config.policies.dir);
    if !dir.is_dir() && args.policies_dir.is_some() {
        eprintln!("rmhost: --policies-dir {}: not a directory", dir.display());
        return Ok(EXIT_USAGE);
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rmhost: cannot listen on {addr}: {e}");
            return Ok(1);
        }
    };
    // The directory is loaded in the background so the API answers at once (compiling a
    // Python policy the first time takes seconds); each load is a PolicyLoaded event.
    // The shared ledger's bindings and caches are applied once the policies they name are
    // loaded.
    let watcher = if dir.is_dir() {
        let d = daemon.clone();
        Some(tokio::task::spawn_blocking(move || {
            let watch = d.watch_policies(&dir);
            d.restore_catalog();
            watch
        }))
    } else {
        tracing::info!(dir = %dir.display(), "no policies directory; not watching");
        let d = daemon.clone();
        tokio::task::spawn_blocking(move || d.restore_catalog());
        None
    };
    daemon::serve(daemon, listener, daemon::shutdown_signal()).await?;
    if let Some(w) = watcher {
        // Dropping the handle stops the watcher.
        match w.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "policy directory watch failed"),
            Err(e) => tracing::warn!(error = %e, "policy directory watch task failed"),
            Ok(Ok(_handle)) => {}
        }
    }
    Ok(0)
}
