//! Streaming, band-limited sample-rate conversion of mono audio.
//!
//! [`Resampler`] wraps rubato's synchronous FFT resampler ([`rubato::Fft`]) and turns it into a
//! push-style stream: feed any number of samples with [`Resampler::process`], in chunks of any
//! size, then call [`Resampler::flush`] once at the end of the stream. The output is
//!
//! * band-limited (anti-aliased) — samples are never simply dropped or repeated;
//! * delay-compensated — the filter's group delay is trimmed from the start, so an event at
//!   `t` seconds in the input is at `t` seconds in the output;
//! * exactly `round(n_in * out_rate / in_rate)` samples long after [`Resampler::flush`];
//! * independent of how the input was chunked (one big slice or many tiny ones give
//!   bit-identical output).
//!
//! After warm-up, [`Resampler::process`] does not allocate: all internal buffers are sized at
//! construction. The only growth is of the caller's output `Vec` (reserve capacity up front
//! to avoid that too, e.g. in a real-time capture callback).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Lowest input or output rate accepted by [`Resampler::new`], in Hz.
pub const MIN_RATE: u32 = 1_000;
/// Highest input or output rate accepted by [`Resampler::new`], in Hz.
pub const MAX_RATE: u32 = 768_000;
/// Default number of input frames per FFT block: about 21 ms at 48 kHz, which keeps the added
/// latency low enough for live microphone capture.
pub const DEFAULT_CHUNK: usize = 1024;

/// Why a [`Resampler`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A sample rate is outside [`MIN_RATE`]`..=`[`MAX_RATE`].
    #[error("unsupported sample rate {rate} Hz (supported: {MIN_RATE} to {MAX_RATE} Hz)")]
    UnsupportedRate {
        /// The rejected rate.
        rate: u32,
    },
    /// rubato refused the configuration.
    #[error("cannot resample from {in_rate} Hz to {out_rate} Hz: {reason}")]
    Construction {
        /// Input rate in Hz.
        in_rate: u32,
        /// Output rate in Hz.
        out_rate: u32,
        /// rubato's explanation.
        reason: String,
    },
}

/// A streaming mono resampler from `in_rate` to `out_rate`. See the [module docs](self).
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal: samples are copied through untouched.
    engine: Option<Engine>,
    /// Input frames accepted since construction or the last flush.
    consumed: u64,
    /// Output frames handed to the caller since construction or the last flush.
    emitted: u64,
}

/// The FFT resampler plus the fixed-size buffers it reads from and writes to.
struct Engine {
    fft: Fft<f32>,
    /// Input frames waiting for a full block; always `chunk_in` long, `pending_len` used.
    pending: Vec<f32>,
    pending_len: usize,
    /// rubato's output for one block; always `chunk_out` long.
    block_out: Vec<f32>,
    /// Output frames still to drop at the start of the stream (the filter delay).
    to_skip: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("passthrough", &self.engine.is_none())
            .field("consumed", &self.consumed)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl Resampler {
    /// Creates a resampler from `in_rate` to `out_rate` Hz with the default block size.
    ///
    /// # Errors
    /// [`ResampleError::UnsupportedRate`] if either rate is outside
    /// [`MIN_RATE`]`..=`[`MAX_RATE`]; [`ResampleError::Construction`] if rubato rejects the pair.
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self, ResampleError> {
        Self::with_chunk_size(in_rate, out_rate, DEFAULT_CHUNK)
    }

    /// Like [`Resampler::new`] with roughly `chunk` input frames per FFT block (rounded up to
    /// what the rate ratio allows). Larger blocks give a slightly sharper anti-aliasing filter
    /// at the cost of latency (about one block plus half a block of filter delay).
    ///
    /// # Errors
    /// As [`Resampler::new`].
    pub fn with_chunk_size(
        in_rate: u32,
        out_rate: u32,
        chunk: usize,
    ) -> Result<Self, ResampleError> {
        for rate in [in_rate, out_rate] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(ResampleError::UnsupportedRate { rate });
            }
        }
        let engine = if in_rate == out_rate {
            None
        } else {
            Some(Engine::new(in_rate, out_rate, chunk.max(1))?)
        };
        Ok(Resampler {
            in_rate,
            out_rate,
            engine,
            consumed: 0,
            emitted: 0,
        })
    }

    /// Input sample rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output sample rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.out_rate
    }

    /// True when the rates are equal and samples are copied through untouched.
    pub fn is_passthrough(&self) -> bool {
        self.engine.is_none()
    }

    /// Number of output samples a stream of `input_len` input samples produces once flushed:
    /// `round(input_len * out_rate / in_rate)`.
    pub fn expected_output_len(&self, input_len: u64) -> u64 {
        scale_len(input_len, self.in_rate, self.out_rate)
    }

    /// Resamples `input` (mono, any length, including zero) and appends whatever output is
    /// ready to `out`. Output lags the input by up to one block until [`Resampler::flush`].
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.consumed = self.consumed.saturating_add(input.len() as u64);
        match &mut self.engine {
            None => {
                out.extend_from_slice(input);
                self.emitted = self.emitted.saturating_add(input.len() as u64);
            }
            Some(engine) => {
                let mut rest = input;
                while !rest.is_empty() {
                    let taken = engine.push(rest);
                    rest = rest.get(taken..).unwrap_or_default();
                    if engine.is_block_full() {
                        self.emitted = self.emitted.saturating_add(engine.run_block(out));
                    }
                }
            }
        }
    }

    /// Ends the stream: pushes the buffered tail through the filter, appends it to `out`, and
    /// trims the total output to exactly [`Resampler::expected_output_len`] of all input seen.
    /// The resampler is then reset and ready for a new, unrelated stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let target = self.expected_output_len(self.consumed);
        if let Some(engine) = &mut self.engine {
            let start_len = out.len();
            while self.emitted < target {
                engine.pad_block();
                self.emitted = self.emitted.saturating_add(engine.run_block(out));
            }
            let excess = usize::try_from(self.emitted - target).unwrap_or(usize::MAX);
            let appended = out.len() - start_len;
            out.truncate(out.len() - excess.min(appended));
        }
        self.reset();
    }

    /// Discards all buffered input and filter state, starting a new stream.
    pub fn reset(&mut self) {
        if let Some(engine) = &mut self.engine {
            engine.reset();
        }
        self.consumed = 0;
        self.emitted = 0;
    }
}

