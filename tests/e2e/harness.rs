//! Starting and stopping a daemon for a test.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rmhost")
}

/// A running daemon, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    /// The rate-limit service's address, when `[grpc] listen` is set.
    pub grpc_addr: Option<String>,
    /// Holds the working directory (and its config) alive for the daemon's lifetime.
    pub _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts `rmhost run --listen 127.0.0.1:0` with `config` as its rmhost.toml, extra
    /// `args` and `env`, and waits for its "listening on" line.
    pub fn start(config: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::spawn(Some(config), args, env)
    }

    /// Like `start`; with `config` None, no config file exists at all (embedded defaults).
    pub fn spawn(config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(bin());
        cmd.arg("run");
        if let Some(config) = config {
            let cfg = dir.path().join("rmhost.toml");
            std::fs::write(&cfg, config).expect("write config");
            cmd.arg("--config").arg(&cfg);
        }
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .current_dir(dir.path())
            .env("RMHOST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Traces only where a test asks for them (`otlp`), never from the runner's env.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rmhost");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The gRPC line (if any) comes first; the HTTP one means "up".
                if let Some(addr) = line.strip_prefix("rmhost: grpc ratelimit listening on ") {
                    let _ = tx.send((true, addr.to_string()));
                } else if let Some(addr) = line.strip_prefix("rmhost: listening on http://") {
                    let _ = tx.send((false, addr.to_string()));
                }
            }
        });
        let mut grpc_addr = None;
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok((true, a)) => grpc_addr = Some(a),
                Ok((false, a)) => break a,
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!("rmhost run did not report its address within 30 s (exit: {status:?})");
                }
            }
        };
        Daemon {
            child,
            addr,
            grpc_addr,
            _dir: dir,
            // No idle connections kept: the daemon may close one after an error answer
            // (a 413 body it did not read), and a test's next request must not land on it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    /// The JSON API of this daemon without a token (auth off: the caller is the admin).
    pub fn api(&self) -> Api<'_> {
        Api {
            daemon: self,
            token: None,
        }
    }

    /// The JSON API of this daemon with `Authorization: Bearer {token}`.
    pub fn with_token<'a>(&'a self, token: &'a str) -> Api<'a> {
        Api {
            daemon: self,
            token: Some(token),
        }
    }

    /// `GET path` without a token: (status, JSON body).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.api().get(path).await
    }

    /// `POST path` with a JSON body, without a token.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.api().post(path, body).await
    }

    /// `PUT path` with a JSON body, without a token.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.api().put(path, body).await
    }

    /// `DELETE path` without a token.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.api().delete(path).await
    }

    /// `GET /v1/events` without a token: the open event stream (read it with
    /// [`wait_for_event`]).
    pub async fn events(&self) -> reqwest::Response {
        let resp = self.http.get(self.url("/v1/events")).send().await;
        resp.expect("open /v1/events")
    }

    /// `GET path` as text (`/metrics`), without a token.
    pub async fn text(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("send request");
        let status = resp.status();
        (status, resp.text().await.expect("read body"))
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits for the daemon to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon's JSON API as one caller (a token or none) sees it. Every method answers the
/// status and the body parsed as JSON (`Value::Null` when the body is empty or not JSON,
/// so a test asserting on it fails with the status in view).
pub struct Api<'a> {
    daemon: &'a Daemon,
    token: Option<&'a str>,
}

/// A whole answer, for the tests that look at headers too.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api<'_> {
    /// Sends `method path` (with `body` as JSON when given) and reads the whole answer.
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.daemon.http.request(method, self.daemon.url(path));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("send request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("read body");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.request(method, path, body).await;
        (r.status, r.body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.json(Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.json(Method::DELETE, path, None).await
    }
}

/// An HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Runs the binary with `args` and `env` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("RMHOST_CONFIG")
        .env("RMHOST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run rmhost");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads an SSE response into `buf` until it holds `what` (e.g. `event: PolicyLoaded`),
/// within a generous bound that only catches a hang; false if the stream ends first.
pub async fn wait_for_event(events: &mut reqwest::Response, buf: &mut String, what: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if buf.contains(what) {
                return true;
            }
            match events.chunk().await {
                Ok(Some(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}
