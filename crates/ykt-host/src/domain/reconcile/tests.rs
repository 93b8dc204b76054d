//! The classification rule, by example and by property (R-B10).

use super::*;
use proptest::prelude::*;

fn facts(book: Fen, seen: Fen) -> Facts {
    Facts {
        book,
        seen,
        span: 3,
        used: 3,
        held_delta: 0,
        held: false,
        pending: 0,
    }
}

// R-B10: each kind of finding from its facts.
#[test]
fn classification() {
    assert_eq!(classify(&facts(500, 500)).unwrap(), Finding::Agree);
    assert_eq!(
        classify(&Facts {
            used: 2,
            ..facts(500, 400)
        })
        .unwrap(),
        Finding::Missing {
            missing: 1,
            difference: -100
        }
    );
    assert_eq!(
        classify(&facts(500, 600)).unwrap(),
        Finding::CardHigher { difference: 100 }
    );
    assert_eq!(
        classify(&facts(500, 450)).unwrap(),
        Finding::CardLower { difference: -50 }
    );
    assert_eq!(
        classify(&Facts {
            held_delta: -50,
            held: true,
            ..facts(500, 450)
        })
        .unwrap(),
        Finding::Held { difference: -50 }
    );
    assert_eq!(
        classify(&Facts {
            pending: 200,
            ..facts(500, 600)
        })
        .unwrap(),
        Finding::PendingLoad { difference: 100 }
    );
    // A pending load never explains a card lower, nor more than its amount.
    assert_eq!(
        classify(&Facts {
            pending: 50,
            ..facts(500, 600)
        })
        .unwrap(),
        Finding::CardHigher { difference: 100 }
    );
}

proptest! {
    // R-B10: with every counter used and nothing held or pending, the finding is
    // decided by the sign of card − account alone, and its difference is exactly that.
    #[test]
    fn sign_decides(book in 0..=0xFF_FFFFi64, seen in 0..=0xFF_FFFFi64) {
        let f = classify(&facts(book, seen)).unwrap();
        prop_assert_eq!(f.difference(), seen - book);
        prop_assert_eq!(f == Finding::Agree, seen == book);
        let higher = matches!(f, Finding::CardHigher { .. });
        prop_assert_eq!(higher, seen > book);
        prop_assert_eq!(f.is_open(), seen != book);
    }

    // R-B10: any unused counter is missing records, whatever the balances say.
    #[test]
    fn gaps_come_first(book in 0..=0xFF_FFFFi64, seen in 0..=0xFF_FFFFi64, gap in 1..100u64) {
        let f = classify(&Facts { used: 3u64.saturating_sub(gap), span: 3, ..facts(book, seen) }).unwrap();
        let missing = matches!(f, Finding::Missing { .. });
        prop_assert!(missing);
    }
}
