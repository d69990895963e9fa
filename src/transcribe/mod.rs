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
use crate::vad::{SileroVad, VadError, VadParams};
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
    /// Voice activity detection failed.
    #[error(transparent)]
    Vad(#[from] VadError),
}

/// Peak amplitude below which a window is digital silence (about -80 dBFS).
const SILENCE_PEAK: f32 = 1e-4;

/// The parts of a window worth transcribing, as sample ranges.
///
/// Digital silence is never sent to whisper: it spends its longest time there (every
/// temperature fallback) and can only invent text. With a VAD, only speech is sent: its
/// spans, padded by [`SPAN_PAD_S`] and merged into groups of at most [`GROUP_MAX_S`] (short
/// gaps inside a group are kept, so whisper's timestamps within a group stay exact and
/// every group's offset is known). Without one, the whole window.
pub fn speech_ranges(
    window: &[f32],
    vad: Option<&mut SileroVad>,
) -> Result<Vec<std::ops::Range<usize>>, VadError> {
    if window.iter().all(|s| s.abs() < SILENCE_PEAK) {
        return Ok(Vec::new());
    }
    let Some(vad) = vad else {
        #[allow(clippy::single_range_in_vec_init)]
        return Ok(vec![0..window.len()]);
    };
    let rate = WHISPER_SAMPLE_RATE as f64;
    let to_sample = |t: f64| ((t.max(0.0) * rate) as usize).min(window.len());
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for span in vad.speech(window, &VadParams::default())? {
        let start = to_sample(span.start - SPAN_PAD_S);
        let end = to_sample(span.end + SPAN_PAD_S);
        match groups.last_mut() {
            Some(g) if end.saturating_sub(g.start) <= (GROUP_MAX_S * rate) as usize => {
                g.end = g.end.max(end);
            }
            _ => groups.push(start..end),
        }
    }
    Ok(groups)
}

/// Padding around each speech span, seconds.
pub const SPAN_PAD_S: f64 = 0.2;
/// Longest group of speech spans sent to whisper at once, seconds (under its 30 s window).
pub const GROUP_MAX_S: f64 = 28.0;

/// Transcribe everything `decoder` yields. `on_segment` sees each segment as soon as its
/// window is decoded (for printing as you go). With `vad`, only the speech it finds is
/// transcribed ([`speech_ranges`]).
///
/// # Errors
/// [`TranscribeError::Decode`] if the input is bad; [`TranscribeError::Stt`] if whisper
/// fails; [`TranscribeError::Vad`] if the VAD fails.
pub fn transcribe(
    engine: &WhisperEngine,
    mut vad: Option<&mut SileroVad>,
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
        let ranges = speech_ranges(&buf[..cut], vad.as_deref_mut())?;
        if ranges.is_empty() {
            tracing::debug!("no speech in this window; skipped");
        }
        for range in ranges {
            let offset_s = (offset_samples + range.start as u64) as f64 / rate;
            let (segs, lang) = engine.transcribe(&buf[range], offset_s, &opts.decode)?;
            language = lang;
            for s in segs {
                on_segment(&s);
                segments.push(s);
            }
        }
        transcribe_s += t.elapsed().as_secs_f64();
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
