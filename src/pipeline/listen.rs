//! `serena listen` without a wake word, over any source of 16 kHz mono frames: VAD → end of
//! speech → whisper (window sized to the command) → answer → speech, with one event per
//! step. The answer and the speech are callbacks, so the same loop serves a file played
//! as if it were the microphone, and later the live capture.

use std::time::Instant;

use serde::Serialize;

use super::endpoint::{EndpointConfig, EndpointEvent, Endpointer, EnergyVad};
use crate::stt::command::transcribe_command;
use crate::stt::{DecodeOptions, WhisperEngine};

/// Samples per frame handed to the VAD (30 ms).
pub const FRAME: usize = 480;

/// One event of the pipeline, as `--events json` prints it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Listening has begun.
    Listening,
    /// Speech began (seconds into the input).
    SpeechStart {
        /// Position in the input.
        at_s: f64,
    },
    /// Speech ended.
    SpeechEnd {
        /// Position in the input.
        at_s: f64,
        /// Why: silence, max_length or end_of_input.
        reason: super::endpoint::EndReason,
        /// Length of the utterance's audio.
        audio_s: f64,
    },
    /// The final transcript.
    Transcript {
        /// What was heard.
        text: String,
        /// Milliseconds in the recogniser.
        latency_ms: u64,
        /// The encoder context used (0: full window).
        audio_ctx: u32,
    },
    /// What the router understood (if anything) and the reply.
    Reply {
        /// The intent, if the router understood.
        intent: Option<String>,
        /// The intent's slots.
        slots: serde_json::Value,
        /// The reply.
        text: String,
        /// Who answered.
        source: String,
        /// Milliseconds to answer.
        latency_ms: u64,
    },
    /// Speaking began.
    SpeakingStart,
    /// Speaking ended.
    SpeakingEnd {
        /// Milliseconds to synthesize and play (or write).
        latency_ms: u64,
    },
    /// Something failed; the pipeline goes on with the next utterance.
    Error {
        /// What failed.
        message: String,
    },
}

/// What answering produced, as the loop needs it.
#[derive(Clone, Debug)]
pub struct Answered {
    /// The intent, if any.
    pub intent: Option<String>,
    /// Its slots.
    pub slots: serde_json::Value,
    /// The reply text.
    pub reply: String,
    /// Who answered.
    pub source: String,
}

/// Run the pipeline over `frames` until they end. `answer` answers a transcript; `speak`
/// speaks a reply; `emit` receives every event (with the time since start added by the
/// caller if it wants). Errors of one utterance become [`Event::Error`] and the loop goes on.
pub fn run(
    frames: impl Iterator<Item = Vec<f32>>,
    engine: &WhisperEngine,
    decode: &DecodeOptions,
    endpoint: EndpointConfig,
    answer: &mut dyn FnMut(&str) -> Result<Answered, String>,
    speak: &mut dyn FnMut(&str) -> Result<(), String>,
    emit: &mut dyn FnMut(&Event),
) {
    let mut vad = EnergyVad::default();
    let mut ep = Endpointer::new(endpoint);
    emit(&Event::Listening);
    let mut handle = |event: EndpointEvent, emit: &mut dyn FnMut(&Event)| match event {
        EndpointEvent::SpeechStart { at_s } => emit(&Event::SpeechStart { at_s }),
        EndpointEvent::SpeechEnd {
            at_s,
            reason,
            audio,
        } => {
            emit(&Event::SpeechEnd {
                at_s,
                reason,
                audio_s: audio.len() as f64 / 16_000.0,
            });
            utterance(&audio, engine, decode, answer, speak, emit);
        }
    };
    for frame in frames {
        let speech = vad.is_speech(&frame);
        for event in ep.push(&frame, speech) {
            handle(event, emit);
        }
    }
    if let Some(event) = ep.finish_input() {
        handle(event, emit);
    }
}

fn utterance(
    audio: &[f32],
    engine: &WhisperEngine,
    decode: &DecodeOptions,
    answer: &mut dyn FnMut(&str) -> Result<Answered, String>,
    speak: &mut dyn FnMut(&str) -> Result<(), String>,
    emit: &mut dyn FnMut(&Event),
) {
    let t = Instant::now();
    let heard = match transcribe_command(engine, audio, decode) {
        Ok(h) => h,
        Err(e) => {
            emit(&Event::Error {
                message: e.to_string(),
            });
            return;
        }
    };
    emit(&Event::Transcript {
        text: heard.text.clone(),
        latency_ms: t.elapsed().as_millis() as u64,
        audio_ctx: heard.audio_ctx,
    });
    if heard.text.trim().is_empty() {
        return; // noise, not words: nothing to answer
    }
    let t = Instant::now();
    let answered = match answer(&heard.text) {
        Ok(a) => a,
        Err(message) => {
            emit(&Event::Error { message });
            return;
        }
    };
    emit(&Event::Reply {
        intent: answered.intent,
        slots: answered.slots,
        text: answered.reply.clone(),
        source: answered.source,
        latency_ms: t.elapsed().as_millis() as u64,
    });
    if answered.reply.trim().is_empty() {
        return;
    }
    emit(&Event::SpeakingStart);
    let t = Instant::now();
    if let Err(message) = speak(&answered.reply) {
        emit(&Event::Error { message });
    }
    emit(&Event::SpeakingEnd {
        latency_ms: t.elapsed().as_millis() as u64,
    });
}
