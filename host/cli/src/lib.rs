//! The command line: `rmhost run` (the daemon) and the verbs that are clients of a running
//! daemon (`report`, `health`, ...), plus `config print`. Exit codes scripts can rely on:
//! 0 success, 1 failure (or degraded for `health`), 2 bad usage or config (or unhealthy
//! for `health`), 3 daemon unreachable.
//!
//! # Map
//! | module | owns |
//! |---|---|
//! | `run` | `rmhost run`: the daemon (`rmhost_server::daemon`) |
//! | `config_cmd` | `rmhost config print / hash-token / gen-token`, loading the config for every verb |
//! | `shell` | `rmhost completions SHELL` and `rmhost man` (clap_complete, clap_mangen) |
//! | `client` | the HTTP client of the daemon's API, its errors and exit codes |
//! | `report`, `policy`, `memory`, `profile` | the client verbs (and offline `sim`) |
//! | `monitor` | the `rmhost monitor` TUI (ratatui) |
//! | `otel` | the daemon's optional OTLP traces: `OTEL_*` variables, the exporter layer, the flush at exit |

mod client;
mod config_cmd;
mod memory;
mod monitor;
pub mod otel;
mod policy;
mod profile;
mod report;
mod run;
mod shell;

pub use client::{Client, ClientError};

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit code: the daemon could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit code: bad usage or config.
pub const EXIT_USAGE: i32 = 2;

/// rmhost: resource management with pluggable, sandboxed WebAssembly policies.
#[derive(Debug, Parser)]
#[command(name = "rmhost", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RMHOST_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The config file (default: ./rmhost.toml when it exists).
    #[arg(long, short = 'c', env = "RMHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override any config key, e.g. `--set limits.max_memory_mb=4096` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// How to reach a running daemon.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The daemon's address.
    #[arg(long, default_value = "127.0.0.1:7070", env = "RMHOST_ADDR")]
    pub addr: String,
    /// Bearer token when the daemon has auth enabled.
    #[arg(long, env = "RMHOST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (embedded defaults; no Postgres or Redis needed unless configured).
    Run(run::RunArgs),
    /// Inspect the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: config_cmd::ConfigCommand,
    },
    /// Usage, allocations by tenant and rates, from a running daemon.
    Report(ClientArgs),
    /// Policies: list, check, bind, unbind, reload.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Replay a cache trace through eviction policies (offline; no daemon needed).
    Sim(memory::SimArgs),
    /// Trim caches to their low watermark and hand free memory back to the OS.
    Gc(ClientArgs),
    /// A JSON snapshot of accounted memory.
    Snapshot {
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
        /// Write it here instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Suspected leaks (growth trends, stale allocations, growing policy instances).
    Leaks(ClientArgs),
    /// Record usage as a JSON time series (and an SVG chart).
    Profile(profile::ProfileArgs),
    /// Connection pools of a running daemon: size, idle, in use, waiting, latency, breaker.
    Connections(ClientArgs),
    /// A live terminal dashboard of a running daemon (`q` quits, `tab` focus, `p` pause).
    Monitor(monitor::MonitorArgs),
    /// Health of a running daemon: exit 0 healthy, 1 degraded, 2 unhealthy, 3 unreachable.
    Health {
        /// How to reach the daemon.
        #[command(flatten)]
        client: ClientArgs,
        /// Show every check, not only the status.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Print a shell completion script, e.g. `rmhost completions bash > /etc/bash_completion.d/rmhost`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page rmhost(1) (roff), e.g. `rmhost man | man -l -`.
    Man {
        /// Write rmhost.1 and one page per verb (rmhost-run.1, ...) into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Config { command } => config_cmd::run(command),
        Command::Report(c) => report::report(&c).await,
        Command::Health { client, verbose } => report::health(&client, verbose).await,
        Command::Policy { command } => policy::run(command).await,
        Command::Sim(args) => {
            tokio::task::spawn_blocking(move || memory::sim_with_runtime(&args)).await?
        }
        Command::Gc(c) => memory::gc(&c).await,
        Command::Connections(c) => report::connections(&c).await,
        Command::Snapshot { client, output } => memory::snapshot(&client, output.as_deref()).await,
        Command::Leaks(c) => memory::leaks(&c).await,
        Command::Profile(args) => profile::profile(&args).await,
        Command::Monitor(args) => monitor::monitor(&args).await,
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { out_dir } => shell::man(out_dir.as_deref()),
    }
}
