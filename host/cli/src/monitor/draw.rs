//! Rendering: one pure function from [`DashboardState`] to a frame. No I/O, no clock, so a
//! fixed state draws a fixed screen (tested against a `TestBackend`).

use super::state::{DashboardState, EventLine, Link, Pane};
use crate::report::human_bytes;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Gauge, Paragraph, Row, Sparkline, Table};

const KEYS: &str = " q quit  tab focus  \u{2191}\u{2193}/PgUp/PgDn scroll  p pause";

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, s: &DashboardState) {
    let [header, top, middle, lower, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(header_line(s), header);
    let [cpu, mem, req] = Layout::horizontal([
        Constraint::Percentage(30),
        Constraint::Percentage(40),
        Constraint::Percentage(30),
    ])
    .areas(top);
    draw_cpu(frame, s, cpu);
    draw_memory(frame, s, mem);
    draw_requests(frame, s, req);
    let [pools, tenants] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    draw_pools(frame, s, pools);
    draw_tenants(frame, s, tenants);
    let [policies, caches] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(lower);
    draw_policies(frame, s, policies);
    draw_caches(frame, s, caches);
    draw_events(frame, s, events);
    frame.render_widget(
        Paragraph::new(KEYS).style(Style::new().fg(Color::DarkGray)),
        footer,
    );
}

fn header_line(s: &DashboardState) -> Paragraph<'static> {
    let (status, color) = match &s.link {
        Link::Connecting => ("connecting...".to_string(), Color::Yellow),
        Link::Connected => ("connected".to_string(), Color::Green),
        Link::Disconnected(why) => {
            let why: String = why.chars().take(48).collect();
            (format!("disconnected: {why} (retrying)"), Color::Red)
        }
    };
    let mut spans = vec![
        Span::styled(
            " rmhost monitor ",
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{}  ", s.addr)),
    ];
    if s.paused {
        spans.push(Span::styled(
            "PAUSED",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        spans.push(Span::raw("  "));
    }
    spans.push(Span::styled(
        format!("\u{25cf} {status}"),
        Style::new().fg(color),
    ));
    spans.push(Span::raw(if s.stream_open {
        "  events: live"
    } else {
        "  events: down"
    }));
    Paragraph::new(Line::from(spans))
}

/// A bordered block; the focused pane is marked (visible in plain-text captures too).
fn block(title: &str, pane: Option<Pane>, s: &DashboardState) -> Block<'static> {
    let focused = pane.is_some_and(|p| p == s.focus);
    let title = if focused {
        format!(" \u{25b6} {title} ")
    } else {
        format!(" {title} ")
    };
    let style = if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    };
    Block::bordered().title(title).border_style(style)
}

/// The newest `width` samples.
fn tail(h: &std::collections::VecDeque<u64>, width: u16) -> Vec<u64> {
    let n = h.len().saturating_sub(width as usize);
    h.iter().skip(n).copied().collect()
}

fn draw_cpu(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let b = block("CPU", None, s);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [g, text, spark] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    let pct = s.cpu.percent.clamp(0.0, 100.0);
    frame.render_widget(
        Gauge::default()
            .ratio(pct / 100.0)
            .label(format!("{pct:.1}%"))
            .gauge_style(Style::new().fg(level_color(pct, 70.0, 90.0))),
        g,
    );
    frame.render_widget(
        Paragraph::new(format!(
            "load {:.2}  rmhost {:.1}%",
            s.cpu.load1, s.cpu.process_percent
        )),
        text,
    );
    frame.render_widget(
        Sparkline::default()
            .data(tail(&s.cpu_history, spark.width))
            .max(100)
            .style(Style::new().fg(Color::Green)),
        spark,
    );
}

fn level_color(v: f64, warn: f64, crit: f64) -> Color {
    if v >= crit {
        Color::Red
    } else if v >= warn {
        Color::Yellow
    } else {
        Color::Green
    }
}

fn draw_memory(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let m = &s.memory;
    let b = block("Memory", None, s);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [g, text] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    let ratio = if m.budget > 0 {
        (m.rss as f64 / m.budget as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pressure_color = match m.pressure.as_str() {
        "critical" => Color::Red,
        "warning" => Color::Yellow,
        "normal" => Color::Green,
        _ => Color::Gray,
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(format!(
                "heap {} of {} budget",
                human_bytes(m.rss),
                human_bytes(m.budget)
            ))
            .gauge_style(Style::new().fg(pressure_color)),
        g,
    );
    let sys_pct = if m.total > 0 {
        m.used as f64 * 100.0 / m.total as f64
    } else {
        0.0
    };
    let psi = m
        .psi_some
        .map_or("psi n/a".to_string(), |p| format!("psi {p:.2}%"));
    let pressure = if m.pressure.is_empty() {
        "unknown".to_string()
    } else {
        m.pressure.to_uppercase()
    };
    let lines = vec![
        Line::from(vec![
            Span::raw("pressure "),
            Span::styled(
                pressure,
                Style::new().fg(pressure_color).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("  {psi}  heap {:.1}%", m.rss_percent)),
        ]),
        Line::from(format!(
            "caches {}  allocations {}",
            human_bytes(m.cache_bytes),
            human_bytes(m.allocation_bytes)
        )),
        Line::from(format!(
            "system {} of {} ({sys_pct:.1}%)",
            human_bytes(m.used),
            human_bytes(m.total)
        )),
        Line::from(format!(
            "budget {} from {}",
            human_bytes(m.budget),
            if m.budget_source.is_empty() {
                "-"
            } else {
                &m.budget_source
            }
        )),
    ];
    frame.render_widget(Paragraph::new(lines), text);
}

fn draw_requests(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let b = block("Requests", None, s);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [text, spark] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);
    let now = s.rate_history.back().copied().unwrap_or(0);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!("{now}/s  {}/min", s.requests_per_minute)),
            Line::from(format!(
                "total {}  conns {}",
                s.requests_total, s.connections_active
            )),
        ]),
        text,
    );
    frame.render_widget(
        Sparkline::default()
            .data(tail(&s.rate_history, spark.width))
            .style(Style::new().fg(Color::Magenta)),
        spark,
    );
}

