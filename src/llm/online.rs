//! The optional online model: an OpenAI-compatible `/chat/completions` endpoint (Ollama,
//! llama.cpp's server, vLLM, a hosted API) used ahead of the local model when configured.
//!
//! [`OnlineModel`] is shared across threads (`Arc<OnlineModel>`); it keeps the endpoint's
//! [`Tracker`] (health record and circuit breaker) behind a mutex that is never held
//! during network I/O. [`OnlineModel::chat`]:
//!
//! 1. asks the breaker first: while it is open the call fails at once with
//!    [`OnlineError::Unavailable`] and nothing touches the network (a few tens of ns);
//! 2. POSTs `{base_url}/chat/completions`, with `Authorization: Bearer` when
//!    `api_key_env` names a set variable (the key itself is never stored);
//! 3. streams (`stream: true`, server-sent events) or reads one JSON reply, handing text to
//!    `on_token` (which returns `false` to stop);
//! 4. retries transient failures (connection refused or reset, timeouts, HTTP
//!    429/500/502/503/504) with full-jitter backoff while another attempt fits before
//!    the deadline; permanent ones (HTTP 400/401/403/404, garbage) are not retried;
//! 5. records every attempt's outcome in the health record and breaker.
//!
//! Every attempt's timeouts are clipped to the time left before the caller's deadline,
//! so a server that accepts and never answers costs at most the deadline.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::health::{
    Backoff, BreakerConfig, BreakerMemo, Decision, FailureKind, StateName, Tracker, Transition,
};
use super::Message;

/// The longest line accepted in an event stream.
const MAX_SSE_LINE: usize = 1 << 20;
/// The largest reply body accepted (whole JSON, or all stream lines together).
const MAX_BODY: u64 = 8 << 20;
/// How much of an error reply's body is read for its message.
const MAX_ERROR_BODY: u64 = 4096;

/// A source of the current time, so tests can move it (the breaker's cool-downs are long).
/// All times the model compares come from one clock: the caller's deadline must come from
/// the same clock ([`OnlineModel::now`]).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Settings of one online endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineConfig {
    /// A name for logs and `serena status`.
    pub name: String,
    /// The API base, e.g. `http://127.0.0.1:11434/v1`; `/chat/completions` and `/models`
    /// are appended.
    pub base_url: String,
    /// The model name sent in each request.
    pub model: String,
    /// The name of an environment variable holding the API key; `None` sends no key.
    pub api_key_env: Option<String>,
    /// Longest single attempt, connect to last byte (clipped to the deadline).
    pub timeout: Duration,
    /// Longest connection setup.
    pub connect_timeout: Duration,
    /// Longest `probe`.
    pub probe_timeout: Duration,
    /// Most attempts per `chat` (1 = no retries).
    pub max_attempts: u32,
    /// Time assumed for an attempt when deciding whether a retry fits before the
    /// deadline, while the endpoint has no latency history (else its median latency).
    pub min_attempt_time: Duration,
    /// Median latency (time to first token) that scores full marks in the health quality.
    pub latency_target: Duration,
    /// Circuit breaker thresholds.
    pub breaker: BreakerConfig,
    /// Backoff between retries.
    pub backoff: Backoff,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            name: "online".into(),
            base_url: "http://127.0.0.1:11434/v1".into(),
            model: "qwen2.5:7b-instruct".into(),
            api_key_env: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            max_attempts: 3,
            min_attempt_time: Duration::from_millis(250),
            latency_target: Duration::from_millis(1500),
            breaker: BreakerConfig::default(),
            backoff: Backoff::default(),
        }
    }
}

