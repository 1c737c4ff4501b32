//! TLS to PostgreSQL: one place that turns a connection string into a tokio-postgres
//! config and the rustls connector its `sslmode` asks for, used by the pools and the
//! shared ledger alike.
//!
//! `sslmode` keeps libpq's meanings (tokio-postgres itself knows only disable / prefer /
//! require and refuses the rest, so this module takes `sslmode` and `sslrootcert` out of
//! the string before tokio-postgres parses it):
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default, as in libpq) | when the server offers it | no |
//! | `require` | always | no; with `sslrootcert` the chain, like `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | the chain, against the roots |
//! | `verify-full` | always | the chain and that the host name (or IP) is in the certificate |
//!
//! The roots are the CA certificates in the PEM file named by `sslrootcert=PATH`, or the
//! platform's store (`rustls-native-certs`, e.g. Debian's `ca-certificates`) when it is
//! absent or `sslrootcert=system`. libpq would look for `~/.postgresql/root.crt` instead of
//! the platform store; a daemon has no such home, so the platform's roots stand in.
//! `allow` (plain first, TLS on refusal) has no tokio-postgres equivalent and is refused.
//! Client certificates (`sslcert`, `sslkey`) are not supported.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The connector handed to tokio-postgres and deadpool-postgres.
pub type PgTls = tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, less `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not checked.
    Prefer,
    /// TLS always, certificate not checked (unless `sslrootcert` is given).
    Require,
    /// TLS always, chain checked against the roots.
    VerifyCa,
    /// TLS always, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Why a connection string cannot be used. Never quotes the string itself (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// tokio-postgres refused the rest of the string.
    #[error("not a PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// An `sslmode` this module does not know.
    #[error(
        "sslmode={0:?} is not supported: use disable, prefer, require, verify-ca or verify-full"
    )]
    SslMode(String),
    /// The `sslrootcert` file cannot be read or holds no certificate.
    #[error("sslrootcert={path:?}: {reason}")]
    RootCert {
        /// The file named.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No roots to verify against.
    #[error("sslmode={mode}: no trusted CA certificates: {reason}")]
    NoRoots {
        /// The mode that needed them.
        mode: &'static str,
        /// Why none were found.
        reason: String,
    },
}

/// A connection string split into what tokio-postgres connects with and how.
pub struct PgTarget {
    /// Everything but the TLS keys, with `ssl_mode` set to what the mode needs.
    pub config: tokio_postgres::Config,
    /// The connector (also built for `disable`, where it is never used).
    pub tls: PgTls,
    /// The mode asked for.
    pub mode: SslMode,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config's Debug redacts the password; the connector has no Debug.
        f.debug_struct("PgTarget")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Parses a `postgres://…` URL or a libpq key-value string, honouring `sslmode` and
/// `sslrootcert`.
pub fn parse(conn: &str) -> Result<PgTarget, TlsError> {
    let (rest, tls_keys) = split_tls_keys(conn);
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in tls_keys {
        if key == "sslmode" {
            mode = Some(value);
        } else {
            root_cert = Some(value);
        }
    }
    let mut mode = match mode.as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => return Err(TlsError::SslMode(other.to_string())),
    };
    // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
    if mode == SslMode::Require && root_cert.as_deref().is_some_and(|p| p != "system") {
        mode = SslMode::VerifyCa;
    }
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(TlsError::Url)?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let tls = connector(mode, root_cert.as_deref())?;
    Ok(PgTarget { config, tls, mode })
}

