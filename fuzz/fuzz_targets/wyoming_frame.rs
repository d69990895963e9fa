//! Fuzz target: arbitrary bytes through the Wyoming frame decoder.
//!
//! `fuzz_decode` decodes the bytes all at once and in pieces (checking that both agree),
//! types every frame as an `Event` and re-encodes it. Errors are expected; a crash, a
//! hang or an out-of-memory report is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serena::wyoming::fuzz_decode(data);
});
