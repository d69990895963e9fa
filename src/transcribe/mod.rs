//! File transcription: decoder → windows → whisper → writers.
//!
//! Memory does not grow with the input: audio is decoded into a window of at most
//! [`Options::window_s`] seconds, cut at the quietest 200 ms near the window's end (so a
//! word is not split), transcribed, and dropped; the remainder carries over to the next
//! window and every timestamp is offset by the window's start, so timestamps stay
//! continuous. Inputs shorter than one window (every clip people usually have) are
//! transcribed in one piece, exactly as whisper-cli does.

pub mod format;
pub mod wer;

use std::time::Instant;

use crate::audio::decode::{DecodeError, Decoder};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::stt::{DecodeOptions, SttError, WhisperEngine};
use format::{Segment, Timings, Transcript};

/// File transcription settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Passed to whisper for every window.
    pub decode: DecodeOptions,
    /// Longest window, seconds.
    pub window_s: f64,
    /// How far back from the window's end to look for a quiet cut point, seconds.
    pub cut_search_s: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            decode: DecodeOptions::default(),
            window_s: 120.0,
            cut_search_s: 10.0,
        }
    }
}

/// Errors while transcribing one input.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The input could not be decoded (exit code 3).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The engine failed.
    #[error(transparent)]
    Stt(#[from] SttError),
}

/// Transcribe everything `decoder` yields. `on_segment` sees each segment as soon as its
/// window is decoded (for printing as you go).
///
/// # Errors
/// [`TranscribeError::Decode`] if the input is bad; [`TranscribeError::Stt`] if whisper fails.
pub fn transcribe(
    engine: &WhisperEngine,
    mut decoder: Decoder,
    file_label: &str,
    opts: &Options,
    mut on_segment: impl FnMut(&Segment),
) -> Result<Transcript, TranscribeError> {
    let _span = tracing::info_span!("transcribe_file", file = file_label).entered();
    let rate = WHISPER_SAMPLE_RATE as f64;
    let window = (opts.window_s * rate) as usize;
    let search = ((opts.cut_search_s * rate) as usize).min(window / 2);
    let mut buf: Vec<f32> = Vec::with_capacity(window + WHISPER_SAMPLE_RATE as usize);
    let mut offset_samples: u64 = 0;
    let mut segments = Vec::new();
    let mut language = opts
        .decode
        .language
        .clone()
        .unwrap_or_else(|| "auto".into());
    let mut decode_s = 0.0;
    let mut transcribe_s = 0.0;
    let mut finished = false;

    while !finished {
        let t = Instant::now();
        let want = window.saturating_sub(buf.len());
        let got = decoder.read_16k_mono(&mut buf, want)?;
        decode_s += t.elapsed().as_secs_f64();
        if got < want {
            finished = true;
        }
        if buf.is_empty() {
            break;
        }
        let cut = if finished {
            buf.len()
        } else {
            quiet_cut(&buf, buf.len().saturating_sub(search), buf.len())
        };
        let t = Instant::now();
        let _w = tracing::debug_span!("window", start_s = offset_samples as f64 / rate).entered();
        let (segs, lang) =
            engine.transcribe(&buf[..cut], offset_samples as f64 / rate, &opts.decode)?;
        transcribe_s += t.elapsed().as_secs_f64();
        language = lang;
        for s in segs {
            on_segment(&s);
            segments.push(s);
        }
        offset_samples += cut as u64;
        buf.drain(..cut);
    }
    let duration_s = offset_samples as f64 / rate;
    if duration_s == 0.0 {
        return Err(DecodeError::Empty {
            path: decoder.path().to_path_buf(),
            reason: "no audio samples".into(),
        }
        .into());
    }
    let total = decode_s + transcribe_s;
    Ok(Transcript {
        file: file_label.to_string(),
        model: engine.name().to_string(),
        language,
        duration_s,
        segments,
        timings: Timings {
            decode_s,
            transcribe_s,
            rtf: if duration_s > 0.0 {
                total / duration_s
            } else {
                0.0
            },
        },
    })
}

/// The sample index of the quietest 200 ms stretch in `buf[from..to]` (its middle).
pub fn quiet_cut(buf: &[f32], from: usize, to: usize) -> usize {
    const FRAME: usize = 3200; // 200 ms at 16 kHz
    const HOP: usize = 800;
    let to = to.min(buf.len());
    if to <= from + FRAME {
        return to;
    }
    let mut best = (f32::MAX, to);
    let mut start = from;
    while start + FRAME <= to {
        let energy: f32 = buf[start..start + FRAME].iter().map(|s| s * s).sum();
        if energy < best.0 {
            best = (energy, start + FRAME / 2);
        }
        start += HOP;
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_cut_finds_the_gap() {
        let mut buf = vec![0.5f32; 16_000 * 4];
        for s in &mut buf[40_000..44_000] {
            *s = 0.0;
        }
        let cut = quiet_cut(&buf, 16_000, buf.len());
        assert!((40_000..44_000).contains(&cut), "cut at {cut}");
    }

    #[test]
    fn quiet_cut_on_short_buffers_takes_everything() {
        let buf = vec![0.1f32; 1000];
        assert_eq!(quiet_cut(&buf, 0, buf.len()), 1000);
    }
}