/// A table whose rows start at the pane's scroll offset.
fn table<'a>(
    header: &[&'a str],
    rows: Vec<Vec<String>>,
    widths: &[Constraint],
    title: &str,
    pane: Pane,
    s: &DashboardState,
    empty: &'a str,
) -> Table<'a> {
    let skip = s.scroll_of(pane).min(rows.len().saturating_sub(1));
    let mut body: Vec<Row> = rows
        .into_iter()
        .skip(skip)
        .map(|r| Row::new(r.into_iter().map(Cell::from)))
        .collect();
    if body.is_empty() {
        body.push(Row::new([Cell::from(empty)]).style(Style::new().fg(Color::DarkGray)));
    }
    Table::new(body, widths.to_vec())
        .header(
            Row::new(header.iter().copied().map(Cell::from))
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(block(title, Some(pane), s))
}

fn draw_pools(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let rows = s
        .pools
        .iter()
        .map(|p| {
            vec![
                p.pool.clone(),
                format!("{}/{}", p.size, p.max),
                p.idle.to_string(),
                p.in_use.to_string(),
                p.waiting.to_string(),
                p.timeouts.to_string(),
                p.circuit.clone(),
            ]
        })
        .collect();
    let w = [
        Constraint::Fill(1),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(9),
    ];
    let t = table(
        &["POOL", "SIZE", "IDLE", "USED", "WAIT", "TMOUTS", "CIRCUIT"],
        rows,
        &w,
        "Connection pools",
        Pane::Pools,
        s,
        "no pools configured",
    );
    frame.render_widget(t, area);
}

