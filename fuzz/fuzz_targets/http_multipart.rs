//! Fuzz target: arbitrary bytes through the transcription routes' multipart form parser
//! (`serena::http::fuzz_multipart`, the same `form::parse` the server runs).
//!
//! The first byte picks the boundary from a small set (so the fuzzer mostly exercises the
//! body rather than boundary syntax), except selector 255, which takes the boundary from the
//! input itself: up to the first `\n`, lossily decoded. Errors are expected; a crash, a hang
//! or an out-of-memory report is a bug. Seeds in `corpus/http_multipart/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const BOUNDARIES: [&str; 4] = [
    "zz",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "a",
    "x-y_z.1",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector == 255 {
        let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let boundary = String::from_utf8_lossy(&rest[..cut]);
        let body = rest.get(cut + 1..).unwrap_or_default();
        serena::http::fuzz_multipart(body, &boundary);
    } else {
        let boundary = BOUNDARIES[usize::from(selector) % BOUNDARIES.len()];
        serena::http::fuzz_multipart(rest, boundary);
    }
});
