//! TLS for the HTTP listener: operators' passwords, tokens and session cookies never cross a
//! network in clear, so a listener reachable from other machines must have a certificate.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use ykt_host::server::Tls;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first) for the HTTP listener: it then serves HTTPS only.
    /// Required when --http-listen is not a loopback address.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The listener's TLS, or `None` for plain HTTP, which only a loopback address may serve.
pub fn load(a: &TlsArgs, http_listen: SocketAddr) -> anyhow::Result<Option<Tls>> {
    let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else {
        anyhow::ensure!(
            http_listen.ip().is_loopback(),
            "--http-listen {http_listen} is reachable from other machines: passwords and tokens \
             must not cross a network in clear; give --tls-cert and --tls-key, or listen on \
             127.0.0.1 behind a TLS proxy"
        );
        return Ok(None);
    };
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let tls = Tls::from_pem(&read(cert)?, &read(key)?)?;
    Ok(Some(tls))
}

/// The URL scheme the HTTP listener answers on.
pub fn scheme(tls: &Option<Tls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}
