//! The online model against a real HTTP server on 127.0.0.1 that the tests script.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::online_server::{closed_port_url, Behaviour, ShiftClock, TestServer};
use serena::llm::health::{Backoff, BreakerConfig, StateName};
use serena::llm::online::{ChatOptions, OnlineConfig, OnlineError, OnlineModel, OnlineReply};
use serena::llm::Message;

const COOL_DOWN: Duration = Duration::from_secs(30);

fn config(base_url: String) -> OnlineConfig {
    OnlineConfig {
        name: "test".into(),
        base_url,
        model: "m".into(),
        api_key_env: None,
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        probe_timeout: Duration::from_millis(500),
        max_attempts: 3,
        min_attempt_time: Duration::from_millis(10),
        breaker: BreakerConfig {
            failure_threshold: 3,
            cool_down: COOL_DOWN,
            max_cool_down: Duration::from_secs(300),
            trial_timeout: Duration::from_secs(60),
        },
        backoff: Backoff {
            base: Duration::from_millis(5),
            factor: 2,
            cap: Duration::from_millis(20),
        },
        ..OnlineConfig::default()
    }
}

struct Fixture {
    server: TestServer,
    clock: Arc<ShiftClock>,
    model: Arc<OnlineModel>,
}

fn fixture_with(edit: impl FnOnce(&mut OnlineConfig)) -> Fixture {
    let server = TestServer::start();
    let clock = Arc::new(ShiftClock::default());
    let mut cfg = config(server.base_url());
    edit(&mut cfg);
    let model = Arc::new(OnlineModel::with_clock(cfg, clock.clone()));
    Fixture {
        server,
        clock,
        model,
    }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn messages() -> Vec<Message> {
    vec![
        Message::new("system", "Be brief."),
        Message::new("user", "Say hello."),
    ]
}

fn opts(model: &OnlineModel, within: Duration, stream: bool) -> ChatOptions {
    ChatOptions {
        max_tokens: 64,
        temperature: 0.0,
        deadline: model.now() + within,
        stream,
    }
}

/// Chat, collecting what `on_token` received.
fn chat(
    model: &OnlineModel,
    within: Duration,
    stream: bool,
) -> (Result<OnlineReply, OnlineError>, Vec<String>) {
    let mut tokens = Vec::new();
    let result = model.chat(&messages(), &opts(model, within, stream), &mut |t: &str| {
        tokens.push(t.to_string());
        true
    });
    (result, tokens)
}

const SECS_3: Duration = Duration::from_secs(3);

/// Fail three times in a row (one chat with three attempts) so the breaker opens.
fn open_breaker(f: &Fixture) {
    f.server.push([
        Behaviour::Fail(500),
        Behaviour::Fail(503),
        Behaviour::Fail(502),
    ]);
    let before = f.server.connections();
    let (result, _) = chat(&f.model, SECS_3, false);
    assert!(
        matches!(result, Err(OnlineError::Status { .. })),
        "{result:?}"
    );
    assert_eq!(f.server.connections(), before + 3);
    assert_eq!(f.model.snapshot().state, StateName::Open);
}

#[test]
fn answer_non_stream() {
    let f = fixture();
    f.server.push([Behaviour::Answer("Hello there.".into())]);
    let (result, tokens) = chat(&f.model, SECS_3, false);
    let reply = result.expect("reply");
    assert_eq!(reply.text, "Hello there.");
    assert_eq!(reply.attempts, 1);
    assert_eq!(reply.first_token, None);
    assert!(!reply.cancelled);
    assert_eq!(tokens, ["Hello there."]);
    let req = f.server.request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert!(!req.headers.contains_key("authorization"));
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("JSON request");
    assert_eq!(body["model"], "m");
    assert_eq!(body["stream"], false);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["messages"][1]["content"], "Say hello.");
    let snap = f.model.snapshot();
    assert_eq!(snap.state, StateName::Closed);
    assert_eq!(snap.success_count, 1);
    assert_eq!(snap.error_count, 0);
    assert!(snap.p50_ms.is_some());
    assert!(snap.last_success_ms_ago.is_some());
}