fn draw_tenants(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let rows = s
        .tenants
        .iter()
        .map(|t| {
            vec![
                t.tenant.clone(),
                human_bytes(t.memory),
                format!("{}m", t.cpu),
                t.connections.to_string(),
                t.allocations.to_string(),
            ]
        })
        .collect();
    let w = [
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(6),
    ];
    let t = table(
        &["TENANT", "MEMORY", "CPU", "CONN", "ALLOCS"],
        rows,
        &w,
        "Allocations by tenant",
        Pane::Tenants,
        s,
        "no allocations",
    );
    frame.render_widget(t, area);
}

fn draw_policies(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let rows = s
        .policies
        .iter()
        .map(|p| {
            vec![
                if p.quarantined {
                    format!("{} (quarantined)", p.name)
                } else {
                    p.name.clone()
                },
                p.kinds.clone(),
                if p.bindings.is_empty() {
                    "-".into()
                } else {
                    p.bindings.join(",")
                },
                p.calls.to_string(),
                p.faults.to_string(),
                format!("{:.1}\u{b5}s", p.p99_ns as f64 / 1000.0),
            ]
        })
        .collect();
    let w = [
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
    ];
    let t = table(
        &["POLICY", "KINDS", "BINDINGS", "CALLS", "FAULTS", "P99"],
        rows,
        &w,
        "Policies",
        Pane::Policies,
        s,
        "no policies loaded (native defaults decide)",
    );
    frame.render_widget(t, area);
}

fn draw_caches(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let rows = s
        .caches
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                // `builtin:lru` reads as `lru`: the column is narrow.
                c.policy
                    .strip_prefix("builtin:")
                    .unwrap_or(&c.policy)
                    .to_string(),
                human_bytes(c.bytes),
                if c.capacity > 0 {
                    format!("{:.0}%", c.bytes as f64 * 100.0 / c.capacity as f64)
                } else {
                    "-".into()
                },
                c.entries.to_string(),
                format!("{:.1}%", c.hit_ratio * 100.0),
                c.evictions.to_string(),
            ]
        })
        .collect();
    let w = [
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let t = table(
        &["CACHE", "POLICY", "BYTES", "FILL", "ITEMS", "HITS", "EVICT"],
        rows,
        &w,
        "Caches",
        Pane::Caches,
        s,
        "no caches",
    );
    frame.render_widget(t, area);
}

fn event_color(kind: &str) -> Color {
    match kind {
        "AllocationDenied" | "RateLimited" | "PolicyFault" | "CircuitOpened" => Color::Yellow,
        "PolicyQuarantined" | "PolicyReloadFailed" | "LeakDetected" | "Shutdown" | "Restarted" => {
            Color::Red
        }
        "MemoryPressure" | "ResourceAlerts" | "Alert" | "PressureAction" => Color::Magenta,
        "ResourceAllocated" | "PolicyLoaded" | "CircuitClosed" => Color::Green,
        _ => Color::Gray,
    }
}

fn event_line(e: &EventLine) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{} ", e.time), Style::new().fg(Color::DarkGray)),
        Span::raw(format!("{:>6} ", format!("#{}", e.seq))),
        Span::styled(
            format!("{:<18} ", e.kind),
            Style::new().fg(event_color(&e.kind)),
        ),
        Span::raw(e.summary.clone()),
    ])
}

fn draw_events(frame: &mut Frame, s: &DashboardState, area: Rect) {
    let b = block(
        &format!("Events ({} kept)", s.events.len()),
        Some(Pane::Events),
        s,
    );
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let height = inner.height as usize;
    // Scrolling moves back from the newest line.
    let back = s.scroll_of(Pane::Events).min(s.events.len());
    let end = s.events.len() - back;
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = s.events.range(start..end).map(event_line).collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new("waiting for events...").style(Style::new().fg(Color::DarkGray)),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
