//! Arbitrary bytes through the frame decoder, the envelope, every message body, both session
//! sides and the sign-in checks (`ykt_proto::fuzzing::frame_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_proto::fuzzing::frame_decode(data);
});
