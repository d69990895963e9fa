//! `POST /v1/chat/completions`, streaming and not.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::backend::{ChatMessage, ChatOutcome, ChatRole};
use super::error::ApiError;
use super::form::truncate;
use super::state::{require_json, AppState};

/// The route, as the metrics name it.
const ROUTE: &str = "/v1/chat/completions";

/// The `model` echoed when the request names none.
const DEFAULT_MODEL: &str = "serena";

/// Pieces buffered between the backend and a slow client before the backend waits.
const STREAM_BUFFER: usize = 64;

/// The request body; fields Serena does not use are ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<RawMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Option<RawContent>,
}

/// A string, or an array of content parts of which only `text` parts are supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawContent {
    Text(String),
    Parts(Vec<RawPart>),
}

#[derive(Debug, Deserialize)]
struct RawPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// A validated request.
#[derive(Debug)]
struct Chat {
    model: String,
    messages: Vec<ChatMessage>,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
}

fn validate(req: ChatRequest) -> Result<Chat, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::bad_input("'messages' is empty").with_param("messages"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_input("only n=1 is supported").with_param("n"));
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad_input("'temperature' must be between 0 and 2")
                .with_param("temperature"));
        }
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    if max_tokens == Some(0) {
        return Err(ApiError::bad_input("'max_tokens' must be at least 1").with_param("max_tokens"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => ChatRole::System,
            "user" => ChatRole::User,
            "assistant" => ChatRole::Assistant,
            "tool" => ChatRole::Tool,
            other => {
                return Err(ApiError::bad_input(format!(
                    "messages[{i}]: unsupported role '{}'",
                    truncate(other, 32)
                ))
                .with_param(format!("messages[{i}].role")))
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(RawContent::Text(text)) => text,
            Some(RawContent::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(text)) => texts.push(text),
                        (kind, _) => {
                            return Err(ApiError::bad_input(format!(
                                "messages[{i}]: content parts of type '{}' are not supported (text only)",
                                truncate(kind, 32)
                            ))
                            .with_param(format!("messages[{i}].content")))
                        }
                    }
                }
                texts.join("\n")
            }
        };
        messages.push(ChatMessage { role, content });
    }
    Ok(Chat {
        model: req
            .model
            .filter(|m| !m.trim().is_empty())
            .map(|m| truncate(&m, 128).to_string())
            .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        messages,
        stream: req.stream.unwrap_or(false),
        include_usage: req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens,
        temperature: req.temperature,
    })
}

/// `chatcmpl-…`: unique within this process and unlikely to repeat across restarts.
fn completion_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!("chatcmpl-{nanos:x}{n:04x}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn usage_json(outcome: &ChatOutcome) -> Option<Value> {
    outcome.usage.map(|u| {
        json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
        })
    })
}

/// `POST /v1/chat/completions`.
pub(crate) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = state.read_body(&headers, body).await?;
    let req: ChatRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_input(format!("invalid JSON body: {e}")))?;
    let chat = validate(req)?;
    tracing::info!(
        messages = chat.messages.len(),
        stream = chat.stream,
        max_tokens = ?chat.max_tokens,
        "chat request"
    );
    if chat.stream {
        return stream_completion(state, chat).await;
    }

    let Chat {
        model,
        messages,
        max_tokens,
        temperature,
        ..
    } = chat;
    let outcome = state
        .run_backend(move |backend| backend.chat(&messages, max_tokens, temperature, &mut |_| true))
        .await?;
    let mut body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": outcome.text },
            "logprobs": null,
            "finish_reason": outcome.finish_reason,
        }],
        "serena_source": outcome.source,
    });
    if let Some(usage) = usage_json(&outcome) {
        body["usage"] = usage;
    }
    Ok(Json(body).into_response())
}

/// What the blocking task sends to the response stream.
enum Piece {
    Delta(String),
    Done(Result<ChatOutcome, ApiError>),
}

