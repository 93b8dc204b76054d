//! The terminal–host wire protocol of ykt (`docs/protocol.md`, R-C6.3) and the code tables
//! of the spec.
//!
//! Sans-I/O: this crate encodes and decodes bytes in caller buffers, computes MACs and
//! wraps keys. It never touches a socket, a file or a clock; randomness (nonces, session
//! keys) and time come in as arguments.
//!
//! - [`FrameDecoder`] reassembles frames from a byte stream (bounded buffer).
//! - [`Message`] is every message; [`encode_frame`] / [`RawFrame::parse`] are the envelope.
//! - [`seal_sign_in`] … [`open_sign_in_response`] establish a [`Session`], which then
//!   [`Session::seal`]s and [`Session::open`]s every frame (MAC + replay protection).
//!
//! ```
//! use ykt_proto::test_vectors::{debit_request, sign_in_request, sign_in_response};
//! use ykt_proto::*;
//!
//! let device = PhysicalId([0x12, 0x34, 0x56, 0x78]);
//! let master = DeviceKey { suite: Suite::Aes128, key: Key([7; 16]) };
//!
//! // Terminal: sign in under the master key.
//! let mut to_host = Vec::new();
//! let request = sign_in_request(Suite::Aes128);
//! seal_sign_in(device, &master, &request, &mut to_host)?;
//!
//! // Host: look the device up by the header, check the MAC, answer with a fresh session key.
//! let header = RawFrame::parse(&to_host)?.header;
//! let (_, req) = open_sign_in(&master, &to_host)?;
//! let session_key = Key([0x42; 16]); // drawn at random by the host
//! let mut to_terminal = Vec::new();
//! let mut host = seal_sign_in_response(header.device, &master, Some(&session_key), sign_in_response(), &mut to_terminal)?
//!     .expect("code 0 starts a session");
//!
//! // Terminal: check nonce, MAC and key check value; the session starts.
//! let (resp, session) = open_sign_in_response(device, &master, &req.nonce, &to_terminal)?;
//! let mut terminal = session.expect("signed in");
//! assert_eq!(resp.merchant_no, 1001);
//!
//! // Every later frame is MAC'd under the session key and numbered.
//! to_host.clear();
//! let seq = terminal.seal(&Message::DebitRequest(debit_request()), 0, &mut to_host)?;
//! let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
//! let mut stream = &to_host[..];
//! let frame = decoder.decode(&mut stream)?.expect("one whole frame");
//! let opened = host.open(frame)?;
//! assert_eq!(opened.header.seq, seq);
//! assert!(matches!(opened.message, Message::DebitRequest(_)));
//! // The same frame again is a replay.
//! assert_eq!(host.open(&to_host).unwrap_err().return_code(), ReturnCode::FEP_KEY_ERROR);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codes;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod hexstr;
pub mod messages;
pub mod session;
pub mod stored_params;
pub mod test_vectors;
pub mod types;
mod wire;

pub use codes::{CodeClass, InfoCode, ReturnCode};
pub use crypto::{Key, MacKey, Pin, Suite};
pub use error::{DecodeError, EncodeError, ProtoError};
pub use frame::{FrameDecoder, FrameError, Header, MAX_FRAME_LEN, RawFrame, VERSION, encode_frame};
pub use messages::*;
pub use session::{
    DeviceKey, Opened, Role, Session, open_sign_in, open_sign_in_response, peek_error,
    peer_error_code, seal_sign_in, seal_sign_in_response, seal_unauthenticated_error,
};
pub use types::*;
pub use wire::{DATETIME_LEN, TIME_LEN};
