//! The admin API client the operator subcommands share (`docs/admin-api.md`): where the
//! server is, the token, JSON in and out, and plain tables for people.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Largest answer read from the API (the blacklist page of 10,000 cards is far smaller).
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// Largest file downloaded (a cardholder export of 200,000 rows is far smaller).
const MAX_FILE: u64 = 256 * 1024 * 1024;

#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// Admin API base URL [default: the running `ykt serve` of --data (DATA/serve.addr), else
    /// http://127.0.0.1:8080].
    #[arg(long, env = "YKT_SERVER")]
    pub server: Option<String>,
    /// Data directory of the server: the token is read from DATA/admin-token when neither
    /// --token, YKT_TOKEN nor a `ykt login` for this server gives one.
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    /// An operator's API token (`ykt operator token create`), or the admin token.
    #[arg(long, env = "YKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for an https:// server [default: the certificate the running
    /// `ykt serve` of --data serves, else the built-in Mozilla roots].
    #[arg(long, env = "YKT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The addresses `ykt serve` bound, written to `DATA/serve.addr` once it serves.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct ServeAddr {
    pub terminal: String,
    pub http: String,
    /// The certificate the HTTP listener serves (absolute path); absent: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
}

/// The admin API's base URL and an agent that trusts its certificate: `--server`, else the
/// running `ykt serve` of `data` (https when it serves TLS), else http://127.0.0.1:8080.
pub fn endpoint(
    server: &Option<String>,
    data: &Path,
    ca_cert: &Option<PathBuf>,
) -> anyhow::Result<(String, ureq::Agent)> {
    let local = read_serve_addr(data);
    let base = match (server, &local) {
        (Some(s), _) => s.trim_end_matches('/').to_owned(),
        (None, Some(addr)) if addr.tls_cert.is_some() => format!("https://{}", addr.http),
        (None, Some(addr)) => format!("http://{}", addr.http),
        (None, None) => "http://127.0.0.1:8080".to_owned(),
    };
    let ca = match (ca_cert, &local) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(addr)) if server.is_none() => addr.tls_cert.as_ref().map(PathBuf::from),
        _ => None,
    };
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(path) = ca {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the CA certificates {}", path.display()))?;
        let roots = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        anyhow::ensure!(
            !roots.is_empty(),
            "{} holds no PEM certificate",
            path.display()
        );
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                .build(),
        );
    }
    Ok((base, config.build().into()))
}

pub const SERVE_ADDR_FILE: &str = "serve.addr";

pub fn read_serve_addr(data: &Path) -> Option<ServeAddr> {
    let text = std::fs::read_to_string(data.join(SERVE_ADDR_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
    pub json: bool,
}

impl Api {
    pub fn new(a: &ApiArgs) -> anyhow::Result<Api> {
        let (base, agent) = endpoint(&a.server, &a.data, &a.ca_cert)?;
        // --token or YKT_TOKEN; else what `ykt login` saved for this server; else the admin
        // token of the server's data directory.
        let token = match a.token.clone().or_else(|| super::login::saved_token(&base)) {
            Some(t) => t,
            None => {
                let path = a.data.join("admin-token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "cannot read the admin token {} (give --data DIR of the server, or --token)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Api {
            agent,
            base,
            token,
            json: a.json,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(path, resp)
    }

    pub fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let req = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token));
        let resp = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            None => req.send_empty(),
        };
        self.answer(path, resp)
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .delete(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(path, resp)
    }

    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .put(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.answer(path, resp)
    }

    /// POSTs a file as it is (`content_type` names its format).
    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", content_type)
            .send(body);
        self.answer(path, resp)
    }

    /// GETs a file: its bytes as they come.
    pub fn get_raw(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        let mut resp =
            resp.with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_FILE)
            .read_to_vec()
            .with_context(|| format!("{path}: unreadable answer"))?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Err(refusal(
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    fn answer(
        &self,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut resp =
            resp.with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .with_context(|| format!("{path}: unreadable answer"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(refusal(status, value))
    }

    /// Prints `v` as JSON when asked, else lets `human` print it.
    pub fn print(&self, v: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            human(v);
        }
        Ok(())
    }
}

/// The API's refusal as an error: its message, its code, and any per-line errors.
fn refusal(status: u16, value: Value) -> anyhow::Error {
    let msg = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let lines: String = items(value.get("lines").unwrap_or(&Value::Null))
        .iter()
        .map(|l| format!("\n  line {}: {}", cell(l, "line"), cell(l, "error")))
        .collect();
    match value.get("code").and_then(Value::as_u64) {
        Some(code) => anyhow::anyhow!("refused: {msg} (code {code}){lines}"),
        None => anyhow::anyhow!("{msg} (HTTP {status}){lines}"),
    }
}

/// An operator command's end: the API's message on one line and status 1, never a backtrace.
pub fn exit_on_error(r: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// Columns a terminal needs for `s` (CJK characters take two).
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

/// A plain text table, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(c);
            out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(c))));
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// A JSON field as display text: strings bare, null as `-`.
pub fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Fen as yuan with two decimals: `1234` → `12.34`.
pub fn yuan(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_i64) {
        Some(f) => {
            let sign = if f < 0 { "-" } else { "" };
            format!(
                "{sign}{}.{:02}",
                f.unsigned_abs() / 100,
                f.unsigned_abs() % 100
            )
        }
        None => "-".into(),
    }
}

/// Percent-encodes a query value (names are Chinese).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// An import file (.csv or .xlsx) as its media type and bytes, sent as it is: the server
/// validates every line.
pub fn read_sheet(file: &Path) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let media = match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => "text/csv",
        Some(e) if e.eq_ignore_ascii_case("xlsx") => XLSX,
        _ => anyhow::bail!("{}: the file must end in .csv or .xlsx", file.display()),
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok((media, bytes))
}

pub fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_pads_wide_characters() {
        let t = table(
            &["no", "name"],
            &[
                vec!["1001".into(), "第一食堂".into()],
                vec!["7".into(), "x".into()],
            ],
        );
        assert_eq!(t, "no    name\n1001  第一食堂\n7     x\n");
    }

    #[test]
    fn money_as_yuan() {
        let v = json!({"a": 1234, "b": -5, "c": 0});
        assert_eq!(
            (yuan(&v, "a"), yuan(&v, "b"), yuan(&v, "c")),
            ("12.34".into(), "-0.05".into(), "0.00".into())
        );
        assert_eq!(yuan(&v, "missing"), "-");
    }
}