/// Settings of one chat request.
#[derive(Clone, Copy, Debug)]
pub struct ChatOptions {
    /// Longest reply in tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// The reply (all attempts together) must be done by then.
    pub deadline: Instant,
    /// Stream tokens as they come (server-sent events) rather than one reply.
    pub stream: bool,
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineReply {
    /// The text (what `on_token` received, up to a cancellation).
    pub text: String,
    /// From the call to the end of the reply, retries included.
    pub latency: Duration,
    /// From the call to the first streamed text; `None` when not streaming.
    pub first_token: Option<Duration>,
    /// HTTP attempts made (1 without retries).
    pub attempts: u32,
    /// `on_token` returned `false`.
    pub cancelled: bool,
}

/// Errors from the online model.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The circuit breaker is open: the endpoint failed repeatedly. Nothing was sent.
    #[error("the online model is unavailable after repeated failures; next try in {}s", retry_in.as_secs())]
    Unavailable {
        /// Time until the breaker lets a trial request through.
        retry_in: Duration,
    },
    /// The deadline passed before an attempt could start.
    #[error("no time left for the online model")]
    DeadlineExceeded,
    /// The variable `api_key_env` names is not set. Nothing was sent.
    #[error("the API key variable {env} is not set")]
    MissingKey {
        /// The variable's name.
        env: String,
    },
    /// The connection failed (refused, reset, host not found).
    #[error("cannot reach the online model: {0}")]
    Connect(String),
    /// No complete reply in time.
    #[error("the online model did not answer within {} ms", after.as_millis())]
    Timeout {
        /// How long the attempt ran.
        after: Duration,
    },
    /// The server refused the key (HTTP 401 or 403): a configuration error.
    #[error("the online model refused the API key (HTTP {status}): {message}")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Another HTTP status that is not a success.
    #[error("the online model answered HTTP {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
        /// The server's `Retry-After`, in whole seconds.
        retry_after: Option<Duration>,
    },
    /// The reply is unusable: not JSON, missing fields, no text, an error in the stream.
    #[error("the online model sent an unusable reply: {0}")]
    Garbage(String),
    /// Another HTTP or transport failure (bad URL, TLS, broken HTTP).
    #[error("HTTP failure talking to the online model: {0}")]
    Http(String),
}

