//! What the dashboard shows, filled from the daemon's answers (the typed bodies of
//! `rmhost_server::wire`) and its event stream.
//!
//! No I/O and no clock here: every update takes the answer it applies (and, where a rate is
//! computed, the time of the sample), so the state is built by hand in tests and the
//! renderer draws the same screen for the same state.

use super::sse::SseMessage;
use rmhost_core::policy::ResourceKind;
use rmhost_server::wire::{CacheInfo, MemoryStatus, PolicyList, PoolList, UsageReport};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;

/// Samples kept for the CPU and request-rate histories (enough for a full-width sparkline).
pub const HISTORY: usize = 240;
/// Lines kept in the event log.
pub const EVENT_LOG: usize = 500;

/// The panes that take focus with `tab` (and scroll with the arrows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The event log.
    #[default]
    Events,
    /// Connection pools.
    Pools,
    /// Allocations by tenant.
    Tenants,
    /// Policies.
    Policies,
    /// Caches.
    Caches,
}

impl Pane {
    const ORDER: [Pane; 5] = [
        Pane::Events,
        Pane::Pools,
        Pane::Tenants,
        Pane::Policies,
        Pane::Caches,
    ];

    /// The pane after this one, wrapping.
    pub fn next(self) -> Pane {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    fn index(self) -> usize {
        Self::ORDER.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// Whether the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Link {
    /// No answer yet.
    #[default]
    Connecting,
    /// The last poll succeeded.
    Connected,
    /// The last poll failed; the reason.
    Disconnected(String),
}

/// CPU figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpu {
    /// System-wide, percent.
    pub percent: f64,
    /// The rmhost process, percent of one core.
    pub process_percent: f64,
    /// One-minute load average.
    pub load1: f64,
}

/// Memory figures, from `/v1/usage` and `/v1/memory`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// System memory in use, bytes.
    pub used: u64,
    /// System memory in all, bytes.
    pub total: u64,
    /// Process RSS (the heap as the OS sees it), bytes.
    pub rss: u64,
    /// The pressure budget, bytes.
    pub budget: u64,
    /// Where the budget comes from.
    pub budget_source: String,
    /// RSS, percent of the budget.
    pub rss_percent: f64,
    /// Bytes held by caches.
    pub cache_bytes: u64,
    /// Bytes of granted memory allocations.
    pub allocation_bytes: u64,
    /// `normal`, `warning` or `critical`.
    pub pressure: String,
    /// PSI memory some avg10, percent, when the kernel has it.
    pub psi_some: Option<f64>,
}

/// One row of the pools table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolRow {
    /// `postgres/main`, ...
    pub pool: String,
    /// Open connections.
    pub size: u64,
    /// Idle.
    pub idle: u64,
    /// Handed out.
    pub in_use: u64,
    /// Waiting callers.
    pub waiting: u64,
    /// Maximum size.
    pub max: u64,
    /// Acquire timeouts.
    pub timeouts: u64,
    /// `closed`, `open`, `half_open`.
    pub circuit: String,
}

/// One row of the tenants table: what a tenant holds per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantRow {
    /// Tenant.
    pub tenant: String,
    /// Memory, bytes.
    pub memory: u64,
    /// CPU, millicores.
    pub cpu: u64,
    /// Connections.
    pub connections: u64,
    /// Live allocations of every kind.
    pub allocations: u64,
}

/// One row of the policies table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyRow {
    /// Name.
    pub name: String,
    /// Kinds it implements, comma-separated.
    pub kinds: String,
    /// Bindings naming it (`default:eviction`, `acme:quota`).
    pub bindings: Vec<String>,
    /// Guest calls.
    pub calls: u64,
    /// Faults.
    pub faults: u64,
    /// 99th percentile call time, ns.
    pub p99_ns: u64,
    /// Quarantined.
    pub quarantined: bool,
}

/// One row of the caches table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheRow {
    /// Name.
    pub name: String,
    /// Deciding policy.
    pub policy: String,
    /// Bytes held.
    pub bytes: u64,
    /// Capacity, bytes.
    pub capacity: u64,
    /// Entries.
    pub entries: u64,
    /// Hit ratio, 0-1.
    pub hit_ratio: f64,
    /// Evictions.
    pub evictions: u64,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    /// Sequence number (0 when the message had none).
    pub seq: u64,
    /// `HH:MM:SS` UTC.
    pub time: String,
    /// The event's type.
    pub kind: String,
    /// Its fields, compactly.
    pub summary: String,
}

