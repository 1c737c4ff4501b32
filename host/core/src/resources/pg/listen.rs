//! `LISTEN rm_ledger`: what other hosts changed (a release, a preemption, a reclaim, a
//! quota or rate override), turned into [`RemoteChange`]s for this host. A pooled
//! connection cannot listen (deadpool hides the connection's message stream), so the
//! listener holds one connection of its own and reconnects after a failure.

use super::Shared;
use super::ops::parse_reason;
use crate::policy::ResourceKind;
use crate::resources::{Allocation, RemoteChange};
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

pub(super) async fn listen_loop(
    s: Arc<Shared>,
    config: tokio_postgres::Config,
    tls: crate::tls::PgTls,
    tx: UnboundedSender<RemoteChange>,
) {
    loop {
        if let Err(e) = listen_once(&s, &config, &tls, &tx).await {
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
