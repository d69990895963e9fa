//! Speech to text: the whisper.cpp engine (through whisper-rs) and its guards.
//!
//! [`WhisperEngine`] owns a loaded model. [`WhisperEngine::transcribe`] runs one buffer of
//! 16 kHz mono samples and returns cleaned [`Segment`]s: segments whisper itself marks as
//! probably silent are dropped, bracketed non-speech markers (`[BLANK_AUDIO]`, `(music)`)
//! are removed, and repetition loops are cut. Long inputs are windowed by the caller
//! (`transcribe`), which passes each window's offset so timestamps stay continuous.
//!
//! The engine never sees an unchecked file: models are verified by
//! [`crate::models::format::inspect`] in [`crate::models::resolve`] first.

pub mod clean;
pub mod command;

use std::path::Path;
use std::sync::Once;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::models::{ModelError, Resolved};
pub use crate::transcribe::format::{Segment, Word};

/// Errors from the speech engine.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// whisper.cpp failed while decoding.
    #[error("whisper.cpp failed: {0}")]
    Engine(String),
}

/// How to decode one buffer.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// `None` detects the language (multilingual models only).
    pub language: Option<String>,
    /// Translate to English.
    pub translate: bool,
    /// CPU threads.
    pub threads: u32,
    /// 1 is greedy; more is beam search.
    pub beam_size: u32,
    /// Initial temperature; whisper.cpp raises it on failure (temperature fallback).
    pub temperature: f32,
    /// Disable temperature fallback (used for short live commands, where it can stall).
    pub no_fallback: bool,
    /// Text that conditions the decoder (names, spelling).
    pub prompt: Option<String>,
    /// Word-level timestamps and probabilities.
    pub word_timestamps: bool,
    /// Maximum segment length in characters (0: no limit).
    pub max_len: u32,
    /// Drop segments whose no-speech probability exceeds this.
    pub no_speech_threshold: f32,
    /// Encoder audio context (0: the full 30 s window). Short commands can use less.
    pub audio_ctx: u32,
    /// Force a single segment (live commands).
    pub single_segment: bool,
    /// Cap on text tokens per segment (0: none). Guards reduced-context loops.
    pub max_tokens: u32,
    /// Silero VAD model (whisper.cpp format): transcribe only the speech it finds.
    pub vad_model: Option<std::path::PathBuf>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            language: Some("en".into()),
            translate: false,
            threads: default_threads(),
            beam_size: 5,
            temperature: 0.0,
            no_fallback: false,
            prompt: None,
            word_timestamps: false,
            max_len: 0,
            no_speech_threshold: 0.6,
            audio_ctx: 0,
            single_segment: false,
            max_tokens: 0,
            vad_model: None,
        }
    }
}

impl DecodeOptions {
    /// Settings for a spoken command under `[stt]`: its language, threads and no-speech
    /// threshold, greedy decoding.
    pub fn for_command(stt: &crate::config::Stt) -> DecodeOptions {
        DecodeOptions {
            language: Some(stt.language.clone()),
            threads: if stt.threads > 0 {
                stt.threads
            } else {
                default_threads()
            },
            beam_size: 1,
            no_speech_threshold: stt.no_speech_threshold,
            ..DecodeOptions::default()
        }
    }
}

/// whisper-cli's default thread count: min(4, available cores).
pub fn default_threads() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(4) as u32
}

static LOG_HOOKS: Once = Once::new();

/// Route whisper.cpp's and ggml's log lines into `tracing` (target `whisper_rs`).
pub fn install_log_hooks() {
    LOG_HOOKS.call_once(whisper_rs::install_logging_hooks);
}

/// A loaded whisper.cpp model.
pub struct WhisperEngine {
    ctx: WhisperContext,
    name: String,
    multilingual: bool,
}

