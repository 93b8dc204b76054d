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

pub mod codes;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod messages;
pub mod session;
pub mod test_vectors;
pub mod types;
mod wire;

pub use codes::{CodeClass, InfoCode, ReturnCode};
pub use crypto::{Key, MacKey, Suite};
pub use error::{DecodeError, EncodeError, ProtoError};
pub use frame::{FrameDecoder, FrameError, Header, MAX_FRAME_LEN, RawFrame, VERSION, encode_frame};
pub use messages::*;
pub use session::{
    DeviceKey, Opened, Role, Session, open_sign_in, open_sign_in_response, peek_error,
    peer_error_code, seal_sign_in, seal_sign_in_response, seal_unauthenticated_error,
};
pub use types::*;
pub use wire::{DATETIME_LEN, TIME_LEN};