impl OnlineError {
    /// The failure's kind for health and retries; `None` for errors that say nothing
    /// about the endpoint ([`OnlineError::Unavailable`], [`OnlineError::DeadlineExceeded`]).
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            OnlineError::Unavailable { .. } | OnlineError::DeadlineExceeded => None,
            OnlineError::MissingKey { .. } | OnlineError::Auth { .. } => Some(FailureKind::Config),
            OnlineError::Connect(_) => Some(FailureKind::Connect),
            OnlineError::Timeout { .. } => Some(FailureKind::Timeout),
            OnlineError::Status { status, .. } => Some(FailureKind::from_status(*status)),
            OnlineError::Garbage(_) => Some(FailureKind::Garbage),
            OnlineError::Http(_) => Some(FailureKind::Protocol),
        }
    }

    /// Whether asking again (later) may succeed: transient network and server failures,
    /// an open breaker and a missed deadline; not configuration errors, refusals or
    /// garbage.
    pub fn is_transient(&self) -> bool {
        match self {
            OnlineError::Unavailable { .. } | OnlineError::DeadlineExceeded => true,
            e => e.kind().is_some_and(FailureKind::is_transient),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            OnlineError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The endpoint's health, as `serena status` and `serena ask --json` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// The configured name.
    pub name: String,
    /// The base URL (without any user:password part).
    pub url: String,
    /// The model name.
    pub model: String,
    /// `closed` (healthy), `open` (refusing calls) or `half_open` (one trial under way).
    pub state: StateName,
    /// Share of successes among the recent attempts (1 with none).
    pub success_rate: f64,
    /// Median recent latency (time to first token) in ms.
    pub p50_ms: Option<u64>,
    /// 95th-percentile recent latency in ms.
    pub p95_ms: Option<u64>,
    /// Successes since start.
    pub success_count: u64,
    /// Failures since start.
    pub error_count: u64,
    /// Failures since start by kind (kinds with none left out).
    pub errors: BTreeMap<String, u64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Quality score in 0..=1 (success rate × speed × garbage penalty).
    pub quality: f64,
    /// The last failure's text.
    pub last_error: Option<String>,
    /// Milliseconds since the last success.
    pub last_success_ms_ago: Option<u64>,
    /// While not closed: milliseconds until a trial request is allowed.
    pub retry_in_ms: Option<u64>,
}

/// An online model endpoint with its health record and circuit breaker.
#[derive(Debug)]
pub struct OnlineModel {
    config: OnlineConfig,
    agent: ureq::Agent,
    clock: Arc<dyn Clock>,
    tracker: Mutex<Tracker>,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

/// What one successful attempt produced.
struct AttemptOk {
    /// From the attempt's start to the first text (streaming) or the whole reply.
    latency: Duration,
    first_token: Option<Instant>,
    cancelled: bool,
}

/// Whether an attempt failed before or after handing text to `on_token`.
struct AttemptErr {
    error: OnlineError,
    delivered: bool,
}

impl From<OnlineError> for AttemptErr {
    fn from(error: OnlineError) -> Self {
        AttemptErr {
            error,
            delivered: false,
        }
    }
}

impl OnlineModel {
    /// An endpoint on the system clock.
    pub fn new(config: OnlineConfig) -> OnlineModel {
        OnlineModel::with_clock(config, Arc::new(SystemClock))
    }

    /// An endpoint on `clock` (tests use a clock they can move).
    pub fn with_clock(config: OnlineConfig, clock: Arc<dyn Clock>) -> OnlineModel {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .max_redirects(0);
        if is_loopback(&config.base_url) {
            // A proxy from the environment would not reach a local server.
            builder = builder.proxy(None);
        }
        let agent: ureq::Agent = builder.build().into();
        let tracker = Tracker::new(config.breaker, config.latency_target);
        OnlineModel {
            config,
            agent,
            clock,
            tracker: Mutex::new(tracker),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OnlineConfig {
        &self.config
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The model's clock's current time; deadlines are measured on it.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The breaker's state in wall-clock terms (`now_ms`: Unix milliseconds now).
    pub fn breaker_memo(&self, now_ms: u64) -> BreakerMemo {
        self.tracker().breaker.memo(self.now(), now_ms)
    }

    /// Take up a breaker state an earlier process kept.
    pub fn restore_breaker(&self, memo: &BreakerMemo, now_ms: u64) {
        let now = self.now();
        self.tracker().breaker.restore(memo, now, now_ms);
    }

    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // The tracker holds plain counters: a panic elsewhere cannot leave it inconsistent.
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn api_key(&self) -> Result<Option<String>, OnlineError> {
        let Some(env) = &self.config.api_key_env else {
            return Ok(None);
        };
        match std::env::var(env) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_string())),
            _ => Err(OnlineError::MissingKey { env: env.clone() }),
        }
    }

    /// Fails fast while the breaker is open; O(1), no allocation.
    #[inline]
    fn check_breaker(&self, now: Instant) -> Result<(), OnlineError> {
        let retry_in = self.tracker().breaker.retry_in(now);
        if retry_in.is_zero() {
            Ok(())
        } else {
            Err(OnlineError::Unavailable { retry_in })
        }
    }

    fn log_transition(&self, transition: Option<Transition>) {
        if let Some(t) = transition {
            tracing::info!(
                endpoint = %self.config.name,
                from = %t.from,
                to = %t.to,
                cool_down_s = t.cool_down.as_secs(),
                "online model circuit breaker changed state"
            );
        }
    }

    fn record_success(&self, latency: Option<Duration>) {
        let now = self.clock.now();
        let transition = self.tracker().record_success(now, latency);
        self.log_transition(transition);
    }

    fn record_failure(&self, error: &OnlineError) {
        let Some(kind) = error.kind() else { return };
        let now = self.clock.now();
        let message = error.to_string();
        let transition = self.tracker().record_failure(now, kind, &message);
        self.log_transition(transition);
    }

    /// Ask the endpoint. Text reaches `on_token` as it arrives (once, whole, when not
    /// streaming); `on_token` returns `false` to stop, which ends the reply successfully
    /// with `cancelled` set.
    ///
    /// A failure after text has reached `on_token` is not retried (the caller would hear
    /// it twice). A trial request of a half-open breaker is never retried. Timeouts are
    /// enforced while waiting on the network; time spent inside `on_token` counts against
    /// the deadline but is not interrupted.
    ///
    /// # Errors
    /// [`OnlineError::Unavailable`] at once while the breaker is open;
    /// [`OnlineError::DeadlineExceeded`] when the deadline has passed;
    /// [`OnlineError::MissingKey`] when the key variable is unset; otherwise the last
    /// attempt's error.
    pub fn chat(
        &self,
        messages: &[Message],
        opts: &ChatOptions,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<OnlineReply, OnlineError> {
        let start = self.clock.now();
        self.check_breaker(start)?;
        if start >= opts.deadline {
            return Err(OnlineError::DeadlineExceeded);
        }
        let key = self.api_key()?;
        let body = serde_json::to_string(&ChatRequest {
            model: &self.config.model,
            messages,
            max_tokens: opts.max_tokens,
            temperature: opts.temperature,
            stream: opts.stream,
        })
        .map_err(|e| OnlineError::Http(format!("cannot encode the request: {e}")))?;
        let url = self.url("chat/completions");
        let max_attempts = self.config.max_attempts.max(1);

        let mut text = String::new();
        let mut last_error: Option<OnlineError> = None;
        let mut attempt = 0u32;
        loop {
            let now = self.clock.now();
            let trial = match self.tracker().allow(now) {
                Decision::Allow => false,
                Decision::AllowTrial => {
                    tracing::info!(
                        endpoint = %self.config.name,
                        from = %StateName::Open,
                        to = %StateName::HalfOpen,
                        "online model circuit breaker changed state; sending a trial request"
                    );
                    true
                }
                // Failures (this call's or another's) opened it, or another caller holds
                // the trial.
                Decision::Reject { retry_in } => {
                    return Err(last_error.unwrap_or(OnlineError::Unavailable { retry_in }))
                }
            };
            attempt += 1;
            tracing::debug!(endpoint = %self.config.name, attempt, trial, "online model: request");
            text.clear();
            match self.attempt(&url, &body, key.as_deref(), opts, now, &mut text, on_token) {
                Ok(ok) => {
                    self.record_success(Some(ok.latency));
                    let latency = self.clock.now().saturating_duration_since(start);
                    tracing::info!(
                        endpoint = %self.config.name,
                        attempt,
                        latency_ms = ms(latency),
                        first_token_ms = ok.first_token.map(|t| ms(t.saturating_duration_since(start))),
                        cancelled = ok.cancelled,
                        "online model answered"
                    );
                    return Ok(OnlineReply {
                        text,
                        latency,
                        first_token: ok.first_token.map(|t| t.saturating_duration_since(start)),
                        attempts: attempt,
                        cancelled: ok.cancelled,
                    });
                }
                Err(AttemptErr { error, delivered }) => {
                    self.record_failure(&error);
                    let now = self.clock.now();
                    tracing::info!(
                        endpoint = %self.config.name,
                        attempt,
                        kind = error.kind().map_or("none", FailureKind::name),
                        elapsed_ms = ms(now.saturating_duration_since(start)),
                        error = %error,
                        "online model attempt failed"
                    );
                    if trial || delivered || attempt >= max_attempts {
                        return Err(error);
                    }
                    let Some(kind) = error.kind() else {
                        return Err(error);
                    };
                    let expected = self
                        .tracker()
                        .health
                        .p50()
                        .unwrap_or(Duration::ZERO)
                        .max(self.config.min_attempt_time);
                    let Some(delay) = self.config.backoff.plan_retry(
                        attempt - 1,
                        kind,
                        random_u64(),
                        error.retry_after(),
                        now,
                        expected,
                        opts.deadline,
                    ) else {
                        return Err(error);
                    };
                    tracing::debug!(
                        endpoint = %self.config.name,
                        attempt,
                        delay_ms = ms(delay),
                        "online model: retrying after a transient failure"
                    );
                    last_error = Some(error);
                    std::thread::sleep(delay);
                }
            }
        }
    }

    /// One HTTP exchange. `text` receives the reply.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        url: &str,
        body: &str,
        key: Option<&str>,
        opts: &ChatOptions,
        started: Instant,
        text: &mut String,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<AttemptOk, AttemptErr> {
        let left = opts.deadline.saturating_duration_since(started);
        if left.is_zero() {
            return Err(OnlineError::DeadlineExceeded.into());
        }
        let limit = self.config.timeout.min(left);
        let elapsed = || self.clock.now().saturating_duration_since(started);
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header(
                "Accept",
                if opts.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            );
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let request = request
            .config()
            .timeout_global(Some(limit))
            .timeout_connect(Some(self.config.connect_timeout.min(limit)))
            .build();
        let mut response = request.send(body).map_err(|e| from_ureq(&e, elapsed()))?;
        check_status(&mut response)?;
        let is_event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("event-stream"));

        if !(opts.stream && is_event_stream) {
            // One JSON reply (also when a server ignores `stream: true`).
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map_err(|e| from_ureq(&e, elapsed()))?;
            let content = parse_completion(&body)?;
            let now = self.clock.now();
            text.push_str(&content);
            let go_on = on_token(text);
            return Ok(AttemptOk {
                latency: now.saturating_duration_since(started),
                first_token: opts.stream.then_some(now),
                cancelled: !go_on,
            });
        }

        let reader = response
            .into_body()
            .into_with_config()
            .limit(MAX_BODY)
            .reader();
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        let mut first: Option<Instant> = None;
        let fail = |error: OnlineError, first: Option<Instant>| AttemptErr {
            error,
            delivered: first.is_some(),
        };
        let mut done = false;
        loop {
            match read_line(&mut reader, &mut line, MAX_SSE_LINE) {
                Ok(true) => {}
                Ok(false) => break,
                Err(LineError::TooLong) => {
                    return Err(fail(
                        OnlineError::Garbage("an event-stream line over 1 MiB".into()),
                        first,
                    ))
                }
                Err(LineError::Io(e)) => {
                    return Err(fail(from_ureq(&ureq::Error::from(e), elapsed()), first))
                }
            }
            let Ok(line) = std::str::from_utf8(&line) else {
                return Err(fail(
                    OnlineError::Garbage("the event stream is not UTF-8".into()),
                    first,
                ));
            };
            match parse_sse_line(line).map_err(|e| fail(e, first))? {
                SseEvent::Skip => {}
                SseEvent::Done => {
                    done = true;
                    break;
                }
                SseEvent::Token(piece) => {
                    let now = *first.get_or_insert_with(|| self.clock.now());
                    text.push_str(&piece);
                    if !on_token(&piece) {
                        return Ok(AttemptOk {
                            latency: now.saturating_duration_since(started),
                            first_token: Some(now),
                            cancelled: true,
                        });
                    }
                }
            }
        }
        let Some(first) = first.filter(|_| !text.trim().is_empty()) else {
            return Err(fail(
                OnlineError::Garbage("the event stream held no text".into()),
                first,
            ));
        };
        if !done {
            tracing::debug!(endpoint = %self.config.name, "event stream ended without [DONE]");
        }
        Ok(AttemptOk {
            latency: first.saturating_duration_since(started),
            first_token: Some(first),
            cancelled: false,
        })
    }

    /// Check the endpoint: GET `{base_url}/models` within `probe_timeout`. Goes through the
    /// breaker like a chat (so it can be the half-open trial) and records its outcome;
    /// its latency is returned but kept out of the latency history (it is not a reply).
    ///
    /// # Errors
    /// As [`OnlineModel::chat`]; a reply that is not JSON is [`OnlineError::Garbage`].
    pub fn probe(&self) -> Result<Duration, OnlineError> {
        let start = self.clock.now();
        self.check_breaker(start)?;
        let key = self.api_key()?;
        if let Decision::Reject { retry_in } = self.tracker().allow(start) {
            return Err(OnlineError::Unavailable { retry_in });
        }
        let limit = self.config.probe_timeout;
        let elapsed = || self.clock.now().saturating_duration_since(start);
        let result = (|| {
            let mut request = self.agent.get(self.url("models"));
            if let Some(key) = &key {
                request = request.header("Authorization", format!("Bearer {key}"));
            }
            let mut response = request
                .config()
                .timeout_global(Some(limit))
                .timeout_connect(Some(self.config.connect_timeout.min(limit)))
                .build()
                .call()
                .map_err(|e| from_ureq(&e, elapsed()))?;
            check_status(&mut response)?;
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map_err(|e| from_ureq(&e, elapsed()))?;
            match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) if v.is_object() || v.is_array() => Ok(elapsed()),
                _ => Err(OnlineError::Garbage(format!(
                    "the model list is not JSON: {}",
                    excerpt(&body)
                ))),
            }
        })();
        match &result {
            Ok(latency) => {
                self.record_success(None);
                tracing::info!(endpoint = %self.config.name, latency_ms = ms(*latency), "online model probe succeeded");
            }
            Err(e) => {
                self.record_failure(e);
                tracing::info!(endpoint = %self.config.name, error = %e, "online model probe failed");
            }
        }
        result
    }

    /// The endpoint's health now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let now = self.clock.now();
        let tracker = self.tracker();
        let health = &tracker.health;
        let state = tracker.breaker.state().name();
        HealthSnapshot {
            name: self.config.name.clone(),
            url: redact_url(&self.config.base_url),
            model: self.config.model.clone(),
            state,
            success_rate: health.success_rate(),
            p50_ms: health.p50().map(ms),
            p95_ms: health.p95().map(ms),
            success_count: health.successes(),
            error_count: health.failures(),
            errors: health
                .errors_by_kind()
                .filter(|&(_, n)| n > 0)
                .map(|(k, n)| (k.name().to_string(), n))
                .collect(),
            consecutive_failures: health.consecutive_failures(),
            quality: health.quality(),
            last_error: health.last_error().map(str::to_string),
            last_success_ms_ago: health
                .last_success()
                .map(|t| ms(now.saturating_duration_since(t))),
            retry_in_ms: (state != StateName::Closed).then(|| ms(tracker.breaker.retry_in(now))),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Jitter for the backoff; the time's nanoseconds if the OS has no randomness to give.
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    })
}

