//! The state of the connection to the front-end processor, as one enum: down, signing in,
//! waiting to retry, or up with its session and the background exchange in flight. Each
//! transition names (and in debug builds asserts) the states it may come from. The deadlines
//! of each state are in the timer table; `Terminal::enter` keeps them with their state.

use ykt_proto::{Session, TerminalSerial};

/// What a background exchange asked for.
#[derive(Debug)]
pub(super) enum Busy {
    Upload(Vec<TerminalSerial>),
    Heartbeat,
    Delta,
    Bulk,
    Params,
}

/// The background exchange in flight: what it asked for, and the sequence number its answer
/// carries.
#[derive(Debug)]
pub(super) struct Exchange {
    pub(super) busy: Busy,
    pub(super) seq: u32,
}

#[derive(Default)]
pub(super) enum Conn {
    /// No connection.
    #[default]
    Down,
    /// Connected; the sign-in with this nonce is in flight (`Timer::SignInReply`).
    SigningIn { nonce: [u8; 8] },
    /// Connected without a session: the sign-in timed out or was refused
    /// (`Timer::SignInRetry`).
    WaitingToRetry,
    /// Signed in (`Timer::Exchange` while an exchange is in flight).
    Up {
        session: Box<Session>,
        exchange: Option<Exchange>,
    },
}

impl Conn {
    pub(super) fn connected(&self) -> bool {
        !matches!(self, Conn::Down)
    }

    pub(super) fn session(&self) -> Option<&Session> {
        match self {
            Conn::Up { session, .. } => Some(session),
            _ => None,
        }
    }

    pub(super) fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            Conn::Up { session, .. } => Some(session),
            _ => None,
        }
    }

    pub(super) fn nonce(&self) -> Option<[u8; 8]> {
        match self {
            Conn::SigningIn { nonce } => Some(*nonce),
            _ => None,
        }
    }

    pub(super) fn exchange(&self) -> Option<&Exchange> {
        match self {
            Conn::Up { exchange, .. } => exchange.as_ref(),
            _ => None,
        }
    }

    /// Up without an exchange → up with `exchange`.
    pub(super) fn begin_exchange(&mut self, new: Exchange) {
        match self {
            Conn::Up { exchange, .. } => {
                debug_assert!(exchange.is_none(), "an exchange is already in flight");
                *exchange = Some(new);
            }
            _ => debug_assert!(false, "an exchange without a session"),
        }
    }

    /// Up with an exchange → up without; `None` when there was none.
    pub(super) fn end_exchange(&mut self) -> Option<Exchange> {
        match self {
            Conn::Up { exchange, .. } => exchange.take(),
            _ => None,
        }
    }
}

/// The states `Terminal::enter` may go to, each with what it needs.
pub(super) enum Next {
    Down,
    /// From any state (a new connection signs in at once; a connected terminal signs in
    /// again by hand, after losing its session, or on the retry timer).
    SigningIn {
        nonce: [u8; 8],
        deadline: u64,
    },
    /// From a connected state: the sign-in timed out or was refused, or could not be sent.
    WaitingToRetry {
        retry_at: u64,
    },
    /// From `SigningIn` only: the host answered with a session.
    Up(Box<Session>),
}

impl Next {
    /// Whether `from` may go here.
    pub(super) fn allowed_from(&self, from: &Conn) -> bool {
        match self {
            Next::Down | Next::SigningIn { .. } => true,
            Next::WaitingToRetry { .. } => from.connected(),
            Next::Up(_) => matches!(from, Conn::SigningIn { .. }),
        }
    }
}
