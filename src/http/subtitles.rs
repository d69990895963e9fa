//! SubRip (SRT) and WebVTT renderings of a [`Transcription`], as OpenAI's
//! `response_format=srt|vtt` return them.
//!
//! Same conventions as Serena's CLI output: text is trimmed, segments with empty text are
//! left out (an empty cue is invalid), blank lines inside a cue (which would end it) are
//! dropped, negative or non-finite times become 0, an end before the start becomes the
//! start, and WebVTT's reserved `&`, `<` and `>` are escaped (which also keeps a literal
//! `-->` out of cue text).

use std::fmt::Write as _;

use super::backend::Transcription;

/// The transcription as SubRip: numbered cues, `00:00:01,000 --> 00:00:02,500`.
pub fn srt(t: &Transcription) -> String {
    let mut out = String::new();
    let mut cue = 0;
    for segment in &t.segments {
        let text = cue_text(&segment.text);
        if text.is_empty() {
            continue;
        }
        cue += 1;
        let (start, end) = span(segment.start, segment.end);
        let _ = write!(
            out,
            "{cue}\n{} --> {}\n{text}\n\n",
            clock(start, ','),
            clock(end, ',')
        );
    }
    out
}

/// The transcription as WebVTT: a `WEBVTT` header, then `00:00:01.000 --> 00:00:02.500` cues.
pub fn vtt(t: &Transcription) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for segment in &t.segments {
        let text = escape_vtt(&cue_text(&segment.text));
        if text.is_empty() {
            continue;
        }
        let (start, end) = span(segment.start, segment.end);
        let _ = write!(
            out,
            "{} --> {}\n{text}\n\n",
            clock(start, '.'),
            clock(end, '.')
        );
    }
    out
}

/// Start and end in whole milliseconds, the end no earlier than the start.
fn span(start: f64, end: f64) -> (u64, u64) {
    let start = millis(start);
    (start, millis(end).max(start))
}

/// Seconds to whole milliseconds, rounded; negative or non-finite values become 0.
pub fn millis(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        // `as` saturates for values beyond u64::MAX, which is what we want.
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// `HH:MM:SS<sep>mmm`; hours grow past two digits if needed.
pub fn clock(ms: u64, sep: char) -> String {
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// Each line trimmed, blank lines removed.
fn cue_text(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes `&`, `<` and `>`.
fn escape_vtt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::backend::Segment;

    fn seg(id: u32, start: f64, end: f64, text: &str) -> Segment {
        Segment {
            id,
            start,
            end,
            text: text.to_string(),
            words: None,
        }
    }

    fn sample() -> Transcription {
        Transcription {
            language: "en".into(),
            duration_s: 3_725.5,
            text: "Hello. <b> & -->".into(),
            segments: vec![
                seg(0, 0.0, 1.0, " Hello."),
                seg(1, 1.0, 1.0, "   "),
                seg(2, 3661.0015, 3600.0, "a <b> & -->\n\n second line "),
                seg(3, f64::NAN, -1.0, "x"),
            ],
        }
    }

    #[test]
    fn clock_formats() {
        assert_eq!(clock(1000, ','), "00:00:01,000");
        assert_eq!(clock(1000, '.'), "00:00:01.000");
        assert_eq!(clock(3_661_002, ','), "01:01:01,002");
        assert_eq!(clock(360_000_000, '.'), "100:00:00.000");
        assert_eq!(millis(1.0005), 1001);
        assert_eq!(millis(-3.0), 0);
        assert_eq!(millis(f64::INFINITY), 0);
    }

    #[test]
    fn srt_output() {
        assert_eq!(
            srt(&sample()),
            "1\n00:00:00,000 --> 00:00:01,000\nHello.\n\n\
             2\n01:01:01,002 --> 01:01:01,002\na <b> & -->\nsecond line\n\n\
             3\n00:00:00,000 --> 00:00:00,000\nx\n\n"
        );
    }

    #[test]
    fn vtt_output() {
        assert_eq!(
            vtt(&sample()),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello.\n\n\
             01:01:01.002 --> 01:01:01.002\na &lt;b&gt; &amp; --&gt;\nsecond line\n\n\
             00:00:00.000 --> 00:00:00.000\nx\n\n"
        );
    }

    #[test]
    fn empty_transcriptions() {
        let t = Transcription::default();
        assert_eq!(srt(&t), "");
        assert_eq!(vtt(&t), "WEBVTT\n\n");
    }
}
