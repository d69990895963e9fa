//! PCM helpers for the server: bytes to samples and back, channel downmix, and the
//! default (non-resampling) conversion to 16 kHz mono.

/// The sample rate handlers receive audio at.
pub const TARGET_RATE: u32 = 16_000;

/// Most channels accepted in incoming audio.
pub const MAX_CHANNELS: u16 = 8;

/// Highest sample rate accepted in incoming audio.
pub const MAX_RATE: u32 = 384_000;

/// Decodes little-endian 16-bit PCM. A trailing odd byte is ignored.
pub fn pcm16le_to_samples(bytes: &[u8]) -> Vec<i16> {
    let (pairs, _odd) = bytes.as_chunks::<2>();
    pairs.iter().map(|pair| i16::from_le_bytes(*pair)).collect()
}

/// Encodes samples as little-endian 16-bit PCM.
pub fn samples_to_pcm16le(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Averages interleaved channels into one. An incomplete last frame is dropped;
/// `channels` of 0 or 1 returns the samples unchanged.
pub fn downmix_to_mono(samples: &[i16], channels: u16) -> Vec<i16> {
    let channels = usize::from(channels);
    if channels <= 1 {
        return samples.to_vec();
    }
    samples
        .chunks_exact(channels)
        .map(|frame| {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            // The mean of i16 values is within i16 range.
            let mean = sum / channels as i32;
            i16::try_from(mean).unwrap_or(if mean < 0 { i16::MIN } else { i16::MAX })
        })
        .collect()
}

/// The default conversion behind
/// [`WyomingHandler::to_16k_mono`](super::server::WyomingHandler::to_16k_mono):
/// downmixes channels, but does not resample, so anything but 16 kHz is refused.
pub fn default_to_16k_mono(samples: &[i16], rate: u32, channels: u16) -> Result<Vec<i16>, String> {
    if rate != TARGET_RATE {
        return Err(format!(
            "audio at {rate} Hz is not supported (send {TARGET_RATE} Hz)"
        ));
    }
    Ok(downmix_to_mono(samples, channels))
}

/// Checks the format of incoming audio: 16-bit, 1 to [`MAX_CHANNELS`] channels, 1 Hz to
/// [`MAX_RATE`]. The error text is sent to the client.
pub fn check_input_format(rate: u32, width: u16, channels: u16) -> Result<(), String> {
    if width != 2 {
        return Err(format!(
            "sample width of {width} bytes is not supported (only 2, 16-bit PCM)"
        ));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(format!("{channels} channels are not supported"));
    }
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("a sample rate of {rate} Hz is not supported"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_round_trip() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN];
        let bytes = samples_to_pcm16le(&samples);
        assert_eq!(bytes.len(), 10);
        assert_eq!(pcm16le_to_samples(&bytes), samples);
        assert_eq!(pcm16le_to_samples(&bytes[..9]), samples[..4]);
    }

    #[test]
    fn downmix() {
        assert_eq!(downmix_to_mono(&[2, 4, -6, -8, 1], 2), vec![3, -7]);
        assert_eq!(
            downmix_to_mono(&[i16::MAX, i16::MAX, i16::MIN, i16::MIN], 2),
            vec![i16::MAX, i16::MIN]
        );
        assert_eq!(downmix_to_mono(&[1, 2, 3], 1), vec![1, 2, 3]);
    }

    #[test]
    fn default_conversion_refuses_resampling() {
        assert_eq!(default_to_16k_mono(&[1, 3], 16_000, 2), Ok(vec![2]));
        assert!(default_to_16k_mono(&[1, 3], 44_100, 2).is_err());
    }

    #[test]
    fn input_format_checks() {
        assert!(check_input_format(16_000, 2, 1).is_ok());
        assert!(check_input_format(16_000, 4, 1).is_err());
        assert!(check_input_format(16_000, 1, 1).is_err());
        assert!(check_input_format(16_000, 2, 0).is_err());
        assert!(check_input_format(0, 2, 1).is_err());
    }
}
