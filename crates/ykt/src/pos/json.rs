//! The headless driver's language (`docs/pos-script.md`): commands in, one JSON object per
//! line out for every output of the core, every frame sent and received, link and card
//! changes.

use serde::Deserialize;
use serde_json::{Value, json};
use ykt_card::{Fault, TearOutcome};
use ykt_proto::{MsgType, RawFrame};
use ykt_terminal::{Beep, Event, Key, Output};

use super::driver::PlannedFault;

/// One line of a script.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    PowerOn,
    PowerOff,
    Key {
        key: String,
    },
    /// Digits keyed one after the other (a PIN, an item code).
    Type {
        digits: String,
    },
    /// The amount in fen, keyed as digits, then 确认.
    Amount {
        fen: u64,
    },
    /// A PIN (the card's or the operator card's) keyed as digits, then 确认.
    Pin {
        digits: String,
    },
    /// The operator card (授权卡, R-B11) at 请刷授权卡: its image placed, its PIN keyed and
    /// confirmed, the card taken off again.
    Authorise {
        file: String,
        pin: String,
    },
    Place {
        file: String,
        #[serde(default)]
        fault: Option<FaultSpec>,
    },
    Remove,
    Advance {
        ms: u64,
    },
    SetClock {
        time: String,
    },
    Net {
        up: bool,
    },
    Status,
    Wait(WaitSpec),
    Quit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// 0 = the first card operation after the card is placed.
    pub op: u64,
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    #[serde(rename = "for")]
    pub what: String,
    /// `screen`: a substring of one screen line.
    #[serde(default)]
    pub text: Option<String>,
    /// `event` (or `line`): every field given must be equal in the output line.
    #[serde(default, rename = "match")]
    pub pattern: Option<Value>,
    /// `link`: up or down.
    #[serde(default)]
    pub up: Option<bool>,
    /// `pending`: the number of records not yet uploaded.
    #[serde(default)]
    pub count: Option<usize>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::PowerOn => "power_on",
            Command::PowerOff => "power_off",
            Command::Key { .. } => "key",
            Command::Type { .. } => "type",
            Command::Amount { .. } => "amount",
            Command::Pin { .. } => "pin",
            Command::Authorise { .. } => "authorise",
            Command::Place { .. } => "place",
            Command::Remove => "remove",
            Command::Advance { .. } => "advance",
            Command::SetClock { .. } => "set_clock",
            Command::Net { .. } => "net",
            Command::Status => "status",
            Command::Wait(_) => "wait",
            Command::Quit => "quit",
        }
    }
}

pub fn parse_key(name: &str) -> Result<Key, String> {
    let key = match name {
        "enter" => Key::Enter,
        "cancel" => Key::Cancel,
        "sign_in" => Key::SignIn,
        "stats" => Key::Stats,
        "reversal" => Key::Reversal,
        "mode" => Key::Mode,
        "reset_offline" => Key::ResetOffline,
        d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => Key::Digit(d.as_bytes()[0] - b'0'),
        other => return Err(format!("unknown key {other:?}")),
    };
    Ok(key)
}

pub fn digits(s: &str) -> Result<Vec<Key>, String> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("digits: 1 to 32 characters 0-9".into());
    }
    Ok(s.bytes().map(|b| Key::Digit(b - b'0')).collect())
}

pub fn parse_fault(f: &FaultSpec) -> Result<PlannedFault, String> {
    let fault = match f.kind.as_str() {
        "tear_old" => Fault::Tear(TearOutcome::Old),
        "tear_new" => Fault::Tear(TearOutcome::New),
        "garbage" => Fault::Tear(TearOutcome::Garbage),
        "fail_before" => Fault::FailBefore,
        "removed_after" => Fault::RemovedAfter,
        "ack_lost" => Fault::AckLost,
        other => return Err(format!("unknown fault kind {other:?}")),
    };
    if f.op > 10_000 {
        return Err("fault op: at most 10000".into());
    }
    Ok(PlannedFault { op: f.op, fault })
}

/// `FooBar` → `foo_bar`, for enum names in the output.
pub fn snake(debug: &str) -> String {
    let mut s = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn beep_name(b: Beep) -> &'static str {
    match b {
        Beep::Ok => "ok",
        Beep::Error => "error",
        Beep::Continuous => "continuous",
        Beep::Stop => "stop",
    }
}

