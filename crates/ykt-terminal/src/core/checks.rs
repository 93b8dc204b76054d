//! The card checks of chapter 4, as one pure function of the card, the parameters, the
//! terminal clock and the amount (no reader, no storage): the card's identity, R-F4.5–R-F4.13.

use chrono::{NaiveDate, NaiveTime};
use ykt_card::app::operator::OperatorData;
use ykt_card::cpu::app::serial_for;
use ykt_proto::{AuthFunction, AuthFunctions, CardNo, Fen, ReturnCode, TerminalParams};

use super::texts;

/// What ties a card's number to the keys the card holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberBinding {
    /// A CPU card: its keys are diversified from this application serial, which its number
    /// determines ([`serial_for`], the rule the host's TAC verifier applies too).
    CpuSerial([u8; 8]),
    /// MF1: the sector keys depend on the UID alone; nothing on the card ties the number to
    /// them (docs/spec-notes.md).
    Unbound,
}

/// What the terminal knows about a card after reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardFacts {
    pub card_no: CardNo,
    pub binding: NumberBinding,
    pub class: u8,
    pub expiry: NaiveDate,
    pub balance: Fen,
    /// Uses and amount (amount + fee) already spent today, per the card's wallet.
    pub daily_count: u16,
    pub daily_amount: Fen,
}

/// Why a card is refused: a code of the spec's table, or our own text where the table has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Code(ReturnCode),
    Text(&'static str),
    /// The card's data contradict each other: refused with the code, and the tap is kept as
    /// an abnormal record (R-F4.3), since the card itself is suspect.
    Abnormal(ReturnCode),
}

impl Refusal {
    pub fn screen(&self) -> String {
        match self {
            Refusal::Code(c) | Refusal::Abnormal(c) => c.screen_text(),
            Refusal::Text(t) => (*t).to_owned(),
        }
    }

    pub fn code(&self) -> Option<ReturnCode> {
        match self {
            Refusal::Code(c) | Refusal::Abnormal(c) => Some(*c),
            Refusal::Text(_) => None,
        }
    }

    /// Whether the tap is recorded as an abnormal record (R-F4.3).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Refusal::Abnormal(_))
    }
}

/// Whether the card's number is the one its keys belong to. A CPU card whose public file
/// names another number than its serial would be debited under the serial's keys and
/// booked by the host under the number, whose TAC check then fails: the merchant would
/// carry the loss (issue 18).
pub fn number_matches_keys(card: &CardFacts) -> bool {
    match card.binding {
        NumberBinding::CpuSerial(serial) => serial_for(card.card_no) == serial,
        NumberBinding::Unbound => true,
    }
}

/// The outcome of the checks: the fee to add and whether the card password must be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approved {
    pub fee: Fen,
    pub needs_pin: bool,
}

/// Fee by permission class (R-F4.13, R-F4.16): amount × rate / 100, rounded half up.
/// Computed per whole hundred and remainder, so that no amount overflows.
pub fn fee(amount: Fen, rate_percent: u8) -> Fen {
    debug_assert!(amount >= 0 && rate_percent <= 100);
    let (amount, rate) = (amount.max(0), Fen::from(rate_percent.min(100)));
    amount / 100 * rate + (amount % 100 * rate + 50) / 100
}

/// Whether `t` falls in one of the terminal's working-hours windows (R-H1, code 27); no
/// window means always. A window with `start > end` spans midnight.
pub fn within_hours(p: &TerminalParams, t: NaiveTime) -> bool {
    p.working_hours.is_empty()
        || p.working_hours.iter().any(|w| {
            if w.start <= w.end {
                w.start <= t && t < w.end
            } else {
                t >= w.start || t < w.end
            }
        })
}

/// The checks of a load of `amount` onto the card (R-B4, R-B5): the card's identity, the
/// amount, the expiry, and the most its purse holds (`card_limit`, code 66).
pub fn check_load(
    card: &CardFacts,
    today: NaiveDate,
    amount: Fen,
    card_limit: Fen,
) -> Result<(), Refusal> {
    if !number_matches_keys(card) {
        return Err(Refusal::Abnormal(ReturnCode::CARD_STATUS_ABNORMAL));
    }
    if amount <= 0 {
        return Err(Refusal::Code(ReturnCode::AMOUNT_ERROR));
    }
    if today > card.expiry {
        return Err(Refusal::Code(ReturnCode::CARD_EXPIRED));
    }
    if card
        .balance
        .checked_add(amount)
        .is_none_or(|after| after > card_limit)
    {
        return Err(Refusal::Code(ReturnCode::CARD_BALANCE_OVER_LIMIT));
    }
    Ok(())
}

