//! Async bridges to the store: writes as `submit` + oneshot (never blocks the runtime),
//! reads on a blocking thread.

use tokio::sync::oneshot;

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
