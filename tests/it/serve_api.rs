//! `serena serve`'s network APIs end to end: a real `serena serve` child on 127.0.0.1 with
//! the real tiny.en model and espeak-ng, driven by the reference clients (the `wyoming` and
//! `openai` Python packages, `prometheus_client`'s parser) and by raw sockets for what no
//! well-behaved client sends.
//!
//! The Python clients are `tests/fixtures/*.py`; Python is `$SERENA_TEST_PYTHON`, else the
//! virtual environment `scripts/install-deps.sh` makes (`target/test-python`), else
//! `python3`. Without the packages the tests fail and say what to install.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{audio, repo, words, Env, JFK};

/// What CI installs for these tests.
const PIP: &str = "python3 -m pip install wyoming==1.10.2 openai==3.54.0 prometheus_client==0.26.0";
/// How long `serve` may take to say it is ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a Python client may run (each of its calls has its own 120 s limit).
const CLIENT_DEADLINE: Duration = Duration::from_secs(300);
/// Read timeout on raw sockets: a server that stops answering fails the test, not hangs it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The HTTP API's body limit (`serena::http::ServerOptions::default().max_body_bytes`).
const MAX_BODY: usize = 25 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// `serena serve` as a child process

/// A running `serena serve`, killed when dropped. Its standard error goes to a file whose
/// end is printed if the test fails.
struct Serve {
    child: Option<Child>,
    events: mpsc::Receiver<String>,
    ready: Value,
    log: PathBuf,
}

impl Serve {
    /// `serena serve --events json ARGS`, once it has printed its `ready` line.
    fn start(env: &Env, args: &[&str]) -> Serve {
        let log = env.path().join("serve.log");
        let stderr = std::fs::File::create(&log).expect("serve log");
        let args: Vec<&str> = ["--no-speak"].iter().chain(args).copied().collect();
        let (child, events) = env.spawn_serve(&args, Stdio::from(stderr));
        let mut serve = Serve {
            child: Some(child),
            events,
            ready: Value::Null,
            log,
        };
        serve.ready = serve.event("ready", READY_DEADLINE);
        serve
    }

    /// Both servers on ephemeral loopback ports.
    fn both(env: &Env) -> Serve {
        Serve::start(
            env,
            &["--wyoming", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"],
        )
    }

    /// The next event line whose `event` is `kind` (bounded wait).
    fn event(&self, kind: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.events.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {kind} event from serve within {within:?}\n{}",
                        self.log()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "serve ended its output before a {kind} event\n{}",
                        self.log()
                    )
                }
            };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"));
            if v["event"] == kind {
                return v;
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn wyoming(&self) -> SocketAddr {
        let uri = self.ready["wyoming"]
            .as_str()
            .unwrap_or_else(|| panic!("no wyoming address in {}", self.ready));
        uri.strip_prefix("tcp://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad wyoming address {uri}"))
    }

    fn http(&self) -> SocketAddr {
        let addr = self.ready["http"]
            .as_str()
            .unwrap_or_else(|| panic!("no http address in {}", self.ready));
        addr.parse()
            .unwrap_or_else(|_| panic!("bad http address {addr}"))
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        kib * 1024
    }

    /// SIGTERM, then the exit status and the events printed after `ready` (bounded wait).
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        let child = self.child.take().expect("running");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let (status, timed_out) = wait_bounded(child, Duration::from_secs(30));
        assert!(
            !timed_out,
            "serve did not stop within 30 s of SIGTERM\n{}",
            self.log()
        );
        // The reader thread ends at the end of the output, closing the channel.
        let mut events = Vec::new();
        while let Ok(line) = self.events.recv_timeout(Duration::from_secs(10)) {
            events.push(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}")),
            );
        }
        (status, events)
    }

    /// The end of serve's standard error.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = text
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("--- serve's standard error (end) ---\n{tail}")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// Waits for `child` at most `within`; kills it if it takes longer. The exit status and
/// whether it had to be killed.
fn wait_bounded(mut child: Child, within: Duration) -> (std::process::ExitStatus, bool) {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(within).is_err();
    if timed_out {
        // SAFETY: signalling our own child, which has not been reaped (the waiter is blocked).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let status = waiter.join().expect("waiter").expect("wait");
    (status, timed_out)
}

// ---------------------------------------------------------------------------------------
// The Python reference clients

/// `$SERENA_TEST_PYTHON`, else `target/test-python/bin/python` if it exists, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SERENA_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo().join("target/test-python/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Fails, saying what to install, unless Python can import `modules`.
fn require_python(modules: &[&str]) -> PathBuf {
    let python = python();
    let import = format!("import {}", modules.join(", "));
    let out = Command::new(&python)
        .args(["-c", &import])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{} cannot `{import}`: {}\nthese tests drive serve with the reference clients; \
             install them with `{PIP}` (or set SERENA_TEST_PYTHON to a Python that has them)",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(e) => panic!(
            "cannot run {} ({e}): these tests need Python 3 with `{PIP}` \
             (or SERENA_TEST_PYTHON pointing at one)",
            python.display()
        ),
    }
}

