//! Error type of the store.
//!
//! Every fallible function of the store module returns [`StoreError`]. Use
//! [`StoreError::kind`] to decide what to do with an error and
//! [`StoreError::is_retryable`] to know whether trying again (later, or after
//! the user fixed something outside Serena) can help.

use std::io;
use std::path::{Path, PathBuf};

/// Broad classes of [`StoreError`], for callers that branch on the kind of
/// failure rather than the exact variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Another process (or another `Store` in this process) holds the store.
    /// Retrying after it exits helps.
    Busy,
    /// The operating system refused an operation (disk full, permissions, ...).
    /// Retrying may help once the cause is fixed.
    Io,
    /// Data on disk is damaged or not what this version expects. Retrying
    /// does not help.
    Corruption,
    /// The data was written by a newer Serena (or a format this one does not
    /// know). Retrying does not help; upgrading Serena does.
    Version,
    /// A backup archive is unusable (not an archive, damaged, truncated).
    /// Retrying with the same file does not help.
    Archive,
    /// A passphrase is missing or wrong. Retrying with the right one helps.
    Passphrase,
    /// The caller passed something invalid (bad list name, nothing to undo).
    Input,
}

/// Errors returned by the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store directory is locked by another process or another open
    /// [`Store`](super::Store) in this process.
    #[error("another Serena process is using {}", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },

    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// sled reported an error that is not an I/O error.
    #[error("database error: {0}")]
    Db(String),

    /// A stored record could not be decoded.
    #[error("corrupt record in table `{table}`: {detail}")]
    CorruptRecord {
        /// Table (sled tree) the record is in.
        table: &'static str,
        /// What is wrong with it.
        detail: String,
    },

    /// The store on disk has a schema newer than this build understands.
    #[error("store schema version {found} is newer than this Serena supports ({supported}); upgrade Serena")]
    SchemaTooNew {
        /// Schema version found in the store.
        found: u32,
        /// Newest schema version this build supports.
        supported: u32,
    },

    /// A migration failed; the store was left at schema version `from`.
    #[error("migrating the store from schema {from} to {to} failed: {detail}")]
    Migration {
        /// Version before the failed step.
        from: u32,
        /// Version the failed step migrates to.
        to: u32,
        /// What went wrong.
        detail: String,
    },

    /// The caller passed an invalid argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// `undo_restore` was called but no previous data is kept.
    #[error("there is no previous data to put back (no restore was done, or it was already undone and discarded)")]
    NothingToUndo,

    /// The file does not start with the Serena backup magic.
    #[error("{} is not a Serena backup archive", path.display())]
    NotAnArchive {
        /// The archive path.
        path: PathBuf,
    },

    /// The archive format or its schema is newer than this build supports.
    #[error(
        "backup {what} version {found} is not supported (this Serena supports up to {supported})"
    )]
    UnsupportedVersion {
        /// `"format"` or `"schema"`.
        what: &'static str,
        /// Version found in the archive.
        found: u32,
        /// Newest version supported.
        supported: u32,
    },

    /// The archive's checksum does not match its content: it was damaged.
    #[error("backup archive is damaged: checksum mismatch ({0})")]
    ChecksumMismatch(&'static str),

    /// The archive ends before its declared content ends.
    #[error("backup archive is truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Offset where reading stopped.
        offset: u64,
        /// Bytes missing.
        needed: u64,
    },

    /// The archive is structurally invalid even though its checksum matched
    /// (or could not be checked).
    #[error("backup archive is corrupt: {0}")]
    Corrupt(String),

    /// The archive is encrypted and no passphrase was given.
    #[error("this backup is encrypted: a passphrase is required")]
    PassphraseRequired,

    /// Decryption failed: the passphrase is wrong (the file itself passed
    /// its integrity check, so it is not damaged).
    #[error("wrong passphrase (could not decrypt the backup)")]
    WrongPassphrase,
}

/// Shorthand for results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The broad class of this error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Locked { .. } => StoreErrorKind::Busy,
            StoreError::Io { .. } => StoreErrorKind::Io,
            StoreError::Db(_) | StoreError::CorruptRecord { .. } | StoreError::Migration { .. } => {
                StoreErrorKind::Corruption
            }
            StoreError::SchemaTooNew { .. } | StoreError::UnsupportedVersion { .. } => {
                StoreErrorKind::Version
            }
            StoreError::InvalidInput(_) | StoreError::NothingToUndo => StoreErrorKind::Input,
            StoreError::NotAnArchive { .. }
            | StoreError::ChecksumMismatch(_)
            | StoreError::Truncated { .. }
            | StoreError::Corrupt(_) => StoreErrorKind::Archive,
            StoreError::PassphraseRequired | StoreError::WrongPassphrase => {
                StoreErrorKind::Passphrase
            }
        }
    }

    /// Whether trying the same operation again can succeed: `true` for a
    /// busy store, I/O failures (disk full, permissions) and passphrase
    /// problems (ask the user again); `false` for damaged data, version
    /// problems and invalid input.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            StoreErrorKind::Busy | StoreErrorKind::Io | StoreErrorKind::Passphrase
        )
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Converts a sled error, mapping sled's own lock failure to `Locked`.
    pub(crate) fn from_sled(err: sled::Error, path: &Path) -> Self {
        match err {
            sled::Error::Io(e) => {
                // sled 0.34 reports a failed `try_lock_exclusive` on its `db`
                // file as `ErrorKind::Other` with this message.
                if e.to_string().contains("could not acquire lock") {
                    StoreError::Locked {
                        path: path.to_path_buf(),
                    }
                } else {
                    StoreError::io(path, e)
                }
            }
            sled::Error::Corruption { .. } => StoreError::CorruptRecord {
                table: "(sled)",
                detail: err.to_string(),
            },
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(e) => StoreError::Io {
                path: PathBuf::new(),
                source: e,
            },
            sled::Error::Corruption { .. } => StoreError::CorruptRecord {
                table: "(sled)",
                detail: err.to_string(),
            },
            other => StoreError::Db(other.to_string()),
        }
    }
}
