//! Live microphone capture: any input device, delivered as 16 kHz mono frames of 30 ms.
//!
//! Capture is split between two threads that share nothing but a lock-free ring buffer and
//! a few atomic counters:
//!
//! * **The audio callback** (cpal's thread, possibly real-time). It converts the device's
//!   native samples (any [`cpal::SampleFormat`] but DSD) to `f32`, averages the channels to
//!   mono and pushes the result into a preallocated single-producer single-consumer ring
//!   ([`rtrb`]). It never allocates, locks, blocks or panics: samples that do not fit are
//!   dropped and counted ([`CaptureStats::overrun_samples`]). The stream's error callback
//!   counts errors and records the first fatal one for the consumer.
//! * **The consumer** (the thread that owns [`Capture`]). [`Capture::next_frame`] pops what
//!   the callback wrote, resamples it to 16 kHz with the project's [`Resampler`] and cuts
//!   480-sample frames. When the ring is empty it sleeps in steps of [`POLL_INTERVAL`]: the
//!   callback never wakes anyone, which is what keeps it real-time safe, and polling every
//!   10 ms costs next to nothing (measured: well under 1 % of one core, resampling included).
//!
//! Failure is always an error on the consumer side, never a hang: a fatal stream error
//! ([`CaptureError::Stream`]), a stream whose callback thread ended
//! ([`CaptureError::Ended`]), or a device that stops delivering audio
//! ([`CaptureError::Stalled`]). Frames already captured are delivered before the error.
//!
//! With no sound server, cpal still lists ALSA's `default` device; [`Capture::open`] therefore
//! reads the device's default configuration and builds and starts the stream before it
//! returns, so a missing device is a clear [`CaptureError::NoDevice`] at open time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait as _, StreamTrait};
use cpal::{SampleFormat, SizedSample, I24, U24};
use rtrb::{Consumer, Producer, RingBuffer};

use super::devices::{self, DeviceError, Direction};
use super::resample::{ResampleError, Resampler};
use super::WHISPER_SAMPLE_RATE;

/// Samples per frame: 30 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 480;

/// The duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(30);

/// How long [`Capture::next_frame`] sleeps between looks at an empty ring buffer.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The largest ring buffer [`CaptureOptions::ring_seconds`] may ask for, in seconds.
pub const MAX_RING_SECONDS: f32 = 60.0;

/// Device samples moved from the ring buffer to the resampler per step.
const POP_CHUNK: usize = 4096;

/// How to open the microphone.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureOptions {
    /// The input device: `None` (or `default`) for the host's default, otherwise a name as
    /// `serena devices` shows it (the id such as `alsa:pulse`, the id without the host, or
    /// the description).
    pub device: Option<String>,
    /// Capacity of the ring buffer between the audio callback and the consumer, in seconds
    /// of device audio (default 2). A consumer that falls further behind loses the newest
    /// audio, counted in [`CaptureStats::overrun_samples`].
    pub ring_seconds: f32,
    /// Report [`CaptureError::Stalled`] when the device delivers nothing for this long
    /// (default 5 s; `None`: wait forever). Start-up takes 0.3 to 0.9 s through PulseAudio.
    pub stall_timeout: Option<Duration>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            device: None,
            ring_seconds: 2.0,
            stall_timeout: Some(Duration::from_secs(5)),
        }
    }
}

/// Counters and the device's native format, from [`Capture::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureStats {
    /// Device frames (one mono sample each after the down-mix) dropped because the ring
    /// buffer was full: the consumer fell more than `ring_seconds` behind.
    pub overrun_samples: u64,
    /// Data callbacks so far.
    pub callbacks: u64,
    /// Device frames the callbacks received (including the dropped ones).
    pub device_frames: u64,
    /// Errors the stream reported, fatal or not (e.g. the device's own overruns).
    pub stream_errors: u64,
    /// The device's native sample rate, Hz.
    pub device_rate: u32,
    /// The device's native channel count.
    pub device_channels: u16,
    /// The device's native sample format.
    pub device_format: SampleFormat,
}