/// The start of `text` for an error message: at most 200 characters on one line.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

fn from_ureq(e: &ureq::Error, elapsed: Duration) -> OnlineError {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Timeout(_) => OnlineError::Timeout { after: elapsed },
        ureq::Error::Io(io) => match io.kind() {
            K::TimedOut | K::WouldBlock => OnlineError::Timeout { after: elapsed },
            K::InvalidData => OnlineError::Garbage(format!("unreadable reply: {io}")),
            _ => OnlineError::Connect(io.to_string()),
        },
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            OnlineError::Connect(e.to_string())
        }
        ureq::Error::StatusCode(status) => status_error(*status, String::new(), None),
        ureq::Error::BodyExceedsLimit(limit) => {
            OnlineError::Garbage(format!("the reply is larger than {limit} bytes"))
        }
        other => OnlineError::Http(other.to_string()),
    }
}

fn status_error(status: u16, message: String, retry_after: Option<Duration>) -> OnlineError {
    let message = if message.is_empty() {
        ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string()
    } else {
        message
    };
    match status {
        401 | 403 => OnlineError::Auth { status, message },
        _ => OnlineError::Status {
            status,
            message,
            retry_after,
        },
    }
}

/// An error for a status that is not a success, with the server's message.
fn check_status(response: &mut ureq::http::Response<ureq::Body>) -> Result<(), OnlineError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut raw = Vec::new();
    // The message is a courtesy: a body that cannot be read leaves it empty.
    let _ = response
        .body_mut()
        .as_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    Err(status_error(
        status.as_u16(),
        error_message(&raw),
        retry_after,
    ))
}

