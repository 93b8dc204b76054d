#![allow(clippy::unwrap_used)]
//! The card application's operations through a simulated reader.

mod common;
use common::*;

use ykt_card::app::{
    AppError, LockStatus, Mf1App, Pending, Resolution, TxKind, TxRequest, WalletRepair,
};
use ykt_card::mf1::KeyType;
use ykt_card::{Reader, ReaderError};

// R-T2.1, R-T2.2: the largest card number and a 10-digit display number survive issue and read.
#[test]
fn issued_card_reads_back() {
    let keys = keys();
    let mut r = reader_with(card(10_000), 1);
    let c = Mf1App::new(&keys).read(&mut r, 0).unwrap();
    assert_eq!(c.info.card_no.get(), 16_777_215);
    assert_eq!(c.info.display_no.get(), 2_024_000_123);
    assert_eq!(c.info.class, 200);
    assert_eq!(c.wallet.balance, 10_000);
    assert_eq!(c.wallet.counter, 0);
    assert_eq!(c.repair, WalletRepair::Intact);
    assert!(!c.locked());
    assert!(!c.expired(at(1, 8).date()));
}

// R-B6, R-H5: a bad card rewritten by the card office continues the lifetime counter the
// host expects; a debit on it counts on from there.
#[test]
fn reissued_card_continues_its_counter() {
    let keys = keys();
    let card = ykt_card::app::issue::issue_at_counter(&keys, UID, &params(3_200), 41).unwrap();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card, 1);
    let c = app.read(&mut r, 0).unwrap();
    assert_eq!((c.wallet.balance, c.wallet.counter), (3_200, 41));
    assert_eq!(c.repair, WalletRepair::Intact);
    app.transact(&mut r, &c, &purchase(200, 0, 1, at(1, 8)))
        .unwrap();
    let after = app.read(&mut r, 0).unwrap();
    assert_eq!((after.wallet.balance, after.wallet.counter), (3_000, 42));
}

// R-F4.4: several wallets, each read and written independently.
#[test]
fn wallets_are_independent() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 1);
    let w1 = app.read(&mut r, 1).unwrap();
    assert_eq!(w1.wallet.balance, 500);
    app.transact(&mut r, &w1, &purchase(200, 0, 1, at(1, 8)))
        .unwrap();
    assert_eq!(app.read(&mut r, 1).unwrap().wallet.balance, 300);
    assert_eq!(app.read(&mut r, 0).unwrap().wallet.balance, 10_000);
    assert_eq!(app.read(&mut r, 2), Err(AppError::NoSuchWallet(2)));
}

// R-F4.2: main and backup get the new state; a bad main is repaired from the backup before
// the debit; both bad refuses the card.
#[test]
fn backup_wallet_repairs_main() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 1);
    let c = app.read(&mut r, 0).unwrap();
    app.transact(&mut r, &c, &purchase(1_000, 50, 1, at(1, 8)))
        .unwrap();
    let main = *mf1(&r).raw_block(16).unwrap();
    assert_eq!(Some(&main), mf1(&r).raw_block(18));
    // Damage one byte of the main copy.
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(16).unwrap()[5] ^= 0x40;
    }
    let c = app.read(&mut r, 0).unwrap();
    assert_eq!(c.repair, WalletRepair::MainFromBackup);
    assert_eq!(c.wallet.balance, 8_950);
    assert_eq!(mf1(&r).raw_block(16), Some(&main));
    // Damage the backup: repaired from main.
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(18).unwrap()[0] ^= 1;
    }
    assert_eq!(
        app.read(&mut r, 0).unwrap().repair,
        WalletRepair::BackupFromMain
    );
    assert_eq!(mf1(&r).raw_block(18), Some(&main));
    // Both damaged: refused.
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(16).unwrap()[0] ^= 1;
        m.raw_block_mut(18).unwrap()[1] ^= 1;
    }
    assert_eq!(app.read(&mut r, 0), Err(AppError::WalletDamaged(0)));
}

