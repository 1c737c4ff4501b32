//! The composition root: builds every manager from a `Config`, wires them together, runs
//! the background tasks, and serves the HTTP API until a shutdown signal, draining
//! in-flight requests within the configured timeout.
//!
//! Library users embed [`Host`] directly; the `rmhost run` binary is a thin wrapper.

use crate::api;
use crate::config::Config;
use crate::events::{Event, EventBus};
use crate::health::{HealthCheck, HealthReport, HealthStatus};
use crate::policy::PressureLevel;
use crate::resources::{GlobalLimits, ManagerOptions, ResourceManager, spawn_reaper};
use crate::telemetry::Telemetry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Auth is off and the listen address is not loopback.
    #[error(
        "refusing to listen on {addr} without auth: set [auth] admin_token_sha256 (see `rmhost config hash-token`) or listen on a loopback address such as 127.0.0.1:7070"
    )]
    InsecureListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A tenant's quota in the config is invalid.
    #[error("config tenants.{tenant}: {reason}")]
    Tenant {
        /// The tenant.
        tenant: String,
        /// Why.
        reason: String,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Telemetry could not start.
    #[error("telemetry: {0}")]
    Telemetry(crate::telemetry::TelemetryError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Every manager of a running host.
#[derive(Debug)]
pub struct Host {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The event bus.
    pub events: EventBus,
    /// System and process telemetry.
    pub telemetry: Telemetry,
    /// The allocation ledger.
    pub resources: ResourceManager,
    ready: AtomicBool,
    started: Instant,
}

/// Global limits from the config's `[limits]`: CPU as a share of every core, in millicores.
pub fn global_limits(config: &Config) -> GlobalLimits {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    GlobalLimits {
        memory_bytes: config.memory_budget_bytes(),
        cpu_millicores: cores * 10 * config.limits.max_cpu_percentage as u64,
        connections: config.limits.max_connections as u64,
        requests_per_minute: config.limits.max_requests_per_minute as u64,
        file_handles: config.limits.max_file_handles,
    }
}

impl Host {
    /// Builds every manager from `config` with real telemetry.
    pub fn new(config: Config) -> Result<Arc<Host>, HostError> {
        let telemetry = Telemetry::sysinfo().map_err(HostError::Telemetry)?;
        Self::with_telemetry(config, telemetry)
    }

    /// Builds every manager with the given telemetry (tests pass a fake source).
    pub fn with_telemetry(config: Config, telemetry: Telemetry) -> Result<Arc<Host>, HostError> {
        let events = EventBus::new();
        let resources = ResourceManager::new(
            ManagerOptions {
                limits: global_limits(&config),
                requests_per_minute: config.limits.max_requests_per_minute,
            },
            events.clone(),
        );
        for (tenant, q) in &config.tenants {
            for kind in crate::policy::ResourceKind::ALL {
                if let Some(limit) = q.limit(kind) {
                    resources
                        .set_quota(tenant, kind, Some(limit))
                        .map_err(|e| HostError::Tenant {
                            tenant: tenant.clone(),
                            reason: e.to_string(),
                        })?;
                }
            }
            if let Some(rpm) = q.requests_per_minute {
                resources.rate_limits().set_override(tenant, Some(rpm));
            }
        }
        let t = telemetry.clone();
        resources.set_system_usage(move || t.system_usage(PressureLevel::Normal));
        Ok(Arc::new(Host {
            config: Arc::new(config),
            events,
            telemetry,
            resources,
            ready: AtomicBool::new(false),
            started: Instant::now(),
        }))
    }

    /// Starts the background tasks: telemetry sampling and the orphan reaper.
    pub fn spawn_background(&self) -> Vec<JoinHandle<()>> {
        let m = &self.config.monitoring;
        self.telemetry.sample_now();
        vec![
            self.telemetry
                .spawn(Duration::from_millis(m.sample_interval_ms)),
            spawn_reaper(
                self.resources.clone(),
                Duration::from_millis(m.orphan_scan_interval_ms),
            ),
            self.spawn_limit_watch(Duration::from_millis(m.sample_interval_ms)),
        ]
    }

    /// Compares measured use with `[limits]` after every sample, so crossing 80% and 100%
    /// of a limit raises a `ResourceAlerts` event (scope `system`) even when nothing is
    /// allocated through the ledger. CPU is compared in percent.
    fn spawn_limit_watch(&self, interval: Duration) -> JoinHandle<()> {
        use crate::policy::ResourceKind as K;
        let telemetry = self.telemetry.clone();
        let resources = self.resources.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let u = telemetry.usage();
                let l = &config.limits;
                let r = &resources;
                r.observe_system(
                    K::Memory,
                    u.memory.process_rss,
                    config.memory_budget_bytes(),
                );
                r.observe_system(
                    K::Cpu,
                    u.cpu.percentage.round() as u64,
                    l.max_cpu_percentage as u64,
                );
                r.observe_system(
                    K::Connections,
                    u.connections.active,
                    l.max_connections as u64,
                );
                r.observe_system(
                    K::Requests,
                    u.requests.per_minute,
                    l.max_requests_per_minute as u64,
                );
                r.observe_system(K::FileHandles, u.file_handles.open, l.max_file_handles);
            }
        })
    }

    /// Whether the host serves requests (false before start and while shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Seconds since the host was built.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every subsystem's checks, the worst deciding the status.
    pub fn health(&self) -> HealthReport {
        let c = &self.config;
        let u = self.telemetry.usage();
        let mem = &c.memory;
        let mut checks = vec![
            HealthCheck::threshold(
                "memory.process_rss",
                u.memory.process_rss as f64,
                c.memory_budget_bytes() as f64,
                mem.warning_threshold_percent as f64,
                Some(mem.critical_threshold_percent as f64),
                "bytes",
            ),
            HealthCheck::threshold(
                "cpu",
                u.cpu.percentage,
                c.limits.max_cpu_percentage as f64,
                100.0,
                None,
                "%",
            ),
            HealthCheck::threshold(
                "connections",
                u.connections.active as f64,
                c.limits.max_connections as f64,
                80.0,
                Some(100.0),
                "connections",
            ),
            HealthCheck::threshold(
                "requests_per_minute",
                u.requests.per_minute as f64,
                c.limits.max_requests_per_minute as f64,
                80.0,
                Some(100.0),
                "requests/min",
            ),
            HealthCheck::threshold(
                "file_handles",
                u.file_handles.open as f64,
                c.limits.max_file_handles as f64,
                80.0,
                Some(100.0),
                "file handles",
            ),
        ];
        for k in self.resources.usage().global {
            let limit = k.limit.unwrap_or(0) as f64;
            let mut check = HealthCheck::threshold(
                &format!("allocations.{}", k.kind),
                k.used as f64,
                limit,
                90.0,
                None,
                k.kind.unit(),
            );
            if check.status > HealthStatus::Degraded {
                check.status = HealthStatus::Degraded;
            }
            checks.push(check);
        }
        HealthReport::from_checks(checks, self.uptime().as_secs())
    }
}

