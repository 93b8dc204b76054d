//! The stored form of `TerminalParams`: a versioned, bounded binary blob. Parameters change
//! as a whole (their version increases), so one column beats thirty.

use chrono::{NaiveTime, Timelike};
use ykt_proto::{ClassSet, ConsumptionMode, PriceItem, TerminalParams, WorkMode, WorkingHours};

use crate::error::{HostError, Result};

const FORMAT: u8 = 1;
/// Bounds that keep a stored blob (and an admin request) small.
pub const MAX_PRICE_ITEMS: usize = 1_000;
pub const MAX_WORKING_HOURS: usize = 16;

/// Checks the bounds and value ranges the host accepts for parameters.
pub fn validate(p: &TerminalParams) -> Result<()> {
    let bad = |m: &str| Err(HostError::Invalid(format!("terminal parameters: {m}")));
    if p.price_list.len() > MAX_PRICE_ITEMS {
        return bad("price list too long");
    }
    if p.working_hours.len() > MAX_WORKING_HOURS {
        return bad("too many working-hour windows");
    }
    if p.fee_rates.iter().any(|&r| r > 100) {
        return bad("fee rate above 100 %");
    }
    if p.fixed_amount < 0 || p.max_balance < 0 || p.min_balance < 0 {
        return bad("negative amount");
    }
    if p.price_list.iter().any(|i| i.price <= 0) {
        return bad("price must be positive");
    }
    Ok(())
}

pub fn encode(p: &TerminalParams) -> Vec<u8> {
    let mut b = Vec::with_capacity(400 + p.price_list.len() * 12);
    b.push(FORMAT);
    b.extend_from_slice(&p.version.to_be_bytes());
    b.push(match p.work_mode {
        WorkMode::FullOnline => 0,
        WorkMode::Auto => 1,
        WorkMode::Offline => 2,
    });
    b.push(match p.consumption_mode {
        ConsumptionMode::UnitPrice => 0,
        ConsumptionMode::FixedAmount => 1,
        ConsumptionMode::Coded => 2,
    });
    b.extend_from_slice(&p.fixed_amount.to_be_bytes());
    b.extend_from_slice(&(p.price_list.len() as u16).to_be_bytes());
    for item in &p.price_list {
        b.extend_from_slice(&item.code.to_be_bytes());
        b.extend_from_slice(&item.price.to_be_bytes());
        b.extend_from_slice(&item.subject.to_be_bytes());
    }
    b.extend_from_slice(&p.allowed_classes.0);
    b.extend_from_slice(&p.fee_rates);
    for v in [p.max_balance, p.min_balance] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&p.max_daily_uses.to_be_bytes());
    for v in [p.single_password_threshold, p.daily_password_threshold] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.push(p.wallet_no);
    b.extend_from_slice(&p.max_offline_hours.to_be_bytes());
    b.push(p.working_hours.len() as u8);
    for w in &p.working_hours {
        b.extend_from_slice(&w.start.num_seconds_from_midnight().to_be_bytes());
        b.extend_from_slice(&w.end.num_seconds_from_midnight().to_be_bytes());
    }
    b
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| HostError::Corrupt("terminal parameters truncated".into()))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn time(&mut self) -> Result<NaiveTime> {
        let s = self.u32()?;
        NaiveTime::from_num_seconds_from_midnight_opt(s, 0)
            .ok_or_else(|| HostError::Corrupt(format!("time of day {s}")))
    }
}

