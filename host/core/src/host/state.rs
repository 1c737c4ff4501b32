//! State shared with other hosts: this host's id, the shared rate limiter (Redis, when
//! `[state] ratelimit` names one), and the `state` health check that `/ready` follows.

use super::{Host, HostError};
use crate::config::Config;
use crate::events::EventBus;
use crate::health::{HealthCheck, HealthStatus};
use crate::resources::{RateDecision, ResourceError};

/// The shared limiter, when the build has Redis support.
#[cfg(feature = "redis")]
pub(crate) type Shared = crate::resources::SharedRateLimiter;
/// Without Redis support there is never a shared limiter.
#[cfg(not(feature = "redis"))]
#[derive(Debug)]
pub(crate) enum Shared {}

/// Why a rate-limit check could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum RateCheckError {
    /// A bad tenant or cost.
    #[error(transparent)]
    Invalid(#[from] ResourceError),
    /// The shared backend is down and `[state] ratelimit_failure = "closed"`.
    #[error("{0}")]
    Unavailable(String),
}

/// `[state] host_id`, or the hostname with a random suffix (two containers of one pod
/// share a hostname; the suffix keeps their ids apart).
pub fn host_id(config: &Config) -> String {
    if let Some(id) = &config.state.host_id {
        return id.clone();
    }
    let name = sysinfo::System::host_name().unwrap_or_else(|_| "rmhost".into());
    let suffix = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() & 0xff_ffff
    };
    format!("{name}-{suffix:06x}")
}

/// The shared ledger `[state] ledger` names (`None` for `memory`).
pub(crate) fn shared_ledger(
    config: &Config,
    host_id: &str,
    events: &EventBus,
) -> Result<Option<std::sync::Arc<dyn crate::resources::SharedLedger>>, HostError> {
    let url = &config.state.ledger;
    if url == "memory" {
        return Ok(None);
    }
    #[cfg(feature = "postgres")]
    {
        let opts = crate::resources::PgLedgerOptions {
            url: url.clone(),
            host_id: host_id.to_string(),
            timeout: std::time::Duration::from_millis(config.state.backend_timeout_ms),
            host_lapse: std::time::Duration::from_millis(config.state.host_lapse_ms),
            max_connections: config.state.ledger_pool_size as usize,
        };
        crate::resources::PgLedger::connect(opts, events.clone())
            .map(|l| Some(l as std::sync::Arc<dyn crate::resources::SharedLedger>))
            .map_err(|e| {
                HostError::State(format!("state.ledger {}: {e}", crate::pools::redact(url)))
            })
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (host_id, events);
        Err(HostError::State(format!(
            "state.ledger = {:?} needs PostgreSQL support: build rmhost-core with the `postgres` feature",
            crate::pools::redact(url)
        )))
    }
}

pub(crate) fn shared_limiter(
    config: &Config,
    host_id: &str,
    events: &EventBus,
) -> Result<Option<Shared>, HostError> {
    let url = &config.state.ratelimit;
    if url == "local" {
        return Ok(None);
    }
    #[cfg(feature = "redis")]
    {
        let opts = crate::resources::SharedRateOptions {
            url: url.clone(),
            prefix: config.state.key_prefix.clone(),
            host_id: host_id.to_string(),
            timeout: std::time::Duration::from_millis(config.state.backend_timeout_ms),
            fail_open: config.state.ratelimit_failure == "open",
        };
        crate::resources::SharedRateLimiter::new(opts, events.clone())
            .map(Some)
            .map_err(|e| HostError::State(e.to_string()))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (host_id, events);
        Err(HostError::State(format!(
            "state.ratelimit = {url:?} needs Redis support: build rmhost-core with the `redis` feature"
        )))
    }
}

impl Host {
    /// Checks (and on success counts) `cost` requests of `tenant`: on the shared Redis
    /// state when configured, else on this host's limiter.
    pub async fn rate_check(
        &self,
        tenant: &str,
        cost: u32,
    ) -> Result<RateDecision, RateCheckError> {
        let Some(shared) = &self.shared_rate else {
            return Ok(self.resources.rate_check(tenant, cost)?);
        };
        self.resources.validate_rate(tenant, cost)?;
        #[cfg(feature = "redis")]
        {
            use crate::resources::SharedAnswer;
            let rates = self.resources.rate_limits();
            let limit = rates.limit_for(tenant);
            let d = match shared.check(tenant, cost, limit).await {
                Ok(SharedAnswer::Shared(d)) => d,
                Ok(SharedAnswer::Local(part)) => rates.check_at(tenant, cost, part),
                Err(e) => return Err(RateCheckError::Unavailable(e.to_string())),
            };
            self.resources.note_rate(tenant, &d);
            Ok(d)
        }
        #[cfg(not(feature = "redis"))]
        match *shared {}
    }

    /// Each configured shared backend (`postgres` for the ledger, `redis` for rate limits)
    /// with whether it is reachable and the live hosts it counts, for `/metrics`.
    pub fn state_backends(&self) -> Vec<BackendState> {
        let mut out = Vec::new();
        if let Some(l) = self.resources.shared_ledger() {
            out.push(BackendState {
                backend: l.backend(),
                role: "ledger",
                up: l.down().is_none(),
                live_hosts: l.live_hosts(),
            });
        }
        #[cfg(feature = "redis")]
        if let Some(s) = &self.shared_rate {
            out.push(BackendState {
                backend: "redis",
                role: "ratelimit",
                up: !s.is_down(),
                live_hosts: u64::from(s.live_hosts()),
            });
        }
        out
    }

    /// The `state` health check: the shared backends' reachability (healthy when none is
    /// configured). `/ready` is 503 while it is unhealthy.
    pub fn state_check(&self) -> HealthCheck {
        let (mut status, mut message) = match &self.shared_rate {
            None => (HealthStatus::Healthy, "rate limits local".to_string()),
            #[cfg(feature = "redis")]
            Some(s) if s.is_down() => (
                HealthStatus::Unhealthy,
                "rate-limit backend redis unreachable".to_string(),
            ),
            #[cfg(feature = "redis")]
            Some(s) => (
                HealthStatus::Healthy,
                format!(
                    "rate limits shared on redis with {} live host(s)",
                    s.live_hosts()
                ),
            ),
            #[cfg(not(feature = "redis"))]
            Some(s) => match *s {},
        };
        let ledger = match self.resources.shared_ledger() {
            None => "ledger in memory".to_string(),
            Some(l) => match l.down() {
                Some(why) => {
                    status = HealthStatus::Unhealthy;
                    format!("ledger backend {} unreachable: {why}", l.backend())
                }
                None => format!(
                    "ledger shared on {} with {} live host(s)",
                    l.backend(),
                    l.live_hosts()
                ),
            },
        };
        message = format!("{ledger}; {message} (host {})", self.host_id);
        HealthCheck {
            name: "state".into(),
            status,
            message,
            value: None,
            limit: None,
        }
    }
}

/// A shared backend as [`Host::state_backends`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendState {
    /// `postgres` or `redis`.
    pub backend: &'static str,
    /// What it holds: `ledger` or `ratelimit`.
    pub role: &'static str,
    /// Reachable at the last call.
    pub up: bool,
    /// Hosts whose heartbeat it holds as current.
    pub live_hosts: u64,
}
