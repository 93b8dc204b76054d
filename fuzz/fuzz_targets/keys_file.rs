//! Arbitrary bytes as a key file (`ykt keys new`): refused, or read into keys that write
//! back as a file reading the same (`ykt_card::fuzzing::keys_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_card::fuzzing::keys_file(data);
});