/// Capture errors.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device cannot be opened (no sound card, no sound server, ...).
    #[error(
        "no audio input device (`{name}`: {reason}); use --input-file or start a sound server"
    )]
    NoDevice {
        /// The device tried.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A device was asked for by name and none has it.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The options are out of range.
    #[error("invalid capture options: {0}")]
    InvalidOptions(String),
    /// The device's native sample format is one capture cannot convert (DSD).
    #[error("the input device `{name}` delivers {format} samples, which capture cannot convert")]
    UnsupportedFormat {
        /// The device.
        name: String,
        /// Its native format.
        format: SampleFormat,
    },
    /// The device's native rate cannot be resampled to 16 kHz.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// The stream reported a fatal error (e.g. the device or the sound server went away).
    #[error("the audio input `{name}` failed: {source}; reopen it, or use --input-file")]
    Stream {
        /// The device.
        name: String,
        /// The first fatal error the stream reported.
        #[source]
        source: cpal::Error,
    },
    /// The stream's callback thread ended without reporting an error.
    #[error("the audio input `{name}` stopped; reopen it, or use --input-file")]
    Ended {
        /// The device.
        name: String,
    },
    /// The device delivered nothing for [`CaptureOptions::stall_timeout`].
    #[error("the audio input `{name}` delivered no audio for {} ms; is the device still there?", waited.as_millis())]
    Stalled {
        /// The device.
        name: String,
        /// How long nothing came.
        waited: Duration,
    },
}

/// State the audio thread shares with the consumer: counters and the first fatal error.
#[derive(Debug, Default)]
struct Shared {
    callbacks: AtomicU64,
    device_frames: AtomicU64,
    overrun_samples: AtomicU64,
    stream_errors: AtomicU64,
    failure: OnceLock<cpal::Error>,
}

impl Shared {
    /// The stream's error callback. cpal calls it on its audio thread; it only counts and,
    /// for a fatal error, stores the first one (storing moves the error in, no allocation).
    fn on_error(&self, err: cpal::Error) {
        self.stream_errors.fetch_add(1, Ordering::Relaxed);
        if is_fatal(err.kind()) {
            // A second fatal error is dropped: the first one is the cause.
            let _ = self.failure.set(err);
        }
    }
}

/// Whether a stream error ends capture. Overruns, refused real-time priority and a default
/// device that was rerouted leave the stream running; everything else does not.
fn is_fatal(kind: cpal::ErrorKind) -> bool {
    !matches!(
        kind,
        cpal::ErrorKind::Xrun | cpal::ErrorKind::RealtimeDenied | cpal::ErrorKind::DeviceChanged
    )
}

/// A sample format the callback converts to `f32` in `-1.0..=1.0`, without panicking.
trait ToF32: SizedSample {
    fn to_f32(self) -> f32;
}

impl ToF32 for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl ToF32 for f64 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

impl ToF32 for i8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self) / 128.0
    }
}

impl ToF32 for i16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self) / 32_768.0
    }
}

impl ToF32 for I24 {
    #[inline]
    fn to_f32(self) -> f32 {
        // 24 significant bits in an i32; sign-extend from bit 23 whatever the top byte holds.
        (self.inner().wrapping_shl(8) >> 8) as f32 / 8_388_608.0
    }
}

impl ToF32 for i32 {
    #[inline]
    fn to_f32(self) -> f32 {
        (f64::from(self) / 2_147_483_648.0) as f32
    }
}

impl ToF32 for i64 {
    #[inline]
    fn to_f32(self) -> f32 {
        (self as f64 / 9_223_372_036_854_775_808.0) as f32
    }
}

impl ToF32 for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        (f32::from(self) - 128.0) / 128.0
    }
}

impl ToF32 for u16 {
    #[inline]
    fn to_f32(self) -> f32 {
        (f32::from(self) - 32_768.0) / 32_768.0
    }
}

impl ToF32 for U24 {
    #[inline]
    fn to_f32(self) -> f32 {
        ((self.inner() & 0x00FF_FFFF) as f32 - 8_388_608.0) / 8_388_608.0
    }
}

impl ToF32 for u32 {
    #[inline]
    fn to_f32(self) -> f32 {
        ((f64::from(self) - 2_147_483_648.0) / 2_147_483_648.0) as f32
    }
}

impl ToF32 for u64 {
    #[inline]
    fn to_f32(self) -> f32 {
        ((self as f64 - 9_223_372_036_854_775_808.0) / 9_223_372_036_854_775_808.0) as f32
    }
}

/// The producer half, owned by the data callback.
struct Writer {
    producer: Producer<f32>,
    channels: usize,
    shared: Arc<Shared>,
}