/// Runs a fixture script; its standard output's JSON lines.
fn run_client(python: &Path, script: &str, args: &[&str]) -> Vec<Value> {
    let child = Command::new(python)
        .arg(repo().join("tests/fixtures").join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let out = output_bounded(child, CLIENT_DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "{script}: a package is missing: {stderr}\ninstall with `{PIP}`"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{script}: not JSON ({e}): {l}\n{stderr}"))
        })
        .collect();
    for line in &lines {
        assert_ne!(
            line["ok"], false,
            "{script}: a step failed: {line:#}\n{stderr}"
        );
    }
    assert!(
        out.status.success(),
        "{script} exited with {}:\n{stdout}\n{stderr}",
        out.status
    );
    lines
}

/// `child`'s output, killing it after `within`.
fn output_bounded(mut child: Child, within: Duration) -> Output {
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let (status, timed_out) = wait_bounded(child, within);
    assert!(
        !timed_out,
        "a client ran longer than {within:?} and was killed"
    );
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// The line whose `key` is `name`.
fn find<'a>(lines: &'a [Value], key: &str, name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l[key] == name)
        .unwrap_or_else(|| panic!("no {key} {name} in the client's output"))
}

/// How many of `expected`'s distinct words `heard` contains.
fn words_heard(heard: &str, expected: &str) -> (usize, usize) {
    let heard = words(heard);
    let heard: std::collections::HashSet<&str> = heard.split(' ').collect();
    let expected = words(expected);
    let mut distinct: Vec<&str> = expected.split(' ').collect();
    distinct.sort_unstable();
    distinct.dedup();
    let found = distinct.iter().filter(|w| heard.contains(*w)).count();
    (found, distinct.len())
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 over std sockets

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A connection to `addr`, from `from` if given (any 127.x.y.z works on Linux).
fn connect(addr: SocketAddr, from: Option<Ipv4Addr>) -> std::io::Result<TcpStream> {
    let stream = match from {
        None => TcpStream::connect_timeout(&addr, IO_TIMEOUT)?,
        Some(ip) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
                socket.connect(addr).await?.into_std()
            })?
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// One request on a fresh connection (`Connection: close`), read to the end.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    http_on(
        connect(addr, None).expect("connect"),
        addr,
        method,
        path,
        headers,
        body,
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {body_len}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn http_on(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut request = request_head(addr, method, path, headers, body.len());
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = decoded;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

const BOUNDARY: &str = "serena-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart/form-data body with `file` and text fields.
fn multipart(file_name: &str, file: &[u8], fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

// ---------------------------------------------------------------------------------------
// Raw Wyoming over std sockets

/// What a Wyoming connection got before it ended.
#[derive(Debug)]
struct WyomingOutcome {
    /// Each event: its type merged with its data.
    events: Vec<Value>,
    /// The connection ended (EOF or reset) rather than the read timing out.
    closed: bool,
}

impl WyomingOutcome {
    fn error_codes(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e["type"] == "error")
            .filter_map(|e| e["code"].as_str())
            .collect()
    }
}

/// Reads events until the server closes the connection (or `IO_TIMEOUT` passes).
fn read_wyoming(stream: TcpStream) -> WyomingOutcome {
    let mut reader = BufReader::new(stream);
    let mut events = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return WyomingOutcome {
                    events,
                    closed: true,
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return WyomingOutcome {
                    events,
                    closed: false,
                }
            }
            Err(_) => {
                return WyomingOutcome {
                    events,
                    closed: true,
                }
            }
        }
        let mut header: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the server sent a bad header ({e}): {line:?}"));
        let mut read_block = |len: u64| {
            let mut block = vec![0u8; usize::try_from(len).expect("length")];
            reader.read_exact(&mut block).map(|()| block)
        };
        if let Some(len) = header["data_length"].as_u64().filter(|&n| n > 0) {
            let Ok(block) = read_block(len) else {
                return WyomingOutcome {
                    events,
                    closed: true,
                };
            };
            let data: Value = serde_json::from_slice(&block).expect("data block is JSON");
            if let (Some(h), Some(d)) = (header.as_object_mut(), data.as_object()) {
                h.extend(d.clone());
            }
        }
        if let Some(len) = header["payload_length"].as_u64().filter(|&n| n > 0) {
            if read_block(len).is_err() {
                return WyomingOutcome {
                    events,
                    closed: true,
                };
            }
        }
        if let Some(data) = header.get("data").cloned() {
            if let (Some(h), Some(d)) = (header.as_object_mut(), data.as_object()) {
                h.extend(d.clone());
            }
        }
        events.push(header);
    }
}

