//! A device's terminal parameters as the admin API shows and patches them: every field of
//! `ykt_proto::TerminalParams` the host downloads (R-F4.4–R-F4.18, R-F4.5 the allowed
//! classes, R-F4.13 fee rates, working hours) is visible in `params_json` and settable by
//! `ParamsPatch`; only `version` is the host's own.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveTime;
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_proto::{
    AuthFunction, AuthFunctions, ClassSet, ConsumptionMode, Fen, PriceItem, TerminalParams,
    WorkMode, WorkingHours,
};

use crate::error::{HostError, Result};
use crate::params_codec;

/// Parameter changes; absent fields keep their value.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamsPatch {
    work_mode: Option<String>,
    consumption_mode: Option<String>,
    fixed_amount: Option<Fen>,
    max_balance: Option<Fen>,
    min_balance: Option<Fen>,
    max_daily_uses: Option<u16>,
    single_password_threshold: Option<Fen>,
    daily_password_threshold: Option<Fen>,
    wallet_no: Option<u8>,
    max_offline_hours: Option<u16>,
    /// Fee rate in percent for every class listed: `{"3": 5}`; classes not listed keep theirs.
    fee_rates: Option<BTreeMap<u8, u8>>,
    /// The whole set of card classes allowed on the terminal (R-F4.5), replacing the old one.
    allowed_classes: Option<Vec<u8>>,
    /// The whole list of working-hours windows, replacing the old one; empty = always.
    working_hours: Option<Vec<HoursReq>>,
    /// The whole price list of keyboard-coded mode (R-F4.10), replacing the old one.
    price_list: Option<Vec<PriceItemReq>>,
    /// The whole set of functions that need an operator card (R-B11), by name
    /// (`manual-sign-in`, `work-mode`, `reversal`, `statistics`, `clear-offline-time`),
    /// replacing the old one; empty = none.
    operator_card: Option<Vec<String>>,
}

/// At most this many names in `operator_card` (each function once; a repeat is refused).
const MAX_OPERATOR_CARD_NAMES: usize = AuthFunction::ALL.len();

fn operator_card(names: &[String]) -> Result<AuthFunctions> {
    if names.len() > MAX_OPERATOR_CARD_NAMES {
        return invalid(format!(
            "operator_card names {} functions; there are {MAX_OPERATOR_CARD_NAMES}",
            names.len()
        ));
    }
    let mut set = AuthFunctions::NONE;
    for n in names {
        let Some(f) = AuthFunction::parse(n) else {
            return invalid(format!(
                "operator_card: {n:?} is not manual-sign-in, work-mode, reversal, statistics or clear-offline-time"
            ));
        };
        if set.contains(f) {
            return invalid(format!("operator_card: {n} appears twice"));
        }
        set = set.with(f);
    }
    Ok(set)
}

/// One item of the price list as the API takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceItemReq {
    code: u16,
    price: Fen,
    #[serde(default)]
    subject: u16,
}

/// One working-hours window, `HH:MM[:SS]`; `start > end` spans midnight.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursReq {
    start: String,
    end: String,
}

/// Most items: the protocol's bound, or the host store's if lower.
const MAX_PRICE_ITEMS: usize = if ykt_proto::MAX_PRICE_ITEMS < params_codec::MAX_PRICE_ITEMS {
    ykt_proto::MAX_PRICE_ITEMS
} else {
    params_codec::MAX_PRICE_ITEMS
};
/// Highest item price in fen: a card's balance field is 24 bits.
const MAX_ITEM_PRICE: Fen = crate::domain::checks::MAX_CARD_BALANCE;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

fn price_list(items: &[PriceItemReq]) -> Result<Vec<PriceItem>> {
    if items.len() > MAX_PRICE_ITEMS {
        return invalid(format!(
            "price_list has {} items; at most {MAX_PRICE_ITEMS}",
            items.len()
        ));
    }
    let mut seen = BTreeSet::new();
    items
        .iter()
        .map(|i| {
            // Code 0 is what a record carries when no item was keyed.
            if i.code == 0 {
                return invalid("price_list: an item code is 1 to 65535");
            }
            if !seen.insert(i.code) {
                return invalid(format!("price_list: item code {} appears twice", i.code));
            }
            if !(1..=MAX_ITEM_PRICE).contains(&i.price) {
                return invalid(format!(
                    "price_list: the price of item {} is {} fen; it is 1 to {MAX_ITEM_PRICE}",
                    i.code, i.price
                ));
            }
            Ok(PriceItem {
                code: i.code,
                price: i.price,
                subject: i.subject,
            })
        })
        .collect()
}

fn time_of_day(s: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .or_else(|_| invalid(format!("working_hours: {s:?} is not HH:MM or HH:MM:SS")))
}

