//! The frame envelope (`docs/protocol.md` §2): length prefix, header, body, MAC.
//!
//! ```text
//! 0  u16  length L of everything after this field (header rest + body + MAC)
//! 2  2    magic "YK" (59 4B)
//! 4  u8   protocol version (1)
//! 5  u8   message type
//! 6  u8   flags: bit 0 response, bit 1 sent by the host; other bits 0
//! 7  4    physical ID of the terminal
//! 11 u32  sequence number of the sender
//! 15 u32  correlation: in a response, the sequence number of the request; else 0
//! 19 …    body
//! end-8 8 MAC: first 8 bytes of CMAC over bytes 0 .. end-8
//! ```
//! The envelope (bytes 0–18) and the error body are frozen for every version, so a peer can
//! always read an error response, whatever version it speaks.

use crate::PhysicalId;
use crate::crypto::{MAC_LEN, MacKey};
use crate::error::{DecodeError, EncodeError, ProtoError};
use crate::messages::{Message, MsgType};

pub const MAGIC: [u8; 2] = *b"YK";
/// The version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes before the body, length prefix included.
pub const HEADER_LEN: usize = 19;
/// The smallest frame: header and MAC, empty body.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + MAC_LEN;
/// The hard maximum frame size, length prefix included (the prefix is a u16).
pub const MAX_FRAME_LEN: usize = 2 + u16::MAX as usize;

pub const FLAG_RESPONSE: u8 = 0x01;
pub const FLAG_FROM_HOST: u8 = 0x02;
const FLAGS_KNOWN: u8 = FLAG_RESPONSE | FLAG_FROM_HOST;

/// The decoded envelope of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub flags: u8,
    pub device: PhysicalId,
    pub seq: u32,
    pub corr: u32,
}

impl Header {
    pub const fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }
    pub const fn from_host(&self) -> bool {
        self.flags & FLAG_FROM_HOST != 0
    }
}

/// A complete frame split into its parts, MAC not yet verified.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    pub header: Header,
    /// Everything the MAC covers: bytes 0 .. end-8.
    pub signed: &'a [u8],
    pub body: &'a [u8],
    pub mac: &'a [u8],
}

impl<'a> RawFrame<'a> {
    /// Splits one complete frame. Checks length, magic and flags, not the version: an unknown
    /// version is reported by [`RawFrame::check_version`] so the peer gets an error response.
    pub fn parse(frame: &'a [u8]) -> Result<RawFrame<'a>, DecodeError> {
        if frame.len() < MIN_FRAME_LEN || frame.len() > MAX_FRAME_LEN {
            return Err(DecodeError::BadLength(frame.len()));
        }
        let declared = usize::from(u16::from_be_bytes([frame[0], frame[1]])) + 2;
        if declared != frame.len() {
            return Err(DecodeError::BadLength(declared));
        }
        if frame[2..4] != MAGIC {
            return Err(DecodeError::BadMagic(u16::from_be_bytes([
                frame[2], frame[3],
            ])));
        }
        let flags = frame[6];
        if flags & !FLAGS_KNOWN != 0 {
            return Err(DecodeError::BadFlags(flags));
        }
        let word = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let header = Header {
            version: frame[4],
            msg_type: frame[5],
            flags,
            device: PhysicalId([frame[7], frame[8], frame[9], frame[10]]),
            seq: word(11),
            corr: word(15),
        };
        let mac_at = frame.len() - MAC_LEN;
        Ok(RawFrame {
            header,
            signed: &frame[..mac_at],
            body: &frame[HEADER_LEN..mac_at],
            mac: &frame[mac_at..],
        })
    }

    pub fn check_version(&self) -> Result<(), ProtoError> {
        if self.header.version == VERSION {
            Ok(())
        } else {
            Err(ProtoError::UnsupportedVersion(self.header.version))
        }
    }

    pub fn verify(&self, key: &MacKey) -> Result<(), ProtoError> {
        if key.verify(self.signed, self.mac) {
            Ok(())
        } else {
            Err(ProtoError::BadMac)
        }
    }

    /// Decodes the body according to the header's type and response flag.
    pub fn message(&self) -> Result<Message, DecodeError> {
        let ty = MsgType::from_wire(self.header.msg_type)
            .ok_or(DecodeError::UnknownType(self.header.msg_type))?;
        Message::decode(ty, self.header.is_response(), self.body)
    }
}

/// Appends one frame to `out`: envelope, body of `msg`, then the MAC under `key`, or eight
/// zero bytes when `key` is `None` (allowed only for error responses, §7).
pub fn encode_frame(
    out: &mut Vec<u8>,
    device: PhysicalId,
    from_host: bool,
    seq: u32,
    corr: u32,
    msg: &Message,
    key: Option<&MacKey>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let (ty, response) = msg.kind();
    let flags =
        (if response { FLAG_RESPONSE } else { 0 }) | (if from_host { FLAG_FROM_HOST } else { 0 });
    out.extend_from_slice(&[0, 0, MAGIC[0], MAGIC[1], VERSION, ty as u8, flags]);
    out.extend_from_slice(&device.0);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&corr.to_be_bytes());
    if let Err(e) = msg.encode_body(out) {
        out.truncate(start);
        return Err(e);
    }
    let total = out.len() - start + MAC_LEN;
    if total > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(EncodeError::FrameTooLarge(total));
    }
    let len = (total - 2) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    let tag = match key {
        Some(k) => k.tag(&out[start..]),
        None => [0u8; MAC_LEN],
    };
    out.extend_from_slice(&tag);
    Ok(())
}

