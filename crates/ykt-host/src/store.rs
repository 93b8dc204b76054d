//! The `Store` handle: domain operations run as jobs on dedicated writer threads, each with
//! its own connection. A writer takes a batch of queued jobs and runs them in ONE database
//! transaction (group commit: one fsync for many authorisations), each job inside its own
//! savepoint so a refused or failed job does not disturb the others. Replies are sent only
//! after COMMIT: an authorisation is durable before its answer leaves (R-P5.2).
//!
//! On a deadlock or serialisation failure (PostgreSQL, several processes) the batch is
//! rolled back and its jobs are re-run one transaction each; jobs are therefore `FnMut`
//! and must be repeatable (domain functions are: they only read their captured request).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use ykt_proto::Fen;

use crate::backend::postgres::PgConn;
use crate::backend::sqlite::SqliteConn;
use crate::domain::records::TacVerifier;
use crate::error::{HostError, Result};
use crate::ledger::{Tx, apply_deltas};
use crate::model::Policy;
use crate::sql::Conn;

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A SQLite database file (created when missing). One writer thread.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, e.g. `host=127.0.0.1 user=postgres dbname=ykt`.
    Postgres(String),
}

#[derive(Clone)]
pub struct StoreConfig {
    pub backend: Backend,
    /// Writer threads (connections). SQLite always uses one.
    pub writers: usize,
    /// Reader threads (connections) for `read`: queries that must not wait behind writes
    /// (blacklist downloads, reports, audits).
    pub readers: usize,
    /// Jobs waiting for a writer; `submit` fails with `Busy` beyond this (back-pressure).
    pub queue: usize,
    /// Jobs per transaction at most.
    pub max_batch: usize,
    pub policy: Policy,
    /// Verifies CPU card TACs; without one, CPU records are refused (code 99).
    pub tac: Option<Arc<dyn TacVerifier>>,
}

impl StoreConfig {
    pub fn new(backend: Backend) -> StoreConfig {
        // SQLite's one writer pays one WAL fsync per batch (~10 ms here, measured as the
        // writer's idle share): with 2,000 terminals in flight, batches of 1,024 cut that
        // to ~10 µs per job. PostgreSQL's writers retry a conflicting batch job by job, so
        // they keep smaller batches.
        let max_batch = match backend {
            Backend::Sqlite(_) => 1_024,
            Backend::Postgres(_) => 256,
        };
        StoreConfig {
            backend,
            writers: 4,
            readers: 2,
            queue: 10_000,
            max_batch,
            policy: Policy::default(),
            tac: None,
        }
    }
}

/// Retries of one job after deadlocks before its caller gets the error.
const MAX_RETRIES: usize = 20;

enum JobState {
    Done,
    Failed,
    Retry(HostError),
}

trait Job: Send {
    fn run(&mut self, tx: &mut Tx<'_>) -> JobState;
    /// Sends the outcome (after commit) or the commit's error.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct TypedJob<T, F, R> {
    f: F,
    outcome: Option<Result<T>>,
    reply: R,
}

impl<T, F, R> Job for TypedJob<T, F, R>
where
    T: Send,
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send,
    R: FnOnce(Result<T>) + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> JobState {
        match (self.f)(tx) {
            Ok(v) => {
                self.outcome = Some(Ok(v));
                JobState::Done
            }
            Err(e) if e.is_retryable() => JobState::Retry(e),
            Err(e) => {
                self.outcome = Some(Err(e));
                JobState::Failed
            }
        }
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let result = match committed {
            Ok(()) => self.outcome.unwrap_or(Err(HostError::Closed)),
            Err(e) => Err(e),
        };
        (self.reply)(result);
    }
}

type BoxedJob = Box<dyn Job>;

/// A handle on the store; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Store {
    jobs: SyncSender<BoxedJob>,
    reads: SyncSender<BoxedJob>,
    policy: Policy,
    tac: Option<Arc<dyn TacVerifier>>,
    /// Background threads (the SQLite checkpointer) run while a handle holds this.
    _alive: Arc<()>,
}

