//! Where spoken replies go: a [`Speaker`] that plays queued speech on the pipeline's clock
//! and can be stopped at once (barge-in, stop word).
//!
//! - [`FileSpeaker`] writes what a speaker would play into a WAV file, on the *input's*
//!   clock: every frame the pipeline hears moves playback on by the same time. The file is a
//!   recording of the speaker (silence while nothing plays), so barge-in, follow-up windows
//!   and timing are testable without a device and without wall-clock time.
//! - [`DeviceSpeaker`] plays on a real output device through rodio, resampled to the
//!   device's rate with the project's resampler first. rodio owns the device on its own
//!   thread; the pipeline only appends, asks whether anything is playing, and clears.

use std::collections::VecDeque;
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rodio::buffer::SamplesBuffer;
use rodio::{DeviceSinkBuilder, Player};

use crate::audio::devices::{self, DeviceError, Direction};
use crate::audio::resample::Resampler;
use crate::tts::Speech;

use super::endpoint::RATE;

/// A speaker the pipeline drives.
pub trait Speaker {
    /// Queue `speech` after what is already queued.
    ///
    /// # Errors
    /// A message when the speech cannot be played (e.g. its rate changed mid-file).
    fn queue(&mut self, speech: Speech) -> Result<(), String>;
    /// The pipeline heard `samples` more input samples (16 kHz): time went on by that much.
    fn tick(&mut self, samples: usize);
    /// Whether anything is still playing or queued.
    fn playing(&self) -> bool;
    /// Stop at once and drop what is queued. Returns whether anything was playing.
    fn stop(&mut self) -> bool;
    /// The input ended: let what is queued finish (or write it out), then release the device
    /// or file.
    ///
    /// # Errors
    /// A message when the file cannot be written.
    fn finish(&mut self) -> Result<(), String>;
}

/// Writes the speaker's timeline into a 16-bit mono WAV file, on the input's clock.
#[derive(Debug)]
pub struct FileSpeaker {
    path: PathBuf,
    rate: u32,
    /// Everything "played" so far, silence included.
    out: Vec<f32>,
    /// Speech still to play, at `rate`.
    queue: VecDeque<f32>,
    /// Fractional output samples owed by `tick` (input and output rates differ).
    owed: f64,
}

impl FileSpeaker {
    /// A speaker writing to `path` at the synthesizer's `rate`.
    pub fn new(path: &Path, rate: u32) -> FileSpeaker {
        FileSpeaker {
            path: path.to_path_buf(),
            rate: rate.max(1),
            out: Vec::new(),
            queue: VecDeque::new(),
            owed: 0.0,
        }
    }

    /// Seconds of speech (not silence) written so far.
    pub fn written_s(&self) -> f64 {
        self.out.len() as f64 / f64::from(self.rate)
    }
}

impl Speaker for FileSpeaker {
    fn queue(&mut self, speech: Speech) -> Result<(), String> {
        let samples = if speech.sample_rate == self.rate {
            speech.samples
        } else {
            resample(&speech.samples, speech.sample_rate, self.rate)?
        };
        self.queue.extend(samples);
        Ok(())
    }

    fn tick(&mut self, samples: usize) {
        self.owed += samples as f64 * f64::from(self.rate) / f64::from(RATE);
        let n = self.owed.floor() as usize;
        self.owed -= n as f64;
        let from_queue = n.min(self.queue.len());
        self.out.extend(self.queue.drain(..from_queue));
        self.out.extend(std::iter::repeat_n(0.0, n - from_queue));
    }

    fn playing(&self) -> bool {
        !self.queue.is_empty()
    }

    fn stop(&mut self) -> bool {
        let was = !self.queue.is_empty();
        self.queue.clear();
        was
    }