#[test]
fn stream_delivers_tokens_in_order() {
    let f = fixture();
    let pieces = ["Hel", "lo", ", ", "wor", "ld", "!"];
    f.server.push([Behaviour::Stream(
        pieces.iter().map(|s| s.to_string()).collect(),
    )]);
    let (result, tokens) = chat(&f.model, SECS_3, true);
    let reply = result.expect("reply");
    assert_eq!(tokens, pieces);
    assert_eq!(reply.text, "Hello, world!");
    assert_eq!(reply.attempts, 1);
    let first = reply.first_token.expect("first token time");
    assert!(first <= reply.latency);
    let req = f.server.request();
    assert_eq!(
        req.headers.get("accept").map(String::as_str),
        Some("text/event-stream")
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("JSON request");
    assert_eq!(body["stream"], true);
}

#[test]
fn on_token_false_cancels_the_stream() {
    let f = fixture();
    f.server.push([Behaviour::Stream(
        ["one ", "two ", "three ", "four"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )]);
    let mut seen = Vec::new();
    let reply = f
        .model
        .chat(
            &messages(),
            &opts(&f.model, SECS_3, true),
            &mut |t: &str| {
                seen.push(t.to_string());
                seen.len() < 2
            },
        )
        .expect("reply");
    assert!(reply.cancelled);
    assert_eq!(seen, ["one ", "two "]);
    assert_eq!(reply.text, "one two ");
    assert_eq!(f.server.connections(), 1);
    let snap = f.model.snapshot();
    assert_eq!((snap.success_count, snap.error_count), (1, 0));
}

#[test]
fn cancelling_does_not_wait_for_the_rest_of_the_stream() {
    let f = fixture();
    f.server.push([Behaviour::StreamHold(
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect(),
    )]);
    let t = Instant::now();
    let mut seen = 0;
    let reply = f
        .model
        .chat(
            &messages(),
            &opts(&f.model, Duration::from_secs(10), true),
            &mut |_: &str| {
                seen += 1;
                seen < 3
            },
        )
        .expect("reply");
    assert!(reply.cancelled);
    assert_eq!(reply.text, "abc");
    // Well before the 10 s deadline: the open connection is dropped, not drained.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_stream_that_stalls_ends_by_the_deadline_without_retry() {
    let f = fixture_with(|c| c.timeout = Duration::from_secs(10));
    f.server.push([
        Behaviour::StreamHold(vec!["partial ".into()]),
        Behaviour::Answer("unused".into()),
    ]);
    let deadline = Duration::from_millis(300);
    let t = Instant::now();
    let (result, tokens) = chat(&f.model, deadline, true);
    assert!(
        matches!(result, Err(OnlineError::Timeout { .. })),
        "{result:?}"
    );
    assert!(
        t.elapsed() < deadline + Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(tokens, ["partial "]);
    assert_eq!(f.server.connections(), 1);
}

#[test]
fn a_server_that_ignores_stream_still_answers() {
    let f = fixture();
    f.server.push([Behaviour::Answer("Whole reply.".into())]);
    let (result, tokens) = chat(&f.model, SECS_3, true);
    let reply = result.expect("reply");
    assert_eq!(tokens, ["Whole reply."]);
    assert!(reply.first_token.is_some());
}

#[test]
fn garbage_mid_stream_fails_without_retry() {
    let f = fixture();
    let good = r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#;
    f.server.push([
        Behaviour::StreamRaw(format!("{good}\n\ndata: <html>oops</html>\n\n")),
        Behaviour::Answer("unused".into()),
    ]);
    let (result, tokens) = chat(&f.model, SECS_3, true);
    assert!(matches!(result, Err(OnlineError::Garbage(_))), "{result:?}");
    assert_eq!(tokens, ["Hi"]);
    assert_eq!(f.server.connections(), 1);
}

#[test]
fn an_empty_stream_is_garbage() {
    let f = fixture();
    f.server
        .push([Behaviour::StreamRaw("data: [DONE]\n\n".into())]);
    let (result, tokens) = chat(&f.model, SECS_3, true);
    assert!(matches!(result, Err(OnlineError::Garbage(_))), "{result:?}");
    assert!(tokens.is_empty());
    assert_eq!(f.server.connections(), 1);
}

#[test]
fn success_keeps_the_breaker_closed_and_resets_failures() {
    let f = fixture_with(|c| c.max_attempts = 1);
    f.server.push([
        Behaviour::Fail(500),
        Behaviour::Fail(500),
        Behaviour::Answer("ok".into()),
        Behaviour::Fail(500),
        Behaviour::Fail(500),
    ]);
    for _ in 0..2 {
        assert!(chat(&f.model, SECS_3, false).0.is_err());
    }
    assert_eq!(f.model.snapshot().consecutive_failures, 2);
    assert!(chat(&f.model, SECS_3, false).0.is_ok());
    assert_eq!(f.model.snapshot().consecutive_failures, 0);
    for _ in 0..2 {
        assert!(chat(&f.model, SECS_3, false).0.is_err());
    }
    let snap = f.model.snapshot();
    assert_eq!(snap.state, StateName::Closed);
    assert_eq!(snap.error_count, 4);
    assert_eq!(f.server.connections(), 5);
}

#[test]
fn three_failures_open_and_open_rejects_without_network() {
    let f = fixture_with(|c| c.max_attempts = 1);
    f.server.push([
        Behaviour::Fail(500),
        Behaviour::Fail(500),
        Behaviour::Fail(500),
    ]);
    for i in 1..=3 {
        let (result, _) = chat(&f.model, SECS_3, false);
        assert!(
            matches!(result, Err(OnlineError::Status { status: 500, .. })),
            "{result:?}"
        );
        let expected = if i < 3 {
            StateName::Closed
        } else {
            StateName::Open
        };
        assert_eq!(f.model.snapshot().state, expected);
    }
    assert_eq!(f.server.connections(), 3);
    f.server
        .push([Behaviour::Answer("must not be used".into())]);
    for _ in 0..5 {
        let (result, tokens) = chat(&f.model, SECS_3, true);
        match result {
            Err(OnlineError::Unavailable { retry_in }) => {
                assert!(retry_in <= COOL_DOWN && retry_in > COOL_DOWN - Duration::from_secs(5));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(tokens.is_empty());
    }
    assert!(matches!(
        f.model.probe(),
        Err(OnlineError::Unavailable { .. })
    ));
    assert_eq!(f.server.connections(), 3);
    assert_eq!(f.server.left(), 1);
    let snap = f.model.snapshot();
    assert_eq!(snap.consecutive_failures, 3);
    assert!(snap.retry_in_ms.is_some_and(|ms| ms <= 30_000));
    assert!(snap
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("500")));
}

#[test]
fn half_open_trial_success_closes() {
    let f = fixture();
    open_breaker(&f);
    f.clock.advance(COOL_DOWN);
    f.server.push([Behaviour::Answer("back".into())]);
    let (result, _) = chat(&f.model, SECS_3, false);
    let reply = result.expect("trial reply");
    assert_eq!(reply.text, "back");
    assert_eq!(f.server.connections(), 4);
    let snap = f.model.snapshot();
    assert_eq!(snap.state, StateName::Closed);
    assert_eq!(snap.retry_in_ms, None);
    // Closed again: the next failure run needs three failures to reopen, with the base
    // cool-down.
    open_breaker(&f);
    let retry = f.model.snapshot().retry_in_ms.expect("open");
    assert!(retry <= 30_000 && retry > 25_000, "{retry}");
}

#[test]
fn half_open_trial_failure_reopens_with_doubled_cool_down() {
    let f = fixture();
    open_breaker(&f);
    f.clock.advance(COOL_DOWN);
    // The trial fails with a transient error: no retry, even with attempts left.
    f.server
        .push([Behaviour::Fail(503), Behaviour::Answer("later".into())]);
    let (result, _) = chat(&f.model, SECS_3, false);
    assert!(
        matches!(result, Err(OnlineError::Status { status: 503, .. })),
        "{result:?}"
    );
    assert_eq!(f.server.connections(), 4);
    let snap = f.model.snapshot();
    assert_eq!(snap.state, StateName::Open);
    let retry = snap.retry_in_ms.expect("open");
    assert!(retry <= 60_000 && retry > 55_000, "{retry}");
    // The old cool-down is not enough any more.
    f.clock.advance(COOL_DOWN + Duration::from_secs(1));
    assert!(matches!(
        chat(&f.model, SECS_3, false).0,
        Err(OnlineError::Unavailable { .. })
    ));
    assert_eq!(f.server.connections(), 4);
    f.clock.advance(COOL_DOWN);
    assert_eq!(
        chat(&f.model, SECS_3, false).0.expect("trial").text,
        "later"
    );
    assert_eq!(f.server.connections(), 5);
    assert_eq!(f.model.snapshot().state, StateName::Closed);
}

#[test]
fn half_open_lets_only_one_trial_through() {
    let f = fixture();
    open_breaker(&f);
    let _ = f.server.drain_requests();
    f.clock.advance(COOL_DOWN);
    f.server.push([
        Behaviour::Hang,
        Behaviour::Answer("must not be used".into()),
    ]);
    let model = f.model.clone();
    let trial = std::thread::spawn(move || {
        let (result, _) = chat(&model, Duration::from_secs(1), false);
        result
    });
    // The trial has reached the server (and hangs there).
    let _ = f.server.request();
    assert_eq!(f.model.snapshot().state, StateName::HalfOpen);
    assert!(matches!(
        chat(&f.model, SECS_3, false).0,
        Err(OnlineError::Unavailable { .. })
    ));
    assert_eq!(f.server.connections(), 4);
    let result = trial.join().expect("trial thread");
    assert!(
        matches!(result, Err(OnlineError::Timeout { .. })),
        "{result:?}"
    );
    let snap = f.model.snapshot();
    assert_eq!(snap.state, StateName::Open);
    assert!(snap.retry_in_ms.is_some_and(|ms| ms > 55_000));
    assert_eq!(f.server.connections(), 4);
}

#[test]
fn transient_errors_are_retried() {
    let f = fixture();
    f.server.push([
        Behaviour::Fail(500),
        Behaviour::Fail(503),
        Behaviour::Answer("third time".into()),
    ]);
    let (result, tokens) = chat(&f.model, SECS_3, false);
    let reply = result.expect("reply");
    assert_eq!(reply.attempts, 3);
    assert_eq!(f.server.connections(), 3);
    assert_eq!(tokens, ["third time"]);
    let snap = f.model.snapshot();
    assert_eq!((snap.success_count, snap.error_count), (1, 2));
    assert_eq!(snap.errors.get("server"), Some(&2));
    assert_eq!(snap.state, StateName::Closed);
    assert_eq!(snap.consecutive_failures, 0);
    assert!(snap.success_rate > 0.3 && snap.success_rate < 0.34);
}

#[test]
fn attempts_stop_at_max_attempts() {
    let f = fixture_with(|c| {
        c.max_attempts = 2;
        c.breaker.failure_threshold = 10;
    });
    f.server.push([
        Behaviour::Fail(502),
        Behaviour::Fail(504),
        Behaviour::Answer("x".into()),
    ]);
    let (result, _) = chat(&f.model, SECS_3, false);
    assert!(
        matches!(result, Err(OnlineError::Status { status: 504, .. })),
        "{result:?}"
    );
    assert_eq!(f.server.connections(), 2);
}

#[test]
fn breaker_opening_mid_call_stops_the_retries() {
    let f = fixture_with(|c| {
        c.max_attempts = 5;
        c.breaker.failure_threshold = 2;
    });
    f.server.push([
        Behaviour::Fail(500),
        Behaviour::Fail(500),
        Behaviour::Answer("x".into()),
    ]);
    let (result, _) = chat(&f.model, SECS_3, false);
    // The last real error, not Unavailable.
    assert!(
        matches!(result, Err(OnlineError::Status { status: 500, .. })),
        "{result:?}"
    );
    assert_eq!(f.server.connections(), 2);
    assert_eq!(f.model.snapshot().state, StateName::Open);
}

#[test]
fn auth_errors_are_not_retried() {
    let f = fixture();
    f.server
        .push([Behaviour::Fail(401), Behaviour::Answer("unused".into())]);
    let (result, _) = chat(&f.model, SECS_3, false);
    match result {
        Err(e @ OnlineError::Auth { status: 401, .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("scripted failure 401"), "{e}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert_eq!(f.server.connections(), 1);
    let snap = f.model.snapshot();
    assert_eq!(snap.errors.get("config"), Some(&1));
    assert_eq!(snap.error_count, 1);
}

#[test]
fn client_errors_are_not_retried() {
    let f = fixture();
    f.server.push([
        Behaviour::Fail(404),
        Behaviour::Fail(400),
        Behaviour::Answer("u".into()),
    ]);
    assert!(matches!(
        chat(&f.model, SECS_3, false).0,
        Err(OnlineError::Status { status: 404, .. })
    ));
    assert!(matches!(
        chat(&f.model, SECS_3, false).0,
        Err(OnlineError::Status { status: 400, .. })
    ));
    assert_eq!(f.server.connections(), 2);
    assert_eq!(f.model.snapshot().errors.get("rejected"), Some(&2));
}

#[test]
fn garbage_is_not_retried() {
    let f = fixture();
    f.server.push([
        Behaviour::Garbage("not json".into()),
        Behaviour::Garbage(r#"{"choices":[{"message":{"content":""}}]}"#.into()),
        Behaviour::Garbage(r#"{"id":"x"}"#.into()),
        Behaviour::Answer("unused".into()),
    ]);
    for _ in 0..3 {
        let (result, tokens) = chat(&f.model, SECS_3, false);
        assert!(matches!(result, Err(OnlineError::Garbage(_))), "{result:?}");
        assert!(tokens.is_empty());
    }
    assert_eq!(f.server.connections(), 3);
    let snap = f.model.snapshot();
    assert_eq!(snap.errors.get("garbage"), Some(&3));
    assert_eq!(snap.quality, 0.0);
    // Three garbage replies in a row open the breaker too.
    assert_eq!(snap.state, StateName::Open);
}

#[test]
fn retry_after_beyond_the_deadline_is_not_waited_for() {
    let f = fixture();
    f.server.push([
        Behaviour::Raw(429, vec!["Retry-After: 60".into()], "slow down".into()),
        Behaviour::Answer("unused".into()),
    ]);
    let (result, _) = chat(&f.model, SECS_3, false);
    match result {
        Err(OnlineError::Status {
            status: 429,
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(60)));
            assert_eq!(message, "slow down");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(f.server.connections(), 1);
}

#[test]
fn a_hang_ends_by_the_deadline() {
    let f = fixture_with(|c| c.timeout = Duration::from_secs(10));
    f.server
        .push([Behaviour::Hang, Behaviour::Answer("unused".into())]);
    let deadline = Duration::from_millis(300);
    let t = Instant::now();
    let (result, _) = chat(&f.model, deadline, true);
    let took = t.elapsed();
    assert!(
        matches!(result, Err(OnlineError::Timeout { .. })),
        "{result:?}"
    );
    assert!(result.as_ref().err().is_some_and(OnlineError::is_transient));
    // No time was left for a retry.
    assert_eq!(f.server.connections(), 1);
    // By the deadline (with scheduling slack), not the 10 s attempt timeout.
    assert!(took < deadline + Duration::from_millis(500), "{took:?}");
    assert_eq!(f.model.snapshot().errors.get("timeout"), Some(&1));
}

#[test]
fn a_hung_attempt_is_retried_when_time_is_left() {
    let f = fixture_with(|c| c.timeout = Duration::from_millis(200));
    f.server
        .push([Behaviour::Hang, Behaviour::Answer("second".into())]);
    let (result, _) = chat(&f.model, SECS_3, false);
    let reply = result.expect("reply");
    assert_eq!(reply.attempts, 2);
    assert_eq!(reply.text, "second");
    assert_eq!(f.server.connections(), 2);
}

#[test]
fn slow_replies_within_and_past_the_deadline() {
    let f = fixture_with(|c| c.max_attempts = 1);
    f.server.push([
        Behaviour::Slow(Duration::from_millis(100), "slow but fine".into()),
        Behaviour::Slow(Duration::from_secs(2), "too slow".into()),
    ]);
    let (result, _) = chat(&f.model, SECS_3, false);
    let reply = result.expect("reply");
    assert_eq!(reply.text, "slow but fine");
    assert!(reply.latency >= Duration::from_millis(100));
    assert!(f.model.snapshot().p50_ms.is_some_and(|ms| ms >= 100));
    let (result, _) = chat(&f.model, Duration::from_millis(250), false);
    assert!(
        matches!(result, Err(OnlineError::Timeout { .. })),
        "{result:?}"
    );
}

#[test]
fn connection_refused_is_transient_and_counts() {
    let clock = Arc::new(ShiftClock::default());
    let model = OnlineModel::with_clock(config(closed_port_url()), clock);
    let (result, _) = chat(&model, SECS_3, false);
    match &result {
        Err(e @ OnlineError::Connect(_)) => assert!(e.is_transient()),
        other => panic!("expected Connect, got {other:?}"),
    }
    let snap = model.snapshot();
    // Three attempts, three failures: the breaker opened.
    assert_eq!(snap.errors.get("connect"), Some(&3));
    assert_eq!(snap.state, StateName::Open);
    assert!(matches!(
        chat(&model, SECS_3, false).0,
        Err(OnlineError::Unavailable { .. })
    ));
}

#[test]
fn deadline_in_the_past_sends_nothing() {
    let f = fixture();
    let o = ChatOptions {
        max_tokens: 8,
        temperature: 0.0,
        deadline: f.model.now() - Duration::from_millis(1),
        stream: false,
    };
    let result = f.model.chat(&messages(), &o, &mut |_: &str| true);
    assert!(
        matches!(result, Err(OnlineError::DeadlineExceeded)),
        "{result:?}"
    );
    assert_eq!(f.server.connections(), 0);
    assert_eq!(f.model.snapshot().error_count, 0);
}

#[test]
fn api_key_from_the_environment() {
    let var = "SERENA_ONLINE_TEST_KEY_SET";
    // Edition 2021: set_var is safe; no other test reads this variable.
    std::env::set_var(var, "sk-test-123");
    let f = fixture_with(|c| c.api_key_env = Some(var.into()));
    f.server
        .push([Behaviour::Answer("authorised".into()), Behaviour::Models]);
    assert!(chat(&f.model, SECS_3, false).0.is_ok());
    let req = f.server.request();
    assert_eq!(
        req.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-test-123")
    );
    assert!(f.model.probe().is_ok());
    let req = f.server.request();
    assert_eq!(
        req.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-test-123")
    );
    // The key is never in what `serena status` shows.
    let json = serde_json::to_string(&f.model.snapshot()).expect("json");
    assert!(!json.contains("sk-test"));
}

#[test]
fn a_missing_key_sends_nothing() {
    let f = fixture_with(|c| c.api_key_env = Some("SERENA_ONLINE_TEST_KEY_UNSET".into()));
    let (result, _) = chat(&f.model, SECS_3, false);
    match result {
        Err(e @ OnlineError::MissingKey { .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("SERENA_ONLINE_TEST_KEY_UNSET"));
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    assert_eq!(f.server.connections(), 0);
}

#[test]
fn probe_checks_the_model_list() {
    let f = fixture();
    f.server
        .push([Behaviour::Models, Behaviour::Garbage("<html>".into())]);
    let latency = f.model.probe().expect("probe");
    assert!(latency < Duration::from_secs(1));
    let req = f.server.request();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/v1/models")
    );
    let snap = f.model.snapshot();
    assert_eq!(snap.success_count, 1);
    // Probe latencies stay out of the reply latency history.
    assert_eq!(snap.p50_ms, None);
    assert!(matches!(f.model.probe(), Err(OnlineError::Garbage(_))));
    assert_eq!(f.model.snapshot().error_count, 1);
}

#[test]
fn probe_is_the_half_open_trial() {
    let f = fixture();
    open_breaker(&f);
    f.clock.advance(COOL_DOWN);
    f.server.push([Behaviour::Models]);
    f.model.probe().expect("probe");
    assert_eq!(f.model.snapshot().state, StateName::Closed);
}

#[test]
fn snapshot_serializes_for_status() {
    let f = fixture_with(|c| {
        c.base_url = c.base_url.replace("http://", "http://user:pw@");
    });
    f.server
        .push([Behaviour::Answer("a".into()), Behaviour::Fail(500)]);
    let _ = chat(&f.model, SECS_3, false);
    let _ = f.model.probe();
    let v = serde_json::to_value(f.model.snapshot()).expect("json");
    assert_eq!(v["name"], "test");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["model"], "m");
    assert!(!v["url"].as_str().unwrap_or("").contains("pw"));
    assert_eq!(v["success_count"], 1);
    assert_eq!(v["error_count"], 1);
    assert_eq!(v["errors"]["server"], 1);
    assert_eq!(v["consecutive_failures"], 1);
    assert_eq!(v["success_rate"], 0.5);
    assert!(v["p50_ms"].is_u64());
    assert!(v["p95_ms"].is_u64());
    assert!(v["quality"].as_f64().is_some_and(|q| q > 0.0 && q <= 0.5));
    assert!(v["last_error"].as_str().is_some_and(|e| e.contains("500")));
    assert!(v["retry_in_ms"].is_null());
    let back: serena::llm::online::HealthSnapshot = serde_json::from_value(v).expect("round trip");
    assert_eq!(back.state, StateName::Closed);
}

#[test]
fn shared_across_threads() {
    let f = fixture();
    let n = 4;
    f.server
        .push((0..n).map(|i| Behaviour::Answer(format!("reply {i}"))));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let model = f.model.clone();
            std::thread::spawn(move || chat(&model, SECS_3, false).0.map(|r| r.text))
        })
        .collect();
    let mut texts: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("reply"))
        .collect();
    texts.sort();
    assert_eq!(texts, ["reply 0", "reply 1", "reply 2", "reply 3"]);
    assert_eq!(f.model.snapshot().success_count, n as u64);
}