impl std::fmt::Debug for WhisperEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperEngine")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WhisperEngine {
    /// Load a verified model.
    ///
    /// # Errors
    /// [`SttError::Model`] with [`ModelError::Load`] if whisper.cpp refuses the file.
    pub fn load(model: &Resolved) -> Result<WhisperEngine, SttError> {
        Self::load_with(model, true)
    }

    /// Load a verified model, choosing flash attention (`stt.flash_attn`).
    ///
    /// # Errors
    /// [`SttError::Model`] with [`ModelError::Load`] if whisper.cpp refuses the file.
    pub fn load_with(model: &Resolved, flash_attn: bool) -> Result<WhisperEngine, SttError> {
        install_log_hooks();
        let _span = tracing::info_span!("stt_load", model = %model.path.display()).entered();
        let path = path_str(&model.path)?;
        let mut params = WhisperContextParameters::default();
        params.use_gpu(cfg!(any(
            feature = "metal",
            feature = "cuda",
            feature = "vulkan"
        )));
        params.flash_attn(flash_attn);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| ModelError::Load {
            path: model.path.clone(),
            reason: e.to_string(),
        })?;
        let multilingual = ctx.is_multilingual();
        let name = model.name.clone().unwrap_or_else(|| {
            model
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(WhisperEngine {
            ctx,
            name,
            multilingual,
        })
    }

    /// The model's name (catalog name or file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the model understands languages other than English.
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Transcribe `samples` (16 kHz mono). Timestamps are shifted by `offset_s`.
    /// Returns the cleaned segments and the detected or given language.
    ///
    /// # Errors
    /// [`SttError::Engine`] if whisper.cpp fails.
    pub fn transcribe(
        &self,
        samples: &[f32],
        offset_s: f64,
        opts: &DecodeOptions,
    ) -> Result<(Vec<Segment>, String), SttError> {
        let (raw, lang) = self.transcribe_raw(samples, offset_s, opts)?;
        Ok((clean::clean(raw, opts.no_speech_threshold), lang))
    }

    /// [`WhisperEngine::transcribe`] without the hallucination guards: what whisper.cpp
    /// decoded, segment by segment.
    ///
    /// # Errors
    /// As [`WhisperEngine::transcribe`].
    pub fn transcribe_raw(
        &self,
        samples: &[f32],
        offset_s: f64,
        opts: &DecodeOptions,
    ) -> Result<(Vec<clean::RawSegment>, String), SttError> {
        let engine = |e: whisper_rs::WhisperError| SttError::Engine(e.to_string());
        let mut state = self.ctx.create_state().map_err(engine)?;
        let strategy = if opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: opts.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 5 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_translate(opts.translate);
        let language = match (&opts.language, self.multilingual) {
            (_, false) => Some("en"),
            (Some(l), true) if l != "auto" => Some(l.as_str()),
            _ => None,
        };
        params.set_language(language.or(Some("auto")));
        params.set_detect_language(false);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_temperature(opts.temperature);
        if opts.no_fallback {
            params.set_temperature_inc(0.0);
        }
        params.set_token_timestamps(opts.word_timestamps);
        if opts.max_len > 0 {
            params.set_max_len(opts.max_len as i32);
            params.set_split_on_word(true);
        }
        if opts.audio_ctx > 0 {
            params.set_audio_ctx(opts.audio_ctx as i32);
        }
        params.set_single_segment(opts.single_segment);
        if opts.max_tokens > 0 {
            params.set_max_tokens(opts.max_tokens as i32);
        }
        if let Some(prompt) = opts.prompt.as_deref().filter(|p| !p.is_empty()) {
            params.set_initial_prompt(prompt);
        }
        let vad_path = match &opts.vad_model {
            Some(p) => Some(path_str(p)?.to_string()),
            None => None,
        };
        if let Some(vad) = vad_path.as_deref() {
            // whisper-rs asserts the path is set before VAD is enabled.
            params.set_vad_model_path(Some(vad));
            params.enable_vad(true);
        }
        state.full(params, samples).map_err(engine)?;

        let lang_id = state.full_lang_id_from_state();
        let lang = whisper_rs::get_lang_str(lang_id)
            .map(str::to_string)
            .unwrap_or_else(|| language.unwrap_or("en").to_string());
        let mut segments = Vec::new();
        for seg in state.as_iter() {
            let text = seg.to_str_lossy().map_err(engine)?.into_owned();
            let start = offset_s + seg.start_timestamp() as f64 / 100.0;
            let end = offset_s + seg.end_timestamp() as f64 / 100.0;
            let no_speech = seg.no_speech_probability();
            let avg_logprob = self.avg_logprob(&seg);
            let words = if opts.word_timestamps {
                Some(self.words(&seg, offset_s))
            } else {
                None
            };
            segments.push(clean::RawSegment {
                start,
                end,
                text,
                no_speech,
                avg_logprob,
                words,
            });
        }
        Ok((segments, lang))
    }

    /// Mean log-probability of the segment's text tokens (whisper's `avg_logprob`).
    fn avg_logprob(&self, seg: &whisper_rs::WhisperSegment<'_>) -> f32 {
        let eot = self.ctx.token_eot();
        let (mut sum, mut n) = (0.0f32, 0u32);
        for i in 0..seg.n_tokens() {
            if let Some(token) = seg.get_token(i) {
                if token.token_id() < eot {
                    sum += token.token_probability().max(1e-10).ln();
                    n += 1;
                }
            }
        }
        if n == 0 {
            0.0
        } else {
            sum / n as f32
        }
    }

    fn words(&self, seg: &whisper_rs::WhisperSegment<'_>, offset_s: f64) -> Vec<Word> {
        let eot = self.ctx.token_eot();
        let mut words: Vec<Word> = Vec::new();
        for i in 0..seg.n_tokens() {
            let Some(token) = seg.get_token(i) else {
                continue;
            };
            if token.token_id() >= eot {
                continue; // special and timestamp tokens
            }
            let Ok(text) = token.to_str_lossy() else {
                continue;
            };
            let data = token.token_data();
            let start = offset_s + data.t0 as f64 / 100.0;
            let end = offset_s + data.t1 as f64 / 100.0;
            let p = token.token_probability();
            // A token that starts with a space begins a new word; others continue one.
            match words.last_mut() {
                Some(last) if !text.starts_with(' ') && !text.is_empty() => {
                    last.word.push_str(&text);
                    last.end = end.max(last.end);
                    last.p = last.p.min(p);
                }
                _ => {
                    let word = text.trim_start().to_string();
                    if !word.is_empty() {
                        words.push(Word {
                            start,
                            end,
                            word,
                            p,
                        });
                    }
                }
            }
        }
        words
    }
}

fn path_str(path: &Path) -> Result<&str, SttError> {
    path.to_str().ok_or_else(|| {
        SttError::Model(ModelError::Load {
            path: path.to_path_buf(),
            reason: "the path is not valid UTF-8".into(),
        })
    })
}
