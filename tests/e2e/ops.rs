//! Operator conventions with the real binary: systemd's notify protocol, the probe
//! endpoints, shell completions, the man page and `config gen-token`.

use crate::harness::{Daemon, run_cli};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Reads datagrams from `sock` until one holds `line`; all read so far on failure.
fn wait_for_notify(sock: &UnixDatagram, line: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == line);
                seen.push(msg);
                if hit {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading NOTIFY_SOCKET: {e}"),
        }
    }
    false
}

#[tokio::test]
async fn systemd_sees_ready_watchdog_and_stopping_and_probes_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let path = path.to_str().unwrap();
    // WATCHDOG_USEC as systemd sets it for WatchdogSec=0.4: pings every 200 ms.
    let mut d = Daemon::start(
        "",
        &[],
        &[("NOTIFY_SOCKET", path), ("WATCHDOG_USEC", "400000")],
    );
    let mut seen = Vec::new();
    assert!(wait_for_notify(&sock, "READY=1", &mut seen), "{seen:?}");
    assert!(wait_for_notify(&sock, "WATCHDOG=1", &mut seen), "{seen:?}");

    // Serving: live and ready, in Kubernetes' plain-text shape.
    let (s, body) = d.text("/livez").await;
    assert_eq!((s.as_u16(), body.as_str()), (200, "ok"));
    let (s, body) = d.text("/readyz?verbose").await;
    assert_eq!(s, 200);
    assert_eq!(body, "[+]serving ok\n[+]state ok\nreadyz check passed\n");

    d.signal(libc::SIGTERM);
    assert!(wait_for_notify(&sock, "STOPPING=1", &mut seen), "{seen:?}");
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn gen_token_gives_a_fresh_token_and_the_hash_auth_accepts() {
    let parse = |out: &str| {
        let mut token = None;
        let mut hash = None;
        for line in out.lines() {
            match line.split_once(' ') {
                Some(("token", t)) => token = Some(t.to_string()),
                Some(("sha256", h)) => hash = Some(h.to_string()),
                _ => panic!("unexpected line {line:?} in {out}"),
            }
        }
        (token.expect("token line"), hash.expect("sha256 line"))
    };
    let (code, out, err) = run_cli(&["config", "gen-token"], &[]);
    assert_eq!(code, 0, "{err}");
    let (token, hash) = parse(&out);
    assert_eq!(token.len(), 64, "32 bytes in hex: {token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    let (_, again, _) = run_cli(&["config", "gen-token"], &[]);
    assert_ne!(parse(&again).0, token, "each call makes a new token");
    let (code, out, _) = run_cli(&["config", "hash-token", &token], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), hash, "the same hash as `config hash-token`");

    // The pair works as an admin token.
    let d = Daemon::start(
        &format!("[auth]\nadmin_token_sha256 = \"{hash}\"\n"),
        &[],
        &[],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(d.with_token(&token).get("/v1/usage").await.0, 200);
        assert_eq!(d.get("/v1/usage").await.0, 401);
    });
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for (shell, marker) in [
        ("bash", "complete -F _rmhost"),
        ("zsh", "#compdef rmhost"),
        ("fish", "complete -c rmhost"),
    ] {
        let (code, out, err) = run_cli(&["completions", shell], &[]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no {marker:?} in {out}");
        assert!(out.contains("gen-token"), "{shell} completes every verb");
    }
    let (code, _, err) = run_cli(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");

    let (code, out, err) = run_cli(&["man"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH rmhost 1"), "{out}");
    assert!(
        out.contains("completions") && out.contains("monitor"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let (code, _, err) = run_cli(&["man", "--out-dir", out_dir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for page in ["rmhost.1", "rmhost-run.1", "rmhost-config-gen-token.1"] {
        let text =
            std::fs::read_to_string(out_dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}
