//! `ykt serve`: the front-end processor and admin API (`ykt_host::server`), on an embedded
//! SQLite database under `--data` or on PostgreSQL, with an optional demo campus.

mod backups;
pub mod config;
pub mod data_dir;
mod demo;
mod https;
pub mod tac;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use std::sync::Arc;

use super::client::{SERVE_ADDR_FILE, ServeAddr};
use config::Settings;
use data_dir::StartedDir;
use ykt_host::server::{Clock, Listeners, Server, ServerConfig, Tls};
use ykt_host::{Backend, Store, StoreConfig, TacVerifier};

/// Every setting as a flag, a `YKT_*` variable or a key of `--config` (`config.rs`).
pub use config::Options as Args;

/// The SQLite database in a data directory.
pub const DATABASE_FILE: &str = "ykt.db";

/// The store of `--data` / `--database`, shared by `serve` and `audit`.
pub fn open_store(data: &Path, database: Option<&str>) -> anyhow::Result<Store> {
    open_store_with(data, database, None)
}

fn open_store_with(
    data: &Path,
    database: Option<&str>,
    tac: Option<Arc<dyn TacVerifier>>,
) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let backend = match database {
        Some(url) => Backend::Postgres(url.to_owned()),
        None => Backend::Sqlite(data.join(DATABASE_FILE)),
    };
    let mut config = StoreConfig::new(backend);
    config.tac = tac;
    Store::open(config).context("cannot open the database")
}

/// The TAC verifier over the key file, or `None` (with a warning) when there is none.
fn tac_verifier(a: &Settings) -> anyhow::Result<Option<Arc<dyn TacVerifier>>> {
    let path = a.keys.clone().unwrap_or_else(|| a.data.join("keys"));
    if !path.exists() {
        tracing::warn!(path = %path.display(), "no system key file: CPU card records will be refused (99)");
        return Ok(None);
    }
    let keys = super::keys::load(&path)?;
    Ok(Some(Arc::new(tac::KeyFileTac(keys))))
}

/// Where the first administrator's initial password is left at the first start (0600).
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

fn clock(a: &Settings) -> Clock {
    Clock {
        utc_offset_secs: a.utc_offset_hours.clamp(-14, 14) * 3600,
    }
}

/// The admin token: created (mode 0600) on first start, read afterwards. It acts as the
/// first system administrator (`docs/operators.md`).
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

/// Reads the settings, binds first, so a port in use fails before anything is created;
/// then prepares the data directory, serves, seeds the demo, starts scheduled backups,
/// writes `serve.addr` and only then reports ready (`/healthz` ok, the "ready" line). A
/// start that fails removes what it created.
pub fn run(args: Args) -> anyhow::Result<()> {
    let a = config::load(args)?;
    crate::logging::init(a.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let tls = https::load(&a.tls, a.http_listen)?;
    let scheme = https::scheme(&tls);
    let listeners = runtime.block_on(Listeners::bind(a.terminal_listen, a.http_listen))?;
    let data = StartedDir::create(&a.data)?;
    let server = runtime.block_on(start(&a, listeners, tls))?;
    let addr_file = a.data.join(SERVE_ADDR_FILE);
    let backups = a
        .backups
        .clone()
        .map(|s| backups::Scheduler::start(s, a.data.clone()))
        .transpose()?;
    let addr = ServeAddr {
        terminal: server.terminal_addr().to_string(),
        http: server.http_addr().to_string(),
        tls_cert: a.tls.as_ref().map(|t| absolute(&t.cert)),
    };
    write_serve_addr(&addr_file, &addr)?;
    data.keep();
    server.ready();
    println!(
        "ykt serve ready: terminals on {}, admin API on {scheme}://{} (addresses in {})",
        server.terminal_addr(),
        server.http_addr(),
        addr_file.display()
    );
    runtime.block_on(shutdown_signal());
    if let Some(b) = backups {
        b.stop();
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    runtime.block_on(server.shutdown());
    let _ = std::fs::remove_file(&addr_file);
    Ok(())
}

/// Opens the store, reads or creates the admin token, serves on `listeners` (not ready yet)
/// and seeds the demo campus.
async fn start(a: &Settings, listeners: Listeners, tls: Option<Tls>) -> anyhow::Result<Server> {
    let fresh_demo = a.demo && !demo::seeded(&a.data);
    if fresh_demo {
        demo::ensure_keys(&a.data)?;
    }
    let (data, database, tac) = (a.data.clone(), a.database.clone(), tac_verifier(a)?);
    let store = blocking(move || open_store_with(&data, database.as_deref(), tac)).await?;
    let token = admin_token(&a.data)?;
    let (st, now) = (store.clone(), clock(a).now());
    if let Some(password) = blocking(move || Ok(ykt_host::server::first_start(&st, now)?)).await? {
        let path = a.data.join(ADMIN_PASSWORD_FILE);
        super::keys::write_secret(&path, password.as_bytes())?;
        println!(
            "first start: operator `admin` (系统管理员) created; initial password in {} (change it at first login: ykt login --user admin)",
            path.display()
        );
    }
    if fresh_demo {
        let (store, fep) = (store.clone(), a.fep_id);
        blocking(move || demo::prepare_fep(&store, fep)).await?;
    }
    let mut config = ServerConfig::new(a.terminal_listen, a.http_listen, token);
    config.fep_id = a.fep_id;
    config.max_connections = a.max_connections;
    config.clock = clock(a);
    // Tests only (not a setting): lets the sweep routes run as of a later time, so a test
    // passes the replacement / closure waiting period without waiting (docs/operators.md).
    config.sweep_at_future = std::env::var("YKT_TEST_SWEEP_CLOCK").as_deref() == Ok("1");
    if config.sweep_at_future {
        tracing::warn!(
            "YKT_TEST_SWEEP_CLOCK=1: the waiting period can be cut short; never in production"
        );
    }
    config.idle_timeout = Duration::from_secs(180);
    config.tls = tls;
    let server = listeners.serve(config, store.clone()).await?;
    // The demo's provisioning files name the address actually bound (port 0 works).
    if a.demo {
        let (data, fep) = (a.data.clone(), a.fep_id);
        let (terminal, http) = (server.terminal_addr(), server.http_addr());
        let seeded = blocking(move || demo::seed(&store, &data, fep, terminal, &http)).await;
        if let Err(e) = seeded {
            server.shutdown().await;
            return Err(e);
        }
    }
    Ok(server)
}

/// Runs blocking work (the store's `execute`, files) off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a start-up task panicked")?
}

/// `DATA/serve.addr`: where this process listens, for the CLI and for scripts; written
/// atomically once the server serves (its presence means "ready").
fn write_serve_addr(path: &Path, addr: &ServeAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension("addr.tmp");
    std::fs::write(&tmp, serde_json::to_string(addr)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `p` made absolute against the working directory, for a file other processes read.
fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
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