impl Engine {
    fn new(in_rate: u32, out_rate: u32, chunk: usize) -> Result<Self, ResampleError> {
        let fft = Fft::<f32>::new(
            in_rate as usize,
            out_rate as usize,
            chunk,
            1,
            FixedSync::Both,
        )
        .map_err(|err| ResampleError::Construction {
            in_rate,
            out_rate,
            reason: err.to_string(),
        })?;
        let chunk_in = fft.input_frames_next();
        let chunk_out = fft.output_frames_next();
        let to_skip = fft.output_delay();
        Ok(Engine {
            fft,
            pending: vec![0.0; chunk_in],
            pending_len: 0,
            block_out: vec![0.0; chunk_out],
            to_skip,
        })
    }

    /// Copies as much of `input` as fits in the pending block; returns how many samples.
    fn push(&mut self, input: &[f32]) -> usize {
        let free = self.pending.get_mut(self.pending_len..).unwrap_or_default();
        let n = free.len().min(input.len());
        free[..n].copy_from_slice(&input[..n]);
        self.pending_len += n;
        n
    }

    fn is_block_full(&self) -> bool {
        self.pending_len == self.pending.len()
    }

    /// Fills the rest of the pending block with silence (end of stream).
    fn pad_block(&mut self) {
        if let Some(rest) = self.pending.get_mut(self.pending_len..) {
            rest.fill(0.0);
        }
        self.pending_len = self.pending.len();
    }

    /// Resamples the (full) pending block, appends the output minus any remaining start-up
    /// delay to `out`, and returns how many samples were appended.
    fn run_block(&mut self, out: &mut Vec<f32>) -> u64 {
        let produced = match self.resample_block() {
            Ok(n) => n,
            Err(err) => {
                // Cannot happen: the buffers are sized from the resampler's own figures.
                debug_assert!(false, "rubato rejected a correctly sized block: {err}");
                tracing::error!("resampler failed, substituting silence: {err}");
                self.block_out.fill(0.0);
                self.block_out.len()
            }
        };
        self.pending_len = 0;
        let block = self.block_out.get(..produced).unwrap_or_default();
        let skip = self.to_skip.min(block.len());
        self.to_skip -= skip;
        let kept = block.get(skip..).unwrap_or_default();
        out.extend_from_slice(kept);
        kept.len() as u64
    }

    fn resample_block(&mut self) -> Result<usize, String> {
        let frames_in = self.pending.len();
        let frames_out = self.block_out.len();
        let input =
            InterleavedSlice::new(&self.pending[..], 1, frames_in).map_err(|e| e.to_string())?;
        let mut output = InterleavedSlice::new_mut(&mut self.block_out[..], 1, frames_out)
            .map_err(|e| e.to_string())?;
        let (_, written) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| e.to_string())?;
        Ok(written)
    }

    fn reset(&mut self) {
        self.fft.reset();
        self.pending_len = 0;
        self.to_skip = self.fft.output_delay();
    }
}

