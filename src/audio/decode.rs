//! Streaming decoding of audio files to 16 kHz mono `f32`, the format Whisper wants.
//!
//! [`Decoder`] demuxes and decodes one packet at a time with symphonia (WAV, MP3, FLAC, Ogg
//! Vorbis, AAC/M4A, AIFF, CAF, MKV/WebM, ALAC, ADPCM), averages the channels down to mono and
//! resamples with [`Resampler`]. Memory use does not depend on the length of the input (a
//! two-hour 44.1 kHz stereo MP3 decodes with under 10 MB peak RSS for the whole process), as
//! long as the caller consumes the output as it goes ([`Decoder::read_16k_mono`]).
//! [`decode_file_16k_mono`] is the convenience for short clips that returns everything at once.
//!
//! # Damaged input
//!
//! No input can make this module panic (a panic inside symphonia is caught and reported as
//! [`DecodeError::Corrupt`]), and this module never sizes a buffer from a header value.
//! The policy for damaged files is "keep what can be trusted":
//!
//! * A packet the codec rejects is skipped and counted in [`DecodeStats::packets_skipped`];
//!   decoding continues with the next packet. If *no* packet decodes, the result is
//!   [`DecodeError::Corrupt`].
//! * A file that ends early (cut-off download, interrupted recording, a header that claims more
//!   data than there is) yields the audio that is there, sets [`DecodeStats::truncated`] and
//!   logs a warning. If it ends before any audio, the result is [`DecodeError::Truncated`].
//! * A container that becomes unreadable midway ends the stream the same way, with
//!   [`DecodeStats::ended_early`] saying why.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::common::Limit;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use super::resample::{Resampler, MAX_RATE, MIN_RATE};
use super::WHISPER_SAMPLE_RATE;

/// After this many container errors in a row without a good packet, the stream is given up.
const MAX_CONSECUTIVE_ERRORS: u32 = 64;
/// After this many packets in a row that yield no audio (skipped or empty), the stream is given
/// up: a hostile index can describe billions of empty packets, which would otherwise spin.
const MAX_PACKETS_WITHOUT_AUDIO: u32 = 10_000;
/// Name used in error messages for [`Decoder::from_reader`].
const STDIN_NAME: &str = "<stdin>";

/// What the input file says about itself, before resampling.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Native sample rate in Hz.
    pub sample_rate: u32,
    /// Native channel count (0 until the first packet if the container does not say).
    pub channels: u16,
    /// Duration claimed by the container, if it gives one. Damaged files may claim more than
    /// they hold.
    pub duration_s: Option<f64>,
    /// Short codec name from symphonia, e.g. `"pcm_s16le"`, `"mp3"`, `"flac"`, `"vorbis"`, `"aac"`.
    pub codec: String,
}

/// Counters describing how decoding went; see the [module docs](self) for the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets decoded successfully.
    pub packets_decoded: u64,
    /// Packets the codec rejected as malformed and that were skipped.
    pub packets_skipped: u64,
    /// Audio frames (per-channel samples) decoded at the native rate.
    pub frames_decoded: u64,
    /// The file holds less audio than its header declares (cut short, or damaged so that
    /// stretches were dropped), or ends inside a packet.
    pub truncated: bool,
    /// Why decoding stopped before the end of the file, if it did.
    pub ended_early: Option<String>,
}

/// Why a file could not be decoded. Every message names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file does not exist.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file is zero bytes long, or holds no audio samples at all.
    #[error("{}: no audio in file: {reason}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What exactly is missing.
        reason: String,
    },
    /// Not an audio file, or an audio format/codec this build cannot decode.
    #[error("{}: not a supported audio file: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What was not recognised.
        reason: String,
    },
    /// The audio data is damaged beyond use.
    #[error("{}: audio data is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file ends before any audio could be read (for example inside its header).
    #[error("{}: file is cut short: {reason}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        reason: String,
    },
    /// The operating system could not read the file.
    #[error("{}: cannot read file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl DecodeError {
    /// The file (or `<stdin>`) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::NotFound { path }
            | DecodeError::Empty { path, .. }
            | DecodeError::Unsupported { path, .. }
            | DecodeError::Corrupt { path, .. }
            | DecodeError::Truncated { path, .. }
            | DecodeError::Io { path, .. } => path,
        }
    }

    fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => DecodeError::NotFound {
                path: path.to_path_buf(),
            },
            _ => DecodeError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// Whether the decoder still has packets to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Decoding,
    Done,
}

