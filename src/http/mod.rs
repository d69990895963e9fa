//! An OpenAI-compatible HTTP API over Serena's engines.
//!
//! # Endpoints
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/audio/transcriptions` | multipart `file` (+ `model`, `language`, `prompt`, `temperature`, `response_format` json/text/srt/vtt/verbose_json, `timestamp_granularities[]`, `stream`) |
//! | `POST /v1/audio/translations` | the same, answered in English |
//! | `POST /v1/audio/speech` | JSON `{model, input, voice, response_format: wav/pcm, speed}` |
//! | `POST /v1/chat/completions` | OpenAI chat request, streaming (`data:` chunks, `[DONE]`) or not; adds `serena_source` |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the backend's models, OpenAI list shape |
//! | `GET /health` | `{"status":"ok", ...}`, never behind the token |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//!
//! Errors are OpenAI-shaped: `{"error": {"message", "type", "param", "code"}}` ([`ApiError`]).
//!
//! # Safety limits ([`ServerOptions`])
//!
//! * A bearer token, when set, is required on every route but `/health` (401 otherwise);
//!   [`check_bind`] refuses to listen beyond loopback without one.
//! * Bodies over `max_body_bytes` are refused with 413 (by `Content-Length` before reading,
//!   or as soon as the limit is crossed); a body must arrive within `request_timeout` (408)
//!   and the request head within `header_read_timeout` (the connection is closed).
//! * Backend calls go through a bounded queue: at most `max_concurrent` run at once, and a
//!   request that finds no slot within `queue_wait` gets 503 with `Retry-After`.
//! * One client address may have at most `per_client_max_concurrent` backend requests in
//!   flight (429 beyond that).
//! * At most `max_connections` connections are served at once; on shutdown the server stops
//!   accepting, lets requests finish for up to `drain_timeout`, then closes the rest.
//!
//! The backend ([`ApiBackend`]) is blocking; every call runs on tokio's blocking pool.

mod audio;
mod backend;
mod chat;
mod error;
mod form;
mod metrics;
mod middleware;
mod state;
mod subtitles;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::Service;

pub use backend::{
    ApiBackend, ChatMessage, ChatOutcome, ChatRole, FinishReason, ModelInfo, Segment, TokenUsage,
    TranscribeRequest, Transcription, Word,
};
pub use error::{ApiError, ApiErrorKind};
pub use form::{ResponseFormat, TranscriptionForm, MAX_TEXT_FIELD};
pub use metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

use state::AppState;

/// The server's limits. [`Default`] suits a single-user machine.
#[derive(Clone)]
pub struct ServerOptions {
    /// Bearer token required on every route except `/health`; `None` (or empty) for none.
    pub token: Option<String>,
    /// Largest accepted request body, in bytes (OpenAI's limit is 25 MiB).
    pub max_body_bytes: usize,
    /// Backend calls that may run at once (at least 1).
    pub max_concurrent: usize,
    /// A semaphore shared with other servers over the same engines (its permits then
    /// replace `max_concurrent`), so that Wyoming and HTTP together run no more engine
    /// calls than the machine has room for.
    pub engine_slots: Option<Arc<Semaphore>>,
    /// How long a request waits for a backend slot before it is answered 503.
    pub queue_wait: Duration,
    /// How long the request body may take to arrive (408 after that).
    pub request_timeout: Duration,
    /// Backend requests one client address may have in flight (429 beyond); 0 for no limit.
    pub per_client_max_concurrent: usize,
    /// How long a request head may take to arrive (the connection is closed after that);
    /// also how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress before closing their connections.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            token: None,
            max_body_bytes: 25 * 1024 * 1024,
            max_concurrent: 1,
            engine_slots: None,
            queue_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            per_client_max_concurrent: 4,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent", &self.max_concurrent)
            .field("queue_wait", &self.queue_wait)
            .field("request_timeout", &self.request_timeout)
            .field("per_client_max_concurrent", &self.per_client_max_concurrent)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// The shortest token accepted for a bind beyond loopback.
pub const MIN_REMOTE_TOKEN_LEN: usize = 16;

/// Refuses to serve beyond loopback without a token: `Ok` for a loopback address (IPv4
/// `127.0.0.0/8`, `::1`, or IPv4-mapped loopback), or for any address with a token of at
/// least [`MIN_REMOTE_TOKEN_LEN`] characters.
///
/// # Errors
/// A message for the user saying what to change.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        None => Err(format!(
            "refusing to listen on {addr} without an API token: anyone on the network could use it; \
             set a token, or listen on 127.0.0.1"
        )),
        Some(t) if t.chars().count() < MIN_REMOTE_TOKEN_LEN => Err(format!(
            "refusing to listen on {addr} with an API token shorter than {MIN_REMOTE_TOKEN_LEN} characters"
        )),
        Some(_) => Ok(()),
    }
}

/// The API as an axum [`Router`] (with its middleware and state), for [`serve`] or for
/// driving directly in tests. Without [`axum::extract::ConnectInfo`] every request counts as
/// one client, `0.0.0.0`.
pub fn router<B: ApiBackend>(backend: Arc<B>, opts: ServerOptions) -> Router {
    let backend: Arc<dyn ApiBackend> = backend;
    build_router(AppState::new(backend, opts))
}

fn build_router(state: AppState) -> Router {
    let limited = Router::new()
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/translations", post(audio::translations))
        .route("/v1/audio/speech", post(audio::speech))
        .route("/v1/chat/completions", post(chat::completions))
        .route_layer(from_fn_with_state(state.clone(), middleware::per_client));
    Router::new()
        .merge(limited)
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), middleware::auth))
        .layer(from_fn_with_state(state.clone(), middleware::track))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in progress finish (at most [`ServerOptions::drain_timeout`]) and returns.
///
/// HTTP/1.1 with keep-alive; the connection's peer address is each request's
/// [`ConnectInfo`](axum::extract::ConnectInfo), used for the per-client limit.
///
/// # Errors
/// Only if the listener's address cannot be read; accept errors are logged and retried.
pub async fn serve<B: ApiBackend>(
    listener: TcpListener,
    backend: Arc<B>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let header_timeout = opts.header_read_timeout;
    let drain = opts.drain_timeout;
    let connections = Arc::new(Semaphore::new(
        opts.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    tracing::info!(%local, options = ?opts, "HTTP API listening");
    let mut make_service =
        router(backend, opts).into_make_service_with_connect_info::<SocketAddr>();
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    if !is_per_connection(&err) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let closing = closing_rx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_connection_end(remote, result),
                () = closing_signal(closing) => {
                    conn.as_mut().graceful_shutdown();
                    log_connection_end(remote, conn.await);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    let _ = closing_tx.send(true);
    tracing::info!(connections = tasks.len(), "HTTP API shutting down");
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "requests still running after {} ms; closing their connections",
            drain.as_millis()
        );
        tasks.shutdown().await;
    }
    tracing::info!("HTTP API stopped");
    Ok(())
}

/// Completes once the server starts closing (or is gone).
async fn closing_signal(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Accept errors that concern one connection only (retry at once).
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

fn log_connection_end(remote: SocketAddr, result: Result<(), hyper::Error>) {
    match result {
        Ok(()) => tracing::trace!(%remote, "connection closed"),
        Err(err) if err.is_timeout() => tracing::debug!(%remote, "connection timed out: {err}"),
        Err(err) => tracing::debug!(%remote, "connection ended: {err}"),
    }
}

/// `GET /v1/models`.
async fn models(State(state): State<AppState>) -> Result<Response, ApiError> {
    let models = state.query_backend(|b| b.models()).await?;
    let data: Vec<_> = models.iter().map(model_json).collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
}

/// `GET /v1/models/{id}`.
async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let models = state.query_backend(|b| b.models()).await?;
    match models.iter().find(|m| m.id == id) {
        Some(m) => Ok(Json(model_json(m)).into_response()),
        None => Err(ApiError::new(
            ApiErrorKind::NotFound,
            format!("the model '{}' does not exist", form::truncate(&id, 128)),
        )
        .with_param("model")),
    }
}

fn model_json(m: &ModelInfo) -> serde_json::Value {
    json!({ "id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by })
}

/// `GET /health`: liveness plus a little load information; never needs the token.
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.metrics.uptime().as_secs(),
        "in_flight": state.metrics.in_flight(),
        "queue_depth": state.metrics.queue_depth(),
        "max_concurrent": state.opts.max_concurrent.max(1),
        "free_slots": state.queue.available_permits(),
    }))
}

/// `GET /metrics`.
async fn prometheus(State(state): State<AppState>) -> Result<Response, ApiError> {
    let backend = state.query_backend(|b| b.metrics()).await?;
    let capacity = state.opts.max_concurrent.max(1) as f64;
    let free = state.queue.available_permits() as f64;
    let clients = state.clients.clients() as f64;
    let text = state.metrics.render(
        &[
            (
                "serena_queue_capacity",
                "Backend requests that may run at once.",
                capacity,
            ),
            ("serena_queue_free_slots", "Backend slots free now.", free),
            (
                "serena_http_active_clients",
                "Client addresses with backend requests in flight.",
                clients,
            ),
        ],
        &backend,
    );
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ApiErrorKind::NotFound,
        format!("no such route: {}", form::truncate(uri.path(), 128)),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ApiErrorKind::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// Fuzzing entry point: parses `body` as a transcription form with `boundary` (1 MiB limit),
/// as the transcription routes do. Errors are expected; a panic, a hang or runaway memory is
/// a bug. Also checks the parser's promises about a form it accepts.
///
/// Runs on a per-thread single-threaded runtime, so it can be called in a tight loop.
pub fn fuzz_multipart(body: &[u8], boundary: &str) {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().build().ok();
    }
    let body = bytes::Bytes::copy_from_slice(body);
    RUNTIME.with(|rt| {
        let Some(rt) = rt else {
            return;
        };
        if let Ok(form) = rt.block_on(form::parse(body, boundary, 1 << 20)) {
            assert!(
                !form.request.audio.is_empty(),
                "accepted a form with an empty file"
            );
            assert!(
                !form.request.filename.is_empty(),
                "accepted a form without a file name"
            );
            assert!(form
                .request
                .temperature
                .is_none_or(|t| (0.0..=1.0).contains(&t)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_checks() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let lo2: SocketAddr = "127.0.0.2:8080".parse().expect("addr");
        let lo6: SocketAddr = "[::1]:8080".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:8080".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let lan: SocketAddr = "192.168.1.5:8080".parse().expect("addr");
        for addr in [lo, lo2, lo6, mapped] {
            assert!(check_bind(addr, None).is_ok(), "{addr}");
        }
        for addr in [any, lan] {
            assert!(check_bind(addr, None).is_err());
            assert!(check_bind(addr, Some("  ")).is_err());
            assert!(check_bind(addr, Some("short")).is_err());
            assert!(check_bind(addr, Some("0123456789abcdef")).is_ok());
        }
    }

    #[test]
    fn options_debug_hides_the_token() {
        let opts = ServerOptions {
            token: Some("hunter2hunter2hunter2".into()),
            ..ServerOptions::default()
        };
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn fuzz_entry_survives_junk() {
        fuzz_multipart(b"", "");
        fuzz_multipart(b"--a\r\n\r\n--a--", "a");
        fuzz_multipart(&[0xff; 300], "\u{0}");
        fuzz_multipart(
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nRIFF\r\n--b--\r\n",
            "b",
        );
    }
}