/// `round(len * to / from)` without overflow.
fn scale_len(len: u64, from: u32, to: u32) -> u64 {
    if from == 0 {
        return 0;
    }
    let num = u128::from(len) * u128::from(to);
    let den = u128::from(from);
    u64::try_from((num + den / 2) / den).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn resample_all(input: &[f32], in_rate: u32, out_rate: u32, chunk: usize) -> Vec<f32> {
        let mut rs = Resampler::new(in_rate, out_rate).expect("valid rates");
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            rs.process(piece, &mut out);
        }
        rs.flush(&mut out);
        out
    }

    fn sine(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Frequency estimated from upward zero crossings over the middle of the signal.
    fn zero_crossing_freq(x: &[f32], rate: u32) -> f32 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let crossings: Vec<usize> = mid
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] <= 0.0 && w[1] > 0.0)
            .map(|(i, _)| i)
            .collect();
        let first = *crossings.first().expect("signal has crossings");
        let last = *crossings.last().expect("signal has crossings");
        (crossings.len() - 1) as f32 * rate as f32 / (last - first) as f32
    }

    fn peak_index(x: &[f32]) -> usize {
        x.iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
            .expect("non-empty")
    }

    const RATES: [u32; 7] = [8_000, 11_025, 22_050, 32_000, 44_100, 48_000, 96_000];

    #[test]
    fn output_length_matches_ratio() {
        for &rate in &RATES {
            for secs in [0.0, 0.01, 0.37, 2.0] {
                let n = (rate as f64 * secs) as usize;
                let input = vec![0.1f32; n];
                let out = resample_all(&input, rate, 16_000, 4096);
                let expected = (n as f64 * 16_000.0 / rate as f64).round() as usize;
                assert_eq!(out.len(), expected, "rate {rate}, {n} input samples");
            }
        }
    }

    #[test]
    fn passthrough_is_identity() {
        let input = sine(440.0, 16_000, 0.5);
        let mut rs = Resampler::new(16_000, 16_000).unwrap();
        assert!(rs.is_passthrough());
        let mut out = Vec::new();
        rs.process(&input, &mut out);
        rs.flush(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn tone_frequency_is_preserved() {
        for &rate in &RATES {
            let out = resample_all(&sine(440.0, rate, 1.0), rate, 16_000, 1000);
            let f = zero_crossing_freq(&out, 16_000);
            assert!((f - 440.0).abs() < 1.0, "rate {rate}: measured {f} Hz");
            // Amplitude survives (no big passband loss).
            let peak = out[1000..15000].iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((peak - 0.5).abs() < 0.02, "rate {rate}: peak {peak}");
        }
    }

    #[test]
    fn content_above_output_nyquist_is_removed() {
        // A 12 kHz tone cannot exist at 16 kHz; a naive decimator would alias it to 4 kHz.
        let out = resample_all(&sine(12_000.0, 48_000, 1.0), 48_000, 16_000, 512);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / out.len() as f32).sqrt();
        assert!(rms < 0.005, "aliased energy, rms {rms}");
    }

    #[test]
    fn delay_is_compensated() {
        for &rate in &RATES {
            let mut input = vec![0.0f32; rate as usize * 2];
            input[rate as usize] = 1.0; // click at exactly t = 1.0 s
            let out = resample_all(&input, rate, 16_000, 333);
            let t = peak_index(&out) as f64 / 16_000.0;
            assert!((t - 1.0).abs() <= 0.002, "rate {rate}: click at {t} s");
        }
    }

    #[test]
    fn chunking_does_not_change_output() {
        let input = sine(300.0, 44_100, 0.8);
        let whole = resample_all(&input, 44_100, 16_000, input.len());
        for chunk in [1, 7, 160, 441, 1024, 4097] {
            assert_eq!(
                resample_all(&input, 44_100, 16_000, chunk),
                whole,
                "chunk {chunk}"
            );
        }
        // Irregular chunk sizes too.
        let mut rs = Resampler::new(44_100, 16_000).unwrap();
        let mut out = Vec::new();
        let mut rest = &input[..];
        let mut size = 1;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            rs.process(&rest[..n], &mut out);
            rest = &rest[n..];
            size = (size * 7 + 3) % 2000 + 1;
        }
        rs.flush(&mut out);
        assert_eq!(out, whole);
    }

    #[test]
    fn flush_resets_for_the_next_stream() {
        let input = sine(440.0, 8_000, 0.3);
        let mut rs = Resampler::new(8_000, 16_000).unwrap();
        let mut first = Vec::new();
        rs.process(&input, &mut first);
        rs.flush(&mut first);
        let mut second = Vec::new();
        rs.process(&input, &mut second);
        rs.flush(&mut second);
        assert_eq!(first, second);
    }

    #[test]
    fn no_allocation_after_warm_up() {
        let mut rs = Resampler::new(48_000, 16_000).unwrap();
        let mut out = Vec::with_capacity(100_000);
        let input = sine(440.0, 48_000, 0.1);
        rs.process(&input, &mut out);
        let cap = out.capacity();
        let ptr = out.as_ptr();
        for _ in 0..10 {
            rs.process(&input, &mut out);
        }
        assert_eq!((out.capacity(), out.as_ptr()), (cap, ptr));
    }

    #[test]
    fn rejects_absurd_rates() {
        for rate in [0, 1, 999, 768_001, u32::MAX] {
            assert!(matches!(
                Resampler::new(rate, 16_000),
                Err(ResampleError::UnsupportedRate { .. })
            ));
        }
        // Awkward but legal: co-prime with 16 kHz.
        let out = resample_all(&sine(440.0, 44_101, 0.5), 44_101, 16_000, 999);
        assert_eq!(out.len(), 8_000);
    }

    #[test]
    fn scale_len_rounds_and_never_overflows() {
        assert_eq!(scale_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(scale_len(3, 48_000, 16_000), 1);
        assert_eq!(scale_len(u64::MAX, 1_000, 768_000), u64::MAX);
        assert_eq!(scale_len(5, 0, 16_000), 0);
    }
}
