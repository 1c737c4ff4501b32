//! The daemon: the core [`Host`] built over the Wasm [`PolicyRuntime`], the policies it
//! loads and watches, and the HTTP API served until a shutdown signal, draining in-flight
//! requests within the configured timeout. Under systemd it reports readiness, stopping
//! and watchdog pings (`notify`).
//!
//! Library users who want no HTTP build a `rmhost_core::host::Host` themselves (with the
//! runtime as its policy provider); `rmhost run` is a thin wrapper over [`Daemon`] and
//! [`serve`].

mod listen;
mod notify;
mod policies;
mod serve;

pub use policies::runtime_options;
pub use serve::{check_listen, serve, shutdown_signal};

use rmhost_core::config::Config;
use rmhost_core::events::EventBus;
use rmhost_core::host::{Host, HostError};
use rmhost_core::telemetry::Telemetry;
use rmhost_runtime::{PolicyRuntime, RuntimeError};
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The core managers could not be built.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Auth is off and the listen address is not loopback.
    #[error(
        "refusing to listen on {addr} without auth: set [auth] admin_token_sha256 (see `rmhost config hash-token`) or listen on a loopback address such as 127.0.0.1:7070"
    )]
    InsecureListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A policy could not be loaded or bound.
    #[error("policy {file}: {source}")]
    Policy {
        /// The file (or config key).
        file: String,
        /// What the runtime said.
        source: RuntimeError,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// A host and the policy runtime that decides for it.
#[derive(Debug)]
pub struct Daemon {
    /// The core managers.
    pub host: Arc<Host>,
    /// Loaded policies, bindings, hot reload.
    pub runtime: PolicyRuntime,
}

impl Daemon {
    /// Builds the runtime from `[policies]`, then the host over it, with real telemetry.
    pub fn new(config: Config) -> Result<Arc<Daemon>, DaemonError> {
        Self::build(config, None)
    }

    /// Like [`Daemon::new`] with the given telemetry (tests pass a fake source).
    pub fn with_telemetry(
        config: Config,
        telemetry: Telemetry,
    ) -> Result<Arc<Daemon>, DaemonError> {
        Self::build(config, Some(telemetry))
    }

    fn build(config: Config, telemetry: Option<Telemetry>) -> Result<Arc<Daemon>, DaemonError> {
        let events = EventBus::new();
        let runtime =
            PolicyRuntime::new(runtime_options(&config), events.clone()).map_err(|source| {
                DaemonError::Policy {
                    file: "(runtime)".into(),
                    source,
                }
            })?;
        let mut builder = Host::builder(config)
            .events(events)
            .policies(Arc::new(runtime.clone()));
        if let Some(t) = telemetry {
            builder = builder.telemetry(t);
        }
        Ok(Arc::new(Daemon {
            host: builder.build()?,
            runtime,
        }))
    }
}
