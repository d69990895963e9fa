//! The `info` event: which services, models and voices a Wyoming server offers.
//!
//! Shapes follow the reference `wyoming/info.py` (not the README, which says `models` for
//! TTS where the code and Home Assistant use `voices`). `description` and `version` are
//! always written, as `null` when unset, as the reference's `asdict` does; every list is
//! written even when empty. Reading tolerates missing optional fields.

use serde::{Deserialize, Serialize};

/// Who made a model or program, and where it comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// Creator.
    pub name: String,
    /// Where it is from.
    pub url: String,
}

impl Attribution {
    /// An attribution.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Attribution {
        Attribution {
            name: name.into(),
            url: url.into(),
        }
    }
}

/// Fields every program, model and voice has (`Artifact` in the reference).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Unique name.
    pub name: String,
    /// Creator and source.
    pub attribution: Attribution,
    /// Whether it is installed (Home Assistant ignores programs and models that are not).
    pub installed: bool,
    /// Human-readable description (Home Assistant shows it as the voice name).
    #[serde(default)]
    pub description: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
}

impl Artifact {
    /// An installed artifact without description or version.
    pub fn new(name: impl Into<String>, attribution: Attribution) -> Artifact {
        Artifact {
            name: name.into(),
            attribution,
            installed: true,
            description: None,
            version: None,
        }
    }

    /// Sets the description.
    pub fn described(mut self, description: impl Into<String>) -> Artifact {
        self.description = Some(description.into());
        self
    }

    /// Sets the version.
    pub fn versioned(mut self, version: impl Into<String>) -> Artifact {
        self.version = Some(version.into());
        self
    }
}

/// A model of an ASR, intent or handle program: an artifact plus its languages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Supported languages (e.g. `"en"`, `"de"`); empty means any.
    #[serde(default)]
    pub languages: Vec<String>,
}

/// A speech-to-text program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsrProgram {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its models.
    #[serde(default)]
    pub models: Vec<Model>,
    /// Whether `transcript-start` / `-chunk` / `-stop` are sent. The server sets this
    /// from [`ServerOptions::stream_transcript`](super::server::ServerOptions).
    #[serde(default)]
    pub supports_transcript_streaming: bool,
    /// Whether the client must detect the end of speech itself.
    #[serde(default = "yes")]
    pub requires_external_vad: bool,
    /// Whether input audio should have automatic gain.
    #[serde(default = "yes")]
    pub prefers_auto_gain_enabled: bool,
    /// Whether input audio should have noise reduction.
    #[serde(default = "yes")]
    pub prefers_noise_reduction_enabled: bool,
}

impl AsrProgram {
    /// A program with these models and the reference defaults for the flags.
    pub fn new(artifact: Artifact, models: Vec<Model>) -> AsrProgram {
        AsrProgram {
            artifact,
            models,
            supports_transcript_streaming: false,
            requires_external_vad: true,
            prefers_auto_gain_enabled: true,
            prefers_noise_reduction_enabled: true,
        }
    }
}

/// One speaker of a multi-speaker voice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtsVoiceSpeaker {
    /// Speaker name.
    pub name: String,
}

/// A text-to-speech voice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtsVoice {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Languages it speaks.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Its speakers, if several.
    #[serde(default)]
    pub speakers: Option<Vec<TtsVoiceSpeaker>>,
}

/// A text-to-speech program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtsProgram {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its voices.
    #[serde(default)]
    pub voices: Vec<TtsVoice>,
    /// Whether `synthesize-start` / `-chunk` / `-stop` are understood. The server does
    /// understand them, but only speaks once the whole text has arrived.
    #[serde(default)]
    pub supports_synthesize_streaming: bool,
}

/// An intent recognition program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentProgram {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its models.
    #[serde(default)]
    pub models: Vec<Model>,
}

/// An intent handling program (a conversation agent for Home Assistant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleProgram {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its models.
    #[serde(default)]
    pub models: Vec<Model>,
    /// Whether `handled-start` / `-chunk` / `-stop` are sent (this server does not).
    #[serde(default)]
    pub supports_handled_streaming: bool,
    /// Whether handling may control devices.
    #[serde(default)]
    pub supports_home_control: bool,
}

/// A wake word model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeModel {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Languages.
    #[serde(default)]
    pub languages: Vec<String>,
    /// The wake phrase.
    #[serde(default)]
    pub phrase: Option<String>,
}

/// A wake word program (described for completeness; the server does not detect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeProgram {
    /// Name, attribution, ...
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its models.
    #[serde(default)]
    pub models: Vec<WakeModel>,
}

/// The data of an `info` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Speech-to-text programs.
    #[serde(default)]
    pub asr: Vec<AsrProgram>,
    /// Text-to-speech programs.
    #[serde(default)]
    pub tts: Vec<TtsProgram>,
    /// Intent handling programs.
    #[serde(default)]
    pub handle: Vec<HandleProgram>,
    /// Intent recognition programs.
    #[serde(default)]
    pub intent: Vec<IntentProgram>,
    /// Wake word programs.
    #[serde(default)]
    pub wake: Vec<WakeProgram>,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_like_the_reference() {
        let info = Info {
            tts: vec![TtsProgram {
                artifact: Artifact::new("serena-tts", Attribution::new("Serena", "https://x")),
                voices: vec![TtsVoice {
                    artifact: Artifact::new("v", Attribution::new("a", "b")).described("Voice"),
                    languages: vec!["en".into()],
                    speakers: None,
                }],
                supports_synthesize_streaming: false,
            }],
            ..Info::default()
        };
        let value = serde_json::to_value(&info).unwrap();
        assert_eq!(
            value,
            json!({
                "asr": [], "handle": [], "intent": [], "wake": [],
                "tts": [{
                    "name": "serena-tts",
                    "attribution": {"name": "Serena", "url": "https://x"},
                    "installed": true, "description": null, "version": null,
                    "voices": [{
                        "name": "v", "attribution": {"name": "a", "url": "b"},
                        "installed": true, "description": "Voice", "version": null,
                        "languages": ["en"], "speakers": null
                    }],
                    "supports_synthesize_streaming": false
                }]
            })
        );
        let back: Info = serde_json::from_value(value).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn asr_flags_default_like_the_reference() {
        let program: AsrProgram = serde_json::from_value(json!({
            "name": "a", "attribution": {"name": "n", "url": "u"}, "installed": true,
            "models": []
        }))
        .unwrap();
        assert!(!program.supports_transcript_streaming);
        assert!(program.requires_external_vad);
        assert_eq!(program.artifact.description, None);
    }
}