/// Checks that serving `addr` is allowed by the auth settings.
pub fn check_listen(config: &Config, addr: SocketAddr) -> Result<(), HostError> {
    if !config.auth.is_set() && !addr.ip().is_loopback() {
        return Err(HostError::InsecureListen { addr });
    }
    Ok(())
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for up to `shutdown_timeout_ms`, and returns.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    shutdown: impl Future<Output = String> + Send + 'static,
) -> Result<(), HostError> {
    let addr = listener.local_addr().map_err(HostError::Serve)?;
    check_listen(&host.config, addr)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = api::router(host.clone(), stop_rx.clone());
    let background = host.spawn_background();
    host.ready.store(true, Ordering::Relaxed);
    tracing::info!(%addr, "rmhost listening");
    // One machine-readable line on stdout, so scripts (and tests using port 0) learn the
    // address.
    println!("rmhost: listening on http://{addr}");

    let mut server_stop = stop_rx.clone();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    let mut server = tokio::spawn(async move { server.await });

    let reason = tokio::select! {
        r = shutdown => r,
        res = &mut server => {
            for t in background { t.abort(); }
            return match res {
                Ok(r) => r.map_err(HostError::Serve),
                Err(e) => Err(HostError::Serve(std::io::Error::other(e))),
            };
        }
    };
    tracing::info!(%reason, "shutting down: draining in-flight requests");
    host.ready.store(false, Ordering::Relaxed);
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
