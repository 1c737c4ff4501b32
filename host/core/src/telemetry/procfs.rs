//! What sysinfo does not give us, read straight from Linux: PSI (`/proc/pressure/*`), the
//! cgroup memory limit and working set, open file handles, the fd limit, and the process's
//! own `/proc/self/stat` figures behind the standard `process_*` metrics.
//!
//! Everything here is optional: a file that is absent (an older kernel, not Linux, no
//! cgroup) or unparsable yields `None`, never an error, because telemetry must keep
//! flowing on any machine. Parsers take text so tests need no real `/proc`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One PSI line: the share of wall time stalled over 10 s, 60 s and 300 s (percent), and
/// the total stall time (µs).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PsiLine {
    /// Percent of the last 10 s.
    pub avg10: f64,
    /// Percent of the last 60 s.
    pub avg60: f64,
    /// Percent of the last 300 s.
    pub avg300: f64,
    /// Total stall time, µs.
    pub total: u64,
}

/// One resource's pressure: `some` (at least one task stalled) and `full` (all non-idle
/// tasks stalled; absent for CPU on older kernels).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All tasks stalled.
    pub full: Option<PsiLine>,
}

/// PSI for CPU, memory and IO; `None` where the kernel does not provide it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pressure {
    /// `/proc/pressure/cpu`.
    pub cpu: Option<Psi>,
    /// `/proc/pressure/memory`.
    pub memory: Option<Psi>,
    /// `/proc/pressure/io`.
    pub io: Option<Psi>,
}

fn parse_psi_line(fields: &str) -> Option<PsiLine> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields.split_whitespace() {
        let (key, value) = field.split_once('=')?;
        match key {
            "avg10" => avg10 = Some(value.parse::<f64>().ok()?),
            "avg60" => avg60 = Some(value.parse::<f64>().ok()?),
            "avg300" => avg300 = Some(value.parse::<f64>().ok()?),
            "total" => total = Some(value.parse::<u64>().ok()?),
            _ => {} // newer kernels may add fields
        }
    }
    Some(PsiLine {
        avg10: avg10?,
        avg60: avg60?,
        avg300: avg300?,
        total: total?,
    })
}

/// Parses a `/proc/pressure/*` file. A `some` line is required; `full` is optional.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let (mut some, mut full) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "some" => some = Some(parse_psi_line(rest)?),
            "full" => full = Some(parse_psi_line(rest)?),
            _ => return None,
        }
    }
    Some(Psi { some: some?, full })
}

/// Reads PSI for cpu, memory and io under `root` (normally `/proc/pressure`).
pub fn read_pressure(root: &Path) -> Pressure {
    let read = |name: &str| {
        std::fs::read_to_string(root.join(name))
            .ok()
            .and_then(|t| parse_psi(&t))
    };
    Pressure {
        cpu: read("cpu"),
        memory: read("memory"),
        io: read("io"),
    }
}

/// v1 writes "no limit" as a huge page-aligned number (e.g. 9223372036854771712); anything
/// above 2^60 bytes (1 EiB) is taken as unlimited.
const UNLIMITED_ABOVE: u64 = 1 << 60;

/// Parses `memory.max` (v2; `max` = no limit) or `memory.limit_in_bytes` (v1).
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&n| n < UNLIMITED_ABOVE)
}

/// `inactive_file` (v2) or `total_inactive_file` (v1) from `memory.stat`: page cache the
/// kernel can drop cheaply, subtracted from usage to get the working set (as kubelet does).
pub fn parse_inactive_file(stat: &str) -> Option<u64> {
    let mut v2 = None;
    for line in stat.lines() {
        match line.split_once(' ') {
            Some(("total_inactive_file", n)) => return n.trim().parse().ok(),
            Some(("inactive_file", n)) => v2 = n.trim().parse().ok(),
            _ => {}
        }
    }
    v2
}

