//! The I/O around the dashboard: the terminal (raw mode, alternate screen, restored on
//! exit and on panic), a poller of the JSON routes, a reader of the event stream, a key
//! reader, and the loop that applies their updates and redraws at most 4 times a second.
//!
//! Every source talks to the loop through one channel, so a daemon that goes away only
//! turns into `Disconnected` updates: the loop keeps drawing and the sources keep retrying.

use super::MonitorArgs;
use super::draw::draw;
use super::sse::{SseMessage, SseParser};
use super::state::{DashboardState, EVENT_LOG, Link};
use crate::{Client, ClientError, EXIT_USAGE};
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use rmhost_server::wire::{CacheInfo, MemoryStatus, PolicyList, PoolList, UsageReport};
use serde::de::DeserializeOwned;
use std::io::{IsTerminal, Stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The shortest redraw period: at most 4 frames a second.
const FRAME: Duration = Duration::from_millis(250);

/// Why a poll of `/v1/usage` counts the daemon as lost.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Nothing answered at the address: the reason alone (the address is in the title).
    #[error("{reason}")]
    Unreachable {
        /// Why, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The daemon answered with an error, or with a body the monitor cannot read.
    #[error(transparent)]
    Answer(ClientError),
    /// The poll did not finish within its bound.
    #[error("no answer in time")]
    Timeout,
}

impl From<ClientError> for PollError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unreachable { reason, .. } => PollError::Unreachable { reason },
            other => PollError::Answer(other),
        }
    }
}

/// One poll of the JSON routes. `usage` decides whether the daemon is reachable; the
/// others are optional (a tenant token may not see them all).
#[derive(Debug)]
pub struct Snapshot {
    /// Milliseconds since the monitor started, when the poll began.
    pub at_ms: u64,
    /// `GET /v1/usage`, or why it failed.
    pub usage: Result<UsageReport, PollError>,
    /// `GET /v1/memory`.
    pub memory: Option<MemoryStatus>,
    /// `GET /v1/pools`.
    pub pools: Option<PoolList>,
    /// `GET /v1/policies`.
    pub policies: Option<PolicyList>,
    /// `GET /v1/caches`.
    pub caches: Option<Vec<CacheInfo>>,
}

/// What the sources send the loop.
#[derive(Debug)]
enum Update {
    Key(KeyEvent),
    Resize,
    Snapshot(Box<Snapshot>),
    Event(SseMessage),
    Stream(bool),
}

/// Applies a poll to the state.
pub fn apply_snapshot(s: &mut DashboardState, snap: &Snapshot) {
    match &snap.usage {
        Ok(u) => {
            s.link = Link::Connected;
            s.apply_usage(u, snap.at_ms);
        }
        Err(why) => {
            s.link = Link::Disconnected(why.to_string());
            return;
        }
    }
    if let Some(v) = &snap.memory {
        s.apply_memory(v);
    }
    if let Some(v) = &snap.pools {
        s.apply_pools(v);
    }
    if let Some(v) = &snap.policies {
        s.apply_policies(v);
    }
    if let Some(v) = &snap.caches {
        s.apply_caches(v);
    }
}

/// Applies a key; answers true when the monitor should quit.
pub fn handle_key(s: &mut DashboardState, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return true,
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return true,
        KeyCode::Tab => s.focus = s.focus.next(),
        KeyCode::Char('p') | KeyCode::Char(' ') => s.paused = !s.paused,
        KeyCode::Up | KeyCode::Char('k') => s.scroll_by(scroll_dir(s, 1)),
        KeyCode::Down | KeyCode::Char('j') => s.scroll_by(scroll_dir(s, -1)),
        KeyCode::PageUp => s.scroll_by(scroll_dir(s, 10)),
        KeyCode::PageDown => s.scroll_by(scroll_dir(s, -10)),
        KeyCode::Home => {
            let i = s.focus;
            s.scroll_by(-(s.scroll_of(i) as isize));
        }
        _ => {}
    }
    false
}

/// `up` moves back in the event log (older lines) but towards the first row of a table.
fn scroll_dir(s: &DashboardState, up: isize) -> isize {
    if s.focus == super::state::Pane::Events {
        up
    } else {
        -up
    }
}

/// `http://host:port` for an `--addr` given as `host:port` or as a URL.
fn base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Leaves raw mode and the alternate screen; safe to call twice.
fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// The terminal in dashboard mode; dropping it restores the terminal.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalGuard")
    }
}

impl TerminalGuard {
    fn enter() -> std::io::Result<Self> {
        // A panic anywhere must not leave the user's shell in raw mode on the alternate
        // screen: restore first, then let the previous hook print the message.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore_terminal();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the dashboard until `q`.
pub async fn run(args: &MonitorArgs) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        eprintln!("rmhost: monitor needs a terminal (use `rmhost report --json` in scripts)");
        return Ok(EXIT_USAGE);
    }
    let interval = Duration::from_millis(args.interval.max(100));
    let addr = args.client.addr.clone();
    let token = args.client.token.clone();
    let (tx, mut rx) = mpsc::channel::<Update>(1024);
    let stop = Arc::new(AtomicBool::new(false));

