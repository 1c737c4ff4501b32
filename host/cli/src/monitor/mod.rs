//! `rmhost monitor`: a real-time terminal dashboard of a running daemon (ratatui over
//! crossterm), fed by polls of `/v1/usage`, `/v1/memory`, `/v1/pools`, `/v1/policies`,
//! `/v1/caches` and by the `/v1/events` stream.
//!
//! Owns: the dashboard's state ([`state`], filled from JSON, no I/O), its rendering
//! ([`draw`], a pure function of the state), the SSE parser ([`sse`]) and the I/O loop
//! ([`app`]). It must not reach into the daemon's managers: everything comes over HTTP,
//! like any other client.

mod app;
mod draw;
mod sse;
mod state;
#[cfg(test)]
mod tests;

use super::ClientArgs;
use clap::Args;

/// Flags of `rmhost monitor`.
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// How to reach the daemon.
    #[command(flatten)]
    pub client: ClientArgs,
    /// How often to poll the daemon, ms (the screen redraws at most 4 times a second).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub interval: u64,
}

/// Runs `rmhost monitor` until `q`; exit 0, or 2 when stdout is not a terminal.
pub async fn monitor(args: &MonitorArgs) -> anyhow::Result<i32> {
    app::run(args).await
}
