//! Operator authorisation (授权卡, R-B11): a function the device parameters protect
//! (`TerminalParams::operator_card`) runs only after an operator card was tapped, its PIN
//! keyed and the host answered 0 to the check 0x0A (`docs/terminal.md`, "Operator cards").
//!
//! The step is [`Authorising`]: waiting for the card, for the PIN, for the host. Each
//! transition asserts the state it leaves. Its deadlines are `Timer::AuthStep` (the operator
//! takes too long) and `Timer::AuthReply` (the host does not answer).
//!
//! The card: a card of our MF1 application; the operator data in its block 8
//! (`ykt_card::app::operator`) name the authorisation card's number, else its card number is
//! taken as that number. With a session the host decides (0x0A); without one the card does,
//! from what it carries (`checks::check_operator_card`: 80, 85, 86, 88, 89).

use ykt_card::Reader;
use ykt_card::app::CardRead;
use ykt_card::app::operator::OperatorData;
use ykt_proto::messages::{AuthCheckRequest, AuthCheckResponse, AuthFunction, Message};
use ykt_proto::{Pin, ReturnCode};

use super::checks::check_operator_card;
use super::io::Key;
use super::{Beep, Event, INFO_HOLD_MS, Output, Res, Terminal, Timer, texts};
use crate::storage::flash::Flash;

/// How long the operator has to tap the card and key the PIN.
pub const AUTH_STEP_MS: u64 = 30_000;
/// How long the host has to answer a check (one attempt: a check is never sent twice).
pub const AUTH_REPLY_MS: u64 = 2_000;

/// Where the authorisation of one protected function stands.
#[derive(Debug, Default)]
pub(super) enum Authorising {
    /// No protected function is asked for.
    #[default]
    Inactive,
    /// 请刷授权卡: the operator card is awaited.
    AwaitCard { function: AuthFunction },
    /// 请输入授权卡密码: the card was read, its PIN is keyed.
    Pin {
        function: AuthFunction,
        card_no: u32,
        digits: String,
        card: Box<OperatorTap>,
    },
    /// The check 0x0A is sent; `seq` is its sequence number.
    AwaitHost {
        function: AuthFunction,
        card_no: u32,
        seq: u32,
    },
}

/// The operator card as read: for the offline check (its dates, functions, PIN data).
#[derive(Debug)]
pub(super) struct OperatorTap {
    read: CardRead,
    data: Option<OperatorData>,
}

impl Authorising {
    pub(super) fn is_active(&self) -> bool {
        !matches!(self, Authorising::Inactive)
    }
}

/// The protected function a key asks for.
pub(super) fn function_of(key: Key) -> Option<AuthFunction> {
    match key {
        Key::SignIn => Some(AuthFunction::ManualSignIn),
        Key::Mode => Some(AuthFunction::WorkModeChange),
        Key::Reversal => Some(AuthFunction::Reversal),
        Key::Stats => Some(AuthFunction::Statistics),
        Key::ResetOffline => Some(AuthFunction::ClearOfflineTime),
        _ => None,
    }
}

impl<F: Flash> Terminal<F> {
    /// Whether the device parameters make `function` wait for an operator card.
    pub(super) fn needs_operator_card(&self, function: AuthFunction) -> bool {
        self.params()
            .is_some_and(|p| p.operator_card.contains(function))
    }

    /// Inactive → AwaitCard: the protected `function` was asked for.
    pub(super) fn start_authorising(&mut self, function: AuthFunction) {
        assert!(!self.auth.is_active(), "authorisation already under way");
        self.auth = Authorising::AwaitCard { function };
        self.timers
            .set(Timer::AuthStep, self.now.saturating_add(AUTH_STEP_MS));
        self.timers.clear(Timer::ScreenHold);
        self.refresh_screen();
    }

    /// The lines of the authorisation step, when one is under way.
    pub(super) fn auth_lines(&self) -> Option<Vec<String>> {
        match &self.auth {
            Authorising::Inactive => None,
            Authorising::AwaitCard { .. } => Some(vec![texts::TAP_AUTH_CARD.into()]),
            Authorising::Pin { digits, .. } => {
                Some(vec![texts::ENTER_AUTH_PIN.into(), "*".repeat(digits.len())])
            }
            Authorising::AwaitHost { .. } => Some(vec![texts::WAITING_HOST.into()]),
        }
    }

    /// A key while authorising: digits and 确认 for the PIN, 取消 ends the step.
    pub(super) fn auth_key(&mut self, key: Key, reader: &mut dyn Reader) -> Res {
        match (&mut self.auth, key) {
            (_, Key::Cancel) => {
                self.end_authorising();
                self.refresh_screen();
            }
            (Authorising::Pin { digits, .. }, Key::Digit(d)) => {
                if digits.len() < Pin::MAX_DIGITS && d < 10 {
                    digits.push(char::from(b'0' + d));
                }
                self.refresh_screen();
            }
            (Authorising::Pin { .. }, Key::Enter) => return self.send_auth_check(reader),
            _ => {}
        }
        Ok(())
    }

