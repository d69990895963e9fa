//! `/v1/audio/transcriptions`, `/v1/audio/translations` and `/v1/audio/speech`.

use std::convert::Infallible;
use std::io::Cursor;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::backend::Transcription;
use super::error::ApiError;
use super::form::{self, truncate, ResponseFormat, TranscriptionForm};
use super::state::{require_json, AppState};
use super::subtitles;

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    transcribe(state, headers, body, false).await
}

/// `POST /v1/audio/translations`: like transcriptions, but the text is English.
pub(crate) async fn translations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    transcribe(state, headers, body, true).await
}

async fn transcribe(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    translate: bool,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::bad_input(
            "expected a multipart/form-data body with a boundary (fields: file, model, ...)",
        )
    })?;
    let bytes = state.read_body(&headers, body).await?;
    let TranscriptionForm {
        mut request,
        response_format,
        segment_granularity,
        stream,
    } = form::parse(bytes, &boundary, state.opts.max_body_bytes as u64).await?;
    request.translate = translate;
    let words = request.word_timestamps;
    tracing::info!(
        bytes = request.audio.len(),
        filename = ?truncate(&request.filename, 64),
        translate,
        ?response_format,
        stream,
        "transcription request"
    );

    let result = state
        .run_backend(move |backend| backend.transcribe(request))
        .await?;
    let task = if translate { "translate" } else { "transcribe" };
    if stream {
        return Ok(transcript_events(&result).into_response());
    }
    Ok(match response_format {
        ResponseFormat::Json => Json(json!({ "text": result.text })).into_response(),
        ResponseFormat::Text => plain(format!("{}\n", result.text.trim())),
        ResponseFormat::Srt => plain(subtitles::srt(&result)),
        ResponseFormat::Vtt => {
            let mut response = plain(subtitles::vtt(&result));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vtt; charset=utf-8"),
            );
            response
        }
        ResponseFormat::VerboseJson => {
            Json(verbose_json(&result, task, segment_granularity, words)).into_response()
        }
    })
}

fn plain(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// OpenAI's `verbose_json`. Whisper's per-segment decoder statistics that Serena does not
/// report (`tokens`, `avg_logprob`, `compression_ratio`, `no_speech_prob`) are given neutral
/// values so strict clients that require the fields still parse the response.
fn verbose_json(t: &Transcription, task: &str, segments: bool, words: bool) -> Value {
    let mut out = json!({
        "task": task,
        "language": t.language,
        "duration": finite(t.duration_s),
        "text": t.text,
    });
    if segments {
        out["segments"] = t
            .segments
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "seek": subtitles::millis(s.start) / 10,
                    "start": finite(s.start),
                    "end": finite(s.end),
                    "text": s.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": 0.0,
                    "compression_ratio": 0.0,
                    "no_speech_prob": 0.0,
                })
            })
            .collect();
    }
    if words {
        out["words"] = t
            .segments
            .iter()
            .flat_map(|s| s.words.iter().flatten())
            .map(|w| json!({ "word": w.word, "start": finite(w.start), "end": finite(w.end) }))
            .collect();
    }
    out
}

/// JSON has no NaN or infinity.
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// The transcription as OpenAI's streaming events: one `transcript.text.delta` per segment,
/// then `transcript.text.done` with the whole text. (The backend transcribes a file in one
/// go, so the events come at the end; the format is what streaming clients expect.)
fn transcript_events(
    t: &Transcription,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut payloads: Vec<Value> = t
        .segments
        .iter()
        .filter(|s| !s.text.is_empty())
        .map(|s| json!({ "type": "transcript.text.delta", "delta": s.text }))
        .collect();
    if payloads.is_empty() && !t.text.is_empty() {
        payloads.push(json!({ "type": "transcript.text.delta", "delta": t.text }));
    }
    payloads.push(json!({ "type": "transcript.text.done", "text": t.text }));
    let events: Vec<Result<Event, Infallible>> = payloads
        .into_iter()
        .map(|p| Ok(Event::default().data(p.to_string())))
        .collect();
    Sse::new(stream::iter(events))
}

