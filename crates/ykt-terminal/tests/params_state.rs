//! Parameters (chapter 4, R-P5.1), offline-time counter (R-F4.18), clock (R-F4.19) and
//! status report (R-F4.20): persistence, round trips and power cuts.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{NaiveTime, TimeDelta};
use common::{FLASH_V1_SLOT, at, purchase};
use proptest::prelude::*;
use ykt_proto::{ClassSet, ConsumptionMode, PriceItem, TerminalParams, WorkMode, WorkingHours};
use ykt_terminal::{
    BlacklistStore, Journal, JournalConfig, MemFlash, ParamsError, ParamsStore, Region,
    SavedParams, StateStore, StatusReport,
};

fn params() -> TerminalParams {
    TerminalParams {
        version: 3,
        work_mode: WorkMode::Auto,
        consumption_mode: ConsumptionMode::Coded,
        fixed_amount: 800,
        price_list: vec![PriceItem {
            code: 1,
            price: 1200,
            subject: 7,
        }],
        allowed_classes: ClassSet::ALL,
        fee_rates: [5; 256],
        max_balance: 100_000,
        min_balance: 0,
        max_daily_uses: 5,
        single_password_threshold: 5_000,
        daily_password_threshold: 20_000,
        wallet_no: 1,
        max_offline_hours: 24,
        working_hours: vec![WorkingHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        }],
        operator_card: ykt_proto::AuthFunctions::NONE,
    }
}

// Whole seconds: parameters reach a terminal as the wire's block, whose times are `hh mm ss`.
fn time_strategy() -> impl Strategy<Value = NaiveTime> {
    (0u32..86_400).prop_map(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap())
}

prop_compose! {
    fn params_strategy()(
        version: u32,
        work_mode in prop_oneof![Just(WorkMode::FullOnline), Just(WorkMode::Auto), Just(WorkMode::Offline)],
        consumption_mode in prop_oneof![Just(ConsumptionMode::UnitPrice), Just(ConsumptionMode::FixedAmount), Just(ConsumptionMode::Coded)],
        money in prop::array::uniform5(0i64..i64::MAX),
        price_list in prop::collection::vec((any::<u16>(), 0i64..1_000_000, any::<u16>()).prop_map(|(code, price, subject)| PriceItem { code, price, subject }), 0..40),
        classes in prop::array::uniform32(any::<u8>()),
        rates in prop::collection::vec(0u8..=100, 256),
        max_daily_uses: u16,
        wallet_no: u8,
        max_offline_hours: u16,
        hours in prop::collection::vec((time_strategy(), time_strategy()).prop_map(|(start, end)| WorkingHours { start, end }), 0..4),
        operator_bits in 0u8..=0x1F,
    ) -> TerminalParams {
        TerminalParams {
            version, work_mode, consumption_mode,
            fixed_amount: money[0], price_list, allowed_classes: ClassSet(classes),
            fee_rates: rates.try_into().unwrap(),
            max_balance: money[1], min_balance: money[2], max_daily_uses,
            single_password_threshold: money[3], daily_password_threshold: money[4],
            wallet_no, max_offline_hours, working_hours: hours,
            // R-B11: the operator-card functions survive a power cycle.
            operator_card: ykt_proto::AuthFunctions::from_bits(operator_bits).unwrap(),
        }
    }
}

