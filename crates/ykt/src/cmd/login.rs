//! `ykt login` / `ykt logout`: an operator signs in with name and password once; the CLI
//! keeps an API token of theirs in a per-user file (mode 0600) and uses it for that server
//! (`docs/operators.md`). The password itself is never stored.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What `ykt login` leaves behind, per server.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Saved {
    logins: Vec<SavedLogin>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct SavedLogin {
    server: String,
    login: String,
    token_id: String,
    token: String,
}

/// `$YKT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/ykt`, else `~/.config/ykt`.
fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("YKT_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(d).join("ykt"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("ykt"))
}

fn file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("login.json"))
}

fn load() -> Saved {
    file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(s: &Saved) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = file().context("no home directory: set YKT_CONFIG_DIR")?;
    let dir = path.parent().context("config file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(s)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The token `ykt login` saved for this server, if any.
pub fn saved_token(server: &str) -> Option<String> {
    load()
        .logins
        .into_iter()
        .find(|l| l.server == server)
        .map(|l| l.token)
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The operator's login name.
    #[arg(long)]
    pub user: String,
    /// Read the password from the first line of standard input (and, when a new one must be
    /// chosen, the new password from the second) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// Admin API base URL [default: the running `ykt serve` of --data, else http://127.0.0.1:8080].
    #[arg(long, env = "YKT_SERVER")]
    pub server: Option<String>,
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    /// PEM certificates to trust for an https:// server (as for every admin command).
    #[arg(long, env = "YKT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    #[arg(long, env = "YKT_SERVER")]
    pub server: Option<String>,
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    /// PEM certificates to trust for an https:// server (as for every admin command).
    #[arg(long, env = "YKT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// Lines of secrets: from standard input when asked, else prompted without echo.
struct Secrets {
    stdin: Option<std::io::Lines<std::io::StdinLock<'static>>>,
}

impl Secrets {
    fn next(&mut self, prompt: &str) -> anyhow::Result<String> {
        match &mut self.stdin {
            Some(lines) => Ok(lines.next().context("standard input ended")??),
            None => {
                if !std::io::stdin().is_terminal() {
                    bail!("no terminal to ask for the password: use --password-stdin");
                }
                Ok(rpassword::prompt_password(prompt)?)
            }
        }
    }
}

/// A browser-style session for the few calls a login needs.
struct Session {
    agent: ureq::Agent,
    base: String,
    cookie: String,
    csrf: String,
}

fn reply(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> anyhow::Result<(u16, Option<String>, Value)> {
    let mut resp = resp.context("cannot reach the admin API")?;
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !(200..300).contains(&status) {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| v.to_string(), str::to_owned);
        bail!("{msg} (HTTP {status})");
    }
    Ok((status, cookie, v))
}

impl Session {
    fn open(
        agent: ureq::Agent,
        base: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<(Session, Value)> {
        let resp = agent
            .post(format!("{base}/api/v1/login"))
            .header("Content-Type", "application/json")
            .send(json!({"login": user, "password": password}).to_string());
        let (_, cookie, me) = reply(resp)?;
        let cookie = cookie.context("the server set no session cookie")?;
        let csrf = me["csrf_token"]
            .as_str()
            .context("no CSRF token")?
            .to_owned();
        Ok((
            Session {
                agent,
                base: base.to_owned(),
                cookie,
                csrf,
            },
            me,
        ))
    }

    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .agent
            .post(format!("{}/api/v1{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("X-CSRF-Token", &self.csrf)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        Ok(reply(resp)?.2)
    }
}

pub fn login(a: LoginArgs) -> anyhow::Result<()> {
    let (base, agent) = super::client::endpoint(&a.server, &a.data, &a.ca_cert)?;
    let mut secrets = Secrets {
        stdin: a.password_stdin.then(|| std::io::stdin().lock().lines()),
    };
    let password = secrets.next(&format!("{}@{base} 的密码: ", a.user))?;
    let (session, me) = Session::open(agent, &base, &a.user, &password)?;
    if me["must_change_password"] == true {
        eprintln!("首次登录，请设置新密码（至少 8 个字符）。");
        let new = secrets.next("新密码: ")?;
        if !a.password_stdin && secrets.next("再次输入新密码: ")? != new {
            bail!("两次输入的新密码不一致");
        }
        session.post(
            "/me/password",
            &json!({"old_password": password, "new_password": new}),
        )?;
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cli".into());
    let t = session.post(
        "/me/tokens",
        &json!({"label": format!("ykt login on {host}")}),
    )?;
    session.post("/logout", &json!({}))?;
    let mut saved = load();
    saved.logins.retain(|l| l.server != base);
    saved.logins.push(SavedLogin {
        server: base.clone(),
        login: a.user.clone(),
        token_id: t["id"].as_str().unwrap_or_default().to_owned(),
        token: t["token"]
            .as_str()
            .context("no token in the answer")?
            .to_owned(),
    });
    let path = save(&saved)?;
    println!(
        "logged in to {base} as {} ({}); token saved in {}",
        a.user,
        me["name"].as_str().unwrap_or(""),
        path.display()
    );
    Ok(())
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let (base, agent) = super::client::endpoint(&a.server, &a.data, &a.ca_cert)?;
    let mut saved = load();
    let Some(pos) = saved.logins.iter().position(|l| l.server == base) else {
        bail!("not logged in to {base}");
    };
    let l = saved.logins.remove(pos);
    let resp = agent
        .delete(format!("{base}/api/v1/me/tokens/{}", l.token_id))
        .header("Authorization", format!("Bearer {}", l.token))
        .call();
    if let Err(e) = reply(resp) {
        eprintln!("warning: the token could not be revoked on the server: {e:#}");
    }
    save(&saved)?;
    println!("logged out of {base}");
    Ok(())
}
