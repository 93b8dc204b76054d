//! The front-end processor (前置机) as a tokio server: a terminal listener speaking the wire
//! protocol (`docs/protocol.md`) and an HTTP listener for health, Prometheus metrics and the
//! admin JSON API (`docs/admin-api.md`).
//!
//! Every request is handled without blocking the runtime: writes go through
//! [`Store::submit`] with a oneshot reply, reads through `spawn_blocking`. Shutdown stops
//! accepting, lets in-flight requests finish (their store jobs commit before they reply)
//! and flushes every answer before [`Server::shutdown`] returns.

mod admin;
mod admin_ops;
mod api;
mod auth;
mod authcards;
mod authcards_api;
mod bulk;
mod cardholders_api;
mod cash_api;
mod clock;
mod conn;
mod console;
mod dayend_api;
mod exceptions;
mod handlers;
mod http;
mod jobs;
mod lifecycle_api;
mod loads;
mod loads_api;
mod merchants_api;
pub(crate) mod metrics;
mod monitoring;
mod operators_api;
mod params_api;
mod pin_api;
mod reconcile_api;
mod registry;
mod routes;
mod signin_gate;
mod subsidies_api;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::error::{HostError, Result};
use crate::store::Store;

pub use admin::Provisioning;
pub use clock::Clock;
pub use metrics::{
    FAMILIES as METRIC_FAMILIES, Family as MetricFamily, Kind as MetricKind, backup_failed,
    backup_succeeded,
};
pub use operators_api::first_start;
pub use registry::{Command, Registry};
pub use routes::{AccessTable, RouteAccess};
pub use tls::Tls;

/// Every admin API route with the access it declares (for tests that walk the router).
pub fn access_table() -> AccessTable {
    http::api().1
}

/// Everything the server needs besides the store.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub terminal_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// The front-end processor this process serves as (R-H7).
    pub fep_id: u32,
    /// Bearer token the admin API demands.
    pub admin_token: String,
    /// Terminal connections at most; more are closed at once.
    pub max_connections: usize,
    /// Largest frame accepted (≤ 65,537).
    pub max_frame: usize,
    /// A client that started a frame must finish it within this (slow-loris guard).
    pub frame_deadline: Duration,
    /// A connection silent this long is closed; larger than the 60 s heartbeat period.
    pub idle_timeout: Duration,
    /// Requests of one connection handled at the same time (pipelining).
    pub max_in_flight: usize,
    /// How often connected terminals are asked for their status (R-F4.20).
    pub status_interval: Duration,
    /// How often connected terminals get their clock set again (R-F4.19: at least daily).
    pub clock_interval: Duration,
    /// The campus clock: terminals keep local time.
    pub clock: Clock,
    /// How often due replacement moves and bank refunds are run (R-B6, R-B7).
    pub sweep_interval: Duration,
    /// Tests only: the sweep routes accept a time later than now (`at`), so a test can
    /// pass the waiting period without waiting. Never set in production.
    pub sweep_at_future: bool,
    /// How often the day-end schedule looks for a day to close (R-B9).
    pub dayend_check: Duration,
    /// Operators' login lockout and browser-session lifetime (R-B1).
    pub login: crate::domain::operators::LoginPolicy,
    /// Mark the session cookie `Secure`; always so when `tls` is set.
    pub secure_cookies: bool,
    /// Serve the HTTP listener over TLS only (`tls::Tls::from_pem`).
    pub tls: Option<tls::Tls>,
}

impl ServerConfig {
    pub fn new(terminal_listen: SocketAddr, http_listen: SocketAddr, admin_token: String) -> Self {
        ServerConfig {
            terminal_listen,
            http_listen,
            fep_id: 1,
            admin_token,
            max_connections: 10_000,
            max_frame: ykt_proto::MAX_FRAME_LEN,
            frame_deadline: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(180),
            max_in_flight: 16,
            status_interval: Duration::from_secs(300),
            clock_interval: Duration::from_secs(24 * 3600),
            clock: Clock::china(),
            sweep_interval: Duration::from_secs(300),
            sweep_at_future: false,
            dayend_check: Duration::from_secs(60),
            login: crate::domain::operators::LoginPolicy::default(),
            secure_cookies: false,
            tls: None,
        }
    }
}

