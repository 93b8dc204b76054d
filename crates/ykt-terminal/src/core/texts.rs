//! Screen texts. The spec's own texts are used exactly (签到成功, 请设置商户号, 错误：…,
//! 提示：…); the others are ours and are listed in `docs/spec-notes.md`.

use ykt_proto::Fen;

pub const WAITING_SIGN_IN: &str = "待签到";
pub const SIGNED_IN: &str = "签到成功";
pub const SET_MERCHANT: &str = "请设置商户号";
pub const ENTER_AMOUNT: &str = "请输入金额";
pub const ENTER_CODE: &str = "请输入编码";
pub const TAP_CARD: &str = "请刷卡";
pub const ENTER_PIN: &str = "请输入卡密码";
pub const WAITING_HOST: &str = "请稍候";
pub const RETAP: &str = "请重新刷卡";
pub const CANCEL_ALLOWED: &str = "可按取消键取消";
pub const CANCEL_NOT_YET: &str = "60秒内不能取消";
pub const CANCELLED: &str = "交易已取消";
pub const TAP_TO_REVERSE: &str = "请刷卡冲正";
pub const NOTHING_TO_REVERSE: &str = "无可冲正交易";
pub const REVERSED: &str = "冲正成功";
pub const OTHER_CARD: &str = "请刷原卡";
pub const RETRY_TRANSACTION: &str = "请重新交易";
pub const JOURNAL_FULL: &str = "流水已满，请上传";
pub const OFFLINE_TOO_LONG: &str = "脱机时间超限";
pub const DAILY_USES_EXCEEDED: &str = "超过当日使用次数";
pub const NO_ITEM: &str = "无此编码";
pub const NO_PARAMS: &str = "无终端参数";
pub const NOT_ONLINE: &str = "联机失败";
pub const STORAGE_FAILED: &str = "存储器故障";
pub const CARD_READ_FAILED: &str = "读卡失败，请重新刷卡";
pub const NO_CPU_REVERSAL: &str = "CPU卡不支持冲正";
pub const OFFLINE_RESET: &str = "脱机时间已清零";
pub const TAP_AUTH_CARD: &str = "请刷授权卡";
pub const ENTER_AUTH_PIN: &str = "请输入授权卡密码";
pub const TOP_UP: &str = "充值";
pub const ENTER_TOP_UP: &str = "请输入充值金额";
pub const TOPPED_UP: &str = "充值成功";
pub const PICK_UP: &str = "领取补助";
pub const PICKED_UP: &str = "领取成功";

/// The amount a pick-up puts on the card.
pub fn pick_up(a: Fen) -> String {
    format!("{PICK_UP}：{}元", yuan(a))
}

pub fn top_up(a: Fen) -> String {
    format!("充值金额：{}元", yuan(a))
}

pub fn yuan(f: Fen) -> String {
    let sign = if f < 0 { "-" } else { "" };
    let a = f.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

pub fn balance(b: Fen) -> String {
    format!("余额：{}元", yuan(b))
}

pub fn amount(a: Fen) -> String {
    format!("金额：{}元", yuan(a))
}

/// The pending-records indicator of R-P5.6, shown until every record is uploaded.
pub fn pending(n: usize) -> String {
    format!("未上传流水：{n}笔")
}

pub fn mode(m: ykt_proto::WorkMode) -> &'static str {
    match m {
        ykt_proto::WorkMode::FullOnline => "完全联机",
        ykt_proto::WorkMode::Auto => "自动联机",
        ykt_proto::WorkMode::Offline => "脱机",
    }
}