/// A streaming decoder from any supported audio file to 16 kHz mono `f32` samples.
pub struct Decoder {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    codec: Box<dyn AudioDecoder>,
    track_id: u32,
    info: AudioInfo,
    /// Created on the first decoded packet, at that packet's sample rate.
    resampler: Option<Resampler>,
    /// Frames the container says the track has, for truncation detection.
    declared_frames: Option<u64>,
    /// Scratch: one packet, interleaved, native rate.
    interleaved: Vec<f32>,
    /// Scratch: one packet, mono, native rate.
    mono: Vec<f32>,
    /// Resampled output not yet handed to the caller; `ready_pos` is the next unread sample.
    ready: Vec<f32>,
    ready_pos: usize,
    consecutive_errors: u32,
    /// Packets in a row that produced no samples.
    packets_without_audio: u32,
    last_error: Option<String>,
    stats: DecodeStats,
    state: State,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("stats", &self.stats)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens `path` and reads its header. The format is detected from the content; the file
    /// extension is only a hint. Non-regular files (FIFOs, `/dev/stdin`) are read as streams.
    ///
    /// # Errors
    /// [`DecodeError::NotFound`] if there is no such file; [`DecodeError::Empty`] for a
    /// zero-byte file; [`DecodeError::Unsupported`] for a directory, a non-audio file or an
    /// unknown codec; [`DecodeError::Truncated`] if the file ends inside its header;
    /// [`DecodeError::Corrupt`] for a malformed header; [`DecodeError::Io`] for read errors.
    pub fn open(path: &Path) -> Result<Decoder, DecodeError> {
        let file = File::open(path).map_err(|e| DecodeError::io(path, e))?;
        let meta = file.metadata().map_err(|e| DecodeError::io(path, e))?;
        let ext = path.extension().and_then(|e| e.to_str());
        if meta.is_dir() {
            return Err(DecodeError::Unsupported {
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        if !meta.is_file() {
            return Self::from_reader_named(Box::new(file), ext, path);
        }
        if meta.len() == 0 {
            return Err(DecodeError::Empty {
                path: path.to_path_buf(),
                reason: "the file is 0 bytes long".into(),
            });
        }
        Self::from_source(path, Box::new(file), ext)
    }

    /// Decodes from a non-seekable byte stream such as standard input; errors name the input
    /// `<stdin>`. `hint_ext` is an optional file extension (`"mp3"`) to speed up detection.
    ///
    /// Most formats are decoded as the bytes arrive. MP4/M4A needs random access (its index is
    /// often at the end), so such input is first copied to an anonymous temporary file, which
    /// the operating system deletes when the decoder is dropped.
    ///
    /// # Errors
    /// As [`Decoder::open`], except [`DecodeError::NotFound`].
    pub fn from_reader(
        reader: Box<dyn Read + Send + Sync>,
        hint_ext: Option<&str>,
    ) -> Result<Decoder, DecodeError> {
        Self::from_reader_named(reader, hint_ext, Path::new(STDIN_NAME))
    }

    /// Like [`Decoder::from_reader`], naming the input `name` in error messages.
    ///
    /// # Errors
    /// As [`Decoder::from_reader`].
    pub fn from_reader_named(
        mut reader: Box<dyn Read + Send + Sync>,
        hint_ext: Option<&str>,
        name: &Path,
    ) -> Result<Decoder, DecodeError> {
        let mut head = [0u8; 16];
        let head_len = read_up_to(&mut reader, &mut head).map_err(|e| DecodeError::io(name, e))?;
        let head = head.get(..head_len).unwrap_or_default();
        if head.is_empty() {
            return Err(DecodeError::Empty {
                path: name.to_path_buf(),
                reason: "the input is 0 bytes long".into(),
            });
        }
        let source: Box<dyn MediaSource> = if needs_random_access(head, hint_ext) {
            Box::new(spool_to_temp_file(head, reader).map_err(|e| DecodeError::io(name, e))?)
        } else {
            Box::new(ReadOnlySource::new(
                Cursor::new(head.to_vec()).chain(reader),
            ))
        };
        Self::from_source(name, source, hint_ext)
    }

    fn from_source(
        path: &Path,
        source: Box<dyn MediaSource>,
        hint_ext: Option<&str>,
    ) -> Result<Decoder, DecodeError> {
        let mut hint = Hint::new();
        if let Some(ext) = hint_ext {
            hint.with_extension(ext);
        }
        let mss = MediaSourceStream::new(source, Default::default());
        // Cover art is never needed; do not let a huge embedded picture cost memory.
        let meta_opts = MetadataOptions::default().limit_visual_bytes(Limit::Maximum(0));
        let probed = guard(|| {
            symphonia::default::get_probe().probe(&hint, mss, FormatOptions::default(), meta_opts)
        });
        let reader = probed.map_err(|e| header_error(path, e))?;
        Self::from_format_reader(path, reader)
    }

    fn from_format_reader(
        path: &Path,
        reader: Box<dyn FormatReader>,
    ) -> Result<Decoder, DecodeError> {
        let unsupported = |reason: String| DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        let track = reader
            .default_track(TrackType::Audio)
            .ok_or_else(|| unsupported("the file contains no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| unsupported("the file contains no audio track".into()))?;
        if let Some(rate) = params.sample_rate {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(unsupported(format!(
                    "sample rate {rate} Hz is outside the supported {MIN_RATE} to {MAX_RATE} Hz"
                )));
            }
        }
        let codec = guard(|| {
            symphonia::default::get_codecs()
                .make_audio_decoder(params, &AudioDecoderOptions::default())
        })
        .map_err(|e| match e {
            Failure::Symphonia(SymphoniaError::Unsupported(what)) => {
                unsupported(format!("no decoder for this codec ({what})"))
            }
            other => header_error(path, other),
        })?;

        let sample_rate = params.sample_rate.unwrap_or(0);
        let channels = params
            .channels
            .as_ref()
            .map_or(0, |c| u16::try_from(c.count()).unwrap_or(u16::MAX));
        let declared_frames = track.num_frames;
        let duration_s = match (declared_frames, sample_rate) {
            (Some(frames), rate) if rate > 0 => Some(frames as f64 / f64::from(rate)),
            _ => track
                .time_base
                .zip(track.duration)
                .and_then(|(tb, dur)| tb.calc_duration(dur))
                .map(|t| t.as_secs_f64()),
        }
        .filter(|d| d.is_finite() && *d >= 0.0);
        let info = AudioInfo {
            sample_rate,
            channels,
            duration_s,
            codec: codec.codec_info().short_name.to_string(),
        };
        let track_id = track.id;
        Ok(Decoder {
            path: path.to_path_buf(),
            reader,
            codec,
            track_id,
            info,
            resampler: None,
            declared_frames,
            interleaved: Vec::new(),
            mono: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            consecutive_errors: 0,
            packets_without_audio: 0,
            last_error: None,
            stats: DecodeStats::default(),
            state: State::Decoding,
        })
    }

    /// What the file says about itself (native rate, channels, codec, claimed duration).
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// How decoding has gone so far. Check after the end of stream for skipped packets or
    /// truncation worth reporting to the user.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The file name used in error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends up to `max_samples` 16 kHz mono samples to `out` and returns how many. Returns
    /// `Ok(0)` at the end of the stream (and, trivially, when `max_samples` is 0). Fewer than
    /// `max_samples` are returned only at the end of the stream.
    ///
    /// # Errors
    /// [`DecodeError::Empty`] if the stream ends without a single audio sample;
    /// [`DecodeError::Corrupt`] if packets exist but none decodes, or symphonia fails
    /// internally; [`DecodeError::Truncated`] if the file ends before the first packet;
    /// [`DecodeError::Io`] for read errors. After an error the decoder is finished and further
    /// calls return `Ok(0)`.
    pub fn read_16k_mono(
        &mut self,
        out: &mut Vec<f32>,
        max_samples: usize,
    ) -> Result<usize, DecodeError> {
        let mut written = 0;
        while written < max_samples {
            let available = self.ready.get(self.ready_pos..).unwrap_or_default();
            if !available.is_empty() {
                let n = available.len().min(max_samples - written);
                out.extend_from_slice(&available[..n]);
                self.ready_pos += n;
                written += n;
                continue;
            }
            self.ready.clear();
            self.ready_pos = 0;
            if self.state == State::Done {
                break;
            }
            if let Err(err) = self.decode_step() {
                self.state = State::Done;
                return Err(err);
            }
        }
        Ok(written)
    }

    /// Reads one packet and appends its resampled samples to `self.ready`, or finishes the
    /// stream.
    fn decode_step(&mut self) -> Result<(), DecodeError> {
        let err = match guard(|| self.reader.next_packet()) {
            Ok(Some(packet)) => {
                self.consecutive_errors = 0;
                if packet.track_id != self.track_id {
                    return Ok(());
                }
                let frames_before = self.stats.frames_decoded;
                self.decode_packet(&packet)?;
                if self.stats.frames_decoded > frames_before {
                    self.packets_without_audio = 0;
                    return Ok(());
                }
                self.packets_without_audio += 1;
                if self.packets_without_audio >= MAX_PACKETS_WITHOUT_AUDIO {
                    let reason = format!(
                        "{MAX_PACKETS_WITHOUT_AUDIO} packets in a row held no decodable audio"
                    );
                    return self.end_early(reason);
                }
                return Ok(());
            }
            Ok(None) => return self.finish(),
            Err(Failure::Panicked(reason)) => return self.fail_corrupt(reason),
            Err(Failure::Symphonia(err)) => err,
        };
        match err {
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                if self.declared_frames.is_none() && self.stats.frames_decoded > 0 {
                    // No promised length (e.g. a streamed WAV with 0xFFFFFFFF sizes): running
                    // out of bytes is how such a stream ends.
                    return self.finish();
                }
                self.stats.truncated = true;
                self.end_early("the file ends in the middle of a packet".into())
            }
            SymphoniaError::IoError(e) => Err(DecodeError::Io {
                path: self.path.clone(),
                source: e,
            }),
            SymphoniaError::ResetRequired => {
                self.end_early("the stream changes format midway (chained stream)".into())
            }
            SymphoniaError::DecodeError(msg) => {
                self.consecutive_errors += 1;
                self.last_error = Some(msg.to_string());
                if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    self.end_early(format!("the container is unreadable from here on ({msg})"))
                } else {
                    Ok(())
                }
            }
            other => self.end_early(format!("the container cannot be read further ({other})")),
        }
    }

    fn decode_packet(&mut self, packet: &Packet) -> Result<(), DecodeError> {
        match guard(|| self.codec.decode(packet).map(|_| ())) {
            Ok(()) => {}
            Err(Failure::Panicked(reason)) => return self.fail_corrupt(reason),
            Err(Failure::Symphonia(SymphoniaError::ResetRequired)) => {
                self.codec.reset();
                self.skip_packet("decoder reset required".into());
                return Ok(());
            }
            // Malformed packet, truncated packet, limit exceeded or an unsupported feature in
            // this packet: skip it and carry on (symphonia's recommended handling).
            Err(Failure::Symphonia(err)) => {
                self.skip_packet(err.to_string());
                return Ok(());
            }
        }
        // Re-borrow the decoded buffer (decode succeeded above) and copy it out.
        let buf = self.codec.last_decoded();
        let rate = buf.spec().rate();
        let channels = buf.spec().channels().count();
        let frames = buf.frames();
        if frames == 0 {
            self.stats.packets_decoded += 1;
            return Ok(());
        }
        if channels == 0 {
            self.skip_packet("packet has no channels".into());
            return Ok(());
        }
        buf.copy_to_vec_interleaved(&mut self.interleaved);
        if !self.accept_rate(rate) {
            return Ok(());
        }
        if self.info.channels == 0 {
            self.info.channels = u16::try_from(channels).unwrap_or(u16::MAX);
        }
        downmix(&self.interleaved, channels, &mut self.mono);
        if let Some(resampler) = &mut self.resampler {
            resampler.process(&self.mono, &mut self.ready);
        }
        self.stats.packets_decoded += 1;
        self.stats.frames_decoded = self.stats.frames_decoded.saturating_add(frames as u64);
        Ok(())
    }

    /// Makes sure the resampler exists and runs at `rate`; skips the packet otherwise.
    fn accept_rate(&mut self, rate: u32) -> bool {
        match &self.resampler {
            Some(r) if r.input_rate() == rate => true,
            Some(r) => {
                let msg = format!(
                    "sample rate changed midway from {} Hz to {rate} Hz",
                    r.input_rate()
                );
                self.skip_packet(msg);
                false
            }
            None => match Resampler::new(rate, WHISPER_SAMPLE_RATE) {
                Ok(r) => {
                    self.resampler = Some(r);
                    self.info.sample_rate = rate;
                    true
                }
                Err(e) => {
                    self.skip_packet(e.to_string());
                    false
                }
            },
        }
    }

    fn skip_packet(&mut self, reason: String) {
        tracing::debug!(file = %self.path.display(), "skipping undecodable packet: {reason}");
        self.stats.packets_skipped += 1;
        self.last_error = Some(reason);
    }

    fn fail_corrupt(&mut self, reason: String) -> Result<(), DecodeError> {
        self.state = State::Done;
        Err(DecodeError::Corrupt {
            path: self.path.clone(),
            reason,
        })
    }

    /// Stops before the end of the file: keeps what was decoded, or fails if that is nothing.
    fn end_early(&mut self, reason: String) -> Result<(), DecodeError> {
        if self.stats.frames_decoded == 0 {
            self.state = State::Done;
            return Err(if self.stats.truncated {
                DecodeError::Truncated {
                    path: self.path.clone(),
                    reason: format!("{reason}, before any audio"),
                }
            } else {
                DecodeError::Corrupt {
                    path: self.path.clone(),
                    reason,
                }
            });
        }
        tracing::warn!(file = %self.path.display(), "stopped decoding early: {reason}");
        self.stats.ended_early = Some(reason);
        self.finish()
    }

    /// End of stream: flushes the resampler, or reports that there was no audio.
    fn finish(&mut self) -> Result<(), DecodeError> {
        self.state = State::Done;
        if self.stats.frames_decoded == 0 {
            return Err(self.no_audio_error());
        }
        if let Some(resampler) = &mut self.resampler {
            resampler.flush(&mut self.ready);
        }
        if let Some(declared) = self.declared_frames {
            // Allow 1% slack: lossy containers often round their declared length.
            if self.stats.frames_decoded < declared - declared / 100 {
                self.stats.truncated = true;
                tracing::warn!(
                    file = %self.path.display(),
                    "file is shorter than its header says: {} of {declared} frames",
                    self.stats.frames_decoded
                );
            }
        }
        if self.stats.packets_skipped > 0 {
            tracing::warn!(
                file = %self.path.display(),
                "skipped {} damaged packet(s); last error: {}",
                self.stats.packets_skipped,
                self.last_error.as_deref().unwrap_or("unknown")
            );
        }
        Ok(())
    }

    fn no_audio_error(&self) -> DecodeError {
        if self.stats.packets_skipped > 0 {
            DecodeError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "none of its {} audio packet(s) could be decoded (last error: {})",
                    self.stats.packets_skipped,
                    self.last_error.as_deref().unwrap_or("unknown")
                ),
            }
        } else {
            DecodeError::Empty {
                path: self.path.clone(),
                reason: "the audio track contains no samples".into(),
            }
        }
    }
}

