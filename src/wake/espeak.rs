//! espeak-ng as a subprocess, for wake-word examples made from text.
//!
//! The program runs with an argument vector (never a shell) and the text after `--`, so it is
//! never read as options. It writes a WAV file into a private temporary directory, which is
//! read back and resampled to 16 kHz with [`crate::audio::resample::Resampler`].

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{WakeError, SAMPLE_RATE};
use crate::audio::resample::Resampler;

/// The espeak-ng program looked up on `PATH`.
pub const ESPEAK_PROGRAM: &str = "espeak-ng";

/// Longest synthesized example accepted, seconds (a wake word is a word or two).
const MAX_SECONDS: u32 = 10;

/// Whether `program` (normally [`ESPEAK_PROGRAM`]) can be run.
pub fn espeak_available(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says `text` with espeak-ng `program` in `voice` at `wpm` words per minute and returns
/// 16 kHz mono samples.
///
/// # Errors
/// [`WakeError::EspeakMissing`] if the program cannot be found; [`WakeError::Espeak`] if it
/// fails (an unknown voice, for example) or writes something that is not a usable WAV;
/// [`WakeError::Resample`] if its sample rate is absurd.
pub fn synthesize_16k(
    program: &Path,
    voice: &str,
    wpm: u32,
    text: &str,
) -> Result<Vec<f32>, WakeError> {
    let fail = |reason: String| WakeError::Espeak {
        voice: voice.to_string(),
        wpm,
        reason,
    };
    let dir = tempfile::tempdir().map_err(|e| fail(format!("cannot make a temporary dir: {e}")))?;
    let wav = dir.path().join("example.wav");
    let output = Command::new(program)
        .arg("-v")
        .arg(voice)
        .arg("-s")
        .arg(wpm.to_string())
        .arg("-w")
        .arg(&wav)
        .arg("--")
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => WakeError::EspeakMissing,
            _ => fail(e.to_string()),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.trim();
        return Err(fail(if reason.is_empty() {
            output.status.to_string()
        } else {
            reason.to_string()
        }));
    }
    let (samples, rate) = read_wav(&wav).map_err(fail)?;
    let mut resampler = Resampler::new(rate, SAMPLE_RATE)?;
    let mut out = Vec::with_capacity(
        usize::try_from(resampler.expected_output_len(samples.len() as u64)).unwrap_or(0),
    );
    resampler.process(&samples, &mut out);
    resampler.flush(&mut out);
    Ok(out)
}

/// Reads espeak-ng's WAV (16-bit mono PCM in practice; any integer or float PCM accepted,
/// channels averaged).
fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), String> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("unreadable output: {e}"))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    if u64::from(reader.duration()) > u64::from(spec.sample_rate) * u64::from(MAX_SECONDS) {
        return Err(format!("output longer than {MAX_SECONDS} s"));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("unreadable output: {e}"))?,
        hound::SampleFormat::Int => {
            let scale = 2f32.powi(i32::from(spec.bits_per_sample.clamp(1, 32)) - 1);
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("unreadable output: {e}"))?
        }
    };
    let mono = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    Ok((mono, spec.sample_rate))
}
