//! The HTTP client the CLI verbs use to talk to a running daemon.

use rmhost_server::wire::ErrorBody;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error(
        "cannot reach the rmhost daemon at {addr}: {reason} (is `rmhost run` running? set --addr or RMHOST_ADDR)"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer was not what the CLI expected.
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    addr: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `addr` (`host:port` or a URL).
    pub fn new(addr: &str, token: Option<String>) -> Self {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Client {
            base,
            addr: addr.to_string(),
            token,
            http,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send<T: DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = r.send().await.map_err(|e| ClientError::Unreachable {
            addr: self.addr.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            // A proxy or a panic page may answer without the API's error body: the raw
            // text is then the best message there is.
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => (e.error, e.message),
                Err(_) => (
                    "unknown".to_string(),
                    String::from_utf8_lossy(&body).into_owned(),
                ),
            };
            return Err(ClientError::Api {
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// GET `path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// POST `body` to `path`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// PUT `body` to `path`.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Prints a client error and gives the exit code scripts rely on: 3 when the daemon is
/// unreachable, 2 when it rejected the request as malformed or unknown, 1 otherwise.
pub fn report_error(e: ClientError) -> i32 {
    eprintln!("rmhost: {e}");
    match e {
        ClientError::Unreachable { .. } => super::EXIT_UNREACHABLE,
        ClientError::Api {
            status: 400 | 404, ..
        } => super::EXIT_USAGE,
        _ => 1,
    }
}
