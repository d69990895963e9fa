//! The live voice pipeline's stages, as pure state machines first (sans I/O), wrapped by
//! thin tasks later: capture → VAD → [`endpoint::Endpointer`] → wake word → whisper
//! (`stt::command`) → answer → speech.
//!
//! Built so far: end-of-speech detection with pre-roll, hang time and a length cap, and the
//! low-power energy VAD. The capture ring buffer, wake words and the `listen`/`ptt` commands
//! are the next steps.

pub mod endpoint;
pub mod listen;
