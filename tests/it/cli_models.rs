//! `serena models`: verification of real and broken files, import, lookup, and downloads
//! from a real HTTP server on 127.0.0.1 (resume, checksum, offline).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use predicates::prelude::*;
use sha2::Digest;

use crate::common::{model, Env};

fn truncated_copy(env: &Env, rel: &str, keep: f64) -> PathBuf {
    let bytes = std::fs::read(model(rel)).expect("read fixture");
    let path = env
        .path()
        .join(format!("truncated-{}", rel.replace('/', "-")));
    std::fs::write(&path, &bytes[..(bytes.len() as f64 * keep) as usize]).expect("write");
    path
}

#[test]
fn verify_accepts_the_fixture_models() {
    let env = Env::new();
    for rel in [
        "whisper/ggml-tiny.en.bin",
        "whisper/for-tests-ggml-tiny.bin",
        "whisper/for-tests-ggml-base.en.bin",
        "vad/for-tests-silero-v6.2.0-ggml.bin",
        "llm/llama-2-tiny-random.gguf",
    ] {
        env.serena()
            .args(["models", "verify"])
            .arg(model(rel))
            .assert()
            .success()
            .stdout(predicate::str::starts_with("ok"));
    }
}

#[test]
fn verify_rejects_broken_files_naming_file_and_problem() {
    let env = Env::new();
    let text = env.path().join("notes.bin");
    std::fs::write(&text, "this is a text file, not a model\n").expect("write");
    let empty = env.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            truncated_copy(&env, "whisper/ggml-tiny.en.bin", 0.6),
            "truncated",
        ),
        (
            truncated_copy(&env, "whisper/ggml-tiny.en.bin", 0.0001),
            "truncated",
        ),
        (
            truncated_copy(&env, "llm/llama-2-tiny-random.gguf", 0.5),
            "truncated",
        ),
        (
            model("llm/tinyllamas-stories-260k-f32.gguf"),
            "GGUF version 1",
        ),
        (model("llm/ggml-vocab-llama-spm.gguf"), "vocabulary-only"),
        (model("llm/ggml-vocab-phi-3.gguf"), "vocabulary-only"),
        (text.clone(), "not a model file"),
        (empty.clone(), "empty"),
    ];
    for (path, problem) in cases {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        env.serena()
            .args(["models", "verify"])
            .arg(&path)
            .assert()
            .code(4)
            .stdout(predicate::str::contains(name.as_str()).and(predicate::str::contains(problem)));
    }
}

