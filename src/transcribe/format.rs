//! Transcript output: plain text, SubRip (SRT), WebVTT, whisper-cli style TSV, and JSON.
//!
//! Two ways in:
//!
//! * [`write()`] renders a finished [`Transcript`] in any [`Format`].
//! * [`SegmentWriter`] emits segments as they arrive (for the CLI, which prints while
//!   Whisper is still decoding). It supports every format except [`Format::Json`], whose
//!   document needs the totals at the end; [`write()`] uses it internally, so both paths give
//!   identical bytes.
//!
//! Text is trimmed. Segments whose text is empty are left out of the text and subtitle formats
//! (an empty cue is invalid in SRT and pointless elsewhere) but kept in JSON. Line breaks inside
//! a segment are kept in SRT and VTT (minus blank lines, which would end the cue) and turned
//! into spaces in TXT and TSV. Negative or non-finite times are written as 0, and an end
//! before the start is written as the start.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One recognised word with its timing and probability.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Word {
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds.
    pub end: f64,
    /// The word as Whisper spelled it (may carry a leading space or punctuation).
    pub word: String,
    /// Token probability, 0 to 1.
    pub p: f32,
}

/// A stretch of speech with its text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds.
    pub end: f64,
    /// The recognised text.
    pub text: String,
    /// Word-level timings, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
}

/// How long the work took.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Timings {
    /// Seconds spent decoding and resampling the audio.
    pub decode_s: f64,
    /// Seconds spent in the speech recogniser.
    pub transcribe_s: f64,
    /// Real-time factor: processing time divided by audio duration.
    pub rtf: f64,
}

/// A complete transcription result; its JSON form is Serena's `--format json` output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Transcript {
    /// The input file as given by the user.
    pub file: String,
    /// The model name.
    pub model: String,
    /// The spoken language (ISO 639-1 code).
    pub language: String,
    /// Audio duration in seconds.
    pub duration_s: f64,
    /// The segments in time order.
    pub segments: Vec<Segment>,
    /// How long it took.
    pub timings: Timings,
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text, one segment per line.
    Txt,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// The [`Transcript`] as pretty-printed JSON.
    Json,
    /// Tab-separated `start`, `end` (integer milliseconds) and `text`, like whisper-cli.
    Tsv,
}

impl Format {
    /// Every format, in the order they are listed to users.
    pub const ALL: [Format; 5] = [
        Format::Txt,
        Format::Srt,
        Format::Vtt,
        Format::Json,
        Format::Tsv,
    ];

    /// The file extension (without dot), which is also the format's name.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Json => "json",
            Format::Tsv => "tsv",
        }
    }

    /// Whether [`SegmentWriter`] can write this format incrementally (all but JSON).
    pub fn supports_streaming(self) -> bool {
        self != Format::Json
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// The error for an unrecognised format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format '{0}' (expected one of: txt, srt, vtt, json, tsv)")]
pub struct ParseFormatError(String);

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Parses a format name or extension, case-insensitively, with or without a leading dot;
    /// `text` and `webvtt` are accepted as aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().trim_start_matches('.').to_ascii_lowercase();
        match name.as_str() {
            "txt" | "text" => Ok(Format::Txt),
            "srt" => Ok(Format::Srt),
            "vtt" | "webvtt" => Ok(Format::Vtt),
            "json" => Ok(Format::Json),
            "tsv" => Ok(Format::Tsv),
            _ => Err(ParseFormatError(s.to_string())),
        }
    }
}

/// Writes `transcript` to `out` in `format`.
///
/// # Errors
/// Any I/O error from `out`.
pub fn write(format: Format, transcript: &Transcript, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut *out, transcript)?;
        out.write_all(b"\n")?;
        return out.flush();
    }
    let mut writer = SegmentWriter::new(format, out)?;
    writer.begin()?;
    for segment in &transcript.segments {
        writer.segment(segment)?;
    }
    writer.finish().map(|_| ())
}

