//! Online debits on the SQLite default, quiet and under a flood of forged sign-ins (wrong
//! MAC, unknown device, replayed nonce) from other connections: the flood is refused on the
//! connections and never reaches the single writer, so the debits must not slow down.
//! `CARGO_TARGET_DIR=/work/target-fep cargo bench -p ykt-host --bench forged_signins`
#![allow(clippy::unwrap_used)]

#[path = "../tests/server/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::*;
use ykt_proto::*;

/// Connections sending forged sign-ins during the second benchmark.
const FLOODERS: usize = 8;

/// The one terminal that debits, with its card's state.
struct Debiting {
    t: TestTerminal,
    card: CardNo,
    counter: u32,
    balance: Fen,
    serial: u32,
}

impl Debiting {
    async fn debit(&mut self) {
        self.serial += 1;
        let msg = debit(self.card, self.counter, self.balance, 1, self.serial);
        let Message::DebitResponse(d) = self.t.request(msg).await.unwrap() else {
            panic!("not a debit response")
        };
        assert_eq!(d.code, ReturnCode::SUCCESS);
        self.counter += 1;
        self.balance = d.balance;
    }
}

/// Sends forged sign-ins until `stop`, counting them.
async fn flood(
    addr: std::net::SocketAddr,
    kind: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let (device, key) = match kind % 3 {
        0 => (PhysicalId([9, 9, 9, 9]), master()),
        1 => (
            DEVICE,
            DeviceKey {
                suite: Suite::Aes128,
                key: Key([0x22; 16]),
            },
        ),
        _ => (DEVICE, master()),
    };
    let mut t = TestTerminal::connect(addr, device).await;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        // Kind 2 replays one nonce a genuine sign-in used; the others vary it.
        let nonce = if kind % 3 == 2 {
            [7; 8]
        } else {
            i.to_be_bytes()
        };
        assert!(t.sign_in_with(&key, nonce).await.is_err());
        sent.fetch_add(1, Ordering::Relaxed);
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(sqlite());
    let card = w.cards[0];
    w.store
        .execute(move |tx| {
            ykt_host::domain::admin::deposit(
                tx,
                ykt_host::domain::admin::Payer::system(&ykt_host::domain::journal::Actor::system(
                    "bench",
                )),
                card,
                10_000_000,
                "bench",
                time(),
            )?;
            Ok(())
        })
        .unwrap();
    let addr = w.server.terminal_addr();
    let mut d = rt.block_on(async {
        let mut replayed = TestTerminal::connect(addr, DEVICE).await;
        replayed.sign_in_with(&master(), [7; 8]).await.unwrap();
        let mut t = TestTerminal::connect(addr, DEVICE).await;
        t.sign_in().await;
        Debiting {
            t,
            card,
            counter: 0,
            balance: 10_010_000,
            serial: 0,
        }
    });

    let mut g = c.benchmark_group("online_debit");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    g.bench_function("quiet", |b| b.iter(|| rt.block_on(d.debit())));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|k| rt.spawn(flood(addr, k, Arc::clone(&stop), Arc::clone(&sent))))
        .collect();
    let (started, jobs_before, debits_before) =
        (Instant::now(), w.store.writer_stats().jobs, d.serial);
    g.bench_function("under_forged_signin_flood", |b| {
        b.iter(|| rt.block_on(d.debit()))
    });
    stop.store(true, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let forged = sent.load(Ordering::Relaxed);
    let jobs = w.store.writer_stats().jobs - jobs_before;
    let debits = d.serial - debits_before;
    rt.block_on(async {
        for f in flooders {
            f.await.unwrap();
        }
    });
    // Quiet again: how much the machine's own noise moves the figures.
    g.bench_function("quiet_again", |b| b.iter(|| rt.block_on(d.debit())));
    g.finish();
    println!(
        "flood: {forged} forged sign-ins in {secs:.1} s ({:.0}/s); writer jobs meanwhile: \
         {jobs}, debits meanwhile: {debits}",
        forged as f64 / secs
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
