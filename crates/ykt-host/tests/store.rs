//! The store's job machinery, independent of the backend (run on SQLite).
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;

use ykt_host::*;
use ykt_proto::ReturnCode;

// R-P5.3 via code 1: a full queue refuses at once instead of making terminals wait; the
// terminal handles codes 1–9 like a timeout and goes offline.
#[test]
fn full_queue_refuses_with_system_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(Backend::Sqlite(dir.path().join("q.db")));
    config.queue = 1;
    config.max_batch = 1;
    let store = Store::open(config).unwrap();
    // Park the only writer inside a job until the test lets it go.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
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
    let (done_tx, done_rx) = mpsc::channel();
    let queued = done_tx.clone();
    store
        .submit(|_tx| Ok(7), move |r| queued.send(r.unwrap()).unwrap())
        .unwrap();
    let full = store.submit(|_tx| Ok(8), move |r| done_tx.send(r.unwrap()).unwrap());
    assert!(matches!(
        full,
        Err(HostError::Refused(ReturnCode::SYSTEM_FAILURE))
    ));
    release_tx.send(()).unwrap();
    assert_eq!(done_rx.recv().unwrap(), 7);
}

// R-P5.2: the reply comes after COMMIT, and a refused job leaves nothing behind.
#[test]
fn refused_job_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(Backend::Sqlite(dir.path().join("r.db")))).unwrap();
    let r = store.execute(|tx| {
        domain::admin::create_merchant(tx, 5, "m")?;
        Err::<(), _>(HostError::Refused(ReturnCode::MERCHANT_NOT_FOUND))
    });
    assert!(matches!(r, Err(HostError::Refused(_))));
    let m = store.read(|tx| repo::merchant_get(tx.conn, 5)).unwrap();
    assert_eq!(m, None);
    store
        .execute(|tx| domain::admin::create_merchant(tx, 5, "m"))
        .unwrap();
    assert!(
        store
            .read(|tx| repo::merchant_get(tx.conn, 5))
            .unwrap()
            .is_some()
    );
}
