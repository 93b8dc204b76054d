//! The sign-in gate (sans-I/O): a sign-in frame is verified against the device's row (read
//! on a reader, never the writer) and the nonce cache before any write is submitted, so an
//! unauthenticated frame costs no writer transaction (R-P5.1, protocol §4.5).
//!
//! The nonce is checked and recorded in ONE step under the cache's lock once the MAC is
//! good: of a replayed frame racing its original, exactly one passes, whichever takes the
//! lock first, without waiting for the other's commit. A nonce passed is used up whatever
//! the store answers next (the terminal draws a fresh nonce for every sign-in).

use chrono::NaiveDateTime;
use ykt_proto::{
    DeviceKey, ErrorResponse, Key, ProtoError, ReturnCode, SignInRequest, Suite, open_sign_in,
};

use super::registry::NonceCache;
use crate::model::{Device, MacSuite};

/// Why the gate refused a sign-in frame.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No such device (20).
    Unknown,
    /// The device has no master key (29).
    NoKey,
    /// The frame does not open under the device's master key (14, or its format error).
    Bad(ProtoError),
    /// The MAC is good but the nonce was seen from this device within 24 hours (14, reason 5).
    Replayed,
}

/// A sign-in request that opened under the device's master key with a fresh nonce: it may
/// be submitted to the writer.
#[derive(Debug)]
pub(crate) struct Verified {
    pub master: DeviceKey,
    pub req: SignInRequest,
    pub terminal_no: u32,
}

/// Verifies `frame` from the device whose row is `row` (`None`: unknown) at `now`.
pub(crate) fn verify(
    row: Option<&Device>,
    frame: &[u8],
    nonces: &NonceCache,
    now: NaiveDateTime,
) -> Result<Verified, Refused> {
    let Some(d) = row else {
        return Err(Refused::Unknown);
    };
    let Some(key) = d.master_key else {
        return Err(Refused::NoKey);
    };
    let master = DeviceKey {
        suite: match d.mac_suite {
            MacSuite::Aes128Cmac => Suite::Aes128,
            MacSuite::Sm4Cmac => Suite::Sm4,
        },
        key: Key(key),
    };
    let (_, req) = open_sign_in(&master, frame).map_err(Refused::Bad)?;
    if !nonces.fresh(d.id, req.nonce, now) {
        return Err(Refused::Replayed);
    }
    Ok(Verified {
        master,
        req,
        terminal_no: d.terminal_no,
    })
}

impl Refused {
    /// The unauthenticated error the frame gets (the spec's code and reason), with the
    /// metric it counts under.
    pub(crate) fn response(&self) -> (ErrorResponse, Counted) {
        match self {
            Refused::Unknown => (
                ErrorResponse::unknown_device(),
                Counted::Answered(ReturnCode::POS_NOT_REGISTERED.0),
            ),
            Refused::NoKey => (
                ErrorResponse {
                    code: ReturnCode::POS_NOT_AUTHORISED,
                    ..ErrorResponse::unknown_device()
                },
                Counted::Answered(ReturnCode::POS_NOT_AUTHORISED.0),
            ),
            Refused::Bad(e) => (e.to_response(), Counted::Frame("bad_mac")),
            Refused::Replayed => (
                ProtoError::Replay { got: 0, last: 0 }.to_response(),
                Counted::Frame("replay"),
            ),
        }
    }
}

/// How a refusal is counted: a sign-in answered with a code, or a frame refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    Answered(u8),
    Frame(&'static str),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use chrono::NaiveDate;
    use proptest::prelude::*;
    use ykt_proto::{ErrorReason, PhysicalId, seal_sign_in};

    use super::*;
    use crate::model::{DeviceStatus, Functions};

    const ID: PhysicalId = PhysicalId([1, 2, 3, 4]);
    const KEY: [u8; 16] = [0x11; 16];

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
    }

    fn row(master_key: Option<[u8; 16]>) -> Device {
        Device {
            id: ID,
            terminal_no: 7,
            merchant_no: Some(100),
            status: DeviceStatus::Enabled,
            master_key,
            mac_suite: MacSuite::Aes128Cmac,
            functions: Functions::ALL,
            max_amount: 0,
            params: crate::params_codec::default_params(),
            last_report: None,
        }
    }

    fn frame(key: [u8; 16], nonce: [u8; 8]) -> Vec<u8> {
        let req = SignInRequest {
            suite: Suite::Aes128,
            clock: now(),
            blacklist_version: 0,
            params_version: 0,
            nonce,
        };
        let master = DeviceKey {
            suite: Suite::Aes128,
            key: Key(key),
        };
        let mut out = Vec::new();
        seal_sign_in(ID, &master, &req, &mut out).unwrap();
        out
    }

    fn code_of(v: &Result<Verified, Refused>) -> Option<(ReturnCode, ErrorReason)> {
        v.as_ref().err().map(|r| {
            let (e, _) = r.response();
            (e.code, e.reason)
        })
    }

    // issue 10.8, R-P5.1, R-H1: each forged sign-in gets the spec's code, a genuine one passes.
    #[test]
    fn forged_sign_ins_get_their_codes() {
        let nonces = NonceCache::default();
        let good = frame(KEY, [1; 8]);
        assert_eq!(
            code_of(&verify(None, &good, &nonces, now())),
            Some((ReturnCode::POS_NOT_REGISTERED, ErrorReason::UnknownDevice))
        );
        assert_eq!(
            code_of(&verify(Some(&row(None)), &good, &nonces, now())).map(|c| c.0),
            Some(ReturnCode::POS_NOT_AUTHORISED)
        );
        let forged = frame([0x22; 16], [1; 8]);
        assert_eq!(
            code_of(&verify(Some(&row(Some(KEY))), &forged, &nonces, now())),
            Some((ReturnCode::FEP_KEY_ERROR, ErrorReason::BadMac))
        );
        // A forged frame did not use up the nonce: the genuine one still passes, once.
        let v = verify(Some(&row(Some(KEY))), &good, &nonces, now());
        assert!(matches!(&v, Ok(x) if x.req.nonce == [1; 8] && x.terminal_no == 7));
        assert_eq!(
            code_of(&verify(Some(&row(Some(KEY))), &good, &nonces, now())),
            Some((ReturnCode::FEP_KEY_ERROR, ErrorReason::Replay))
        );
    }

    // issue 10.8, protocol §4.5: a replay racing its original — exactly one passes.
    #[test]
    fn replay_racing_the_original_passes_once() {
        for round in 0..50u8 {
            let nonces = Arc::new(NonceCache::default());
            let f = Arc::new(frame(KEY, [round; 8]));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (nonces, f) = (Arc::clone(&nonces), Arc::clone(&f));
                    std::thread::spawn(move || {
                        verify(Some(&row(Some(KEY))), &f, &nonces, now()).is_ok()
                    })
                })
                .collect();
            let passed = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|ok| *ok)
                .count();
            assert_eq!(passed, 1, "round {round}");
        }
    }

    proptest! {
        // issue 10.8, R-P5.1: any change to a genuine sign-in frame is refused, never verified.
        #[test]
        fn a_changed_frame_never_verifies(at in 0usize..64, flip in 1u8..=255) {
            let mut f = frame(KEY, [9; 8]);
            let at = at % f.len();
            f[at] ^= flip;
            let nonces = NonceCache::default();
            let v = verify(Some(&row(Some(KEY))), &f, &nonces, now());
            prop_assert!(v.is_err());
        }
    }
}
