//! Arbitrary bytes as a terminal journal image: recovery must give an error or a clean
//! truncation, never a panic; a journal that opens must take new records and reopen with
//! serials that never go back (`ykt_terminal::fuzz_journal_image`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_terminal::fuzz_journal_image(data);
});
