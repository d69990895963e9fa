//! Short spoken commands without Whisper's 30-second window.
//!
//! Whisper's encoder always looks at 30 s of audio (1500 frames), even for a 2-second
//! command. [`transcribe_command`] sizes the encoder's audio context to the utterance, as
//! whisper.cpp's own `command` and `stream` examples do, which is several times faster.
//! A reduced context can make the decoder loop (the same words again and again), so the
//! fast pass is guarded: one segment, greedy, no temperature fallback, tokens capped by the
//! length of the audio, and its text checked for repeats; when it looks wrong the command
//! is decoded again with the full window.

use std::time::{Duration, Instant};

use super::clean::{self, RawSegment};
use super::{DecodeOptions, SttError, WhisperEngine};

/// Utterances longer than this (seconds) always use the full window.
pub const MAX_REDUCED_SECONDS: f64 = 15.0;

/// Below this average log-probability (of any segment) the fast pass is not trusted.
pub const MIN_LOGPROB: f32 = -0.5;

/// Encoder frames per second of audio (1500 frames for 30 s).
const FRAMES_PER_SECOND: f64 = 50.0;

/// What [`transcribe_command`] heard and how.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandTranscript {
    /// The text (guards applied).
    pub text: String,
    /// The audio context used by the pass that was kept (0: the full window).
    pub audio_ctx: u32,
    /// Whether the fast pass was rejected and the full window used.
    pub fell_back: bool,
    /// Why the fast pass was rejected.
    pub reason: Option<String>,
    /// Time spent in the recogniser, both passes.
    pub elapsed: Duration,
}

/// The encoder context for `seconds` of audio: the audio plus a second of margin, rounded
/// up to a multiple of 64 frames; 0 (the full window) for long audio.
pub fn audio_ctx_for(seconds: f64) -> u32 {
    if seconds > MAX_REDUCED_SECONDS {
        return 0;
    }
    let frames = ((seconds + 1.0) * FRAMES_PER_SECOND).ceil() as u32;
    frames.div_ceil(64).saturating_mul(64).min(1500)
}

/// The most text tokens a command of `seconds` can need: fast speech is about 4 tokens a
/// second; anything far beyond is a loop.
pub fn max_tokens_for(seconds: f64) -> u32 {
    (seconds * 6.0).ceil() as u32 + 10
}

/// Why `text` (from `seconds` of audio) looks like a decoding loop, if it does.
pub fn loop_reason(text: &str, seconds: f64, token_cap_hit: bool) -> Option<String> {
    if token_cap_hit {
        return Some("the token cap was reached".into());
    }
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    // Faster than anyone speaks: about 3 words a second is quick speech.
    if words.len() as f64 > seconds.max(1.0) * 5.0 + 2.0 {
        return Some(format!("{} words in {seconds:.1} s", words.len()));
    }
    // A run of 2 or more words said twice in a row ("set a timer set a timer").
    for n in 2..=words.len() / 2 {
        for i in 0..=words.len() - 2 * n {
            if words[i..i + n] == words[i + n..i + 2 * n] {
                return Some(format!("\"{}\" repeats", words[i..i + n].join(" ")));
            }
        }
    }
    if clean::collapse_repeats(text) != text {
        return Some("a word repeats three times or more".into());
    }
    None
}

fn joined(raw: &[RawSegment], threshold: f32) -> String {
    clean::clean(raw.to_vec(), threshold)
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Transcribe a short command (16 kHz mono), fast when it is safe, exactly otherwise.
///
/// # Errors
/// As [`WhisperEngine::transcribe`].
pub fn transcribe_command(
    engine: &WhisperEngine,
    samples: &[f32],
    base: &DecodeOptions,
) -> Result<CommandTranscript, SttError> {
    let started = Instant::now();
    let seconds = samples.len() as f64 / 16_000.0;
    let ctx = audio_ctx_for(seconds);
    let mut reason = None;
    if ctx > 0 {
        let cap = max_tokens_for(seconds);
        let fast = DecodeOptions {
            audio_ctx: ctx,
            single_segment: true,
            max_tokens: cap,
            no_fallback: true,
            beam_size: 1,
            ..base.clone()
        };
        let (raw, _) = engine.transcribe_raw(samples, 0.0, &fast)?;
        let raw_text: String = raw.iter().map(|s| s.text.as_str()).collect();
        let logprob = raw.iter().map(|s| s.avg_logprob).fold(0.0f32, f32::min);
        // whisper.cpp stops a segment at the cap; a text that long is a loop by definition.
        let token_cap_hit = raw_text.split_whitespace().count() as u32 >= cap;
        reason = loop_reason(raw_text.trim(), seconds, token_cap_hit);
        // A reduced window can also mishear without looping; it then decodes with low
        // confidence (measured on 20 command clips: the lowest was -0.29; a misheard
        // synthetic sentence -0.73).
        if reason.is_none() && logprob < MIN_LOGPROB {
            reason = Some(format!("low confidence (log-probability {logprob:.2})"));
        }
        if reason.is_none() {
            return Ok(CommandTranscript {
                text: joined(&raw, base.no_speech_threshold),
                audio_ctx: ctx,
                fell_back: false,
                reason: None,
                elapsed: started.elapsed(),
            });
        }
        tracing::info!(
            reason = reason.as_deref().unwrap_or(""),
            audio_ctx = ctx,
            "the fast pass looped; decoding again with the full window"
        );
    }
    let (segments, _) = engine.transcribe(samples, 0.0, base)?;
    Ok(CommandTranscript {
        text: segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        audio_ctx: 0,
        fell_back: ctx > 0,
        reason,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_sized_to_the_utterance() {
        assert_eq!(audio_ctx_for(2.0), 192);
        assert_eq!(audio_ctx_for(0.2), 64);
        assert_eq!(audio_ctx_for(14.0), 768);
        assert_eq!(audio_ctx_for(16.0), 0);
    }

    #[test]
    fn loops_are_recognised_and_normal_commands_are_not() {
        for ok in [
            "Set a timer for 10 minutes.",
            "What time is it?",
            "What's the date today?",
            "This is a test.",
        ] {
            assert_eq!(loop_reason(ok, 2.5, false), None, "{ok}");
        }
        for bad in [
            "Set a timer for 10 minutes. Set a timer for 10 minutes.",
            "What time is it? What time is it? What time is it?",
            "no no no no",
        ] {
            assert!(loop_reason(bad, 2.5, false).is_some(), "{bad}");
        }
        let long = "word ".repeat(40);
        assert!(loop_reason(&long, 2.0, false).is_some());
        assert!(loop_reason("fine", 2.0, true).is_some());
    }
}
