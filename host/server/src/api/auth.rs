//! Bearer-token auth. Tokens are configured as SHA-256 hashes, so the config file holds no
//! secret. The admin token sees everything; a tenant token sees and touches only its own
//! tenant. Without `[auth]` the daemon only serves loopback (checked at start-up) and every
//! caller is treated as admin.

use super::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rmhost_core::config::{Auth, hash_token};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token, or any loopback caller when auth is off.
    Admin,
    /// A tenant's token.
    Tenant(String),
}

impl Caller {
    /// Whether the caller may see or touch `tenant`.
    pub fn may_access(&self, tenant: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Tenant(t) => t == tenant,
        }
    }

    /// Errors unless `tenant` is a tenant name (400) the caller may access (403).
    pub fn check(&self, tenant: &str) -> Result<(), ApiError> {
        super::bounds::valid_tenant(tenant)?;
        if self.may_access(tenant) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token may not access tenant {tenant:?}"
            )))
        }
    }

    /// Errors unless the caller is the admin.
    pub fn admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::forbidden("this operation needs the admin token")),
        }
    }

    /// The tenant a tenant token is limited to.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Tenant(t) => Some(t),
        }
    }
}

/// Resolves a presented token against the configured hashes.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    auth: Option<Arc<Auth>>,
}

impl Authenticator {
    /// From the `[auth]` config; `None` (or an empty table) turns auth off.
    pub fn new(auth: &Auth) -> Self {
        Authenticator {
            auth: auth.is_set().then(|| Arc::new(auth.clone())),
        }
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// The caller a `Authorization` header value stands for.
    pub fn resolve(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        let Some(auth) = &self.auth else {
            return Ok(Caller::Admin);
        };
        let token = header
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?
            .strip_prefix("Bearer ")
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be \"Bearer TOKEN\"")
            })?
            .trim();
        let hash = hash_token(token);
        if auth
            .admin_token_sha256
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&hash))
        {
            return Ok(Caller::Admin);
        }
        auth.tenants
            .iter()
            .find(|(_, t)| t.token_sha256.eq_ignore_ascii_case(&hash))
            .map(|(name, _)| Caller::Tenant(name.clone()))
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Authenticator: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authn = <Authenticator as axum::extract::FromRef<S>>::from_ref(state);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        authn.resolve(header)
    }
}
