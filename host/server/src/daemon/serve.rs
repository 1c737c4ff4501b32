//! Serving the API with graceful shutdown: stop accepting, end event streams, let
//! in-flight requests finish within `shutdown_timeout_ms`, then return.

use super::{Daemon, DaemonError};
use crate::api;
use rmhost_core::config::Config;
use rmhost_core::events::Event;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Checks that serving `addr` is allowed by the auth settings.
pub fn check_listen(config: &Config, addr: SocketAddr) -> Result<(), DaemonError> {
    if !config.auth.is_set() && !addr.ip().is_loopback() {
        return Err(DaemonError::InsecureListen { addr });
    }
    Ok(())
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for up to `shutdown_timeout_ms`, and returns.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: TcpListener,
    shutdown: impl Future<Output = String> + Send + 'static,
) -> Result<(), DaemonError> {
    let host = daemon.host.clone();
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    check_listen(&host.config, addr)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = api::router(daemon.clone(), stop_rx.clone());
    let mut background = host.spawn_background();
    background.extend(super::notify::spawn_watchdog());
    host.set_ready(true);
    tracing::info!(%addr, "rmhost listening");
    // One machine-readable line on stdout, so scripts (and tests using port 0) learn the
    // address.
    println!("rmhost: listening on http://{addr}");
    super::notify::ready();

    let server_stop = stop_rx.clone();
    let http = host.config.http.clone();
    let telemetry = host.telemetry.clone();
    let mut server = tokio::spawn(async move {
        super::listen::accept_loop(listener, router, &http, telemetry, server_stop).await;
        Ok::<(), std::io::Error>(())
    });

    let reason = tokio::select! {
        r = shutdown => r,
        res = &mut server => {
            for t in background { t.abort(); }
            return match res {
                Ok(r) => r.map_err(DaemonError::Serve),
                Err(e) => Err(DaemonError::Serve(std::io::Error::other(e))),
            };
        }
    };
    tracing::info!(%reason, "shutting down: draining in-flight requests");
    host.set_ready(false);
    super::notify::stopping();
    host.events.publish(Event::Shutdown { reason });
    let _ = stop_tx.send(true);
    let timeout = Duration::from_millis(host.config.shutdown_timeout_ms);
    match tokio::time::timeout(timeout, &mut server).await {
        Ok(_) => tracing::info!("drained; bye"),
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "shutdown timeout: dropping remaining connections"
            );
            server.abort();
        }
    }
    for t in background {
        t.abort();
    }
    host.pools.close();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
pub async fn shutdown_signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM".to_string(),
        _ = tokio::signal::ctrl_c() => "SIGINT".to_string(),
    }
}
