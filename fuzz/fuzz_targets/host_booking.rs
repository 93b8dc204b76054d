//! Arbitrary terminal requests (uploads, online debits, load authorisations, what-waits
//! queries) for known cards and devices on a real SQLite store: no panic, no broken
//! invariant, books clean (`ykt_host::fuzzing::booking`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ykt_host::fuzzing::booking(data);
});
