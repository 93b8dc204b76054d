//! Loads at the wire (docs/loads.md): 0x09 and 0x08 reach `domain::topup` through a terminal
//! session, a pick-up's record posts it, and a load record the host never authorised is held
//! with 31 and the batch answer carries information code 9.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_host::domain::{admin, journal::Actor};
use ykt_proto::*;

fn load(
    purpose: LoadPurpose,
    card: CardNo,
    serial: u32,
    counter: u32,
    before: Fen,
    amount: Fen,
) -> Message {
    Message::LoadRequest(LoadRequest {
        purpose,
        card_no: card,
        card: LoadCard::Mf1,
        card_counter: counter,
        balance_before: before,
        amount,
        subsidy_seq: 0,
        wallet_no: 1,
        serial,
        time: time(),
    })
}

fn load_record(kind: RecordKind, card: CardNo, serial: u32, before: Fen, amount: Fen) -> Record {
    Record {
        kind,
        status: RecordStatus::Success,
        online: true,
        balance_after: before + amount,
        ..offline_record(card, 0, before, amount, serial)
    }
}

async fn upload(t: &mut TestTerminal, r: Record) -> UploadResponse {
    let Message::UploadResponse(u) = t
        .request(Message::UploadRequest(UploadRequest { records: vec![r] }))
        .await
        .unwrap()
    else {
        panic!("not an upload response")
    };
    u
}

// R-B4 R-B5: deposit → what waits (0x09) → pick-up (0x08) → its record posts it; a top-up at
// a POS gets 28; a load record without an authorisation gets 31 and information code 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickup_over_the_wire() {
    let w = sqlite().await;
    let card = w.cards[0];
    let store = w.store.clone();
    tokio::task::spawn_blocking(move || {
        store.execute(move |tx| {
            let actor = Actor::system("test");
            admin::deposit(tx, admin::Payer::system(&actor), card, 2_500, "w1", time())
        })
    })
    .await
    .unwrap()
    .unwrap();
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let q = Message::WaitingRequest(WaitingRequest {
        card_no: card,
        card_type: CardType::Mf1,
        subsidy_seq: 0,
        card_counter: 0,
        balance: 10_000,
    });
    let Message::WaitingResponse(wr) = t.request(q).await.unwrap() else {
        panic!("not a waiting response")
    };
    assert_eq!(
        (wr.code, wr.amount, wr.loads, wr.subsidy_seq_after),
        (ReturnCode::SUCCESS, 2_500, 1, 1)
    );
    let Message::LoadResponse(top_up) = t
        .request(load(LoadPurpose::TopUpCash, card, 1, 0, 10_000, 100))
        .await
        .unwrap()
    else {
        panic!("not a load response")
    };
    assert_eq!(top_up.code, ReturnCode::POS_NO_SUCH_FUNCTION);
    let Message::LoadResponse(a) = t
        .request(load(LoadPurpose::Pickup, card, 2, 0, 10_000, 2_500))
        .await
        .unwrap()
    else {
        panic!("not a load response")
    };
    assert_eq!(
        (a.code, a.balance_after, a.subsidy_seq_after),
        (ReturnCode::SUCCESS, 12_500, 1)
    );
    let u = upload(
        &mut t,
        load_record(RecordKind::Subsidy, card, 2, 10_000, 2_500),
    )
    .await;
    assert_eq!(
        (u.results[0].code, u.info),
        (ReturnCode::SUCCESS, InfoCode::NONE)
    );
    let u = upload(&mut t, load_record(RecordKind::TopUp, card, 3, 12_500, 700)).await;
    assert_eq!(u.results[0].code, ReturnCode::RECORD_NOT_FOUND);
    assert_eq!(u.info, InfoCode::TOP_UP_RECORD_NOT_FOUND);
    assert_audit_clean(&w.store).await;
}
