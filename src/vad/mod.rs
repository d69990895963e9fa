//! Voice activity detection: Silero VAD through whisper.cpp.
//!
//! [`SileroVad::speech`] turns 16 kHz mono samples into speech spans in seconds. It is used
//! by `transcribe --vad` (whisper.cpp applies the same model inside its decoder) and, later,
//! by the live pipeline's end-of-speech detection.

use std::path::Path;

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use crate::models::{ModelError, Resolved};

/// A stretch of speech, in seconds from the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Span {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// Tuning for [`SileroVad::speech`].
#[derive(Clone, Copy, Debug)]
pub struct VadParams {
    /// Speech probability above which a frame is speech.
    pub threshold: f32,
    /// Shorter speech is ignored, milliseconds.
    pub min_speech_ms: u32,
    /// Shorter silences do not split speech, milliseconds.
    pub min_silence_ms: u32,
    /// Padding added on both sides of speech, milliseconds.
    pub speech_pad_ms: u32,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams {
            threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

/// VAD errors.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// whisper.cpp's VAD failed.
    #[error("voice activity detection failed: {0}")]
    Engine(String),
}

/// A loaded Silero model.
#[derive(Debug)]
pub struct SileroVad {
    ctx: WhisperVadContext,
}

impl SileroVad {
    /// Load a verified VAD model.
    ///
    /// # Errors
    /// [`VadError::Model`] if whisper.cpp refuses the file.
    pub fn load(model: &Resolved, threads: u32) -> Result<SileroVad, VadError> {
        crate::stt::install_log_hooks();
        let load_err = |reason: String| {
            VadError::Model(ModelError::Load {
                path: model.path.clone(),
                reason,
            })
        };
        let path = path_str(&model.path).ok_or_else(|| load_err("path is not UTF-8".into()))?;
        let mut params = WhisperVadContextParams::new();
        params.set_n_threads(threads.max(1) as i32);
        params.set_use_gpu(false);
        let ctx = WhisperVadContext::new(path, params).map_err(|e| load_err(e.to_string()))?;
        Ok(SileroVad { ctx })
    }

    /// Speech spans in `samples` (16 kHz mono).
    ///
    /// # Errors
    /// [`VadError::Engine`] if detection fails.
    pub fn speech(&mut self, samples: &[f32], params: &VadParams) -> Result<Vec<Span>, VadError> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = WhisperVadParams::new();
        p.set_threshold(params.threshold);
        p.set_min_speech_duration(params.min_speech_ms as i32);
        p.set_min_silence_duration(params.min_silence_ms as i32);
        p.set_speech_pad(params.speech_pad_ms as i32);
        let segments = self
            .ctx
            .segments_from_samples(p, samples)
            .map_err(|e| VadError::Engine(e.to_string()))?;
        let mut out = Vec::new();
        for i in 0..segments.num_segments() {
            if let (Some(t0), Some(t1)) = (
                segments.get_segment_start_timestamp(i),
                segments.get_segment_end_timestamp(i),
            ) {
                // whisper.cpp reports VAD times in centiseconds.
                out.push(Span {
                    start: f64::from(t0) / 100.0,
                    end: f64::from(t1) / 100.0,
                });
            }
        }
        Ok(out)
    }
}

fn path_str(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| !s.contains('\0'))
}
