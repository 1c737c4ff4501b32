//! `LISTEN rm_ledger`: what other hosts changed (a preemption, a reclaim, a quota or rate
//! override, a binding, a cache definition), turned into [`RemoteChange`]s for this host. A pooled
//! connection cannot listen (deadpool hides the connection's message stream), so the
//! listener holds one connection of its own and reconnects after a failure.

use super::Shared;
use super::ops::parse_reason;
use crate::policy::ResourceKind;
use crate::resources::{Allocation, CacheDef, RemoteChange};
use futures::StreamExt;
use serde::Deserialize;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::AsyncMessage;

#[derive(Deserialize)]
struct Note {
    host: String,
    what: String,
    body: serde_json::Value,
}

#[derive(Deserialize)]
struct QuotaBody {
    tenant: String,
    kind: String,
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct CacheBody {
    name: String,
    def: Option<CacheDef>,
}

#[derive(Deserialize)]
struct RateBody {
    tenant: String,
    per_minute: Option<i64>,
}

/// Decodes one notification; `None` for this host's own or one it does not know.
pub(super) fn decode(own_host: &str, payload: &str) -> Option<RemoteChange> {
    let note: Note = serde_json::from_str(payload).ok()?;
    if note.host == own_host {
        return None;
    }
    if let Some(reason) = parse_reason(&note.what) {
        let allocations: Vec<Allocation> = serde_json::from_value(note.body).ok()?;
        return Some(RemoteChange::Released {
            allocations,
            reason,
        });
    }
    match note.what.as_str() {
        "quota" => {
            let b: QuotaBody = serde_json::from_value(note.body).ok()?;
            Some(RemoteChange::Quota {
                tenant: b.tenant,
                kind: ResourceKind::from_str(&b.kind).ok()?,
                limit: b.limit.map(|l| l.max(0) as u64),
            })
        }
        "binding" => Some(RemoteChange::Binding(
            serde_json::from_value(note.body).ok()?,
        )),
        "cache" => {
            let b: CacheBody = serde_json::from_value(note.body).ok()?;
            Some(RemoteChange::Cache {
                name: b.name,
                def: b.def,
            })
        }
        "rate" => {
            let b: RateBody = serde_json::from_value(note.body).ok()?;
            Some(RemoteChange::Rate {
                tenant: b.tenant,
                per_minute: b.per_minute.map(|p| p.clamp(1, u32::MAX as i64) as u32),
            })
        }
        _ => None,
    }
}

/// Listens until the channel closes, reconnecting after a failure. `ready` fires once the
/// first `LISTEN` is in place (the host waits for it at start, so it hears every change
/// made after it started); after a reconnect a [`RemoteChange::Resync`] stands in for
/// what was said while no connection listened.
pub(super) async fn listen_loop(
    s: Arc<Shared>,
    config: tokio_postgres::Config,
    tls: crate::tls::PgTls,
    tx: UnboundedSender<RemoteChange>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if let Err(e) = listen_once(&s, &config, &tls, &tx, &mut ready).await {
            tracing::debug!(error = %e, "ledger listener lost its connection; reconnecting");
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn listen_once(
    s: &Shared,
    config: &tokio_postgres::Config,
    tls: &crate::tls::PgTls,
    tx: &UnboundedSender<RemoteChange>,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = config.connect(tls.clone()).await?;
    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if msg_tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute("LISTEN rm_ledger").await?;
    // Nobody waits for the first LISTEN any more when it came too late: resync then too.
    if ready.take().is_none_or(|first| first.send(()).is_err()) {
        let _ = tx.send(RemoteChange::Resync);
    }
    while let Some(payload) = msg_rx.recv().await {
        if let Some(change) = decode(&s.opts.host_id, &payload)
            && tx.send(change).is_err()
        {
            break;
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}
