//! The code tables of the spec, chapter 6: transaction return codes (6.1) and
//! information codes (6.2), with their exact Chinese texts.
//!
//! Both are one byte on the wire. Every value 0–255 is accepted: a code the table
//! does not define is shown as 其他错误 with its number (R-C6.1).

use std::borrow::Cow;
use std::fmt;

/// A transaction return code (交易返回码), section 6.1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReturnCode(pub u8);

/// The ranges of section 6.1.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// 0: the transaction succeeded.
    Success,
    /// 1–9: system errors; an online transaction is handled as a timeout and goes offline.
    System,
    /// 10–19: front-end processor errors.
    FrontEnd,
    /// 20–39: POS errors.
    Pos,
    /// 40–49: merchant errors.
    Merchant,
    /// 50–79: card errors.
    Card,
    /// 80–89: operator authorisation card errors.
    AuthCard,
    /// 90–98: online top-up errors.
    TopUp,
    /// 99: other error.
    Other,
    /// 100–255: not used by the spec.
    Unused,
}

macro_rules! return_codes {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        impl ReturnCode {
            $(#[doc = $text] pub const $name: ReturnCode = ReturnCode($code);)*

            /// Every code of the table of section 6.1.3, in order.
            pub const TABLE: &'static [(ReturnCode, &'static str)] = &[$((ReturnCode($code), $text)),*];

            /// The table's text, when the table defines this code.
            pub const fn table_text(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some($text),)*
                    _ => None,
                }
            }

            /// The constant's name (for logs and JSON), when the table defines this code.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

return_codes! {
    SUCCESS = 0, "交易成功";
    SYSTEM_FAILURE = 1, "系统故障";
    NETWORK_FAILURE = 2, "网络故障";
    DATABASE_ERROR = 3, "数据库错误";
    SYSTEM_MAINTENANCE = 8, "系统维护中";
    END_OF_DAY = 9, "系统日终处理中";
    FEP_NOT_REGISTERED = 10, "前置机未注册";
    FEP_NOT_ACTIVATED = 11, "前置机未激活";
    FEP_NOT_SIGNED_IN = 12, "前置机未签到";
    FEP_DEREGISTERED = 13, "前置机已注销";
    FEP_KEY_ERROR = 14, "前置机密钥错";
    FEP_NO_SUCH_FUNCTION = 15, "前置机无此功能";
    POS_NOT_REGISTERED = 20, "POS 未注册";
    POS_NOT_SIGNED_IN = 21, "POS 未签到";
    POS_NOT_ENABLED = 22, "POS 未启用";
    POS_DISABLED = 23, "POS 已停用";
    POS_DEREGISTERED = 24, "POS 已注销";
    POS_TERMINAL_NO_ERROR = 25, "POS 终端号错误";
    POS_NO_MERCHANT = 26, "POS 无指定商户";
    POS_OUTSIDE_WORKING_HOURS = 27, "POS 非工作时间";
    POS_NO_SUCH_FUNCTION = 28, "POS 无此功能";
    POS_NOT_AUTHORISED = 29, "POS 未授权";
    POS_SERIAL_DUPLICATE = 30, "POS 流水号重复";
    RECORD_NOT_FOUND = 31, "流水不存在";
    ALREADY_REVERSED = 32, "交易已冲正";
    FEE_RATE_ERROR = 33, "搭伙费率错误";
    AMOUNT_ERROR = 34, "交易金额错误";
    TRANSACTION_TYPE_ERROR = 35, "交易类型错误";
    POS_MERCHANT_NO_ERROR = 36, "POS 商户号错误";
    SUBSIDY_CANNOT_REVERSE = 37, "有补助不能冲正";
    MERCHANT_NOT_FOUND = 40, "商户号不存在";
    MERCHANT_DEREGISTERED = 41, "商户已注销";
    MERCHANT_TYPE_ERROR = 42, "商户类型错误";
    MERCHANT_ACCOUNT_STOPPED = 43, "商户账户已止付";
    MERCHANT_ACCOUNT_ABNORMAL = 44, "商户账户异常";
    MERCHANT_INSUFFICIENT_BALANCE = 45, "商户余额不足";
    CARD_NOT_FOUND = 50, "卡号不存在";
    CARD_LOST = 51, "卡已挂失";
    CARD_FROZEN = 52, "卡已冻结";
    CARD_BAD = 53, "卡已登记为坏卡";
    CARD_LOCKED = 54, "卡已锁定";
    CARD_DISABLED = 55, "卡已禁用";
    CARD_EXPIRED = 56, "卡已过有效期";
    CARD_CANCELLED = 57, "卡已注销";
    CARD_STATUS_ABNORMAL = 58, "卡状态异常";
    CARD_NO_PERMISSION = 59, "卡无此权限";
    CARD_PASSWORD_WRONG = 60, "卡密码错误";
    CARD_COUNTER_REPEATED = 61, "卡交易次数重复";
    CARD_COUNTER_ABNORMAL = 62, "卡交易次数异常";
    CARD_SUBSIDY_SEQ_ABNORMAL = 63, "卡补助序号异常";
    CARD_INSUFFICIENT_BALANCE = 64, "卡余额不足";
    CARD_OVERDRAWN = 65, "卡已透支";
    CARD_BALANCE_OVER_LIMIT = 66, "卡余额超过限额";
    CARD_BALANCE_ABNORMAL = 67, "卡余额异常";
    CARD_ACCOUNT_INSUFFICIENT = 68, "卡账户余额不足";
    CARD_ACCOUNT_OVERDRAWN = 69, "卡账户已透支";
    CARD_ACCOUNT_ABNORMAL = 70, "卡账户异常";
    AMOUNT_OVER_LIMIT = 71, "消费金额超限";
    AUTH_CARD_NOT_FOUND = 80, "授权卡号不存在";
    AUTH_CARD_LOST = 81, "授权卡已挂失";
    AUTH_CARD_FROZEN = 82, "授权卡已冻结";
    AUTH_CARD_LOCKED = 83, "授权卡已锁定";
    AUTH_CARD_DISABLED = 84, "授权卡已禁用";
    AUTH_CARD_NOT_EFFECTIVE = 85, "授权卡未生效";
    AUTH_CARD_EXPIRED = 86, "授权卡已失效";
    AUTH_CARD_CANCELLED = 87, "授权卡已注销";
    AUTH_CARD_NO_PERMISSION = 88, "授权卡无此权限";
    AUTH_CARD_PASSWORD_WRONG = 89, "授权卡密码错误";
    TOP_UP_LIMIT_REACHED = 90, "充值已达到限额";
    OTHER_ERROR = 99, "其他错误";
}