/// Streams the answer as `chat.completion.chunk` events, then `[DONE]`.
///
/// The backend runs on the blocking pool and hands pieces over a bounded channel; when the
/// client goes away the channel closes and `on_delta` returns `false`. The response starts
/// only once the first piece (or the outcome) is there, so a request that fails at once gets
/// a proper error status instead of an error event.
async fn stream_completion(state: AppState, chat: Chat) -> Result<Response, ApiError> {
    let permit = state.acquire().await?;
    let backend = std::sync::Arc::clone(&state.backend);
    let (tx, mut rx) = mpsc::channel::<Piece>(STREAM_BUFFER);
    let Chat {
        model,
        messages,
        include_usage,
        max_tokens,
        temperature,
        ..
    } = chat;
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let delta_tx = tx.clone();
        let mut on_delta = |piece: &str| {
            piece.is_empty()
                || delta_tx
                    .blocking_send(Piece::Delta(piece.to_string()))
                    .is_ok()
        };
        let outcome = backend.chat(&messages, max_tokens, temperature, &mut on_delta);
        let _ = tx.blocking_send(Piece::Done(outcome));
    });
    // A panic inside the backend drops the sender without a `Done`; the stream reports it.
    drop(task);

    let first = match rx.recv().await {
        Some(Piece::Done(Err(err))) => return Err(err),
        None => return Err(ApiError::internal("the backend failed unexpectedly")),
        Some(piece) => piece,
    };

    let id = completion_id();
    let created = unix_now();
    let chunk = move |delta: Value, finish: Option<Value>, extra: Option<(&str, Value)>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if let Some((key, value)) = extra {
            c[key] = value;
        }
        c
    };
    let metrics = std::sync::Arc::clone(&state.metrics);

    // Unfold over the channel, turning pieces into events; `sent_text` records whether any
    // delta went out, so a backend that never streamed still has its text sent.
    struct Progress {
        rx: mpsc::Receiver<Piece>,
        pending: Option<Piece>,
        sent_text: bool,
        finished: bool,
    }
    let start = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        None,
        None,
    )];
    let progress = Progress {
        rx,
        pending: Some(first),
        sent_text: false,
        finished: false,
    };
    let events = stream::unfold((progress, chunk), move |(mut p, chunk)| {
        let metrics = std::sync::Arc::clone(&metrics);
        async move {
            if p.finished {
                return None;
            }
            let piece = match p.pending.take() {
                Some(piece) => Some(piece),
                None => p.rx.recv().await,
            };
            let out: Vec<Value> = match piece {
                Some(Piece::Delta(text)) => {
                    p.sent_text = true;
                    vec![chunk(json!({ "content": text }), None, None)]
                }
                Some(Piece::Done(Ok(outcome))) => {
                    p.finished = true;
                    let mut out = Vec::new();
                    if !p.sent_text && !outcome.text.is_empty() {
                        out.push(chunk(json!({ "content": outcome.text }), None, None));
                    }
                    out.push(chunk(
                        json!({}),
                        Some(json!(outcome.finish_reason)),
                        Some(("serena_source", json!(outcome.source))),
                    ));
                    if include_usage {
                        let mut last = chunk(json!({}), None, None);
                        last["choices"] = json!([]);
                        last["usage"] = usage_json(&outcome).unwrap_or(Value::Null);
                        out.push(last);
                    }
                    out
                }
                Some(Piece::Done(Err(err))) => {
                    p.finished = true;
                    metrics.record_stream_error(ROUTE);
                    tracing::warn!("chat stream failed: {err}");
                    vec![err.body()]
                }
                None => {
                    p.finished = true;
                    metrics.record_stream_error(ROUTE);
                    tracing::error!("the backend stopped without an outcome (panic?)");
                    vec![ApiError::internal("the backend failed unexpectedly").body()]
                }
            };
            Some((stream::iter(out), (p, chunk)))
        }
    })
    .flatten();
    let all = stream::iter(start)
        .chain(events)
        .map(|v| Ok::<Event, Infallible>(Event::default().data(v.to_string())))
        .chain(stream::once(async { Ok(Event::default().data("[DONE]")) }));
    Ok(Sse::new(all)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Chat, ApiError> {
        let req: ChatRequest =
            serde_json::from_str(body).map_err(|e| ApiError::bad_input(e.to_string()))?;
        validate(req)
    }

    #[test]
    fn content_shapes() {
        let chat = parse(
            r#"{"model":"m","messages":[
                {"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null}],
                "max_tokens":5,"max_completion_tokens":7,"stream":true,
                "stream_options":{"include_usage":true},"tools":[]}"#,
        )
        .expect("valid");
        assert_eq!(chat.messages[0].role, ChatRole::System);
        assert_eq!(chat.messages[1].content, "a\nb");
        assert_eq!(chat.messages[2].content, "");
        assert_eq!(chat.max_tokens, Some(7));
        assert!(chat.stream && chat.include_usage);
        assert_eq!(chat.model, "m");
    }

    #[test]
    fn rejections() {
        for body in [
            r#"{"messages":[]}"#,
            r#"{"messages":[{"role":"wizard","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":9}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            r#"{"messages":[{"role":"user","content":5}]}"#,
            r#"{"model":"m"}"#,
        ] {
            assert!(parse(body).is_err(), "{body}");
        }
    }

    #[test]
    fn ids_differ() {
        assert_ne!(completion_id(), completion_id());
    }
}
