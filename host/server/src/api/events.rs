//! `GET /v1/events`: server-sent events. Each SSE message has the event's sequence number
//! as its id and type as its name; a client reconnecting with `Last-Event-ID` (or
//! `?since=SEQ`) first gets what it missed from the recent-events ring. A tenant token
//! only sees events about its own tenant.

use super::{ApiError, AppState, Caller};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use rmhost_core::events::Envelope;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay the recent events after this sequence number first (as `Last-Event-ID`).
    since: Option<u64>,
}

fn to_sse(e: &Envelope) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.event.name())
        .json_data(e)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
}

/// The stream.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "stream_events",
    tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last sequence number seen (a reconnecting client)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream`: each message's id is the event's sequence number, its name the event's type, its data the event as JSON. A tenant token sees its own tenant's events only.",
            body = String, content_type = "text/event-stream"),
        crate::api::doc::BadRequest,
        crate::api::doc::Unauthorized,
    )
)]
pub async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(q) = q?;
    super::int64_opt("since", q.since)?;
    let last_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let n = v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
            let n = n.ok_or_else(|| {
                ApiError::invalid("Last-Event-ID: must be an event's sequence number")
            })?;
            Some(super::int64("Last-Event-ID", n)?)
        }
    };
    let since = q.since.or(last_id);
    // Subscribe before reading the ring, so nothing falls between the two. A tenant gets
    // its own channel, so another tenant's flood of events cannot make it lag.
    let rx = match caller.tenant() {
        Some(t) => s.host.events.subscribe_tenant(t),
        None => s.host.events.subscribe(),
    };
    let backlog: Vec<Arc<Envelope>> = since.map(|n| s.host.events.recent(n)).unwrap_or_default();
    let after = backlog.last().map(|e| e.seq).unwrap_or(0);
    let allowed = move |e: &Envelope| match caller.tenant() {
        None => true,
        Some(own) => e.event.tenant() == Some(own),
    };
    let allowed2 = allowed.clone();
    let backlog = stream::iter(
        backlog
            .into_iter()
            .filter(move |e| allowed(e))
            .map(|e| Ok(to_sse(&e))),
    );
    let live = BroadcastStream::new(rx).filter_map(move |r| {
        let out = match r {
            Ok(e) if e.seq > after && allowed2(&e) => Some(Ok(to_sse(&e))),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(Ok(SseEvent::default()
                .event("Lagged")
                .data(format!("{{\"missed\":{n}}}")))),
        };
        futures::future::ready(out)
    });
    let mut stopping = s.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let body = backlog.chain(live).take_until(Box::pin(stop));
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
