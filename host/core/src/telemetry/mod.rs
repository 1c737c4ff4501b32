//! Telemetry: what the machine and the process are doing, sampled on an interval, plus live
//! connection and request counters.
//!
//! This module owns reading the OS (through the [`TelemetrySource`] seam: [`SysinfoSource`]
//! for real, [`FakeSource`] for tests) and the counters. It makes no decisions: the pressure
//! level is computed by `memory` from a [`Usage`], and policies see the compact
//! [`SystemUsage`] from [`Telemetry::system_usage`].
//!
//! Costs: a sample reads a handful of small `/proc` files (see `benches/telemetry.rs` for
//! the measured CPU per sample); recording a request is two relaxed atomic adds and one
//! compare-and-swap, lock-free.

mod counters;
mod procfs;
mod source;

#[cfg(test)]
mod tests;

use crate::clock::Clock;
pub use counters::RequestWindow;
pub use procfs::{
    CgroupMemory, Pressure, ProcessStat, Psi, PsiLine, fd_limit, open_fds, parse_cgroup_limit,
    parse_inactive_file, parse_process_stat, parse_psi, process_stat, read_pressure,
};
pub use source::{FakeSource, RawSample, SysinfoSource, TelemetrySource};

use crate::policy::{PressureLevel, SystemUsage};
use counters::Counters;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// sysinfo could not initialise on this platform.
    #[error("cannot read system information: {0}")]
    Init(String),
}

/// CPU figures.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CpuUsage {
    /// System-wide CPU use, 0-100.
    pub percentage: f64,
    /// Logical CPUs.
    pub cores: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load_average: [f64; 3],
    /// This process's CPU use; 100 = one core.
    pub process_percentage: f64,
}

/// Memory figures, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryUsage {
    /// System memory in use.
    pub used: u64,
    /// System memory in all.
    pub total: u64,
    /// System memory available.
    pub available: u64,
    /// Percent of the effective limit in use (see [`MemoryUsage::effective`]).
    pub percentage: f64,
    /// This process's resident set.
    pub process_rss: u64,
    /// The memory cgroup's limit; `None` when unlimited.
    pub cgroup_limit: Option<u64>,
    /// The memory cgroup's working set.
    pub cgroup_usage: Option<u64>,
}

impl MemoryUsage {
    /// (used, total) against the limit that binds: the cgroup's when it is below system
    /// memory (a container), else the system's.
    pub fn effective(&self) -> (u64, u64) {
        match self.cgroup_limit {
            Some(limit) if limit < self.total || self.total == 0 => {
                (self.cgroup_usage.unwrap_or(self.used), limit)
            }
            _ => (self.used, self.total),
        }
    }
}

/// Connection counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionUsage {
    /// Open now.
    pub active: u64,
    /// Opened since start.
    pub total: u64,
    /// Refused at accept since start (the daemon's `[http] max_connections` were open).
    #[serde(default)]
    pub refused: u64,
    /// Refused at accept by the rate-limit service since start (its `[grpc]
    /// max_connections` were open).
    #[serde(default)]
    pub grpc_refused: u64,
}

/// Request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestUsage {
    /// Over the last sliding minute.
    pub per_minute: u64,
    /// Since start.
    pub total: u64,
}

/// File handles of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileHandleUsage {
    /// Open now.
    pub open: u64,
    /// The soft limit; `None` when unlimited.
    pub limit: Option<u64>,
}

/// The latest sample plus live counters: what `GET /v1/usage` and `rmhost report` show.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// When the machine was last sampled, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// CPU.
    pub cpu: CpuUsage,
    /// Memory.
    pub memory: MemoryUsage,
    /// Connections (live).
    pub connections: ConnectionUsage,
    /// Requests (live).
    pub requests: RequestUsage,
    /// File handles.
    pub file_handles: FileHandleUsage,
    /// PSI.
    pub pressure: Pressure,
}