impl Writer {
    /// The data callback: down-mix `data` to mono and push it into the ring. Real-time safe:
    /// no allocation, no lock, no panic; what does not fit is counted, not waited for.
    #[inline]
    fn on_data<T: ToF32>(&mut self, data: &cpal::Data) {
        match data.as_slice::<T>() {
            Some(samples) => self.write(samples),
            None => {
                // cpal built the stream for T, so this cannot happen; fail loudly, not
                // silently. A message-less error with a static message does not allocate.
                self.shared.stream_errors.fetch_add(1, Ordering::Relaxed);
                let _ = self.shared.failure.set(cpal::Error::with_message(
                    cpal::ErrorKind::InvalidInput,
                    "the device delivered samples in an unexpected format",
                ));
            }
        }
    }

    /// Down-mixes interleaved `samples` to mono and pushes as many frames as fit.
    #[inline]
    fn write<T: ToF32>(&mut self, samples: &[T]) {
        let channels = self.channels.max(1);
        let frames = samples.len() / channels;
        let fits = frames.min(self.producer.slots());
        let written = match self.producer.write_chunk_uninit(fits) {
            Ok(chunk) => {
                let scale = 1.0 / channels as f32;
                let mono = samples
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().fold(0.0f32, |sum, &s| sum + s.to_f32()) * scale);
                chunk.fill_from_iter(mono)
            }
            // Cannot happen: `fits` is at most the free space and only this side adds data.
            Err(_) => 0,
        };
        let shared = &self.shared;
        shared.callbacks.fetch_add(1, Ordering::Relaxed);
        shared
            .device_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
        let dropped = frames.saturating_sub(written);
        if dropped > 0 {
            shared
                .overrun_samples
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }
}

/// The consumer half: ring buffer → resampler → 480-sample frames.
struct Reader {
    consumer: Consumer<f32>,
    resampler: Resampler,
    /// Device samples popped from the ring, on their way to the resampler.
    scratch: Box<[f32]>,
    /// Resampled samples not yet handed out as a frame.
    out: Vec<f32>,
}

impl Reader {
    fn new(consumer: Consumer<f32>, resampler: Resampler) -> Self {
        let per_chunk = resampler.expected_output_len(POP_CHUNK as u64) as usize;
        Reader {
            consumer,
            resampler,
            scratch: vec![0.0; POP_CHUNK].into_boxed_slice(),
            // A frame's remainder, one chunk's output and one resampler block of lag.
            out: Vec::with_capacity(FRAME_SAMPLES + 2 * per_chunk + 4096),
        }
    }

    /// The next frame, if enough resampled audio is waiting.
    fn take_frame(&mut self) -> Option<[f32; FRAME_SAMPLES]> {
        let ready = self.out.get(..FRAME_SAMPLES)?;
        let mut frame = [0.0; FRAME_SAMPLES];
        frame.copy_from_slice(ready);
        self.out.drain(..FRAME_SAMPLES);
        Some(frame)
    }

    /// Moves up to [`POP_CHUNK`] samples from the ring through the resampler; false when the
    /// ring was empty.
    fn fill(&mut self) -> bool {
        let (popped, _) = self.consumer.pop_partial_slice(&mut self.scratch);
        if popped.is_empty() {
            return false;
        }
        self.resampler.process(popped, &mut self.out);
        true
    }
}