impl Store {
    /// Connects every writer and reader (applying migrations) and starts their threads.
    pub fn open(config: StoreConfig) -> Result<Store> {
        let writers = match config.backend {
            Backend::Sqlite(_) => 1,
            Backend::Postgres(_) => config.writers.max(1),
        };
        let jobs = spawn_pool(&config, "writer", writers, Mode::Write)?;
        let reads = spawn_pool(&config, "reader", config.readers.max(1), Mode::Read)?;
        let alive = Arc::new(());
        if let Backend::Sqlite(path) = &config.backend {
            crate::backend::sqlite::spawn_checkpointer(path, Arc::downgrade(&alive))?;
        }
        Ok(Store {
            jobs,
            reads,
            policy: config.policy,
            tac: config.tac,
            _alive: alive,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn tac_verifier(&self) -> Option<Arc<dyn TacVerifier>> {
        self.tac.clone()
    }

    /// Queues `f` to run in a writer's transaction; `reply` gets its result after commit.
    /// Never blocks: a full queue is refused with code 1 (the terminal goes offline, R-P5.3).
    /// From async code, `reply` can complete a oneshot channel. `reply` runs on the writer
    /// thread: it must hand the result over and return, never block or call the store.
    pub fn submit<T, F, R>(&self, f: F, reply: R) -> Result<()>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
        R: FnOnce(Result<T>) + Send + 'static,
    {
        let job = Box::new(TypedJob {
            f,
            outcome: None,
            reply,
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(HostError::Refused(ykt_proto::ReturnCode::SYSTEM_FAILURE))
            }
            Err(TrySendError::Disconnected(_)) => Err(HostError::Closed),
        }
    }

    /// Runs `f` in a writer's transaction and waits for the committed result.
    pub fn execute<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        Self::wait(&self.jobs, f)
    }

    /// Runs `f` in a read-only transaction (one consistent snapshot) on a reader
    /// connection, so long reads never hold up writers. Writes in `f` fail.
    pub fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        Self::wait(&self.reads, f)
    }

    fn wait<T, F>(queue: &SyncSender<BoxedJob>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Box::new(TypedJob {
            f,
            outcome: None,
            reply: move |r| {
                let _ = tx.send(r);
            },
        });
        // Blocking callers wait for queue space rather than fail.
        queue.send(job).map_err(|_| HostError::Closed)?;
        rx.recv().map_err(|_| HostError::Closed)?
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    Read,
}

fn spawn_pool(
    config: &StoreConfig,
    role: &str,
    threads: usize,
    mode: Mode,
) -> Result<SyncSender<BoxedJob>> {
    let (tx, rx) = mpsc::sync_channel::<BoxedJob>(config.queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let mut conn: Box<dyn Conn> = match &config.backend {
            Backend::Sqlite(path) => Box::new(SqliteConn::open(path)?),
            Backend::Postgres(url) => Box::new(PgConn::connect(url)?),
        };
        if mode == Mode::Read {
            conn.set_read_only()?;
        }
        let rx = Arc::clone(&rx);
        let policy = config.policy;
        let max_batch = config.max_batch.max(1);
        thread::Builder::new()
            .name(format!("ykt-{role}-{i}"))
            .spawn(move || worker(conn, rx, policy, max_batch))
            .map_err(|e| HostError::Db {
                message: format!("cannot start a {role} thread: {e}"),
                retryable: false,
            })?;
    }
    Ok(tx)
}

fn worker(
    mut conn: Box<dyn Conn>,
    rx: Arc<Mutex<Receiver<BoxedJob>>>,
    policy: Policy,
    max_batch: usize,
) {
    loop {
        let mut batch = Vec::new();
        {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => batch.push(job),
                Err(_) => return, // every Store handle is gone
            }
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        run_batch(conn.as_mut(), batch, policy);
    }
}

/// Runs jobs in one transaction; `Err` (with the jobs back) when the batch must be retried.
fn try_batch(
    conn: &mut dyn Conn,
    jobs: &mut [BoxedJob],
    policy: Policy,
) -> std::result::Result<(), HostError> {
    conn.begin()?;
    let mut deltas: BTreeMap<String, Fen> = BTreeMap::new();
    // A job alone needs no savepoint: if it fails, the whole transaction is rolled back.
    let alone = jobs.len() == 1;
    let outcome = (|| {
        let mut any_done = false;
        for job in jobs.iter_mut() {
            if !alone {
                conn.batch("SAVEPOINT job")?;
            }
            let mut tx = Tx::new(conn, policy);
            let state = job.run(&mut tx);
            let job_deltas = tx.take_deltas();
            match state {
                JobState::Done => {
                    if !alone {
                        conn.batch("RELEASE SAVEPOINT job")?;
                    }
                    any_done = true;
                    for (k, v) in job_deltas {
                        *deltas.entry(k).or_default() += v;
                    }
                }
                JobState::Failed if alone => {}
                JobState::Failed => {
                    conn.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?
                }
                JobState::Retry(e) => return Err(e),
            }
        }
        if !any_done {
            // Nothing to keep (every job refused): no commit, no fsync.
            return conn.batch("ROLLBACK");
        }
        apply_deltas(conn, &deltas)?;
        conn.batch("COMMIT")
    })();
    if outcome.is_err() {
        let _ = conn.batch("ROLLBACK");
    }
    outcome
}

fn run_batch(conn: &mut dyn Conn, mut jobs: Vec<BoxedJob>, policy: Policy) {
    match try_batch(conn, &mut jobs, policy) {
        Ok(()) => jobs.into_iter().for_each(|j| j.finish(Ok(()))),
        Err(e) if e.is_retryable() => {
            tracing::debug!(
                jobs = jobs.len(),
                "batch conflicted; running its jobs one by one"
            );
            for job in jobs {
                run_alone(conn, job, policy);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = jobs.len(), "batch failed");
            let message = e.to_string();
            for job in jobs {
                job.finish(Err(HostError::Db {
                    message: message.clone(),
                    retryable: false,
                }));
            }
        }
    }
}

fn run_alone(conn: &mut dyn Conn, job: BoxedJob, policy: Policy) {
    let mut one = [job];
    let mut last = None;
    for attempt in 0..MAX_RETRIES {
        match try_batch(conn, &mut one, policy) {
            Ok(()) => {
                let [job] = one;
                return job.finish(Ok(()));
            }
            Err(e) if e.is_retryable() => {
                tracing::debug!(attempt, error = %e, "job conflicted; retrying");
                last = Some(e);
            }
            Err(e) => {
                let [job] = one;
                return job.finish(Err(e));
            }
        }
    }
    let [job] = one;
    job.finish(Err(last.unwrap_or(HostError::Closed)));
}
