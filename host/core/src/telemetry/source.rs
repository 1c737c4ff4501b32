//! Where samples come from: the [`TelemetrySource`] seam, the real [`SysinfoSource`], and a
//! scriptable [`FakeSource`] so pressure logic elsewhere is tested without a real machine.

use super::TelemetryError;
use super::procfs::{self, CgroupMemory, Pressure, Psi};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading of the machine and the process. Counters (connections, requests) are not
/// here: they live in [`super::Telemetry`] and are always current.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RawSample {
    /// Wall clock at the sample, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// System-wide CPU use, 0-100.
    pub cpu_percent: f64,
    /// Logical CPUs.
    pub cores: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load_average: [f64; 3],
    /// This process's CPU use; 100 = one core fully busy.
    pub process_cpu_percent: f64,
    /// System memory in use, bytes.
    pub memory_used: u64,
    /// System memory in all, bytes.
    pub memory_total: u64,
    /// System memory available for new work, bytes.
    pub memory_available: u64,
    /// This process's resident set, bytes.
    pub process_rss: u64,
    /// The memory cgroup's limit, bytes; `None` when unlimited or not in a cgroup.
    pub cgroup_limit: Option<u64>,
    /// The memory cgroup's working set (usage less inactive page cache), bytes.
    pub cgroup_usage: Option<u64>,
    /// Open file descriptors of this process.
    pub file_handles_open: u64,
    /// The soft fd limit; `None` when unlimited.
    pub file_handles_limit: Option<u64>,
    /// PSI.
    pub pressure: Pressure,
}

/// Reads the machine. Implementations may block briefly (file reads); `Telemetry::spawn`
/// calls them on the blocking pool.
pub trait TelemetrySource: Send {
    /// Takes one sample.
    fn sample(&mut self) -> RawSample;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The real source: sysinfo for CPU, memory and the process; `/proc` and `/sys` for PSI,
/// cgroups and file handles.
///
/// It refreshes only what it reports: global CPU usage, RAM, and this one process by pid
/// (never the whole process table), which keeps a 1 s sampling interval far below 1% of a
/// core (see `benches/telemetry.rs`).
pub struct SysinfoSource {
    sys: System,
    pid: Option<Pid>,
    cgroup: CgroupMemory,
    pressure_root: PathBuf,
}

impl std::fmt::Debug for SysinfoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysinfoSource")
            .field("pid", &self.pid)
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

impl SysinfoSource {
    /// Opens the source and takes a first CPU reading, since CPU use is a difference
    /// between two readings: the first real sample is meaningful once
    /// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (200 ms) has passed.
    pub fn new() -> Result<Self, TelemetryError> {
        let sys = System::new().map_err(|e| TelemetryError::Init(e.to_string()))?;
        let cgroup_text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut source = SysinfoSource {
            sys,
            pid: sysinfo::get_current_pid().ok(),
            cgroup: CgroupMemory::discover(&cgroup_text, "/sys/fs/cgroup".as_ref()),
            pressure_root: PathBuf::from("/proc/pressure"),
        };
        source.refresh();
        Ok(source)
    }

    fn refresh(&mut self) {
        self.sys.refresh_cpu_usage();
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
        }
    }
}

impl TelemetrySource for SysinfoSource {
    fn sample(&mut self) -> RawSample {
        self.refresh();
        let process = self.pid.and_then(|pid| self.sys.process(pid));
        let load = System::load_average().ok();
        RawSample {
            timestamp_ms: now_ms(),
            cpu_percent: f64::from(self.sys.global_cpu_usage()),
            cores: self.sys.cpus().len() as u32,
            load_average: load.map_or([0.0; 3], |l| [l.one, l.five, l.fifteen]),
            process_cpu_percent: process.map_or(0.0, |p| f64::from(p.cpu_usage())),
            memory_used: self.sys.used_memory(),
            memory_total: self.sys.total_memory(),
            memory_available: self.sys.available_memory(),
            process_rss: process.map_or(0, |p| p.memory()),
            cgroup_limit: self.cgroup.limit(),
            cgroup_usage: self.cgroup.working_set(),
            file_handles_open: procfs::open_fds().unwrap_or(0),
            file_handles_limit: procfs::fd_limit(),
            pressure: procfs::read_pressure(&self.pressure_root),
        }
    }
}

#[derive(Debug, Default)]
struct FakeState {
    current: RawSample,
    queue: VecDeque<RawSample>,
    taken: u64,
}

/// A scriptable source for tests. Clones share state, so a test keeps one clone and hands
/// the other to `Telemetry::new`:
///
/// ```
/// # use rmhost_core::telemetry::{FakeSource, Telemetry};
/// let fake = FakeSource::new().with_memory(700, 1000);
/// let telemetry = Telemetry::new(Box::new(fake.clone()));
/// fake.update(|s| s.memory_used = 900);
/// assert_eq!(telemetry.sample_now().memory.used, 900);
/// ```
///
/// Each sample returns the next queued sample ([`FakeSource::push`]) if any, else the
/// current one ([`FakeSource::set`] / [`FakeSource::update`]).
#[derive(Debug, Clone, Default)]
pub struct FakeSource {
    state: Arc<Mutex<FakeState>>,
}

impl FakeSource {
    /// A source whose samples are all zeros (`cores` 1).
    pub fn new() -> Self {
        let fake = FakeSource::default();
        fake.update(|s| s.cores = 1);
        fake
    }

    /// Sets memory used and total (available = total - used).
    pub fn with_memory(self, used: u64, total: u64) -> Self {
        self.update(|s| {
            s.memory_used = used;
            s.memory_total = total;
            s.memory_available = total.saturating_sub(used);
        });
        self
    }

    /// Sets the process's RSS.
    pub fn with_rss(self, rss: u64) -> Self {
        self.update(|s| s.process_rss = rss);
        self
    }

    /// Sets the memory PSI's `some avg10`.
    pub fn with_memory_psi(self, avg10: f64) -> Self {
        self.update(|s| {
            let mut psi = s.pressure.memory.unwrap_or_default();
            psi.some.avg10 = avg10;
            s.pressure.memory = Some(psi);
        });
        self
    }

    /// Replaces the current sample.
    pub fn set(&self, sample: RawSample) {
        self.state.lock().current = sample;
    }

    /// Edits the current sample.
    pub fn update(&self, f: impl FnOnce(&mut RawSample)) {
        f(&mut self.state.lock().current);
    }

    /// Queues a sample to be returned once, before the current one.
    pub fn push(&self, sample: RawSample) {
        self.state.lock().queue.push_back(sample);
    }

    /// Samples taken so far.
    pub fn samples_taken(&self) -> u64 {
        self.state.lock().taken
    }

    /// Sets a resource's PSI.
    pub fn set_pressure(&self, cpu: Option<Psi>, memory: Option<Psi>, io: Option<Psi>) {
        self.update(|s| s.pressure = Pressure { cpu, memory, io });
    }
}

impl TelemetrySource for FakeSource {
    fn sample(&mut self) -> RawSample {
        let mut state = self.state.lock();
        state.taken += 1;
        match state.queue.pop_front() {
            Some(sample) => sample,
            None => state.current.clone(),
        }
    }
}
