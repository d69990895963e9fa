//! Speech synthesis: the [`Synthesizer`] trait and its engines.
//!
//! - [`Espeak`]: espeak-ng run as a program with an argument vector (never a shell); the
//!   default on Linux. The text is passed after `--`, so it can never be read as options.
//! - [`Say`]: macOS `say`.
//!
//! Engines return [`Speech`] (mono samples and their rate); playing or writing them is
//! the caller's business ([`crate::audio`]).

use std::io::Cursor;
use std::process::{Command, Stdio};

use crate::config::{Tts as TtsConfig, TtsEngine};

/// Synthesized audio.
#[derive(Clone, Debug)]
pub struct Speech {
    /// Mono samples in -1..1.
    pub samples: Vec<f32>,
    /// Sample rate, Hz.
    pub sample_rate: u32,
}

impl Speech {
    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Synthesis errors.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The engine's program is not installed.
    #[error("{program} is not installed ({hint})")]
    Missing {
        /// The program.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// The engine ran but failed.
    #[error("{program} failed: {reason}")]
    Failed {
        /// The program.
        program: &'static str,
        /// Why.
        reason: String,
    },
    /// Speech is turned off.
    #[error("speech synthesis is turned off (tts.engine = \"none\")")]
    Disabled,
}

/// A speech synthesizer.
pub trait Synthesizer: Send + Sync {
    /// A short name for logs and `serena status`.
    fn name(&self) -> &str;
    /// Synthesize `text`.
    ///
    /// # Errors
    /// [`TtsError`] if the engine is missing or fails.
    fn synthesize(&self, text: &str) -> Result<Speech, TtsError>;
}

/// espeak-ng as a subprocess.
#[derive(Clone, Debug)]
pub struct Espeak {
    voice: String,
    rate: u32,
}

impl Espeak {
    /// An espeak-ng synthesizer with this voice (empty: `en-us`) and words per minute.
    pub fn new(voice: &str, rate: u32) -> Espeak {
        Espeak {
            voice: if voice.is_empty() {
                "en-us".into()
            } else {
                voice.into()
            },
            rate,
        }
    }
}

const ESPEAK_HINT: &str =
    "Debian/Ubuntu: sudo apt-get install espeak-ng; macOS: brew install espeak-ng";

impl Synthesizer for Espeak {
    fn name(&self) -> &str {
        "espeak-ng"
    }

    fn synthesize(&self, text: &str) -> Result<Speech, TtsError> {
        let output = Command::new("espeak-ng")
            .args([
                "--stdout",
                "-v",
                &self.voice,
                "-s",
                &self.rate.to_string(),
                "--",
            ])
            .arg(text)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TtsError::Missing {
                    program: "espeak-ng",
                    hint: ESPEAK_HINT,
                },
                _ => TtsError::Failed {
                    program: "espeak-ng",
                    reason: e.to_string(),
                },
            })?;
        if !output.status.success() {
            return Err(TtsError::Failed {
                program: "espeak-ng",
                reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        read_wav_bytes(&output.stdout).map_err(|reason| TtsError::Failed {
            program: "espeak-ng",
            reason,
        })
    }
}

/// macOS `say`.
#[derive(Clone, Debug)]
pub struct Say {
    voice: String,
    rate: u32,
}

impl Synthesizer for Say {
    fn name(&self) -> &str {
        "say"
    }

    fn synthesize(&self, text: &str) -> Result<Speech, TtsError> {
        let dir = tempfile::tempdir().map_err(|e| TtsError::Failed {
            program: "say",
            reason: e.to_string(),
        })?;
        let out = dir.path().join("say.wav");
        let mut cmd = Command::new("say");
        cmd.arg("--data-format=LEI16@22050")
            .arg("-o")
            .arg(&out)
            .args(["-r", &self.rate.to_string()]);
        if !self.voice.is_empty() {
            cmd.args(["-v", &self.voice]);
        }
        let status = cmd
            .arg("--")
            .arg(text)
            .status()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TtsError::Missing {
                    program: "say",
                    hint: "say is part of macOS",
                },
                _ => TtsError::Failed {
                    program: "say",
                    reason: e.to_string(),
                },
            })?;
        if !status.success() {
            return Err(TtsError::Failed {
                program: "say",
                reason: status.to_string(),
            });
        }
        let bytes = std::fs::read(&out).map_err(|e| TtsError::Failed {
            program: "say",
            reason: e.to_string(),
        })?;
        read_wav_bytes(&bytes).map_err(|reason| TtsError::Failed {
            program: "say",
            reason,
        })
    }
}

