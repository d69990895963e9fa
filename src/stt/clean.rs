//! Guards against Whisper's best-known failure: inventing text where there is no speech.
//!
//! Pure functions over decoded segments, so they are tested with plain data:
//! - a segment is dropped when whisper thinks it is probably silence (no-speech
//!   probability above the threshold) and its own tokens are unsure (mean log-probability
//!   below -1.0) — the rule OpenAI's reference implementation uses;
//! - bracketed or parenthesised non-speech markers (`[BLANK_AUDIO]`, `(music)`, `*sigh*`)
//!   are removed;
//! - a segment that repeats the previous one exactly (the decoding loop) is dropped, and a
//!   phrase repeated three or more times in a row inside one segment is collapsed to one.

use crate::transcribe::format::{Segment, Word};

/// A segment as whisper.cpp returned it, before cleaning.
#[derive(Clone, Debug)]
pub struct RawSegment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Text as decoded.
    pub text: String,
    /// whisper's probability that the window holds no speech.
    pub no_speech: f32,
    /// Mean log-probability of the text tokens.
    pub avg_logprob: f32,
    /// Word timings, when requested.
    pub words: Option<Vec<Word>>,
}

/// Mean log-probability below which an unsure segment in a probably-silent window is dropped.
pub const LOGPROB_THRESHOLD: f32 = -1.0;

/// Clean a window's segments. See the module docs for the rules.
pub fn clean(raw: Vec<RawSegment>, no_speech_threshold: f32) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(raw.len());
    for seg in raw {
        if seg.no_speech > no_speech_threshold && seg.avg_logprob < LOGPROB_THRESHOLD {
            tracing::debug!(
                no_speech = seg.no_speech,
                avg_logprob = seg.avg_logprob,
                "dropped a probably-silent segment"
            );
            continue;
        }
        let text = collapse_repeats(&strip_markers(&seg.text));
        if text.chars().all(|c| !c.is_alphanumeric()) {
            continue;
        }
        if out.last().is_some_and(|prev| same_words(&prev.text, &text)) {
            tracing::debug!("dropped a repeated segment");
            continue;
        }
        let words = seg.words.map(|ws| {
            ws.into_iter()
                .filter(|w| !is_marker(&w.word))
                .collect::<Vec<_>>()
        });
        out.push(Segment {
            start: seg.start,
            end: seg.end.max(seg.start),
            text,
            words,
        });
    }
    out
}

fn is_marker(word: &str) -> bool {
    let w = word.trim();
    (w.starts_with('[') && w.ends_with(']')) || (w.starts_with('(') && w.ends_with(')'))
}

/// Remove `[...]`, `(...)` and `*...*` spans and tidy the spaces.
pub fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut close: Option<char> = None;
    for c in text.chars() {
        match close {
            Some(end) if c == end => close = None,
            Some(_) => {}
            None => match c {
                '[' => close = Some(']'),
                '(' => close = Some(')'),
                '*' => close = Some('*'),
                _ => out.push(c),
            },
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn norm_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn same_words(a: &str, b: &str) -> bool {
    let (a, b) = (norm_words(a), norm_words(b));
    !a.is_empty() && a == b
}

/// Collapse a phrase of 1 to 8 words that repeats 3 or more times in a row into one copy.
pub fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys = norm_words_each(&words);
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        for n in 1..=8usize {
            if i + 3 * n > words.len() {
                break;
            }
            let phrase = &keys[i..i + n];
            let mut reps = 1;
            while i + (reps + 1) * n <= words.len()
                && &keys[i + reps * n..i + (reps + 1) * n] == phrase
            {
                reps += 1;
            }
            if reps >= 3 {
                out.extend_from_slice(&words[i..i + n]);
                i += reps * n;
                skipped = true;
                break;
            }
        }
        if !skipped {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

fn norm_words_each(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str, no_speech: f32, avg_logprob: f32) -> RawSegment {
        RawSegment {
            start: 0.0,
            end: 1.0,
            text: text.into(),
            no_speech,
            avg_logprob,
            words: None,
        }
    }

    #[test]
    fn markers_are_removed() {
        assert_eq!(strip_markers(" [BLANK_AUDIO]"), "");
        assert_eq!(strip_markers("Hello (music) there *sigh*"), "Hello there");
        assert_eq!(strip_markers("unclosed [marker"), "unclosed");
    }

    #[test]
    fn silent_unsure_segments_are_dropped() {
        let out = clean(
            vec![raw(" you", 0.9, -1.5), raw(" Set a timer.", 0.9, -0.2)],
            0.6,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Set a timer.");
    }

    #[test]
    fn marker_only_segments_vanish() {
        assert!(clean(vec![raw(" [BLANK_AUDIO]", 0.1, -0.1)], 0.6).is_empty());
        assert!(clean(vec![raw(" ...", 0.1, -0.1)], 0.6).is_empty());
    }

    #[test]
    fn repeated_segments_and_phrases_collapse() {
        let out = clean(
            vec![
                raw(" What time is it?", 0.0, -0.1),
                raw(" what time is it", 0.0, -0.1),
            ],
            0.6,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            collapse_repeats("set a timer set a timer set a timer for ten minutes"),
            "set a timer for ten minutes"
        );
        assert_eq!(collapse_repeats("no no no no"), "no");
        // Two repetitions are ordinary speech.
        assert_eq!(collapse_repeats("very very good"), "very very good");
    }
}