/// The message of an error body: OpenAI's `{"error": {"message": ..}}`, Ollama's
/// `{"error": ".."}`, or the text itself.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("error"))
            .or_else(|| v.get("message"))
            .and_then(serde_json::Value::as_str);
        if let Some(m) = found {
            return excerpt(m);
        }
    }
    excerpt(body)
}

/// The reply text of a non-streamed completion.
fn parse_completion(body: &str) -> Result<String, OnlineError> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| OnlineError::Garbage(format!("not JSON: {}", excerpt(body))))?;
    if let Some(error) = value.get("error") {
        return Err(OnlineError::Garbage(format!(
            "an error instead of a reply: {}",
            error_message(&error.to_string())
        )));
    }
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| OnlineError::Garbage("no choices[0].message.content".into()))?;
    if content.trim().is_empty() {
        return Err(OnlineError::Garbage("an empty reply".into()));
    }
    Ok(content.to_string())
}

/// One line of a server-sent event stream, as far as a chat completion cares.
#[derive(Debug, PartialEq)]
enum SseEvent {
    /// A piece of reply text.
    Token(String),
    /// `data: [DONE]`.
    Done,
    /// A blank line, comment, other field, or a chunk without text (role, finish, usage).
    Skip,
}

fn parse_sse_line(line: &str) -> Result<SseEvent, OnlineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(data) = line.strip_prefix("data:") else {
        // Blank lines end events; `:` starts comments; `event:`, `id:`, `retry:` are
        // not needed.
        return Ok(SseEvent::Skip);
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(SseEvent::Done);
    }
    let value: serde_json::Value = serde_json::from_str(data).map_err(|_| {
        OnlineError::Garbage(format!("an event that is not JSON: {}", excerpt(data)))
    })?;
    if let Some(error) = value.get("error") {
        return Err(OnlineError::Garbage(format!(
            "an error in the stream: {}",
            error_message(&error.to_string())
        )));
    }
    let Some(choices) = value.get("choices").and_then(serde_json::Value::as_array) else {
        return Err(OnlineError::Garbage("an event without choices".into()));
    };
    match choices
        .first()
        .and_then(|c| c.pointer("/delta/content"))
        .and_then(serde_json::Value::as_str)
    {
        Some(piece) if !piece.is_empty() => Ok(SseEvent::Token(piece.to_string())),
        _ => Ok(SseEvent::Skip),
    }
}

