//! `rmhost profile -d SECS -o FILE [--interval MS] [--svg FILE]`: records the daemon's usage
//! as a JSON time series and draws it as an SVG chart (CPU, memory, connections,
//! requests).

use super::{Client, ClientArgs, EXIT_USAGE};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rmhost_server::wire::{Profile, ProfilePoint};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `rmhost profile`.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// How to reach the daemon.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Seconds to record.
    #[arg(short = 'd', long = "duration")]
    pub duration_s: u64,
    /// Where to write the JSON time series.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Sampling interval, ms.
    #[arg(long, default_value_t = 1000)]
    pub interval: u64,
    /// Also draw the series as an SVG chart here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// Runs `profile`.
pub async fn profile(args: &ProfileArgs) -> anyhow::Result<i32> {
    if args.duration_s == 0 || args.duration_s > 600 {
        eprintln!("rmhost: --duration must be between 1 and 600 seconds");
        return Ok(EXIT_USAGE);
    }
    let client = Client::new(&args.client.addr, args.client.token.clone());
    let path = format!(
        "/v1/profile?duration_ms={}&interval_ms={}",
        args.duration_s * 1000,
        args.interval
    );
    // The daemon answers only at the end: a local timer shows how far along it should be.
    let bar = recording_bar(args.duration_s);
    let ticker = tokio::spawn(tick_bar(bar.clone(), args.duration_s));
    let answer = client.get::<Profile>(&path).await;
    ticker.abort();
    bar.finish_and_clear();
    let r: Profile = match answer {
        Ok(v) => v,
        Err(e) => return Ok(super::client::report_error(e)),
    };
    std::fs::write(&args.output, serde_json::to_string_pretty(&r)? + "\n")?;
    let n = r.points.len();
    eprintln!("rmhost: {n} samples written to {}", args.output.display());
    if let Some(svg) = &args.svg {
        std::fs::write(svg, chart(&r))?;
        eprintln!("rmhost: chart written to {}", svg.display());
    }
    Ok(0)
}

/// A bar over the recording, in ms, drawn on stderr only when it is a terminal (quiet when
/// piped or redirected).
fn recording_bar(duration_s: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(duration_s * 1000), target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} recording [{bar:40}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn tick_bar(bar: ProgressBar, duration_s: u64) {
    let start = Instant::now();
    loop {
        let ms = start.elapsed().as_millis() as u64;
        bar.set_position(ms.min(duration_s * 1000));
        if ms >= duration_s * 1000 {
            bar.set_message("waiting for the daemon's answer");
        } else {
            bar.set_message(format!("{} / {duration_s} s", ms / 1000));
        }
        bar.tick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One panel of the chart.
struct Series {
    title: &'static str,
    unit: &'static str,
    values: Vec<(f64, f64)>,
    color: &'static str,
}

/// Draws the profile's four series as stacked line charts in one SVG document.
pub fn chart(profile: &Profile) -> String {
    let points = &profile.points;
    let t = |p: &ProfilePoint| p.t_ms as f64 / 1000.0;
    let series = [
        Series {
            title: "CPU",
            unit: "%",
            values: points
                .iter()
                .map(|p| (t(p), p.usage.cpu.percentage))
                .collect(),
            color: "#d62728",
        },
        Series {
            title: "Memory",
            unit: "%",
            values: points
                .iter()
                .map(|p| (t(p), p.usage.memory.percentage))
                .collect(),
            color: "#1f77b4",
        },
        Series {
            title: "Connections",
            unit: "active",
            values: points
                .iter()
                .map(|p| (t(p), p.usage.connections.active as f64))
                .collect(),
            color: "#2ca02c",
        },
        Series {
            title: "Requests",
            unit: "per minute",
            values: points
                .iter()
                .map(|p| (t(p), p.usage.requests.per_minute as f64))
                .collect(),
            color: "#9467bd",
        },
    ];
    let (w, panel_h, margin) = (800.0, 160.0, 50.0);
    let h = margin + series.len() as f64 * (panel_h + margin);
    let t_max = series[0].values.last().map_or(1.0, |v| v.0).max(1e-9);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, s) in series.iter().enumerate() {
        let top = margin + i as f64 * (panel_h + margin);
        let (left, right) = (70.0, w - 20.0);
        let y_max = s
            .values
            .iter()
            .map(|v| v.1)
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1;
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{}" font-weight="bold">{} ({})</text>"#,
            top - 8.0,
            s.title,
            s.unit
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{}" height="{panel_h}" fill="none" stroke="#999"/>"##,
            right - left
        );
        for frac in [0.0, 0.5, 1.0] {
            let y = top + panel_h * (1.0 - frac);
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{:.1}</text>"##,
                left - 6.0,
                y + 4.0,
                y_max * frac
            );
        }
        let pts: Vec<String> = s
            .values
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    left + (right - left) * x / t_max,
                    top + panel_h * (1.0 - y / y_max)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        let _ = writeln!(
            svg,
            r##"<text x="{right}" y="{}" text-anchor="end" fill="#555">{t_max:.1} s</text>"##,
            top + panel_h + 14.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmhost_core::telemetry::Usage;

    #[test]
    fn chart_has_a_line_per_series_with_every_point() {
        let p = |t_ms: u64, cpu: f64| {
            let mut usage = Usage::default();
            usage.cpu.percentage = cpu;
            usage.memory.percentage = 50.0;
            usage.connections.active = 3;
            usage.requests.per_minute = 10;
            ProfilePoint { t_ms, usage }
        };
        let svg = chart(&Profile {
            duration_ms: 2000,
            interval_ms: 1000,
            points: vec![p(0, 10.0), p(1000, 20.0), p(2000, 30.0)],
        });
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        let cpu_line = svg.lines().find(|l| l.contains("#d62728")).unwrap();
        assert_eq!(cpu_line.matches(',').count(), 3, "{cpu_line}");
        assert!(svg.contains("CPU (%)") && svg.contains("2.0 s"));
    }
}
