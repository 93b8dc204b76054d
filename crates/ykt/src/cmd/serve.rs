//! `ykt serve`: the front-end processor and admin API (`ykt_host::server`), on an embedded
//! SQLite database under `--data` or on PostgreSQL, with an optional demo campus.

mod demo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use ykt_host::server::{Clock, ServerConfig};
use ykt_host::{Backend, Store, StoreConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Data directory: SQLite database, admin token, demo files. Created on first start.
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    /// PostgreSQL connection string instead of SQLite, e.g. `host=127.0.0.1 user=postgres dbname=ykt`.
    #[arg(long)]
    pub database: Option<String>,
    /// Where terminals connect (the wire protocol).
    #[arg(long, default_value = "0.0.0.0:9000")]
    pub terminal_listen: SocketAddr,
    /// Health, metrics and the admin API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// The front-end processor this process serves as (R-H7).
    #[arg(long, default_value_t = 1)]
    pub fep_id: u32,
    /// Seed a demo campus into a fresh data directory (merchants, devices, cards).
    #[arg(long)]
    pub demo: bool,
    /// The campus's offset from UTC in hours (terminals keep local time).
    #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
    pub utc_offset_hours: i32,
    /// Terminal connections at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
}

/// The store of `--data` / `--database`, shared by `serve` and `audit`.
pub fn open_store(data: &Path, database: Option<&str>) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let backend = match database {
        Some(url) => Backend::Postgres(url.to_owned()),
        None => Backend::Sqlite(data.join("ykt.db")),
    };
    Store::open(StoreConfig::new(backend)).context("cannot open the database")
}

/// The admin token: created (mode 0600) on first start, read afterwards.
pub fn admin_token(data: &Path) -> anyhow::Result<String> {
    let path = data.join("admin-token");
    if !path.exists() {
        let mut t = [0u8; 24];
        rand::rng().fill_bytes(&mut t);
        super::keys::write_secret(&path, hex::encode(t).as_bytes())?;
    }
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(token.trim().to_owned())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let store = open_store(&a.data, a.database.as_deref())?;
    let token = admin_token(&a.data)?;
    if a.demo {
        demo::seed(&store, &a.data, a.fep_id, a.terminal_listen, &a.http_listen)?;
    }
    let mut config = ServerConfig::new(a.terminal_listen, a.http_listen, token);
    config.fep_id = a.fep_id;
    config.max_connections = a.max_connections;
    config.clock = Clock {
        utc_offset_secs: a.utc_offset_hours.clamp(-14, 14) * 3600,
    };
    config.idle_timeout = Duration::from_secs(180);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        ykt_host::server::run(config, store, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
