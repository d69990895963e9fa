//! Typed Wyoming events and their conversion to and from [`Frame`]s.
//!
//! Field names and optionality follow the reference Python package (`wyoming/*.py`).
//! Optional fields are left out when `None`; `null` is accepted for them on input (the
//! reference writes `"timestamp": null`, `"text": null`). Unknown fields are ignored and
//! unknown event types are kept as [`Event::Unknown`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec::Frame;
use super::error::WyomingError;
use super::info::Info;

/// Sample rate, sample width and channel count of raw PCM audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second, e.g. 16000.
    pub rate: u32,
    /// Bytes per sample, e.g. 2 for 16-bit.
    pub width: u16,
    /// Interleaved channels, 1 for mono.
    pub channels: u16,
}

impl AudioFormat {
    /// 16 kHz, 16-bit, mono: what speech recognisers want.
    pub const SPEECH: AudioFormat = AudioFormat {
        rate: 16_000,
        width: 2,
        channels: 1,
    };
}

/// `audio-start`: an audio stream begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioStart {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u16,
    /// Channels.
    pub channels: u16,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl AudioStart {
    /// The stream's format.
    pub fn format(&self) -> AudioFormat {
        AudioFormat {
            rate: self.rate,
            width: self.width,
            channels: self.channels,
        }
    }
}

/// `audio-chunk`: raw PCM audio in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioChunk {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u16,
    /// Channels.
    pub channels: u16,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The PCM bytes (the frame's payload), little-endian, channels interleaved.
    #[serde(skip)]
    pub audio: Vec<u8>,
}

impl AudioChunk {
    /// The chunk's format.
    pub fn format(&self) -> AudioFormat {
        AudioFormat {
            rate: self.rate,
            width: self.width,
            channels: self.channels,
        }
    }
}

/// `audio-stop`: an audio stream ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioStop {
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// `transcribe`: request to transcribe the audio stream that follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcribe {
    /// Model to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Language of the speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Context from previous interactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// How quickly the end of a command is detected (`default`, `relaxed`, `aggressive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad_sensitivity: Option<String>,
    /// Names that should bias the transcription (wyoming 1.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_names: Option<Vec<String>>,
    /// Domain terms that should bias the transcription (wyoming 1.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_terms: Option<Vec<String>>,
}

/// `transcript`: the transcription (server to client), or text to handle (client to a
/// handle server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The text.
    pub text: String,
    /// Its language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `transcript-start`: a streamed transcript begins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptStart {
    /// Language of the transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `transcript-chunk`: part of a streamed transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptChunk {
    /// The text of this part.
    pub text: String,
}

/// The `voice` of a `synthesize` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesizeVoice {
    /// Voice name from the TTS info (wins over `language`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Voice language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Speaker of a multi-speaker voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// `synthesize`: request to speak a text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Synthesize {
    /// Text to speak.
    pub text: String,
    /// Voice to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<SynthesizeVoice>,
    /// `text`, `ssml`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_format: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `synthesize-start`: a streamed synthesis request begins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthesizeStart {
    /// Voice to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<SynthesizeVoice>,
    /// `text`, `ssml`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_format: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `synthesize-chunk`: part of the text of a streamed synthesis request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesizeChunk {
    /// The text of this part.
    pub text: String,
}

/// `recognize`: request to recognise an intent in a text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recognize {
    /// The text.
    pub text: String,
    /// Context from previous interactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// A named entity (slot) of an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Entity name.
    pub name: String,
    /// Its value (any JSON; the reference always writes the key, `null` when unset).
    #[serde(default)]
    pub value: Value,
}

/// `intent`: a recognised intent (or, sent to a handle server, one to handle).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Intent name.
    pub name: String,
    /// Named entities.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub entities: Vec<Entity>,
    /// Response for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `not-recognized`, `handled`, `not-handled`: an optional text for the user plus context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Response for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Context for the next interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl Reply {
    /// A reply with this text and no context.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            text: Some(text.into()),
            context: None,
        }
    }
}

/// `ping` and `pong`: the text is copied from ping to pong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Text to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `error`: something went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Human-readable message.
    pub text: String,
    /// Machine-readable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ErrorEvent {
    /// An error event with a message and a code.
    pub fn new(text: impl Into<String>, code: impl Into<String>) -> ErrorEvent {
        ErrorEvent {
            text: text.into(),
            code: Some(code.into()),
        }
    }
}

