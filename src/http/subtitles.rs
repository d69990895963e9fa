//! SubRip (SRT) and WebVTT renderings of a [`Transcription`], as OpenAI's
//! `response_format=srt|vtt` return them.
//!
//! Rendered by the CLI's writers (`transcribe::format`), so the conventions are the same: text is trimmed, segments with empty text are
//! left out (an empty cue is invalid), blank lines inside a cue (which would end it) are
//! dropped, negative or non-finite times become 0, an end before the start becomes the
//! start, and WebVTT's reserved `&`, `<` and `>` are escaped (which also keeps a literal
//! `-->` out of cue text).

use super::backend::Transcription;
pub use crate::transcribe::format::millis;
use crate::transcribe::format::{Format, Segment, SegmentWriter};

/// The transcription as SubRip: numbered cues, `00:00:01,000 --> 00:00:02,500`.
pub fn srt(t: &Transcription) -> String {
    render(Format::Srt, t)
}

/// The transcription as WebVTT: a `WEBVTT` header, then `00:00:01.000 --> 00:00:02.500` cues.
pub fn vtt(t: &Transcription) -> String {
    render(Format::Vtt, t)
}

/// Through the CLI's own streaming writers, so both outputs follow one set of rules.
fn render(format: Format, t: &Transcription) -> String {
    let written = SegmentWriter::new(format, Vec::new()).and_then(|mut w| {
        for s in &t.segments {
            w.segment(&Segment {
                start: s.start,
                end: s.end,
                text: s.text.clone(),
                words: None,
            })?;
        }
        w.finish()
    });
    match written {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // Writing to a Vec cannot fail.
        Err(e) => {
            tracing::error!("rendering subtitles in memory failed: {e}");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::backend::Segment;
    use crate::transcribe::format::clock;

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