/// Renders `transcript` in `format` as a string.
pub fn render(format: Format, transcript: &Transcript) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail, and every writer emits UTF-8.
    if let Err(err) = write(format, transcript, &mut buf) {
        tracing::error!("rendering a transcript in memory failed: {err}");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Writes segments one at a time as they are recognised, flushing after each so a reader
/// (a terminal, a pipe) sees them immediately.
///
/// Call [`begin`](Self::begin) once (optional: the first segment or [`finish`](Self::finish)
/// does it), then [`segment`](Self::segment) per segment, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct SegmentWriter<W: Write> {
    format: Format,
    out: W,
    /// Cues written so far (the SRT sequence number of the last one).
    cues: usize,
    begun: bool,
}

impl<W: Write> SegmentWriter<W> {
    /// Creates a writer for `format` over `out`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for [`Format::Json`], which cannot be streamed; use
    /// [`write()`] with the finished [`Transcript`] instead.
    pub fn new(format: Format, out: W) -> io::Result<Self> {
        if !format.supports_streaming() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the {format} format cannot be written segment by segment"),
            ));
        }
        Ok(SegmentWriter {
            format,
            out,
            cues: 0,
            begun: false,
        })
    }

    /// Writes the format's header, if it has one (`WEBVTT`, the TSV column names). Idempotent.
    ///
    /// # Errors
    /// Any I/O error from the underlying writer.
    pub fn begin(&mut self) -> io::Result<()> {
        if self.begun {
            return Ok(());
        }
        self.begun = true;
        match self.format {
            Format::Vtt => self.out.write_all(b"WEBVTT\n\n")?,
            Format::Tsv => self.out.write_all(b"start\tend\ttext\n")?,
            Format::Txt | Format::Srt | Format::Json => {}
        }
        self.out.flush()
    }

    /// Writes one segment (nothing, if its text is empty) and flushes.
    ///
    /// # Errors
    /// Any I/O error from the underlying writer.
    pub fn segment(&mut self, segment: &Segment) -> io::Result<()> {
        self.begin()?;
        let start = millis(segment.start);
        let end = millis(segment.end).max(start);
        match self.format {
            Format::Txt => {
                let text = one_line(&segment.text);
                if !text.is_empty() {
                    writeln!(self.out, "{text}")?;
                }
            }
            Format::Tsv => {
                let text = one_line(&segment.text);
                if !text.is_empty() {
                    writeln!(self.out, "{start}\t{end}\t{text}")?;
                }
            }
            Format::Srt => {
                let text = cue_text(&segment.text);
                if !text.is_empty() {
                    self.cues += 1;
                    let (a, b) = (clock(start, ','), clock(end, ','));
                    write!(self.out, "{}\n{a} --> {b}\n{text}\n\n", self.cues)?;
                }
            }
            Format::Vtt => {
                let text = escape_vtt(&cue_text(&segment.text));
                if !text.is_empty() {
                    self.cues += 1;
                    let (a, b) = (clock(start, '.'), clock(end, '.'));
                    write!(self.out, "{a} --> {b}\n{text}\n\n")?;
                }
            }
            Format::Json => {}
        }
        self.out.flush()
    }

    /// Completes the output (an empty transcript still gets its header), flushes, and returns
    /// the underlying writer.
    ///
    /// # Errors
    /// Any I/O error from the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.begin()?;
        self.out.flush()?;
        Ok(self.out)
    }
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