prop_compose! {
    fn saved_strategy()(
        params in prop::option::of(params_strategy()),
        merchant_no: u32,
        merchant_name in "[a-z食堂一二]{0,16}",
        manual in prop::option::of(prop_oneof![Just(WorkMode::FullOnline), Just(WorkMode::Auto), Just(WorkMode::Offline)]),
    ) -> SavedParams {
        SavedParams { params, merchant_no, merchant_name, manual_work_mode: manual }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // R-P5.1 (the saved merchant number and parameters): every downloadable parameter, the
    // saved merchant and the hand-set work mode survive a power cycle unchanged.
    #[test]
    fn saved_params_round_trip(a in saved_strategy(), b in saved_strategy(), seed: u64) {
        let mut flash = MemFlash::new();
        let mut store = ParamsStore::open(&mut flash).unwrap();
        store.save(&mut flash, a.clone()).unwrap();
        store.save(&mut flash, b.clone()).unwrap();
        let reopened = ParamsStore::open(&mut flash.power_cycle(seed)).unwrap();
        prop_assert_eq!(reopened.get(), &b);
    }
}

fn flash_v1_image() -> MemFlash {
    let slot = ykt_proto::hexstr::parse_vec(FLASH_V1_SLOT).unwrap();
    let mut image = vec![0xFF; 16 * 1024];
    image.extend_from_slice(&slot);
    MemFlash::with_image(Region::Params, &image)
}

fn flash_v1_saved() -> SavedParams {
    let mut classes = [0u8; 32];
    classes[0] = 0b1010_0110;
    classes[31] = 0x80;
    let mut fee_rates = [0u8; 256];
    fee_rates[1] = 5;
    fee_rates[255] = 100;
    let at = |h, m, s| NaiveTime::from_hms_opt(h, m, s).unwrap();
    SavedParams {
        params: Some(TerminalParams {
            version: 7,
            work_mode: WorkMode::Offline,
            consumption_mode: ConsumptionMode::Coded,
            fixed_amount: 800,
            price_list: vec![
                PriceItem {
                    code: 1,
                    price: 1200,
                    subject: 7,
                },
                PriceItem {
                    code: 65535,
                    price: 0,
                    subject: 0,
                },
            ],
            allowed_classes: ClassSet(classes),
            fee_rates,
            max_balance: 100_000,
            min_balance: 50,
            max_daily_uses: 5,
            single_password_threshold: 5_000,
            daily_password_threshold: 20_000,
            wallet_no: 1,
            max_offline_hours: 24,
            working_hours: vec![
                WorkingHours {
                    start: at(22, 0, 0),
                    end: at(2, 0, 0),
                },
                WorkingHours {
                    start: NaiveTime::from_hms_milli_opt(11, 30, 15, 250).unwrap(),
                    end: at(13, 0, 0),
                },
            ],
            operator_card: ykt_proto::AuthFunctions::NONE,
        }),
        merchant_no: 1001,
        merchant_name: "一食堂".into(),
        manual_work_mode: Some(WorkMode::Auto),
    }
}

// R-P5.1: a terminal whose flash holds parameters in the old format 1 powers on with the same
// parameters, merchant and hand-set mode; its next save writes the unified format.
#[test]
fn old_format_1_flash_image_still_loads() {
    let mut flash = flash_v1_image();
    let mut store = ParamsStore::open(&mut flash).unwrap();
    // Format 1 held a time with a fraction of a second, which no parameter download can
    // carry: it is read in whole seconds.
    let mut expected = flash_v1_saved();
    expected.params.as_mut().unwrap().working_hours[1].start =
        NaiveTime::from_hms_opt(11, 30, 15).unwrap();
    assert_eq!(store.get(), &expected);
    // The next save is format 3 (the wire's block, with its operator-card byte).
    store.update(&mut flash, |s| s.merchant_no = 1002).unwrap();
    let reopened = ParamsStore::open(&mut flash.power_cycle(7)).unwrap();
    assert_eq!(reopened.get(), store.get());
    assert_eq!(reopened.get().merchant_no, 1002);
    // Generation 2 lives in slot 0; its payload begins with format 3.
    assert_eq!(flash.image(Region::Params)[20], 3);
}

// issue 18.3a, R-P5.1: parameters read from format 1 can always be saved again: the next
// sign-in saves the merchant number without touching them, and a time with a fraction of a
// second (which format 2 cannot hold) once made that save fail and halted the terminal.
#[test]
fn format_1_parameters_are_saved_by_the_next_sign_in() {
    let mut flash = flash_v1_image();
    let mut store = ParamsStore::open(&mut flash).unwrap();
    store.update(&mut flash, |s| s.merchant_no = 1002).unwrap();
    let reopened = ParamsStore::open(&mut flash.power_cycle(7)).unwrap();
    assert_eq!(reopened.get(), store.get());
    let hours = &reopened.get().params.as_ref().unwrap().working_hours;
    assert_eq!(hours[1].start, NaiveTime::from_hms_opt(11, 30, 15).unwrap());
}

// A power cut at any byte of a save leaves the old parameters or the new ones, whole.
#[test]
fn power_cut_during_save_keeps_old_or_new() {
    let old = SavedParams {
        params: Some(params()),
        merchant_no: 42,
        merchant_name: "一食堂".into(),
        manual_work_mode: None,
    };
    let mut new = old.clone();
    new.params.as_mut().unwrap().price_list = (0..500)
        .map(|code| PriceItem {
            code,
            price: 100,
            subject: 0,
        })
        .collect();
    new.merchant_no = 43;
    let mut base = MemFlash::new();
    ParamsStore::open(&mut base)
        .unwrap()
        .save(&mut base, old.clone())
        .unwrap();
    let start = base.bytes_written();
    let mut probe = base.clone();
    ParamsStore::open(&mut probe)
        .unwrap()
        .save(&mut probe, new.clone())
        .unwrap();
    for cut in 0..=probe.bytes_written() - start {
        let mut flash = base.clone();
        flash.cut_power_after(cut);
        let saved = ParamsStore::open(&mut flash)
            .unwrap()
            .save(&mut flash, new.clone())
            .is_ok();
        let got = ParamsStore::open(&mut flash.power_cycle(cut))
            .unwrap()
            .get()
            .clone();
        assert!(got == new || (!saved && got == old), "cut {cut}");
    }
}

// R-P5.1: merchant number 0 after an error; R-F4.18: a hand-set mode overrides the host's.
#[test]
fn merchant_and_work_mode_updates() {
    let mut flash = MemFlash::new();
    let mut store = ParamsStore::open(&mut flash).unwrap();
    assert_eq!(store.get(), &SavedParams::default());
    assert_eq!(store.get().work_mode(), WorkMode::FullOnline);
    store
        .update(&mut flash, |p| {
            p.params = Some(params());
            p.merchant_no = 42;
        })
        .unwrap();
    assert_eq!(store.get().work_mode(), WorkMode::Auto);
    store
        .update(&mut flash, |p| p.manual_work_mode = Some(WorkMode::Offline))
        .unwrap();
    store.update(&mut flash, |p| p.merchant_no = 0).unwrap();
    let reopened = ParamsStore::open(&mut flash).unwrap();
    assert_eq!(reopened.get().work_mode(), WorkMode::Offline);
    assert_eq!(reopened.get().merchant_no, 0);
}

#[test]
fn invalid_params_are_refused_and_nothing_is_written() {
    let mut flash = MemFlash::new();
    let mut store = ParamsStore::open(&mut flash).unwrap();
    let mut p = params();
    p.fee_rates[3] = 101;
    let err = store
        .update(&mut flash, |s| s.params = Some(p))
        .unwrap_err();
    assert!(matches!(err, ParamsError::Invalid(_)));
    let mut p = params();
    p.price_list = vec![
        PriceItem {
            code: 1,
            price: 1,
            subject: 0
        };
        1025
    ];
    assert!(store.update(&mut flash, |s| s.params = Some(p)).is_err());
    // What no parameter download could carry: 17 windows, a fraction of a second.
    let mut p = params();
    p.working_hours = vec![p.working_hours[0]; 17];
    assert!(store.update(&mut flash, |s| s.params = Some(p)).is_err());
    let mut p = params();
    p.working_hours[0].end = NaiveTime::from_hms_milli_opt(2, 0, 0, 1).unwrap();
    assert!(store.update(&mut flash, |s| s.params = Some(p)).is_err());
    assert!(
        store
            .update(&mut flash, |s| s.merchant_name = "x".repeat(65))
            .is_err()
    );
    assert_eq!(flash.bytes_written(), 0);
}

// R-F4.18: the offline time accumulates from the moment the terminal went offline, is
// cleared when it is online again, survives power cycles (checkpointed every minute), blocks
// transactions past the maximum, and can be reset by the operator.
#[test]
fn offline_time_counter() {
    let mut flash = MemFlash::new();
    let t0 = at(1, 8);
    let mut state = StateStore::open(&mut flash, 0, t0).unwrap();
    assert!(!state.offline().is_offline());
    state.went_offline(&mut flash, 1_000, t0).unwrap();
    let hour = 3_600_000;
    for minute in 1..=(23 * 60) {
        state
            .tick(
                &mut flash,
                1_000 + minute * 60_000,
                t0 + TimeDelta::minutes(minute as i64),
            )
            .unwrap();
    }
    let now = 1_000 + 23 * hour + 30 * 60_000;
    assert!(!state.offline().exceeded(24, now));
    assert_eq!(state.offline().offline_ms(now), 23 * hour + 30 * 60_000);
    // Power lost 30 s after the last checkpoint, off for an hour by the terminal clock.
    let last_checkpoint = t0 + TimeDelta::minutes(23 * 60);
    let mut after = flash.power_cycle(1);
    let state2 = StateStore::open(&mut after, 5, last_checkpoint + TimeDelta::hours(1)).unwrap();
    assert!(state2.offline().is_offline());
    assert_eq!(state2.offline().offline_ms(5), 24 * hour);
    assert!(state2.offline().exceeded(24, 5));
    assert!(!state2.offline().exceeded(0, 5), "0 = no limit");
    // Operator reset: counting again from zero, still offline.
    let mut state2 = state2;
    state2
        .reset_offline(&mut after, 10, last_checkpoint + TimeDelta::hours(1))
        .unwrap();
    assert_eq!(state2.offline().offline_ms(10 + 60_000), 60_000);
    // Online clears it, durably.
    state2
        .came_online(&mut after, 20, last_checkpoint + TimeDelta::hours(1))
        .unwrap();
    let state3 = StateStore::open(&mut after, 0, last_checkpoint + TimeDelta::hours(5)).unwrap();
    assert!(!state3.offline().is_offline());
    assert_eq!(state3.offline().offline_ms(1_000_000), 0);
}

// R-F4.19: the host sets the clock; the offset survives a power cycle.
// R-F4.20: the status report carries pending records, clock and blacklist version.
#[test]
fn clock_setting_and_status_report() {
    let mut flash = MemFlash::new();
    let rtc = at(1, 8);
    let host = at(2, 9) + TimeDelta::milliseconds(250);
    let mut state = StateStore::open(&mut flash, 0, rtc).unwrap();
    state.set_clock(&mut flash, host, rtc, 0).unwrap();
    let state = StateStore::open(&mut flash.power_cycle(3), 0, rtc).unwrap();
    assert_eq!(
        state.clock().now(rtc + TimeDelta::seconds(10)),
        host + TimeDelta::seconds(10)
    );
    assert_eq!(state.clock().last_set, Some(host));

    let cfg = JournalConfig::with_segment_size(1024, 8);
    let (mut journal, _) = Journal::open(&mut flash, cfg).unwrap();
    journal.append(&mut flash, purchase(1, 100, host)).unwrap();
    journal.append(&mut flash, purchase(2, 100, host)).unwrap();
    let mut blacklist = BlacklistStore::open(&mut flash).unwrap();
    blacklist.apply_incremental(&mut flash, 0, 12, &[]).unwrap();
    let report = StatusReport::new(&journal, &blacklist, state.clock().now(rtc));
    assert_eq!(report.pending_records, 2);
    assert_eq!(report.blacklist_version, 12);
    assert_eq!(report.clock, host);
    assert_eq!(report.next_serial, 3);
}

// A power cut at any byte of a state save keeps the old or the new state.
#[test]
fn power_cut_during_state_save() {
    let t = at(3, 3);
    let mut base = MemFlash::new();
    let mut s = StateStore::open(&mut base, 0, t).unwrap();
    s.went_offline(&mut base, 0, t).unwrap();
    for cut in 0..64 {
        let mut flash = base.clone();
        flash.cut_power_after(cut);
        let mut s = StateStore::open(&mut flash, 100, t).unwrap();
        let done = s.came_online(&mut flash, 200, t).is_ok();
        let after = StateStore::open(&mut flash.power_cycle(cut), 0, t).unwrap();
        assert!(after.offline().is_offline() != done || !done, "cut {cut}");
    }
}
