//! The values that terminal, host and wire share: identifiers, money, records and the
//! terminal's parameters. Their byte layouts live in the message modules.

use chrono::{NaiveDateTime, NaiveTime};

/// Money: an integer number of fen (分). Never a float.
pub type Fen = i64;

/// The application serial number of a card (应用序列号, R-T2.1): 1 ..= 2^24 − 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardNo(u32);

impl CardNo {
    pub const MAX: u32 = (1 << 24) - 1;

    /// `None` for 0 and for numbers above 2^24 − 1.
    pub const fn new(n: u32) -> Option<CardNo> {
        if n >= 1 && n <= Self::MAX {
            Some(CardNo(n))
        } else {
            None
        }
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

/// The number printed on the card (显示卡号, R-T2.2): at most 10 decimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DisplayNo(u64);

impl DisplayNo {
    pub const MAX: u64 = 9_999_999_999;

    pub const fn new(n: u64) -> Option<DisplayNo> {
        if n <= Self::MAX {
            Some(DisplayNo(n))
        } else {
            None
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A terminal's physical ID (终端机物理 ID): 4 bytes, fixed in the device, shown as 8 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhysicalId(pub [u8; 4]);

impl std::fmt::Display for PhysicalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for PhysicalId {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::hexstr::parse::<4>(s)
            .map(PhysicalId)
            .ok_or("a physical ID is 8 hex digits")
    }
}

/// A terminal's serial number for its records (流水号): strictly increasing, never reused.
/// `(PhysicalId, TerminalSerial)` identifies a record everywhere.
pub type TerminalSerial = u32;

/// A merchant number (商户号); 0 means "no merchant" (R-P5.1: 请设置商户号).
pub type MerchantNo = u32;

/// The kind of card a record was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardType {
    Mf1,
    Cpu,
}

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A consumption (消费) debit.
    Purchase,
    /// The cancellation of an online debit whose card write failed (R-P5.5): same content as
    /// the purchase, serial = purchase serial + 1.
    Cancellation,
    /// A reversal (冲正) of an earlier successful MF1 debit, made at the terminal: the money
    /// goes back onto the card.
    Reversal,
    /// A blacklisted card was tapped and locked (黑卡消费, R-F4.3, R-F4.15); no money moves.
    BlackCard,
    /// A record collected from the card's own transaction ring on the host's request (R-F4.17).
    Collected,
    /// A top-up (充值, `docs/loads.md`): money put onto the card, authorised by the host (0x08).
    TopUp,
    /// A pick-up of what waited for the card (领取补助): deposits and subsidies; the card's
    /// subsidy sequence steps by one.
    Subsidy,
}

impl RecordKind {
    /// Every kind, in wire order (the wire value is the 1-based position).
    pub const ALL: [RecordKind; 7] = [
        RecordKind::Purchase,
        RecordKind::Cancellation,
        RecordKind::Reversal,
        RecordKind::BlackCard,
        RecordKind::Collected,
        RecordKind::TopUp,
        RecordKind::Subsidy,
    ];

    /// Whether the record is a load: money put onto the card after a host authorisation.
    pub const fn is_load(self) -> bool {
        matches!(self, RecordKind::TopUp | RecordKind::Subsidy)
    }
}

/// Where a record's card write stands (the spec's 交易状态 / 交易标志, merged).
/// Upload state is the terminal's own business and is not part of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// 发起交易: an online debit was requested; the card has not been written yet.
    Initiated,
    /// 未写卡: an offline debit is recorded; the card has not been written yet.
    NotWritten,
    /// 交易成功: the host authorised the debit and the card was written (R-P5.2, R-P5.4).
    Success,
    /// 扣款成功: the host did not answer; the terminal debited the card offline (R-P5.3).
    Debited,
    /// 写卡成功: offline debit written to the card (R-P5.6, R-P5.7).
    Written,
    /// 中途拔卡: the card was pulled and the operator cancelled; the card was not debited (R-P5.8).
    CardPulled,
    /// The transaction was refused (e.g. full-online mode and no host); no money moved.
    Failed,
}

impl RecordStatus {
    /// Every status, in wire order (the wire value is the 1-based position).
    pub const ALL: [RecordStatus; 7] = [
        RecordStatus::Initiated,
        RecordStatus::NotWritten,
        RecordStatus::Success,
        RecordStatus::Debited,
        RecordStatus::Written,
        RecordStatus::CardPulled,
        RecordStatus::Failed,
    ];

