//! Arbitrary bytes as card content: a raw MF1 dump, a CPU card image, or block patches on an
//! issued MF1 card (`ykt_card::fuzzing::card_image`). Never a panic, never new money.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_card::fuzzing::card_image(data);
});