// R-F4.7, R-F4.12: daily use count and cumulative amount, restarted on a new day; the lifetime
// counter never restarts.
#[test]
fn daily_figures_restart_each_day() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 1);
    for (serial, day) in [(1, 1), (2, 1), (3, 1), (4, 2)] {
        let c = app.read(&mut r, 0).unwrap();
        app.transact(&mut r, &c, &purchase(100, 10, serial, at(day, 12)))
            .unwrap();
    }
    let c = app.read(&mut r, 0).unwrap();
    assert_eq!(c.wallet.counter, 4);
    assert_eq!(c.wallet.daily_on(at(2, 0).date()), (1, 110));
    assert_eq!(c.wallet.daily_on(at(3, 0).date()), (0, 0));
    assert_eq!(c.wallet.balance, 10_000 - 4 * 110);
}

#[test]
fn refusals() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(100), 1);
    let c = app.read(&mut r, 0).unwrap();
    assert_eq!(
        app.transact(&mut r, &c, &purchase(100, 1, 1, at(1, 8))),
        Err(AppError::InsufficientBalance {
            balance: 100,
            needed: 101
        })
    );
    let top = TxRequest {
        kind: TxKind::TopUp,
        amount: 0xFF_FFFF,
        fee: 0,
        time: at(1, 8),
        device: DEVICE,
        serial: 2,
    };
    assert_eq!(app.transact(&mut r, &c, &top), Err(AppError::BalanceLimit));
    assert_eq!(
        app.transact(&mut r, &c, &purchase(-1, 0, 1, at(1, 8))),
        Err(AppError::AmountOutOfRange(-1))
    );
    // The card is unchanged by refusals.
    assert_eq!(app.read(&mut r, 0).unwrap().wallet, c.wallet);
}

// R-F4.15: the lock flag is written onto the card; any terminal reading it sees the card locked
// and the application refuses to debit it.
#[test]
fn lock_flag() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(1_000), 1);
    let c = app.read(&mut r, 0).unwrap();
    let lock = LockStatus {
        locked: true,
        blacklist_version: 42,
        changed_at: at(1, 9),
        device: DEVICE,
    };
    app.set_lock(&mut r, &c, &lock).unwrap();
    let c = app.read(&mut r, 0).unwrap();
    assert!(c.locked());
    assert_eq!(c.lock, Some(lock));
    assert_eq!(
        app.transact(&mut r, &c, &purchase(1, 0, 1, at(1, 9))),
        Err(AppError::Locked)
    );
    // A damaged lock block counts as locked.
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(13).unwrap()[0] = 0;
    }
    assert!(app.read(&mut r, 0).unwrap().locked());
}

// R-F4.17: the ring keeps the last transactions, newest first, and only as many as it holds.
#[test]
fn ring_of_recent_transactions() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(100_000), 1);
    for serial in 1..=12u32 {
        let c = app.read(&mut r, 0).unwrap();
        let req = if serial == 5 {
            TxRequest {
                kind: TxKind::Reversal,
                amount: 30,
                fee: 0,
                time: at(1, 8),
                device: DEVICE,
                serial,
            }
        } else {
            purchase(i64::from(serial) * 10, 1, serial, at(1, 8))
        };
        app.transact(&mut r, &c, &req).unwrap();
    }
    let c = app.read(&mut r, 0).unwrap();
    let recs = app.records(&mut r, &c, 3).unwrap();
    assert_eq!(
        recs.iter().map(|x| x.serial).collect::<Vec<_>>(),
        vec![12, 11, 10]
    );
    assert_eq!(recs[0].counter_before, 11);
    assert_eq!(
        recs[0].balance_before - recs[0].amount - recs[0].fee,
        recs[0].balance_after
    );
    let all = app.records(&mut r, &c, 100).unwrap();
    assert_eq!(all.len(), 9);
    assert_eq!(all.last().unwrap().serial, 4);
    assert!(
        all.iter()
            .any(|x| x.kind == TxKind::Reversal && x.balance_after == x.balance_before + 30)
    );
}

