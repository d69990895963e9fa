//! The live voice pipeline: capture → VAD → [`endpoint::Endpointer`] → wake word → whisper
//! (`stt::command`) → answer → speech, run by [`listen::run`].
//!
//! The stages that decide things are pure state machines (sans I/O), fed frames by thin
//! loops: [`endpoint`] (end of speech, pre-roll, hang, length cap, the energy VAD),
//! [`listen`] (the front/brain loop: wake words, windows, barge-in, stop words) and
//! [`speaker`] (where replies go, on the input's clock).

pub mod endpoint;
pub mod listen;
pub mod ptt;
pub mod source;
pub mod speaker;
