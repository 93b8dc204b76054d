//! The fuzz target `host_booking` on stable: arbitrary terminal requests for known cards and
//! devices never panic the host, never break an invariant, and leave the books clean
//! (issue 18; R-H6, R-B3, R-B4).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_terminal_requests_keep_the_books(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        ykt_host::fuzzing::booking(&data);
    }
}

// The entry point really books: a debit then its upload again (a repeat) on one card.
#[test]
fn known_requests_book_and_audit_clean() {
    // op 1 (debit): device 0, card 0, a new serial, counter 0, balance 100.00 (0xC350 mod
    // 20,000 fen, the opening balance), amount 1.00, day 0, second 0, a purchase, initiated,
    // online, no fee, no original serial.
    let debit = [1, 0, 0, 1, 0, 0xC3, 0x50, 0x00, 0x64, 0, 0, 0, 0, 0, 0, 0];
    let t = ykt_host::fuzzing::booking(&debit);
    assert_eq!((t.accepted, t.refused), (1, 0), "the debit is booked");
    // A debit beyond the card's balance is refused, and the books stay clean.
    let t =
        ykt_host::fuzzing::booking(&[1, 0, 1, 1, 0, 0xC3, 0x50, 0x4E, 0x1F, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(t.refused, 1, "{t:?}");
    // A what-waits query for a card with nothing waiting.
    let t = ykt_host::fuzzing::booking(&[3, 0, 2, 1, 0, 0xC3, 0x50, 0, 0, 0, 0, 0]);
    assert_eq!(t.accepted + t.refused, 1);
}
