//! The error type of the Wyoming codec and server.

use std::io;

/// What can go wrong while reading, decoding or writing Wyoming frames.
///
/// Every variant except [`WyomingError::Io`] and [`WyomingError::Closed`] means the peer
/// sent something the protocol does not allow; after any error the byte stream has lost
/// its framing and the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum WyomingError {
    /// The underlying reader or writer failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// Nothing (or not enough) arrived in time; the text says what was awaited.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The bytes are not a valid frame (bad JSON, missing `type`, bad lengths, ...).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A part of a frame is longer than the configured [`Limits`](super::codec::Limits).
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Which part: `"header line"`, `"data block"` or `"payload"`.
        what: &'static str,
        /// Its length (for a header line: at least this many bytes).
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The stream ended in the middle of a frame (truncated input).
    #[error("connection closed in the middle of a frame")]
    Closed,
}

impl WyomingError {
    /// A short machine-readable code, used as the `code` of the `error` event the server
    /// sends before closing a connection.
    pub fn code(&self) -> &'static str {
        match self {
            WyomingError::Io(_) => "io",
            WyomingError::Timeout(_) => "timeout",
            WyomingError::Malformed(_) => "malformed",
            WyomingError::TooLarge { .. } => "too-large",
            WyomingError::Closed => "closed",
        }
    }

    /// Whether the peer broke the protocol (as opposed to the connection failing).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            WyomingError::Malformed(_) | WyomingError::TooLarge { .. }
        )
    }
}
