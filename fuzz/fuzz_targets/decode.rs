//! Fuzz target: arbitrary bytes through Serena's audio decoder, to the end of the stream.
//!
//! Both input paths are exercised, chosen by the first byte: a seekable temporary file
//! (`Decoder::open`, as for files given on the command line) and a non-seekable stream
//! (`Decoder::from_reader`, as for standard input). Errors are expected; a crash, a hang or
//! an out-of-memory report is a bug.
//!
//! In production the decoder catches panics raised inside symphonia and reports them as
//! `DecodeError::Corrupt`. libFuzzer's panic hook aborts before that happens, so a crash
//! here whose stack is entirely inside symphonia is a symphonia bug worth reporting
//! upstream, and is already contained in Serena.
#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use serena::audio::decode::{DecodeError, Decoder};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let opened = if selector & 1 == 0 {
        open_as_file(bytes, selector)
    } else {
        let hint = hint_for(selector);
        Decoder::from_reader(Box::new(Cursor::new(bytes.to_vec())), hint)
    };
    if let Ok(mut decoder) = opened {
        let mut out = Vec::with_capacity(1 << 14);
        loop {
            out.clear();
            match decoder.read_16k_mono(&mut out, 1 << 14) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(n <= 1 << 14 && out.len() == n),
            }
        }
    }
});

/// Extension hints let the probe try each format first; `None` exercises pure sniffing.
fn hint_for(selector: u8) -> Option<&'static str> {
    const HINTS: [Option<&str>; 8] = [
        None,
        Some("wav"),
        Some("mp3"),
        Some("flac"),
        Some("ogg"),
        Some("m4a"),
        Some("aac"),
        Some("webm"),
    ];
    HINTS[usize::from(selector >> 1) % HINTS.len()]
}

fn open_as_file(bytes: &[u8], selector: u8) -> Result<Decoder, DecodeError> {
    let suffix = hint_for(selector).map_or(String::new(), |ext| format!(".{ext}"));
    let mut file = tempfile::Builder::new()
        .suffix(&suffix)
        .tempfile()
        .expect("create temporary file");
    file.write_all(bytes).expect("write temporary file");
    Decoder::open(file.path())
}