/// The synthesizer the configuration asks for.
///
/// # Errors
/// [`TtsError::Disabled`] when `engine = "none"`.
pub fn from_config(cfg: &TtsConfig) -> Result<Box<dyn Synthesizer>, TtsError> {
    let engine = match cfg.engine {
        TtsEngine::Auto if cfg!(target_os = "macos") => TtsEngine::Say,
        TtsEngine::Auto => TtsEngine::Espeak,
        other => other,
    };
    match engine {
        TtsEngine::Espeak | TtsEngine::Auto => Ok(Box::new(Espeak::new(&cfg.voice, cfg.rate))),
        TtsEngine::Say => Ok(Box::new(Say {
            voice: cfg.voice.clone(),
            rate: cfg.rate,
        })),
        TtsEngine::None => Err(TtsError::Disabled),
    }
}

/// Parse a WAV held in memory into mono f32.
///
/// espeak-ng writes to a pipe, so its header carries a placeholder data length
/// (0x7fffffff or 0); the samples are read up to the end of the buffer in that case.
fn read_wav_bytes(bytes: &[u8]) -> Result<Speech, String> {
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("the output is not a WAV file".into());
    }
    match hound::WavReader::new(Cursor::new(bytes)) {
        Ok(reader) if reader.len() as usize * 2 + 44 <= bytes.len() => {
            let spec = reader.spec();
            let channels = usize::from(spec.channels.max(1));
            let samples: Vec<f32> = match spec.sample_format {
                hound::SampleFormat::Int => reader
                    .into_samples::<i16>()
                    .filter_map(Result::ok)
                    .map(|s| f32::from(s) / 32768.0)
                    .collect(),
                hound::SampleFormat::Float => reader
                    .into_samples::<f32>()
                    .filter_map(Result::ok)
                    .collect(),
            };
            Ok(Speech {
                samples: downmix(&samples, channels),
                sample_rate: spec.sample_rate,
            })
        }
        _ => raw_pcm16_after_header(bytes),
    }
}

/// Fallback for streamed WAVs: find the `data` chunk and read 16-bit PCM to the end.
fn raw_pcm16_after_header(bytes: &[u8]) -> Result<Speech, String> {
    let rate = bytes
        .get(24..28)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("short WAV header")?;
    let channels = bytes
        .get(22..24)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        .ok_or("short WAV header")?
        .max(1);
    let start = bytes
        .windows(4)
        .position(|w| w == b"data")
        .map(|p| p + 8)
        .ok_or("no data chunk")?;
    let pcm = bytes.get(start..).unwrap_or_default();
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    Ok(Speech {
        samples: downmix(&samples, channels),
        sample_rate: rate,
    })
}

fn downmix(samples: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return samples.to_vec();
    }
    samples
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espeak_speaks_and_treats_text_as_text() {
        let tts = Espeak::new("", 175);
        let speech = tts
            .synthesize("--help me set a timer")
            .expect("espeak-ng must be installed: apt-get install espeak-ng");
        assert!(speech.duration_s() > 0.8, "{} s", speech.duration_s());
        assert_eq!(speech.sample_rate, 22050);
        let peak = speech.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak > 0.05, "peak {peak}");
    }

    #[test]
    fn not_a_wav_is_an_error() {
        assert!(read_wav_bytes(b"hello").is_err());
        assert!(read_wav_bytes(&[0u8; 100]).is_err());
    }
}
