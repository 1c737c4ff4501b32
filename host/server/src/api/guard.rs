//! Guards in front of every route.
//!
//! With auth off the daemon serves loopback only, and every caller is admin — so a web page
//! in the operator's browser must not be able to reach it: a DNS-rebinding page arrives with
//! a foreign `Host`, a cross-site `fetch` (even a body-less `POST /v1/gc`) with a foreign
//! `Origin` or `Sec-Fetch-Site: cross-site`. Those are refused with 403 before any handler
//! runs. With auth on, tokens decide instead (browsers cannot attach a bearer token
//! cross-site without CORS, which the daemon never grants).

use super::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// Whether `authority` (`host[:port]`) names this machine's loopback.
pub fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        // `[::1]:7070`
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                authority
            }
        }),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Origin` header value is a loopback origin (`null` is not: sandboxed frames
/// and `file:` pages send it).
pub fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| is_loopback_authority(rest.split('/').next().unwrap_or("")))
}

/// The middleware: see the module docs.
pub async fn loopback_only(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.auth.enabled() {
        return next.run(req).await;
    }
    let h = req.headers();
    let text = |v: &axum::http::HeaderValue| v.to_str().unwrap_or("\u{fffd}").to_string();
    if let Some(host) = h.get(HOST).map(text)
        && !is_loopback_authority(&host)
    {
        return ApiError::forbidden(format!(
            "Host {host:?} is not a loopback name: without [auth] the daemon answers only \
             requests addressed to localhost"
        ))
        .into_response();
    }
    if let Some(origin) = h.get(ORIGIN).map(text)
        && !is_loopback_origin(&origin)
    {
        return ApiError::forbidden(format!(
            "Origin {origin:?} is foreign: without [auth] cross-site requests are refused"
        ))
        .into_response();
    }
    if h.get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return ApiError::forbidden("cross-site requests are refused without [auth]")
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses() {
        for ok in [
            "localhost",
            "localhost:7070",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1",
            "127.0.0.1:7070",
            "127.1.2.3:80",
            "[::1]:7070",
            "[::1]",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7070",
            "localhost.evil.example",
            "10.0.0.1:7070",
            "[2001:db8::1]:80",
            "",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert!(is_loopback_origin("http://localhost:3000"));
        assert!(is_loopback_origin("http://127.0.0.1:7070"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("null"));
        assert!(!is_loopback_origin("http://localhost.evil.example"));
    }
}