/// A Wyoming event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `describe`: asks for [`Event::Info`].
    Describe,
    /// `info`: the services offered.
    Info(Info),
    /// `transcribe`.
    Transcribe(Transcribe),
    /// `audio-start`.
    AudioStart(AudioStart),
    /// `audio-chunk`.
    AudioChunk(AudioChunk),
    /// `audio-stop`.
    AudioStop(AudioStop),
    /// `transcript`.
    Transcript(Transcript),
    /// `transcript-start`.
    TranscriptStart(TranscriptStart),
    /// `transcript-chunk`.
    TranscriptChunk(TranscriptChunk),
    /// `transcript-stop`.
    TranscriptStop,
    /// `synthesize`.
    Synthesize(Synthesize),
    /// `synthesize-start`.
    SynthesizeStart(SynthesizeStart),
    /// `synthesize-chunk`.
    SynthesizeChunk(SynthesizeChunk),
    /// `synthesize-stop`.
    SynthesizeStop,
    /// `synthesize-stopped`: the server has sent all audio of a streamed request.
    SynthesizeStopped,
    /// `recognize`.
    Recognize(Recognize),
    /// `intent`.
    Intent(Intent),
    /// `not-recognized`.
    NotRecognized(Reply),
    /// `handled`.
    Handled(Reply),
    /// `not-handled`.
    NotHandled(Reply),
    /// `ping`.
    Ping(Ping),
    /// `pong`.
    Pong(Ping),
    /// `error`.
    Error(ErrorEvent),
    /// Any other type, kept as it came.
    Unknown(Frame),
}

/// Event type names.
pub mod kind {
    /// `describe`
    pub const DESCRIBE: &str = "describe";
    /// `info`
    pub const INFO: &str = "info";
    /// `transcribe`
    pub const TRANSCRIBE: &str = "transcribe";
    /// `audio-start`
    pub const AUDIO_START: &str = "audio-start";
    /// `audio-chunk`
    pub const AUDIO_CHUNK: &str = "audio-chunk";
    /// `audio-stop`
    pub const AUDIO_STOP: &str = "audio-stop";
    /// `transcript`
    pub const TRANSCRIPT: &str = "transcript";
    /// `transcript-start`
    pub const TRANSCRIPT_START: &str = "transcript-start";
    /// `transcript-chunk`
    pub const TRANSCRIPT_CHUNK: &str = "transcript-chunk";
    /// `transcript-stop`
    pub const TRANSCRIPT_STOP: &str = "transcript-stop";
    /// `synthesize`
    pub const SYNTHESIZE: &str = "synthesize";
    /// `synthesize-start`
    pub const SYNTHESIZE_START: &str = "synthesize-start";
    /// `synthesize-chunk`
    pub const SYNTHESIZE_CHUNK: &str = "synthesize-chunk";
    /// `synthesize-stop`
    pub const SYNTHESIZE_STOP: &str = "synthesize-stop";
    /// `synthesize-stopped`
    pub const SYNTHESIZE_STOPPED: &str = "synthesize-stopped";
    /// `recognize`
    pub const RECOGNIZE: &str = "recognize";
    /// `intent`
    pub const INTENT: &str = "intent";
    /// `not-recognized`
    pub const NOT_RECOGNIZED: &str = "not-recognized";
    /// `handled`
    pub const HANDLED: &str = "handled";
    /// `not-handled`
    pub const NOT_HANDLED: &str = "not-handled";
    /// `ping`
    pub const PING: &str = "ping";
    /// `pong`
    pub const PONG: &str = "pong";
    /// `error`
    pub const ERROR: &str = "error";
}

impl Event {
    /// The wire `type` of this event.
    pub fn kind(&self) -> &str {
        match self {
            Event::Describe => kind::DESCRIBE,
            Event::Info(_) => kind::INFO,
            Event::Transcribe(_) => kind::TRANSCRIBE,
            Event::AudioStart(_) => kind::AUDIO_START,
            Event::AudioChunk(_) => kind::AUDIO_CHUNK,
            Event::AudioStop(_) => kind::AUDIO_STOP,
            Event::Transcript(_) => kind::TRANSCRIPT,
            Event::TranscriptStart(_) => kind::TRANSCRIPT_START,
            Event::TranscriptChunk(_) => kind::TRANSCRIPT_CHUNK,
            Event::TranscriptStop => kind::TRANSCRIPT_STOP,
            Event::Synthesize(_) => kind::SYNTHESIZE,
            Event::SynthesizeStart(_) => kind::SYNTHESIZE_START,
            Event::SynthesizeChunk(_) => kind::SYNTHESIZE_CHUNK,
            Event::SynthesizeStop => kind::SYNTHESIZE_STOP,
            Event::SynthesizeStopped => kind::SYNTHESIZE_STOPPED,
            Event::Recognize(_) => kind::RECOGNIZE,
            Event::Intent(_) => kind::INTENT,
            Event::NotRecognized(_) => kind::NOT_RECOGNIZED,
            Event::Handled(_) => kind::HANDLED,
            Event::NotHandled(_) => kind::NOT_HANDLED,
            Event::Ping(_) => kind::PING,
            Event::Pong(_) => kind::PONG,
            Event::Error(_) => kind::ERROR,
            Event::Unknown(frame) => &frame.kind,
        }
    }

