//! Custom wake words: rustpotter wake-word references built from a few recordings, or from
//! text spoken by espeak-ng, and a streaming detector for the live pipeline.
//!
//! A wake word is a rustpotter *reference* ([`WakeWordModel`]): the MFCC features of a few
//! examples of the word. Detection compares a sliding window of the live audio's features with
//! each example by dynamic time warping; the score (0..1) is the best match.
//!
//! - [`train`]: a model from recordings (16 kHz mono `f32`). Silence around each recording
//!   is trimmed; [`split_utterances`] cuts a recording that repeats the word into examples.
//! - [`from_text`]: a model from text: espeak-ng says it in several voices and speeds
//!   ([`TextOptions`]), resampled to 16 kHz, then [`train`].
//! - [`WakeWordModel::save`] / [`WakeWordModel::load`]: rustpotter's own `.rpw` file format
//!   (CBOR), so the files also work with the rustpotter CLI. Serena keeps them as
//!   `<data dir>/wakewords/<name>.rpw` ([`model_path`]). Loading validates everything a
//!   corrupt file could get wrong before rustpotter sees it, so a bad file is an error, never a
//!   panic.
//! - [`Detector`]: several wake words at once, fed 16 kHz mono frames of any size, returning
//!   [`Detection`]s (name, score, sample position); a threshold per word.
//!
//! **Invariants:** the detector does no I/O and never blocks; espeak-ng runs as a program with
//! an argument vector (never a shell), the text after `--`; nothing here panics on bad input
//! (audio, text or files).
//!
//! Measured on the project's fixture clips (see the scratch report): a word trained from two
//! recorded examples scores 0.51 on another speaker saying it and at most 0.37 on other speech;
//! words trained from espeak-ng score lower on real speech, hence the separate defaults
//! [`DEFAULT_THRESHOLD`] and [`DEFAULT_TEXT_THRESHOLD`].

mod detector;
mod espeak;
mod model;
mod words;

pub use detector::{Detection, Detector, DetectorConfig, VadMode};
pub use espeak::{espeak_available, synthesize_16k, ESPEAK_PROGRAM};
pub use model::{
    from_text, from_text_and_samples, model_path, split_utterances, train, trim_silence, ScoreMode,
    TextOptions, TrainOptions, WakeWordModel,
};

pub use words::{installed, phrase_of, words_dir, Installed, WakeWords};

use std::path::PathBuf;

use crate::audio::resample::ResampleError;

/// Sample rate of all audio this module takes, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// Samples rustpotter consumes at a time (30 ms); [`Detector::push`] takes any size.
pub const FRAME_SAMPLES: usize = 480;

/// File name extension of wake-word files.
pub const MODEL_EXTENSION: &str = "rpw";

/// Default detection threshold for words trained from recordings.
pub const DEFAULT_THRESHOLD: f32 = 0.45;

/// Default detection threshold for words made from text with espeak-ng (synthetic examples
/// match real voices less closely).
pub const DEFAULT_TEXT_THRESHOLD: f32 = 0.44;

/// Wake-word errors.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    /// The name cannot be used (it also names the model file).
    #[error(
        "invalid wake word name {name:?}: use 1 to 64 letters, digits, spaces, '-' or '_', \
         not starting with a space, '-' or '.'"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The text to speak is empty, too long or has control characters.
    #[error("invalid wake word text {text:?}: {reason}")]
    InvalidText {
        /// The rejected text.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// Training was given no examples.
    #[error("no examples to train wake word {name:?} from")]
    NoSamples {
        /// The wake word.
        name: String,
    },
    /// An example is unusable.
    #[error("example {index} of wake word {name:?}: {reason}")]
    BadSample {
        /// The wake word.
        name: String,
        /// Index of the example in the input.
        index: usize,
        /// Why it cannot be used.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid wake word option: {0}")]
    InvalidOption(String),
    /// espeak-ng is not installed.
    #[error(
        "espeak-ng is not installed; it is needed to make a wake word from text \
         (Debian/Ubuntu: sudo apt-get install espeak-ng; Fedora: sudo dnf install espeak-ng; \
         macOS: brew install espeak-ng)"
    )]
    EspeakMissing,
    /// espeak-ng ran but failed (an unknown voice, for example).
    #[error("espeak-ng failed with voice {voice:?} at {wpm} words per minute: {reason}")]
    Espeak {
        /// The voice asked for.
        voice: String,
        /// The speed asked for.
        wpm: u32,
        /// espeak-ng's message, or what was wrong with its output.
        reason: String,
    },
    /// Synthesized audio could not be resampled to 16 kHz.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// A model file could not be read or written.
    #[error("cannot {action} wake word file {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file (or buffer) is not a valid rustpotter wake-word reference.
    #[error("wake word file {path} is corrupt or not a rustpotter wake word reference: {reason}")]
    Corrupt {
        /// The file (`<memory>` for a buffer).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The detector already has a word with this name.
    #[error("wake word {name:?} is already loaded")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// No such word in the detector.
    #[error("wake word {name:?} is not loaded")]
    Unknown {
        /// The name.
        name: String,
    },
    /// rustpotter refused something (not expected after validation).
    #[error("rustpotter: {0}")]
    Engine(String),
    /// A wake word asked for by name has not been trained.
    #[error(
        "wake word {name:?} is not trained (no {}); `serena wake list` shows the trained ones",
        path.display()
    )]
    NotTrained {
        /// The name asked for.
        name: String,
        /// Where its file would be.
        path: PathBuf,
    },
    /// No wake word has been trained at all.
    #[error(
        "no wake word is trained yet (none in {}): make one with \
         `serena wake train \"hey serena\" --from-text \"hey serena\"` or from recordings \
         with `serena wake train NAME FILE...`, or answer every utterance with `--no-wake`",
        dir.display()
    )]
    NoneTrained {
        /// The wake-word directory.
        dir: PathBuf,
    },
}

impl crate::error::Classify for WakeError {
    fn exit_code(&self) -> crate::error::ExitCode {
        use crate::error::ExitCode;
        match self {
            WakeError::InvalidName { .. }
            | WakeError::InvalidText { .. }
            | WakeError::InvalidOption(_)
            | WakeError::Duplicate { .. }
            | WakeError::Unknown { .. }
            | WakeError::NotTrained { .. }
            | WakeError::NoneTrained { .. } => ExitCode::Usage,
            WakeError::NoSamples { .. } | WakeError::BadSample { .. } => ExitCode::Input,
            WakeError::Corrupt { .. } => ExitCode::Model,
            WakeError::EspeakMissing
            | WakeError::Espeak { .. }
            | WakeError::Resample(_)
            | WakeError::Io { .. }
            | WakeError::Engine(_) => ExitCode::Failure,
        }
    }
}
