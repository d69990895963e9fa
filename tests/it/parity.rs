//! Parity with whisper.cpp's own `whisper-cli`: same model, same threads, same decoding, same
//! text.
//!
//! `whisper-cli` is built by `scripts/build-whisper-cli.sh` from the very `libwhisper.a` and
//! ggml that `serena` links (only the command-line front end is whisper.cpp 1.8.5's, from the
//! PyPI sdist of pywhispercpp 1.5.1). The script is run every time: it returns at once when
//! the binary is up to date and relinks when cargo has rebuilt the libraries. It needs
//! `cargo build --release` to have run (this module is meant for `cargo test --release`),
//! g++ and pip; when it fails the test fails with its output.
//!
//! Settings, matched on both sides:
//! - model `whisper/ggml-tiny.en.bin`, 2 threads, language `en`;
//! - greedy decoding: `serena -b 1` is whisper.cpp's `Greedy { best_of: 5 }` (best-of only
//!   matters on temperature fallback), so `whisper-cli -bs 1 -bo 5`;
//! - timestamps on (`whisper-cli -nt` would change decoding: no timestamp tokens);
//! - flash attention on, both tools' default (Serena: `stt.flash_attn = true`).
//!
//! Input: 16 kHz mono files go to both tools as they are (PCM WAV/FLAC, and the MP3 and Ogg
//! encodings, whose decoders agree here). A file at another rate would be resampled
//! differently (whisper-cli: miniaudio's linear resampler; Serena: rubato's band-limited one),
//! which does change the text of the 8 kHz LibriSpeech clip ("Lenell's" vs "Leno's"), so
//! such clips are decoded once with Serena's decoder into a 16 kHz float WAV that both tools
//! read: this module tests the speech engine, not the resamplers.
//!
//! Each tool runs once over all clips (one model load, as a user transcribing a folder would),
//! sequentially, writing `.txt` files that are compared clip by clip after whitespace
//! normalisation (segments joined with single spaces).
//! Both run with `OMP_WAIT_POLICY=passive`: the shared ggml uses OpenMP, whose default
//! spin-waiting makes either tool randomly ~10x slower when other processes share the cores
//! (it does not change results).
//! Clips without speech are left out: Serena deliberately drops `[BLANK_AUDIO]` and
//! probably-silent segments (`stt::clean`), whisper-cli prints them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{audio, model, repo, Env};

const MODEL: &str = "whisper/ggml-tiny.en.bin";
const THREADS: &str = "2";

/// How a clip reaches the two tools.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    /// The file itself.
    AsIs,
    /// Decoded and resampled once by Serena, written as 16 kHz mono `f32` WAV.
    Same16k,
}

/// Every clip in `audio-fixtures` with speech and a reference transcript.
const CLIPS: &[(&str, Input)] = &[
    ("asr/jfk.wav", Input::AsIs),
    ("asr/jfk.flac", Input::AsIs),
    ("asr/jfk.mp3", Input::AsIs),
    ("asr/jfk.ogg", Input::AsIs),
    ("asr/librispeech/1089-134686-0000.flac", Input::AsIs),
    ("asr/librispeech/1089-134691-0000.flac", Input::AsIs),
    ("asr/librispeech/1272-128104-0004-8k.wav", Input::Same16k),
    ("commands/rhasspy3_set_timer.wav", Input::AsIs),
    ("commands/rhasspy3_what_time_is_it.wav", Input::AsIs),
    ("commands/rhasspy3_whats_the_date_today.wav", Input::AsIs),
    ("commands/rhasspy3_this_is_a_test.wav", Input::AsIs),
    ("commands/rhino_test_out_of_context.wav", Input::AsIs),
    ("wakeword/porcupine_porcupine.wav", Input::AsIs),
    ("wakeword/rhasspy3_porcupine.wav", Input::AsIs),
];

/// Segments joined with single spaces, trimmed.
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `target/whisper-cli/whisper-cli`, built (or relinked) by the script first.
fn whisper_cli() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = repo().join("scripts/build-whisper-cli.sh");
        let out = Command::new("bash")
            .arg(&script)
            .current_dir(repo())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e} (is bash installed?)", script.display())
            });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} failed ({}):\n{stderr}\n\
             The parity test needs whisper-cli built against Serena's own whisper.cpp and ggml. \
             It needs: a finished `cargo build --release` (run the test with \
             `cargo test --release --test it parity`), a C++ compiler (Debian: \
             `apt-get install g++`), and pip with access to PyPI (Debian: \
             `apt-get install python3-pip`) to download the pywhispercpp 1.5.1 sdist once.",
            script.display(),
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let bin = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            bin.is_file(),
            "{} succeeded but printed no binary path (stdout {stdout:?}, stderr:\n{stderr})",
            script.display()
        );
        bin
    })
}