/// Reassembles frames from a byte stream fed in arbitrary chunks. Its buffer never grows
/// beyond `max_frame` bytes: the length prefix is checked before any body byte is kept.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame: usize,
    /// Bytes of the current frame still to come, once its prefix is known.
    need: usize,
    /// A complete frame sits in `buf` and is handed out on the next call.
    ready: bool,
}

/// The stream cannot be resynchronised after this; the connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("declared frame size {0} is outside {MIN_FRAME_LEN}..=max")]
    BadLength(usize),
    #[error("bad magic {0:#06x}: not a ykt stream")]
    BadMagic(u16),
}

impl FrameError {
    pub const fn return_code(&self) -> crate::ReturnCode {
        crate::ReturnCode::OTHER_ERROR
    }
}

impl FrameDecoder {
    /// `max_frame` is clamped to `MIN_FRAME_LEN ..= MAX_FRAME_LEN`.
    pub fn new(max_frame: usize) -> FrameDecoder {
        let max_frame = max_frame.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN);
        FrameDecoder {
            buf: Vec::new(),
            max_frame,
            need: 0,
            ready: false,
        }
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        if self.ready { 0 } else { self.buf.len() }
    }

    /// Takes bytes from the front of `input` (advancing it) up to the end of the next frame
    /// and returns that frame when complete. Call again with the rest of `input` until it
    /// is empty and the result is `Ok(None)`. After an error the decoder stays failed.
    pub fn decode<'s>(&'s mut self, input: &mut &[u8]) -> Result<Option<&'s [u8]>, FrameError> {
        if self.ready {
            self.buf.clear();
            self.ready = false;
            self.need = 0;
        }
        // Prefix and magic first: 4 bytes tell whether the frame is acceptable at all.
        if self.buf.len() < 4 {
            let n = (4 - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..n]);
            *input = &input[n..];
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let total = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])) + 2;
            if total < MIN_FRAME_LEN || total > self.max_frame {
                return Err(self.fail(FrameError::BadLength(total)));
            }
            if self.buf[2..4] != MAGIC {
                let m = u16::from_be_bytes([self.buf[2], self.buf[3]]);
                return Err(self.fail(FrameError::BadMagic(m)));
            }
            self.need = total - 4;
            self.buf.reserve_exact(self.need);
        }
        if self.need == usize::MAX {
            return Err(FrameError::BadLength(0));
        }
        let n = self.need.min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
        self.need -= n;
        if self.need > 0 {
            return Ok(None);
        }
        self.ready = true;
        Ok(Some(&self.buf))
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        // Keep 4 bytes so later calls do not parse a prefix again; `need` marks the failure.
        self.need = usize::MAX;
        e
    }
}
