//! Serena's engines behind the network servers: one [`Gateway`] implements both the
//! Wyoming handler ([`crate::wyoming::WyomingHandler`]) and the HTTP API backend
//! ([`crate::http::ApiBackend`]), so both protocols share the same models, the same store
//! owner ([`Service`]) and the same answers as `serena ask`.
//!
//! Every method is blocking (the servers call them on the blocking pool, behind their own
//! bounded queues). The speech model loads on first use and stays loaded; the language
//! model and tools live in the service's engines.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::audio::decode::Decoder;
use crate::audio::resample::Resampler;
use crate::control::Service;
use crate::http::{
    ApiBackend, ApiError, ChatMessage, ChatOutcome, ChatRole, FinishReason, ModelInfo,
    TranscribeRequest, Transcription,
};
use crate::models::{self, ModelKind};
use crate::power::ModelSlot;
use crate::router::{Routed, Router};
use crate::store::InputMode;
use crate::stt::{DecodeOptions, WhisperEngine};
use crate::wyoming::info::{
    Artifact, AsrProgram, Attribution, HandleProgram, Info, IntentProgram, Model, TtsProgram,
    TtsVoice,
};
use crate::wyoming::WyomingHandler;

/// The longest audio one request may carry, in seconds.
pub const MAX_AUDIO_SECONDS: usize = 30 * 60;

/// OpenAI's voice names: clients send one of them by default; they mean "the default voice".
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// The engines behind `serena serve`'s Wyoming and HTTP servers.
pub struct Gateway {
    service: Arc<Service>,
    /// The speech model, by spec; the memory manager may empty it (`serve` watches it).
    whisper: ModelSlot<WhisperEngine, String>,
    transcriptions: AtomicU64,
    syntheses: AtomicU64,
    answers: AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `service` (the store owner and its engines).
    pub fn new(service: Arc<Service>) -> Gateway {
        let ctx = service.context();
        let (dirs, catalog) = (ctx.dirs.clone(), ctx.catalog.clone());
        let flash_attn = ctx.config.stt.flash_attn;
        let whisper = ModelSlot::keyed("stt", ctx.config.power.idle_unload(), move |spec: &str| {
            let model = models::resolve(spec, ModelKind::Whisper, &dirs, &catalog)
                .map_err(|e| e.to_string())?;
            WhisperEngine::load_with(&model, flash_attn).map_err(|e| e.to_string())
        });
        Gateway {
            service,
            whisper,
            transcriptions: AtomicU64::new(0),
            syntheses: AtomicU64::new(0),
            answers: AtomicU64::new(0),
        }
    }

    fn config(&self) -> &crate::config::Config {
        &self.service.context().config
    }

    /// The speech model `spec` (default: `stt.model`), loaded once and kept.
    fn whisper(&self, spec: Option<&str>) -> Result<Arc<WhisperEngine>, String> {
        let ctx = self.service.context();
        let spec = match spec {
            // OpenAI clients send "whisper-1"; it means "your speech model".
            Some(s) if !s.is_empty() && s != "whisper-1" => s.to_string(),
            _ => ctx.config.stt.model.clone(),
        };
        let fetched = self.whisper.get_as_blocking(&spec)?;
        if let Some(took) = fetched.loaded {
            tracing::info!(model = %spec, load_ms = took.as_millis() as u64, "speech model loaded");
        }
        Ok(fetched.engine)
    }

    /// The speech model's slot, for the memory manager.
    pub fn whisper_slot(&self) -> &ModelSlot<WhisperEngine, String> {
        &self.whisper
    }

    fn decode_options(&self, language: Option<&str>) -> DecodeOptions {
        let mut opts = DecodeOptions::for_command(&self.config().stt);
        if let Some(language) = language {
            opts.language = Some(language.to_string());
        }
        opts
    }

    fn speak(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
    ) -> Result<(Vec<i16>, u32), String> {
        if text.trim().is_empty() {
            return Err("there is no text to speak".into());
        }
        let mut cfg = self.config().tts.clone();
        cfg.rate = ((cfg.rate as f32 * speed).round() as u32).clamp(80, 450);
        let asked =
            voice.filter(|v| !v.is_empty() && *v != "default" && !OPENAI_VOICES.contains(v));
        let speech = match asked {
            Some(v) => {
                let mut with_voice = cfg.clone();
                with_voice.voice = v.to_string();
                match crate::tts::from_config(&with_voice).and_then(|t| t.synthesize(text)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // A voice this machine does not have: the default one speaks instead.
                        tracing::info!(voice = v, error = %e, "unknown voice; using the default");
                        None
                    }
                }
            }
            None => None,
        };
        let speech = match speech {
            Some(s) => s,
            None => crate::tts::from_config(&cfg)
                .and_then(|t| t.synthesize(text))
                .map_err(|e| e.to_string())?,
        };
        self.syntheses.fetch_add(1, Ordering::Relaxed);
        let samples = speech
            .samples
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)
            .collect();
        Ok((samples, speech.sample_rate))
    }

    fn router(&self) -> Option<&Router> {
        self.service
            .engines()
            .router()
            .map_err(|e| tracing::warn!(error = %e, "the intent router failed to load"))
            .ok()
    }
}

