//! Store speed and size: history appends per second (batched and flushed), search over
//! 100,000 entries, backup and restore of 100,000 entries, and the size on disk.
//!
//! `cargo bench --bench store` (prints a table; criterion is used for the append rate).

use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use serena::store::{HistoryEntry, InputMode, ReplySource, Store};

fn entry(i: u64) -> HistoryEntry {
    HistoryEntry {
        id: 0,
        time_ms: serena::store::now_ms(),
        mode: InputMode::Voice,
        transcript: format!("set a timer for {} minutes number {i}", i % 60),
        intent: Some("HassStartTimer".into()),
        slots: serde_json::json!({"minutes": i % 60}),
        reply: format!("Timer set for {} minutes", i % 60),
        source: ReplySource::Router,
        timings: [("stt_ms".to_string(), 180u64), ("route_us".to_string(), 6)]
            .into_iter()
            .collect(),
        power_profile: "performance".into(),
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&tmp.path().join("store")).expect("open");
    let mut i = 0u64;
    c.bench_function("history_append_batched", |b| {
        b.iter(|| {
            i += 1;
            store.append_history(entry(i)).expect("append")
        })
    });
    c.bench_function("history_append_flushed", |b| {
        b.iter(|| {
            i += 1;
            store.append_history(entry(i)).expect("append");
            store.flush().expect("flush")
        })
    });
    drop(store);

    // The 100,000-entry figures, measured once each.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = Store::open(&dir).expect("open");
    let t = Instant::now();
    for i in 0..100_000 {
        store.append_history(entry(i)).expect("append");
    }
    store.flush().expect("flush");
    let append = t.elapsed();
    let t = Instant::now();
    let hits = store
        .history_search(Some("number 99999"), None, 20)
        .expect("search");
    let search = t.elapsed();
    assert_eq!(hits.len(), 1);
    let t = Instant::now();
    let recent = store
        .history_search(
            None,
            Some(SystemTime::now() - Duration::from_secs(3600)),
            20,
        )
        .expect("search");
    let search_recent = t.elapsed();
    assert_eq!(recent.len(), 20);
    let archive = tmp.path().join("backup.serenabk");
    let t = Instant::now();
    store.backup(&archive, None).expect("backup");
    let backup = t.elapsed();
    let size = dir_size(&dir);
    drop(store);
    let t = Instant::now();
    serena::store::restore_dir(&tmp.path().join("restored"), &archive, None).expect("restore");
    let restore = t.elapsed();
    eprintln!(
        "store, 100,000 history entries: append {:.0}/s batched; search (full scan) {:.0} ms; \
         newest 20 in the last hour {:.1} ms; backup {:.2} s ({:.1} MB); restore {:.2} s; \
         size on disk {:.1} MB",
        100_000.0 / append.as_secs_f64(),
        search.as_secs_f64() * 1e3,
        search_recent.as_secs_f64() * 1e3,
        backup.as_secs_f64(),
        std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        restore.as_secs_f64(),
        size as f64 / 1e6,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
