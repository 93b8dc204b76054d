//! Arbitrary bytes as the terminal's flash other than the journal: blacklist base images and
//! delta log (frames with valid CRCs, so the delta decoder is reached), parameter and state
//! slots, the statistics baseline (`ykt_terminal::fuzz_flash_stores`). An error or a clean
//! fallback, never a panic, never a blacklist other than its intact deltas describe.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_terminal::fuzz_flash_stores(data);
});
