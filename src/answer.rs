//! From a question to an answer: transcript → router → skill, or → language model →
//! fallback. This is the path `serena ask` takes; the live pipeline and the servers call
//! the same functions.
//!
//! Order: the router answers the commands it knows (source `router`); anything else goes
//! to the local language model when one is installed (`llm`); when none is, or it fails,
//! a local reply says plainly what is missing and how to fix it (`fallback`). Every answer
//! is recorded in the store's history with the source and per-stage timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::audio::decode;
use crate::config::Config;
use crate::llm::{EngineOptions, GenerateOptions, LlmEngine, Message};
use crate::models::{self, Catalog, ModelDirs, ModelKind};
use crate::router::{Routed, Router};
use crate::skills;
use crate::store::{HistoryEntry, InputMode, ReplySource, Store};
use crate::stt::{DecodeOptions, WhisperEngine};

/// What an answer needs.
#[derive(Clone, Debug)]
pub struct AnswerOptions<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Model search directories.
    pub dirs: &'a ModelDirs,
    /// The model catalog.
    pub catalog: &'a Catalog,
    /// The data directory (holds the store).
    pub data_dir: &'a Path,
    /// Override of `stt.model` for audio questions.
    pub stt_model: Option<&'a str>,
    /// The wall clock to answer with.
    pub now: SystemTime,
}

/// An answer, as `serena ask --json` prints it (and the control socket sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// What was asked (the transcript, for audio).
    pub transcript: String,
    /// The intent, when the router understood.
    pub intent: Option<String>,
    /// The intent's slots (and values the skill computed).
    pub slots: serde_json::Value,
    /// What Serena answers.
    pub reply: String,
    /// Who answered: `router`, `online`, `llm` or `fallback`.
    pub source: ReplySource,
    /// Milliseconds per stage.
    pub timings: BTreeMap<String, u64>,
}

