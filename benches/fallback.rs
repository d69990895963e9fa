//! The cost of falling back while the online model's circuit breaker is open: the breaker's
//! decision alone, and a whole `chat` call that returns `Unavailable` without touching the
//! network. The target is ≤ 1 ms per decision.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serena::llm::health::{Decision, FailureKind, StateName, Tracker};
use serena::llm::online::{ChatOptions, OnlineConfig, OnlineError, OnlineModel};
use serena::llm::Message;

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1")
}

fn fallback(c: &mut Criterion) {
    let mut tracker = Tracker::default();
    let now = Instant::now();
    for _ in 0..3 {
        tracker.record_failure(now, FailureKind::Connect, "connection refused");
    }
    assert!(matches!(tracker.allow(now), Decision::Reject { .. }));
    c.bench_function("breaker_open_allow", |b| {
        b.iter(|| black_box(tracker.allow(black_box(now))))
    });
    c.bench_function("breaker_open_allow_with_clock", |b| {
        b.iter(|| black_box(tracker.allow(Instant::now())))
    });

    // Open the breaker for real: three refused connections.
    let model = OnlineModel::new(OnlineConfig {
        base_url: closed_port_url(),
        backoff: serena::llm::health::Backoff {
            base: Duration::from_millis(1),
            factor: 2,
            cap: Duration::from_millis(2),
        },
        ..OnlineConfig::default()
    });
    let messages = vec![
        Message::new("system", "You are Serena."),
        Message::new("user", "What is the capital of France?"),
    ];
    let opts = ChatOptions {
        max_tokens: 64,
        temperature: 0.7,
        deadline: Instant::now() + Duration::from_secs(3600),
        stream: true,
    };
    let first = model.chat(&messages, &opts, &mut |_: &str| true);
    assert!(matches!(first, Err(OnlineError::Connect(_))), "{first:?}");
    assert_eq!(model.snapshot().state, StateName::Open);
    c.bench_function("chat_unavailable", |b| {
        b.iter(|| {
            let r = model.chat(black_box(&messages), black_box(&opts), &mut |_: &str| true);
            debug_assert!(matches!(r, Err(OnlineError::Unavailable { .. })));
            black_box(r.is_err())
        })
    });
    c.bench_function("snapshot", |b| b.iter(|| black_box(model.snapshot())));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = fallback
}
criterion_main!(benches);
