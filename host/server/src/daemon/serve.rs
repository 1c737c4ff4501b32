//! Serving the API (and, with `[grpc] listen`, Envoy's rate-limit service next to it) with
//! graceful shutdown: stop accepting, end event streams, let in-flight requests finish
//! within `shutdown_timeout_ms`, then return.

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

/// Checks that serving `addr` (and the gRPC service's `[grpc] listen`, when set) is
/// allowed by the auth settings.
pub fn check_listen(config: &Config, addr: SocketAddr) -> Result<(), DaemonError> {
    for addr in std::iter::once(addr).chain(config.grpc.listen) {
        if !config.auth.is_set() && !addr.ip().is_loopback() {
            return Err(DaemonError::InsecureListen { addr });
        }
    }
    Ok(())
}

/// Binds `[grpc] listen` and serves Envoy's rate-limit service there until `stopping`;
/// `None` when the key is unset.
async fn start_grpc(
    daemon: &Daemon,
    stopping: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, DaemonError> {
    let Some(addr) = daemon.host.config.grpc.listen else {
        return Ok(None);
    };
    let bind = |source| DaemonError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    tracing::info!(addr = %local, "rate-limit service (gRPC) listening");
    // Before the HTTP line, which tells scripts the daemon is up.
    println!("rmhost: grpc ratelimit listening on {local}");
    let host = daemon.host.clone();
    Ok(Some(tokio::spawn(async move {
        crate::rls::serve(host, listener, stopping)
            .await
            .map_err(std::io::Error::other)
    })))
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
    let mut grpc = start_grpc(&daemon, stop_rx.clone()).await?;
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

    // The gRPC server ending on its own is as fatal as the HTTP one: Envoy would be told
    // nothing while the daemon looked alive.
    let grpc_ended = async {
        match grpc.as_mut() {
            Some(g) => g.await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        r = shutdown => r,
        res = &mut server => {
            for t in background { t.abort(); }
            if let Some(g) = &grpc { g.abort(); }
            return match res {
                Ok(r) => r.map_err(DaemonError::Serve),
                Err(e) => Err(DaemonError::Serve(std::io::Error::other(e))),
            };
        }
        res = grpc_ended => {
            for t in background { t.abort(); }
            server.abort();
            let e = match res {
                Ok(Ok(())) => std::io::Error::other("the gRPC server stopped"),
                Ok(Err(e)) => e,
                Err(e) => std::io::Error::other(e),
            };
            return Err(DaemonError::Serve(e));
        }
    };
    tracing::info!(%reason, "shutting down: draining in-flight requests");
    host.set_ready(false);
    super::notify::stopping();
    host.events.publish(Event::Shutdown { reason });
    let _ = stop_tx.send(true);
    let timeout = Duration::from_millis(host.config.shutdown_timeout_ms);
    let drained = async {
        let _ = (&mut server).await;
        if let Some(g) = grpc.as_mut() {
            let _ = g.await;
        }
    };
    match tokio::time::timeout(timeout, drained).await {
        Ok(()) => tracing::info!("drained; bye"),
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "shutdown timeout: dropping remaining connections"
            );
            server.abort();
            if let Some(g) = &grpc {
                g.abort();
            }
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
