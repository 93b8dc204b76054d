//! Money at the wire boundary (issue 10.1): online debits with extreme amounts and balances
//! get the spec's codes (34 amount error, 64 insufficient, 66 over the maximum balance),
//! never a panic (which took a writer thread down), a dropped connection or a wrapped
//! balance; the books stay clean.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_proto::*;

// issue 10.1, R-P5.2, R-C6.1: amounts and balances at i64's ends are refused with their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_debits_get_codes() {
    let w = sqlite().await;
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let card = w.cards[0];
    let cases = [
        (10_000, i64::MIN, ReturnCode::AMOUNT_ERROR),
        (10_000, i64::MAX, ReturnCode::AMOUNT_ERROR),
        (10_000, -1, ReturnCode::AMOUNT_ERROR),
        (10_000, 0xFF_FFFF + 1, ReturnCode::AMOUNT_ERROR),
        (i64::MIN, 100, ReturnCode::CARD_INSUFFICIENT_BALANCE),
        (i64::MAX, 100, ReturnCode::CARD_BALANCE_OVER_LIMIT),
        (i64::MIN + 50, 100, ReturnCode::CARD_INSUFFICIENT_BALANCE),
    ];
    for (serial, (balance, amount, code)) in cases.into_iter().enumerate() {
        let msg = debit(card, 0, balance, amount, serial as u32 + 1);
        let Message::DebitResponse(d) = t.request(msg).await.unwrap() else {
            panic!("not a debit response")
        };
        assert_eq!(d.code, code, "balance {balance}, amount {amount}");
    }
    // Still serving, and nothing was booked.
    let Message::DebitResponse(d) = t.request(debit(card, 0, 10_000, 100, 50)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((d.code, d.balance), (ReturnCode::SUCCESS, 9_900));
    let report = w.store.read(|tx| ykt_host::ledger::audit(tx.conn)).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

// R-C6.1, code 3: a database that fails under a debit answers 数据库错误 — a code the terminal
// handles as a timeout (R-P5.3) — and the failed job leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failure_is_code_3() {
    let w = sqlite().await;
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let card = w.cards[0];
    let rename = |from: &'static str, to: &'static str| {
        let sql = format!("ALTER TABLE {from} RENAME TO {to}");
        w.store
            .execute(move |tx| tx.conn.exec(&sql, &[]).map(drop))
            .unwrap();
    };
    // The debit stores its record, then cannot post its transfers.
    rename("transfers", "transfers_away");
    let Message::DebitResponse(d) = t.request(debit(card, 0, 10_000, 100, 1)).await.unwrap() else {
        panic!("not a debit response")
    };
    assert_eq!(d.code, ReturnCode::DATABASE_ERROR);
    assert!(d.code.is_handled_as_timeout());
    rename("transfers_away", "transfers");
    // Nothing of the failed debit stayed; the retry books it once.
    let Message::DebitResponse(d) = t.request(debit(card, 0, 10_000, 100, 1)).await.unwrap() else {
        panic!("not a debit response")
    };
    assert_eq!((d.code, d.balance), (ReturnCode::SUCCESS, 9_900));
    assert_audit_clean(&w.store).await;
}
