//! One owner, many commands: `serena serve` owns the store and the other commands go
//! through its control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{ok, Env};

const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running `serena serve`, killed when dropped. Its standard output lines arrive on
/// `events`.
struct Serve {
    child: Option<Child>,
    events: mpsc::Receiver<String>,
    socket: PathBuf,
}

impl Serve {
    fn start(env: &Env, extra: &[&str]) -> Serve {
        let (child, events) = env.spawn_serve(extra, Stdio::inherit());
        let mut serve = Serve {
            child: Some(child),
            events,
            socket: env.data().join("serena.sock"),
        };
        serve.wait_ready();
        serve
    }

    /// Polls the socket with pings until one is answered (bounded).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(mut conn) = Conn::open(&self.socket) {
                if conn.request(r#"{"v":1,"op":"ping"}"#)["ok"] == true {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("serena serve exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "serena serve not ready after {READY_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The next event whose `event` member is `kind` (bounded wait).
    fn event(&self, kind: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {kind} event within {within:?}"));
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"));
            if v["event"] == kind {
                return v;
            }
        }
    }

    /// SIGTERM, then wait for the exit (bounded).
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serena serve did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw connection to the control socket.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn open(path: &Path) -> std::io::Result<Conn> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    fn read_response(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a response");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {line:?}"))
    }

    fn request(&mut self, line: &str) -> serde_json::Value {
        self.send_raw(format!("{line}\n").as_bytes());
        self.read_response()
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn commands_go_through_a_running_serve_and_a_second_serve_is_refused() {
    let env = Env::new();
    ok(&env, &["notes", "add", "written before serve"]);
    let serve = Serve::start(&env, &["--no-speak"]);
    assert_eq!(mode(&serve.socket), 0o600, "the socket is the user's only");
    assert_eq!(
        mode(&env.data()),
        0o700,
        "the data directory is the user's only"
    );

    ok(&env, &["notes", "add", "written through the socket"]);
    let said = ok(&env, &["ask", "remember that the keys are in the drawer"]);
    assert!(said.contains("remember"), "{said}");
    let notes: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&env, &["notes", "--json"])).expect("json");
    let texts: Vec<&str> = notes.iter().filter_map(|n| n["text"].as_str()).collect();
    assert_eq!(
        texts,
        [
            "written before serve",
            "written through the socket",
            "the keys are in the drawer"
        ]
    );
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&env, &["history", "--json"])).expect("json");
    assert_eq!(
        history[0]["transcript"],
        "remember that the keys are in the drawer"
    );
    ok(&env, &["lists", "add", "shopping", "apples"]);
    assert!(ok(&env, &["lists", "shopping"]).contains("apples"));
    let archive = env.path().join("live.serena");
    ok(&env, &["backup", archive.to_str().expect("utf-8")]);
    assert!(archive.is_file());
    let export: serde_json::Value =
        serde_json::from_str(&ok(&env, &["export", "--json"])).expect("json");
    assert_eq!(export["notes"].as_array().map(Vec::len), Some(3));

    // The store's owner refuses a second owner and a restore, with its pid.
    let out = env.serena().args(["serve"]).output().expect("run");
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!("another Serena (pid {}) is running and owns", serve.pid());
    assert!(err.contains(&expected), "{err}");
    let out = env
        .serena()
        .args(["restore", archive.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));

    // Garbage gets an error and the connection stays usable; so does an unknown op or version.
    let mut conn = Conn::open(&serve.socket).expect("connect");
    let r = conn.request("this is not json");
    assert_eq!(
        (r["ok"].as_bool(), r["error"]["code"].as_str()),
        (Some(false), Some("bad_request"))
    );
    let r = conn.request(r#"{"v":1,"id":5,"op":"launch_rockets"}"#);
    assert_eq!(
        (r["id"].as_u64(), r["error"]["code"].as_str()),
        (Some(5), Some("bad_request"))
    );
    let r = conn.request(r#"{"v":99,"op":"ping"}"#);
    assert_eq!(r["error"]["code"], "unsupported_version");
    let r = conn.request(r#"{"v":1,"op":"notes_remove","id":424242}"#);
    assert_eq!(r["error"]["code"], "not_found");
    let r = conn.request(r#"{"v":1,"id":6,"op":"ping"}"#);
    assert_eq!((r["ok"].as_bool(), r["id"].as_u64()), (Some(true), Some(6)));
    assert_eq!(r["result"]["pid"].as_u64(), Some(u64::from(serve.pid())));

    // An oversized line: an error, then the connection is closed; the server carries on.
    let mut big = Conn::open(&serve.socket).expect("connect");
    let mut line = br#"{"v":1,"op":"notes_add","text":""#.to_vec();
    line.extend(std::iter::repeat_n(b'x', 200 * 1024));
    line.extend_from_slice(b"\"}\n");
    // The server may close before it has read everything; a failed write is fine.
    let _ = big.writer.write_all(&line);
    let r = big.read_response();
    assert_eq!(r["error"]["code"], "too_long");
    let mut rest = Vec::new();
    let _ = big.reader.read_to_end(&mut rest);
    let r = conn.request(r#"{"v":1,"op":"status"}"#);
    assert_eq!(r["result"]["counts"]["notes"].as_u64(), Some(3), "{r}");
    drop(conn);

    // SIGTERM: clean exit, socket gone, store reopens with everything.
    let socket = serve.socket.clone();
    let status = serve.terminate();
    assert!(status.success(), "serve exited with {status}");
    assert!(!socket.exists(), "the socket file is removed at shutdown");
    let notes: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&env, &["notes", "--json"])).expect("json");
    assert_eq!(notes.len(), 3);
}

#[test]
fn a_timer_set_through_ask_fires_in_serve() {
    let env = Env::new();
    let serve = Serve::start(&env, &[]);
    let answer: serde_json::Value =
        serde_json::from_str(&ok(&env, &["ask", "--json", "set a timer for 2 seconds"]))
            .expect("json");
    let id = answer["slots"]["timer_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no timer id in {answer}"));
    let event = serve.event("timer_done", Duration::from_secs(15));
    assert_eq!(event["id"].as_u64(), Some(id), "{event}");
    assert_eq!(event["message"], "Timer done");
    assert!(
        event["late_ms"].as_u64().is_some_and(|ms| ms < 2_000),
        "{event}"
    );
    let timers: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&env, &["timers", "--json"])).expect("json");
    assert_eq!(timers[0]["state"], "fired");
    drop(serve);
}

