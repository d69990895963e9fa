//! A small blocking client of the control socket (std `UnixStream` with timeouts).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::error::ControlError;
use super::protocol::{Pong, Request, RequestLine, Response, MAX_RESPONSE_LINE, PROTOCOL_VERSION};

/// How long to wait for most responses.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for slow ones: `ask` (a language model may answer) and `backup`
/// (key derivation, writing the archive).
pub const SLOW_TIMEOUT: Duration = Duration::from_secs(600);

/// A connection to a running Serena.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    owner_pid: u32,
}

impl Client {
    /// Connects to the socket at `path` and checks that a Serena speaking this protocol is
    /// there. `Ok(None)` when nobody listens (no socket file, or a stale one).
    ///
    /// # Errors
    /// [`ControlError::Socket`] when the socket exists but cannot be used (permissions,
    /// timeouts); [`ControlError::Protocol`] when the other side is not a compatible Serena.
    pub fn connect(path: &Path) -> Result<Option<Client>, ControlError> {
        let sock_err = |source| ControlError::Socket {
            path: path.to_path_buf(),
            source,
        };
        let stream = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(sock_err(e)),
        };
        stream
            .set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(sock_err)?;
        let writer = stream.try_clone().map_err(sock_err)?;
        let mut client = Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            owner_pid: 0,
        };
        let pong: Pong = client.call(&Request::Ping)?;
        if pong.protocol != PROTOCOL_VERSION {
            return Err(client.protocol(format!(
                "the running Serena {} speaks protocol {}, this one {PROTOCOL_VERSION}",
                pong.version, pong.protocol
            )));
        }
        client.owner_pid = pong.pid;
        Ok(Some(client))
    }

    /// The running Serena's process id.
    pub fn owner_pid(&self) -> u32 {
        self.owner_pid
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn protocol(&self, detail: String) -> ControlError {
        ControlError::Protocol {
            path: self.path.clone(),
            detail,
        }
    }

    fn sock(&self, source: io::Error) -> ControlError {
        ControlError::Socket {
            path: self.path.clone(),
            source,
        }
    }

    /// Sends `request` and decodes its result as `T`.
    ///
    /// # Errors
    /// [`ControlError::Remote`] for an error response; [`ControlError::Socket`] for I/O
    /// errors and timeouts; [`ControlError::Protocol`] for an unreadable response.
    pub fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ControlError> {
        let value = self.call_value(request)?;
        serde_json::from_value(value)
            .map_err(|e| self.protocol(format!("unexpected {} result: {e}", request.op())))
    }

    /// Sends `request` and returns its raw result.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call_value(&mut self, request: &Request) -> Result<serde_json::Value, ControlError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&RequestLine {
            v: PROTOCOL_VERSION,
            id: Some(id),
            request,
        })
        .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        line.push(b'\n');
        let wait = match request {
            Request::Ask { .. } | Request::Backup { .. } => SLOW_TIMEOUT,
            _ => DEFAULT_TIMEOUT,
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait))
            .map_err(|e| self.sock(e))?;
        self.writer.write_all(&line).map_err(|e| self.sock(e))?;
        let response = self.read_response()?;
        if response.id.is_some() && response.id != Some(id) {
            return Err(self.protocol(format!(
                "response id {:?} does not match request id {id}",
                response.id
            )));
        }
        match (response.ok, response.error) {
            (true, _) => Ok(response.result),
            (false, Some(e)) => Err(ControlError::Remote {
                code: e.code,
                kind: e.kind,
                message: e.message,
            }),
            (false, None) => Err(self.protocol("an error response without an error".into())),
        }
    }

    fn read_response(&mut self) -> Result<Response, ControlError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_RESPONSE_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.sock(e))?;
        if n == 0 {
            return Err(self.sock(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the running Serena closed the connection (did it stop?)",
            )));
        }
        if buf.last() != Some(&b'\n') {
            return Err(self.protocol(if buf.len() > MAX_RESPONSE_LINE {
                format!("response longer than {MAX_RESPONSE_LINE} bytes")
            } else {
                "connection closed in the middle of a response".into()
            }));
        }
        serde_json::from_slice(&buf).map_err(|e| self.protocol(format!("unreadable response: {e}")))
    }
}