    fn finish(&mut self) -> Result<(), String> {
        self.out.extend(self.queue.drain(..));
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::audio::playback::write_wav(&self.path, &self.out, self.rate)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// Plays on an output device through rodio.
///
/// The device is open only while something plays: it is opened when speech is queued and
/// closed once the player has drained. An open output stream is not free while idle (through
/// ALSA's pulse plugin, cpal's output loop was measured spinning on a full core), and a
/// listening assistant is idle almost all the time.
pub struct DeviceSpeaker {
    device: String,
    open: Option<OpenDevice>,
    /// Errors the output stream reported (logged at debug level, counted here).
    stream_errors: Arc<AtomicU64>,
}

struct OpenDevice {
    player: Arc<Player>,
    rate: u32,
    /// Dropping it ends the thread that keeps the device open.
    _keep: mpsc::SyncSender<()>,
}

impl std::fmt::Debug for DeviceSpeaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSpeaker")
            .field("device", &self.device)
            .field("open", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

impl DeviceSpeaker {
    /// A speaker on the output device `device` (`default` for the default). The device is
    /// opened once here to check it works, then closed until there is something to say.
    ///
    /// # Errors
    /// [`DeviceError`] when the device is missing or cannot be opened.
    pub fn open(device: &str) -> Result<DeviceSpeaker, DeviceError> {
        let stream_errors = Arc::new(AtomicU64::new(0));
        drop(OpenDevice::open(device, &stream_errors)?);
        Ok(DeviceSpeaker {
            device: device.to_string(),
            open: None,
            stream_errors,
        })
    }

    /// Errors the output stream reported so far.
    pub fn stream_errors(&self) -> u64 {
        self.stream_errors.load(Ordering::Relaxed)
    }

    fn device(&mut self) -> Result<&OpenDevice, String> {
        if self.open.is_none() {
            let opened =
                OpenDevice::open(&self.device, &self.stream_errors).map_err(|e| e.to_string())?;
            self.open = Some(opened);
        }
        self.open
            .as_ref()
            .ok_or_else(|| "the speaker is not open".to_string())
    }
}

impl OpenDevice {
    fn open(device: &str, errors: &Arc<AtomicU64>) -> Result<OpenDevice, DeviceError> {
        let dev = devices::find(Direction::Output, device)?;
        let name = device.to_string();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (keep_tx, keep_rx) = mpsc::sync_channel::<()>(0);
        let errors = Arc::clone(errors);
        // rodio's device sink must stay on the thread that opened it on some platforms: keep
        // it there until the device is closed; the player is shared.
        std::thread::Builder::new()
            .name("serena-speaker".into())
            .spawn(move || {
                let opened = DeviceSinkBuilder::from_device(dev)
                    .map(|b| {
                        b.with_error_callback(move |e| {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                tracing::debug!(error = %e, "output stream error (counted)");
                            }
                        })
                    })
                    .and_then(|b| b.open_stream())
                    .map_err(|e| e.to_string());
                match opened {
                    Ok(mut sink) => {
                        sink.log_on_drop(false);
                        let rate = sink.config().sample_rate().get();
                        let player = Arc::new(Player::connect_new(sink.mixer()));
                        if ready_tx.send(Ok((player, rate))).is_ok() {
                            // Returns when the OpenDevice (the sender) is dropped.
                            let _ = keep_rx.recv();
                        }
                        drop(sink);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| unusable(&name, e.to_string()))?;
        let (player, rate) = ready_rx
            .recv()
            .map_err(|_| unusable(&name, "the speaker thread ended".into()))?
            .map_err(|e| unusable(&name, e))?;
        Ok(OpenDevice {
            player,
            rate,
            _keep: keep_tx,
        })
    }
}

fn unusable(device: &str, reason: String) -> DeviceError {
    DeviceError::Unusable {
        direction: Direction::Output,
        name: device.to_string(),
        reason: reason.trim_end_matches('.').to_string(),
        hint: "Use --output-file to write replies to a WAV file instead, or start a sound server (PulseAudio or PipeWire)",
    }
}

fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let mut r = Resampler::new(from, to).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(samples.len() * to as usize / from.max(1) as usize + 1024);
    r.process(samples, &mut out);
    r.flush(&mut out);
    Ok(out)
}

impl Speaker for DeviceSpeaker {
    fn queue(&mut self, speech: Speech) -> Result<(), String> {
        let dev = self.device()?;
        let data = if speech.sample_rate == dev.rate {
            speech.samples
        } else {
            resample(&speech.samples, speech.sample_rate, dev.rate)?
        };
        let rate = NonZero::new(dev.rate).ok_or("the device's rate is 0")?;
        dev.player
            .append(SamplesBuffer::new(NonZero::<u16>::MIN, rate, data));
        Ok(())
    }

    fn tick(&mut self, _samples: usize) {
        // Drained: close the device until the next reply.
        if self.open.as_ref().is_some_and(|d| d.player.empty()) {
            self.open = None;
        }
    }

    fn playing(&self) -> bool {
        self.open.as_ref().is_some_and(|d| !d.player.empty())
    }

    fn stop(&mut self) -> bool {
        let was = self.playing();
        if let Some(dev) = self.open.take() {
            dev.player.clear();
        }
        was
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Some(dev) = self.open.take() {
            dev.player.sleep_until_end();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(seconds: f64, rate: u32) -> Speech {
        Speech {
            samples: vec![0.5; (seconds * f64::from(rate)) as usize],
            sample_rate: rate,
        }
    }

    #[test]
    fn file_speaker_plays_on_the_input_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = FileSpeaker::new(&dir.path().join("out.wav"), 22_050);
        s.tick(16_000); // one second of silence
        s.queue(speech(2.0, 22_050)).expect("queue");
        assert!(s.playing());
        s.tick(16_000);
        assert!(s.playing(), "one of two seconds played");
        s.tick(16_000);
        assert!(!s.playing());
        assert!((s.written_s() - 3.0).abs() < 0.01, "{}", s.written_s());
    }

    #[test]
    fn stopping_drops_the_rest_and_finish_writes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let mut s = FileSpeaker::new(&path, 16_000);
        s.queue(speech(2.0, 16_000)).expect("queue");
        s.tick(8_000);
        assert!(s.stop());
        assert!(!s.stop(), "nothing left to stop");
        s.queue(speech(1.0, 22_050))
            .expect("a different rate is resampled");
        s.finish().expect("finish");
        let r = hound::WavReader::open(&path).expect("wav");
        let len = f64::from(r.duration()) / 16_000.0;
        assert!((len - 1.5).abs() < 0.01, "{len}");
    }
}
