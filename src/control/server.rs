//! The socket server of the store's owner: accepts connections, reads request lines, runs
//! them on the blocking pool and writes response lines.
//!
//! Bounded everywhere: at most [`MAX_CONNECTIONS`] connections (more are told `busy` and
//! closed), request lines of at most [`MAX_REQUEST_LINE`] bytes, an idle connection is
//! closed after [`IDLE_TIMEOUT`], a response write that takes longer than
//! [`WRITE_TIMEOUT`] closes the connection. Only the user who runs the server may connect
//! (the socket is 0600 in a 0700 directory, and the peer's uid is checked). On shutdown the
//! server stops accepting, lets requests in progress finish (at most [`DRAIN_TIMEOUT`]),
//! and returns.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::protocol::{parse_request, ErrorBody, ErrorCode, Response, MAX_REQUEST_LINE};
use super::service::Service;
use super::shutdown::Shutdown;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Writing one response may take at most this long.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in progress.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A line is in the buffer (without its newline).
    Line,
    /// The peer closed the connection.
    Eof,
    /// The line is longer than allowed; the connection must be closed.
    TooLong,
}

/// Reads up to the next `\n` into `buf` (cleared first), refusing lines over `max` bytes
/// without buffering them. A last line without a newline counts as a line.
pub(crate) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        if let Some(pos) = avail.iter().position(|&b| b == b'\n') {
            if buf.len() + pos > max {
                r.consume(pos + 1);
                return Ok(LineRead::TooLong);
            }
            buf.extend_from_slice(&avail[..pos]);
            r.consume(pos + 1);
            return Ok(LineRead::Line);
        }
        let n = avail.len();
        if buf.len() + n > max {
            r.consume(n);
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(avail);
        r.consume(n);
    }
}

fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::error(
        None,
        ErrorBody {
            code,
            kind: None,
            message: message.into(),
        },
    )
}

/// Serves `listener` until `shutdown` fires, then drains. Errors accepting a connection
/// are logged and the server goes on.
pub async fn run(listener: UnixListener, service: Arc<Service>, shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!("too many control connections; refusing one");
                        conns.spawn(refuse(stream));
                        continue;
                    };
                    let (service, shutdown) = (Arc::clone(&service), shutdown.clone());
                    conns.spawn(async move {
                        if let Err(e) = connection(stream, service, shutdown).await {
                            tracing::debug!(error = %e, "control connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a control connection failed");
                    // Back off a little: accept errors (EMFILE) tend to repeat at once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = shutdown.wait() => break,
        }
    }
    drop(listener);
    let drained = timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = conns.len(),
            "requests still running after the drain timeout; abandoning them"
        );
        conns.abort_all();
    }
}

async fn refuse(mut stream: UnixStream) {
    let mut line = serde_json::to_vec(&error_response(
        ErrorCode::Busy,
        "too many connections; try again",
    ))
    .unwrap_or_default();
    line.push(b'\n');
    let _ = timeout(WRITE_TIMEOUT, stream.write_all(&line)).await;
}

/// Whether the peer runs as the same user as this process.
fn same_user(stream: &UnixStream) -> bool {
    match stream.peer_cred() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Ok(cred) => cred.uid() == unsafe { libc::geteuid() },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the control peer's credentials");
            false
        }
    }
}

async fn connection(
    stream: UnixStream,
    service: Arc<Service>,
    shutdown: Shutdown,
) -> io::Result<()> {
    if !same_user(&stream) {
        tracing::warn!("refused a control connection from another user");
        return Ok(());
    }
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut buf = Vec::with_capacity(1024);
    loop {
        let read = tokio::select! {
            read = timeout(IDLE_TIMEOUT, read_line_bounded(&mut r, &mut buf, MAX_REQUEST_LINE)) => read,
            () = shutdown.wait() => return Ok(()),
        };
        let (response, close) = match read {
            Err(_) => {
                tracing::debug!("closing an idle control connection");
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(LineRead::Eof)) => return Ok(()),
            Ok(Ok(LineRead::TooLong)) => (
                error_response(
                    ErrorCode::TooLong,
                    format!(
                        "request line longer than {MAX_REQUEST_LINE} bytes; closing the connection"
                    ),
                ),
                true,
            ),
            Ok(Ok(LineRead::Line)) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Ok(LineRead::Line)) => (handle_line(&service, &buf, &shutdown).await, false),
        };
        let mut line = match serde_json::to_vec(&response) {
            Ok(line) => line,
            Err(e) => serde_json::to_vec(&error_response(
                ErrorCode::Internal,
                format!("cannot encode the response: {e}"),
            ))
            .unwrap_or_default(),
        };
        line.push(b'\n');
        match timeout(WRITE_TIMEOUT, async {
            w.write_all(&line).await?;
            w.flush().await
        })
        .await
        {
            Ok(result) => result?,
            Err(_) => {
                tracing::debug!("control client does not read its responses; closing");
                return Ok(());
            }
        }
        if close {
            return Ok(());
        }
    }
}

async fn handle_line(service: &Arc<Service>, line: &[u8], shutdown: &Shutdown) -> Response {
    let (id, request) = match parse_request(line) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if shutdown.is_triggered() {
        return Response::error(
            id,
            ErrorBody {
                code: ErrorCode::ShuttingDown,
                kind: None,
                message: "Serena is shutting down".into(),
            },
        );
    }
    let op = request.op();
    let svc = Arc::clone(service);
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || svc.execute(request)).await;
    tracing::debug!(
        op,
        ms = started.elapsed().as_millis() as u64,
        "control request"
    );
    match outcome {
        Ok(Ok(result)) => Response::ok(id, result),
        Ok(Err(e)) => Response::error(id, e.to_body()),
        Err(e) => {
            tracing::error!(op, error = %e, "control request panicked");
            Response::error(
                id,
                ErrorBody {
                    code: ErrorCode::Internal,
                    kind: None,
                    message: format!("the {op} request failed inside Serena"),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_lines() {
        let data: &[u8] = b"abc\n\nxyz\n0123456789ABCDEF\nlast";
        let mut r = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        let expect = |got: LineRead, buf: &[u8], want: (LineRead, &str)| {
            assert_eq!(
                (got, String::from_utf8_lossy(buf).into_owned()),
                (want.0, want.1.to_string())
            );
        };
        let got = read_line_bounded(&mut r, &mut buf, 8).await.expect("read");
        expect(got, &buf, (LineRead::Line, "abc"));
        let got = read_line_bounded(&mut r, &mut buf, 8).await.expect("read");
        expect(got, &buf, (LineRead::Line, ""));
        let got = read_line_bounded(&mut r, &mut buf, 3).await.expect("read");
        expect(got, &buf, (LineRead::Line, "xyz"));
        let got = read_line_bounded(&mut r, &mut buf, 8).await.expect("read");
        assert_eq!(got, LineRead::TooLong);
        // (The server closes the connection after a line that is too long.)
        let mut tail = BufReader::new(&b"last"[..]);
        let got = read_line_bounded(&mut tail, &mut buf, 8)
            .await
            .expect("read");
        expect(got, &buf, (LineRead::Line, "last"));
        let got = read_line_bounded(&mut tail, &mut buf, 8)
            .await
            .expect("read");
        assert_eq!(got, LineRead::Eof);
    }
}
