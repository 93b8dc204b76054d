//! A minimal async HTTP/1.1 JSON client for the admin API (one request per connection),
//! so the load generator needs no HTTP client crate. Bounded: a response larger than
//! `MAX_RESPONSE` is refused.

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Large enough for the provisioning data of 10,000 devices.
const MAX_RESPONSE: usize = 64 << 20;

/// The admin API at `http://host:port` with its bearer token.
#[derive(Clone, Debug)]
pub struct AdminApi {
    /// `host:port`.
    authority: String,
    token: String,
}

impl AdminApi {
    /// `server` is `http://host:port` (no TLS: bind the admin API to a private interface).
    pub fn new(server: &str, token: String) -> anyhow::Result<AdminApi> {
        let authority = server
            .strip_prefix("http://")
            .with_context(|| format!("--server must start with http:// (got {server:?})"))?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("--server is http://HOST:PORT (got {server:?})");
        }
        Ok(AdminApi {
            authority: authority.to_owned(),
            token,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call("POST", path, Some(body)).await
    }

    /// `POST` that must succeed (2xx); the API's error message otherwise.
    pub async fn post_ok(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, v) = self.post(path, body).await?;
        ok(path, status, v)
    }

    /// `PUT` that must succeed (2xx).
    pub async fn put_ok(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, v) = self.call("PUT", path, Some(body)).await?;
        ok(path, status, v)
    }

    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let (status, v) = self.get(path).await?;
        ok(path, status, v)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut s = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.authority))?;
        let req = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.authority,
            self.token,
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        (&mut s)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut resp)
            .await?;
        if resp.len() > MAX_RESPONSE {
            bail!("{method} {path}: response larger than {MAX_RESPONSE} bytes");
        }
        parse_response(&resp).with_context(|| format!("{method} {path}"))
    }
}

fn ok(path: &str, status: u16, v: Value) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        return Ok(v);
    }
    let msg = v
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    bail!("{path}: HTTP {status}: {msg}")
}

/// Status and JSON body of a whole HTTP/1.1 response (plain or chunked body).
pub fn parse_response(resp: &[u8]) -> anyhow::Result<(u16, Value)> {
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&resp[..split]).context("headers are not UTF-8")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let raw = &resp[split + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    if body.is_empty() {
        return Ok((status, Value::Null));
    }
    let v = serde_json::from_slice(&body).context("the body is not JSON")?;
    Ok((status, v))
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&raw[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = ykt_proto::hexstr::parse_number(size_text)
            .and_then(|n| usize::try_from(n).ok())
            .context("bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size.checked_add(2).is_none_or(|end| raw.len() < end) {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let (s, v) = parse_response(plain).unwrap();
        assert_eq!((s, v["a"].as_i64()), (200, Some(1)));
        let chunked =
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        let (s, v) = parse_response(chunked).unwrap();
        assert_eq!((s, v["a"].as_i64()), (409, Some(2)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            // issue 18.2: a chunk size is hex digits only (from_str_radix took `+8`), and
            // a size near usize::MAX is refused, not an overflow.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+8\r\n{\"a\":1}\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            assert!(parse_response(bad).is_err());
        }
    }

    #[test]
    fn server_must_be_plain_http() {
        assert!(AdminApi::new("https://x:1", String::new()).is_err());
        assert!(AdminApi::new("http://127.0.0.1:8080/", String::new()).is_ok());
    }
}