/// An open microphone. See the [module docs](self).
///
/// `Capture` is `Send` (cpal 0.18's streams are `Send` on every platform), so it can be
/// opened on one thread and read on another; the audio itself runs on cpal's own thread.
/// Dropping it stops the stream.
pub struct Capture {
    /// Kept alive for the callback; declared first so it stops before the ring goes away.
    _stream: cpal::Stream,
    reader: Reader,
    shared: Arc<Shared>,
    name: String,
    rate: u32,
    channels: u16,
    format: SampleFormat,
    stall_timeout: Option<Duration>,
    /// The callback count last seen, and when it last changed.
    seen_callbacks: u64,
    progress_at: Instant,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("device", &self.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Capture {
    /// Opens the input device in its native configuration and starts capturing.
    ///
    /// Returns once the stream is running; the first frame arrives after the device's
    /// start-up time (0.3 to 0.9 s through PulseAudio) plus about 50 ms of resampler lag.
    ///
    /// # Errors
    /// [`CaptureError::NoDevice`] when the device cannot be opened (with no sound server,
    /// ALSA's `default` is listed but unusable), [`CaptureError::Device`] when no device has
    /// the given name, [`CaptureError::InvalidOptions`], [`CaptureError::UnsupportedFormat`],
    /// or [`CaptureError::Resample`] for a rate the resampler rejects.
    pub fn open(opts: &CaptureOptions) -> Result<Capture, CaptureError> {
        if !(opts.ring_seconds > 0.0 && opts.ring_seconds <= MAX_RING_SECONDS) {
            return Err(CaptureError::InvalidOptions(format!(
                "ring_seconds must be above 0 and at most {MAX_RING_SECONDS}, not {}",
                opts.ring_seconds
            )));
        }
        let device = match opts.device.as_deref() {
            None | Some("") | Some("default") => {
                devices::quiet_alsa();
                cpal::default_host().default_input_device().ok_or_else(|| {
                    CaptureError::NoDevice {
                        name: "default".into(),
                        reason: "the audio host has no default input device".into(),
                    }
                })?
            }
            Some(name) => devices::find(Direction::Input, name)?,
        };
        let name = devices::device_name(&device);
        let no_device = |err: cpal::Error| CaptureError::NoDevice {
            name: name.clone(),
            reason: err.to_string().trim_end_matches('.').to_string(),
        };
        let supported = device.default_input_config().map_err(no_device)?;
        let rate = supported.sample_rate();
        let channels = supported.channels();
        let format = supported.sample_format();
        let resampler = Resampler::new(rate, WHISPER_SAMPLE_RATE)?;

        let capacity = (f64::from(opts.ring_seconds) * f64::from(rate)).ceil() as usize;
        let (producer, consumer) = RingBuffer::new(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            producer,
            channels: usize::from(channels),
            shared: Arc::clone(&shared),
        };
        let mut config = supported.config();
        // Ask for ~50 ms device periods where the device says what it can do: the default
        // (often ~10 ms through PulseAudio) wakes the audio and sound-server threads far
        // more often than voice needs, which dominated the idle cost of listening.
        if let cpal::SupportedBufferSize::Range { min, max } = *supported.buffer_size() {
            let wanted = rate / 20;
            if min <= max {
                config.buffer_size = cpal::BufferSize::Fixed(wanted.clamp(min, max));
            }
        }
        let stream = match format {
            SampleFormat::I8 => build::<i8>(&device, config, writer),
            SampleFormat::I16 => build::<i16>(&device, config, writer),
            SampleFormat::I24 => build::<I24>(&device, config, writer),
            SampleFormat::I32 => build::<i32>(&device, config, writer),
            SampleFormat::I64 => build::<i64>(&device, config, writer),
            SampleFormat::U8 => build::<u8>(&device, config, writer),
            SampleFormat::U16 => build::<u16>(&device, config, writer),
            SampleFormat::U24 => build::<U24>(&device, config, writer),
            SampleFormat::U32 => build::<u32>(&device, config, writer),
            SampleFormat::U64 => build::<u64>(&device, config, writer),
            SampleFormat::F32 => build::<f32>(&device, config, writer),
            SampleFormat::F64 => build::<f64>(&device, config, writer),
            _ => return Err(CaptureError::UnsupportedFormat { name, format }),
        }
        .map_err(no_device)?;
        stream.play().map_err(no_device)?;
        Ok(Capture {
            _stream: stream,
            reader: Reader::new(consumer, resampler),
            shared,
            name,
            rate,
            channels,
            format,
            stall_timeout: opts.stall_timeout,
            seen_callbacks: 0,
            progress_at: Instant::now(),
        })
    }

    /// The next 30 ms frame of 16 kHz mono audio, waiting up to `timeout` for it.
    ///
    /// `Ok(None)` means nothing came in time (a zero `timeout` only takes what is ready).
    /// While the ring buffer is empty the calling thread sleeps in steps of
    /// [`POLL_INTERVAL`]. Audio captured before a failure is delivered before the error.
    ///
    /// # Errors
    /// [`CaptureError::Stream`] after a fatal stream error (e.g. the device or the sound
    /// server went away), [`CaptureError::Ended`] when the stream's thread ended,
    /// [`CaptureError::Stalled`] when no audio came for [`CaptureOptions::stall_timeout`].
    /// Once capture has failed, every later call fails too: open it again.
    pub fn next_frame(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<[f32; FRAME_SAMPLES]>, CaptureError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(frame) = self.reader.take_frame() {
                return Ok(Some(frame));
            }
            if self.reader.fill() {
                continue;
            }
            let now = Instant::now();
            self.check_health(now)?;
            let nap = match deadline {
                Some(deadline) if now >= deadline => return Ok(None),
                Some(deadline) => (deadline - now).min(POLL_INTERVAL),
                None => POLL_INTERVAL,
            };
            std::thread::sleep(nap);
        }
    }

    /// Counters and the device's native format.
    pub fn stats(&self) -> CaptureStats {
        let shared = &self.shared;
        CaptureStats {
            overrun_samples: shared.overrun_samples.load(Ordering::Relaxed),
            callbacks: shared.callbacks.load(Ordering::Relaxed),
            device_frames: shared.device_frames.load(Ordering::Relaxed),
            stream_errors: shared.stream_errors.load(Ordering::Relaxed),
            device_rate: self.rate,
            device_channels: self.channels,
            device_format: self.format,
        }
    }

    /// The device's name, as `serena devices` shows it.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// Called with the ring buffer empty: fails if the stream did.
    fn check_health(&mut self, now: Instant) -> Result<(), CaptureError> {
        if let Some(err) = self.shared.failure.get() {
            return Err(CaptureError::Stream {
                name: self.name.clone(),
                source: err.clone(),
            });
        }
        if self.reader.consumer.is_abandoned() {
            return Err(CaptureError::Ended {
                name: self.name.clone(),
            });
        }
        let callbacks = self.shared.callbacks.load(Ordering::Relaxed);
        if callbacks != self.seen_callbacks {
            self.seen_callbacks = callbacks;
            self.progress_at = now;
        } else if let Some(limit) = self.stall_timeout {
            let waited = now.saturating_duration_since(self.progress_at);
            if waited >= limit {
                return Err(CaptureError::Stalled {
                    name: self.name.clone(),
                    waited,
                });
            }
        }
        Ok(())
    }
}

/// Builds the input stream for sample type `T`; the data callback only feeds `writer`.
fn build<T: ToF32>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut writer: Writer,
) -> Result<cpal::Stream, cpal::Error> {
    let shared = Arc::clone(&writer.shared);
    device.build_input_stream_raw(
        config,
        T::FORMAT,
        move |data: &cpal::Data, _: &cpal::InputCallbackInfo| writer.on_data::<T>(data),
        move |err: cpal::Error| shared.on_error(err),
        None,
    )
}