/// Everything on the screen.
#[derive(Debug, Clone, Default)]
pub struct DashboardState {
    /// The daemon's address, for the title.
    pub addr: String,
    /// Whether the polls succeed.
    pub link: Link,
    /// Whether the event stream is open.
    pub stream_open: bool,
    /// Frozen by `p`: updates are not applied.
    pub paused: bool,
    /// The focused pane.
    pub focus: Pane,
    /// Scroll offset of each pane (rows from the top; for events, lines from the newest).
    pub scroll: [usize; 5],
    /// CPU now.
    pub cpu: Cpu,
    /// System CPU percent, oldest first.
    pub cpu_history: VecDeque<u64>,
    /// Memory now.
    pub memory: Memory,
    /// Requests over the sliding minute.
    pub requests_per_minute: u64,
    /// Requests served since start.
    pub requests_total: u64,
    /// Requests per second between polls, oldest first.
    pub rate_history: VecDeque<u64>,
    /// Connections counted active.
    pub connections_active: u64,
    /// Pools.
    pub pools: Vec<PoolRow>,
    /// Tenants holding something, by name.
    pub tenants: Vec<TenantRow>,
    /// Policies.
    pub policies: Vec<PolicyRow>,
    /// Caches.
    pub caches: Vec<CacheRow>,
    /// Events, oldest first.
    pub events: VecDeque<EventLine>,
    /// The highest sequence number seen (resume point of the stream).
    pub last_seq: u64,
    /// The previous `(at_ms, requests_total)`, to compute the rate.
    last_total: Option<(u64, u64)>,
}

/// The envelope fields of an event-stream message the dashboard reads; every other field
/// is shown as it comes (events of a newer daemon included), so the data stays JSON too.
#[derive(Debug, Default, Deserialize)]
struct EventHead {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    at_ms: Option<u64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    level: Option<String>,
}

fn push_bounded(h: &mut VecDeque<u64>, v: u64, cap: usize) {
    if h.len() == cap {
        h.pop_front();
    }
    h.push_back(v);
}

impl DashboardState {
    /// An empty dashboard for `addr`.
    pub fn new(addr: &str) -> Self {
        DashboardState {
            addr: addr.to_string(),
            ..Default::default()
        }
    }

    /// Scroll offset of the focused pane.
    pub fn scroll_of(&self, pane: Pane) -> usize {
        self.scroll[pane.index()]
    }

    /// Moves the focused pane by `delta` rows (never below 0).
    pub fn scroll_by(&mut self, delta: isize) {
        let i = self.focus.index();
        self.scroll[i] = self.scroll[i].saturating_add_signed(delta);
    }

    /// Applies `GET /v1/usage`, sampled at `at_ms` (any monotonic milliseconds).
    pub fn apply_usage(&mut self, r: &UsageReport, at_ms: u64) {
        let v = &r.usage;
        self.cpu = Cpu {
            percent: v.cpu.percentage,
            process_percent: v.cpu.process_percentage,
            load1: v.cpu.load_average[0],
        };
        push_bounded(
            &mut self.cpu_history,
            self.cpu.percent.round() as u64,
            HISTORY,
        );
        self.memory.used = v.memory.used;
        self.memory.total = v.memory.total;
        self.memory.rss = v.memory.process_rss;
        self.connections_active = v.connections.active;
        self.requests_per_minute = v.requests.per_minute;
        let total = v.requests.total;
        if let Some((t0, n0)) = self.last_total
            && at_ms > t0
        {
            // A restarted daemon counts from 0 again: no negative rates.
            let rate = total.saturating_sub(n0) as f64 * 1000.0 / (at_ms - t0) as f64;
            push_bounded(&mut self.rate_history, rate.round() as u64, HISTORY);
        }
        self.last_total = Some((at_ms, total));
        self.requests_total = total;
        let mut tenants: Vec<TenantRow> = r
            .allocations
            .tenants
            .iter()
            .map(|t| {
                let mut row = TenantRow {
                    tenant: t.tenant.clone(),
                    ..Default::default()
                };
                for k in &t.kinds {
                    row.allocations += u64::from(k.allocations);
                    match k.kind {
                        ResourceKind::Memory => row.memory = k.used,
                        ResourceKind::Cpu => row.cpu = k.used,
                        ResourceKind::Connections => row.connections = k.used,
                        _ => {}
                    }
                }
                row
            })
            .filter(|r| r.allocations > 0)
            .collect();
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        self.tenants = tenants;
    }