    /// Types a frame. A known type whose data does not fit (e.g. an `audio-chunk` without
    /// `rate`) is [`WyomingError::Malformed`]; an unknown type is [`Event::Unknown`].
    pub fn from_frame(frame: Frame) -> Result<Event, WyomingError> {
        let Frame {
            kind: name,
            data,
            payload,
        } = frame;
        let event = match name.as_str() {
            kind::DESCRIBE => Event::Describe,
            kind::INFO => Event::Info(parse(&name, data)?),
            kind::TRANSCRIBE => Event::Transcribe(parse(&name, data)?),
            kind::AUDIO_START => Event::AudioStart(parse(&name, data)?),
            kind::AUDIO_CHUNK => {
                let mut chunk: AudioChunk = parse(&name, data)?;
                chunk.audio = payload.unwrap_or_default();
                Event::AudioChunk(chunk)
            }
            kind::AUDIO_STOP => Event::AudioStop(parse(&name, data)?),
            kind::TRANSCRIPT => Event::Transcript(parse(&name, data)?),
            kind::TRANSCRIPT_START => Event::TranscriptStart(parse(&name, data)?),
            kind::TRANSCRIPT_CHUNK => Event::TranscriptChunk(parse(&name, data)?),
            kind::TRANSCRIPT_STOP => Event::TranscriptStop,
            kind::SYNTHESIZE => Event::Synthesize(parse(&name, data)?),
            kind::SYNTHESIZE_START => Event::SynthesizeStart(parse(&name, data)?),
            kind::SYNTHESIZE_CHUNK => Event::SynthesizeChunk(parse(&name, data)?),
            kind::SYNTHESIZE_STOP => Event::SynthesizeStop,
            kind::SYNTHESIZE_STOPPED => Event::SynthesizeStopped,
            kind::RECOGNIZE => Event::Recognize(parse(&name, data)?),
            kind::INTENT => Event::Intent(parse(&name, data)?),
            kind::NOT_RECOGNIZED => Event::NotRecognized(parse(&name, data)?),
            kind::HANDLED => Event::Handled(parse(&name, data)?),
            kind::NOT_HANDLED => Event::NotHandled(parse(&name, data)?),
            kind::PING => Event::Ping(parse(&name, data)?),
            kind::PONG => Event::Pong(parse(&name, data)?),
            kind::ERROR => Event::Error(parse(&name, data)?),
            _ => Event::Unknown(Frame {
                kind: name,
                data,
                payload,
            }),
        };
        Ok(event)
    }

    /// The frame to send for this event.
    pub fn into_frame(self) -> Frame {
        let kind = self.kind().to_owned();
        let (data, payload) = match self {
            Event::Describe
            | Event::TranscriptStop
            | Event::SynthesizeStop
            | Event::SynthesizeStopped => (Map::new(), None),
            Event::Info(v) => (to_map(&v), None),
            Event::Transcribe(v) => (to_map(&v), None),
            Event::AudioStart(v) => (to_map(&v), None),
            Event::AudioChunk(mut v) => {
                let audio = std::mem::take(&mut v.audio);
                (to_map(&v), Some(audio))
            }
            Event::AudioStop(v) => (to_map(&v), None),
            Event::Transcript(v) => (to_map(&v), None),
            Event::TranscriptStart(v) => (to_map(&v), None),
            Event::TranscriptChunk(v) => (to_map(&v), None),
            Event::Synthesize(v) => (to_map(&v), None),
            Event::SynthesizeStart(v) => (to_map(&v), None),
            Event::SynthesizeChunk(v) => (to_map(&v), None),
            Event::Recognize(v) => (to_map(&v), None),
            Event::Intent(v) => (to_map(&v), None),
            Event::NotRecognized(v) | Event::Handled(v) | Event::NotHandled(v) => {
                (to_map(&v), None)
            }
            Event::Ping(v) | Event::Pong(v) => (to_map(&v), None),
            Event::Error(v) => (to_map(&v), None),
            Event::Unknown(frame) => return frame,
        };
        Frame {
            kind,
            data,
            payload,
        }
    }
}

impl TryFrom<Frame> for Event {
    type Error = WyomingError;

    fn try_from(frame: Frame) -> Result<Event, WyomingError> {
        Event::from_frame(frame)
    }
}

impl From<Event> for Frame {
    fn from(event: Event) -> Frame {
        event.into_frame()
    }
}

fn parse<T: DeserializeOwned>(kind: &str, data: Map<String, Value>) -> Result<T, WyomingError> {
    serde_json::from_value(Value::Object(data))
        .map_err(|e| WyomingError::Malformed(format!("bad data for \"{kind}\": {e}")))
}