/// Every chapter-4 check of a debit of `amount` (fee excluded) on `today`.
pub fn check_debit(
    card: &CardFacts,
    p: &TerminalParams,
    today: NaiveDate,
    amount: Fen,
) -> Result<Approved, Refusal> {
    // Card data error (58, 卡状态异常): number and keys do not belong together.
    if !number_matches_keys(card) {
        return Err(Refusal::Abnormal(ReturnCode::CARD_STATUS_ABNORMAL));
    }
    if amount <= 0 {
        return Err(Refusal::Code(ReturnCode::AMOUNT_ERROR));
    }
    // R-F4.5: class permission.
    if !p.allowed_classes.contains(card.class) {
        return Err(Refusal::Code(ReturnCode::CARD_NO_PERMISSION));
    }
    // R-F4.6: expiry against the terminal clock.
    if today > card.expiry {
        return Err(Refusal::Code(ReturnCode::CARD_EXPIRED));
    }
    // R-F4.8 / R-F4.9: balance limits on the balance before the debit.
    if p.max_balance > 0 && card.balance > p.max_balance {
        return Err(Refusal::Code(ReturnCode::CARD_BALANCE_OVER_LIMIT));
    }
    if card.balance < p.min_balance {
        return Err(Refusal::Code(ReturnCode::CARD_INSUFFICIENT_BALANCE));
    }
    // R-F4.7: uses per day (the card's daily counter restarts on a new day).
    if p.max_daily_uses != 0 && card.daily_count >= p.max_daily_uses {
        return Err(Refusal::Text(texts::DAILY_USES_EXCEEDED));
    }
    let fee = fee(amount, p.fee_rates[usize::from(card.class)]);
    let total = amount
        .checked_add(fee)
        .ok_or(Refusal::Code(ReturnCode::AMOUNT_ERROR))?;
    if card.balance < total {
        return Err(Refusal::Code(ReturnCode::CARD_INSUFFICIENT_BALANCE));
    }
    // R-F4.11 single amount, R-F4.12 day's cumulative amount including this one.
    let single = p.single_password_threshold > 0 && amount >= p.single_password_threshold;
    // A day's amount beyond i64 is past any threshold.
    let daily = p.daily_password_threshold > 0
        && card
            .daily_amount
            .checked_add(total)
            .is_none_or(|day| day >= p.daily_password_threshold);
    Ok(Approved {
        fee,
        needs_pin: single || daily,
    })
}

