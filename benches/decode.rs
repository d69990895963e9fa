//! Decode + resample throughput of [`serena::audio::decode::Decoder`]: how many seconds of audio
//! it turns into 16 kHz mono `f32` per second of wall time, for WAV, MP3 and FLAC fixtures, at
//! 16 kHz (no resampling) and at other rates and channel counts (downmix + rubato).
//!
//! ```text
//! cargo bench --bench decode
//! cargo bench --bench decode -- flac     # one format
//! ```
//!
//! Each iteration opens the file and streams it to the end in 64 Ki-sample reads, as
//! `serena transcribe` does (the file stays in the page cache, so this is CPU, not disk).
//! Criterion's throughput line counts one element per millisecond of audio, so
//! `Kelem/s` reads as audio-seconds per second; a table in exactly those units is printed at
//! the end as well.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use serena::audio::decode::Decoder;

/// (format, what happens, file under audio-fixtures/).
const FIXTURES: &[(&str, &str, &str)] = &[
    ("wav", "16k mono s16, passthrough", "asr/jfk.wav"),
    (
        "wav",
        "8k mono s16 -> 16k",
        "asr/librispeech/1272-128104-0004-8k.wav",
    ),
    (
        "wav",
        "44.1k stereo s16 -> 16k mono",
        "asr/jfk_44k_stereo.wav",
    ),
    ("mp3", "16k mono 32 kbit/s", "asr/jfk.mp3"),
    ("flac", "16k mono", "asr/jfk.flac"),
    ("flac", "48k stereo -> 16k mono", "asr/jfk_48k_stereo.flac"),
];

/// Total measured (audio seconds, wall time) per benchmark, for the closing table.
static TOTALS: Mutex<BTreeMap<String, (f64, Duration)>> = Mutex::new(BTreeMap::new());

fn fixture(rel: &str) -> PathBuf {
    let dir = std::env::var_os("SERENA_AUDIO_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-fixtures"));
    let path = dir.join(rel);
    assert!(path.is_file(), "audio fixture missing: {}", path.display());
    path
}

/// Opens `path` and decodes it to the end; returns the number of 16 kHz samples.
fn decode_all(path: &Path, buf: &mut Vec<f32>) -> usize {
    let mut decoder = Decoder::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut total = 0;
    loop {
        buf.clear();
        let n = decoder
            .read_16k_mono(buf, 1 << 16)
            .unwrap_or_else(|e| panic!("{e}"));
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_16k_mono");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut buf = Vec::with_capacity(1 << 16);
    for &(format, what, rel) in FIXTURES {
        let path = fixture(rel);
        let samples = decode_all(&path, &mut buf);
        let audio_s = samples as f64 / 16_000.0;
        let id = format!("{format}: {what}");
        group.throughput(Throughput::Elements((audio_s * 1000.0).round() as u64));
        group.bench_with_input(BenchmarkId::new(format, what), &path, |b, path| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(decode_all(path, &mut buf));
                }
                let elapsed = start.elapsed();
                let mut totals = TOTALS.lock().expect("totals");
                let entry = totals.entry(id.clone()).or_insert((0.0, Duration::ZERO));
                entry.0 += audio_s * iters as f64;
                entry.1 += elapsed;
                elapsed
            });
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_decode(&mut criterion);
    criterion.final_summary();

    let totals = TOTALS.lock().expect("totals");
    if totals.is_empty() {
        return; // filtered out, or `--list`
    }
    println!("\n| fixture | audio-seconds per second (mean over all iterations) |");
    println!("|---|---:|");
    for (id, (audio_s, wall)) in totals.iter() {
        let rate = audio_s / wall.as_secs_f64().max(1e-12);
        println!("| {id} | {rate:.0} |");
    }
}
