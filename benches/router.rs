//! Router speed: time per sentence over Home Assistant's test sentences and Serena's own,
//! and template loading at start-up.
//!
//! `cargo bench --bench router`

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use serena::router::Router;

/// Every `sentences:` entry of the fixture tests (plain YAML lines starting with `- `
/// under a `sentences:` key), plus a few negatives.
fn sentences() -> Vec<String> {
    let dir = std::env::var_os("SERENA_INTENTS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/intents/home-assistant-intents/tests/en")
        });
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared intent fixtures are needed)",
            dir.display()
        )
    });
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut in_sentences = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("sentences:") {
                in_sentences = true;
            } else if in_sentences && t.starts_with("- ") {
                out.push(t.trim_start_matches("- ").trim_matches('"').to_string());
            } else if !t.is_empty() && !t.starts_with('#') {
                in_sentences = false;
            }
        }
    }
    out.extend(
        [
            "what time does the store open",
            "set the table",
            "tell me a joke",
            "how long is a piece of string",
        ]
        .map(String::from),
    );
    out
}

fn bench(c: &mut Criterion) {
    let router = Router::builtin().expect("builtin templates load");
    let sentences = sentences();
    assert!(
        sentences.len() > 100,
        "only {} sentences found",
        sentences.len()
    );
    c.bench_function("route_all_test_sentences", |b| {
        b.iter(|| {
            for s in &sentences {
                std::hint::black_box(router.route(s));
            }
        })
    });
    c.bench_function("route_one_sentence", |b| {
        b.iter(|| router.route("set a timer for five and a half minutes"))
    });
    c.bench_function("load_builtin_templates", |b| {
        b.iter(|| Router::builtin().expect("load"))
    });

    // Per-sentence distribution, printed once (median and p99).
    let mut times: Vec<f64> = Vec::new();
    for _ in 0..20 {
        for s in &sentences {
            let t = std::time::Instant::now();
            std::hint::black_box(router.route(s));
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    eprintln!(
        "router: {} sentences, per sentence median {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        sentences.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
