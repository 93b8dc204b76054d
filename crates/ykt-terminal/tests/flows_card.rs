#![allow(clippy::unwrap_used)]
//! The card checks of chapter 4 inside the consumption flow (R-F4.2, R-F4.5–R-F4.16),
//! black cards (R-F4.15, R-F4.3), reversal at the terminal and statistics (R-F4.22).

mod sim;
use sim::*;
use ykt_card::SimCard;
use ykt_proto::messages::*;
use ykt_proto::*;
use ykt_terminal::{Event, Key as K};

fn set_clock(rig: &mut Rig, t: chrono::NaiveDateTime) {
    rig.host_request(Message::ClockSetRequest(ClockSetRequest { clock: t }));
}

// R-F4.2: a damaged main wallet block is restored from the backup before the debit; both
// damaged: refused with a clear message, nothing debited.
#[test]
fn backup_wallet_repair_in_flow() {
    let mut rig = Rig::new(params());
    let mut card = card_with(CARD, UID, 10_000, 1);
    card.raw_block_mut(16).unwrap()[3] ^= 0x20; // wallet 0's main block (sector 4)
    rig.amount(100);
    rig.place(card);
    assert_eq!(rig.last_record().balance_before, 10_000);
    assert_eq!(rig.balance(), 9_900);
    assert_eq!(rig.card().raw_block(16), rig.card().raw_block(18));
    rig.lift();
    if let Some(SimCard::Mf1(c)) = rig.reader.card_mut() {
        c.raw_block_mut(16).unwrap()[0] ^= 1;
        c.raw_block_mut(18).unwrap()[0] ^= 1;
    }
    let n = rig.records().len();
    rig.amount(100);
    rig.retap();
    assert!(rig.saw_screen("错误：卡余额异常"));
    assert_eq!(rig.records().len(), n);
    assert!(
        rig.refused_codes()
            .contains(&Some(ReturnCode::CARD_BALANCE_ABNORMAL))
    );
}

// R-F4.5: class outside the terminal's set → 59.
#[test]
fn class_permission() {
    let mut p = params();
    p.allowed_classes = ClassSet::NONE;
    p.allowed_classes.insert(200);
    let mut rig = Rig::new(p);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡无此权限"));
    rig.lift();
    rig.reader.take();
    rig.amount(100);
    rig.place(card_with(CARD + 1, [5, 6, 7, 8], 10_000, 200));
    assert_eq!(rig.balance(), 9_900);
}

// R-F4.6: expiry against the terminal clock → 56.
#[test]
fn expired_card() {
    let mut rig = Rig::new(params());
    set_clock(&mut rig, at(2, 9, 0).with_year_2030_july());
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡已过有效期"));
    assert_eq!(rig.balance(), 10_000);
}

trait July {
    fn with_year_2030_july(self) -> chrono::NaiveDateTime;
}
impl July for chrono::NaiveDateTime {
    fn with_year_2030_july(self) -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2030, 7, 1)
            .unwrap()
            .and_time(self.time())
    }
}

// R-F4.7: uses per day on the card; the card's counter restarts on a new day.
#[test]
fn daily_use_limit() {
    let mut p = params();
    p.max_daily_uses = 2;
    let mut rig = Rig::new(p);
    rig.place(card_with(CARD, UID, 10_000, 1));
    for _ in 0..2 {
        rig.amount(100);
        rig.retap();
    }
    assert_eq!(rig.balance(), 9_800);
    rig.amount(100);
    rig.retap();
    assert!(rig.saw_screen("超过当日使用次数"));
    assert_eq!(rig.balance(), 9_800);
    set_clock(&mut rig, at(3, 7, 0));
    rig.key(K::Cancel);
    rig.amount(100);
    rig.retap();
    assert_eq!(rig.balance(), 9_700);
}

// R-F4.8, R-F4.9: balance above the maximum or below the minimum → refused.
#[test]
fn balance_limits() {
    let mut p = params();
    p.max_balance = 5_000;
    let mut rig = Rig::new(p);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡余额超过限额"));
    let mut p = params();
    p.min_balance = 20_000;
    let mut rig = Rig::new(p);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡余额不足"));
    assert_eq!(rig.balance(), 10_000);
}

// R-F4.10: unit price (amount keyed), fixed amount (every tap), keyboard-coded (item code →
// price list).
#[test]
fn consumption_modes() {
    let mut rig = Rig::new(params());
    rig.amount(321);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.last_record().amount, 321);

    let mut p = params();
    p.consumption_mode = ConsumptionMode::FixedAmount;
    p.fixed_amount = 450;
    let mut rig = Rig::new(p);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.lift();
    rig.retap();
    assert_eq!(rig.balance(), 9_100);

    let mut p = params();
    p.consumption_mode = ConsumptionMode::Coded;
    p.price_list = vec![PriceItem {
        code: 12,
        price: 800,
        subject: 0,
    }];
    let mut rig = Rig::new(p);
    rig.type_digits("13");
    rig.key(K::Enter);
    assert!(rig.saw_screen("无此编码"));
    rig.type_digits("12");
    rig.key(K::Enter);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!((r.amount, r.item_code), (800, 12));
}

// R-F4.14: price-list items carry an accounting subject; the record's item code and the
// terminal's event name it, so reports can group by subject.
#[test]
fn subject_charging() {
    let mut p = params();
    p.consumption_mode = ConsumptionMode::Coded;
    p.price_list = vec![PriceItem {
        code: 7,
        price: 300,
        subject: 5101,
    }];
    let mut rig = Rig::new(p);
    rig.type_digits("7");
    rig.key(K::Enter);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.events.iter().any(|e| matches!(
        e,
        Event::Record {
            subject: 5101,
            status: RecordStatus::Success,
            ..
        }
    )));
    assert_eq!(rig.last_record().item_code, 7);
}