fn to_map<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // Every type above serialises to an object; anything else would be a bug here.
        Ok(_) | Err(_) => {
            tracing::error!("wyoming event data did not serialise to a JSON object");
            Map::new()
        }
    }
}

/// Deserialises `null` as the type's default (the reference may write `"entities": null`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(kind: &str, data: Value, payload: Option<Vec<u8>>) -> Frame {
        Frame {
            kind: kind.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            payload,
        }
    }

    #[test]
    fn audio_chunk_with_null_timestamp_as_the_reference_writes_it() {
        let f = frame(
            "audio-chunk",
            json!({"rate": 22050, "width": 2, "channels": 1, "timestamp": null}),
            Some(vec![1, 0]),
        );
        let Event::AudioChunk(chunk) = Event::from_frame(f).unwrap() else {
            panic!("not a chunk");
        };
        assert_eq!(chunk.format().rate, 22050);
        assert_eq!(chunk.timestamp, None);
        assert_eq!(chunk.audio, vec![1, 0]);
    }

    #[test]
    fn known_type_with_bad_data_is_malformed() {
        let f = frame(
            "audio-chunk",
            json!({"rate": -1, "width": 2, "channels": 1}),
            None,
        );
        assert!(matches!(
            Event::from_frame(f),
            Err(WyomingError::Malformed(_))
        ));
        let f = frame("transcript", json!({}), None);
        assert!(Event::from_frame(f).is_err());
        let f = frame("synthesize", json!({"text": 3}), None);
        assert!(Event::from_frame(f).is_err());
    }

    #[test]
    fn unknown_type_is_kept() {
        let f = frame("select-program", json!({"name": "x"}), Some(vec![7]));
        let e = Event::from_frame(f.clone()).unwrap();
        assert_eq!(e.kind(), "select-program");
        assert_eq!(e.into_frame(), f);
    }

    #[test]
    fn round_trips() {
        let events = vec![
            Event::Describe,
            Event::Transcribe(Transcribe {
                language: Some("de".into()),
                ..Transcribe::default()
            }),
            Event::AudioStart(AudioStart {
                rate: 16000,
                width: 2,
                channels: 1,
                timestamp: Some(0),
            }),
            Event::AudioChunk(AudioChunk {
                rate: 16000,
                width: 2,
                channels: 1,
                timestamp: None,
                audio: vec![0, 1, 2, 3],
            }),
            Event::AudioStop(AudioStop::default()),
            Event::Transcript(Transcript {
                text: "hallo".into(),
                language: Some("de".into()),
                context: None,
            }),
            Event::TranscriptStart(TranscriptStart::default()),
            Event::TranscriptChunk(TranscriptChunk { text: "ha".into() }),
            Event::TranscriptStop,
            Event::Synthesize(Synthesize {
                text: "hi".into(),
                voice: Some(SynthesizeVoice {
                    name: Some("v".into()),
                    ..SynthesizeVoice::default()
                }),
                ..Synthesize::default()
            }),
            Event::SynthesizeStart(SynthesizeStart::default()),
            Event::SynthesizeChunk(SynthesizeChunk { text: "h".into() }),
            Event::SynthesizeStop,
            Event::SynthesizeStopped,
            Event::Recognize(Recognize {
                text: "x".into(),
                context: Some(json!({"a": 1})),
            }),
            Event::Intent(Intent {
                name: "HassTurnOn".into(),
                entities: vec![Entity {
                    name: "name".into(),
                    value: json!("lamp"),
                }],
                text: None,
                context: None,
            }),
            Event::NotRecognized(Reply::default()),
            Event::Handled(Reply::text("done")),
            Event::NotHandled(Reply::default()),
            Event::Ping(Ping {
                text: Some("p".into()),
            }),
            Event::Pong(Ping::default()),
            Event::Error(ErrorEvent::new("bad", "code")),
            Event::Info(Info::default()),
        ];
        for event in events {
            let frame = event.clone().into_frame();
            assert_eq!(frame.kind, event.kind());
            assert_eq!(Event::from_frame(frame).unwrap(), event);
        }
    }

    #[test]
    fn intent_entities_null_or_missing() {
        let f = frame("intent", json!({"name": "x", "entities": null}), None);
        let Event::Intent(i) = Event::from_frame(f).unwrap() else {
            panic!("not an intent");
        };
        assert!(i.entities.is_empty());
        let f = frame(
            "intent",
            json!({"name": "x", "entities": [{"name": "a"}]}),
            None,
        );
        let Event::Intent(i) = Event::from_frame(f).unwrap() else {
            panic!("not an intent");
        };
        assert_eq!(i.entities[0].value, Value::Null);
    }

    #[test]
    fn ping_from_reference_has_null_text() {
        let f = frame("ping", json!({"text": null}), None);
        assert_eq!(Event::from_frame(f).unwrap(), Event::Ping(Ping::default()));
    }
}
