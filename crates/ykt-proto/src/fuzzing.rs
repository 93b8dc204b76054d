//! The entry point of the fuzz target `frame_decode`, public so that the property tests run
//! exactly the same code on stable Rust without cargo-fuzz.

use crate::crypto::Key;
use crate::frame::{FrameDecoder, MAX_FRAME_LEN, RawFrame};
use crate::session::{DeviceKey, Role, Session, open_sign_in, open_sign_in_response};
use crate::{PhysicalId, Suite};

/// Feeds `data` through every decoder of untrusted bytes: the stream decoder (in chunks
/// whose sizes the input picks), the envelope, the message bodies, both session sides, the
/// sign-in checks and the stored forms of the terminal parameters. Must never panic, hang or allocate beyond the frame limit.
pub fn frame_decode(data: &[u8]) {
    let device = PhysicalId([0x12, 0x34, 0x56, 0x78]);
    let key = Key([0x2B; 16]);
    let master = DeviceKey {
        suite: Suite::Aes128,
        key,
    };
    let mut host = Session::new(Role::Host, device, Suite::Aes128, &key);
    let mut terminal = Session::new(Role::Terminal, device, Suite::Sm4, &key);

    // The whole input as one frame, and as stored parameters (host BLOBs, terminal flash).
    check_one(data, &mut host, &mut terminal, &master);
    let _ = crate::stored_params::decode(data);
    let _ = crate::stored_params::decode_flash_v1(data);

    // The input as a stream: the first byte picks the chunk size.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    for mut piece in data.chunks(chunk) {
        while !piece.is_empty() {
            match decoder.decode(&mut piece) {
                Ok(Some(frame)) => {
                    let frame = frame.to_vec();
                    check_one(&frame, &mut host, &mut terminal, &master);
                }
                Ok(None) => {}
                Err(_) => return,
            }
            assert!(decoder.buffered() <= MAX_FRAME_LEN);
        }
    }
}

fn check_one(frame: &[u8], host: &mut Session, terminal: &mut Session, master: &DeviceKey) {
    if let Ok(raw) = RawFrame::parse(frame) {
        let _ = raw.message();
    }
    // The host opens an authorisation check's PIN block too (R-B11): any 16 bytes.
    if let Ok(crate::session::Opened {
        message: crate::Message::AuthCheckRequest(r),
        ..
    }) = host.open(frame)
    {
        let _ = host.open_pin(r.card_no, r.nonce, &r.pin_block);
    }
    let _ = terminal.open(frame);
    let _ = open_sign_in(master, frame);
    let _ = open_sign_in_response(PhysicalId([0x12, 0x34, 0x56, 0x78]), master, &[0; 8], frame);
}
