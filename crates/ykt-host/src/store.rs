//! The `Store` handle: domain operations run as jobs on dedicated writer threads, each with
//! its own connection. A writer takes a batch of queued jobs and runs them in ONE database
//! transaction (group commit: one fsync for many authorisations), so that a refused or
//! failed job does not disturb the others. The jobs first run bare: a refused job that
//! wrote nothing needs no undo (the connection's change count tells). Only when a job fails
//! after writing is the batch rolled back and run again with one savepoint per job.
//! Replies are sent only after COMMIT: an authorisation is durable before its answer
//! leaves (R-P5.2).
//!
//! A job may also carry several items (`submit_each`: the records of one upload): the items
//! run one after the other inside the job, each in its own nested savepoint, so a refused
//! item leaves the others booked, and the whole upload shares one group commit.
//!
//! On a deadlock or serialisation failure (PostgreSQL, several processes) the batch is
//! rolled back and its jobs are re-run one transaction each; jobs are therefore `FnMut`
//! and must be repeatable (domain functions are: they only read their captured request).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crate::backend::postgres::PgConn;
use crate::backend::sqlite::SqliteConn;
use crate::cache::ConfigCache;
use crate::domain::records::TacVerifier;
use crate::error::{HostError, Result};
use crate::ledger::{Deltas, Tx, apply_deltas};
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

/// Items (a plain job counts one, an upload job one per record) per transaction at most,
/// besides `StoreConfig::max_batch` jobs: bounds a transaction's duration (~90 ms of
/// writer time at ~21 µs a record) and its savepoint journal.
const MAX_BATCH_ITEMS: usize = 4_096;

/// Items of one `submit_each` job at most: an upload carries up to 64 records; the bound
/// keeps one job's share of a group commit (and its savepoint journal) small.
pub const MAX_ITEMS_PER_JOB: usize = 256;

enum JobState {
    Done,
    /// Refused or failed. `undone`: the job rolled back what it wrote itself (its own
    /// savepoint). `unexpected`: it failed otherwise than by a refusal (an SQL error, which
    /// on PostgreSQL also aborts the transaction): what it did must be undone.
    Failed {
        undone: bool,
        unexpected: bool,
    },
    Retry(HostError),
}

impl JobState {
    fn failed(e: &HostError) -> JobState {
        JobState::Failed {
            undone: false,
            unexpected: !matches!(e, HostError::Refused(_) | HostError::Invalid(_)),
        }
    }
}

trait Job: Send {
    /// Runs the job; the balance changes of what it keeps go to `deltas` (merged into the
    /// batch's only when the job is `Done`).
    fn run(
        &mut self,
        conn: &mut dyn Conn,
        policy: Policy,
        cache: Option<&mut ConfigCache>,
        deltas: &mut Deltas,
    ) -> JobState;
    /// Its share of a group commit (`max_batch` counts these).
    fn weight(&self) -> usize {
        1
    }
    /// Whether the job reads account balances as a whole (day-end's snapshot, the audit):
    /// the balance changes of the jobs before it in its batch are applied first.
    fn settles_first(&self) -> bool {
        false
    }
    /// Sends the outcome (after commit) or the commit's error.
    fn finish(self: Box<Self>, committed: Result<()>);
}

/// Whether a job needs the batch's balances settled before it runs ([`Job::settles_first`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Balances {
    AsPending,
    Settled,
}

struct TypedJob<T, F, R> {
    f: F,
    outcome: Option<Result<T>>,
    reply: R,
    balances: Balances,
}

impl<T, F, R> Job for TypedJob<T, F, R>
where
    T: Send,
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send,
    R: FnOnce(Result<T>) + Send,
{
    fn run(
        &mut self,
        conn: &mut dyn Conn,
        policy: Policy,
        cache: Option<&mut ConfigCache>,
        deltas: &mut Deltas,
    ) -> JobState {
        let mut tx = Tx::cached(conn, policy, cache);
        let result = (self.f)(&mut tx);
        *deltas = tx.take_deltas();
        match result {
            Ok(v) => {
                self.outcome = Some(Ok(v));
                JobState::Done
            }
            Err(e) if e.is_retryable() => JobState::Retry(e),
            Err(e) => {
                let state = JobState::failed(&e);
                self.outcome = Some(Err(e));
                state
            }
        }
    }

    fn settles_first(&self) -> bool {
        self.balances == Balances::Settled
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let result = match committed {
            Ok(()) => self.outcome.unwrap_or(Err(HostError::Closed)),
            Err(e) => Err(e),
        };
        (self.reply)(result);
    }
}

/// Several items in one job: `prepare` once, then `each` per item in its own savepoint.
struct EachJob<I, S, T, P, F, R> {
    items: Vec<I>,
    prepare: P,
    each: F,
    /// One per item once the job has run; cleared when it runs again (retry).
    outcomes: Vec<Result<T>>,
    reply: R,
    _prepared: std::marker::PhantomData<fn() -> S>,
}