enum LineError {
    Io(std::io::Error),
    TooLong,
}

/// Read one `\n`-terminated line (without the `\n`) into `line`, at most `max` bytes.
/// `Ok(false)` at the end of the input.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> Result<bool, LineError> {
    line.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (used, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&available[..i]);
                (i + 1, true)
            }
            None => {
                line.extend_from_slice(available);
                (available.len(), false)
            }
        };
        reader.consume(used);
        if line.len() > max {
            return Err(LineError::TooLong);
        }
        if complete {
            return Ok(true);
        }
    }
}

/// `base_url` without a `user:password@` part or query.
fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

/// Whether the URL's host is this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines() {
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#).ok(),
            Some(SseEvent::Token("Hi".into()))
        );
        assert_eq!(
            parse_sse_line("data:{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r").ok(),
            Some(SseEvent::Skip)
        );
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[]}"#).ok(),
            Some(SseEvent::Skip)
        );
        assert_eq!(parse_sse_line("data: [DONE]").ok(), Some(SseEvent::Done));
        assert_eq!(parse_sse_line("").ok(), Some(SseEvent::Skip));
        assert_eq!(parse_sse_line(": keep-alive").ok(), Some(SseEvent::Skip));
        assert_eq!(parse_sse_line("event: message").ok(), Some(SseEvent::Skip));
        assert!(matches!(
            parse_sse_line("data: not json"),
            Err(OnlineError::Garbage(_))
        ));
        assert!(matches!(
            parse_sse_line(r#"data: {"object":"chunk"}"#),
            Err(OnlineError::Garbage(_))
        ));
        assert!(matches!(
            parse_sse_line(r#"data: {"error":{"message":"overloaded"}}"#),
            Err(OnlineError::Garbage(m)) if m.contains("overloaded")
        ));
    }

    #[test]
    fn completions() {
        assert_eq!(
            parse_completion(r#"{"choices":[{"message":{"role":"assistant","content":"Yes."}}]}"#)
                .ok(),
            Some("Yes.".into())
        );
        for bad in [
            "not json",
            "",
            "{}",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"content":null}}]}"#,
            r#"{"choices":[{"message":{"content":"  "}}]}"#,
            r#"{"error":"model not loaded"}"#,
            "[1,2]",
        ] {
            assert!(
                matches!(parse_completion(bad), Err(OnlineError::Garbage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"{"error":"no model"}"#), "no model");
        assert_eq!(error_message("plain\ntext"), "plain text");
        assert_eq!(excerpt(&"x".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn bounded_lines() {
        let mut r = std::io::Cursor::new(b"ab\ncd\r\n\nlast".to_vec());
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Ok(true) = read_line(&mut r, &mut line, 10) {
            got.push(String::from_utf8_lossy(&line).into_owned());
        }
        assert_eq!(got, ["ab", "cd\r", "", "last"]);
        let mut r = std::io::BufReader::with_capacity(4, std::io::Cursor::new(vec![b'x'; 100]));
        assert!(matches!(
            read_line(&mut r, &mut line, 10),
            Err(LineError::TooLong)
        ));
    }

    #[test]
    fn urls() {
        assert_eq!(
            redact_url("https://user:secret@api.example.com/v1?key=x"),
            "https://api.example.com/v1"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:11434/v1"),
            "http://127.0.0.1:11434/v1"
        );
        assert!(is_loopback("http://127.0.0.1:11434/v1"));
        assert!(is_loopback("http://localhost/v1"));
        assert!(is_loopback("http://[::1]:8080/v1"));
        assert!(is_loopback("http://u:p@127.0.0.2:1/v1"));
        assert!(!is_loopback("https://api.example.com/v1"));
        assert!(!is_loopback("http://192.168.1.2:11434/v1"));
    }

    #[test]
    fn error_kinds() {
        let status = |s| status_error(s, String::new(), None);
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(matches!(status(401), OnlineError::Auth { .. }));
        assert_eq!(status(401).kind(), Some(FailureKind::Config));
        assert!(OnlineError::Unavailable {
            retry_in: Duration::ZERO
        }
        .is_transient());
        assert_eq!(OnlineError::DeadlineExceeded.kind(), None);
        assert!(!OnlineError::Garbage(String::new()).is_transient());
        assert!(OnlineError::Timeout {
            after: Duration::ZERO
        }
        .is_transient());
    }
}
