//! Serena's integration tests: one test binary, one module per area.
//!
//! Everything runs for real: the `serena` binary in a scratch directory, the real engines on
//! the small models in the shared fixtures, real sockets on 127.0.0.1, and real (virtual)
//! audio devices from a private PulseAudio server.

mod common;
mod pulse;

mod ask;
mod cli_config;
mod cli_models;
mod cli_status;
mod control;
mod engines;
mod listen;
mod live;
mod llm;
mod online;
mod online_server;
mod parity;
mod power;
mod ptt;
mod serve_api;
mod store;
mod throttle;
mod transcribe;
mod vad;
mod wake;
