//! TLS to PostgreSQL against a private cluster whose certificate is signed by a CA the
//! test makes: each `sslmode` does what libpq says, and a pool and the shared ledger both
//! end up on TLS. Needs PostgreSQL's server binaries (initdb, pg_ctl), `runuser` and the
//! `openssl` CLI (scripts/services installs postgresql; openssl comes with Debian).
#![cfg(feature = "postgres")]

use rmhost_core::events::EventBus;
use rmhost_core::pools::{PoolManager, PoolsSettings, PostgresSettings, error_chain};
use rmhost_core::resources::{PgLedger, PgLedgerOptions};
use rmhost_core::tls::{self, SslMode};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sslmodes_keep_libpq_meanings_and_pool_and_ledger_use_tls() {
    let pg = PrivatePg::start();
    let ca = pg.dir().join("ca.crt").display().to_string();
    let wrong_ca = pg.dir().join("wrong-ca.crt").display().to_string();
    let rt = runtime();
    // The certificate names `localhost` only, so 127.0.0.1 tells verify-ca from verify-full.
    let by_name = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    let by_ip = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);

    let ssl_of = |url: String| -> Result<bool, String> {
        rt.block_on(async {
            let t = tls::parse(&url).map_err(|e| e.to_string())?;
            let (client, conn) = t.config.connect(t.tls).await.map_err(|e| error_chain(&e))?;
            tokio::spawn(conn);
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.get::<_, bool>(0))
        })
    };

    let full = format!("{by_name}?sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(tls::parse(&full).unwrap().mode, SslMode::VerifyFull);
    assert_eq!(ssl_of(full), Ok(true), "verify-full with the right CA");

    let err = ssl_of(format!(
        "{by_name}?sslmode=verify-full&sslrootcert={wrong_ca}"
    ))
    .expect_err("verify-full with another CA must fail");
    assert!(
        err.contains("TLS handshake") && err.contains("invalid peer certificate: UnknownIssuer"),
        "a wrong CA names the handshake and the unknown issuer: {err}"
    );

    let err = ssl_of(format!("{by_ip}?sslmode=verify-full&sslrootcert={ca}"))
        .expect_err("verify-full to a name the certificate lacks must fail");
    assert!(
        err.contains("certificate not valid for name \"127.0.0.1\""),
        "a name mismatch is named: {err}"
    );
    assert_eq!(
        ssl_of(format!("{by_ip}?sslmode=verify-ca&sslrootcert={ca}")),
        Ok(true),
        "verify-ca checks the chain, not the name"
    );
    let err = ssl_of(format!("{by_ip}?sslmode=verify-ca&sslrootcert={wrong_ca}"))
        .expect_err("verify-ca with another CA must fail");
    assert!(err.contains("UnknownIssuer"), "{err}");

    assert_eq!(
        ssl_of(format!("{by_ip}?sslmode=require")),
        Ok(true),
        "require encrypts without verifying"
    );
    assert_eq!(
        ssl_of(by_ip.clone()),
        Ok(true),
        "prefer (the default) takes TLS when offered"
    );
    assert_eq!(
        ssl_of(format!("{by_ip}?sslmode=disable")),
        Ok(false),
        "disable stays plain"
    );
    // require with a CA file is verify-ca, as in libpq.
    let err = ssl_of(format!("{by_ip}?sslmode=require&sslrootcert={wrong_ca}"))
        .expect_err("require with a root file verifies the chain");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // A pool over TLS.
    let mut settings = PoolsSettings::default();
    settings.postgres.insert(
        "tls".into(),
        PostgresSettings {
            url: format!(
                "{by_name}?sslmode=verify-full&sslrootcert={ca}&application_name=rmhost-tls-pool"
            ),
            ..PostgresSettings::default()
        },
    );
    let pools = PoolManager::new(&settings, EventBus::new()).unwrap();
    let pool_ssl: bool = rt.block_on(async {
        let conn = pools.postgres("tls").unwrap().get().await.unwrap();
        conn.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert!(pool_ssl, "the pool's connection is on TLS");
    pools.close();

    // A pool that cannot verify the server says why.
    let mut settings = PoolsSettings::default();
    let mut bad = PostgresSettings {
        url: format!("{by_name}?sslmode=verify-full&sslrootcert={wrong_ca}"),
        ..PostgresSettings::default()
    };
    bad.retry.attempts = 1;
    settings.postgres.insert("untrusted".into(), bad);
    let pools = PoolManager::new(&settings, EventBus::new()).unwrap();
    let err = rt
        .block_on(async { pools.postgres("untrusted").unwrap().get().await.map(drop) })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pool postgres/untrusted") && err.contains("UnknownIssuer"),
        "the pool's error names the pool and the reason: {err}"
    );
    pools.close();

    // The ledger over TLS: its pool and its LISTEN connection.
    let ledger = PgLedger::connect(
        PgLedgerOptions {
            url: format!(
                "{by_name}?sslmode=verify-full&sslrootcert={ca}&application_name=rmhost-tls-ledger"
            ),
            host_id: "tls-host".into(),
            timeout: Duration::from_secs(5),
            host_lapse: Duration::from_secs(10),
            max_connections: 2,
        },
        EventBus::new(),
    )
    .unwrap();
    let admin = format!("{by_ip}?sslmode=disable");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (sessions, all_ssl) = loop {
        let (n, all): (i64, bool) = rt.block_on(async {
            let t = tls::parse(&admin).unwrap();
            let (c, conn) = t.config.connect(t.tls).await.unwrap();
            tokio::spawn(conn);
            let r = c
                .query_one(
                    "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a \
                     JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'rmhost-tls-ledger'",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        });
        // The listener connects in the background after connect() returns.
        if n >= 2 || Instant::now() > deadline {
            break (n, all);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        sessions >= 2,
        "the ledger's pool and listener sessions: {sessions}"
    );
    assert!(all_ssl, "every ledger session is on TLS");
    drop(ledger);

    // A bad root file is refused before connecting, naming the key.
    let err = PgLedger::connect(
        PgLedgerOptions {
            url: format!("{by_name}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            host_id: "tls-host-2".into(),
            timeout: Duration::from_secs(5),
            host_lapse: Duration::from_secs(10),
            max_connections: 1,
        },
        EventBus::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslrootcert=\"/nonexistent/ca.pem\""), "{err}");
}

/// A PostgreSQL cluster of the test's own on a private port with `ssl=on` and a
/// certificate for `localhost` signed by a CA made here (a second CA signs nothing).
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join("bin"))
                    .find(|p| p.join("initdb").exists())
            })
            .expect("PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql: apt-get install postgresql");
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pg = PrivatePg { dir, port, bin };
        make_certificates(pg.dir());
        // initdb refuses to run as root: the cluster (and its key) belong to postgres.
        run(
            &["chown", "-R", "postgres", pg.dir().to_str().unwrap()],
            false,
        );
        let data = pg.data();
        let initdb = pg.bin.join("initdb");
        run(
            &[
                initdb.to_str().unwrap(),
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            true,
        );
        let d = pg.dir().display().to_string();
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
            port = pg.port
        );
        let log = pg.dir().join("log").display().to_string();
        let ctl = pg.bin.join("pg_ctl");
        let started = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&ctl)
            .args(["-D", &data, "-l", &log, "-w", "-o", &opts, "start"])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        pg
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> String {
        self.dir().join("data").display().to_string()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // A panic here would abort the test binary.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// ca.crt signs server.crt (SAN `DNS:localhost` only); wrong-ca.crt signs nothing.
fn make_certificates(dir: &Path) {
    let p = |f: &str| dir.join(f).display().to_string();
    for ca in ["ca", "wrong-ca"] {
        run(
            &[
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=rmhost test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &p(&format!("{ca}.key")),
                "-out",
                &p(&format!("{ca}.crt")),
            ],
            false,
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        &[
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
        false,
    );
    run(
        &[
            "openssl",
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("server.ext"),
            "-out",
            &p("server.crt"),
        ],
        false,
    );
    // PostgreSQL refuses a key others can read.
    run(&["chmod", "600", &p("server.key")], false);
}

fn run(args: &[&str], as_postgres: bool) {
    let out = if as_postgres {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
    } else {
        Command::new(args[0]).args(&args[1..]).output()
    }
    .unwrap_or_else(|e| {
        panic!("{args:?}: {e} (this test needs openssl, runuser and PostgreSQL's server binaries: apt-get install openssl postgresql)")
    });
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
