//! Playing speech on a real device (rodio), or writing it to a WAV file.
//!
//! Speech is resampled to the device's own rate with the project's band-limited resampler
//! before rodio sees it: rodio's built-in conversion audibly degrades speech.

use std::num::NonZero;
use std::path::Path;

use rodio::buffer::SamplesBuffer;
use rodio::{DeviceSinkBuilder, Player};

use super::devices::{self, DeviceError, Direction};
use super::resample::Resampler;

/// Play mono `samples` at `rate` on the output device `device` (`default` for the default)
/// and return when playback has finished.
///
/// # Errors
/// [`DeviceError`] when the device is missing or cannot be opened.
pub fn play(samples: &[f32], rate: u32, device: &str) -> Result<(), DeviceError> {
    let dev = devices::find(Direction::Output, device)?;
    let unusable = |reason: String| {
        DeviceError::Unusable {
        direction: Direction::Output,
        name: device.to_string(),
        reason: reason.trim_end_matches('.').to_string(),
        hint: "Use --output-file to write replies to a WAV file instead, or start a sound server (PulseAudio or PipeWire)",
    }
    };
    let mut sink = DeviceSinkBuilder::from_device(dev)
        .map(|b| {
            // The ALSA pulse plugin reports a stream of harmless I/O errors; keep them off
            // the user's terminal.
            b.with_error_callback(|e| tracing::trace!(error = %e, "output stream error"))
        })
        .and_then(|b| b.open_stream())
        .map_err(|e| unusable(e.to_string()))?;
    sink.log_on_drop(false);
    let device_rate = sink.config().sample_rate().get();
    let data = if device_rate == rate {
        samples.to_vec()
    } else {
        let mut r = Resampler::new(rate, device_rate).map_err(|e| unusable(e.to_string()))?;
        let mut out =
            Vec::with_capacity(samples.len() * device_rate as usize / rate.max(1) as usize + 1024);
        r.process(samples, &mut out);
        r.flush(&mut out);
        out
    };
    let player = Player::connect_new(sink.mixer());
    let rate = NonZero::new(device_rate).ok_or_else(|| unusable("device rate is 0".into()))?;
    player.append(SamplesBuffer::new(NonZero::<u16>::MIN, rate, data));
    player.sleep_until_end();
    Ok(())
}

/// Write mono `samples` at `rate` to a 16-bit WAV file.
///
/// # Errors
/// hound's error when the file cannot be written.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()
}
