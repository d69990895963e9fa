//! The multipart form of `/v1/audio/transcriptions` and `/v1/audio/translations`.
//!
//! The body is already in memory (read within the body limit), and is parsed with `multer`
//! under the same limit. Text fields must be UTF-8 and at most [`MAX_TEXT_FIELD`] bytes;
//! unknown fields are ignored (OpenAI clients send extras such as `include[]` or
//! `chunking_strategy`); `file` is required, non-empty and may appear once. Every failure is
//! a 400 (or 413 over the limit), never a panic.

use bytes::Bytes;
use futures_util::stream;

use super::backend::TranscribeRequest;
use super::error::ApiError;

/// The longest accepted text field, in bytes.
pub const MAX_TEXT_FIELD: u64 = 64 * 1024;

/// The most fields accepted in one form.
pub const MAX_FIELDS: usize = 64;

/// How the transcription is returned (`response_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `{"text": ...}` (the default).
    #[default]
    Json,
    /// The text alone, `text/plain`.
    Text,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// OpenAI's verbose JSON: language, duration, segments, words.
    VerboseJson,
}

impl ResponseFormat {
    /// Parses a `response_format` value.
    ///
    /// # Errors
    /// A 400 naming the accepted values.
    pub fn parse(value: &str) -> Result<Self, ApiError> {
        match value.trim() {
            "json" => Ok(ResponseFormat::Json),
            "text" => Ok(ResponseFormat::Text),
            "srt" => Ok(ResponseFormat::Srt),
            "vtt" => Ok(ResponseFormat::Vtt),
            "verbose_json" => Ok(ResponseFormat::VerboseJson),
            other => Err(ApiError::bad_input(format!(
                "unsupported response_format '{}': expected one of json, text, srt, vtt, verbose_json",
                truncate(other, 64)
            ))
            .with_param("response_format")),
        }
    }
}

/// A parsed transcription form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TranscriptionForm {
    /// What goes to the backend (`translate` is set by the route, not the form).
    pub request: TranscribeRequest,
    /// How to answer.
    pub response_format: ResponseFormat,
    /// `timestamp_granularities[]` included `segment` (or named nothing).
    pub segment_granularity: bool,
    /// `stream=true`: answer with server-sent events.
    pub stream: bool,
}

/// Parses the multipart `body` with `boundary`, within `max_bytes`.
///
/// # Errors
/// A 400 for anything malformed or missing, a 413 over `max_bytes`.
pub async fn parse(
    body: Bytes,
    boundary: &str,
    max_bytes: u64,
) -> Result<TranscriptionForm, ApiError> {
    let limits = multer::SizeLimit::new()
        .whole_stream(max_bytes)
        .per_field(MAX_TEXT_FIELD)
        .for_field("file", max_bytes);
    let constraints = multer::Constraints::new().size_limit(limits);
    let body = stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);

    let mut form = TranscriptionForm::default();
    let mut file: Option<(Bytes, String)> = None;
    let mut granularities: Vec<String> = Vec::new();
    let mut fields = 0usize;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(ApiError::bad_input(format!(
                "the form has more than {MAX_FIELDS} fields"
            )));
        }
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if file.is_some() {
                return Err(
                    ApiError::bad_input("the form has more than one 'file' field")
                        .with_param("file"),
                );
            }
            let filename = field
                .file_name()
                .map(|f| truncate(f, 255).to_string())
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "audio".to_string());
            let bytes = field.bytes().await.map_err(multipart_error)?;
            file = Some((bytes, filename));
            continue;
        }
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(ApiError::bad_input(format!(
                "form field '{}' is not valid UTF-8",
                truncate(&name, 64)
            ))
            .with_param(name));
        };
        let value = text.trim();
        match name.as_str() {
            "model" => form.request.model = non_empty(value),
            "language" => form.request.language = parse_language(value)?,
            "prompt" => form.request.prompt = non_empty(value),
            "temperature" => form.request.temperature = parse_temperature(value)?,
            "response_format" => form.response_format = ResponseFormat::parse(value)?,
            "stream" => form.stream = parse_bool(value, "stream")?,
            "timestamp_granularities[]" | "timestamp_granularities" => {
                granularities.push(value.to_string())
            }
            _ => tracing::debug!("ignoring form field {:?}", truncate(&name, 64)),
        }
    }

    let Some((audio, filename)) = file else {
        return Err(
            ApiError::bad_input("the form has no 'file' field (the audio to transcribe)")
                .with_param("file"),
        );
    };
    if audio.is_empty() {
        return Err(ApiError::bad_input("the uploaded file is empty").with_param("file"));
    }
    form.request.audio = audio.to_vec();
    form.request.filename = filename;

    form.segment_granularity = granularities.is_empty();
    for g in &granularities {
        match g.as_str() {
            "word" => form.request.word_timestamps = true,
            "segment" => form.segment_granularity = true,
            other => {
                return Err(ApiError::bad_input(format!(
                    "unsupported timestamp_granularities[] value '{}': expected segment or word",
                    truncate(other, 64)
                ))
                .with_param("timestamp_granularities[]"))
            }
        }
    }
    if form.stream
        && !matches!(
            form.response_format,
            ResponseFormat::Json | ResponseFormat::Text
        )
    {
        return Err(
            ApiError::bad_input("stream=true needs response_format json or text")
                .with_param("stream"),
        );
    }
    Ok(form)
}

