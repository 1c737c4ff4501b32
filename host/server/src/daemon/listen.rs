//! The accept loop: axum's router served over hyper with the bounds `axum::serve` lacks —
//! at most `[http] max_connections` open connections (more are closed at accept, so a
//! client holding thousands cannot exhaust the daemon's descriptors), and a header read
//! timeout (a slowloris client dribbling one header byte at a time is cut off). Shutdown
//! stops accepting and lets open connections finish their requests.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rmhost_core::config::Http;
use rmhost_core::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Serves `router` on `listener` until `stop` turns true, then waits for the open
/// connections to finish (the caller bounds that wait). Every connection is counted in
/// `telemetry` (open, total, refused), so `/v1/usage` and `/metrics` show the daemon's own.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    http: &Http,
    telemetry: Telemetry,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(http.max_connections as usize));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms))
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            telemetry.connection_refused();
            tracing::debug!("connection refused: max_connections open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let open = telemetry.connection();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((permit, open));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