// R-F4.11: amount at or above the threshold asks the card password; right → proceed,
// wrong → 60.
#[test]
fn single_amount_password() {
    let mut p = params();
    p.single_password_threshold = 1_000;
    let mut rig = Rig::new(p);
    rig.amount(1_000);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.screen().contains("请输入卡密码"));
    rig.type_digits("000000");
    rig.key(K::Enter);
    assert!(rig.saw_screen("错误：卡密码错误"));
    assert_eq!(rig.balance(), 10_000);
    rig.retap();
    rig.type_digits(PIN);
    rig.key(K::Enter);
    assert_eq!(rig.balance(), 9_000);
    rig.amount(999);
    rig.retap();
    assert_eq!(rig.balance(), 8_001, "below the threshold: no password");
}

// R-F4.12: the day's cumulative amount including this debit at or above the threshold asks
// the password.
#[test]
fn daily_cumulative_password() {
    let mut p = params();
    p.daily_password_threshold = 1_000;
    let mut rig = Rig::new(p);
    rig.amount(600);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.balance(), 9_400);
    rig.amount(400);
    rig.retap();
    assert!(rig.screen().contains("请输入卡密码"));
    rig.type_digits(PIN);
    rig.key(K::Enter);
    assert_eq!(rig.balance(), 9_000);
}

// R-F4.13, R-F4.16: fee by the card's class, rounded half up, recorded apart from the amount
// and debited with it.
#[test]
fn fee_by_class() {
    let mut p = params();
    p.fee_rates[1] = 5;
    p.fee_rates[2] = 0;
    let mut rig = Rig::new(p.clone());
    rig.amount(1_010);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!((r.amount, r.fee), (1_010, 51)); // 50.5 → 51
    assert_eq!(rig.balance(), 10_000 - 1_061);
    let mut rig = Rig::new(p);
    rig.amount(1_010);
    rig.place(card_with(CARD, UID, 10_000, 2));
    assert_eq!(rig.last_record().fee, 0);
}

// R-F4.15, R-F4.3: a listed card gets the lock flag, is refused, and the black-card record
// is uploaded; another terminal with an empty list refuses it by the flag alone.
#[test]
fn black_card_locked_recorded_uploaded() {
    let mut rig = Rig::blank(params());
    rig.host.blacklist.push(BlacklistEntry {
        op: BlacklistOp::Add,
        card_no: CardNo::new(CARD).unwrap(),
    });
    rig.link_up();
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡已锁定"));
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status),
        (RecordKind::BlackCard, RecordStatus::Written)
    );
    assert!(rig.locked());
    assert_eq!(rig.balance(), 10_000);
    assert!(
        rig.host
            .records
            .get(&r.serial)
            .is_some_and(|s| s.record.kind == RecordKind::BlackCard)
    );
    let card = rig.card().clone();
    let mut other = Rig::new(params());
    assert_eq!(other.term().storage().blacklist.version(), 0);
    other.amount(100);
    other.place(card);
    assert!(other.saw_screen("错误：卡已锁定"));
    assert_eq!(other.balance(), 10_000);
}

// Reversal (冲正, MF1): the last debit of the tapped card is given back, recorded as its own
// record and uploaded; the host reverses it; a second reversal finds nothing. R-F4.22 counts
// it.
#[test]
fn reversal_at_terminal() {
    let mut rig = Rig::new(params());
    rig.amount(600);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let original = rig.last_record();
    rig.lift();
    rig.key(K::Reversal);
    assert!(rig.screen().contains("请刷卡冲正"));
    rig.retap();
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status, r.original_serial),
        (
            RecordKind::Reversal,
            RecordStatus::Written,
            Some(original.serial)
        )
    );
    assert_eq!(rig.balance(), 10_000);
    assert!(rig.saw_screen("冲正成功"));
    rig.lift();
    rig.key(K::Reversal);
    rig.retap();
    assert!(rig.saw_screen("无可冲正交易"));
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
    assert!(rig.host.records.get(&original.serial).unwrap().reversed);
}

// R-F4.22: today's and yesterday's successful debits and reversals, count and amount.
#[test]
fn statistics_today_and_yesterday() {
    let mut p = params();
    p.fee_rates[1] = 10;
    let mut rig = Rig::new(p);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.amount(100);
    rig.retap(); // 100 + 10
    set_clock(&mut rig, at(3, 8, 0));
    rig.amount(200);
    rig.retap(); // 200 + 20
    rig.amount(300);
    rig.retap(); // 300 + 30
    rig.key(K::Reversal);
    rig.retap(); // gives back 330
    rig.key(K::Stats);
    let s = rig.screens.last().unwrap().clone();
    assert_eq!(s.lines[0], "今日 消费2笔 5.50元 冲正1笔 3.30元");
    assert_eq!(s.lines[1], "昨日 消费1笔 1.10元 冲正0笔 0.00元");
    let stats = rig.term().storage().journal.stats(at(3, 8, 0).date());
    assert_eq!(
        (
            stats.today.debits,
            stats.today.reversals,
            stats.yesterday.debits
        ),
        (2, 1, 1)
    );
}

// R-H1: outside the terminal's working hours a sale is refused with 27, offline too.
#[test]
fn outside_working_hours() {
    let mut p = params();
    p.work_mode = WorkMode::Offline;
    let t = |h| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    p.working_hours = vec![WorkingHours {
        start: t(6),
        end: t(9),
    }];
    let mut rig = Rig::new(p);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：POS 非工作时间"));
    assert_eq!(rig.balance(), 10_000);
    set_clock(&mut rig, at(3, 7, 0));
    rig.amount(100);
    rig.retap();
    assert_eq!(rig.balance(), 9_900);
}