/// What connection tasks and HTTP handlers share.
pub(crate) struct Shared {
    pub store: Store,
    pub config: ServerConfig,
    pub registry: Registry,
    pub nonces: registry::NonceCache,
    pub metrics: metrics::Metrics,
    /// Every admin route's declared access, for `auth::require`.
    pub access: AccessTable,
    /// Set by [`Server::ready`]; `/healthz` says `starting` (503) until then.
    pub ready: AtomicBool,
}

/// A running server: its bound addresses, and the handle to stop it.
pub struct Server {
    terminal_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    registry: Registry,
    shared: Arc<Shared>,
}

/// Both listeners bound, nothing served yet: a caller binds first (a port in use fails
/// before anything is created) and serves once its store is open.
pub struct Listeners {
    terminals: TcpListener,
    http: TcpListener,
}

impl Listeners {
    /// Binds the terminal and HTTP listeners (port 0 works).
    pub async fn bind(terminal: SocketAddr, http: SocketAddr) -> Result<Listeners> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| HostError::Invalid(format!("cannot listen on {addr}: {e}")))
        };
        Ok(Listeners {
            terminals: bind(terminal).await?,
            http: bind(http).await?,
        })
    }

    pub fn terminal_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.terminals)
    }

    pub fn http_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.http)
    }

    /// Starts serving; `/healthz` answers 503 `starting` until [`Server::ready`]. Signs this
    /// process in as its FEP; when the FEP is not registered or activated, terminals get
    /// codes 10–13 until it is. `config`'s listen addresses are not used.
    pub async fn serve(self, config: ServerConfig, store: Store) -> Result<Server> {
        let terminal_addr = self.terminal_addr()?;
        let http_addr = self.http_addr()?;
        // The legacy admin token acts as the first administrator: make sure there is one.
        let (st, now) = (store.clone(), config.clock.now());
        if tokio::task::spawn_blocking(move || first_start(&st, now))
            .await
            .map_err(|_| HostError::Closed)??
            .is_some()
        {
            tracing::warn!(
                "created the first system administrator `admin` with a password nobody was shown: reset it with the admin token (ykt operator passwd admin)"
            );
        }
        let shared = Arc::new(Shared {
            registry: Registry::default(),
            nonces: registry::NonceCache::default(),
            metrics: metrics::Metrics::install(),
            access: http::api().1,
            ready: AtomicBool::new(false),
            store,
            config,
        });
        admin::sign_in_fep(&shared).await;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            Arc::clone(&shared),
            self.terminals,
            stop_rx.clone(),
        ));
        tasks.spawn(admin_ops::fep_watch(Arc::clone(&shared), stop_rx.clone()));
        tasks.spawn(lifecycle_api::sweep_loop(
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
        tasks.spawn(dayend_api::schedule(Arc::clone(&shared), stop_rx.clone()));
        tasks.spawn(http::serve(Arc::clone(&shared), self.http, stop_rx));
        tracing::info!(%terminal_addr, %http_addr, fep = shared.config.fep_id, "serving");
        Ok(Server {
            terminal_addr,
            http_addr,
            stop,
            tasks,
            registry: shared.registry.clone(),
            shared,
        })
    }
}

fn local_addr(l: &TcpListener) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(|e| HostError::Invalid(format!("listener address: {e}")))
}

impl Server {
    /// Binds both listeners and starts serving, ready at once (see [`Listeners`] to bind
    /// first and declare readiness later).
    pub async fn start(config: ServerConfig, store: Store) -> Result<Server> {
        let listeners = Listeners::bind(config.terminal_listen, config.http_listen).await?;
        let server = listeners.serve(config, store).await?;
        server.ready();
        Ok(server)
    }

    /// From now on `/healthz` answers `ok`: whatever the caller prepares (demo files, the
    /// address file) is in place.
    pub fn ready(&self) {
        self.shared.ready.store(true, Ordering::Release);
    }

    pub fn terminal_addr(&self) -> SocketAddr {
        self.terminal_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Terminals signed in on this process right now.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Stops accepting, lets every connection answer what it has in flight, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("server stopped");
    }
}

/// Runs until `shutdown` resolves, then stops gracefully.
pub async fn run(
    config: ServerConfig,
    store: Store,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let server = Server::start(config, store).await?;
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    server.shutdown().await;
    Ok(())
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(%peer, limit = shared.config.max_connections, "connection limit reached; closing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                next_id += 1;
                let conn = conn::Conn::new(Arc::clone(&shared), next_id, peer, stop.clone());
                conns.spawn(async move {
                    conn.run(stream).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
