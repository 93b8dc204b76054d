//! What goes into the terminal core and what comes out: plain values, no closures, so that a
//! TUI, a headless JSON driver or a test can drive it (`docs/terminal.md`).

use ykt_proto::{MerchantNo, RecordKind, RecordStatus, ReturnCode, TerminalSerial, WorkMode};

/// A key of the POS keypad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// 0–9.
    Digit(u8),
    /// 确认.
    Enter,
    /// 取消: clears the entry; ends a re-tap prompt once 60 s have passed (R-P5.5, R-P5.8).
    Cancel,
    /// 手工签到 (R-P5.1).
    SignIn,
    /// 统计: today's and yesterday's totals (R-F4.22).
    Stats,
    /// 冲正: reverse the last debit of the next card tapped (MF1).
    Reversal,
    /// 模式: cycle the work mode full online → auto → offline (R-F4.18).
    Mode,
    /// 清脱机时间: reset the offline-time counter by hand (R-F4.18).
    ResetOffline,
}

/// One thing that happened to the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Key(Key),
    /// A card entered the reader's field; the core reads it through the reader it is given.
    CardPresent,
    /// The card left the field.
    CardRemoved,
    /// Bytes received from the host connection (any split; frames are reassembled inside).
    FromHost(Vec<u8>),
    /// The connection to the front-end processor is up (a new connection: sign in again).
    LinkUp,
    /// The connection is down.
    LinkDown,
    /// Time passed; `now_ms` comes with every input.
    Tick,
}

/// Beeper patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Beep {
    /// One short beep: success.
    Ok,
    /// Two short beeps: refusal or error.
    Error,
    /// Beep without pause until `Stop`: ask for the card again (R-P5.4, R-P5.7).
    Continuous,
    Stop,
}

/// The screen's content. `hold_ms` is how long it stays before the core shows the idle
/// screen again (`None`: until the next change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screen {
    pub lines: Vec<String>,
    pub hold_ms: Option<u64>,
}

/// What observers (logs, the headless driver's JSON lines) may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    SignedIn {
        merchant_no: MerchantNo,
    },
    SignInFailed {
        code: Option<ReturnCode>,
    },
    /// A record was journalled or changed status (synced before this is emitted).
    Record {
        serial: TerminalSerial,
        kind: RecordKind,
        status: RecordStatus,
        amount: i64,
        fee: i64,
        /// The accounting subject of the price-list item (R-F4.14), 0 when none.
        subject: u16,
    },
    /// The host acknowledged a record.
    Uploaded {
        serial: TerminalSerial,
    },
    /// The host refused a record for good (not a retryable code); it is kept in the journal
    /// but no longer resent.
    UploadRejected {
        serial: TerminalSerial,
        code: ReturnCode,
    },
    /// A transaction was refused; `code` when the spec's table has one.
    Refused {
        code: Option<ReturnCode>,
        text: String,
    },
    /// The card write of a journalled record failed: re-tap prompt (R-P5.4, R-P5.7).
    WriteFailed {
        serial: TerminalSerial,
        error: String,
    },
    ModeChanged(WorkMode),
    /// Online = a session with the host exists and online verification is on.
    Online(bool),
    BlacklistUpdated {
        version: u32,
    },
    ParamsUpdated {
        version: u32,
    },
    ClockSet,
    /// The card was locked (R-F4.15, R-P5.2).
    CardLocked {
        card_no: u32,
    },
    /// Storage failed: the terminal halts until it is powered up again.
    StorageFailed(String),
    /// A frame from the host was refused (bad MAC, replay, malformed …).
    ProtocolError(String),
}

/// One instruction to the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Screen(Screen),
    Beep(Beep),
    /// A sealed frame to write to the host connection.
    Send(Vec<u8>),
    /// Call `handle(Input::Tick, …)` at this monotonic time (ms) at the latest.
    SetTimer(u64),
    /// The byte stream from the host is unusable (bad framing): close the connection and
    /// connect again (then `LinkUp`).
    Reconnect,
    Event(Event),
}