impl ReturnCode {
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// The range of section 6.1.2 this code falls in.
    pub const fn class(self) -> CodeClass {
        match self.0 {
            0 => CodeClass::Success,
            1..=9 => CodeClass::System,
            10..=19 => CodeClass::FrontEnd,
            20..=39 => CodeClass::Pos,
            40..=49 => CodeClass::Merchant,
            50..=79 => CodeClass::Card,
            80..=89 => CodeClass::AuthCard,
            90..=98 => CodeClass::TopUp,
            99 => CodeClass::Other,
            _ => CodeClass::Unused,
        }
    }

    /// Codes 1–9: an online transaction that meets one is handled like a timeout and
    /// goes offline "so that it can succeed" (6.1.2, R-P5.3).
    pub const fn is_handled_as_timeout(self) -> bool {
        matches!(self.class(), CodeClass::System)
    }

    /// Codes 51–58: the card's status forbids use; an online terminal locks the card (R-P5.2).
    pub const fn is_card_status_error(self) -> bool {
        matches!(self.0, 51..=58)
    }

    /// The message the terminal shows: the table's text, or 其他错误 with the number for a
    /// code the table does not define (R-C6.1).
    pub fn text(self) -> Cow<'static, str> {
        match self.table_text() {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(format!(
                "{}({})",
                Self::OTHER_ERROR.table_text().unwrap_or(""),
                self.0
            )),
        }
    }

    /// The screen line for this code: `错误：<text>` (6.1.1).
    pub fn screen_text(self) -> String {
        format!("错误：{}", self.text())
    }
}

impl fmt::Debug for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "ReturnCode({} {name})", self.0),
            None => write!(f, "ReturnCode({})", self.0),
        }
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.text())
    }
}

/// An information code (提示信息码), section 6.2: returned with a successful online
/// exchange and shown for 1–2 s after the transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoCode(pub u8);