fn connector(mode: SslMode, root_cert: Option<&str>) -> Result<PgTls, TlsError> {
    // ring, named here rather than as a process default, so nothing else in the process
    // (or its absence) decides which crypto this uses. rustls 0.23.48 deprecates it for
    // lacking post-quantum key exchange; PostgreSQL servers (OpenSSL before 3.5) offer
    // none either, and aws-lc-rs would add a large C build to every build of the host.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => None,
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(mode, root_cert)?);
            let v = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::NoRoots {
                    mode: mode.as_str(),
                    reason: e.to_string(),
                })?;
            Some(v)
        }
    };
    let verifier = Verifier {
        webpki,
        check_name: mode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::NoRoots {
            mode: mode.as_str(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(PgTls::new(config))
}

fn roots(mode: SslMode, root_cert: Option<&str>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let bad = |reason: String| TlsError::RootCert {
                path: path.to_string(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("cannot read: {e}")))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(bad("holds no CERTIFICATE block".into()));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(TlsError::NoRoots {
                    mode: mode.as_str(),
                    reason: format!(
                        "the platform's store is empty (install ca-certificates, or name a CA \
                         file with sslrootcert=PATH){}",
                        if errors.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", errors.join("; "))
                        }
                    ),
                });
            }
        }
    }
    Ok(store)
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key-value string; returns
/// the rest (for tokio-postgres) and the taken pairs in order.
fn split_tls_keys(conn: &str) -> (String, Vec<(String, String)>) {
    let is_tls_key = |k: &str| k == "sslmode" || k == "sslrootcert";
    let mut taken = Vec::new();
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return (conn.to_string(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k);
            if is_tls_key(&key) {
                taken.push((key, percent_decode(v)));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    // libpq key-value form: `key = value` pairs, values bare or single-quoted, `\` escapes.
    let mut kept = Vec::new();
    for (k, v) in key_values(conn) {
        if is_tls_key(&k) {
            taken.push((k, v));
        } else {
            let quoted = v.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{k}='{quoted}'"));
        }
    }
    (kept.join(" "), taken)
}

/// The pairs of a libpq key-value string. What cannot be read as pairs is passed through
/// as a pair without a value, so tokio-postgres reports it.
fn key_values(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            out.push((key, String::new()));
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\'' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks what the mode asks for: nothing (`prefer`, `require`), the chain (`verify-ca`),
/// or the chain and the name (`verify-full`). Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the chain before the name, so a name error means the chain
            // was good: all verify-ca wants.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_loses_only_the_tls_keys() {
        let (rest, taken) = split_tls_keys(
            "postgres://u:p@h:5432/db?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p@h:5432/db?application_name=a");
        assert_eq!(
            taken,
            vec![
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/tmp/ca.pem".to_string())
            ]
        );
        let (rest, _) = split_tls_keys("postgresql://h/db?sslmode=disable");
        assert_eq!(rest, "postgresql://h/db");
    }

    #[test]
    fn key_value_strings_keep_quoting() {
        let (rest, taken) = split_tls_keys(r"host=h password='a b\'c' sslmode = require dbname=x");
        assert_eq!(rest, r"host='h' password='a b\'c' dbname='x'");
        assert_eq!(taken, vec![("sslmode".into(), "require".into())]);
        let c = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(c.get_password(), Some(&b"a b'c"[..]));
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_negotiates() {
        use tokio_postgres::config::SslMode as T;
        for (url, mode, t) in [
            ("postgres://h/db", SslMode::Prefer, T::Prefer),
            (
                "postgres://h/db?sslmode=disable",
                SslMode::Disable,
                T::Disable,
            ),
            (
                "postgres://h/db?sslmode=require",
                SslMode::Require,
                T::Require,
            ),
            ("host=h sslmode=prefer", SslMode::Prefer, T::Prefer),
        ] {
            let p = parse(url).unwrap();
            assert_eq!(p.mode, mode, "{url}");
            assert_eq!(p.config.get_ssl_mode(), t, "{url}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse("postgres://h/db?sslmode=allow")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=\"allow\" is not supported"), "{e}");
        let e = parse("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslrootcert=\"/nonexistent/ca.pem\": cannot read"),
            "{e}"
        );
        let e = parse("postgres://h/db?bogus=1").unwrap_err().to_string();
        assert!(e.starts_with("not a PostgreSQL URL"), "{e}");
    }
}
