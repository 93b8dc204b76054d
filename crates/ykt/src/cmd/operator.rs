//! `ykt operator …` and `ykt journal`: operators, roles, passwords and API tokens, and the
//! operator journal, through the admin API (R-B1, `docs/operators.md`).

use std::io::IsTerminal;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Api, ApiArgs, cell, items, table};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Add an operator; prints the initial password, to be changed at first login.
    Add {
        #[arg(long)]
        login: String,
        /// Display name (姓名).
        #[arg(long)]
        name: String,
        /// Comma-separated: admin, clerk, finance, technician, auditor.
        #[arg(long)]
        roles: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Operators with roles and status.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One operator.
    Show {
        login: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop an operator from signing in; ends their sessions and revokes their tokens.
    Disable {
        login: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    Enable {
        login: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replace an operator's roles.
    Role {
        login: String,
        /// Comma-separated: admin, clerk, finance, technician, auditor.
        #[arg(long)]
        roles: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// With LOGIN (administrators): reset that operator's password to a new initial one.
    /// Without: change your own (asks for the old and the new one).
    Passwd {
        login: Option<String>,
        /// Read old and new password from two lines of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// API tokens for scripts and integrations: create, list, revoke.
    #[command(subcommand)]
    Token(TokenArgs),
    /// The roles and what each may do.
    Roles {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenArgs {
    /// Creates a token (shown once). For another operator with --for (administrators).
    Create {
        #[arg(long, default_value = "")]
        label: String,
        /// YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS".
        #[arg(long)]
        expires: Option<String>,
        #[arg(long = "for")]
        operator: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    List {
        #[arg(long = "for")]
        operator: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    Revoke {
        id: String,
        #[arg(long = "for")]
        operator: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn roles(list: &str) -> Value {
    json!(
        list.split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
    )
}

fn show(api: &Api, o: &Value) -> anyhow::Result<()> {
    api.print(o, |o| {
        println!(
            "{} {}  roles: {}  status: {}{}",
            cell(o, "login"),
            cell(o, "name"),
            o["role_titles"]
                .as_array()
                .map(|r| r
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("、"))
                .unwrap_or_default(),
            cell(o, "status"),
            if o["must_change_password"] == true {
                "  (must change password)"
            } else {
                ""
            }
        );
        if let Some(p) = o.get("initial_password").and_then(Value::as_str) {
            println!("initial password (shown once; to be changed at first login): {p}");
        }
    })
}

fn tokens_path(operator: &Option<String>) -> String {
    match operator {
        Some(o) => format!("/operators/{o}/tokens"),
        None => "/me/tokens".into(),
    }
}

fn secret(
    stdin: &mut Option<std::io::Lines<std::io::StdinLock<'static>>>,
    prompt: &str,
) -> anyhow::Result<String> {
    match stdin {
        Some(lines) => Ok(lines.next().context("standard input ended")??),
        None if std::io::stdin().is_terminal() => Ok(rpassword::prompt_password(prompt)?),
        None => bail!("no terminal to ask for the password: use --password-stdin"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Add {
            login,
            name,
            roles: r,
            api,
        } => {
            let api = Api::new(&api)?;
            let o = api.post(
                "/operators",
                Some(&json!({"login": login, "name": name, "roles": roles(&r)})),
            )?;
            show(&api, &o)
        }
        Args::List { api } => {
            let api = Api::new(&api)?;
            let list = api.get("/operators")?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|o| {
                        vec![
                            cell(o, "login"),
                            cell(o, "name"),
                            o["roles"]
                                .as_array()
                                .map(|r| {
                                    r.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                                .unwrap_or_default(),
                            cell(o, "status"),
                            cell(o, "locked_until"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["login", "name", "roles", "status", "locked until"], &rows)
                );
            })
        }
        Args::Show { login, api } => {
            let api = Api::new(&api)?;
            let o = api.get(&format!("/operators/{login}"))?;
            show(&api, &o)
        }
        Args::Disable { login, api } => {
            let api = Api::new(&api)?;
            let o = api.post(&format!("/operators/{login}/disable"), None)?;
            show(&api, &o)
        }
        Args::Enable { login, api } => {
            let api = Api::new(&api)?;
            let o = api.post(&format!("/operators/{login}/enable"), None)?;
            show(&api, &o)
        }
        Args::Role {
            login,
            roles: r,
            api,
        } => {
            let api = Api::new(&api)?;
            let o = api.put(
                &format!("/operators/{login}/roles"),
                &json!({"roles": roles(&r)}),
            )?;
            show(&api, &o)
        }
        Args::Passwd {
            login: Some(login),
            api,
            ..
        } => {
            let api = Api::new(&api)?;
            let o = api.post(&format!("/operators/{login}/password"), Some(&json!({})))?;
            show(&api, &o)
        }
        Args::Passwd {
            login: None,
            password_stdin,
            api,
        } => {
            let api = Api::new(&api)?;
            let mut stdin = password_stdin.then(|| std::io::stdin().lock().lines());
            let old = secret(&mut stdin, "原密码: ")?;
            let new = secret(&mut stdin, "新密码: ")?;
            if stdin.is_none() && secret(&mut stdin, "再次输入新密码: ")? != new {
                bail!("两次输入的新密码不一致");
            }
            let o = api.post(
                "/me/password",
                Some(&json!({"old_password": old, "new_password": new})),
            )?;
            api.print(&o, |_| println!("password changed"))
        }
        Args::Token(t) => token(t),
        Args::Roles { api } => {
            let api = Api::new(&api)?;
            let list = api.get("/roles")?;
            api.print(&list, |l| {
                for r in items(l) {
                    let p: Vec<&str> = r["permissions"]
                        .as_array()
                        .map(|p| p.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{} ({}): {}",
                        cell(r, "role"),
                        cell(r, "title"),
                        p.join(", ")
                    );
                }
            })
        }
    }
}

use std::io::BufRead;

fn token(t: TokenArgs) -> anyhow::Result<()> {
    match t {
        TokenArgs::Create {
            label,
            expires,
            operator,
            api,
        } => {
            let api = Api::new(&api)?;
            let v = api.post(
                &tokens_path(&operator),
                Some(&json!({"label": label, "expires_at": expires})),
            )?;
            api.print(&v, |v| {
                println!("token {} created; it is shown only now:", cell(v, "id"));
                println!("{}", cell(v, "token"));
            })
        }
        TokenArgs::List { operator, api } => {
            let api = Api::new(&api)?;
            let list = api.get(&tokens_path(&operator))?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|t| {
                        vec![
                            cell(t, "id"),
                            cell(t, "label"),
                            cell(t, "created_at"),
                            cell(t, "expires_at"),
                            cell(t, "revoked_at"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["id", "label", "created", "expires", "revoked"], &rows)
                );
            })
        }
        TokenArgs::Revoke { id, operator, api } => {
            let api = Api::new(&api)?;
            let v = api.delete(&format!("{}/{id}", tokens_path(&operator)))?;
            api.print(&v, |v| println!("token {} revoked", cell(v, "id")))
        }
    }
}

#[derive(clap::Args)]
pub struct JournalArgs {
    /// Entries by this operator's login.
    #[arg(long)]
    operator: Option<String>,
    /// Entries on this target, e.g. card:42, operator:wang.li, device:01020304.
    #[arg(long)]
    target: Option<String>,
    /// Entries of this operation, e.g. card.deposit.
    #[arg(long)]
    operation: Option<String>,
    /// From this time on (YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS").
    #[arg(long)]
    from: Option<String>,
    /// Before this time.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    api: ApiArgs,
}

/// Percent-encodes a query value (names may be Chinese; times hold spaces and colons).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn journal(a: JournalArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.api)?;
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [
        ("operator", &a.operator),
        ("target", &a.target),
        ("operation", &a.operation),
        ("from", &a.from),
        ("to", &a.to),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    let page = api.get(&format!("/journal?{}", q.join("&")))?;
    api.print(&page, |p| {
        let rows: Vec<Vec<String>> = items(&p["entries"])
            .iter()
            .map(|e| {
                vec![
                    cell(e, "seq"),
                    cell(e, "at"),
                    cell(e, "login"),
                    cell(e, "role"),
                    cell(e, "client"),
                    cell(e, "operation"),
                    cell(e, "target"),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "seq",
                    "at",
                    "operator",
                    "role",
                    "client",
                    "operation",
                    "target"
                ],
                &rows
            )
        );
    })
}
