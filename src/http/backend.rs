//! What the HTTP server needs from the rest of Serena: the [`ApiBackend`] trait and the
//! plain data that crosses it.
//!
//! The trait's methods block (they run whisper.cpp, llama.cpp, the synthesiser); the server
//! only ever calls them from `tokio::task::spawn_blocking`, after taking a permit from its
//! bounded queue, so an implementation never has to think about the async runtime.

use serde::Serialize;

use super::error::ApiError;

/// The engines behind the HTTP API.
///
/// Every method may block for as long as the work takes. `transcribe`, `speech` and `chat`
/// are run under the server's concurrency limit ([`ServerOptions::max_concurrent`]);
/// `models` and `metrics` are expected to be cheap and are not limited.
///
/// A panic inside a method is caught by the blocking pool and answered as a 500; it does not
/// take the server down, but it is still a bug.
///
/// [`ServerOptions::max_concurrent`]: super::ServerOptions::max_concurrent
pub trait ApiBackend: Send + Sync + 'static {
    /// Transcribes audio file bytes (any container: wav, mp3, flac, ogg, ...). With
    /// `req.translate` the text is English whatever the spoken language.
    ///
    /// # Errors
    /// [`ApiError`] with [`ApiErrorKind::BadInput`](super::ApiErrorKind::BadInput) for audio
    /// that cannot be decoded, a model error otherwise.
    fn transcribe(&self, req: TranscribeRequest) -> Result<Transcription, ApiError>;

    /// Synthesises `text` with an optional voice at `speed` (0.25 to 4.0, already checked).
    /// Returns mono signed 16-bit samples and their sample rate in Hz.
    ///
    /// # Errors
    /// [`ApiError`]: bad input (an unknown voice) or a model error.
    fn speech(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
    ) -> Result<(Vec<i16>, u32), ApiError>;

    /// Answers a conversation through the intent router and the language model.
    ///
    /// `on_delta` receives pieces of the answer as they are produced; when it returns `false`
    /// the client has gone away and the backend should stop early (returning what it has is
    /// fine). A backend that does not stream may never call it: the server then sends
    /// [`ChatOutcome::text`] as one piece.
    ///
    /// # Errors
    /// [`ApiError`]: bad input or a model error.
    fn chat(
        &self,
        messages: &[ChatMessage],
        max_tokens: Option<u32>,
        temperature: Option<f32>,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ChatOutcome, ApiError>;

    /// The models this server offers, for `GET /v1/models`.
    fn models(&self) -> Vec<ModelInfo>;

    /// Gauges the backend contributes to `GET /metrics`: `(name, help, value)`.
    ///
    /// `name` is a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), optionally followed
    /// by a label set such as `serena_model_loaded{model="tiny.en"}`; entries sharing a name
    /// are written as one metric family (the first entry's help wins). Entries with an
    /// invalid name or label set are skipped with a warning.
    fn metrics(&self) -> Vec<(String, String, f64)>;
}

/// One transcription or translation request, as parsed from the multipart form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TranscribeRequest {
    /// The uploaded file's bytes (never empty).
    pub audio: Vec<u8>,
    /// The uploaded file's name as the client sent it (`"audio"` when it sent none); only a
    /// hint for the container format.
    pub filename: String,
    /// The `model` field, if given.
    pub model: Option<String>,
    /// The `language` field (the spoken language, usually ISO 639-1), if given.
    pub language: Option<String>,
    /// The `prompt` field: text to condition the decoder, if given.
    pub prompt: Option<String>,
    /// The `temperature` field (0 to 1), if given.
    pub temperature: Option<f32>,
    /// `true` for `/v1/audio/translations`: the text must be English.
    pub translate: bool,
    /// `true` when the client asked for word timestamps (`timestamp_granularities[]=word`).
    pub word_timestamps: bool,
}

/// A finished transcription.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Transcription {
    /// The spoken language as the model identified it (or as requested).
    pub language: String,
    /// The audio's duration in seconds.
    pub duration_s: f64,
    /// The whole text.
    pub text: String,
    /// The text in timed segments, in time order.
    pub segments: Vec<Segment>,
}

/// A timed stretch of a transcription.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Segment {
    /// The segment's index, from 0.
    pub id: u32,
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds.
    pub end: f64,
    /// The segment's text.
    pub text: String,
    /// Word timings, when they were asked for and the model produced them.
    pub words: Option<Vec<Word>>,
}

/// One timed word.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Word {
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds.
    pub end: f64,
    /// The word (may carry a leading space or punctuation, as the model spelled it).
    pub word: String,
}

/// Who said a chat message. OpenAI's `developer` role arrives as [`ChatRole::System`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions for the assistant (`system` or `developer`).
    System,
    /// The person.
    User,
    /// The assistant's earlier replies.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of a conversation, its content flattened to text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said (text parts joined with newlines).
    pub content: String,
}

/// Why the answer ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The answer is complete (or the client stopped reading).
    #[default]
    Stop,
    /// The answer hit `max_tokens`.
    Length,
}

/// Token counts, when the backend knows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens in the answer.
    pub completion_tokens: u32,
}

/// A finished chat answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatOutcome {
    /// The whole answer.
    pub text: String,
    /// What produced it (`"router"`, `"llm"`, `"fallback"`, ...); sent to clients as the
    /// non-standard `serena_source` field.
    pub source: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts, if known; the response's `usage` is left out otherwise.
    pub usage: Option<TokenUsage>,
}

/// A model as `GET /v1/models` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The id clients pass as `model`.
    pub id: String,
    /// Who provides it (OpenAI's `owned_by`), e.g. `"serena"`.
    pub owned_by: String,
    /// When it was made available, in Unix seconds (0 when unknown).
    pub created: u64,
}