/// Decodes a whole file to 16 kHz mono. Convenient for short clips; for long recordings use
/// [`Decoder::read_16k_mono`] so memory stays bounded (two hours at 16 kHz is 460 MB as `f32`).
///
/// # Errors
/// As [`Decoder::open`] and [`Decoder::read_16k_mono`].
pub fn decode_file_16k_mono(path: &Path) -> Result<Vec<f32>, DecodeError> {
    let mut decoder = Decoder::open(path)?;
    // Trust the header for a capacity hint, but only up to ten minutes' worth.
    let hint = decoder.info().duration_s.map_or(0, |d| {
        (d.min(600.0) * f64::from(WHISPER_SAMPLE_RATE)) as usize
    });
    let mut out = Vec::with_capacity(hint);
    while decoder.read_16k_mono(&mut out, 1 << 16)? > 0 {}
    Ok(out)
}

/// Averages interleaved `channels`-channel audio into `mono` (cleared first).
fn downmix(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    if channels <= 1 {
        mono.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// The outcome of a symphonia call that failed: an ordinary error, or a panic inside it.
#[derive(Debug)]
enum Failure {
    Symphonia(SymphoniaError),
    Panicked(String),
}

/// Runs a symphonia call, turning a panic inside it into [`Failure::Panicked`] instead of
/// unwinding through the caller (symphonia is not fuzz-proof; our callers must never crash).
fn guard<T>(f: impl FnOnce() -> Result<T, SymphoniaError>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(Failure::Symphonia),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Panicked(format!(
                "the decoder failed on malformed data ({what})"
            )))
        }
    }
}