// `Capture` may move between threads (see its docs); keep it that way.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Capture>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn ring(capacity: usize, channels: usize) -> (Writer, Consumer<f32>, Arc<Shared>) {
        let (producer, consumer) = RingBuffer::new(capacity);
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            producer,
            channels,
            shared: Arc::clone(&shared),
        };
        (writer, consumer, shared)
    }

    fn drain(consumer: &mut Consumer<f32>) -> Vec<f32> {
        let mut out = Vec::new();
        while let Ok(v) = consumer.pop() {
            out.push(v);
        }
        out
    }

    #[test]
    fn conversions_span_minus_one_to_one() {
        assert_eq!(i8::MIN.to_f32(), -1.0);
        assert_eq!(0i8.to_f32(), 0.0);
        assert_eq!(i16::MIN.to_f32(), -1.0);
        assert_eq!(0i16.to_f32(), 0.0);
        assert!((i16::MAX.to_f32() - 1.0).abs() < 1e-4);
        assert_eq!(I24::new_unchecked(-8_388_608).to_f32(), -1.0);
        assert_eq!(I24::new_unchecked(0).to_f32(), 0.0);
        assert!((I24::new_unchecked(8_388_607).to_f32() - 1.0).abs() < 1e-6);
        // A stray top byte does not change the value.
        assert_eq!(I24::new_unchecked(0x7F00_0001).to_f32(), 1.0 / 8_388_608.0);
        assert_eq!(i32::MIN.to_f32(), -1.0);
        assert_eq!(i64::MIN.to_f32(), -1.0);
        assert_eq!(0u8.to_f32(), -1.0);
        assert_eq!(128u8.to_f32(), 0.0);
        assert_eq!(0u16.to_f32(), -1.0);
        assert_eq!(32_768u16.to_f32(), 0.0);
        assert_eq!(U24::new_unchecked(0).to_f32(), -1.0);
        assert_eq!(U24::new_unchecked(8_388_608).to_f32(), 0.0);
        assert_eq!(0u32.to_f32(), -1.0);
        assert_eq!((1u32 << 31).to_f32(), 0.0);
        assert_eq!(0u64.to_f32(), -1.0);
        assert_eq!((1u64 << 63).to_f32(), 0.0);
        assert_eq!(0.25f64.to_f32(), 0.25);
    }

    #[test]
    fn callback_downmixes_interleaved_frames() {
        let (mut writer, mut consumer, shared) = ring(16, 2);
        writer.write::<i16>(&[16_384, -16_384, 16_384, 0, 8_192, 8_192, 1]);
        // Three whole stereo frames; the odd sample is not a frame.
        assert_eq!(drain(&mut consumer), vec![0.0, 0.25, 0.25]);
        assert_eq!(shared.callbacks.load(Ordering::Relaxed), 1);
        assert_eq!(shared.device_frames.load(Ordering::Relaxed), 3);
        assert_eq!(shared.overrun_samples.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_ring_counts_overruns_and_recovers() {
        let (mut writer, mut consumer, shared) = ring(4, 1);
        writer.write::<f32>(&[0.1, 0.2, 0.3]);
        writer.write::<f32>(&[0.4, 0.5, 0.6]);
        assert_eq!(shared.overrun_samples.load(Ordering::Relaxed), 2);
        assert_eq!(drain(&mut consumer), vec![0.1, 0.2, 0.3, 0.4]);
        writer.write::<f32>(&[0.7]);
        assert_eq!(drain(&mut consumer), vec![0.7]);
        assert_eq!(shared.overrun_samples.load(Ordering::Relaxed), 2);
        assert_eq!(shared.device_frames.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn only_fatal_stream_errors_are_kept() {
        let shared = Shared::default();
        shared.on_error(cpal::ErrorKind::Xrun.into());
        shared.on_error(cpal::ErrorKind::RealtimeDenied.into());
        assert!(shared.failure.get().is_none());
        shared.on_error(cpal::ErrorKind::DeviceNotAvailable.into());
        shared.on_error(cpal::ErrorKind::BackendError.into());
        assert_eq!(shared.stream_errors.load(Ordering::Relaxed), 4);
        assert_eq!(
            shared.failure.get().map(|e| e.kind()),
            Some(cpal::ErrorKind::DeviceNotAvailable)
        );
    }

    #[test]
    fn reader_frames_resampled_stereo_48k() {
        let (mut writer, consumer, _) = ring(48_000, 2);
        // 0.5 s of a 440 Hz tone, in callbacks of 441 stereo frames.
        let stereo: Vec<i16> = (0..24_000)
            .flat_map(|i| {
                let v = (0.5 * (2.0 * PI * 440.0 * i as f32 / 48_000.0).sin() * 32_768.0) as i16;
                [v, v]
            })
            .collect();
        for chunk in stereo.chunks(882) {
            writer.write(chunk);
        }
        let mut reader = Reader::new(consumer, Resampler::new(48_000, 16_000).unwrap());
        let mut frames = Vec::new();
        loop {
            if let Some(frame) = reader.take_frame() {
                frames.push(frame);
            } else if !reader.fill() {
                break;
            }
        }
        // 8000 output samples minus the resampler's lag of at most one block.
        assert!((14..=16).contains(&frames.len()), "{} frames", frames.len());
        let mono: Vec<f32> = frames.concat();
        let peak = mono[1000..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "peak {peak}");
        let crossings = mono[1000..]
            .windows(2)
            .filter(|w| w[0] <= 0.0 && w[1] > 0.0)
            .count() as f32;
        let secs = (mono.len() - 1000) as f32 / 16_000.0;
        assert!((crossings / secs - 440.0).abs() < 10.0);
    }

    #[test]
    fn bad_ring_sizes_are_rejected_before_any_device_is_touched() {
        for ring_seconds in [0.0, -1.0, f32::NAN, f32::INFINITY, 61.0] {
            let opts = CaptureOptions {
                ring_seconds,
                ..CaptureOptions::default()
            };
            assert!(matches!(
                Capture::open(&opts),
                Err(CaptureError::InvalidOptions(_))
            ));
        }
    }
}
