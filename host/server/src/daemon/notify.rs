//! systemd's notify protocol (`Type=notify` units): `READY=1` once the API serves,
//! `STOPPING=1` when draining starts, and `WATCHDOG=1` every half of `WATCHDOG_USEC` when
//! the unit sets `WatchdogSec=`. Without `NOTIFY_SOCKET` in the environment every call is a
//! no-op, so the daemon behaves the same outside systemd.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Tells the service manager the daemon serves.
pub(super) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Tells the service manager the daemon is draining.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its interval while the runtime runs; None when the unit has
/// no watchdog. A wedged runtime stops the pings, and systemd restarts the service.
pub(super) fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    let every = every.max(Duration::from_millis(1));
    tracing::info!(
        every_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