fn working_hours(windows: &[HoursReq]) -> Result<Vec<WorkingHours>> {
    if windows.len() > params_codec::MAX_WORKING_HOURS {
        return invalid(format!(
            "working_hours has {} windows; at most {}",
            windows.len(),
            params_codec::MAX_WORKING_HOURS
        ));
    }
    windows
        .iter()
        .map(|w| {
            Ok(WorkingHours {
                start: time_of_day(&w.start)?,
                end: time_of_day(&w.end)?,
            })
        })
        .collect()
}

fn class_set(classes: &[u8]) -> ClassSet {
    let mut set = ClassSet::NONE;
    for c in classes {
        set.insert(*c);
    }
    set
}

/// Applies `patch` to `p`; the money limits and the rest of the host's rules are
/// `params_codec::validate`'s, checked on the result.
pub(crate) fn apply(p: &mut TerminalParams, patch: &ParamsPatch) -> Result<()> {
    if let Some(m) = &patch.work_mode {
        p.work_mode = match m.as_str() {
            "full-online" => WorkMode::FullOnline,
            "auto" => WorkMode::Auto,
            "offline" => WorkMode::Offline,
            _ => return invalid("work_mode is full-online, auto or offline"),
        };
    }
    if let Some(m) = &patch.consumption_mode {
        p.consumption_mode = match m.as_str() {
            "unit-price" => ConsumptionMode::UnitPrice,
            "fixed-amount" => ConsumptionMode::FixedAmount,
            "coded" => ConsumptionMode::Coded,
            _ => return invalid("consumption_mode is unit-price, fixed-amount or coded"),
        };
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = patch.$f { p.$f = v; })* };
    }
    set!(
        fixed_amount,
        max_balance,
        min_balance,
        max_daily_uses,
        single_password_threshold,
        daily_password_threshold,
        wallet_no,
        max_offline_hours
    );
    if let Some(rates) = &patch.fee_rates {
        for (class, rate) in rates {
            if *rate > 100 {
                return invalid(format!(
                    "fee_rates: the rate of class {class} is {rate}; it is 0 to 100 percent"
                ));
            }
            p.fee_rates[usize::from(*class)] = *rate;
        }
    }
    if let Some(classes) = &patch.allowed_classes {
        p.allowed_classes = class_set(classes);
    }
    if let Some(windows) = &patch.working_hours {
        p.working_hours = working_hours(windows)?;
    }
    if let Some(items) = &patch.price_list {
        p.price_list = price_list(items)?;
    }
    if let Some(names) = &patch.operator_card {
        p.operator_card = operator_card(names)?;
    }
    // A coded terminal with no list could sell nothing: every code would be refused.
    if p.consumption_mode == ConsumptionMode::Coded && p.price_list.is_empty() {
        return invalid("consumption_mode coded needs a price_list with at least one item");
    }
    Ok(())
}

/// Every downloadable parameter, in the form `ParamsPatch` takes it back.
pub(crate) fn params_json(p: &TerminalParams) -> Value {
    let classes: Vec<u8> = (0..=u8::MAX)
        .filter(|c| p.allowed_classes.contains(*c))
        .collect();
    let rates: serde_json::Map<String, Value> = (0..=u8::MAX)
        .filter(|c| p.fee_rates[usize::from(*c)] != 0)
        .map(|c| (c.to_string(), json!(p.fee_rates[usize::from(c)])))
        .collect();
    let fmt = |t: &NaiveTime| t.format("%H:%M:%S").to_string();
    json!({
        "version": p.version,
        "work_mode": match p.work_mode { WorkMode::FullOnline => "full-online", WorkMode::Auto => "auto", WorkMode::Offline => "offline" },
        "consumption_mode": match p.consumption_mode { ConsumptionMode::UnitPrice => "unit-price", ConsumptionMode::FixedAmount => "fixed-amount", ConsumptionMode::Coded => "coded" },
        "fixed_amount": p.fixed_amount,
        "max_balance": p.max_balance,
        "min_balance": p.min_balance,
        "max_daily_uses": p.max_daily_uses,
        "single_password_threshold": p.single_password_threshold,
        "daily_password_threshold": p.daily_password_threshold,
        "wallet_no": p.wallet_no,
        "max_offline_hours": p.max_offline_hours,
        "fee_rates": rates,
        "allowed_classes": classes,
        "working_hours": p.working_hours.iter().map(|w| json!({"start": fmt(&w.start), "end": fmt(&w.end)})).collect::<Vec<_>>(),
        "price_list": p.price_list.iter().map(|i| json!({"code": i.code, "price": i.price, "subject": i.subject})).collect::<Vec<_>>(),
        "operator_card": p.operator_card.iter().map(AuthFunction::as_str).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
#[path = "params_api_tests.rs"]
mod tests;
