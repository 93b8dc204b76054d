//! Async bridges to the store: writes as `submit` + oneshot (never blocks the runtime),
//! reads on a blocking thread.

use tokio::sync::oneshot;

use chrono::NaiveDateTime;

use crate::domain::journal::{self, Actor, Change};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::store::Store;

/// Runs `f` in a writer's transaction; resolves after COMMIT.
pub(crate) async fn write<T, F>(store: &Store, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    store.submit(f, move |r| {
        let _ = tx.send(r);
    })?;
    rx.await.map_err(|_| HostError::Closed)?
}

/// Runs `each` for every item in ONE writer job (`Store::submit_each`: one savepoint per
/// item, one group commit for all); resolves after COMMIT with one result per item.
pub(crate) async fn write_each<I, S, T, P, F>(
    store: &Store,
    items: Vec<I>,
    prepare: P,
    each: F,
) -> Result<Vec<Result<T>>>
where
    I: Send + 'static,
    S: 'static,
    T: Send + 'static,
    P: FnMut(&mut Tx<'_>) -> Result<S> + Send + 'static,
    F: FnMut(&mut Tx<'_>, &S, &I) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    store.submit_each(items, prepare, each, move |r| {
        let _ = tx.send(r);
    })?;
    rx.await.map_err(|_| HostError::Closed)
}

/// Runs `f` on a reader connection.
pub(crate) async fn read<T, F>(store: &Store, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.read(f))
        .await
        .map_err(|_| HostError::Closed)?
}

/// Runs `f` in a writer's transaction, waiting for queue space (admin actions, not terminals).
pub(crate) async fn execute<T, F>(store: &Store, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.execute(f))
        .await
        .map_err(|_| HostError::Closed)?
}

/// Runs `f` in a writer's transaction (waiting for queue space) and appends the journal entry
/// it describes in the same transaction (R-B1): how every state change made through the admin
/// API is written, so none goes unjournalled.
pub(crate) async fn change<T, F>(
    store: &Store,
    actor: &Actor,
    now: NaiveDateTime,
    mut f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>) -> Result<(T, Change)> + Send + 'static,
{
    let actor = actor.clone();
    execute(store, move |tx| {
        let (t, change) = f(tx)?;
        journal::append(tx, &actor, now, &change)?;
        Ok(t)
    })
    .await
}

/// [`change`] for a job that reads every account's balance (day-end): run with
/// [`Store::execute_settled`], so the balances it reads match the transfers.
pub(crate) async fn change_settled<T, F>(
    store: &Store,
    actor: &Actor,
    now: NaiveDateTime,
    mut f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>) -> Result<(T, Change)> + Send + 'static,
{
    let actor = actor.clone();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store.execute_settled(move |tx| {
            let (t, change) = f(tx)?;
            journal::append(tx, &actor, now, &change)?;
            Ok(t)
        })
    })
    .await
    .map_err(|_| HostError::Closed)?
}
