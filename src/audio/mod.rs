//! Audio input for Serena: decoding files and streams to the 16 kHz mono `f32` samples that
//! Whisper consumes, and the resampler shared with live microphone capture.
//!
//! * [`decode`]: streaming, bounded-memory decoding of WAV, MP3, FLAC, Ogg Vorbis, AAC/M4A and
//!   more (via symphonia), with channel downmixing and resampling.
//! * [`resample`]: a band-limited, delay-compensated streaming resampler (via rubato).
//! * [`write_wav_16k_mono`]: saves samples as a 16-bit WAV, e.g. for debugging captures.

use std::path::Path;

pub mod capture;
pub mod decode;
pub mod devices;
pub mod playback;
pub mod resample;

/// The sample rate Whisper models expect, in Hz.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Writes `samples` (nominally in `-1.0..=1.0`) as a 16 kHz mono 16-bit PCM WAV file.
/// Values outside that range are clamped; NaN is written as silence.
///
/// # Errors
/// Returns hound's error if the file cannot be created or written.
pub fn write_wav_16k_mono(path: &Path, samples: &[f32]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: WHISPER_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &sample in samples {
        writer.write_sample(f32_to_i16(sample))?;
    }
    writer.finalize()
}

/// Converts a float sample to 16-bit PCM, clamping out-of-range values (NaN becomes 0).
fn f32_to_i16(sample: f32) -> i16 {
    if sample.is_nan() {
        return 0;
    }
    // The clamp keeps the product within i16 range, so the cast cannot saturate unexpectedly.
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_i16_clamps_and_rounds() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(1.0), i16::MAX);
        assert_eq!(f32_to_i16(7.5), i16::MAX);
        assert_eq!(f32_to_i16(-1.0), -i16::MAX);
        assert_eq!(f32_to_i16(-3.0), -i16::MAX);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f32_to_i16(f32::INFINITY), i16::MAX);
        assert_eq!(f32_to_i16(0.5), 16384);
    }

    #[test]
    fn wav_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.wav");
        let samples: Vec<f32> = (0..1600).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        write_wav_16k_mono(&path, &samples).expect("write");
        let back = decode::decode_file_16k_mono(&path).expect("decode");
        assert_eq!(back.len(), samples.len());
        let max_err = samples
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-4, "max error {max_err}");
    }
}