/// R-B11: an operator card checked offline from what it carries, in the host's order where
/// the card can tell (80 not an operator card, 85, 86, 88, then the PIN, 89). `pin_right` is
/// asked last, so a refused card's PIN is never tried. Lost, frozen, locked, disabled and
/// cancelled (81–84, 87) only the host knows.
pub fn check_operator_card(
    data: Option<&OperatorData>,
    today: NaiveDate,
    function: AuthFunction,
    pin_right: impl FnOnce() -> bool,
) -> Result<(), ReturnCode> {
    let Some(d) = data else {
        return Err(ReturnCode::AUTH_CARD_NOT_FOUND);
    };
    if today < d.valid_from {
        return Err(ReturnCode::AUTH_CARD_NOT_EFFECTIVE);
    }
    if today >= d.valid_until {
        return Err(ReturnCode::AUTH_CARD_EXPIRED);
    }
    let functions = AuthFunctions::from_bits(d.functions).unwrap_or(AuthFunctions::NONE);
    if !functions.contains(function) {
        return Err(ReturnCode::AUTH_CARD_NO_PERMISSION);
    }
    if !pin_right() {
        return Err(ReturnCode::AUTH_CARD_PASSWORD_WRONG);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ykt_proto::{ClassSet, ConsumptionMode, WorkMode};

    pub(crate) fn params() -> TerminalParams {
        TerminalParams {
            version: 1,
            work_mode: WorkMode::Auto,
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

    fn card() -> CardFacts {
        CardFacts {
            card_no: CardNo::new(4242).unwrap(),
            binding: NumberBinding::Unbound,
            class: 7,
            expiry: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default(),
            balance: 10_000,
            daily_count: 0,
            daily_amount: 0,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()
    }

    // R-F4.13, R-F4.16: fee rounded half up to the fen, from the class's rate.
    #[test]
    fn fee_rounds_half_up() {
        assert_eq!(fee(150, 1), 2); // 1.5 → 2
        assert_eq!(fee(149, 1), 1); // 1.49 → 1
        assert_eq!(fee(1_000, 0), 0);
        assert_eq!(fee(1_000, 100), 1_000);
        let mut p = params();
        p.fee_rates[7] = 3;
        assert_eq!(check_debit(&card(), &p, today(), 250).map(|a| a.fee), Ok(8));
    }

    // R-F4.5: a class outside the terminal's set is refused with 59; 256 classes.
    #[test]
    fn class_not_allowed_is_59() {
        let mut p = params();
        p.allowed_classes = ClassSet::NONE;
        p.allowed_classes.insert(255);
        let r = check_debit(&card(), &p, today(), 100);
        assert_eq!(r, Err(Refusal::Code(ReturnCode::CARD_NO_PERMISSION)));
        let c = CardFacts {
            class: 255,
            ..card()
        };
        assert!(check_debit(&c, &p, today(), 100).is_ok());
    }

    // R-F4.6: expired after the expiry day, by the terminal clock.
    #[test]
    fn expiry_is_56() {
        let c = CardFacts {
            expiry: today(),
            ..card()
        };
        assert!(check_debit(&c, &params(), today(), 100).is_ok());
        let next = today().succ_opt().unwrap_or_default();
        let r = check_debit(&c, &params(), next, 100);
        assert_eq!(r, Err(Refusal::Code(ReturnCode::CARD_EXPIRED)));
    }

    // R-F4.7 (daily uses), R-F4.8 (max balance), R-F4.9 (min balance).
    #[test]
    fn limits() {
        let mut p = params();
        p.max_daily_uses = 3;
        let used = CardFacts {
            daily_count: 3,
            ..card()
        };
        assert_eq!(
            check_debit(&used, &p, today(), 1),
            Err(Refusal::Text(texts::DAILY_USES_EXCEEDED))
        );
        assert!(
            check_debit(
                &CardFacts {
                    daily_count: 2,
                    ..card()
                },
                &p,
                today(),
                1
            )
            .is_ok()
        );
        let mut p = params();
        p.max_balance = 9_999;
        assert_eq!(
            check_debit(&card(), &p, today(), 1),
            Err(Refusal::Code(ReturnCode::CARD_BALANCE_OVER_LIMIT))
        );
        p.max_balance = 10_000;
        assert!(check_debit(&card(), &p, today(), 1).is_ok());
        let mut p = params();
        p.min_balance = 10_001;
        assert_eq!(
            check_debit(&card(), &p, today(), 1),
            Err(Refusal::Code(ReturnCode::CARD_INSUFFICIENT_BALANCE))
        );
    }

    // R-F4.11: at or above the single threshold; R-F4.12: day's total including this one.
    #[test]
    fn password_thresholds() {
        let mut p = params();
        p.single_password_threshold = 500;
        assert!(
            !check_debit(&card(), &p, today(), 499)
                .map(|a| a.needs_pin)
                .unwrap_or(true)
        );
        assert!(
            check_debit(&card(), &p, today(), 500)
                .map(|a| a.needs_pin)
                .unwrap_or(false)
        );
        let mut p = params();
        p.daily_password_threshold = 1_000;
        let c = CardFacts {
            daily_amount: 900,
            ..card()
        };
        assert!(
            !check_debit(&c, &p, today(), 99)
                .map(|a| a.needs_pin)
                .unwrap_or(true)
        );
        assert!(
            check_debit(&c, &p, today(), 100)
                .map(|a| a.needs_pin)
                .unwrap_or(false)
        );
    }

    // R-H1: outside working hours the terminal refuses (code 27) even offline.
    #[test]
    fn working_hours() {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
        let mut p = params();
        assert!(within_hours(&p, hm(3, 0)));
        p.working_hours = vec![ykt_proto::WorkingHours {
            start: hm(6, 30),
            end: hm(9, 0),
        }];
        assert!(within_hours(&p, hm(6, 30)) && within_hours(&p, hm(8, 59)));
        assert!(!within_hours(&p, hm(9, 0)) && !within_hours(&p, hm(6, 29)));
        p.working_hours.push(ykt_proto::WorkingHours {
            start: hm(22, 0),
            end: hm(1, 0),
        });
        assert!(within_hours(&p, hm(23, 30)) && within_hours(&p, hm(0, 30)));
        assert!(!within_hours(&p, hm(1, 0)));
    }

    // issue 18.1: card 16126098 on the serial of card 4242 is a card data error (58), kept
    // as an abnormal record (R-F4.3); the serial of its own number passes; MF1 binds nothing.
    #[test]
    fn cpu_number_must_match_its_serial() {
        let serial_of = |n| serial_for(CardNo::new(n).unwrap());
        assert_eq!(serial_of(4242), [0x59, 0x4B, 0x54, 0, 0, 0x00, 0x10, 0x92]);
        let forged = CardFacts {
            card_no: CardNo::new(16_126_098).unwrap(),
            binding: NumberBinding::CpuSerial(serial_of(4242)),
            ..card()
        };
        let r = check_debit(&forged, &params(), today(), 100);
        assert_eq!(r, Err(Refusal::Abnormal(ReturnCode::CARD_STATUS_ABNORMAL)));
        assert!(r.is_err_and(|r| r.is_abnormal() && r.code() == Some(ReturnCode(58))));
        let genuine = CardFacts {
            binding: NumberBinding::CpuSerial(serial_of(4242)),
            ..card()
        };
        assert!(check_debit(&genuine, &params(), today(), 100).is_ok());
        assert!(check_debit(&card(), &params(), today(), 100).is_ok());
    }

    // Amounts beyond any balance are refused, never an overflow.
    #[test]
    fn huge_amounts_are_refused() {
        let mut p = params();
        p.fee_rates[7] = 100;
        p.daily_password_threshold = 1;
        let rich = CardFacts {
            balance: Fen::MAX,
            daily_amount: Fen::MAX,
            ..card()
        };
        for amount in [Fen::MAX, Fen::MAX / 2 + 1] {
            assert_eq!(
                check_debit(&rich, &p, today(), amount),
                Err(Refusal::Code(ReturnCode::AMOUNT_ERROR))
            );
            assert_eq!(
                check_debit(&card(), &p, today(), amount),
                Err(Refusal::Code(ReturnCode::AMOUNT_ERROR))
            );
        }
        let amount = Fen::MAX / 100 + 1;
        assert_eq!(
            check_debit(&rich, &p, today(), amount),
            Ok(Approved {
                fee: amount,
                needs_pin: true
            })
        );
        assert_eq!(
            (fee(Fen::MAX, 1), fee(Fen::MAX, 100)),
            (Fen::MAX / 100, Fen::MAX)
        );
    }

    proptest! {
        // issue 18.1: a CPU card passes the identity check exactly when its serial is the one
        // its number implies.
        #[test]
        fn identity_holds_exactly_for_the_derived_serial(a in 1u32..=0xFF_FFFF, b in 1u32..=0xFF_FFFF) {
            let (Some(a), Some(b)) = (CardNo::new(a), CardNo::new(b)) else {
                return Err(TestCaseError::reject("card number out of range"));
            };
            let c = CardFacts { card_no: a, binding: NumberBinding::CpuSerial(serial_for(b)), ..card() };
            prop_assert_eq!(number_matches_keys(&c), a == b);
        }

        // R-F4.13: the fee never exceeds the amount, and amount + fee never exceeds the
        // balance of an approved debit.
        #[test]
        fn approved_debits_fit(balance in 0i64..1_000_000, amount in 1i64..1_000_000, rate in 0u8..=100) {
            let mut p = params();
            p.fee_rates[7] = rate;
            let c = CardFacts { balance, ..card() };
            if let Ok(a) = check_debit(&c, &p, today(), amount) {
                prop_assert!(a.fee <= amount);
                prop_assert!(amount + a.fee <= balance);
                prop_assert_eq!(a.fee, (amount * i64::from(rate) + 50) / 100);
            }
        }
    }
}
