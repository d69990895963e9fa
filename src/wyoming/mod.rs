//! The Wyoming protocol (Home Assistant's voice services protocol): a server that offers
//! Serena's speech recognition, speech synthesis, intent recognition and handling to
//! Home Assistant and Wyoming satellites.
//!
//! * [`codec`]: framing — a sans-I/O [`Decoder`](codec::Decoder), an async
//!   [`read_frame`](codec::read_frame) and [`write_frame`](codec::write_frame), all
//!   bounded by [`Limits`]; plus [`fuzz_decode`].
//! * [`event`]: typed [`Event`]s and their conversion to and from frames.
//! * [`info`]: the `info` answer to `describe`.
//! * [`audio`]: PCM helpers and the default 16 kHz conversion.
//! * [`server`]: [`serve`] over a [`WyomingHandler`].
//!
//! Checked against the reference Python package `wyoming` 1.10.2 (PyPI).

pub mod audio;
pub mod codec;
pub mod error;
pub mod event;
pub mod info;
pub mod server;

pub use codec::{fuzz_decode, Frame, Limits};
pub use error::WyomingError;
pub use event::Event;
pub use info::Info;
pub use server::{serve, serve_connection, ServerOptions, Stats, StatsSnapshot, WyomingHandler};