#[test]
fn transcribe_refuses_a_broken_model_with_exit_4() {
    let env = Env::new();
    let broken = truncated_copy(&env, "whisper/ggml-tiny.en.bin", 0.5);
    env.serena()
        .args(["transcribe", "--model"])
        .arg(&broken)
        .arg(crate::common::audio("asr/jfk.wav"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("truncated"));
    // A GGUF where a whisper model is wanted.
    env.serena()
        .args(["transcribe", "--model"])
        .arg(model("llm/llama-2-tiny-random.gguf"))
        .arg(crate::common::audio("asr/jfk.wav"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not a whisper model"));
}

#[test]
fn lookup_by_catalog_name_through_serena_models() {
    let env = Env::new();
    env.serena()
        .args(["models", "path", "tiny.en"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ggml-tiny.en.bin"));
    // whisper.cpp's repository name for the Silero file is known to the catalog.
    env.serena()
        .args(["models", "path", "silero-v6.2.0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("for-tests-silero-v6.2.0-ggml.bin"));
    env.serena()
        .args(["models", "path", "base.en"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("serena models pull base.en"));
}

#[test]
fn add_imports_checked_files_and_rm_removes_them() {
    let env = Env::new();
    let out = env
        .serena()
        .args(["models", "add"])
        .arg(model("llm/llama-2-tiny-random.gguf"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let dest = PathBuf::from(String::from_utf8_lossy(&out).trim());
    assert!(
        dest.starts_with(env.path().join("data/models/llm")),
        "{}",
        dest.display()
    );
    assert!(dest.is_file());
    env.serena()
        .args(["models", "add"])
        .arg(model("llm/tinyllamas-stories-260k-f32.gguf"))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("GGUF version 1"));
    env.serena()
        .args(["models", "rm", "llama-2-tiny-random.gguf"])
        .assert()
        .success();
    assert!(!dest.exists());
    // Files outside Serena's own directory are not Serena's to delete.
    env.serena()
        .args(["models", "rm", "tiny.en"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not in Serena's model directory"));
}

/// A one-file HTTP/1.1 server on 127.0.0.1 honouring `Range: bytes=N-`. The first
/// `break_first` requests are cut off after `cut_at` body bytes.
struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
    ranges: Arc<std::sync::Mutex<Vec<Option<u64>>>>,
}

fn serve(body: Vec<u8>, break_first: usize, cut_at: usize, max_requests: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/models/file.gguf",
        listener.local_addr().expect("addr")
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let ranges = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (req_count, range_log) = (Arc::clone(&requests), Arc::clone(&ranges));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let n = req_count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<u64>().ok();
                }
            }
            range_log.lock().expect("lock").push(range);
            let start = range.unwrap_or(0) as usize;
            let part = &body[start.min(body.len())..];
            let status = if range.is_some() {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                part.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if n < break_first {
                let _ = stream.write_all(&part[..cut_at.min(part.len())]);
                // Dropping the stream mid-body: the client sees a short read.
            } else {
                let _ = stream.write_all(part);
            }
        }
    });
    Server {
        url,
        requests,
        ranges,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn pull_resumes_an_interrupted_download_and_verifies_it() {
    let env = Env::new();
    let body = std::fs::read(model("llm/llama-2-tiny-random.gguf")).expect("read");
    let sha = sha256_hex(&body);
    let server = serve(body.clone(), 1, 600_000, 2);
    env.serena()
        .args(["models", "pull", "--url", &server.url, "--sha256", &sha])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("run the command again to resume"));
    let part = env.path().join("data/models/downloads/file.gguf.part");
    assert_eq!(
        std::fs::metadata(&part).expect("part file kept").len(),
        600_000
    );
    env.serena()
        .args(["models", "pull", "--url", &server.url, "--sha256", &sha])
        .assert()
        .success()
        .stdout(predicate::str::contains("models/llm/file.gguf"));
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        *server.ranges.lock().expect("lock"),
        vec![None, Some(600_000)]
    );
    let got = std::fs::read(env.path().join("data/models/llm/file.gguf")).expect("final file");
    assert_eq!(got, body);
    assert!(!part.exists());
}

#[test]
fn pull_refuses_a_file_with_the_wrong_checksum() {
    let env = Env::new();
    let body = std::fs::read(model("llm/llama-2-tiny-random.gguf")).expect("read");
    let server = serve(body, 0, 0, 1);
    let wrong = "0".repeat(64);
    env.serena()
        .args(["models", "pull", "--url", &server.url, "--sha256", &wrong])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("checksum mismatch"));
    assert!(!env.path().join("data/models/llm/file.gguf").exists());
    assert!(!env
        .path()
        .join("data/models/downloads/file.gguf.part")
        .exists());
}

#[test]
fn pull_fails_fast_and_clearly_when_the_host_is_unreachable() {
    let env = Env::new();
    // A port nothing listens on: connection refused, like an offline machine's proxy.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let started = std::time::Instant::now();
    env.serena()
        .env("SERENA_MODEL_MIRROR", format!("http://127.0.0.1:{port}"))
        .args(["models", "pull", "tiny.en"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("cannot reach")
                .and(predicate::str::contains("serena models add"))
                .and(predicate::str::contains("SERENA_MODELS")),
        );
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn list_shows_catalog_and_local_files_as_json() {
    let env = Env::new();
    let out = env
        .serena()
        .args(["models", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let catalog = v["catalog"].as_array().expect("catalog");
    let tiny = catalog
        .iter()
        .find(|e| e["name"] == "tiny.en")
        .expect("tiny.en in catalog");
    assert_eq!(tiny["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(tiny["installed"].as_array().map(Vec::len), Some(1));
    let files = v["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["ok"] == false
        && f["problem"]
            .as_str()
            .is_some_and(|p| p.contains("GGUF version 1"))));
}