/// The body of `POST /v1/audio/speech`.
#[derive(Debug, Deserialize)]
struct SpeechRequest {
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    input: String,
    #[serde(default)]
    voice: Option<VoiceParam>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    #[serde(default)]
    stream_format: Option<String>,
}

/// OpenAI's `voice` is a name or `{"id": ...}` (custom voices).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VoiceParam {
    Name(String),
    Object { id: String },
}

/// The longest accepted `input`, in characters (OpenAI's limit).
pub const MAX_SPEECH_INPUT: usize = 4096;

/// `POST /v1/audio/speech`: `wav` (the default here; OpenAI's default `mp3` is not offered)
/// or `pcm` (raw signed 16-bit little-endian mono at the rate in `X-Sample-Rate`).
pub(crate) async fn speech(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = state.read_body(&headers, body).await?;
    let req: SpeechRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_input(format!("invalid JSON body: {e}")))?;
    let input = req.input.trim().to_string();
    if input.is_empty() {
        return Err(ApiError::bad_input("'input' is empty").with_param("input"));
    }
    if input.chars().count() > MAX_SPEECH_INPUT {
        return Err(ApiError::bad_input(format!(
            "'input' is longer than {MAX_SPEECH_INPUT} characters"
        ))
        .with_param("input"));
    }
    let wav = match req.response_format.as_deref().map(str::trim) {
        None | Some("wav") => true,
        Some("pcm") => false,
        Some(other) => {
            return Err(ApiError::bad_input(format!(
                "unsupported response_format '{}': this server produces 'wav' or 'pcm' only",
                truncate(other, 32)
            ))
            .with_param("response_format"))
        }
    };
    if let Some(format) = req.stream_format.as_deref().filter(|f| *f != "audio") {
        return Err(ApiError::bad_input(format!(
            "unsupported stream_format '{}': only 'audio' is supported",
            truncate(format, 32)
        ))
        .with_param("stream_format"));
    }
    let speed = req.speed.unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return Err(ApiError::bad_input("'speed' must be between 0.25 and 4.0").with_param("speed"));
    }
    let voice = req.voice.map(|v| match v {
        VoiceParam::Name(name) | VoiceParam::Object { id: name } => name,
    });
    tracing::info!(chars = input.chars().count(), voice = ?voice, speed, wav, "speech request");

    let (samples, rate) = state
        .run_backend(move |backend| backend.speech(&input, voice.as_deref(), speed))
        .await?;
    if rate == 0 {
        return Err(ApiError::internal(
            "the synthesiser reported a sample rate of 0",
        ));
    }
    let rate_header = HeaderValue::from(rate);
    let mut response = if wav {
        let bytes = encode_wav(&samples, rate)?;
        ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response()
    } else {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in &samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        ([(header::CONTENT_TYPE, "audio/pcm")], bytes).into_response()
    };
    response.headers_mut().insert("x-sample-rate", rate_header);
    Ok(response)
}

/// Mono 16-bit WAV in memory.
pub fn encode_wav(samples: &[i16], rate: u32) -> Result<Vec<u8>, ApiError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let failed = |e: hound::Error| ApiError::internal(format!("could not encode WAV: {e}"));
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut writer = hound::WavWriter::new(&mut cursor, spec).map_err(failed)?;
    for s in samples {
        writer.write_sample(*s).map_err(failed)?;
    }
    writer.finalize().map_err(failed)?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let bytes = encode_wav(&samples, 22_050).expect("encode");
        let reader = hound::WavReader::new(Cursor::new(bytes)).expect("valid wav");
        assert_eq!(reader.spec().sample_rate, 22_050);
        assert_eq!(reader.spec().channels, 1);
        let back: Vec<i16> = reader
            .into_samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(back, samples);
        assert!(encode_wav(&[], 16_000).is_ok());
    }
}