#[test]
fn pin_verification_uses_stored_data_only() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(100), 1);
    let c = app.read(&mut r, 0).unwrap();
    assert!(c.has_pin_data());
    assert!(app.verify_pin(&c, "123456"));
    assert!(!app.verify_pin(&c, "123457"));
    assert!(!app.verify_pin(&c, "12"));
    let dump = mf1(&r).to_dump();
    assert!(!dump.windows(6).any(|w| w == b"123456"));
}

#[test]
fn keys_of_another_system_fail_authentication() {
    let mut other = keys();
    other.mf1_key_a[0] ^= 1;
    let mut r = reader_with(card(100), 1);
    assert_eq!(
        Mf1App::new(&other).read(&mut r, 0),
        Err(AppError::Reader(ReaderError::AuthFailed))
    );
    // Key A may read but never write our blocks.
    let keys = keys();
    let k = keys.mf1_card(UID);
    r.select().unwrap();
    r.authenticate(4, KeyType::A, &k.sector_key(4, KeyType::A))
        .unwrap();
    r.read_block(16).unwrap();
    assert_eq!(
        r.write_block(16, &[0; 16]),
        Err(ReaderError::AccessDenied(16))
    );
}

// R-P5.4: a re-tap tells whether the write landed, by card, counter and the ring's record.
#[test]
fn resolve_after_success_and_after_other_transactions() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 1);
    let c = app.read(&mut r, 0).unwrap();
    let pending = Pending {
        card_no: c.info.card_no,
        wallet_no: 0,
        counter_before: c.wallet.counter,
        device: DEVICE,
        serial: 77,
    };
    assert_eq!(
        app.resolve(&mut r, &pending).unwrap().1,
        Resolution::NotLanded
    );
    app.transact(&mut r, &c, &purchase(10, 0, 77, at(1, 8)))
        .unwrap();
    // Two more transactions elsewhere before the re-tap.
    for serial in [1, 2] {
        let c = app.read(&mut r, 0).unwrap();
        app.transact(
            &mut r,
            &c,
            &TxRequest {
                device: ykt_proto::types::PhysicalId([9; 4]),
                ..purchase(5, 0, serial, at(1, 9))
            },
        )
        .unwrap();
    }
    let (_, res) = app.resolve(&mut r, &pending).unwrap();
    assert!(matches!(res, Resolution::Landed(rec) if rec.serial == 77 && rec.amount == 10));
    let other = Pending {
        serial: 78,
        ..pending
    };
    assert_eq!(
        app.resolve(&mut r, &other).unwrap().1,
        Resolution::NotLanded
    );
    assert!(app.read(&mut r, 0).unwrap().interrupted.is_none());
}

// R-F4.2: the inspection says which copy is good and what a terminal would do, without writing.
#[test]
fn diagnosis_names_the_good_copy() {
    use ykt_card::app::diagnose::{WalletAction, diagnose};
    let keys = keys();
    let mut r = reader_with(card(10_000), 1);
    let d = diagnose(&mut r, &keys).unwrap();
    assert_eq!(d.wallets.len(), 2);
    assert!(d.wallets.iter().all(|w| w.action == WalletAction::Use));
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(16).unwrap()[3] ^= 0xFF;
    }
    let before = mf1(&r).to_dump();
    let d = diagnose(&mut r, &keys).unwrap();
    assert_eq!(d.wallets[0].action, WalletAction::RepairMain);
    assert_eq!(d.wallets[0].main, Ok(None));
    assert_eq!(mf1(&r).to_dump(), before);
    if let Some(ykt_card::SimCard::Mf1(m)) = r.card_mut() {
        m.raw_block_mut(18).unwrap()[3] ^= 0xFF;
    }
    let d = diagnose(&mut r, &keys).unwrap();
    assert!(!d.wallets[0].action.usable());
}
