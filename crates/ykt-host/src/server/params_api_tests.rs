//! Unit tests of the parameter patch and its JSON.
#![allow(clippy::unwrap_used)]

use super::*;

fn patch(v: Value) -> Result<ykt_proto::TerminalParams, String> {
    let patch: ParamsPatch = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let mut p = params_codec::default_params();
    apply(&mut p, &patch).map_err(|e| e.to_string())?;
    Ok(p)
}

// R-F4.10, R-F4.14: a price list with subjects is taken whole, in the order given, and
// comes back out in the params JSON.
#[test]
fn price_list_set_and_shown() {
    let p = patch(json!({"consumption_mode": "coded", "price_list": [
        {"code": 12, "price": 1200, "subject": 3},
        {"code": 7, "price": MAX_ITEM_PRICE}
    ]}))
    .unwrap();
    assert_eq!(p.consumption_mode, ConsumptionMode::Coded);
    assert_eq!(
        p.price_list,
        vec![
            ykt_proto::PriceItem {
                code: 12,
                price: 1200,
                subject: 3
            },
            ykt_proto::PriceItem {
                code: 7,
                price: MAX_ITEM_PRICE,
                subject: 0
            },
        ]
    );
    assert_eq!(
        params_json(&p)["price_list"],
        json!([{"code": 12, "price": 1200, "subject": 3},
               {"code": 7, "price": MAX_ITEM_PRICE, "subject": 0}])
    );
}

// R-F4.10: a bad list is refused with a message naming what is wrong.
#[test]
fn bad_price_lists_refused() {
    let cases = [
        (
            json!([{"code": 1, "price": 100}, {"code": 1, "price": 200}]),
            "appears twice",
        ),
        (json!([{"code": 1, "price": 0}]), "1 to 16777215"),
        (json!([{"code": 1, "price": -5}]), "1 to 16777215"),
        (
            json!([{"code": 1, "price": MAX_ITEM_PRICE + 1}]),
            "1 to 16777215",
        ),
        (json!([{"code": 0, "price": 100}]), "1 to 65535"),
    ];
    for (list, why) in cases {
        let e = patch(json!({"price_list": list})).unwrap_err();
        assert!(e.contains(why), "{list}: {e}");
    }
    let too_many: Vec<Value> = (1..=MAX_PRICE_ITEMS + 1)
        .map(|c| json!({"code": c, "price": 100}))
        .collect();
    let e = patch(json!({"price_list": too_many})).unwrap_err();
    assert!(e.contains(&format!("at most {MAX_PRICE_ITEMS}")), "{e}");
    let full: Vec<Value> = (1..=MAX_PRICE_ITEMS)
        .map(|c| json!({"code": c, "price": 100}))
        .collect();
    assert_eq!(
        patch(json!({"price_list": full})).unwrap().price_list.len(),
        MAX_PRICE_ITEMS
    );
}

// R-F4.10: coded mode without any item is refused; an empty list clears it otherwise.
#[test]
fn coded_mode_needs_items() {
    let e = patch(json!({"consumption_mode": "coded"})).unwrap_err();
    assert!(e.contains("needs a price_list"), "{e}");
    let e = patch(json!({"consumption_mode": "coded", "price_list": []})).unwrap_err();
    assert!(e.contains("needs a price_list"), "{e}");
    assert!(
        patch(json!({"price_list": []}))
            .unwrap()
            .price_list
            .is_empty()
    );
}

// R-F4.5, R-F4.13, issue 10.4: every downloadable field of `TerminalParams` goes out in the
// JSON and comes back in through the patch unchanged (the literal lists every field, so a
// field added to the struct fails to compile here until it is handled).
#[test]
fn every_field_round_trips() {
    let mut classes = ClassSet::NONE;
    for c in [0, 3, 200, 255] {
        classes.insert(c);
    }
    let mut rates = [0u8; 256];
    rates[3] = 5;
    rates[255] = 100;
    let set = TerminalParams {
        version: 9,
        work_mode: WorkMode::Offline,
        consumption_mode: ConsumptionMode::Coded,
        fixed_amount: 350,
        price_list: vec![PriceItem {
            code: 4,
            price: 600,
            subject: 2,
        }],
        allowed_classes: classes,
        fee_rates: rates,
        max_balance: 90_000,
        min_balance: 100,
        max_daily_uses: 6,
        single_password_threshold: 2_000,
        daily_password_threshold: 5_000,
        wallet_no: 2,
        max_offline_hours: 48,
        working_hours: vec![WorkingHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(6, 30, 15).unwrap(),
        }],
        operator_card: [
            ykt_proto::AuthFunction::Reversal,
            ykt_proto::AuthFunction::ClearOfflineTime,
        ]
        .into_iter()
        .collect(),
    };
    let mut shown = params_json(&set);
    assert_eq!(shown["allowed_classes"], json!([0, 3, 200, 255]));
    // R-B11: the operator-card functions by name.
    assert_eq!(
        shown["operator_card"],
        json!(["reversal", "clear-offline-time"])
    );
    assert_eq!(shown["fee_rates"], json!({"3": 5, "255": 100}));
    shown.as_object_mut().unwrap().remove("version");
    let back = patch(shown).unwrap();
    assert_eq!(back, TerminalParams { version: 1, ..set });
}

// R-F4.5, issue 10.4: an empty class set allows none; rates above 100 are refused.
#[test]
fn class_set_and_rates_checked() {
    let p = patch(json!({"allowed_classes": []})).unwrap();
    assert_eq!(p.allowed_classes, ClassSet::NONE);
    let e = patch(json!({"fee_rates": {"3": 101}})).unwrap_err();
    assert!(e.contains("0 to 100"), "{e}");
    let e = patch(json!({"working_hours": [{"start": "25:00", "end": "06:00"}]})).unwrap_err();
    assert!(e.contains("HH:MM"), "{e}");
}

// R-B11: the operator-card set replaces the old one; unknown names and repeats are refused.
#[test]
fn operator_card_functions_are_named() {
    let p = patch(json!({"operator_card": ["manual-sign-in", "statistics"]})).unwrap();
    assert_eq!(
        p.operator_card.iter().collect::<Vec<_>>(),
        [
            ykt_proto::AuthFunction::ManualSignIn,
            ykt_proto::AuthFunction::Statistics
        ]
    );
    assert!(
        patch(json!({"operator_card": []})).unwrap().operator_card
            == ykt_proto::AuthFunctions::NONE
    );
    assert!(patch(json!({"operator_card": ["refund"]})).is_err());
    assert!(patch(json!({"operator_card": ["reversal", "reversal"]})).is_err());
}