macro_rules! info_codes {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        impl InfoCode {
            $(#[doc = $text] pub const $name: InfoCode = InfoCode($code);)*

            /// Every code of the table of section 6.2.2, in order.
            pub const TABLE: &'static [(InfoCode, &'static str)] = &[$((InfoCode($code), $text)),*];

            /// The table's text, when the table defines this code.
            pub const fn table_text(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some($text),)*
                    _ => None,
                }
            }

            /// The constant's name (for logs and JSON), when the table defines this code.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

info_codes! {
    NONE = 0, "无提示信息";
    BALANCE_LOW = 1, "卡余额即将用完";
    SUBSIDY_WAITING = 2, "卡有补助未领";
    EXPIRING_SOON = 3, "卡即将过期";
    RECORDS_MISSING = 4, "卡有记录缺失";
    BALANCE_MISMATCH = 5, "卡余额与系统不一致";
    CARD_DATA_NEEDS_FIX = 6, "卡信息需要修正";
    ALREADY_REVERSED = 7, "交易已冲正";
    PURCHASE_RECORD_NOT_FOUND = 8, "消费流水不存在";
    TOP_UP_RECORD_NOT_FOUND = 9, "充值流水不存在";
}

impl InfoCode {
    /// The screen line after a successful transaction: `提示：<text>` (6.2.1), or nothing
    /// for code 0. A code the table does not define shows its number.
    pub fn screen_text(self) -> Option<String> {
        match (self.0, self.table_text()) {
            (0, _) => None,
            (_, Some(text)) => Some(format!("提示：{text}")),
            (n, None) => Some(format!("提示：{n}")),
        }
    }
}

impl fmt::Debug for InfoCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "InfoCode({} {name})", self.0),
            None => write!(f, "InfoCode({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tables themselves are checked against the spec in tests/code_tables.rs.

    // R-C6.1: the ranges of 6.1.2 as functions.
    #[test]
    fn return_code_ranges() {
        assert_eq!(ReturnCode(0).class(), CodeClass::Success);
        for n in 1..=9 {
            assert!(ReturnCode(n).is_handled_as_timeout());
        }
        assert!(!ReturnCode(10).is_handled_as_timeout());
        assert_eq!(ReturnCode(15).class(), CodeClass::FrontEnd);
        assert_eq!(ReturnCode(39).class(), CodeClass::Pos);
        assert_eq!(ReturnCode(45).class(), CodeClass::Merchant);
        assert_eq!(ReturnCode(79).class(), CodeClass::Card);
        assert_eq!(ReturnCode(80).class(), CodeClass::AuthCard);
        assert_eq!(ReturnCode(98).class(), CodeClass::TopUp);
        assert_eq!(ReturnCode(99).class(), CodeClass::Other);
        assert_eq!(ReturnCode(100).class(), CodeClass::Unused);
        assert_eq!(ReturnCode(255).class(), CodeClass::Unused);
        assert!(ReturnCode::CARD_LOST.is_card_status_error());
        assert!(ReturnCode::CARD_STATUS_ABNORMAL.is_card_status_error());
        assert!(!ReturnCode::CARD_NO_PERMISSION.is_card_status_error());
        assert!(!ReturnCode::CARD_NOT_FOUND.is_card_status_error());
    }

    // R-C6.1: screen texts, including codes the table does not define.
    #[test]
    fn return_code_screen_texts() {
        assert_eq!(
            ReturnCode::CARD_INSUFFICIENT_BALANCE.screen_text(),
            "错误：卡余额不足"
        );
        assert_eq!(ReturnCode(150).screen_text(), "错误：其他错误(150)");
        assert_eq!(ReturnCode(4).screen_text(), "错误：其他错误(4)");
        for n in 0..=255u8 {
            assert!(ReturnCode(n).screen_text().starts_with("错误："));
        }
    }

    // R-C6.2: screen texts, including codes the table does not define.
    #[test]
    fn info_code_screen_texts() {
        assert_eq!(
            InfoCode::EXPIRING_SOON.screen_text().as_deref(),
            Some("提示：卡即将过期")
        );
        assert_eq!(InfoCode::NONE.screen_text(), None);
        assert_eq!(InfoCode(42).screen_text().as_deref(), Some("提示：42"));
    }
}
