//! The host's entities: front-end processors, merchants, devices, cards and their lifecycles.

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::{CardNo, DisplayNo, Fen, MerchantNo, PhysicalId, ReturnCode, TerminalParams};

use crate::error::{HostError, Result};

/// Defines a status enum stored as text, with its return code when it forbids use.
macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal => $code:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// The return code a request meets in this state; `None` when use is allowed.
            pub const fn refusal(self) -> Option<ReturnCode> {
                match self { $($name::$variant => $code,)* }
            }

            pub fn parse(s: &str) -> Result<$name> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(HostError::Corrupt(format!(concat!(stringify!($name), " {:?}"), other))),
                }
            }
        }
    };
}

status_enum! {
    /// A front-end processor's lifecycle (R-H7, codes 10–13).
    FepStatus {
        Registered = "registered" => Some(ReturnCode::FEP_NOT_ACTIVATED),
        Activated = "activated" => None,
        Deregistered = "deregistered" => Some(ReturnCode::FEP_DEREGISTERED),
    }
}

status_enum! {
    /// A device's lifecycle (R-H1, codes 22–24).
    DeviceStatus {
        Registered = "registered" => Some(ReturnCode::POS_NOT_ENABLED),
        Enabled = "enabled" => None,
        Disabled = "disabled" => Some(ReturnCode::POS_DISABLED),
        Deregistered = "deregistered" => Some(ReturnCode::POS_DEREGISTERED),
    }
}

status_enum! {
    /// A merchant's lifecycle (R-H3, codes 41, 43).
    MerchantStatus {
        Normal = "normal" => None,
        // 止付: the account takes no more money.
        Stopped = "stopped" => Some(ReturnCode::MERCHANT_ACCOUNT_STOPPED),
        Deregistered = "deregistered" => Some(ReturnCode::MERCHANT_DEREGISTERED),
        // 账户异常 (R-B8): its ledger account failed its own check (negative, or its balance
        // is not the sum of its transfers), found by `merchants::check_accounts` or booked
        // negative by a cancellation; finance clears it by setting it normal again.
        Abnormal = "abnormal" => Some(ReturnCode::MERCHANT_ACCOUNT_ABNORMAL),
    }
}

/// What a merchant is (R-B8): it decides which trades fit it (code 42).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MerchantKind {
    /// 食堂: sales.
    Canteen,
    /// 商店: sales.
    Shop,
    /// 充值点: top-ups only.
    TopUpAgent,
    /// 综合: sales and top-ups (merchants from before types existed, and the card office).
    General,
}

/// A trade a terminal asks the host for, as its merchant's type sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trade {
    /// A debit of a card (sale) or its reversal.
    Sale,
    /// Money onto a card for cash or a bank transfer.
    TopUp,
    /// Picking up money that waits for the card: any merchant's terminal may hand it out.
    Pickup,
}

impl MerchantKind {
    pub const ALL: [MerchantKind; 4] = [
        MerchantKind::Canteen,
        MerchantKind::Shop,
        MerchantKind::TopUpAgent,
        MerchantKind::General,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MerchantKind::Canteen => "canteen",
            MerchantKind::Shop => "shop",
            MerchantKind::TopUpAgent => "topup-agent",
            MerchantKind::General => "general",
        }
    }

    pub fn parse(s: &str) -> Result<MerchantKind> {
        MerchantKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| HostError::Invalid(format!("unknown merchant type {s:?}")))
    }

    /// Whether this type of merchant takes `trade` (the one rule behind code 42).
    pub const fn takes(self, trade: Trade) -> bool {
        match (self, trade) {
            (_, Trade::Pickup) | (MerchantKind::General, _) => true,
            (MerchantKind::TopUpAgent, Trade::TopUp) => true,
            (MerchantKind::TopUpAgent, Trade::Sale) => false,
            (MerchantKind::Canteen | MerchantKind::Shop, Trade::Sale) => true,
            (MerchantKind::Canteen | MerchantKind::Shop, Trade::TopUp) => false,
        }
    }
}

/// The largest commission rate: 100 % in basis points.
pub const MAX_COMMISSION_BP: u16 = 10_000;

status_enum! {
    /// A card's lifecycle (R-H4, codes 51–57; expiry is a date, code 56, checked apart).
    CardStatus {
        Normal = "normal" => None,
        Lost = "lost" => Some(ReturnCode::CARD_LOST),
        Frozen = "frozen" => Some(ReturnCode::CARD_FROZEN),
        Bad = "bad" => Some(ReturnCode::CARD_BAD),
        Locked = "locked" => Some(ReturnCode::CARD_LOCKED),
        Disabled = "disabled" => Some(ReturnCode::CARD_DISABLED),
        Cancelled = "cancelled" => Some(ReturnCode::CARD_CANCELLED),
    }
}

/// What a device may do (R-H1, code 28): a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Functions(pub u32);