/// A name unique among the clips (both tools name outputs after the input's stem).
fn flat_name(rel: &str) -> String {
    rel.replace('/', "__")
}

/// A 16 kHz mono float WAV of `src` as Serena's decoder sees it, written to `dst`.
fn write_same_16k(src: &Path, dst: &Path) {
    let samples = serena::audio::decode::decode_file_16k_mono(src)
        .unwrap_or_else(|e| panic!("decoding {}: {e}", src.display()));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(dst, spec).expect("create 16 kHz wav");
    for s in samples {
        w.write_sample(s).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// The normalised text of `<dir>/<stem>.txt`.
fn read_txt(dir: &Path, input: &Path, tool: &str, stderr: &str) -> String {
    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
    let txt = dir.join(format!("{stem}.txt"));
    let text = std::fs::read_to_string(&txt).unwrap_or_else(|e| {
        panic!(
            "{tool} wrote no {} for {}: {e}\n{stderr}",
            txt.display(),
            input.display()
        )
    });
    normalise(&text)
}

/// One `serena transcribe` over all inputs (the model is loaded once, as whisper-cli does).
fn run_serena(env: &Env, inputs: &[PathBuf], out_dir: &Path) -> Vec<String> {
    let out = env
        .serena()
        .args(["transcribe", "-f", "txt", "-t", THREADS, "-b", "1", "-m"])
        .arg(model(MODEL))
        .arg("-o")
        .arg(out_dir)
        .env("OMP_WAIT_POLICY", "passive")
        .args(inputs)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run serena");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "serena transcribe failed ({}):\n{stderr}",
        out.status
    );
    inputs
        .iter()
        .map(|i| read_txt(out_dir, i, "serena", &stderr))
        .collect()
}

/// One `whisper-cli` over all inputs, each with its own `-of`.
fn run_whisper_cli(inputs: &[PathBuf], out_dir: &Path) -> Vec<String> {
    let mut cmd = assert_cmd::Command::new(whisper_cli());
    cmd.args([
        "-t", THREADS, "-bs", "1", "-bo", "5", "-l", "en", "-np", "-otxt",
    ])
    .arg("-m")
    .arg(model(MODEL));
    for input in inputs {
        let stem = input.file_stem().unwrap_or_default();
        cmd.arg("-of").arg(out_dir.join(stem)).arg("-f").arg(input);
    }
    let out = cmd
        .env("OMP_WAIT_POLICY", "passive")
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run whisper-cli");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "whisper-cli failed ({}):\n{stderr}",
        out.status
    );
    inputs
        .iter()
        .map(|i| read_txt(out_dir, i, "whisper-cli", &stderr))
        .collect()
}

#[test]
fn transcripts_match_whisper_cli() {
    let cli = whisper_cli();
    let env = Env::new();
    let dir = |name: &str| {
        let d = env.path().join(name);
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    };
    let (inputs_dir, serena_out, cli_out) = (dir("inputs"), dir("serena"), dir("whisper-cli"));

    // Unique names (jfk.wav, jfk.flac, ... share a stem): copies of the clips, or the 16 kHz WAV.
    let inputs: Vec<PathBuf> = CLIPS
        .iter()
        .map(|&(rel, how)| {
            let original = audio(rel);
            let name = flat_name(rel);
            match how {
                Input::AsIs => {
                    let copy = inputs_dir.join(&name);
                    std::fs::copy(&original, &copy).expect("copy clip");
                    copy
                }
                Input::Same16k => {
                    let path = inputs_dir.join(format!("{name}.16k.wav"));
                    write_same_16k(&original, &path);
                    path
                }
            }
        })
        .collect();

    let t = Instant::now();
    let serena = run_serena(&env, &inputs, &serena_out);
    let t_serena = t.elapsed();
    let t = Instant::now();
    let reference = run_whisper_cli(&inputs, &cli_out);
    let t_cli = t.elapsed();

    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for ((&(rel, how), serena), reference) in CLIPS.iter().zip(&serena).zip(&reference) {
        let same = serena == reference;
        report.push(format!(
            "{} {rel} ({how:?}): {serena}",
            if same { "same" } else { "DIFF" }
        ));
        if !same {
            mismatches.push(format!(
                "{rel} ({how:?})\n  serena:      {serena:?}\n  whisper-cli: {reference:?}"
            ));
        }
        assert!(
            !serena.is_empty(),
            "{rel}: serena returned no text for a clip with speech"
        );
    }
    eprintln!(
        "parity with {} (serena {:.1} s, whisper-cli {:.1} s for {} clips):\n{}",
        cli.display(),
        t_serena.as_secs_f64(),
        t_cli.as_secs_f64(),
        CLIPS.len(),
        report.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} clips transcribe differently from whisper-cli (model {MODEL}, {THREADS} threads, \
         greedy best-of 5, flash attention):\n{}",
        mismatches.len(),
        CLIPS.len(),
        mismatches.join("\n")
    );
}