    /// AwaitCard → Pin: the operator card on the reader is read.
    pub(super) fn auth_card(&mut self, reader: &mut dyn Reader) -> Res {
        let Authorising::AwaitCard { function } = self.auth else {
            return Ok(());
        };
        let read = self
            .app()
            .read(reader, self.wallet_no())
            .and_then(|c| Ok((self.app().read_operator(reader)?, c)));
        let (data, read) = match read {
            Ok(r) => r,
            Err(_) => {
                self.push(Output::Beep(Beep::Error));
                self.flash_text(vec![texts::CARD_READ_FAILED.into()], INFO_HOLD_MS);
                return Ok(());
            }
        };
        let card_no = data.map_or(read.info.card_no.get(), |d| d.auth_card_no);
        self.auth = Authorising::Pin {
            function,
            card_no,
            digits: String::new(),
            card: Box::new(OperatorTap { read, data }),
        };
        self.refresh_screen();
        Ok(())
    }

    /// Pin → Inactive without a session: the card decides from what it carries (R-B11).
    fn check_offline(&mut self, function: AuthFunction, reader: &mut dyn Reader, pin: &Pin) -> Res {
        let Authorising::Pin { card, .. } = std::mem::take(&mut self.auth) else {
            unreachable!("check_offline outside Pin");
        };
        self.end_authorising();
        let today = self.wall().date();
        let app = self.app();
        let verdict = check_operator_card(card.data.as_ref(), today, function, || {
            app.verify_pin(&card.read, pin.as_str())
        });
        match verdict {
            Ok(()) => self.run_protected(function, reader),
            Err(code) => {
                self.refuse(Some(code), code.screen_text());
                Ok(())
            }
        }
    }

    /// Pin → AwaitHost: the check 0x0A goes out with the PIN under the session's PIN key.
    fn send_auth_check(&mut self, reader: &mut dyn Reader) -> Res {
        let Authorising::Pin {
            function,
            card_no,
            digits,
            ..
        } = &mut self.auth
        else {
            unreachable!("send_auth_check outside Pin");
        };
        let (function, card_no) = (*function, *card_no);
        let Some(pin) = Pin::new(digits) else {
            // Not 4–12 digits: keyed again.
            digits.clear();
            self.push(Output::Beep(Beep::Error));
            self.refresh_screen();
            return Ok(());
        };
        if self.link.conn.session().is_none() {
            return self.check_offline(function, reader, &pin);
        }
        self.auth_nonce = self.auth_nonce.wrapping_add(1);
        let nonce = self.auth_nonce;
        let Some(pin_block) = self
            .link
            .conn
            .session()
            .map(|s| s.seal_pin(card_no, nonce, &pin))
        else {
            self.end_authorising();
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        };
        let msg = Message::AuthCheckRequest(AuthCheckRequest {
            card_no,
            function,
            time: self.wall(),
            nonce,
            pin_block,
        });
        let Some(seq) = self.send(&msg, 0) else {
            self.end_authorising();
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        };
        self.auth = Authorising::AwaitHost {
            function,
            card_no,
            seq,
        };
        self.timers
            .set(Timer::AuthReply, self.now.saturating_add(AUTH_REPLY_MS));
        self.refresh_screen();
        Ok(())
    }

    /// Whether the host's message answers the check in flight.
    pub(super) fn auth_awaits(&self, corr: u32) -> bool {
        matches!(self.auth, Authorising::AwaitHost { seq, .. } if seq == corr)
    }

    /// AwaitHost → Inactive: the host answered; 0 runs the function, anything else is
    /// shown as the spec's text of its code.
    pub(super) fn auth_response(&mut self, r: AuthCheckResponse, reader: &mut dyn Reader) -> Res {
        let Authorising::AwaitHost {
            function, card_no, ..
        } = self.auth
        else {
            unreachable!("auth_response outside AwaitHost");
        };
        self.end_authorising();
        if r.code != ReturnCode::SUCCESS {
            self.refuse(Some(r.code), r.code.screen_text());
            return Ok(());
        }
        if r.card_no != card_no || r.function != function {
            self.push(Output::Event(Event::ProtocolError(
                "authorisation answer for another card or function".into(),
            )));
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        }
        self.run_protected(function, reader)
    }

    /// `Timer::AuthReply`: the host did not answer.
    pub(super) fn auth_reply_timed_out(&mut self) {
        if matches!(self.auth, Authorising::AwaitHost { .. }) {
            self.end_authorising();
            self.refuse(None, texts::NOT_ONLINE.into());
        }
    }

    /// `Timer::AuthStep`: the operator took too long (a check in flight keeps its own
    /// deadline).
    pub(super) fn auth_step_timed_out(&mut self) {
        if matches!(
            self.auth,
            Authorising::AwaitCard { .. } | Authorising::Pin { .. }
        ) {
            self.end_authorising();
            self.refresh_screen();
        }
    }

    /// The link went down: a check in flight is lost.
    pub(super) fn auth_link_lost(&mut self) {
        if self.auth.is_active() {
            self.end_authorising();
            self.refuse(None, texts::NOT_ONLINE.into());
        }
    }

    fn end_authorising(&mut self) {
        self.auth = Authorising::Inactive;
        self.timers.clear(Timer::AuthStep);
        self.timers.clear(Timer::AuthReply);
    }
}