impl<I, S, T, P, F, R> EachJob<I, S, T, P, F, R>
where
    I: Send,
    T: Send,
    P: FnMut(&mut Tx<'_>) -> Result<S> + Send,
    F: FnMut(&mut Tx<'_>, &S, &I) -> Result<T> + Send,
    R: FnOnce(Vec<Result<T>>) + Send,
{
    /// Every item fails with `e` (the job as a whole could not run); nothing is kept.
    fn fail_all(&mut self, e: &HostError) -> JobState {
        self.outcomes = self.items.iter().map(|_| Err(replicate(e))).collect();
        JobState::failed(e)
    }

    /// Runs `prepare` and the items. With `per_item`, each item runs in its own savepoint
    /// and a refused item is rolled back alone. Without, items run bare and the first
    /// refusal ends the pass with `None`: the caller rolls the pass back and runs again with
    /// savepoints. (SQLite copies every page an item touches into the savepoint journal, and
    /// frees it on release: per-item savepoints were a third of the writer's time.)
    fn run_items(
        &mut self,
        conn: &mut dyn Conn,
        policy: Policy,
        mut cache: Option<&mut ConfigCache>,
        deltas: &mut Deltas,
        per_item: bool,
    ) -> Result<Option<JobState>> {
        self.outcomes.clear();
        deltas.clear();
        let prepared = {
            let mut tx = Tx::cached(conn, policy, cache.as_deref_mut());
            let prepared = (self.prepare)(&mut tx);
            merge(deltas, tx.take_deltas());
            prepared
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) if e.is_retryable() => return Ok(Some(JobState::Retry(e))),
            Err(e) => return Ok(Some(self.fail_all(&e))),
        };
        let mut any_done = false;
        for item in &self.items {
            if per_item {
                conn.batch("SAVEPOINT item")?;
            }
            let mut tx = Tx::cached(conn, policy, cache.as_deref_mut());
            let result = (self.each)(&mut tx, &prepared, item);
            let item_deltas = tx.take_deltas();
            match result {
                Ok(v) => {
                    if per_item {
                        conn.batch("RELEASE SAVEPOINT item")?;
                    }
                    merge(deltas, item_deltas);
                    self.outcomes.push(Ok(v));
                    any_done = true;
                }
                Err(e) if e.is_retryable() => return Ok(Some(JobState::Retry(e))),
                Err(e) if per_item => {
                    conn.batch("ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item")?;
                    self.outcomes.push(Err(e));
                }
                // One item alone: the caller undoes it (its savepoint or the batch).
                Err(e) if self.items.len() == 1 => {
                    let state = JobState::failed(&e);
                    self.outcomes.push(Err(e));
                    return Ok(Some(state));
                }
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(if any_done {
            JobState::Done
        } else {
            // Every item refused, each rolled back in its own savepoint.
            JobState::Failed {
                undone: true,
                unexpected: false,
            }
        }))
    }

    /// The optimistic pass under one savepoint; on a refusal, the careful pass.
    fn run_all(
        &mut self,
        conn: &mut dyn Conn,
        policy: Policy,
        mut cache: Option<&mut ConfigCache>,
        deltas: &mut Deltas,
    ) -> Result<JobState> {
        let unreachable = JobState::Failed {
            undone: false,
            unexpected: true,
        };
        if self.items.len() == 1 {
            // `run_items` ends a one-item pass with a state, never `None`.
            return Ok(self
                .run_items(conn, policy, cache, deltas, false)?
                .unwrap_or(unreachable));
        }
        conn.batch("SAVEPOINT items")?;
        match self.run_items(conn, policy, cache.as_deref_mut(), deltas, false)? {
            Some(JobState::Done) => {
                conn.batch("RELEASE SAVEPOINT items")?;
                Ok(JobState::Done)
            }
            Some(JobState::Failed { .. }) => {
                // `prepare` failed: undo whatever it did here, so the batch need not.
                conn.batch("ROLLBACK TO SAVEPOINT items; RELEASE SAVEPOINT items")?;
                Ok(JobState::Failed {
                    undone: true,
                    unexpected: false,
                })
            }
            Some(retry) => Ok(retry), // the caller rolls the batch back
            None => {
                conn.batch("ROLLBACK TO SAVEPOINT items; RELEASE SAVEPOINT items")?;
                let state = self.run_items(conn, policy, cache, deltas, true)?;
                Ok(state.unwrap_or(unreachable))
            }
        }
    }
}

impl<I, S, T, P, F, R> Job for EachJob<I, S, T, P, F, R>
where
    I: Send,
    T: Send,
    P: FnMut(&mut Tx<'_>) -> Result<S> + Send,
    F: FnMut(&mut Tx<'_>, &S, &I) -> Result<T> + Send,
    R: FnOnce(Vec<Result<T>>) + Send,
{
    fn run(
        &mut self,
        conn: &mut dyn Conn,
        policy: Policy,
        cache: Option<&mut ConfigCache>,
        deltas: &mut Deltas,
    ) -> JobState {
        let state = match self.run_all(conn, policy, cache, deltas) {
            Ok(state) => state,
            // A savepoint statement failed: the caller rolls the whole job back.
            Err(e) if e.is_retryable() => JobState::Retry(e),
            Err(e) => self.fail_all(&e),
        };
        if !matches!(state, JobState::Retry(_)) {
            assert_eq!(
                self.outcomes.len(),
                self.items.len(),
                "one outcome per item"
            );
        }
        state
    }

    fn weight(&self) -> usize {
        self.items.len().max(1)
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let n = self.items.len();
        let outcomes = match committed {
            Ok(()) if self.outcomes.len() == n => self.outcomes,
            Ok(()) => (0..n).map(|_| Err(HostError::Closed)).collect(),
            Err(e) => (0..n).map(|_| Err(replicate(&e))).collect(),
        };
        (self.reply)(outcomes);
    }
}

fn merge(into: &mut Deltas, from: Deltas) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// The same error again, for each item of a job that failed as a whole.
fn replicate(e: &HostError) -> HostError {
    match e {
        HostError::Refused(code) => HostError::Refused(*code),
        HostError::Invalid(m) => HostError::Invalid(m.clone()),
        HostError::Invariant(m) => HostError::Invariant(m.clone()),
        HostError::Forbidden(m) => HostError::Forbidden(m.clone()),
        HostError::Db { message, retryable } => HostError::Db {
            message: message.clone(),
            retryable: *retryable,
        },
        HostError::Corrupt(m) => HostError::Corrupt(m.clone()),
        HostError::Closed => HostError::Closed,
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
    /// What the writers have run, for metrics and tests.
    written: Arc<PoolCounts>,
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
        let rewind = Arc::new(AtomicBool::new(false));
        let written = Arc::new(PoolCounts::default());
        let jobs = spawn_pool(&config, "writer", writers, Mode::Write(&rewind), &written)?;
        let reads = spawn_pool(
            &config,
            "reader",
            config.readers.max(1),
            Mode::Read,
            &Arc::new(PoolCounts::default()),
        )?;
        let alive = Arc::new(());
        if let Backend::Sqlite(path) = &config.backend {
            crate::backend::sqlite::spawn_checkpointer(
                path,
                Arc::downgrade(&alive),
                rewind,
                crate::backend::sqlite::REWIND_AT_FRAMES,
            )?;
        }
        Ok(Store {
            jobs,
            reads,
            policy: config.policy,
            tac: config.tac,
            written,
            _alive: alive,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn tac_verifier(&self) -> Option<Arc<dyn TacVerifier>> {
        self.tac.clone()
    }

    /// Jobs and batches the writers have run since the store opened.
    pub fn writer_stats(&self) -> WriterStats {
        let jobs = self.written.jobs.load(Ordering::Relaxed);
        WriterStats {
            jobs,
            batches: self.written.batches.load(Ordering::Relaxed),
            busy_micros: self.written.busy_micros.load(Ordering::Relaxed),
            queued: self
                .written
                .enqueued
                .load(Ordering::Relaxed)
                .saturating_sub(jobs),
            writers: self.written.threads.load(Ordering::Relaxed),
        }
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
        self.enqueue(Box::new(TypedJob {
            f,
            outcome: None,
            reply,
            balances: Balances::AsPending,
        }))
    }

    /// Queues ONE job that runs `prepare` once, then `each` for every item in order, each
    /// item in its own savepoint: a refused item (its `Err`) leaves nothing written and
    /// does not disturb the others. `reply` gets one result per item, in order, after
    /// COMMIT (or every item the commit's error). The job is repeatable like any other:
    /// on a conflict it runs again from `prepare`. `prepare` should only read (what it
    /// writes is kept only when an item succeeds); its error becomes every item's.
    /// At most [`MAX_ITEMS_PER_JOB`] items; never blocks (a full queue → code 1).
    pub fn submit_each<I, S, T, P, F, R>(
        &self,
        items: Vec<I>,
        prepare: P,
        each: F,
        reply: R,
    ) -> Result<()>
    where
        I: Send + 'static,
        S: 'static,
        T: Send + 'static,
        P: FnMut(&mut Tx<'_>) -> Result<S> + Send + 'static,
        F: FnMut(&mut Tx<'_>, &S, &I) -> Result<T> + Send + 'static,
        R: FnOnce(Vec<Result<T>>) + Send + 'static,
    {
        if items.len() > MAX_ITEMS_PER_JOB {
            // The caller bounds its items (an upload carries at most 64).
            return Err(HostError::Invariant(format!(
                "{} items in one job (at most {MAX_ITEMS_PER_JOB})",
                items.len()
            )));
        }
        if items.is_empty() {
            reply(Vec::new());
            return Ok(());
        }
        let job = Box::new(EachJob {
            outcomes: Vec::with_capacity(items.len()),
            items,
            prepare,
            each,
            reply,
            _prepared: std::marker::PhantomData,
        });
        self.enqueue(job)
    }

    fn enqueue(&self, job: BoxedJob) -> Result<()> {
        // Counted before it can be taken, so the queue depth never goes below zero.
        self.written.enqueued.fetch_add(1, Ordering::Relaxed);
        let refused = match self.jobs.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(_)) => HostError::Refused(ykt_proto::ReturnCode::SYSTEM_FAILURE),
            Err(TrySendError::Disconnected(_)) => HostError::Closed,
        };
        self.written.enqueued.fetch_sub(1, Ordering::Relaxed);
        Err(refused)
    }

    /// Runs `f` in a writer's transaction and waits for the committed result.
    pub fn execute<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.written.enqueued.fetch_add(1, Ordering::Relaxed);
        Self::wait(&self.jobs, f, Balances::AsPending)
    }

    /// `execute` for a job that reads every account's balance (day-end): the balance
    /// changes of the jobs before it in its batch are applied before it runs, so it sees
    /// the balances that match the transfers.
    pub fn execute_settled<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.written.enqueued.fetch_add(1, Ordering::Relaxed);
        Self::wait(&self.jobs, f, Balances::Settled)
    }

    /// Runs `f` in a read-only transaction (one consistent snapshot) on a reader
    /// connection, so long reads never hold up writers. Writes in `f` fail.
    pub fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        Self::wait(&self.reads, f, Balances::AsPending)
    }

    fn wait<T, F>(queue: &SyncSender<BoxedJob>, f: F, balances: Balances) -> Result<T>
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
            balances,
        });
        // Blocking callers wait for queue space rather than fail.
        queue.send(job).map_err(|_| HostError::Closed)?;
        rx.recv().map_err(|_| HostError::Closed)?
    }
}

/// Jobs and batches a pool of threads has taken, and what the pool's queue holds.
#[derive(Default)]
struct PoolCounts {
    /// Jobs taken from the queue.
    jobs: AtomicU64,
    batches: AtomicU64,
    /// Jobs put in the queue: minus `jobs`, the queue's depth.
    enqueued: AtomicU64,
    /// Time the threads spent running batches.
    busy_micros: AtomicU64,
    threads: AtomicU64,
}

/// How much the writers have run: a forged frame must not move these (it never costs the
/// single SQLite writer a transaction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub jobs: u64,
    pub batches: u64,
    /// Time the writers spent running batches, in microseconds, all writers together.
    pub busy_micros: u64,
    /// Jobs waiting for a writer.
    pub queued: u64,
    /// Writer threads (connections).
    pub writers: u64,
}