#[test]
fn timers_that_came_due_while_serve_was_down_fire_once_at_start() {
    let env = Env::new();
    // Set with no Serena running; due before serve starts.
    ok(&env, &["ask", "set a timer for 1 second"]);
    let out = ok(&env, &["timers", "--json"]);
    let timers: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let deadline = timers[0]["started_at_ms"].as_u64().expect("start") + 1_000;
    // Wait until the deadline has passed by the wall clock (bounded by the timer itself).
    while serena::store::now_ms() <= deadline + 100 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let serve = Serve::start(&env, &["--no-speak"]);
    let event = serve.event("timer_done", Duration::from_secs(10));
    assert!(
        event["late_ms"].as_u64().is_some_and(|ms| ms >= 100),
        "{event}"
    );
    let status = serve.terminate();
    assert!(status.success());
    // Fired once: a new serve has nothing to fire.
    let serve = Serve::start(&env, &["--no-speak"]);
    let ready = serve.event("ready", Duration::from_secs(10));
    assert_eq!(ready["active_timers"].as_u64(), Some(0), "{ready}");
}

#[test]
fn a_stale_socket_is_ignored_and_replaced() {
    let env = Env::new();
    std::fs::create_dir_all(env.data()).expect("data dir");
    let socket = env.data().join("serena.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists(), "a stale socket file with no listener");
    ok(&env, &["notes", "add", "no serve is running"]);
    let serve = Serve::start(&env, &["--no-speak"]);
    assert!(ok(&env, &["notes"]).contains("no serve is running"));
    assert!(serve.terminate().success());
    assert!(!socket.exists());
}

#[test]
fn serve_advertises_wyoming_over_mdns_when_asked() {
    use mdns_sd::{ServiceDaemon, ServiceEvent};
    let env = Env::new();
    let serve = Serve::start(
        &env,
        &[
            "--no-speak",
            "--wyoming",
            "tcp://127.0.0.1:0",
            "--http",
            "off",
            "--mdns",
        ],
    );
    let ready = serve.event("ready", Duration::from_secs(10));
    let port: u16 = ready["wyoming"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Wyoming address in {ready}"));
    let browser = ServiceDaemon::new().expect("mDNS daemon");
    let found = browser.browse("_wyoming._tcp.local.").expect("browse");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ports = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(ServiceEvent::ServiceResolved(info)) =
            found.recv_timeout(Duration::from_millis(200))
        {
            ports.push(info.get_port());
            if info.get_port() == port {
                assert!(
                    info.get_fullname().starts_with("serena-"),
                    "{}",
                    info.get_fullname()
                );
                let _ = browser.shutdown();
                assert!(serve.terminate().success());
                return;
            }
        }
    }
    panic!("Serena's Wyoming service (port {port}) was not found over mDNS; saw {ports:?}");
}