    let mut guard = TerminalGuard::enter()?;
    let poller = tokio::spawn(poll_loop(
        Client::new(&addr, token.clone()),
        interval,
        tx.clone(),
    ));
    let stream = tokio::spawn(stream_loop(base_url(&addr), token, tx.clone()));
    let keys = spawn_key_reader(tx, stop.clone());

    let mut state = DashboardState::new(&addr);
    let mut held: Vec<SseMessage> = Vec::new();
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            u = rx.recv() => {
                let Some(u) = u else { break Ok(()) };
                dirty = true;
                match u {
                    Update::Key(k) => {
                        let was_paused = state.paused;
                        if handle_key(&mut state, k) {
                            break Ok(());
                        }
                        if was_paused && !state.paused {
                            for m in held.drain(..) {
                                state.push_event(&m);
                            }
                        }
                    }
                    Update::Resize => {}
                    Update::Snapshot(snap) => {
                        if state.paused {
                            // Frozen figures, but a lost daemon still shows.
                            if let Err(why) = &snap.usage {
                                state.link = Link::Disconnected(why.to_string());
                            } else {
                                state.link = Link::Connected;
                            }
                        } else {
                            apply_snapshot(&mut state, &snap);
                        }
                    }
                    Update::Event(m) => {
                        if state.paused {
                            if held.len() == EVENT_LOG {
                                held.remove(0);
                            }
                            held.push(m);
                        } else {
                            state.push_event(&m);
                        }
                    }
                    Update::Stream(open) => state.stream_open = open,
                }
            }
            _ = frame.tick() => {
                if dirty {
                    if let Err(e) = guard.terminal.draw(|f| draw(f, &state)) {
                        break Err(e.into());
                    }
                    dirty = false;
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    poller.abort();
    stream.abort();
    drop(guard);
    let _ = keys.join();
    result.map(|()| 0)
}

/// Reads keys on a thread (crossterm's reader blocks) until `stop` or the loop is gone.
fn spawn_key_reader(
    tx: mpsc::Sender<Update>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {
                    let u = match event::read() {
                        Ok(TermEvent::Key(k)) if k.kind == KeyEventKind::Press => Update::Key(k),
                        Ok(TermEvent::Resize(..)) => Update::Resize,
                        Ok(_) => continue,
                        Err(_) => break,
                    };
                    if tx.blocking_send(u).is_err() {
                        break;
                    }
                }
                Ok(false) => {}
                Err(_) => break,
            }
        }
    })
}

async fn get_opt<T: DeserializeOwned>(client: &Client, path: &str) -> Option<T> {
    client.get::<T>(path).await.ok()
}

/// Polls the JSON routes every `interval`; a poll is bounded so a hung daemon reads as
/// disconnected instead of freezing the figures.
async fn poll_loop(client: Client, interval: Duration, tx: mpsc::Sender<Update>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let bound = interval.max(Duration::from_secs(3));
    loop {
        tick.tick().await;
        let at_ms = start.elapsed().as_millis() as u64;
        let poll = async {
            let (usage, memory, pools, policies, caches) = tokio::join!(
                client.get::<UsageReport>("/v1/usage"),
                get_opt(&client, "/v1/memory"),
                get_opt(&client, "/v1/pools"),
                get_opt(&client, "/v1/policies"),
                get_opt(&client, "/v1/caches"),
            );
            Snapshot {
                at_ms,
                usage: usage.map_err(PollError::from),
                memory,
                pools,
                policies,
                caches,
            }
        };
        let snap = tokio::time::timeout(bound, poll).await.unwrap_or(Snapshot {
            at_ms,
            usage: Err(PollError::Timeout),
            memory: None,
            pools: None,
            policies: None,
            caches: None,
        });
        if tx.send(Update::Snapshot(Box::new(snap))).await.is_err() {
            return;
        }
    }
}

/// Follows `/v1/events`, reconnecting with `?since=` the last id seen, with a backoff of
/// one to five seconds while the daemon is away.
async fn stream_loop(base: String, token: Option<String>, tx: mpsc::Sender<Update>) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default();
    let mut last: u64 = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut req = http
            .get(format!("{base}/v1/events?since={last}"))
            .header("accept", "text/event-stream");
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if let Ok(mut resp) = req.send().await
            && resp.status().is_success()
        {
            backoff = Duration::from_secs(1);
            if tx.send(Update::Stream(true)).await.is_err() {
                return;
            }
            let mut parser = SseParser::new();
            // The daemon sends a keep-alive every 15 s: silence for longer means it is gone.
            while let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(40), resp.chunk()).await
            {
                for m in parser.feed(&chunk) {
                    if let Some(id) = m.id.as_deref().and_then(|i| i.parse().ok()) {
                        last = id;
                    }
                    if tx.send(Update::Event(m)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if tx.send(Update::Stream(false)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