fn to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

impl WyomingHandler for Gateway {
    fn info(&self) -> Info {
        let cfg = self.config();
        let attribution = Attribution::new("Serena", "https://github.com/serena-assistant/serena");
        let serena =
            |name: &str| Artifact::new(name, attribution.clone()).versioned(crate::VERSION);
        let language = if cfg.stt.language == "auto" {
            "en".to_string()
        } else {
            cfg.stt.language.clone()
        };
        let whisper = Attribution::new("whisper.cpp", "https://github.com/ggml-org/whisper.cpp");
        Info {
            asr: vec![AsrProgram::new(
                serena("serena-asr"),
                vec![Model {
                    artifact: Artifact::new(&cfg.stt.model, whisper)
                        .described(format!("Whisper {}", cfg.stt.model)),
                    languages: vec![language.clone()],
                }],
            )],
            tts: vec![TtsProgram {
                artifact: serena("serena-tts"),
                voices: vec![TtsVoice {
                    artifact: Artifact::new(
                        if cfg.tts.voice.is_empty() {
                            "default"
                        } else {
                            &cfg.tts.voice
                        },
                        attribution.clone(),
                    ),
                    languages: vec![language.clone()],
                    speakers: None,
                }],
                supports_synthesize_streaming: false,
            }],
            handle: vec![HandleProgram {
                artifact: serena("serena-assistant"),
                models: vec![Model {
                    artifact: serena("serena-router-llm"),
                    languages: vec![language.clone()],
                }],
                supports_handled_streaming: false,
                supports_home_control: false,
            }],
            intent: vec![IntentProgram {
                artifact: serena("serena-intents"),
                models: vec![Model {
                    artifact: serena("serena-router"),
                    languages: vec![language],
                }],
            }],
            wake: Vec::new(),
        }
    }

    fn transcribe(&self, pcm_16k_mono: &[i16], language: Option<&str>) -> Result<String, String> {
        let engine = self.whisper(None)?;
        // Satellites send one utterance: a command, sized to its length.
        let heard = crate::stt::command::transcribe_command(
            &engine,
            &to_f32(pcm_16k_mono),
            &self.decode_options(language),
        )
        .map_err(|e| e.to_string())?;
        self.transcriptions.fetch_add(1, Ordering::Relaxed);
        Ok(heard.text)
    }

    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<(Vec<i16>, u32), String> {
        self.speak(text, voice, 1.0)
    }

    fn recognize(&self, text: &str) -> Option<(String, Vec<(String, Value)>)> {
        match self.router()?.route(text) {
            Routed::Intent(m) => {
                let slots = match serde_json::to_value(&m.slots) {
                    Ok(Value::Object(map)) => map.into_iter().collect(),
                    _ => Vec::new(),
                };
                Some((m.intent.name().to_string(), slots))
            }
            Routed::NotUnderstood => None,
        }
    }

    fn handle(&self, text: &str) -> Result<Option<String>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let answer = self
            .service
            .answer(text, InputMode::Api, false)
            .map_err(|e| e.to_string())?;
        self.answers.fetch_add(1, Ordering::Relaxed);
        Ok((!answer.reply.is_empty()).then_some(answer.reply))
    }

    fn to_16k_mono(&self, samples: &[i16], rate: u32, channels: u16) -> Result<Vec<i16>, String> {
        let channels = usize::from(channels.max(1));
        let mono: Vec<f32> = samples
            .chunks(channels)
            .map(|frame| {
                frame.iter().map(|&s| f32::from(s)).sum::<f32>() / frame.len() as f32 / 32768.0
            })
            .collect();
        let mut out = Vec::with_capacity(mono.len() * 16_000 / rate.max(1) as usize + 16);
        let mut rs = Resampler::new(rate, 16_000).map_err(|e| e.to_string())?;
        rs.process(&mono, &mut out);
        rs.flush(&mut out);
        Ok(out
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect())
    }
}