/// The message type of one frame, from its clear header: `debit`, `upload_response`, ….
pub fn frame_type(frame: &[u8]) -> String {
    match RawFrame::parse(frame) {
        Ok(raw) => {
            let name = MsgType::from_wire(raw.header.msg_type).map_or_else(
                || format!("0x{:02x}", raw.header.msg_type),
                |t| snake(&format!("{t:?}")),
            );
            if raw.header.is_response() {
                format!("{name}_response")
            } else {
                name
            }
        }
        Err(_) => "malformed".into(),
    }
}

/// The JSON line of one core output; `None` for timers (internal).
pub fn output(o: &Output) -> Option<Value> {
    Some(match o {
        Output::Screen(s) => json!({"screen": s.lines, "hold_ms": s.hold_ms}),
        Output::Beep(b) => json!({"beep": beep_name(*b)}),
        Output::Send(bytes) => json!({"sent": frame_type(bytes), "bytes": bytes.len()}),
        Output::SetTimer(_) => return None,
        Output::Reconnect => json!({"reconnect": true}),
        Output::Event(e) => event(e),
    })
}

fn event(e: &Event) -> Value {
    match e {
        Event::SignedIn { merchant_no } => {
            json!({"event": "signed_in", "merchant_no": merchant_no})
        }
        Event::SignInFailed { code } => {
            json!({"event": "sign_in_failed", "code": code.map(|c| c.0)})
        }
        Event::Record {
            serial,
            kind,
            status,
            amount,
            fee,
            subject,
        } => json!({
            "event": "record", "serial": serial, "kind": snake(&format!("{kind:?}")),
            "status": snake(&format!("{status:?}")), "amount": amount, "fee": fee,
            "subject": subject,
        }),
        Event::Uploaded { serial } => json!({"event": "uploaded", "serial": serial}),
        Event::UploadRejected { serial, code } => {
            json!({"event": "upload_rejected", "serial": serial, "code": code.0})
        }
        Event::Refused { code, text } => {
            json!({"event": "refused", "code": code.map(|c| c.0), "text": text})
        }
        Event::WriteFailed { serial, error } => {
            json!({"event": "write_failed", "serial": serial, "error": error})
        }
        Event::ModeChanged(m) => {
            json!({"event": "mode_changed", "mode": snake(&format!("{m:?}"))})
        }
        Event::Online(on) => json!({"event": "online", "online": on}),
        Event::BlacklistUpdated { version } => {
            json!({"event": "blacklist_updated", "version": version})
        }
        Event::ParamsUpdated { version } => json!({"event": "params_updated", "version": version}),
        Event::ClockSet => json!({"event": "clock_set"}),
        Event::CardLocked { card_no } => json!({"event": "card_locked", "card_no": card_no}),
        Event::StorageFailed(err) => json!({"event": "storage_failed", "error": err}),
        Event::ProtocolError(err) => json!({"event": "protocol_error", "error": err}),
    }
}

/// Whether every field of `pattern` is equal in `line` (objects compared recursively).
pub fn matches(pattern: &Value, line: &Value) -> bool {
    match (pattern, line) {
        (Value::Object(p), Value::Object(l)) => p
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| matches(v, lv))),
        _ => pattern == line,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn commands_parse_and_unknown_ones_are_refused() {
        let c: Command = serde_json::from_str(r#"{"cmd":"amount","fen":1250}"#).unwrap();
        assert!(matches!(c, Command::Amount { fen: 1250 }));
        let c: Command = serde_json::from_str(
            r#"{"cmd":"place","file":"a.mf1","fault":{"op":3,"kind":"tear_old"}}"#,
        )
        .unwrap();
        let Command::Place { fault: Some(f), .. } = c else {
            panic!()
        };
        assert!(matches!(
            parse_fault(&f).unwrap().fault,
            Fault::Tear(TearOutcome::Old)
        ));
        let c: Command =
            serde_json::from_str(r#"{"cmd":"wait","for":"screen","text":"签到成功"}"#).unwrap();
        assert!(matches!(c, Command::Wait(WaitSpec { text: Some(_), .. })));
        assert!(serde_json::from_str::<Command>(r#"{"cmd":"fly"}"#).is_err());
        assert_eq!(parse_key("7").unwrap(), Key::Digit(7));
        assert!(parse_key("77").is_err());
        assert!(digits("12a").is_err());
        assert_eq!(snake("CardPulled"), "card_pulled");
    }

    #[test]
    fn subset_matching() {
        let line = json!({"event":"record","serial":3,"status":"success","amount":100});
        assert!(matches(
            &json!({"event":"record","status":"success"}),
            &line
        ));
        assert!(!matches(
            &json!({"event":"record","status":"failed"}),
            &line
        ));
        assert!(!matches(&json!({"nope":1}), &line));
    }
}
