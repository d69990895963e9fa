//! Serena: a local, offline-first, voice-first assistant.
//!
//! # Layout
//!
//! The library does the work; the `serena` binary (`src/main.rs`, `src/cli/`) turns flags
//! and configuration into configured engines and maps errors to exit codes. One module per
//! stage, each depending on a small shared core rather than on each other:
//!
//! - [`answer`]: question → router → skill, or → language model → fallback; history.
//! - [`config`], [`paths`], [`error`], [`logging`]: configuration, locations, exit codes, logs.
//! - [`models`]: the catalog, model lookup, structural verification, downloads.
//! - [`audio`]: decoding files, resampling, devices.
//! - [`stt`]: whisper.cpp (speech to text) and its hallucination guards.
//! - [`transcribe`]: file transcription: windows, output formats, word error rate.
//! - [`router`]: Home Assistant intent templates; text to intent and slots, or "not understood".
//! - [`skills`]: what each intent does (timers, lists, notes, time, system) and its reply.
//! - [`store`]: the sled store: history, notes, lists, timers, settings, metrics; backup/restore.
//! - [`control`]: one store owner, many commands: the control socket, its server and client.
//! - [`llm`]: llama.cpp on its own thread, sentence streaming, conversation memory,
//!   and the optional online model with its health record and circuit breaker.
//! - [`tools`]: tools the language model can call: the skills and MCP servers' tools.
//! - [`tts`]: speech synthesis.
//! - [`vad`]: voice activity detection (Silero through whisper.cpp).
//! - [`pipeline`]: the live pipeline's stages as pure state machines (end of speech so far).
//! - [`power`]: power source, profiles with hysteresis, system figures, model memory manager.
//! - [`wyoming`]: the Wyoming protocol server (Home Assistant): framing, events, server.
//! - [`http`]: the OpenAI-compatible HTTP API (axum): routes, limits, metrics.
//! - [`gateway`]: Serena's engines behind both servers.
//! - [`status`]: the system self-check behind `serena status`.
//!
//! `ARCHITECTURE.md` at the repository root has the bird's-eye view and the invariants.

pub mod answer;
pub mod audio;
pub mod config;
pub mod control;
pub mod error;
pub mod gateway;
pub mod http;
pub mod llm;
pub mod logging;
pub mod models;
pub mod paths;
pub mod pipeline;
pub mod power;
pub mod router;
pub mod skills;
pub mod status;
pub mod store;
pub mod stt;
pub mod tools;
pub mod transcribe;
pub mod tts;
pub mod usage;
pub mod vad;
pub mod wake;
pub mod wyoming;

/// Serena's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
