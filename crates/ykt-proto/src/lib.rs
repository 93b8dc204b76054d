//! The terminal–host wire protocol of ykt and the code tables of the spec.
//!
//! Sans-I/O: this crate encodes and decodes bytes in caller buffers, computes MACs and
//! derives keys. It never touches a socket, a file or a clock.

pub mod codes;

pub use codes::{CodeClass, InfoCode, ReturnCode};
pub mod types;

pub use types::*;