/// Maps multer's errors: over a size limit is 413 for the file, 400 for a text field.
fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { limit } => ApiError::too_large(format!(
            "the form is larger than the limit of {limit} bytes"
        )),
        multer::Error::FieldSizeExceeded { limit, field_name } => {
            let name = field_name.unwrap_or_default();
            if name == "file" {
                ApiError::too_large(format!(
                    "the uploaded file is larger than the limit of {limit} bytes"
                ))
            } else {
                ApiError::bad_input(format!(
                    "form field '{}' is longer than {limit} bytes",
                    truncate(&name, 64)
                ))
                .with_param(name)
            }
        }
        other => ApiError::bad_input(format!("malformed multipart form: {other}")),
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// A language code: letters and hyphens, at most 16 (`en`, `pt-BR`, `auto`); empty is none.
fn parse_language(value: &str) -> Result<Option<String>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() <= 16 && value.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
        Ok(Some(value.to_ascii_lowercase()))
    } else {
        Err(ApiError::bad_input(format!(
            "invalid language '{}': expected a code such as 'en'",
            truncate(value, 32)
        ))
        .with_param("language"))
    }
}

/// A temperature between 0 and 1; empty is none.
fn parse_temperature(value: &str) -> Result<Option<f32>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
        _ => Err(ApiError::bad_input(format!(
            "invalid temperature '{}': expected a number from 0 to 1",
            truncate(value, 32)
        ))
        .with_param("temperature")),
    }
}

/// `true`/`false` (also `1`/`0`), case-insensitively.
fn parse_bool(value: &str, param: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(ApiError::bad_input(format!(
            "invalid {param} '{}': expected true or false",
            truncate(value, 32)
        ))
        .with_param(param)),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiErrorKind;

    const B: &str = "XyZ";

    fn part(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
            .into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn file(bytes: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn form(parts: &[Vec<u8>]) -> Bytes {
        let mut out: Vec<u8> = parts.concat();
        out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        Bytes::from(out)
    }

    fn run(body: Bytes) -> Result<TranscriptionForm, ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .block_on(parse(body, B, 1 << 20))
    }

    #[test]
    fn full_form() {
        let f = run(form(&[
            file(b"RIFF...."),
            part("model", b"whisper-1"),
            part("language", b"EN"),
            part("prompt", b"Serena"),
            part("temperature", b"0.2"),
            part("response_format", b"verbose_json"),
            part("timestamp_granularities[]", b"word"),
            part("timestamp_granularities[]", b"segment"),
            part("include[]", b"logprobs"),
        ]))
        .expect("valid form");
        assert_eq!(f.request.audio, b"RIFF....");
        assert_eq!(f.request.filename, "a.wav");
        assert_eq!(f.request.model.as_deref(), Some("whisper-1"));
        assert_eq!(f.request.language.as_deref(), Some("en"));
        assert_eq!(f.request.prompt.as_deref(), Some("Serena"));
        assert_eq!(f.request.temperature, Some(0.2));
        assert!(f.request.word_timestamps && f.segment_granularity && !f.stream);
        assert_eq!(f.response_format, ResponseFormat::VerboseJson);
    }

    #[test]
    fn defaults() {
        let f = run(form(&[file(b"x")])).expect("valid form");
        assert_eq!(f.response_format, ResponseFormat::Json);
        assert!(f.segment_granularity && !f.request.word_timestamps);
        let words_only = run(form(&[
            file(b"x"),
            part("timestamp_granularities[]", b"word"),
        ]))
        .expect("valid");
        assert!(!words_only.segment_granularity);
    }

    #[test]
    fn rejections() {
        let cases: Vec<(Bytes, &str)> = vec![
            (form(&[part("model", b"whisper-1")]), "no 'file'"),
            (form(&[file(b"")]), "empty"),
            (form(&[file(b"a"), file(b"b")]), "more than one"),
            (form(&[file(b"a"), part("prompt", b"\xff\xfe")]), "UTF-8"),
            (
                form(&[file(b"a"), part("response_format", b"mp3")]),
                "response_format",
            ),
            (
                form(&[file(b"a"), part("temperature", b"NaN")]),
                "temperature",
            ),
            (
                form(&[file(b"a"), part("temperature", b"3")]),
                "temperature",
            ),
            (
                form(&[file(b"a"), part("language", b"en; rm -rf")]),
                "language",
            ),
            (form(&[file(b"a"), part("stream", b"maybe")]), "stream"),
            (
                form(&[file(b"a"), part("timestamp_granularities[]", b"char")]),
                "granularities",
            ),
            (
                form(&[
                    file(b"a"),
                    part("stream", b"true"),
                    part("response_format", b"srt"),
                ]),
                "stream=true",
            ),
            (Bytes::from_static(b"garbage"), "multipart"),
            (Bytes::new(), "multipart"),
        ];
        for (body, needle) in cases {
            let err = run(body).expect_err(needle);
            assert_eq!(err.kind, ApiErrorKind::BadInput, "{needle}: {err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn long_text_field_is_400_and_big_file_is_413() {
        let long = vec![b'a'; MAX_TEXT_FIELD as usize + 1];
        let err = run(form(&[file(b"a"), part("prompt", &long)])).expect_err("too long");
        assert_eq!(err.kind, ApiErrorKind::BadInput);
        let big = vec![0u8; (1 << 20) + 1];
        let err = run(form(&[file(&big)])).expect_err("too big");
        assert_eq!(err.kind, ApiErrorKind::TooLarge);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