/// The files that describe this process's memory cgroup, found once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMemory {
    /// Limit files from the process's own cgroup up to the root; the effective limit is
    /// the lowest of them.
    pub limit_files: Vec<PathBuf>,
    /// The process cgroup's usage file.
    pub usage_file: Option<PathBuf>,
    /// The process cgroup's `memory.stat`.
    pub stat_file: Option<PathBuf>,
}

impl CgroupMemory {
    /// Finds the memory cgroup from `/proc/self/cgroup`'s text under `root`
    /// (`/sys/fs/cgroup`). v1 (a `memory` controller line) wins over v2 (`0::`), as the
    /// kernel uses the v1 controller when both are mounted.
    pub fn discover(proc_self_cgroup: &str, root: &Path) -> Self {
        let mut v1 = None;
        let mut v2 = None;
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(c), Some(p)) => (id, c, p),
                _ => continue,
            };
            if controllers.split(',').any(|c| c == "memory") {
                v1 = Some(path.to_string());
            } else if controllers.is_empty() {
                v2 = Some(path.to_string());
            }
        }
        let (base, limit, usage, candidates) = if let Some(p) = v1 {
            (
                root.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                p,
            )
        } else {
            (
                root.to_path_buf(),
                "memory.max",
                "memory.current",
                v2.unwrap_or_else(|| "/".to_string()),
            )
        };
        // In a cgroup namespace the process sees its own cgroup as `/`; outside one, the
        // full path. Either way, walk from the deepest existing directory up to the root.
        let rel: Vec<&str> = candidates.split('/').filter(|s| !s.is_empty()).collect();
        let mut dirs = Vec::new();
        for depth in (0..=rel.len()).rev() {
            let dir = rel[..depth].iter().fold(base.clone(), |d, s| d.join(s));
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
        let own = dirs.first().cloned();
        CgroupMemory {
            limit_files: dirs
                .iter()
                .map(|d| d.join(limit))
                .filter(|f| f.is_file())
                .collect(),
            usage_file: own.as_ref().map(|d| d.join(usage)).filter(|f| f.is_file()),
            stat_file: own.map(|d| d.join("memory.stat")).filter(|f| f.is_file()),
        }
    }

    /// The effective limit (lowest along the path), bytes; `None` when unlimited.
    pub fn limit(&self) -> Option<u64> {
        self.limit_files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .filter_map(|t| parse_cgroup_limit(&t))
            .min()
    }

    /// The cgroup's working set (usage minus inactive page cache), bytes.
    pub fn working_set(&self) -> Option<u64> {
        let usage: u64 = std::fs::read_to_string(self.usage_file.as_ref()?)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let inactive = self
            .stat_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| parse_inactive_file(&t))
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }
}

/// Open file descriptors of this process (entries of `/proc/self/fd`, less the one used
/// to list them); `None` without `/proc`.
pub fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft `RLIMIT_NOFILE`; `None` when unlimited or unknown.
pub fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live, aligned local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    #[allow(clippy::unnecessary_cast)] // `rlim_t` is not u64 on every target
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// This process's figures from `/proc/self/stat` and `/proc/stat`, as the standard
/// Prometheus process collector reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessStat {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat` (`stat`) with the boot time from `/proc/stat` (`proc_stat`),
/// given the clock ticks per second and the page size; `None` if either is malformed.
pub fn parse_process_stat(
    stat: &str,
    proc_stat: &str,
    ticks_per_sec: f64,
    page_size: u64,
) -> Option<ProcessStat> {
    // The command name (field 2) may hold spaces and parentheses: fields start after the
    // last `)`, with field 3 (state) first.
    let rest: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    if ticks_per_sec <= 0.0 {
        return None;
    }
    Some(ProcessStat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks_per_sec,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(page_size),
        start_time_seconds: btime as f64 + field(22)? as f64 / ticks_per_sec,
    })
}

/// Reads [`ProcessStat`] for this process; `None` without `/proc`.
pub fn process_stat() -> Option<ProcessStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    parse_process_stat(&stat, &proc_stat, ticks as f64, u64::try_from(page).ok()?)
}
