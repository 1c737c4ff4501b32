//! `rmhost report` and `rmhost health`: clients of a running daemon that print tables by
//! default and JSON with `--json`.

use super::{Client, ClientArgs};
use rmhost_core::health::{HealthReport, HealthStatus};
use serde_json::Value;

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
    let usage: Value = match client.get("/v1/usage").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
        return Ok(0);
    }
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    println!("System");
    println!(
        "{}",
        table(&[
            vec![
                "cpu".into(),
                format!("{:.1}%", n(&usage["cpu"]["percentage"])),
                format!("load {:.2}", n(&usage["cpu"]["load_average"][0]))
            ],
            vec![
                "memory".into(),
                format!("{:.1}%", n(&usage["memory"]["percentage"])),
                format!(
                    "{} of {}",
                    human_bytes(u(&usage["memory"]["used"])),
                    human_bytes(u(&usage["memory"]["total"]))
                ),
            ],
            vec![
                "process rss".into(),
                human_bytes(u(&usage["memory"]["process_rss"])),
                String::new()
            ],
            vec![
                "connections".into(),
                u(&usage["connections"]["active"]).to_string(),
                format!("{} total", u(&usage["connections"]["total"]))
            ],
            vec![
                "requests".into(),
                format!("{}/min", u(&usage["requests"]["per_minute"])),
                format!("{} total", u(&usage["requests"]["total"]))
            ],
            vec![
                "file handles".into(),
                u(&usage["file_handles"]["open"]).to_string(),
                format!("limit {}", u(&usage["file_handles"]["limit"])),
            ],
        ])
    );
    let alloc = &usage["allocations"];
    println!("Allocations (global)");
    let mut rows = vec![vec![
        "KIND".into(),
        "USED".into(),
        "LIMIT".into(),
        "%".into(),
        "COUNT".into(),
    ]];
    for k in alloc["global"].as_array().into_iter().flatten() {
        let kind = k["kind"].as_str().unwrap_or("?");
        rows.push(vec![
            kind.into(),
            amount(kind, u(&k["used"])),
            amount(kind, u(&k["limit"])),
            format!("{:.1}", n(&k["percentage"])),
            u(&k["allocations"]).to_string(),
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
    for t in alloc["tenants"].as_array().into_iter().flatten() {
        let name = t["tenant"].as_str().unwrap_or("?");
        for k in t["kinds"].as_array().into_iter().flatten() {
            if u(&k["allocations"]) == 0 && k["limit"].is_null() {
                continue;
            }
            let kind = k["kind"].as_str().unwrap_or("?");
            rows.push(vec![
                name.into(),
                kind.into(),
                amount(kind, u(&k["used"])),
                k["limit"]
                    .as_u64()
                    .map(|l| amount(kind, l))
                    .unwrap_or_else(|| "-".into()),
                u(&k["allocations"]).to_string(),
                format!("{}/min", u(&t["requests_per_minute_limit"])),
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
    let v: Value = match client.get("/v1/pools").await {
        Ok(v) => v,
        Err(e) => return Ok(fail(e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let pools = v["pools"].as_array().cloned().unwrap_or_default();
    if pools.is_empty() {
        println!("no pools configured (set DATABASE_URL / REDIS_URL or [pools.*] in rmhost.toml)");
        return Ok(0);
    }
    let u = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0).to_string();
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
    for p in &pools {
        let h = &p["acquire_latency"];
        let p99 = p99_us(h).map_or("-".to_string(), |us| {
            format!("{:.2} ms", us as f64 / 1000.0)
        });
        rows.push(vec![
            p["pool"].as_str().unwrap_or("?").to_string(),
            u(p, "size"),
            u(p, "idle"),
            u(p, "in_use"),
            u(p, "waiting"),
            u(p, "max"),
            u(p, "acquires"),
            u(p, "timeouts"),
            u(p, "recycled"),
            u(p, "failed_health_checks"),
            p["last_ping_ms"]
                .as_f64()
                .map_or("-".into(), |ms| format!("{ms:.2} ms")),
            p99,
            p["circuit"].as_str().unwrap_or("?").to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}

/// The upper bound of the bucket holding the 99th percentile of a latency histogram.
fn p99_us(h: &Value) -> Option<u64> {
    let count = h["count"].as_u64()?;
    if count == 0 {
        return None;
    }
    let target = (count as f64 * 0.99).ceil() as u64;
    let bounds = h["bounds_us"].as_array()?;
    let counts = h["cumulative_counts"].as_array()?;
    counts
        .iter()
        .position(|c| c.as_u64().unwrap_or(0) >= target)
        .map(|i| bounds.get(i).and_then(Value::as_u64).unwrap_or(u64::MAX))
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
