//! The HTTP listener over TLS: passwords, tokens and session cookies never cross a network in
//! clear. A listener other machines can reach must have a certificate; with one, it serves
//! HTTPS only and the CLI trusts the certificate `ykt serve` names in DATA/serve.addr.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use serve_support::{Serve, with_stdin, ykt};

/// A self-signed certificate for localhost and 127.0.0.1, as PEM files in `dir`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn admin_api_over_tls_end_to_end() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "server");
    let s = Serve::start_with(
        None,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr: Value =
        serde_json::from_str(&std::fs::read_to_string(s.data().join("serve.addr")).unwrap())
            .unwrap();
    assert_eq!(
        addr["tls_cert"].as_str().map(PathBuf::from),
        Some(std::path::absolute(&cert).unwrap())
    );

    // The first administrator logs in over HTTPS, trusting the certificate serve.addr names.
    let who = tempfile::tempdir().unwrap();
    let initial = std::fs::read_to_string(s.data().join("admin-password")).unwrap();
    let mut login = ykt();
    login
        .env("YKT_CONFIG_DIR", who.path())
        .args(["login", "--user", "admin", "--password-stdin", "--data"])
        .arg(s.data());
    let o = with_stdin(login, &format!("{}\nadmin-over-tls-1\n", initial.trim()));
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains(&format!("https://{}", s.http)), "{out}");
    let mut list = ykt();
    list.env("YKT_CONFIG_DIR", who.path())
        .args(["operator", "list", "--json", "--data"])
        .arg(s.data());
    let o = with_stdin(list, "");
    assert!(o.status.success(), "{}", text(&o));

    // The session cookie is marked Secure.
    let pem = std::fs::read(&cert).unwrap();
    let root = ureq::tls::Certificate::from_pem(&pem).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    root,
                ])))
                .build(),
        )
        .build()
        .into();
    let resp = agent
        .post(format!("https://{}/api/v1/login", s.http))
        .header("Content-Type", "application/json")
        .send(r#"{"login":"admin","password":"admin-over-tls-1"}"#)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let mut tcp = std::net::TcpStream::connect(s.http).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A CLI that trusts another certificate refuses to talk (no token leaves it).
    let (other, _) = self_signed(certs.path(), "other");
    let o = ykt()
        .env("YKT_CONFIG_DIR", who.path())
        .args(["operator", "list", "--server"])
        .arg(format!("https://{}", s.http))
        .arg("--ca-cert")
        .arg(&other)
        .args(["--token", "x", "--data"])
        .arg(s.data())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    s.stop();
}

#[test]
fn reachable_listener_without_a_certificate_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = ykt()
        .args(["serve", "--demo", "--data"])
        .arg(&data)
        .args([
            "--terminal-listen",
            "127.0.0.1:0",
            "--http-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("--tls-cert"), "{}", text(&o));
    assert!(!data.exists(), "nothing created");
}

#[test]
fn a_key_that_is_not_a_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(dir.path(), "server");
    let o = ykt()
        .args(["serve", "--data"])
        .arg(dir.path().join("data"))
        .args([
            "--terminal-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("TLS private key"), "{}", text(&o));
}