/// Sends `bytes` on a fresh connection (write errors ignored: the server may close first),
/// optionally closes our side, and reads what comes back.
fn wyoming_send(addr: SocketAddr, bytes: &[u8], close_after: bool) -> WyomingOutcome {
    let mut stream = connect(addr, None).expect("connect to wyoming");
    let _ = stream.write_all(bytes);
    if close_after {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_wyoming(stream)
}

/// `ping` on a fresh connection gets `pong` with the same text.
fn assert_wyoming_pings(addr: SocketAddr) {
    let mut stream = connect(addr, None).expect("connect to wyoming");
    stream
        .write_all(b"{\"type\":\"ping\",\"data\":{\"text\":\"still there?\"}}\n")
        .expect("send ping");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read pong");
    let header: Value = serde_json::from_str(&line).expect("pong header");
    assert_eq!(header["type"], "pong", "{line}");
    let len = header["data_length"].as_u64().unwrap_or(0);
    let mut block = vec![0u8; usize::try_from(len).expect("len")];
    reader.read_exact(&mut block).expect("pong data");
    let data: Value = serde_json::from_slice(&block).expect("pong data JSON");
    assert_eq!(data["text"], "still there?");
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn wyoming_reference_client_transcribes_speaks_recognizes_and_handles() {
    let python = require_python(&["wyoming"]);
    let env = Env::new();
    let serve = Serve::both(&env);
    let port = serve.wyoming().port().to_string();
    let out_wav = env.path().join("synthesized.wav");
    let lines = run_client(
        &python,
        "wyoming_client.py",
        &[
            "--port",
            &port,
            "--wav",
            audio("asr/jfk.wav").to_str().expect("utf-8"),
            "--out-wav",
            out_wav.to_str().expect("utf-8"),
            "--text",
            "the quick brown fox jumps over the lazy dog",
            "--recognize-text",
            "set a timer for five minutes",
            "--handle-text",
            "what time is it",
        ],
    );
    let step = |name: &str| find(&lines, "step", name);
    assert_eq!(step("version")["wyoming"], "1.10.2");

    let info = step("describe");
    for kind in ["asr", "tts", "intent", "handle"] {
        assert!(
            info[kind].as_array().is_some_and(|a| !a.is_empty()),
            "info has no {kind} program: {info}"
        );
    }
    assert_eq!(info["asr_models"], serde_json::json!(["tiny.en"]), "{info}");
    assert_eq!(info["installed"], true);
    assert_eq!(step("ping")["text"], "serena-test");

    let t = step("transcribe");
    assert_eq!(words(t["text"].as_str().unwrap_or_default()), JFK, "{t}");
    assert_eq!(
        t["events"],
        serde_json::json!([
            "transcript-start",
            "transcript-chunk",
            "transcript",
            "transcript-stop"
        ]),
        "{t}"
    );
    assert!(
        t["sent_events"].as_u64().is_some_and(|n| n > 100),
        "sent in chunks: {t}"
    );

    // Synthesized with the advertised voice, then heard by the same server.
    let s = step("synthesize");
    assert_eq!(s["voice"], info["tts_voices"][0]);
    assert_eq!(
        (s["width"].as_u64(), s["channels"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let rate = s["rate"].as_u64().expect("rate");
    let frames = s["frames"].as_u64().expect("frames");
    assert!(frames > rate, "at least a second of speech: {s}");
    assert_eq!(s["timestamps_increasing"], true);
    assert_eq!(s["last_event"], "audio-stop");
    // Heard back: by `serena transcribe` (the full 30 s window: "The quick brown fox jump
    // over the lazy nog.", 6 of the 8 distinct words), and by the same Wyoming server, whose
    // short-command path sizes the encoder window to the audio and hears less of espeak's
    // voice ("The quick round-fark stump, over the lazy narg.", 4 of 8 on tiny.en).
    let spoken = "the quick brown fox jumps over the lazy dog";
    let cli: Value = serde_json::from_str(&crate::common::ok(
        &env,
        &["transcribe", "-f", "json", out_wav.to_str().expect("utf-8")],
    ))
    .expect("transcribe --format json");
    let cli_text: Vec<&str> = cli["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter_map(|s| s["text"].as_str())
        .collect();
    let (found, of) = words_heard(&cli_text.join(" "), spoken);
    assert!(
        found * 8 >= of * 5,
        "serena transcribe heard {found} of {of} words: {cli}"
    );
    let heard = step("transcribe-synthesized");
    let (found, of) = words_heard(heard["text"].as_str().unwrap_or_default(), spoken);
    assert!(
        found * 8 >= of * 3,
        "wyoming heard {found} of {of} words back: {heard}"
    );
    assert_eq!(
        heard["sent_rate"].as_u64(),
        Some(rate),
        "resampled by the server"
    );

    let streamed = step("synthesize-streaming");
    assert_eq!(streamed["last_event"], "synthesize-stopped");
    assert_eq!(
        streamed["frames"], s["frames"],
        "the same text, the same audio"
    );

    let r = step("recognize");
    assert_eq!(r["recognized"], true, "{r}");
    assert_eq!(r["name"], "HassStartTimer");
    assert_eq!(r["entities"]["minutes"], 5, "{r}");

    let h = step("handle");
    assert_eq!(h["handled"], true, "{h}");
    assert!(
        h["text"].as_str().is_some_and(|t| !t.trim().is_empty()),
        "{h}"
    );
}

#[test]
fn openai_reference_client_transcribes_speaks_chats_and_lists_models() {
    let python = require_python(&["openai", "prometheus_client"]);
    let env = Env::new();
    let serve = Serve::start(&env, &["--wyoming", "off", "--http", "127.0.0.1:0"]);
    let base = format!("http://{}/v1", serve.http());
    let lines = run_client(
        &python,
        "openai_client.py",
        &[
            "--base-url",
            &base,
            "--api-key",
            "any-string",
            "--wav",
            audio("asr/jfk.wav").to_str().expect("utf-8"),
        ],
    );
    let result = |name: &str| &find(&lines, "check", name)["result"];

    assert_eq!(result("transcriptions.json")["type"], "Transcription");
    assert_eq!(
        words(
            result("transcriptions.json")["text"]
                .as_str()
                .unwrap_or_default()
        ),
        JFK
    );
    let text = result("transcriptions.text")["body"]
        .as_str()
        .expect("text");
    assert_eq!(words(text), JFK);
    assert!(
        text.ends_with('\n') && !text.trim_end().contains('\n'),
        "{text:?}"
    );

    let srt = result("transcriptions.srt")["body"].as_str().expect("srt");
    let cues =
        srtparse::from_str(srt).unwrap_or_else(|e| panic!("srt does not parse ({e:?}): {srt}"));
    assert!(!cues.is_empty(), "{srt}");
    let mut last_end = Duration::ZERO;
    for (i, cue) in cues.iter().enumerate() {
        assert_eq!(cue.pos, i + 1, "cues numbered from 1: {srt}");
        let (start, end) = (Duration::from(cue.start_time), Duration::from(cue.end_time));
        assert!(
            last_end <= start && start <= end,
            "cue times in order: {srt}"
        );
        assert!(
            end <= Duration::from_millis(11_500),
            "within the 11 s clip: {srt}"
        );
        last_end = end;
    }
    let srt_text: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(words(&srt_text.join(" ")), JFK, "{srt}");

    let vtt = result("transcriptions.vtt")["body"].as_str().expect("vtt");
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt:?}");
    let parsed: aspasia::WebVttSubtitle = vtt.parse().expect("vtt parses");
    let cues = aspasia::Subtitle::events(&parsed);
    assert!(!cues.is_empty(), "{vtt}");
    let millis =
        |m: &aspasia::Moment| ((m.hours() * 60 + m.minutes()) * 60 + m.seconds()) * 1000 + m.ms();
    let mut last_end = 0;
    for cue in cues {
        assert!(
            last_end <= millis(&cue.start) && millis(&cue.start) <= millis(&cue.end),
            "{vtt}"
        );
        last_end = millis(&cue.end);
    }
    assert!(last_end > 0 && last_end <= 11_500, "{vtt}");
    let vtt_text: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(words(&vtt_text.join(" ")), JFK, "{vtt}");

    let verbose = result("transcriptions.verbose_json");
    assert_eq!(verbose["type"], "TranscriptionVerbose");
    assert_eq!(words(verbose["text"].as_str().unwrap_or_default()), JFK);
    assert_eq!(verbose["language"], "en");
    assert_eq!(verbose["task"], "transcribe");
    let duration = verbose["duration"].as_f64().expect("duration");
    assert!((duration - 11.0).abs() < 0.1, "{verbose}");
    let segments = verbose["segments"].as_array().expect("segments");
    assert!(!segments.is_empty());
    assert!(
        segments
            .iter()
            .all(|s| s["start"].as_f64() <= s["end"].as_f64()),
        "{verbose}"
    );

    let speech = result("speech.wav");
    assert_eq!(speech["content_type"], "audio/wav", "{speech}");
    assert_eq!(
        (speech["channels"].as_u64(), speech["width"].as_u64()),
        (Some(1), Some(2))
    );
    let rate = speech["rate"].as_u64().expect("rate");
    assert!((8_000..=48_000).contains(&rate), "{speech}");
    assert!(
        speech["frames"].as_u64().is_some_and(|f| f > rate),
        "over a second: {speech}"
    );

    let chat = result("chat.completions.stream");
    assert!(
        chat["text"].as_str().is_some_and(|t| !t.trim().is_empty()),
        "{chat}"
    );
    assert_eq!(chat["finish"], serde_json::json!(["stop"]), "{chat}");
    assert_eq!(
        chat["objects"],
        serde_json::json!(["chat.completion.chunk"])
    );

    let models = result("models.list").as_array().expect("models");
    assert!(!models.is_empty());
    assert!(
        models.iter().any(|m| m["id"] == "tiny.en"),
        "the speech model is listed: {models:?}"
    );
    assert!(models.iter().all(|m| m["object"] == "model"));

    let health = result("health");
    assert_eq!(health["status"], 200);
    assert_eq!(health["body"]["status"], "ok");

    let metrics = result("metrics");
    assert!(
        metrics["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{}",
        metrics["content_type"]
    );
    let families = &metrics["families"];
    assert_eq!(families["serena_http_requests"]["type"], "counter");
    assert_eq!(
        families["serena_http_request_duration_seconds"]["type"],
        "histogram"
    );
    let transcriptions_ok = families["serena_http_requests"]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .find(|s| {
            s["labels"]["route"] == "/v1/audio/transcriptions" && s["labels"]["status"] == "200"
        })
        .and_then(|s| s["value"].as_f64());
    assert_eq!(
        transcriptions_ok,
        Some(5.0),
        "five transcriptions answered: {families}"
    );
    let model_loaded = &families["serena_model_loaded"]["samples"][0];
    assert_eq!(model_loaded["labels"]["model"], "tiny.en", "{families}");
    assert_eq!(model_loaded["value"], 1.0);
}

#[test]
fn serve_refuses_to_listen_beyond_loopback_unprotected() {
    let env = Env::new();
    let refused = |args: &[&str], expected: &str| {
        let out = env
            .serena()
            .arg("serve")
            .args(args)
            .timeout(Duration::from_secs(30))
            .output()
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "serve {args:?}: {stderr}");
        assert!(stderr.contains(expected), "serve {args:?}: {stderr}");
        assert!(
            !env.data().join("serena.sock").exists(),
            "refused before claiming the store"
        );
    };
    refused(
        &["--http", "0.0.0.0:0", "--wyoming", "off"],
        "refusing to listen on 0.0.0.0:0 without an API token",
    );
    refused(
        &[
            "--http",
            "0.0.0.0:0",
            "--token",
            "short",
            "--wyoming",
            "off",
        ],
        "shorter than 16 characters",
    );
    refused(
        &["--wyoming", "tcp://0.0.0.0:0", "--http", "off"],
        "add --insecure-allow-remote",
    );
    refused(&["--http", "not-an-address"], "expected HOST:PORT or off");
}

#[test]
fn a_token_guards_every_route_but_health_and_serve_stops_cleanly() {
    let env = Env::new();
    let token = "s3cret-token-0123456789";
    let serve = Serve::start(
        &env,
        &[
            "--wyoming",
            "off",
            "--http",
            "127.0.0.1:0",
            "--token",
            token,
        ],
    );
    let addr = serve.http();
    let right = format!("Bearer {token}");
    for (auth, expected) in [
        (None, 401),
        (Some("Bearer wrong-token-0123456789"), 401),
        (Some("Bearer s3cret-token-012345678"), 401),
        (Some(token), 401), // no "Bearer "
        (Some(right.as_str()), 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = http(addr, "GET", "/v1/models", &headers, b"");
        assert_eq!(r.status, expected, "{auth:?}: {}", r.text());
        if expected == 401 {
            assert_eq!(r.json()["error"]["code"], "invalid_api_key", "{}", r.text());
        } else {
            assert!(r.json()["data"].as_array().is_some_and(|d| !d.is_empty()));
        }
    }
    // The expensive routes refuse before reading the body.
    let body = multipart("a.wav", b"not audio", &[]);
    let r = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("Content-Type", &multipart_type())],
        &body,
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").status, 401);
    assert_eq!(
        http(addr, "GET", "/metrics", &[("Authorization", &right)], b"").status,
        200
    );
    let health = http(addr, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "health needs no token");
    assert_eq!(health.json()["status"], "ok");

    // SIGTERM: stopping, stopped, exit 0.
    let (status, events) = serve.terminate();
    assert!(status.success(), "serve exited with {status}");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, ["stopping", "stopped"], "{events:?}");
    assert_eq!(events[0]["signal"], "SIGTERM");
}

#[test]
fn bad_input_gets_an_error_or_a_close_and_both_servers_carry_on() {
    let env = Env::new();
    let mut serve = Serve::both(&env);
    let wy = serve.wyoming();

    // Wyoming: each on its own connection, which the server must close (after an `error`
    // event where it can still send one); a fresh connection is served afterwards.
    // `expected`: the `error` code sent before closing; `None`: closed without one.
    let refused = |what: &str, bytes: &[u8], close_after: bool, expected: Option<&str>| {
        let outcome = wyoming_send(wy, bytes, close_after);
        assert!(
            outcome.closed,
            "{what}: the connection was left open: {outcome:?}"
        );
        let codes = outcome.error_codes();
        assert_eq!(
            codes.len(),
            outcome.events.len(),
            "{what}: only errors: {outcome:?}"
        );
        assert_eq!(codes, Vec::from_iter(expected), "{what}: {outcome:?}");
        assert_wyoming_pings(wy);
    };
    let line = |header: &str| format!("{header}\n").into_bytes();
    let pcm = r#""data":{"rate":16000,"width":2,"channels":1}"#;
    refused(
        "garbage bytes",
        b"\x00\xff\xfe\x80 garbage \x01\x02\n",
        false,
        Some("malformed"),
    );
    refused(
        "a JSON array header",
        b"[1,2,3]\n",
        false,
        Some("malformed"),
    );
    let mut oversized = vec![b'x'; 70 * 1024];
    oversized.push(b'\n');
    refused(
        "a header line over 64 KiB",
        &oversized,
        false,
        Some("too-large"),
    );
    refused(
        "a negative payload_length",
        &line(&format!(
            r#"{{"type":"audio-chunk",{pcm},"payload_length":-5}}"#
        )),
        false,
        Some("malformed"),
    );
    refused(
        "a huge data_length",
        &line(r#"{"type":"ping","data_length":1099511627776}"#),
        false,
        Some("too-large"),
    );
    refused(
        "a huge payload_length",
        &line(r#"{"type":"audio-chunk","payload_length":4294967296}"#),
        false,
        Some("too-large"),
    );
    refused(
        "a zero sample rate",
        &line(r#"{"type":"audio-start","data":{"rate":0,"width":2,"channels":1}}"#),
        false,
        Some("unsupported-audio"),
    );
    let mut truncated = line(&format!(
        r#"{{"type":"audio-chunk",{pcm},"payload_length":32000}}"#
    ));
    truncated.extend_from_slice(&[0u8; 1000]);
    refused(
        "a truncated audio-chunk, then close",
        &truncated,
        true,
        None,
    );

    // More connections than the server serves at once (16): the next one is refused with
    // an error; once the others have gone, new ones are served again.
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..16 {
        let stream = connect(wy, None).expect("connect");
        let mut probe = stream.try_clone().expect("clone");
        probe.write_all(b"{\"type\":\"ping\"}\n").expect("ping");
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).expect("pong");
        assert!(line.contains("\"pong\""), "{line}");
        idle.push(stream);
    }
    let refused = wyoming_send(wy, b"{\"type\":\"ping\"}\n", false);
    assert!(refused.closed);
    assert_eq!(
        refused.error_codes(),
        ["too-many-connections"],
        "{refused:?}"
    );
    for stream in idle {
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        let _ = (&stream).read_to_end(&mut rest);
    }
    // The server has closed them all; its slots come free as their tasks end (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = {
            let mut s = connect(wy, None).expect("connect");
            s.write_all(b"{\"type\":\"ping\"}\n").expect("ping");
            s.shutdown(Shutdown::Write).expect("shutdown");
            read_wyoming(s)
        };
        if outcome.events.first().is_some_and(|e| e["type"] == "pong") {
            break;
        }
        assert_eq!(
            outcome.error_codes(),
            ["too-many-connections"],
            "{outcome:?}"
        );
        assert!(
            Instant::now() < deadline,
            "connection slots never came free"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // HTTP.
    let addr = serve.http();
    let refused = |what: &str, path: &str, content_type: &str, body: &[u8], expected: u16| {
        let r = http(addr, "POST", path, &[("Content-Type", content_type)], body);
        assert_eq!(r.status, expected, "{what}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().map(str::to_owned);
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "{what}: an OpenAI-shaped error: {}",
            r.text()
        );
    };
    let transcriptions = "/v1/audio/transcriptions";
    let form_type = multipart_type();
    let form = [("Content-Type", form_type.as_str())];
    refused(
        "garbage multipart",
        transcriptions,
        &form_type,
        b"\x00\x01 this is not a form \xff",
        400,
    );
    refused(
        "multipart without a boundary",
        transcriptions,
        "multipart/form-data",
        b"x",
        400,
    );
    let no_file = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{BOUNDARY}--\r\n"
    );
    refused(
        "a form without a file",
        transcriptions,
        &form_type,
        no_file.as_bytes(),
        400,
    );
    refused(
        "a file that is not audio",
        transcriptions,
        &form_type,
        &multipart("notes.wav", b"RIFF\x10\x00\x00\x00WAVEgarbage", &[]),
        400,
    );
    refused(
        "an unknown response_format",
        transcriptions,
        &form_type,
        &multipart("a.wav", b"RIFF", &[("response_format", "mp3")]),
        400,
    );
    refused(
        "chat with invalid JSON",
        "/v1/chat/completions",
        "application/json",
        b"{\"messages\": [",
        400,
    );
    refused(
        "speech as a form",
        "/v1/audio/speech",
        "application/x-www-form-urlencoded",
        b"input=hi",
        415,
    );
    // A body one byte over the 25 MiB limit: 413 (the server reads and drops it, so the
    // answer is not lost to a reset).
    let over = MAX_BODY + 1;
    let mut stream = connect(addr, None).expect("connect");
    let head = request_head(addr, "POST", "/v1/audio/transcriptions", &form, over);
    stream.write_all(&head).expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let upload = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut left = over;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
    let r = read_response(&mut stream).expect("a response to the oversized body");
    upload.join().expect("upload");
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    // Not HTTP at all.
    let mut stream = connect(addr, None).expect("connect");
    stream
        .write_all(b"\x16\x03\x01 NOT HTTP \r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if let Some(r) = parse_response(&raw) {
        assert_eq!(r.status, 400, "{}", r.text());
    }

    // Both still serve.
    assert!(serve.alive(), "serve died\n{}", serve.log());
    assert_eq!(
        http(addr, "GET", "/health", &[], b"").json()["status"],
        "ok"
    );
    let clip = std::fs::read(audio("commands/rhasspy3_what_time_is_it.wav")).expect("clip");
    let r = http(
        addr,
        "POST",
        "/v1/audio/transcriptions",
        &form,
        &multipart("clip.wav", &clip, &[]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        words(r.json()["text"].as_str().unwrap_or_default()),
        "what time is it"
    );
    assert_wyoming_pings(wy);
}

#[test]
fn fifty_concurrent_transcriptions_are_all_answered_and_memory_stays_bounded() {
    /// Clients at once; the first `SHARED` come from one address, the rest from one each.
    const CLIENTS: usize = 50;
    const SHARED: usize = 6;
    /// `per_client_max_concurrent` of the default server options.
    const PER_CLIENT: usize = 4;
    /// Longer than the server's queue wait (30 s) plus one transcription.
    const ANSWER_WITHIN: Duration = Duration::from_secs(120);
    /// Peak resident memory allowed. Measured on x86-64 Linux (2 cores): 105 MB after the
    /// first transcription, 283-285 MB at this test's peak. What grows is freed whisper
    /// state kept by the allocator (each call makes a new state, on whichever blocking
    /// thread runs it): six bursts of 20 requests in a row level off at 350-370 MB (peak
    /// 396 MB) instead of climbing. 600 MB leaves room for that and for other machines,
    /// and still catches per-request memory that is kept (50 × 10 MB would cross it).
    const MAX_PEAK_RSS: u64 = 600 * 1024 * 1024;

    let env = Env::new();
    let mut serve = Serve::start(&env, &["--wyoming", "off", "--http", "127.0.0.1:0"]);
    let addr = serve.http();
    let clip = std::fs::read(audio("commands/rhasspy3_what_time_is_it.wav")).expect("clip");
    let body = Arc::new(multipart(
        "what_time_is_it.wav",
        &clip,
        &[("model", "whisper-1")],
    ));
    let content_type = multipart_type();
    let transcribe = {
        let body = Arc::clone(&body);
        let content_type = content_type.clone();
        move |from: Option<Ipv4Addr>| -> std::io::Result<Response> {
            let stream = connect(addr, from)?;
            stream.set_read_timeout(Some(ANSWER_WITHIN))?;
            http_on(
                stream,
                addr,
                "POST",
                "/v1/audio/transcriptions",
                &[("Content-Type", &content_type)],
                &body,
            )
        }
    };

    // The model loads on the first request.
    let first = transcribe(None).expect("first request");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        words(first.json()["text"].as_str().unwrap_or_default()),
        "what time is it"
    );
    let rss_loaded = serve.memory("VmRSS");

    // The clients from their own addresses first; once their requests are queued, the
    // clients sharing one address, so that all of those are in flight together.
    let spawn = |from: Vec<Ipv4Addr>| {
        let barrier = Arc::new(Barrier::new(from.len()));
        from.into_iter()
            .map(|from| {
                let barrier = Arc::clone(&barrier);
                let transcribe = transcribe.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    (from, transcribe(Some(from)), t.elapsed())
                })
            })
            .collect::<Vec<_>>()
    };
    let started = Instant::now();
    let mut clients = spawn(
        (SHARED..CLIENTS)
            .map(|i| Ipv4Addr::new(127, 0, 1, u8::try_from(i).expect("small")))
            .collect(),
    );
    let queued = Instant::now() + Duration::from_secs(30);
    while http(addr, "GET", "/health", &[], b"").json()["queue_depth"].as_u64() < Some(10) {
        assert!(Instant::now() < queued, "the requests never queued up");
        std::thread::sleep(Duration::from_millis(20));
    }
    clients.extend(spawn(vec![Ipv4Addr::LOCALHOST; SHARED]));
    let results: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let wall = started.elapsed();

    let mut counts = std::collections::BTreeMap::new();
    let mut shared_429 = 0;
    for (from, result, elapsed) in &results {
        let r = result
            .as_ref()
            .unwrap_or_else(|e| panic!("client {from}: no answer ({e}) after {elapsed:?}"));
        *counts.entry(r.status).or_insert(0) += 1;
        let shared = *from == Ipv4Addr::LOCALHOST;
        match r.status {
            200 => assert_eq!(
                words(r.json()["text"].as_str().unwrap_or_default()),
                "what time is it",
                "{from}"
            ),
            503 => {
                assert!(r.header("retry-after").is_some(), "503 with Retry-After");
                assert_eq!(r.json()["error"]["code"], "server_busy", "{}", r.text());
            }
            429 if shared => {
                shared_429 += 1;
                assert!(r.header("retry-after").is_some(), "429 with Retry-After");
            }
            other => panic!("client {from}: unexpected status {other}: {}", r.text()),
        }
    }
    let mut latencies: Vec<Duration> = results.iter().map(|(_, _, e)| *e).collect();
    latencies.sort();
    eprintln!(
        "{CLIENTS} concurrent transcriptions: statuses {counts:?} in {wall:.1?}; latency p50 {:.2?}, max {:.2?}",
        latencies[CLIENTS / 2],
        latencies[CLIENTS - 1]
    );
    assert!(counts.get(&200).is_some_and(|&n| n >= 1), "{counts:?}");
    assert_eq!(
        shared_429,
        SHARED - PER_CLIENT,
        "one address gets {PER_CLIENT} requests in flight, the rest are refused at once"
    );

    // The server still answers, has nothing queued, and agrees about the 503s.
    assert!(serve.alive(), "serve died\n{}", serve.log());
    let after = transcribe(None).expect("a request after the burst");
    assert_eq!(after.status, 200, "{}", after.text());
    let health = http(addr, "GET", "/health", &[], b"").json();
    assert_eq!(health["queue_depth"], 0, "{health}");
    let metrics = http(addr, "GET", "/metrics", &[], b"").text();
    let rejections = metrics
        .lines()
        .find_map(|l| l.strip_prefix("serena_http_queue_rejections_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(
        rejections,
        Some(counts.get(&503).copied().unwrap_or(0)),
        "{metrics}"
    );

    let peak = serve.memory("VmHWM");
    eprintln!(
        "resident memory: {} MB with the model loaded, {} MB at the peak, {} MB now",
        rss_loaded >> 20,
        peak >> 20,
        serve.memory("VmRSS") >> 20
    );
    assert!(
        peak < MAX_PEAK_RSS,
        "peak resident memory {} MB is over {} MB",
        peak >> 20,
        MAX_PEAK_RSS >> 20
    );
}

#[test]
fn an_idle_speech_model_is_unloaded_and_the_next_request_reloads_it() {
    let env = Env::new();
    let serve = Serve::start(
        &env,
        &[
            "--wyoming",
            "off",
            "--http",
            "127.0.0.1:0",
            "--set",
            "power.idle_unload_seconds=1",
        ],
    );
    let addr = serve.http();
    let clip = std::fs::read(audio("commands/rhasspy3_what_time_is_it.wav")).expect("clip");
    let body = multipart("what_time_is_it.wav", &clip, &[("model", "whisper-1")]);
    let content_type = multipart_type();
    let transcribe = || {
        let r = http(
            addr,
            "POST",
            "/v1/audio/transcriptions",
            &[("Content-Type", &content_type)],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            words(r.json()["text"].as_str().unwrap_or_default()),
            "what time is it"
        );
    };
    let metric = |name: &str| -> f64 {
        let text = http(addr, "GET", "/metrics", &[], b"").text();
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    transcribe();
    let unloaded = serve.event("model_unloaded", Duration::from_secs(20));
    assert_eq!(unloaded["slot"], "stt", "{unloaded}");
    assert_eq!(unloaded["reason"], "idle", "{unloaded}");
    assert!(
        unloaded["value"].as_f64().is_some_and(|s| s >= 1.0),
        "{unloaded}"
    );
    assert_eq!(metric("serena_model_unloads_total{kind=\"stt\"} "), 1.0);
    // The next request loads it again, and the reload is measured.
    transcribe();
    assert_eq!(metric("serena_model_loads_total{kind=\"stt\"} "), 2.0);
    assert!(metric("serena_model_last_load_seconds{kind=\"stt\"} ") > 0.0);
}