/// Errors that stop an answer (everything else becomes a fallback reply).
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The audio file could not be decoded.
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    /// The speech model is missing or broken.
    #[error(transparent)]
    Model(#[from] models::ModelError),
    /// Speech recognition failed.
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    /// The store could not be opened or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The router's templates failed to load.
    #[error(transparent)]
    Router(#[from] crate::router::RouterError),
}

/// The store's directory inside the data directory.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Transcribe an audio file as a spoken command and answer it.
///
/// # Errors
/// [`AnswerError`] for a bad file, a missing model, or a store failure.
pub fn answer_audio(path: &Path, opts: &AnswerOptions<'_>) -> Result<Answer, AnswerError> {
    let (transcript, stt_timings) = transcribe_audio(path, opts)?;
    let store = Store::open(&store_dir(opts.data_dir))?;
    let mut answer = answer_in(&store, &transcript, InputMode::File, opts)?;
    answer.timings.extend(stt_timings);
    Ok(answer)
}

/// Transcribe an audio file as a spoken command: the transcript and the per-stage timings
/// (`decode_ms`, `stt_load_ms`, `stt_ms`). Touches no store, so a client can transcribe and
/// let the store's owner answer.
///
/// # Errors
/// [`AnswerError`] for a bad file or a missing or broken model.
pub fn transcribe_audio(
    path: &Path,
    opts: &AnswerOptions<'_>,
) -> Result<(String, BTreeMap<String, u64>), AnswerError> {
    let t = Instant::now();
    let samples = decode::decode_file_16k_mono(path)?;
    let decode_ms = t.elapsed().as_millis() as u64;
    let spec = opts.stt_model.unwrap_or(&opts.config.stt.model);
    let model = models::resolve(spec, ModelKind::Whisper, opts.dirs, opts.catalog)?;
    let t = Instant::now();
    let engine = WhisperEngine::load_with(&model, opts.config.stt.flash_attn)?;
    let load_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let stt = &opts.config.stt;
    let decode_opts = DecodeOptions {
        language: Some(stt.language.clone()),
        threads: if stt.threads > 0 {
            stt.threads
        } else {
            crate::stt::default_threads()
        },
        beam_size: 1,
        no_speech_threshold: stt.no_speech_threshold,
        ..DecodeOptions::default()
    };
    let (segments, _) = engine.transcribe(&samples, 0.0, &decode_opts)?;
    let stt_ms = t.elapsed().as_millis() as u64;
    let transcript = segments
        .iter()
        .map(|s| s.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let timings = BTreeMap::from([
        ("decode_ms".to_string(), decode_ms),
        ("stt_load_ms".to_string(), load_ms),
        ("stt_ms".to_string(), stt_ms),
    ]);
    Ok((transcript, timings))
}

/// Answer a typed question.
///
/// # Errors
/// [`AnswerError::Store`] if the store cannot be opened.
pub fn answer_text(text: &str, opts: &AnswerOptions<'_>) -> Result<Answer, AnswerError> {
    let store = Store::open(&store_dir(opts.data_dir))?;
    answer_in(&store, text, InputMode::Text, opts)
}

/// Answer `text` with an open store (the store's owner answers this way for its clients).
///
/// # Errors
/// [`AnswerError::Store`] if a store read or write fails; [`AnswerError::Router`] if the
/// router's templates fail to load.
pub fn answer_in(
    store: &Store,
    text: &str,
    mode: InputMode,
    opts: &AnswerOptions<'_>,
) -> Result<Answer, AnswerError> {
    let mut timings = BTreeMap::new();
    let t = Instant::now();
    let router = Router::for_user()?;
    let routed = router.route(text);
    timings.insert("route_us".into(), t.elapsed().as_micros() as u64);
    let profile = store
        .setting_as::<String>(skills::system::PROFILE_SETTING)?
        .unwrap_or_else(|| "performance".into());

    let (intent, mut slots, reply, source) = match &routed {
        Routed::Intent(m) => {
            let t = Instant::now();
            let env = skills::Env {
                store,
                now: opts.now,
                power_profile: &profile,
                models_loaded: &[],
            };
            let reply = skills::handle(m, &env).map_err(|skills::SkillError::Store(e)| e)?;
            timings.insert("skill_ms".into(), t.elapsed().as_millis() as u64);
            let mut slots = serde_json::to_value(&m.slots).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut slots {
                for (k, v) in reply.data {
                    map.entry(k).or_insert(v);
                }
            }
            (
                Some(m.intent.name().to_string()),
                slots,
                reply.text,
                ReplySource::Router,
            )
        }
        Routed::NotUnderstood if text.trim().is_empty() => (
            None,
            serde_json::json!({}),
            "I didn't hear anything.".to_string(),
            ReplySource::Fallback,
        ),
        Routed::NotUnderstood => {
            let t = Instant::now();
            let (reply, source) = ask_llm(text, opts);
            timings.insert("llm_ms".into(), t.elapsed().as_millis() as u64);
            (None, serde_json::json!({}), reply, source)
        }
    };
    if slots.is_null() {
        slots = serde_json::json!({});
    }
    store.append_history(HistoryEntry {
        id: 0,
        time_ms: crate::store::to_unix_ms(opts.now),
        mode,
        transcript: text.to_string(),
        intent: intent.clone(),
        slots: slots.clone(),
        reply: reply.clone(),
        source,
        timings: timings.clone(),
        power_profile: profile,
    })?;
    store.flush()?;
    Ok(Answer {
        transcript: text.to_string(),
        intent,
        slots,
        reply,
        source,
        timings,
    })
}

/// The local model's answer, or a fallback that says what is missing.
fn ask_llm(text: &str, opts: &AnswerOptions<'_>) -> (String, ReplySource) {
    let cfg = &opts.config.llm;
    let model = match models::resolve(&cfg.model, ModelKind::Llm, opts.dirs, opts.catalog) {
        Ok(m) => m,
        Err(e) => {
            tracing::info!(error = %e, "no language model; answering with the fallback");
            return (
                format!(
                    "I can only help with timers, lists, notes, the time and the system for now: \
                     no language model is installed. Install one with: serena models pull {}",
                    opts.catalog
                        .get(&cfg.model)
                        .map_or("qwen2.5-0.5b-instruct", |e| e.name.as_str())
                ),
                ReplySource::Fallback,
            );
        }
    };
    let threads = if cfg.threads > 0 {
        cfg.threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    };
    let result = LlmEngine::load(
        &model,
        EngineOptions {
            context: cfg.context,
            threads,
            gpu_layers: cfg.gpu_layers,
        },
    )
    .and_then(|engine| {
        engine.generate(
            &[
                Message::new("system", cfg.system_prompt.clone()),
                Message::new("user", text),
            ],
            &GenerateOptions {
                max_tokens: cfg.max_tokens,
                temperature: cfg.temperature,
                seed: 1234,
            },
            |_| true,
        )
    });
    match result {
        Ok(g) if !g.text.trim().is_empty() => (g.text.trim().to_string(), ReplySource::Llm),
        Ok(_) => ("I have no answer to that.".into(), ReplySource::Fallback),
        Err(e) => {
            tracing::warn!(error = %e, "the language model failed; answering with the fallback");
            (
                format!("My language model failed ({e}), so I can't answer that right now."),
                ReplySource::Fallback,
            )
        }
    }
}

/// Errors while speaking.
#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    /// Synthesis failed.
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
    /// The WAV file could not be written.
    #[error("cannot write {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's error.
        source: hound::Error,
    },
}

/// Speak `text`: to `output_file` if given; else to the configured speaker; and when the
/// speaker is not usable, to `<data dir>/last-reply.wav`. Returns the file written, if any.
///
/// # Errors
/// [`SpeakError`] when synthesis fails or the file cannot be written.
pub fn speak(
    text: &str,
    config: &Config,
    output_file: Option<&Path>,
    data_dir: &Path,
) -> Result<Option<PathBuf>, SpeakError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let tts = crate::tts::from_config(&config.tts)?;
    let speech = tts.synthesize(text)?;
    let write = |path: &Path| -> Result<Option<PathBuf>, SpeakError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::audio::playback::write_wav(path, &speech.samples, speech.sample_rate).map_err(
            |source| SpeakError::Wav {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Ok(Some(path.to_path_buf()))
    };
    if let Some(path) = output_file {
        return write(path);
    }
    match crate::audio::playback::play(
        &speech.samples,
        speech.sample_rate,
        &config.audio.output_device,
    ) {
        Ok(()) => Ok(None),
        Err(e) => {
            tracing::debug!(error = %e, "no usable speaker; writing the reply to a file");
            let written = write(&data_dir.join("last-reply.wav"))?;
            // Data files are the user's only (like the store).
            #[cfg(unix)]
            if let Some(path) = &written {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(written)
        }
    }
}
