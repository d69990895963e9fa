//! Errors of the control layer, the same for the local and the remote path.

use std::io;
use std::path::PathBuf;

use crate::answer::AnswerError;
use crate::error::{Classify, ExitCode};
use crate::store::{StoreError, StoreErrorKind};

use super::protocol::{ErrorBody, ErrorCode};

/// What can go wrong talking to the store, directly or through its owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The store failed (local path).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Answering a question failed for a reason other than the store (local path).
    #[error(transparent)]
    Answer(AnswerError),
    /// The note, list, item or timer does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// The running Serena answered with an error.
    #[error("{message}")]
    Remote {
        /// Its error code.
        code: ErrorCode,
        /// The store's error class, for `store` errors.
        kind: Option<String>,
        /// Its message.
        message: String,
    },
    /// Another long-running Serena owns the store.
    #[error("another Serena (pid {pid}) is running and owns {}", dir.display())]
    Owned {
        /// Its process id.
        pid: u32,
        /// The data directory.
        dir: PathBuf,
    },
    /// The operation needs the store closed, and a Serena is running.
    #[error("a Serena (pid {pid}) is running and owns {}: stop it first ({why})", dir.display())]
    Running {
        /// Its process id.
        pid: u32,
        /// The data directory.
        dir: PathBuf,
        /// Why the operation cannot run beside it.
        why: &'static str,
    },
    /// The control socket could not be created, reached, read or written (including
    /// timeouts).
    #[error("control socket {}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The data directory is not safe to put a control socket in.
    #[error("{}: {why}", path.display())]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The other side does not speak the protocol (or sent something unreadable).
    #[error("protocol error on {}: {detail}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

impl ControlError {
    /// Converts an answer error, keeping store failures as [`ControlError::Store`].
    pub fn from_answer(e: AnswerError) -> ControlError {
        match e {
            AnswerError::Store(s) => ControlError::Store(s),
            other => ControlError::Answer(other),
        }
    }

    /// The wire form of this error (what the server sends back).
    pub fn to_body(&self) -> ErrorBody {
        let (code, kind) = match self {
            ControlError::Store(e) => (ErrorCode::Store, Some(kind_name(e.kind()).to_string())),
            ControlError::Answer(_) => (ErrorCode::Answer, None),
            ControlError::NotFound(_) => (ErrorCode::NotFound, None),
            ControlError::Invalid(_) => (ErrorCode::Invalid, None),
            ControlError::Remote { code, kind, .. } => (*code, kind.clone()),
            ControlError::Owned { .. } | ControlError::Running { .. } => {
                (ErrorCode::Store, Some("busy".to_string()))
            }
            ControlError::Socket { .. }
            | ControlError::UnsafeDir { .. }
            | ControlError::Protocol { .. } => (ErrorCode::Internal, None),
        };
        ErrorBody {
            code,
            kind,
            message: self.to_string(),
        }
    }

    /// The store error class, local or remote (`None` for other errors).
    pub fn store_kind(&self) -> Option<String> {
        match self {
            ControlError::Store(e) => Some(kind_name(e.kind()).to_string()),
            ControlError::Remote {
                code: ErrorCode::Store,
                kind,
                ..
            } => kind.clone(),
            _ => None,
        }
    }
}

/// The wire name of a store error class.
pub fn kind_name(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Busy => "busy",
        StoreErrorKind::Io => "io",
        StoreErrorKind::Corruption => "corruption",
        StoreErrorKind::Version => "version",
        StoreErrorKind::Archive => "archive",
        StoreErrorKind::Passphrase => "passphrase",
        StoreErrorKind::Input => "input",
    }
}

impl Classify for ControlError {
    /// Store failures, an owned or unreachable store: 6. Bad or impossible requests: 2. A
    /// missing note, list or timer: 1.
    fn exit_code(&self) -> ExitCode {
        match self {
            ControlError::Store(_)
            | ControlError::Owned { .. }
            | ControlError::Running { .. }
            | ControlError::Socket { .. }
            | ControlError::UnsafeDir { .. } => ExitCode::Store,
            ControlError::Answer(e) => match e {
                AnswerError::Decode(_) => ExitCode::Input,
                AnswerError::Model(m) => m.exit_code(),
                AnswerError::Stt(crate::stt::SttError::Model(m)) => m.exit_code(),
                AnswerError::Store(_) => ExitCode::Store,
                _ => ExitCode::Failure,
            },
            ControlError::Remote { code, .. } => match code {
                ErrorCode::Store | ErrorCode::Busy | ErrorCode::ShuttingDown => ExitCode::Store,
                ErrorCode::BadRequest
                | ErrorCode::UnsupportedVersion
                | ErrorCode::TooLong
                | ErrorCode::Invalid => ExitCode::Usage,
                _ => ExitCode::Failure,
            },
            ControlError::Invalid(_) => ExitCode::Usage,
            ControlError::NotFound(_) | ControlError::Protocol { .. } => ExitCode::Failure,
        }
    }
}