    /// Applies `GET /v1/memory`.
    pub fn apply_memory(&mut self, v: &MemoryStatus) {
        let d = &v.details;
        self.memory.pressure = v.status.as_str().to_string();
        self.memory.budget = d.budget_bytes;
        self.memory.budget_source = d.budget_source.clone();
        self.memory.rss_percent = d.rss_percent;
        self.memory.cache_bytes = d.cache_bytes;
        self.memory.allocation_bytes = d.allocation_bytes;
        self.memory.psi_some = d.psi_some_avg10;
        if d.rss_bytes > 0 {
            self.memory.rss = d.rss_bytes;
        }
    }

    /// Applies `GET /v1/pools`.
    pub fn apply_pools(&mut self, v: &PoolList) {
        self.pools = v
            .pools
            .iter()
            .map(|p| PoolRow {
                pool: p.pool.clone(),
                size: p.size.into(),
                idle: p.idle.into(),
                in_use: p.in_use.into(),
                waiting: p.waiting.into(),
                max: p.max.into(),
                timeouts: p.timeouts,
                circuit: p.circuit.as_str().to_string(),
            })
            .collect();
    }

    /// Applies `GET /v1/policies`.
    pub fn apply_policies(&mut self, v: &PolicyList) {
        self.policies = v
            .policies
            .iter()
            .map(|p| PolicyRow {
                name: p.name.clone(),
                kinds: p
                    .kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                bindings: p
                    .bindings
                    .iter()
                    .map(|b| {
                        format!(
                            "{}:{}",
                            b.tenant.as_deref().unwrap_or("default"),
                            b.kind.as_str()
                        )
                    })
                    .collect(),
                calls: p.calls,
                faults: p.faults,
                p99_ns: p.p99_ns,
                quarantined: p.quarantined,
            })
            .collect();
    }

    /// Applies `GET /v1/caches`.
    pub fn apply_caches(&mut self, v: &[CacheInfo]) {
        self.caches = v
            .iter()
            .map(|c| CacheRow {
                name: c.name.clone(),
                policy: c.stats.policy.clone(),
                bytes: c.stats.bytes,
                capacity: c.stats.capacity_bytes,
                entries: c.stats.entries,
                hit_ratio: c.stats.hit_ratio,
                evictions: c.stats.evictions,
            })
            .collect();
    }

    /// Appends one message of the event stream to the log.
    pub fn push_event(&mut self, m: &SseMessage) {
        let data: Value = serde_json::from_str(&m.data).unwrap_or(Value::Null);
        let head = EventHead::deserialize(&data).unwrap_or_default();
        let seq =
            m.id.as_deref()
                .and_then(|i| i.parse().ok())
                .or(head.seq)
                .unwrap_or(0);
        if seq > 0 && seq <= self.last_seq && seq + 1 < self.last_seq {
            // Sequence numbers went backwards by more than a replayed overlap: the daemon
            // restarted. Keep the log, note it, and follow the new numbering.
            self.push_line(EventLine {
                seq: 0,
                time: clock(head.at_ms.unwrap_or(0)),
                kind: "Restarted".into(),
                summary: "the daemon restarted: event numbers start again".into(),
            });
        }
        if seq > 0 {
            self.last_seq = seq;
        }
        let kind = m
            .event
            .clone()
            .or(head.kind)
            .unwrap_or_else(|| "message".into());
        if kind == "MemoryPressure"
            && let Some(level) = head.level
        {
            self.memory.pressure = level;
        }
        self.push_line(EventLine {
            seq,
            time: clock(head.at_ms.unwrap_or(0)),
            summary: summarize(&data, &m.data),
            kind,
        });
    }

    fn push_line(&mut self, line: EventLine) {
        if self.events.len() == EVENT_LOG {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds; `--:--:--` when unknown.
pub fn clock(at_ms: u64) -> String {
    if at_ms == 0 {
        return "--:--:--".into();
    }
    let secs = at_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Fields shown first, in this order; the rest follow by name. The order does not depend
/// on how serde_json orders maps.
const FIRST: [&str; 10] = [
    "tenant", "kind", "policy", "cache", "pool", "level", "amount", "code", "reason", "message",
];

/// The fields of an event as `k=v` pairs, without the envelope (`seq`, `at_ms`, `type`).
fn summarize(data: &Value, raw: &str) -> String {
    let Some(obj) = data.as_object() else {
        return raw.trim().to_string();
    };
    let mut fields: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "seq" | "at_ms" | "type"))
        .collect();
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    fields.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    fields
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            Value::Null => format!("{k}=-"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
