//! Exit codes shared by every subcommand.
//!
//! The binary maps each error to one of these, so scripts can tell a bad input file
//! from a missing model from a usage mistake without parsing messages.

/// Process exit codes. Stable: scripts depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything worked.
    Ok = 0,
    /// Something failed that has no more specific code (I/O, an engine error).
    Failure = 1,
    /// Bad flags or arguments, or a bad configuration file or environment override.
    Usage = 2,
    /// An input file is missing, empty, corrupt, truncated or not audio.
    Input = 3,
    /// A model is missing, broken, of the wrong kind, or could not be fetched.
    Model = 4,
    /// An audio device could not be used.
    Device = 5,
    /// The store could not be opened or is locked by another process.
    Store = 6,
    /// `serena status` found something required missing.
    Unhealthy = 7,
}

impl ExitCode {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// An error that knows which exit code it deserves.
pub trait Classify {
    /// The exit code this error maps to.
    fn exit_code(&self) -> ExitCode;
}