pub fn decode(bytes: &[u8]) -> Result<TerminalParams> {
    let corrupt = |m: String| HostError::Corrupt(format!("terminal parameters: {m}"));
    let mut r = Reader(bytes);
    let format = r.u8()?;
    if format != FORMAT {
        return Err(corrupt(format!("format {format}")));
    }
    let version = r.u32()?;
    let work_mode = match r.u8()? {
        0 => WorkMode::FullOnline,
        1 => WorkMode::Auto,
        2 => WorkMode::Offline,
        m => return Err(corrupt(format!("work mode {m}"))),
    };
    let consumption_mode = match r.u8()? {
        0 => ConsumptionMode::UnitPrice,
        1 => ConsumptionMode::FixedAmount,
        2 => ConsumptionMode::Coded,
        m => return Err(corrupt(format!("consumption mode {m}"))),
    };
    let fixed_amount = r.i64()?;
    let n = usize::from(r.u16()?);
    if n > MAX_PRICE_ITEMS {
        return Err(corrupt(format!("{n} price items")));
    }
    let mut price_list = Vec::with_capacity(n);
    for _ in 0..n {
        price_list.push(PriceItem {
            code: r.u16()?,
            price: r.i64()?,
            subject: r.u16()?,
        });
    }
    let allowed_classes = ClassSet(r.take()?);
    let fee_rates = r.take::<256>()?;
    let max_balance = r.i64()?;
    let min_balance = r.i64()?;
    let max_daily_uses = r.u16()?;
    let single_password_threshold = r.i64()?;
    let daily_password_threshold = r.i64()?;
    let wallet_no = r.u8()?;
    let max_offline_hours = r.u16()?;
    let n = usize::from(r.u8()?);
    if n > MAX_WORKING_HOURS {
        return Err(corrupt(format!("{n} working-hour windows")));
    }
    let mut working_hours = Vec::with_capacity(n);
    for _ in 0..n {
        working_hours.push(WorkingHours {
            start: r.time()?,
            end: r.time()?,
        });
    }
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes".into()));
    }
    Ok(TerminalParams {
        version,
        work_mode,
        consumption_mode,
        fixed_amount,
        price_list,
        allowed_classes,
        fee_rates,
        max_balance,
        min_balance,
        max_daily_uses,
        single_password_threshold,
        daily_password_threshold,
        wallet_no,
        max_offline_hours,
        working_hours,
    })
}

/// Parameters a new device starts with: everything allowed, no fee, auto mode.
pub fn default_params() -> TerminalParams {
    TerminalParams {
        version: 1,
        work_mode: WorkMode::Auto,
        consumption_mode: ConsumptionMode::UnitPrice,
        fixed_amount: 0,
        price_list: Vec::new(),
        allowed_classes: ClassSet::ALL,
        fee_rates: [0; 256],
        max_balance: 0xFF_FFFF,
        min_balance: 0,
        max_daily_uses: 0,
        single_password_threshold: 0,
        daily_password_threshold: 0,
        wallet_no: 0,
        max_offline_hours: 24,
        working_hours: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_params() -> impl Strategy<Value = TerminalParams> {
        (
            any::<u32>(),
            0..3u8,
            proptest::collection::vec((any::<u16>(), 1..100_000i64, any::<u16>()), 0..20),
            proptest::collection::vec((0..86_400u32, 0..86_400u32), 0..5),
            any::<[u8; 32]>(),
            0..=100u8,
        )
            .prop_map(|(version, mode, items, hours, classes, rate)| {
                let mut p = default_params();
                p.version = version;
                p.work_mode =
                    [WorkMode::FullOnline, WorkMode::Auto, WorkMode::Offline][usize::from(mode)];
                p.price_list = items
                    .into_iter()
                    .map(|(code, price, subject)| PriceItem {
                        code,
                        price,
                        subject,
                    })
                    .collect();
                p.working_hours = hours
                    .into_iter()
                    .map(|(s, e)| WorkingHours {
                        start: NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap(),
                        end: NaiveTime::from_num_seconds_from_midnight_opt(e, 0).unwrap(),
                    })
                    .collect();
                p.allowed_classes = ClassSet(classes);
                p.fee_rates[7] = rate;
                p
            })
    }

    proptest! {
        // R-H1: a device's parameters survive storage exactly.
        #[test]
        fn params_round_trip(p in arb_params()) {
            prop_assert_eq!(decode(&encode(&p)).unwrap(), p);
        }

        // Stored bytes never panic the decoder.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let bytes = encode(&default_params());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "{n}");
        }
    }
}
