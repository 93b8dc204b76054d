//! Arbitrary bytes as a session with an issued CPU card: reads, PINs, purchases, loads,
//! forged MAC2s, raw commands and faults; the money must follow the card
//! (`ykt_card::fuzzing_cpu::cpu_transaction`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_card::fuzzing_cpu::cpu_transaction(data);
});
