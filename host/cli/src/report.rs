//! `rmhost report` and `rmhost health`: clients of a running daemon that print tables by
//! default and JSON with `--json`.

use super::{Client, ClientArgs};
use rmhost_core::health::{HealthReport, HealthStatus};
use rmhost_server::wire::{LatencyHistogram, PoolList, UsageReport};

/// Prints rows as aligned columns; the first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Bytes in a human unit.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

use super::client::report_error as fail;

fn amount(kind: &str, v: u64) -> String {
    if kind == "memory" {
        human_bytes(v)
    } else {
        v.to_string()
    }
}

/// `rmhost report`.
pub async fn report(args: &ClientArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let report: UsageReport = match client.get("/v1/usage").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    let usage = &report.usage;
    println!("System");
    println!(
        "{}",
        table(&[
            vec![
                "cpu".into(),
                format!("{:.1}%", usage.cpu.percentage),
                format!("load {:.2}", usage.cpu.load_average[0])
            ],
            vec![
                "memory".into(),
                format!("{:.1}%", usage.memory.percentage),
                format!(
                    "{} of {}",
                    human_bytes(usage.memory.used),
                    human_bytes(usage.memory.total)
                ),
            ],
            vec![
                "process rss".into(),
                human_bytes(usage.memory.process_rss),
                String::new()
            ],
            vec![
                "connections".into(),
                usage.connections.active.to_string(),
                format!("{} total", usage.connections.total)
            ],
            vec![
                "requests".into(),
                format!("{}/min", usage.requests.per_minute),
                format!("{} total", usage.requests.total)
            ],
            vec![
                "file handles".into(),
                usage.file_handles.open.to_string(),
                format!("limit {}", usage.file_handles.limit.unwrap_or(0)),
            ],
        ])
    );
    let alloc = &report.allocations;
    println!("Allocations (global)");
    let mut rows = vec![vec![
        "KIND".into(),
        "USED".into(),
        "LIMIT".into(),
        "%".into(),
        "COUNT".into(),
    ]];
    for k in &alloc.global {
        let kind = k.kind.as_str();
        rows.push(vec![
            kind.into(),
            amount(kind, k.used),
            amount(kind, k.limit.unwrap_or(0)),
            format!("{:.1}", k.percentage.unwrap_or(0.0)),
            k.allocations.to_string(),
        ]);
    }
    println!("{}", table(&rows));
    println!("Allocations by tenant");
    let mut rows = vec![vec![
        "TENANT".into(),
        "KIND".into(),
        "USED".into(),
        "QUOTA".into(),
        "COUNT".into(),
        "RATE LIMIT".into(),
    ]];
    for t in &alloc.tenants {
        for k in &t.kinds {
            if k.allocations == 0 && k.limit.is_none() {
                continue;
            }
            let kind = k.kind.as_str();
            rows.push(vec![
                t.tenant.clone(),
                kind.into(),
                amount(kind, k.used),
                k.limit
                    .map(|l| amount(kind, l))
                    .unwrap_or_else(|| "-".into()),
                k.allocations.to_string(),
                format!("{}/min", t.requests_per_minute_limit),
            ]);
        }
    }
    if rows.len() == 1 {
        println!("(no tenants)\n");
    } else {
        println!("{}", table(&rows));
    }
    Ok(0)
}

/// `rmhost health [-v]`: exit 0 healthy, 1 degraded, 2 unhealthy, 3 unreachable.
pub async fn health(args: &ClientArgs, verbose: bool) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let report: HealthReport = match client.get("/v1/health").await {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} (up {} s)", report.status.as_str(), report.uptime_s);
        if verbose {
            let mut rows = vec![vec!["CHECK".into(), "STATUS".into(), "DETAIL".into()]];
            for c in &report.checks {
                rows.push(vec![
                    c.name.clone(),
                    c.status.as_str().into(),
                    c.message.clone(),
                ]);
            }
            print!("{}", table(&rows));
        } else {
            for c in report
                .checks
                .iter()
                .filter(|c| c.status != HealthStatus::Healthy)
            {
                println!("  {}: {} ({})", c.name, c.status.as_str(), c.message);
            }
        }
    }
    Ok(report.status.exit_code())
}

/// `rmhost connections`: the pools as a table (or JSON).
pub async fn connections(args: &ClientArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args.addr, args.token.clone());
    let list: PoolList = match client.get("/v1/pools").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    let pools = &list.pools;
    if pools.is_empty() {
        println!("no pools configured (set DATABASE_URL / REDIS_URL or [pools.*] in rmhost.toml)");
        return Ok(0);
    }
    let mut rows = vec![
        [
            "POOL",
            "SIZE",
            "IDLE",
            "IN USE",
            "WAITING",
            "MAX",
            "ACQUIRES",
            "TIMEOUTS",
            "RECYCLED",
            "FAILED PINGS",
            "PING",
            "P99 ACQUIRE",
            "CIRCUIT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in pools {
        let p99 = p99_us(&p.acquire_latency).map_or("-".to_string(), |us| {
            format!("{:.2} ms", us as f64 / 1000.0)
        });
        rows.push(vec![
            p.pool.clone(),
            p.size.to_string(),
            p.idle.to_string(),
            p.in_use.to_string(),
            p.waiting.to_string(),
            p.max.to_string(),
            p.acquires.to_string(),
            p.timeouts.to_string(),
            p.recycled.to_string(),
            p.failed_health_checks.to_string(),
            p.last_ping_ms
                .map_or("-".into(), |ms| format!("{ms:.2} ms")),
            p99,
            p.circuit.as_str().to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}

/// The upper bound of the bucket holding the 99th percentile of a latency histogram
/// (`u64::MAX` when it falls in the `+Inf` bucket).
fn p99_us(h: &LatencyHistogram) -> Option<u64> {
    if h.count == 0 {
        return None;
    }
    let target = (h.count as f64 * 0.99).ceil() as u64;
    h.cumulative_counts
        .iter()
        .position(|&c| c >= target)
        .map(|i| h.bounds_us.get(i).copied().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_bytes_read_well() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["ccc".into(), "d".into()],
        ]);
        assert_eq!(t, "A    BB\nccc  d\n");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