impl Functions {
    pub const ONLINE_DEBIT: Functions = Functions(1);
    pub const OFFLINE_UPLOAD: Functions = Functions(1 << 1);
    pub const REVERSAL: Functions = Functions(1 << 2);
    /// Top-ups (充值, docs/loads.md): a top-up device or the card office's writer. Not in
    /// `ALL`, the functions of a POS: the card office grants it per device.
    pub const TOP_UP: Functions = Functions(1 << 3);
    pub const ALL: Functions = Functions(0b111);
    pub const NONE: Functions = Functions(0);

    pub const fn contains(self, f: Functions) -> bool {
        self.0 & f.0 == f.0
    }
}

/// The MAC suite a device's messages use (R-C6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacSuite {
    Aes128Cmac = 1,
    Sm4Cmac = 2,
}

impl MacSuite {
    pub fn from_code(c: i64) -> Result<MacSuite> {
        match c {
            1 => Ok(MacSuite::Aes128Cmac),
            2 => Ok(MacSuite::Sm4Cmac),
            other => Err(HostError::Corrupt(format!("MAC suite {other}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fep {
    pub id: u32,
    pub name: String,
    pub status: FepStatus,
    /// When the FEP last signed in (code 12 until it has).
    pub signed_in_at: Option<NaiveDateTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub no: MerchantNo,
    pub name: String,
    pub status: MerchantStatus,
    pub kind: MerchantKind,
    /// Commission (管理费) on a payout's gross, in basis points (0..=10000).
    pub commission_bp: u16,
}

/// The last status a terminal reported (R-F4.20), for monitoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceReport {
    pub at: NaiveDateTime,
    pub pending_records: u32,
    pub terminal_clock: NaiveDateTime,
    pub blacklist_version: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: PhysicalId,
    pub terminal_no: u32,
    /// `None`: no merchant assigned (code 26).
    pub merchant_no: Option<MerchantNo>,
    pub status: DeviceStatus,
    /// The terminal master key; `None` until the device is authorised (code 29).
    pub master_key: Option<[u8; 16]>,
    pub mac_suite: MacSuite,
    pub functions: Functions,
    /// Per-transaction amount limit (code 71); 0 = none.
    pub max_amount: Fen,
    /// Parameters with their version; working hours and allowed classes live here.
    pub params: TerminalParams,
    pub last_report: Option<DeviceReport>,
}

impl Device {
    /// The accounting subject (科目, R-F4.14) of a record this device makes with `item_code`,
    /// from its current price list: `None` when the item code is 0, not in the list, or its
    /// item carries subject 0 (none).
    pub fn subject_of(&self, item_code: u16) -> Option<u16> {
        if item_code == 0 {
            return None;
        }
        self.params
            .price_list
            .iter()
            .find(|i| i.code == item_code)
            .map(|i| i.subject)
            .filter(|&s| s != 0)
    }
}

/// What is needed to register a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDevice {
    pub id: PhysicalId,
    pub terminal_no: u32,
    pub merchant_no: Option<MerchantNo>,
    pub mac_suite: MacSuite,
    pub functions: Functions,
    pub max_amount: Fen,
    pub params: TerminalParams,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub no: CardNo,
    pub display_no: DisplayNo,
    pub status: CardStatus,
    /// Permission class (R-F4.5).
    pub class: u8,
    pub expiry: NaiveDate,
    /// The system's mirror of the card's balance = the card account's balance.
    pub balance: Fen,
    /// The lowest lifetime counter a record may carry (the counter at issue).
    pub counter_floor: u32,
    /// The counter the next transaction is expected to carry (highest seen + 1).
    pub counter_next: u32,
    /// How many counters in `counter_floor..counter_next` booked records used; fewer than
    /// the span means records are missing (info code 4).
    pub counters_used: u32,
    /// Money waiting for the card (deposits, subsidies) and not claimed by a pick-up: the sum
    /// of its waiting loads (`domain::loads`); above 0 an online debit answers info code 2.
    /// Written only by `domain::loads`, never by `repo::card_update`.
    pub waiting: Fen,
    /// The card's subsidy sequence as the host counts it: pick-ups posted onto it, modulo
    /// 2^16 as the card counts them (code 63).
    pub subsidy_seq: u16,
    /// Loads authorised for the card and not yet posted or voided: only then may one of its
    /// records settle one (docs/loads.md), so a card without any costs no extra query.
    pub loads_pending: u32,
}

/// What is needed to issue a card; the card number is generated (R-T2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCard {
    pub display_no: DisplayNo,
    pub class: u8,
    pub expiry: NaiveDate,
    /// The card's lifetime counter as issued (usually 0).
    pub counter: u32,
}

/// Host-wide thresholds for information codes and counter checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Info 1 when the balance after the debit is below this.
    pub low_balance: Fen,
    /// Info 3 when the card expires within this many days.
    pub expiry_warning_days: u32,
    /// A counter more than this above the highest seen is impossible (code 62).
    pub max_counter_jump: u32,
    /// At most this many records are requested for collection at a time (R-F4.17).
    pub max_collect: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            low_balance: 1_000,
            expiry_warning_days: 30,
            max_counter_jump: 1_000,
            max_collect: 10,
        }
    }
}
