//! Terminal core speed: a whole offline consumption (amount keys, tap, card read with checks,
//! journal append + sync, card write sequence, status + sync), MF1 and CPU, on `MemFlash` and
//! the simulated reader. What the core adds to the card's own time at a lunch-peak queue.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::cpu::app::issue_cpu;
use ykt_card::keys::SystemKeys;
use ykt_card::{SimCard, SimulatedReader};
use ykt_proto::*;
use ykt_terminal::*;

fn keys() -> SystemKeys {
    SystemKeys::from_material(1, &[7; 112])
}

fn params() -> TerminalParams {
    TerminalParams {
        version: 1,
        work_mode: WorkMode::Offline,
        consumption_mode: ConsumptionMode::UnitPrice,
        fixed_amount: 0,
        price_list: vec![],
        allowed_classes: ClassSet::ALL,
        fee_rates: [0; 256],
        max_balance: 0,
        min_balance: 0,
        max_daily_uses: 0,
        single_password_threshold: 0,
        daily_password_threshold: 0,
        wallet_no: 0,
        max_offline_hours: 0,
        working_hours: vec![],
        operator_card: ykt_proto::AuthFunctions::NONE,
    }
}

/// An offline terminal past its sign-in timeout, with the card on the reader.
fn terminal(cpu: bool) -> (Terminal<MemFlash>, SimulatedReader, u64) {
    let rtc = NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(11, 0, 0)
        .unwrap();
    let cfg = TerminalConfig {
        device: PhysicalId([1, 2, 3, 4]),
        master: DeviceKey {
            suite: Suite::Aes128,
            key: Key([7; 16]),
        },
        card_keys: keys(),
        journal: JournalConfig::for_pending(10_000),
        entropy: 1,
        role: ykt_terminal::TerminalRole::Pos,
    };
    let (mut s, _) = TerminalStorage::open(MemFlash::new(), cfg.journal, 0, rtc).unwrap();
    s.params
        .update(&mut s.flash, |p| {
            p.merchant_no = 1;
            p.params = Some(params());
        })
        .unwrap();
    let (mut t, _) = Terminal::power_on(s.into_flash(), cfg, 0, rtc).unwrap();
    let mut reader = SimulatedReader::new(1);
    let no = CardNo::new(77).unwrap();
    let expiry = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
    let card = if cpu {
        SimCard::Cpu(
            issue_cpu(
                &keys(),
                [1, 2, 3, 4],
                no,
                DisplayNo::new(77).unwrap(),
                1,
                expiry,
                9_000_000,
                "123456",
                1,
            )
            .unwrap(),
        )
    } else {
        let p = IssueParams {
            card_no: no,
            display_no: DisplayNo::new(77).unwrap(),
            class: 1,
            expiry,
            balances: vec![9_000_000],
            pin: "123456".into(),
        };
        SimCard::Mf1(issue(&keys(), [1, 2, 3, 4], &p).unwrap())
    };
    reader.place(card);
    t.handle(Input::Tick, &mut reader, 6_000);
    (t, reader, 6_000)
}

fn tap(t: &mut Terminal<MemFlash>, r: &mut SimulatedReader, now: u64) {
    t.handle(Input::Key(ykt_terminal::Key::Digit(1)), r, now);
    t.handle(Input::Key(ykt_terminal::Key::Enter), r, now);
    r.retap();
    t.handle(Input::CardPresent, r, now);
}

fn consumption(c: &mut Criterion) {
    let mut group = c.benchmark_group("offline_consumption");
    for cpu in [false, true] {
        group.bench_function(if cpu { "cpu" } else { "mf1" }, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // A fresh terminal every 5,000 taps: the journal holds 10,000 pending.
                    let (mut t, mut r, mut now) = terminal(cpu);
                    let n = (iters - done).min(5_000);
                    let start = Instant::now();
                    for _ in 0..n {
                        now += 3_000;
                        tap(&mut t, &mut r, now);
                    }
                    total += start.elapsed();
                    assert_eq!(t.storage().journal.pending_count() as u64, n);
                    done += n;
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, consumption);
criterion_main!(benches);