/// Maps an error from probing or from reading the header.
fn header_error(path: &Path, failure: Failure) -> DecodeError {
    let path = path.to_path_buf();
    let err = match failure {
        Failure::Panicked(reason) => return DecodeError::Corrupt { path, reason },
        Failure::Symphonia(err) => err,
    };
    match err {
        SymphoniaError::Unsupported(_) => DecodeError::Unsupported {
            path,
            reason: "the content is not a recognised audio format".into(),
        },
        SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated {
                path,
                reason: "it ends inside the header".into(),
            }
        }
        SymphoniaError::IoError(source) => DecodeError::Io { path, source },
        other => DecodeError::Corrupt {
            path,
            reason: format!("malformed header ({other})"),
        },
    }
}

/// MP4-family files keep their index anywhere (often at the end), so they need seeking.
fn needs_random_access(head: &[u8], hint_ext: Option<&str>) -> bool {
    let by_content = head.get(4..8) == Some(b"ftyp".as_slice());
    let by_name = hint_ext.is_some_and(|ext| {
        ["m4a", "m4b", "mp4", "mov", "3gp", "3g2"]
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    });
    by_content || by_name
}

/// Copies `head` and then the rest of `reader` into an anonymous temporary file, rewound.
fn spool_to_temp_file(head: &[u8], mut reader: Box<dyn Read + Send + Sync>) -> io::Result<File> {
    let mut file = tempfile::tempfile()?;
    file.write_all(head)?;
    io::copy(&mut reader, &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Reads until `buf` is full or the reader is exhausted; returns the bytes read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[path = "decode/tests.rs"]
mod tests;