/// `part` as a percentage of `whole`; 0 when `whole` is 0.
pub fn percentage(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

struct Inner {
    source: Mutex<Box<dyn TelemetrySource>>,
    latest: RwLock<RawSample>,
    counters: Counters,
}

/// The telemetry hub. Cheap to clone (one `Arc`); every clone sees the same data.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("latest", &*self.inner.latest.read())
            .field("counters", &self.inner.counters)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry over `source`, with a real clock. Takes a first sample, so `usage()` is
    /// populated from the start.
    pub fn new(source: Box<dyn TelemetrySource>) -> Self {
        Self::with_clock(source, Clock::real())
    }

    /// Like [`Telemetry::new`], with the counters' clock given (tests use a
    /// [`crate::clock::ManualClock`] to move the sliding minute without sleeping).
    pub fn with_clock(mut source: Box<dyn TelemetrySource>, clock: Clock) -> Self {
        let first = source.sample();
        Telemetry {
            inner: Arc::new(Inner {
                source: Mutex::new(source),
                latest: RwLock::new(first),
                counters: Counters::new(clock),
            }),
        }
    }

    /// Telemetry over the real machine.
    pub fn sysinfo() -> Result<Self, TelemetryError> {
        Ok(Self::new(Box::new(SysinfoSource::new()?)))
    }

    /// Samples now (blocking briefly on file reads) and returns the new usage.
    pub fn sample_now(&self) -> Usage {
        let sample = self.inner.source.lock().sample();
        *self.inner.latest.write() = sample;
        self.usage()
    }

    /// Samples every `interval` on the tokio runtime, the reads on the blocking pool. The
    /// task ends when every `Telemetry` clone is dropped, or when aborted.
    pub fn spawn(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let telemetry = Telemetry { inner };
                let sampled = tokio::task::spawn_blocking(move || {
                    telemetry.sample_now();
                })
                .await;
                if let Err(e) = sampled {
                    tracing::warn!(error = %e, "telemetry sample failed");
                }
            }
        })
    }

    /// The latest raw sample.
    pub fn latest(&self) -> RawSample {
        self.inner.latest.read().clone()
    }

    /// The latest sample plus live counters.
    pub fn usage(&self) -> Usage {
        let s = self.inner.latest.read().clone();
        let c = &self.inner.counters;
        let mut memory = MemoryUsage {
            used: s.memory_used,
            total: s.memory_total,
            available: s.memory_available,
            percentage: 0.0,
            process_rss: s.process_rss,
            cgroup_limit: s.cgroup_limit,
            cgroup_usage: s.cgroup_usage,
        };
        let (used, total) = memory.effective();
        memory.percentage = percentage(used, total);
        Usage {
            timestamp_ms: s.timestamp_ms,
            cpu: CpuUsage {
                percentage: s.cpu_percent,
                cores: s.cores,
                load_average: s.load_average,
                process_percentage: s.process_cpu_percent,
            },
            memory,
            connections: ConnectionUsage {
                active: c.active_connections.load(Ordering::Relaxed),
                total: c.total_connections.load(Ordering::Relaxed),
                refused: c.refused_connections.load(Ordering::Relaxed),
                grpc_refused: c.refused_grpc_connections.load(Ordering::Relaxed),
            },
            requests: RequestUsage {
                per_minute: c.requests_per_minute(),
                total: c.total_requests.load(Ordering::Relaxed),
            },
            file_handles: FileHandleUsage {
                open: s.file_handles_open,
                limit: s.file_handles_limit,
            },
            pressure: s.pressure,
        }
    }

    /// The compact form handed to policies. Memory is against the effective limit (the
    /// cgroup's in a container).
    pub fn system_usage(&self, pressure: PressureLevel) -> SystemUsage {
        let u = self.usage();
        let (used, total) = u.memory.effective();
        SystemUsage {
            cpu_percent: u.cpu.percentage as f32,
            memory_used_bytes: used,
            memory_total_bytes: total,
            process_rss_bytes: u.memory.process_rss,
            connections_active: u32::try_from(u.connections.active).unwrap_or(u32::MAX),
            requests_per_minute: u32::try_from(u.requests.per_minute).unwrap_or(u32::MAX),
            load_average_1m: u.cpu.load_average[0] as f32,
            pressure,
        }
    }

    /// Counts a connection opened (and in the total). Pair with
    /// [`Telemetry::connection_closed`], or use [`Telemetry::connection`].
    pub fn connection_opened(&self) {
        self.inner.counters.connection_opened();
    }

    /// Counts a connection closed.
    pub fn connection_closed(&self) {
        self.inner.counters.connection_closed();
    }

    /// Counts a connection refused before it was served (over a connection cap).
    pub fn connection_refused(&self) {
        self.inner
            .counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection to the gRPC rate-limit service refused at accept (over
    /// `[grpc] max_connections`).
    pub fn grpc_connection_refused(&self) {
        self.inner
            .counters
            .refused_grpc_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection open until the guard is dropped.
    pub fn connection(&self) -> ConnectionGuard {
        self.connection_opened();
        ConnectionGuard {
            telemetry: self.clone(),
        }
    }

    /// Counts `n` requests now.
    pub fn record_requests(&self, n: u64) {
        self.inner.counters.record_requests(n);
    }

    /// Counts one request now.
    pub fn record_request(&self) {
        self.record_requests(1);
    }

    /// Connections open now.
    pub fn active_connections(&self) -> u64 {
        self.inner
            .counters
            .active_connections
            .load(Ordering::Relaxed)
    }

    /// Requests over the last sliding minute.
    pub fn requests_per_minute(&self) -> u64 {
        self.inner.counters.requests_per_minute()
    }
}

/// Counts one active connection for as long as it lives.
#[derive(Debug)]
#[must_use = "the connection is counted as closed when the guard is dropped"]
pub struct ConnectionGuard {
    telemetry: Telemetry,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.telemetry.connection_closed();
    }
}
