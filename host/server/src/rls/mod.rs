//! Envoy's global rate-limit service: `envoy.service.ratelimit.v3.RateLimitService/
//! ShouldRateLimit` over gRPC (tonic), on its own port (`[grpc] listen`).
//!
//! Owns: the gRPC surface only. Every decision is [`Host::rate_check`], the same call
//! `POST /v1/ratelimit/check` makes, so a tenant's limit is one budget whichever protocol
//! asks, and with `[state] ratelimit = "redis://..."` one budget across hosts.
//!
//! Mapping (the why of each choice is in [`request`] and [`response`]):
//! - the descriptor entry keyed `[grpc] tenant_key` (default `tenant`) names the tenant;
//!   other entries are ignored (rmhost limits per tenant);
//! - the cost is the descriptor's `hits_addend`, else the request's, 0 meaning 1;
//! - each descriptor is one check; the answer is OVER_LIMIT when any is over, with a status
//!   per descriptor and `RateLimit-*` / `Retry-After` headers for Envoy to add.
//!
//! Errors are gRPC codes Envoy acts on: a malformed request is INVALID_ARGUMENT, a missing
//! or unknown token UNAUTHENTICATED, another tenant's descriptor PERMISSION_DENIED, and a
//! shared backend that is down (with `ratelimit_failure = "closed"`) UNAVAILABLE, so the
//! filter's `failure_mode_deny` decides what Envoy does.
//!
//! Auth: with `[auth]` set, calls need `authorization: Bearer TOKEN` metadata (the admin
//! token, or a tenant's token for that tenant's descriptors), the same hashes as HTTP.
//! Without it the daemon only listens on loopback (checked at start, as for HTTP); gRPC
//! needs HTTP/2 with prior knowledge, which no browser speaks, so the HTTP API's
//! DNS-rebinding guard has nothing to guard here.

pub mod capped;
pub mod request;
pub mod response;

use crate::api::{ApiError, Authenticator, Caller};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use rmhost_core::host::{Host, RateCheckError};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// The `RateLimitService` implementation over a [`Host`].
#[derive(Debug, Clone)]
pub struct RlsService {
    host: Arc<Host>,
    auth: Authenticator,
    tenant_key: String,
    domain: Option<String>,
}

impl RlsService {
    /// The service as `[grpc]` and `[auth]` of the host's config set it up.
    pub fn new(host: Arc<Host>) -> RlsService {
        let grpc = &host.config.grpc;
        RlsService {
            auth: Authenticator::new(&host.config.auth),
            tenant_key: grpc.tenant_key.clone(),
            domain: grpc.domain.clone(),
            host,
        }
    }

    fn caller(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
        self.auth.resolve(header).map_err(|e| status_of_api(&e))
    }
}

#[tonic::async_trait]
impl RateLimitService for RlsService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        // Who asks comes first: an unauthenticated caller learns nothing about the request.
        let caller = self.caller(request.metadata())?;
        let req = request.into_inner();
        let checks = request::checks(&req, &self.tenant_key, self.domain.as_deref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Every tenant is checked for access before anything is counted.
        if let Some(c) = checks.iter().find(|c| !caller.may_access(&c.tenant)) {
            return Err(Status::permission_denied(format!(
                "this token may not rate-limit tenant {:?}",
                c.tenant
            )));
        }
        let mut decisions = Vec::with_capacity(checks.len());
        for c in &checks {
            let d = self
                .host
                .rate_check(&c.tenant, c.cost)
                .await
                .map_err(|e| match e {
                    RateCheckError::Invalid(e) => Status::invalid_argument(e.to_string()),
                    RateCheckError::Unavailable(msg) => Status::unavailable(msg),
                })?;
            decisions.push(d);
        }
        Ok(Response::new(response::answer(&checks, &decisions)))
    }
}

/// The HTTP error an auth failure would be, as the gRPC status Envoy understands.
fn status_of_api(e: &ApiError) -> Status {
    match e.status.as_u16() {
        401 => Status::unauthenticated(e.message.clone()),
        403 => Status::permission_denied(e.message.clone()),
        _ => Status::internal(e.message.clone()),
    }
}

/// The tonic service for `host`, for embedders that serve it themselves.
pub fn service(host: Arc<Host>) -> RateLimitServiceServer<RlsService> {
    RateLimitServiceServer::new(RlsService::new(host))
}

/// Serves the rate-limit service on `listener` until `stopping` turns true, then stops
/// accepting and lets open calls finish (Envoy's HTTP/2 connections are told to go away).
/// At most `[grpc] max_connections` connections are open at once ([`capped`]), each with
/// at most `[grpc] max_concurrent_streams` calls in flight.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let grpc = &host.config.grpc;
    let streams = grpc.max_concurrent_streams;
    let incoming = capped::incoming(listener, grpc.max_connections, host.telemetry.clone());
    let stop = async move {
        // A dropped sender also means stop.
        let _ = stopping.wait_for(|s| *s).await;
    };
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(streams))
        .add_service(service(host))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}