#[derive(Clone, Copy)]
enum Mode<'a> {
    /// With the flag the SQLite checkpointer raises when the writer should rewind the WAL.
    Write(&'a Arc<AtomicBool>),
    Read,
}

fn spawn_pool(
    config: &StoreConfig,
    role: &str,
    threads: usize,
    mode: Mode<'_>,
    counts: &Arc<PoolCounts>,
) -> Result<SyncSender<BoxedJob>> {
    let (tx, rx) = mpsc::sync_channel::<BoxedJob>(config.queue.max(1));
    counts.threads.store(threads as u64, Ordering::Relaxed);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let mut conn: Box<dyn Conn> = match (&config.backend, mode) {
            (Backend::Sqlite(path), Mode::Write(rewind)) => {
                Box::new(SqliteConn::open(path)?.rewinding_on(Arc::clone(rewind)))
            }
            (Backend::Sqlite(path), Mode::Read) => Box::new(SqliteConn::open(path)?),
            (Backend::Postgres(url), _) => Box::new(PgConn::connect(url)?),
        };
        if matches!(mode, Mode::Read) {
            conn.set_read_only()?;
        }
        let rx = Arc::clone(&rx);
        // Writers cache configuration rows; readers read the tables.
        let cache = matches!(mode, Mode::Write(_)).then(ConfigCache::default);
        let policy = config.policy;
        let max_batch = config.max_batch.max(1);
        let counts = Arc::clone(counts);
        let pool = match mode {
            Mode::Write(_) => Pool::Writers,
            Mode::Read => Pool::Readers,
        };
        thread::Builder::new()
            .name(format!("ykt-{role}-{i}"))
            .spawn(move || worker(conn, rx, policy, cache, max_batch, &counts, pool))
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
    mut cache: Option<ConfigCache>,
    max_batch: usize,
    counts: &PoolCounts,
    pool: Pool,
) {
    loop {
        let mut batch: Vec<BoxedJob> = Vec::new();
        // Items (records) too are bounded: an upload job carries up to 64.
        let mut weight = 0;
        {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => {
                    weight += job.weight();
                    batch.push(job);
                }
                Err(_) => return, // every Store handle is gone
            }
            while batch.len() < max_batch && weight < MAX_BATCH_ITEMS {
                match rx.try_recv() {
                    Ok(job) => {
                        weight += job.weight();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        run_batch(conn.as_mut(), batch, policy, cache.as_mut(), pool);
        let took = started.elapsed();
        if pool == Pool::Writers {
            crate::server::metrics::store_batch(took);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        counts.busy_micros.fetch_add(micros, Ordering::Relaxed);
        conn.between_batches();
    }
}

/// Which pool a thread serves: only the writers' batch and commit latencies are metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pool {
    Writers,
    Readers,
}

/// How a batch runs its jobs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// No savepoints: a refused job that wrote nothing needs no undo, and the domain
    /// refuses before it writes. A job that failed after writing ends the pass (`Redo`).
    Bare,
    /// One savepoint per job: a failed job is rolled back alone. SQLite copies every page a
    /// savepoint touches into its journal, so this pass costs ~15 % of the writer.
    Careful,
}

enum BatchError {
    /// A job failed with writes that only its own savepoint could undo: run the batch
    /// again, carefully.
    Redo,
    Db(HostError),
}

impl From<HostError> for BatchError {
    fn from(e: HostError) -> Self {
        BatchError::Db(e)
    }
}

/// Runs jobs in one transaction; `Err` (with the jobs back) when the batch must be run
/// again: carefully (`Redo`) or one job at a time (a retryable database error).
fn try_batch(
    conn: &mut dyn Conn,
    jobs: &mut [BoxedJob],
    policy: Policy,
    mut cache: Option<&mut ConfigCache>,
    pass: Pass,
    pool: Pool,
) -> std::result::Result<(), BatchError> {
    conn.begin()?;
    let mut deltas: Deltas = BTreeMap::new();
    // A job alone needs no savepoint: if it fails, the whole transaction is rolled back.
    let alone = jobs.len() == 1;
    let savepoints = pass == Pass::Careful && !alone;
    let outcome = (|| {
        if let Some(c) = cache.as_deref_mut() {
            c.check(conn)?;
        }
        let mut any_done = false;
        for job in jobs.iter_mut() {
            if job.settles_first() && !deltas.is_empty() {
                apply_deltas(conn, &deltas)?;
                deltas.clear();
            }
            if savepoints {
                conn.batch("SAVEPOINT job")?;
            }
            let changes_before = conn.changes();
            let mut job_deltas = BTreeMap::new();
            let state = job.run(conn, policy, cache.as_deref_mut(), &mut job_deltas);
            if conn.take_config_change() {
                // That job may yet be rolled back: no cache for the rest of the batch, and
                // the next batch starts afresh.
                if let Some(c) = cache.take() {
                    c.clear();
                }
            }
            match state {
                JobState::Done => {
                    if savepoints {
                        conn.batch("RELEASE SAVEPOINT job")?;
                    }
                    any_done = true;
                    merge(&mut deltas, job_deltas);
                }
                JobState::Failed { .. } if alone => {}
                JobState::Failed { .. } if savepoints => {
                    conn.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?
                }
                JobState::Failed { undone: true, .. } => {}
                JobState::Failed { unexpected, .. } => {
                    if unexpected || conn.changes() != changes_before {
                        return Err(BatchError::Redo);
                    }
                }
                JobState::Retry(e) => return Err(BatchError::Db(e)),
            }
        }
        if !any_done {
            // Nothing to keep (every job refused): no commit, no fsync.
            return Ok(conn.batch("ROLLBACK")?);
        }
        apply_deltas(conn, &deltas)?;
        let committing = Instant::now();
        conn.batch("COMMIT")?;
        if pool == Pool::Writers {
            crate::server::metrics::store_commit(committing.elapsed());
        }
        Ok(())
    })();
    if outcome.is_err() {
        let _ = conn.batch("ROLLBACK");
    }
    outcome
}

fn run_batch(
    conn: &mut dyn Conn,
    mut jobs: Vec<BoxedJob>,
    policy: Policy,
    mut cache: Option<&mut ConfigCache>,
    pool: Pool,
) {
    let mut outcome = try_batch(
        conn,
        &mut jobs,
        policy,
        cache.as_deref_mut(),
        Pass::Bare,
        pool,
    );
    if matches!(outcome, Err(BatchError::Redo)) {
        tracing::debug!(
            jobs = jobs.len(),
            "a job failed after writing; running the batch with savepoints"
        );
        outcome = try_batch(
            conn,
            &mut jobs,
            policy,
            cache.as_deref_mut(),
            Pass::Careful,
            pool,
        );
    }
    match outcome {
        Ok(()) => jobs.into_iter().for_each(|j| j.finish(Ok(()))),
        Err(BatchError::Db(e)) if e.is_retryable() => {
            tracing::debug!(
                jobs = jobs.len(),
                "batch conflicted; running its jobs one by one"
            );
            for job in jobs {
                run_alone(conn, job, policy, cache.as_deref_mut(), pool);
            }
        }
        Err(e) => {
            let e = match e {
                BatchError::Db(e) => e,
                BatchError::Redo => HostError::Corrupt("a careful pass asked for a redo".into()),
            };
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

fn run_alone(
    conn: &mut dyn Conn,
    job: BoxedJob,
    policy: Policy,
    mut cache: Option<&mut ConfigCache>,
    pool: Pool,
) {
    let mut one = [job];
    let mut last = None;
    for attempt in 0..MAX_RETRIES {
        // A job alone never needs a redo: a failure rolls its transaction back.
        match try_batch(
            conn,
            &mut one,
            policy,
            cache.as_deref_mut(),
            Pass::Bare,
            pool,
        ) {
            Ok(()) => {
                let [job] = one;
                return job.finish(Ok(()));
            }
            Err(BatchError::Db(e)) if e.is_retryable() => {
                tracing::debug!(attempt, error = %e, "job conflicted; retrying");
                last = Some(e);
            }
            Err(BatchError::Db(e)) => {
                let [job] = one;
                return job.finish(Err(e));
            }
            Err(BatchError::Redo) => {
                let [job] = one;
                return job.finish(Err(HostError::Corrupt(
                    "a lone job asked for a redo".into(),
                )));
            }
        }
    }
    let [job] = one;
    job.finish(Err(last.unwrap_or(HostError::Closed)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use proptest::prelude::*;
    use ykt_proto::ReturnCode;

    use super::*;
    use crate::domain::admin;
    use crate::ledger::{FUNDING_ACCOUNT, Transfer, audit};
    use crate::repo;

    fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(StoreConfig::new(Backend::Sqlite(
            dir.path().join("each.db"),
        )))
        .unwrap()
    }

    /// Creates merchant `no`, pays `10 × no` fen into it, then refuses when asked to: the
    /// refusal must take the merchant and the money back out.
    fn book(tx: &mut Tx<'_>, no: u32, refuse: bool) -> Result<u32> {
        admin::create_merchant(tx, no, "m")?;
        tx.post(Transfer {
            id: format!("test:{no}"),
            from: FUNDING_ACCOUNT.to_owned(),
            to: repo::merchant_account(no),
            amount: i64::from(no) * 10,
            kind: "test",
            record: None,
            time: chrono::NaiveDateTime::default(),
        })?;
        if refuse {
            return Err(HostError::Refused(ReturnCode::MERCHANT_NOT_FOUND));
        }
        Ok(no)
    }

    /// Parks the writer in a job of its own until the returned sender sends: the jobs
    /// submitted meanwhile queue up and run as one batch.
    fn park(store: &Store) -> mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        store
            .submit(
                move |_tx| {
                    let _ = started_tx.send(());
                    let _ = release_rx.lock().unwrap().recv();
                    Ok(())
                },
                |_r: Result<()>| {},
            )
            .unwrap();
        started_rx.recv().unwrap();
        release_tx
    }

    /// Runs `items` (merchant number, refuse?) as one job and waits for the results.
    fn run_each(store: &Store, items: Vec<(u32, bool)>) -> Vec<Result<u32>> {
        let (tx, rx) = mpsc::channel();
        store
            .submit_each(
                items,
                |_tx| Ok(()),
                |tx, _: &(), &(no, refuse)| book(tx, no, refuse),
                move |r| tx.send(r).unwrap(),
            )
            .unwrap();
        rx.recv().unwrap()
    }

    /// What the books hold for merchant `no`: (exists, account balance).
    fn held(store: &Store, no: u32) -> (bool, Option<ykt_proto::Fen>) {
        store
            .read(move |tx| {
                Ok((
                    repo::merchant_get(tx.conn, no)?.is_some(),
                    repo::account_balance(tx.conn, &repo::merchant_account(no))?,
                ))
            })
            .unwrap()
    }

    fn code(r: &Result<u32>) -> Option<u8> {
        r.as_ref().err().map(|e| e.return_code().0)
    }

    // R-P5.9, R-H6: one refused record of an upload leaves the others booked and itself
    // leaves nothing behind, neither rows nor ledger balance changes.
    #[test]
    fn refused_item_leaves_the_others_booked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let out = run_each(
            &store,
            vec![(1, false), (2, false), (3, true), (4, false), (5, true)],
        );
        let codes: Vec<_> = out.iter().map(code).collect();
        assert_eq!(codes, [None, None, Some(40), None, Some(40)]);
        assert_eq!(out[3].as_ref().unwrap(), &4);
        for (no, kept) in [(1, true), (2, true), (3, false), (4, true), (5, false)] {
            let expected = if kept {
                (true, Some(i64::from(no) * 10))
            } else {
                (false, None)
            };
            assert_eq!(held(&store, no), expected, "merchant {no}");
        }
        let report = store.read(|tx| audit(tx.conn)).unwrap();
        assert!(report.is_clean(), "{report:?}");
        let funding = store
            .read(|tx| repo::account_balance(tx.conn, FUNDING_ACCOUNT))
            .unwrap();
        assert_eq!(funding, Some(-70));
    }

    // R-P5.9: every item refused → nothing written, every item gets its own code.
    #[test]
    fn all_refused_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let out = run_each(&store, vec![(7, true), (8, true)]);
        assert!(out.iter().all(|r| code(r) == Some(40)));
        assert_eq!(held(&store, 7), (false, None));
        let one = run_each(&store, vec![(9, true)]);
        assert_eq!(code(&one[0]), Some(40));
        assert_eq!(held(&store, 9), (false, None));
    }

    // R-H1: when the job's common part fails (e.g. an unknown device, code 20), every item
    // gets that code and nothing is written.
    #[test]
    fn prepare_error_is_every_items_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (tx, rx) = mpsc::channel();
        store
            .submit_each(
                vec![11_u32, 12],
                |_tx| Err::<(), _>(HostError::Refused(ReturnCode::POS_NOT_REGISTERED)),
                |tx, _: &(), &no| book(tx, no, false),
                move |r| tx.send(r).unwrap(),
            )
            .unwrap();
        let out: Vec<Result<u32>> = rx.recv().unwrap();
        assert_eq!(
            out.iter().map(code).collect::<Vec<_>>(),
            [Some(20), Some(20)]
        );
        assert_eq!(held(&store, 11), (false, None));
    }

    // Limits: more items than a job may carry are refused before queueing; none → no job.
    #[test]
    fn item_count_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let too_many = vec![0_u32; MAX_ITEMS_PER_JOB + 1];
        let r = store.submit_each(
            too_many,
            |_tx| Ok(()),
            |_tx, _: &(), _| Ok(()),
            |_r| panic!("must not run"),
        );
        assert!(matches!(r, Err(HostError::Invariant(_))));
        let (tx, rx) = mpsc::channel();
        store
            .submit_each(
                Vec::<u32>::new(),
                |_tx| Ok(()),
                |_tx, _: &(), _| Ok(()),
                move |r| tx.send(r.len()).unwrap(),
            )
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 0);
    }

    // R-P5.2, R-P5.9: in one group commit with other jobs (nested savepoints), an upload
    // job's refused item and a refused neighbour job each roll back only themselves.
    #[test]
    fn each_job_shares_a_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let release_tx = park(&store);
        let (single_tx, single_rx) = mpsc::channel();
        let s1 = single_tx.clone();
        store
            .submit(move |tx| book(tx, 21, false), move |r| s1.send(r).unwrap())
            .unwrap();
        let (each_tx, each_rx) = mpsc::channel();
        store
            .submit_each(
                vec![(22, false), (23, true), (24, false)],
                |_tx| Ok(()),
                |tx, _: &(), &(no, refuse)| book(tx, no, refuse),
                move |r| each_tx.send(r).unwrap(),
            )
            .unwrap();
        store
            .submit(
                move |tx| book(tx, 25, true),
                move |r| single_tx.send(r).unwrap(),
            )
            .unwrap();
        release_tx.send(()).unwrap();
        assert_eq!(single_rx.recv().unwrap().unwrap(), 21);
        assert_eq!(code(&single_rx.recv().unwrap()), Some(40));
        let each = each_rx.recv().unwrap();
        assert_eq!(
            each.iter().map(code).collect::<Vec<_>>(),
            [None, Some(40), None]
        );
        for (no, kept) in [(21, true), (22, true), (23, false), (24, true), (25, false)] {
            assert_eq!(held(&store, no).0, kept, "merchant {no}");
        }
        assert!(store.read(|tx| audit(tx.conn)).unwrap().is_clean());
    }

    // R-P5.9 "never booked twice": a conflict in one item re-runs the whole job from the
    // start in a fresh transaction; what the first attempt did is gone, nothing is doubled.
    #[test]
    fn conflict_reruns_the_whole_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&attempts);
        let (tx, rx) = mpsc::channel();
        store
            .submit_each(
                vec![31_u32, 32, 33],
                move |_tx| Ok(seen.fetch_add(1, Ordering::SeqCst)),
                |tx, attempt: &usize, &no| {
                    if no == 32 && *attempt == 0 {
                        return Err(HostError::Db {
                            message: "simulated deadlock".into(),
                            retryable: true,
                        });
                    }
                    book(tx, no, false)
                },
                move |r| tx.send(r).unwrap(),
            )
            .unwrap();
        let out: Vec<Result<u32>> = rx.recv().unwrap();
        assert_eq!(out.iter().map(code).collect::<Vec<_>>(), [None, None, None]);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        for no in [31, 32, 33] {
            assert_eq!(held(&store, no), (true, Some(i64::from(no) * 10)));
        }
        assert!(store.read(|tx| audit(tx.conn)).unwrap().is_clean());
    }

    // The common case costs one pass: items run without savepoints of their own; only an
    // upload with a refused record runs again, one savepoint per record.
    #[test]
    fn items_run_once_unless_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let runs = Arc::new(AtomicUsize::new(0));
        let each_run = |items: Vec<(u32, bool)>| {
            let counted = Arc::clone(&runs);
            let (tx, rx) = mpsc::channel();
            store
                .submit_each(
                    items,
                    |_tx| Ok(()),
                    move |tx, _: &(), &(no, refuse)| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        book(tx, no, refuse)
                    },
                    move |r| tx.send(r).unwrap(),
                )
                .unwrap();
            rx.recv().unwrap()
        };
        let ok = each_run(vec![(41, false), (42, false), (43, false)]);
        assert!(ok.iter().all(|r| r.is_ok()));
        assert_eq!(runs.swap(0, Ordering::SeqCst), 3);
        let mixed = each_run(vec![(44, false), (45, true), (46, false)]);
        assert_eq!(
            mixed.iter().map(code).collect::<Vec<_>>(),
            [None, Some(40), None]
        );
        // 2 until the refusal, then 3 with savepoints.
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        assert_eq!(held(&store, 44), (true, Some(440)));
        assert_eq!(held(&store, 46), (true, Some(460)));
        assert!(store.read(|tx| audit(tx.conn)).unwrap().is_clean());
    }

    /// What a test job does: book its merchant, refuse before writing, or refuse after.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fate {
        Book,
        RefuseFirst,
        RefuseAfterWriting,
    }

    /// Runs one plain job per fate (merchant 100 + index) in ONE batch (the writer is
    /// parked until all are queued); returns their results and how often each job ran.
    fn run_batch_of(store: &Store, fates: &[Fate]) -> (Vec<Result<u32>>, Vec<usize>) {
        let release_tx = park(store);
        let mut replies = Vec::new();
        let mut runs = Vec::new();
        for (i, &fate) in fates.iter().enumerate() {
            let no = 100 + i as u32;
            let (tx, rx) = mpsc::channel();
            let counted = Arc::new(AtomicUsize::new(0));
            let c = Arc::clone(&counted);
            store
                .submit(
                    move |tx| {
                        c.fetch_add(1, Ordering::SeqCst);
                        match fate {
                            Fate::RefuseFirst => Err(HostError::Refused(ReturnCode::CARD_LOST)),
                            other => book(tx, no, other == Fate::RefuseAfterWriting),
                        }
                    },
                    move |r| tx.send(r).unwrap(),
                )
                .unwrap();
            replies.push(rx);
            runs.push(counted);
        }
        release_tx.send(()).unwrap();
        let results = replies.iter().map(|rx| rx.recv().unwrap()).collect();
        (
            results,
            runs.iter().map(|c| c.load(Ordering::SeqCst)).collect(),
        )
    }

    // R-P5.2: refusals that wrote nothing cost no savepoint and no second pass; a job
    // refused after writing sends the batch round again with savepoints, and only the
    // accepted jobs are kept.
    #[test]
    fn bare_pass_redoes_the_batch_only_after_a_dirty_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let clean = [Fate::Book, Fate::RefuseFirst, Fate::Book, Fate::RefuseFirst];
        let (results, runs) = run_batch_of(&store, &clean);
        assert_eq!(
            results.iter().map(code).collect::<Vec<_>>(),
            [None, Some(51), None, Some(51)]
        );
        assert_eq!(runs, [1, 1, 1, 1]);
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let dirty = [Fate::Book, Fate::RefuseAfterWriting, Fate::Book];
        let (results, runs) = run_batch_of(&store, &dirty);
        assert_eq!(
            results.iter().map(code).collect::<Vec<_>>(),
            [None, Some(40), None]
        );
        // Jobs up to the dirty one ran twice; the last one only in the careful pass.
        assert_eq!(runs, [2, 2, 1]);
        for (no, kept) in [(100, true), (101, false), (102, true)] {
            assert_eq!(held(&store, no).0, kept, "merchant {no}");
        }
        assert!(store.read(|tx| audit(tx.conn)).unwrap().is_clean());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        // R-P5.9, R-H6: for any pattern of refusals in an upload of up to 64 records,
        // exactly the accepted ones are kept, in order, and the books balance.
        #[test]
        fn any_refusal_pattern_keeps_exactly_the_accepted(
            refuse in proptest::collection::vec(any::<bool>(), 1..=64)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = open(&dir);
            let items: Vec<(u32, bool)> =
                refuse.iter().enumerate().map(|(i, &r)| (i as u32 + 1, r)).collect();
            let out = run_each(&store, items.clone());
            prop_assert_eq!(out.len(), items.len());
            for ((no, refused), r) in items.iter().zip(&out) {
                prop_assert_eq!(r.is_err(), *refused);
                prop_assert_eq!(held(&store, *no).0, !*refused);
            }
            let report = store.read(|tx| audit(tx.conn)).unwrap();
            prop_assert!(report.is_clean());
        }

        // R-P5.2, R-H6: whatever mix of accepted, cleanly refused and refused-after-writing
        // jobs shares a batch, exactly the accepted ones are kept and the books balance.
        #[test]
        fn any_batch_keeps_exactly_the_accepted_jobs(
            fates in proptest::collection::vec(
                prop_oneof![Just(Fate::Book), Just(Fate::RefuseFirst),
                            Just(Fate::RefuseAfterWriting)], 1..=24)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = open(&dir);
            let (results, _) = run_batch_of(&store, &fates);
            for (i, (fate, r)) in fates.iter().zip(&results).enumerate() {
                let booked = *fate == Fate::Book;
                prop_assert_eq!(r.is_ok(), booked);
                prop_assert_eq!(held(&store, 100 + i as u32).0, booked);
            }
            let report = store.read(|tx| audit(tx.conn)).unwrap();
            prop_assert!(report.is_clean());
        }
    }
}