/// Trimmed text on one line: line breaks and tabs become single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trimmed cue text: each line trimmed, blank lines (which would end a cue) removed.
fn cue_text(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes the characters WebVTT cue text reserves (`&`, `<`, `>`; the last also keeps a
/// literal `-->` out of the text).
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
    use aspasia::{SubRipSubtitle, Subtitle, TimedEventInterface, WebVttSubtitle};

    fn seg(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            start,
            end,
            text: text.to_string(),
            words: None,
        }
    }

    fn sample() -> Transcript {
        Transcript {
            file: "samples/jfk.wav".into(),
            model: "tiny.en".into(),
            language: "en".into(),
            duration_s: 11.0,
            segments: vec![
                seg(0.32, 5.5, " And so my fellow Americans,"),
                Segment {
                    words: Some(vec![
                        Word {
                            start: 5.5,
                            end: 5.9,
                            word: " ask".into(),
                            p: 0.91,
                        },
                        Word {
                            start: 5.9,
                            end: 6.2,
                            word: " not".into(),
                            p: 0.88,
                        },
                    ]),
                    ..seg(5.5, 10.51, " ask not what your country can do for you.  ")
                },
                seg(
                    3_725.062_5,
                    3_727.999_6,
                    "Past an hour & <still> going -> on",
                ),
            ],
            timings: Timings {
                decode_s: 0.01,
                transcribe_s: 0.5,
                rtf: 0.046,
            },
        }
    }

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
            assert_eq!(format.extension(), format.to_string());
        }
        let table = [
            ("TXT", Format::Txt),
            ("text", Format::Txt),
            (".srt", Format::Srt),
            ("WebVTT", Format::Vtt),
            (" json ", Format::Json),
            ("tsv", Format::Tsv),
        ];
        for (name, format) in table {
            assert_eq!(name.parse::<Format>(), Ok(format), "{name}");
        }
        let err = "docx".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("'docx'"), "{err}");
        assert!(err.to_string().contains("srt"), "{err}");
    }

    #[test]
    fn timestamps() {
        let table = [
            (0.0, "00:00:00,000"),
            (0.0004, "00:00:00,000"),
            (0.0006, "00:00:00,001"),
            (1.5, "00:00:01,500"),
            (59.9996, "00:01:00,000"),
            (3_661.234, "01:01:01,234"),
            (360_000.0, "100:00:00,000"),
            (-3.0, "00:00:00,000"),
            (f64::NAN, "00:00:00,000"),
            (f64::INFINITY, "00:00:00,000"),
        ];
        for (secs, expected) in table {
            assert_eq!(clock(millis(secs), ','), expected, "{secs}");
        }
        assert_eq!(clock(millis(1.5), '.'), "00:00:01.500");
    }

    #[test]
    fn txt_output() {
        let text = render(Format::Txt, &sample());
        assert_eq!(
            text,
            "And so my fellow Americans,\n\
             ask not what your country can do for you.\n\
             Past an hour & <still> going -> on\n"
        );
    }

    #[test]
    fn tsv_output_matches_whisper_cli_layout() {
        let tsv = render(Format::Tsv, &sample());
        assert_eq!(
            tsv,
            "start\tend\ttext\n\
             320\t5500\tAnd so my fellow Americans,\n\
             5500\t10510\task not what your country can do for you.\n\
             3725063\t3728000\tPast an hour & <still> going -> on\n"
        );
    }

    #[test]
    fn srt_output_exact() {
        let srt = render(Format::Srt, &sample());
        assert!(srt.starts_with(
            "1\n00:00:00,320 --> 00:00:05,500\nAnd so my fellow Americans,\n\n\
             2\n00:00:05,500 --> 00:00:10,510\nask not what your country can do for you.\n\n\
             3\n01:02:05,063 --> 01:02:08,000\n"
        ));
    }

    #[test]
    fn srt_parses_back_with_srtparse_and_aspasia() {
        let transcript = sample();
        let srt = render(Format::Srt, &transcript);
        let items = srtparse::from_str(&srt).expect("srtparse accepts our SRT");
        assert_eq!(items.len(), transcript.segments.len());
        for (i, (item, segment)) in items.iter().zip(&transcript.segments).enumerate() {
            assert_eq!(item.pos, i + 1);
            let start = std::time::Duration::from(item.start_time).as_millis() as u64;
            let end = std::time::Duration::from(item.end_time).as_millis() as u64;
            assert_eq!((start, end), (millis(segment.start), millis(segment.end)));
            assert_eq!(item.text.trim(), segment.text.trim());
        }
        let parsed: SubRipSubtitle = srt.parse().expect("aspasia accepts our SRT");
        assert_eq!(parsed.events().len(), transcript.segments.len());
        let last = &parsed.events()[2];
        assert_eq!(i64::from(last.start()), 3_725_063);
        assert_eq!(i64::from(last.end()), 3_728_000);
    }

    #[test]
    fn vtt_output_and_round_trip() {
        let transcript = sample();
        let vtt = render(Format::Vtt, &transcript);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.320 --> 00:00:05.500\nAnd so my"));
        assert!(vtt.contains("Past an hour &amp; &lt;still&gt; going -&gt; on\n"));
        let parsed: WebVttSubtitle = vtt.parse().expect("aspasia accepts our VTT");
        let cues = parsed.events();
        assert_eq!(cues.len(), transcript.segments.len());
        for (cue, segment) in cues.iter().zip(&transcript.segments) {
            assert_eq!(i64::from(cue.start()) as u64, millis(segment.start));
            assert_eq!(i64::from(cue.end()) as u64, millis(segment.end));
        }
        assert_eq!(cues[1].text, "ask not what your country can do for you.");
    }

    #[test]
    fn awkward_text_keeps_subtitles_valid() {
        let transcript = Transcript {
            segments: vec![
                seg(0.0, 1.0, "   "),
                seg(1.0, 2.0, "first line\n\n\n  second line  \r\n"),
                seg(3.0, 2.5, "ends before it starts"),
                seg(4.0, 5.0, "tab\tand\nnewline"),
            ],
            ..sample()
        };
        let srt = render(Format::Srt, &transcript);
        let items = srtparse::from_str(&srt).expect("valid SRT");
        assert_eq!(items.len(), 3, "{srt}");
        assert_eq!(items[0].pos, 1);
        assert_eq!(items[0].text.trim(), "first line\nsecond line");
        let (s, e) = (items[1].start_time, items[1].end_time);
        assert_eq!(std::time::Duration::from(s), std::time::Duration::from(e));
        let vtt: WebVttSubtitle = render(Format::Vtt, &transcript).parse().unwrap();
        assert_eq!(vtt.events().len(), 3);
        assert_eq!(
            render(Format::Txt, &transcript),
            "first line second line\nends before it starts\ntab and newline\n"
        );
        assert!(render(Format::Tsv, &transcript).ends_with("4000\t5000\ttab and newline\n"));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let transcript = sample();
        let json = render(Format::Json, &transcript);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&value),
            [
                "duration_s",
                "file",
                "language",
                "model",
                "segments",
                "timings"
            ]
        );
        assert_eq!(keys(&value["timings"]), ["decode_s", "rtf", "transcribe_s"]);
        assert_eq!(keys(&value["segments"][0]), ["end", "start", "text"]);
        assert_eq!(
            keys(&value["segments"][1]),
            ["end", "start", "text", "words"]
        );
        assert_eq!(
            keys(&value["segments"][1]["words"][0]),
            ["end", "p", "start", "word"]
        );
        assert_eq!(value["segments"][0]["start"], 0.32);
        // JSON keeps the text exactly as recognised and round-trips.
        let back: Transcript = serde_json::from_str(&json).unwrap();
        assert_eq!(back, transcript);
        // `words` may be absent on input too.
        let minimal = r#"{"start":1.0,"end":2.0,"text":"hi"}"#;
        assert_eq!(
            serde_json::from_str::<Segment>(minimal).unwrap(),
            seg(1.0, 2.0, "hi")
        );
    }

    #[test]
    fn streaming_matches_whole_transcript() {
        let transcript = sample();
        for format in Format::ALL.into_iter().filter(|f| f.supports_streaming()) {
            let mut writer = SegmentWriter::new(format, Vec::new()).unwrap();
            writer.begin().unwrap();
            writer.begin().unwrap(); // idempotent
            for segment in &transcript.segments {
                writer.segment(segment).unwrap();
            }
            let streamed = writer.finish().unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                render(format, &transcript),
                "{format}"
            );
        }
        let err = SegmentWriter::new(Format::Json, Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn empty_transcripts() {
        let empty = Transcript {
            segments: Vec::new(),
            ..sample()
        };
        assert_eq!(render(Format::Vtt, &empty), "WEBVTT\n\n");
        assert_eq!(render(Format::Tsv, &empty), "start\tend\ttext\n");
        assert_eq!(render(Format::Srt, &empty), "");
        assert_eq!(render(Format::Txt, &empty), "");
        assert!(render(Format::Json, &empty).contains("\"segments\": []"));
        // Writing through a `&mut dyn Write` works as the CLI will use it.
        let mut stdout_like: Vec<u8> = Vec::new();
        let out: &mut dyn Write = &mut stdout_like;
        write(Format::Vtt, &empty, out).unwrap();
        assert_eq!(stdout_like, b"WEBVTT\n\n");
    }
}