    /// Whether the card was written for this record: money left it (a debit) or reached it
    /// (a reversal, a load).
    pub const fn card_debited(self) -> bool {
        matches!(
            self,
            RecordStatus::Success | RecordStatus::Debited | RecordStatus::Written
        )
    }
}

/// A terminal transaction record (流水), as journalled, uploaded and booked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub device: PhysicalId,
    pub serial: TerminalSerial,
    pub kind: RecordKind,
    pub status: RecordStatus,
    /// Authorised online by the host (R-P5.2) rather than verified by the terminal alone.
    pub online: bool,
    pub card_type: CardType,
    pub card_no: CardNo,
    /// The card's lifetime transaction counter before this transaction (R-H5).
    pub card_counter: u32,
    /// The wallet the terminal read and wrote (R-F4.4).
    pub wallet_no: u8,
    pub balance_before: Fen,
    /// The consumption amount, fee excluded.
    pub amount: Fen,
    /// The fee by permission class (R-F4.13), debited together with the amount.
    pub fee: Fen,
    pub balance_after: Fen,
    /// The terminal's clock when the transaction began.
    pub time: NaiveDateTime,
    pub merchant_no: MerchantNo,
    /// For a cancellation or reversal: the serial of the record it undoes.
    pub original_serial: Option<TerminalSerial>,
    /// The item code in keyboard-coded mode (R-F4.10), 0 otherwise.
    pub item_code: u16,
    /// The CPU card's transaction authentication code; 0 for MF1.
    pub tac: u32,
}

/// Terminal work modes, set by hand or by the host (R-F4.18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkMode {
    /// 完全联机: every transaction online, never offline.
    FullOnline,
    /// 自动联机: online, falling back to offline by itself while the host is unreachable.
    Auto,
    /// 脱机: the terminal verifies cards itself and uploads records afterwards.
    Offline,
}

/// Consumption modes (R-F4.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsumptionMode {
    /// 单价: the operator keys the amount.
    UnitPrice,
    /// 定额: every tap charges `TerminalParams::fixed_amount`.
    FixedAmount,
    /// 键盘编码: the operator keys an item code; the price comes from the price list.
    Coded,
}

/// One entry of the price list for keyboard-coded mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceItem {
    pub code: u16,
    pub price: Fen,
    /// The accounting subject (科目) reports group by (R-F4.14); 0 when none.
    pub subject: u16,
}

/// The set of card permission classes allowed on a terminal (R-F4.5): 256 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassSet(pub [u8; 32]);

impl ClassSet {
    pub const ALL: ClassSet = ClassSet([0xFF; 32]);
    pub const NONE: ClassSet = ClassSet([0; 32]);

    pub const fn contains(&self, class: u8) -> bool {
        self.0[(class / 8) as usize] & (1 << (class % 8)) != 0
    }

    pub fn insert(&mut self, class: u8) {
        self.0[(class / 8) as usize] |= 1 << (class % 8);
    }

    pub fn remove(&mut self, class: u8) {
        self.0[(class / 8) as usize] &= !(1 << (class % 8));
    }
}

/// A working-hours window (R-H1, code 27); `start > end` spans midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Everything of chapter 4 the host can download to a terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalParams {
    /// Increases with every change the host makes, so a terminal knows when to fetch again.
    pub version: u32,
    pub work_mode: WorkMode,
    pub consumption_mode: ConsumptionMode,
    pub fixed_amount: Fen,
    pub price_list: Vec<PriceItem>,
    pub allowed_classes: ClassSet,
    /// Fee rate in percent (0–100) for each permission class (R-F4.13).
    pub fee_rates: [u8; 256],
    /// A card whose balance is above this is refused (R-F4.8).
    pub max_balance: Fen,
    /// A card whose balance is below this is refused (R-F4.9).
    pub min_balance: Fen,
    /// Uses per card per day on this terminal (R-F4.7); 0 = no limit.
    pub max_daily_uses: u16,
    /// Amount at or above which the card password is asked (R-F4.11); 0 = never.
    pub single_password_threshold: Fen,
    /// Daily cumulative amount at or above which the card password is asked (R-F4.12); 0 = never.
    pub daily_password_threshold: Fen,
    /// The wallet the terminal reads and writes (R-F4.4).
    pub wallet_no: u8,
    /// Hours offline after which transactions are refused (R-F4.18); 0 = no limit.
    pub max_offline_hours: u16,
    /// Empty = always working.
    pub working_hours: Vec<WorkingHours>,
    /// The functions that run only after an operator card (授权卡) and its PIN were checked
    /// (R-B11); the block's last byte, absent (= none) in blocks stored before it existed.
    pub operator_card: crate::messages::AuthFunctions,
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 18.2: a physical ID is exactly 8 hex digits; `+1+2+3+4` is not `01020304`.
    #[test]
    fn physical_id_text_is_eight_hex_digits() {
        let id: Result<PhysicalId, _> = "A1b2C3d4".parse();
        assert_eq!(id, Ok(PhysicalId([0xA1, 0xB2, 0xC3, 0xD4])));
        assert_eq!(PhysicalId([0xA1, 0xB2, 0xC3, 0xD4]).to_string(), "A1B2C3D4");
        for bad in [
            "+1+2+3+4",
            "0102030",
            "010203040",
            "0x010203",
            " 1020304",
            "0102030g",
        ] {
            assert!(bad.parse::<PhysicalId>().is_err(), "{bad:?} accepted");
        }
    }
}
