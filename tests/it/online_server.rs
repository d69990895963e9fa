//! A scripted HTTP server on 127.0.0.1 for the online model's tests, and a clock the
//! tests can move.
//!
//! Each accepted connection is counted, its request is read and sent to the test on a
//! channel, and the next scripted [`Behaviour`] decides the reply. Every reply closes the
//! connection, so connections = HTTP attempts.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serena::llm::online::Clock;

/// What the server does with the next connection.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with a non-streamed completion.
    Answer(String),
    /// 200 with an event stream: a role chunk, one chunk per piece, `[DONE]`.
    Stream(Vec<String>),
    /// 200 `text/event-stream` with this raw body.
    StreamRaw(String),
    /// Like `Stream` without `[DONE]`: the pieces, then the socket stays open until the
    /// server drops.
    StreamHold(Vec<String>),
    /// This status with an OpenAI-style error body.
    Fail(u16),
    /// Read the request and never answer (the socket stays open until the server drops).
    Hang,
    /// Wait, then answer.
    Slow(Duration, String),
    /// 200 `application/json` with this body.
    Garbage(String),
    /// 200 with a model list.
    Models,
    /// This status, extra header lines, and body.
    Raw(u16, Vec<String>, String),
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Captured {
    /// `POST`, `GET`.
    pub method: String,
    /// The path.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
}

/// The server. Dropping it releases hanging connections.
pub struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    requests: Receiver<Captured>,
    // Hanging connections wait for their sender to drop.
    _hang_release: Arc<Mutex<Vec<Sender<()>>>>,
}

impl TestServer {
    /// Start a server on 127.0.0.1:0.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let script: Arc<Mutex<VecDeque<Behaviour>>> = Arc::default();
        let hang_release: Arc<Mutex<Vec<Sender<()>>>> = Arc::default();
        let (req_tx, requests) = channel();
        {
            let connections = connections.clone();
            let script = script.clone();
            let hang_release = Arc::downgrade(&hang_release);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let behaviour = script
                        .lock()
                        .expect("script")
                        .pop_front()
                        .unwrap_or(Behaviour::Fail(500));
                    let req_tx = req_tx.clone();
                    let release = match hang_release.upgrade() {
                        Some(list) => {
                            let (tx, rx) = channel();
                            list.lock().expect("release").push(tx);
                            rx
                        }
                        None => return,
                    };
                    std::thread::spawn(move || serve(stream, behaviour, req_tx, release));
                }
            });
        }
        TestServer {
            addr,
            connections,
            script,
            requests,
            _hang_release: hang_release,
        }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Queue behaviours for the next connections.
    pub fn push(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.script.lock().expect("script").extend(behaviours);
    }

    /// Behaviours not yet used.
    pub fn left(&self) -> usize {
        self.script.lock().expect("script").len()
    }

    /// The next request received (waits up to 5 s).
    pub fn request(&self) -> Captured {
        self.requests
            .recv_timeout(Duration::from_secs(5))
            .expect("a request within 5 s")
    }

    /// Every request received so far.
    pub fn drain_requests(&self) -> Vec<Captured> {
        self.requests.try_iter().collect()
    }
}

/// A port with nothing listening.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1")
}

fn read_request(stream: &TcpStream) -> Option<Captured> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Captured {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[String], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn completion(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    })
    .to_string()
}

fn chunk(delta: serde_json::Value) -> String {
    let c = serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": null}]
    });
    format!("data: {c}\n\n")
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, tx: Sender<Captured>, release: Receiver<()>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some(request) = read_request(&stream) else {
        return;
    };
    let _ = tx.send(request);
    let json = ["Content-Type: application/json".to_string()];
    match behaviour {
        Behaviour::Answer(text) => respond(&mut stream, 200, &json, &completion(&text)),
        Behaviour::Slow(delay, text) => {
            // Simulated slowness, released early if the server goes away.
            if let Err(RecvTimeoutError::Timeout) = release.recv_timeout(delay) {
                respond(&mut stream, 200, &json, &completion(&text));
            }
        }
        Behaviour::Garbage(body) => respond(&mut stream, 200, &json, &body),
        Behaviour::Models => respond(
            &mut stream,
            200,
            &json,
            r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#,
        ),
        Behaviour::Fail(status) => respond(
            &mut stream,
            status,
            &json,
            &format!(r#"{{"error":{{"message":"scripted failure {status}","type":"test"}}}}"#),
        ),
        Behaviour::Raw(status, headers, body) => respond(&mut stream, status, &headers, &body),
        Behaviour::Hang => {
            // Hold the socket open until the server is dropped.
            let _ = release.recv();
        }
        Behaviour::StreamHold(pieces) => {
            let head =
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\n";
            let _ = stream.write_all(head.as_bytes());
            for p in pieces {
                let _ = stream.write_all(chunk(serde_json::json!({ "content": p })).as_bytes());
            }
            let _ = stream.flush();
            let _ = release.recv();
        }
        Behaviour::Stream(pieces) => {
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(chunk(serde_json::json!({"role": "assistant"})).as_bytes());
            for p in pieces {
                let _ = stream.write_all(chunk(serde_json::json!({ "content": p })).as_bytes());
                let _ = stream.flush();
            }
            let _ = stream.write_all(b"data: [DONE]\n\n");
            let _ = stream.flush();
        }
        Behaviour::StreamRaw(body) => {
            let head =
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
            let _ = stream.flush();
        }
    }
}

/// Real time plus an offset the test moves forward.
#[derive(Debug, Default)]
pub struct ShiftClock {
    offset: Mutex<Duration>,
}

impl ShiftClock {
    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().expect("clock") += by;
    }
}

impl Clock for ShiftClock {
    fn now(&self) -> Instant {
        Instant::now() + *self.offset.lock().expect("clock")
    }
}