impl ApiBackend for Gateway {
    fn transcribe(&self, req: TranscribeRequest) -> Result<Transcription, ApiError> {
        let name = PathBuf::from(if req.filename.is_empty() {
            "upload"
        } else {
            &req.filename
        });
        let ext = name.extension().map(|e| e.to_string_lossy().to_lowercase());
        let mut decoder =
            Decoder::from_reader_named(Box::new(Cursor::new(req.audio)), ext.as_deref(), &name)
                .map_err(|e| ApiError::bad_input(e.to_string()))?;
        let max = MAX_AUDIO_SECONDS * 16_000;
        let mut samples = Vec::new();
        loop {
            let n = decoder
                .read_16k_mono(&mut samples, 16_000 * 30)
                .map_err(|e| ApiError::bad_input(e.to_string()))?;
            if n == 0 {
                break;
            }
            if samples.len() > max {
                return Err(ApiError::bad_input(format!(
                    "the audio is longer than {} minutes",
                    MAX_AUDIO_SECONDS / 60
                )));
            }
        }
        let engine = self
            .whisper(req.model.as_deref())
            .map_err(ApiError::model)?;
        let mut opts = self.decode_options(req.language.as_deref());
        opts.translate = req.translate;
        opts.prompt = req.prompt.clone();
        opts.word_timestamps = req.word_timestamps;
        if let Some(t) = req.temperature {
            opts.temperature = t;
        }
        let (segments, language) = engine
            .transcribe(&samples, 0.0, &opts)
            .map_err(|e| ApiError::model(e.to_string()))?;
        self.transcriptions.fetch_add(1, Ordering::Relaxed);
        let text = segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcription {
            language,
            duration_s: samples.len() as f64 / 16_000.0,
            text,
            segments: segments
                .into_iter()
                .enumerate()
                .map(|(i, s)| crate::http::Segment {
                    id: i as u32,
                    start: s.start,
                    end: s.end,
                    text: s.text,
                    words: s.words.map(|ws| {
                        ws.into_iter()
                            .map(|w| crate::http::Word {
                                start: w.start,
                                end: w.end,
                                word: w.word,
                            })
                            .collect()
                    }),
                })
                .collect(),
        })
    }

    fn speech(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
    ) -> Result<(Vec<i16>, u32), ApiError> {
        self.speak(text, voice, speed).map_err(ApiError::model)
    }

    fn chat(
        &self,
        messages: &[ChatMessage],
        _max_tokens: Option<u32>,
        _temperature: Option<f32>,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ChatOutcome, ApiError> {
        let question = messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .map(|m| m.content.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad_input("no user message to answer"))?;
        let answer = self
            .service
            .answer(question, InputMode::Api, false)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.answers.fetch_add(1, Ordering::Relaxed);
        on_delta(&answer.reply);
        Ok(ChatOutcome {
            text: answer.reply,
            source: serde_json::to_value(answer.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            finish_reason: FinishReason::Stop,
            usage: None,
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        let cfg = self.config();
        [
            cfg.stt.model.clone(),
            cfg.llm.model.clone(),
            "whisper-1".into(),
        ]
        .into_iter()
        .map(|id| ModelInfo {
            id,
            owned_by: "serena".into(),
            created: 0,
        })
        .collect()
    }

    fn metrics(&self) -> Vec<(String, String, f64)> {
        let mut out = vec![
            (
                "serena_transcriptions_total".to_string(),
                "Transcriptions done by the speech model.".to_string(),
                self.transcriptions.load(Ordering::Relaxed) as f64,
            ),
            (
                "serena_syntheses_total".into(),
                "Replies synthesised to speech.".into(),
                self.syntheses.load(Ordering::Relaxed) as f64,
            ),
            (
                "serena_answers_total".into(),
                "Questions answered (router, online, local model or fallback).".into(),
                self.answers.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (kind, stats) in [
            ("stt", self.whisper.stats()),
            ("llm", self.service.engines().llm_slot().stats()),
        ] {
            out.push((
                format!("serena_model_loads_total{{kind=\"{kind}\"}}"),
                "Model loads (first use, and reloads after an unload).".into(),
                stats.loads as f64,
            ));
            out.push((
                format!("serena_model_unloads_total{{kind=\"{kind}\"}}"),
                "Models unloaded (idle, low memory, or replaced for the power profile).".into(),
                stats.unloads as f64,
            ));
            if let Some(took) = stats.last_load {
                out.push((
                    format!("serena_model_last_load_seconds{{kind=\"{kind}\"}}"),
                    "How long the last load of the model took.".into(),
                    took.as_secs_f64(),
                ));
            }
        }
        let stt = self.whisper.loaded_key();
        if let Some(name) = stt {
            out.push((
                format!(
                    "serena_model_loaded{{kind=\"stt\",model=\"{}\"}}",
                    escape(&name)
                ),
                "Models loaded now.".into(),
                1.0,
            ));
        }
        if let Some(name) = self.service.engines().llm_loaded() {
            out.push((
                format!(
                    "serena_model_loaded{{kind=\"llm\",model=\"{}\"}}",
                    escape(&name)
                ),
                "Models loaded now.".into(),
                1.0,
            ));
        }
        let profile = self
            .service
            .store()
            .setting_as::<crate::power::Profile>(crate::power::now::AUTO_SETTING)
            .ok()
            .flatten()
            .unwrap_or(crate::power::Profile::Performance);
        out.push((
            format!("serena_power_profile{{profile=\"{profile}\"}}"),
            "The power profile in force (1 for the current one).".into(),
            1.0,
        ));
        out
    }
}

fn escape(label: &str) -> String {
    label
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}
