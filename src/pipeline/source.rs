//! Where the pipeline's frames come from: the live microphone ([`LiveSource`]) or a file
//! played as if it were one ([`FileSource`]). Both end when the shared stop flag is set
//! (Ctrl-C), so the loop can drain the utterance in progress and exit cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::listen::{Input, FRAME};
use crate::audio::capture::{Capture, CaptureError, CaptureOptions};

/// How long one wait for a frame lasts before the stop flag is looked at again.
const WAIT_STEP: Duration = Duration::from_millis(100);
/// Pause between attempts to reopen a failed input device.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Frames from the microphone. A device that fails becomes [`Input::DeviceLost`]; the
/// source then tries to reopen it every second ([`Input::DeviceRestored`] when it works),
/// so a pulled headset or a restarted sound server never hangs or ends the pipeline.
#[derive(Debug)]
pub struct LiveSource {
    opts: CaptureOptions,
    capture: Option<Capture>,
    overruns_seen: u64,
    stop: Arc<AtomicBool>,
    /// Whether the device is lost and being reopened.
    lost: bool,
}

impl LiveSource {
    /// Open the input device.
    ///
    /// # Errors
    /// [`CaptureError`] when the device cannot be opened at all.
    pub fn open(opts: CaptureOptions, stop: Arc<AtomicBool>) -> Result<LiveSource, CaptureError> {
        let capture = Capture::open(&opts)?;
        Ok(LiveSource {
            opts,
            capture: Some(capture),
            overruns_seen: 0,
            stop,
            lost: false,
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> Option<&str> {
        self.capture.as_ref().map(Capture::device_name)
    }
}

impl Iterator for LiveSource {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            let Some(capture) = self.capture.as_mut() else {
                // Lost: try again every second, looking at the stop flag meanwhile.
                let until = Instant::now() + REOPEN_EVERY;
                while Instant::now() < until {
                    if self.stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(WAIT_STEP);
                }
                if let Ok(capture) = Capture::open(&self.opts) {
                    self.capture = Some(capture);
                    self.overruns_seen = 0;
                    self.lost = false;
                    return Some(Input::DeviceRestored);
                }
                continue;
            };
            let overruns = capture.stats().overrun_samples;
            if overruns > self.overruns_seen {
                let delta = overruns - self.overruns_seen;
                self.overruns_seen = overruns;
                return Some(Input::Overrun(delta));
            }
            match capture.next_frame(WAIT_STEP) {
                Ok(Some(frame)) => return Some(Input::Frame(frame.to_vec())),
                Ok(None) => continue,
                Err(e) => {
                    release(self.capture.take());
                    self.lost = true;
                    return Some(Input::DeviceLost(e.to_string()));
                }
            }
        }
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        release(self.capture.take());
    }
}

/// Stop a capture without waiting for it on this thread. Dropping a cpal stream joins its
/// thread, and when the sound server died under it, that thread can be wedged inside ALSA's
/// pulse plugin for good (seen: killing PulseAudio mid-capture). The drop happens on a
/// detached thread instead, so the pipeline (and Ctrl-C) never hangs on a dead device; at
/// worst one wedged stream per failure is left behind until the process exits.
fn release(capture: Option<Capture>) {
    if let Some(capture) = capture {
        let spawned = std::thread::Builder::new()
            .name("serena-capture-release".into())
            .spawn(move || drop(capture));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot release the old capture stream; leaking it");
        }
    }
}

/// Frames from decoded 16 kHz mono samples: in real time (frame `i` is heard at `i` × 30
/// ms), or as fast as the pipeline takes them.
#[derive(Debug)]
pub struct FileSource {
    samples: Vec<f32>,
    next: usize,
    real_time: bool,
    started: Instant,
    stop: Arc<AtomicBool>,
}

impl FileSource {
    /// A source over `samples`.
    pub fn new(samples: Vec<f32>, real_time: bool, stop: Arc<AtomicBool>) -> FileSource {
        FileSource {
            samples,
            next: 0,
            real_time,
            started: Instant::now(),
            stop,
        }
    }
}

impl Iterator for FileSource {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        if self.stop.load(Ordering::Relaxed) || self.next >= self.samples.len() {
            return None;
        }
        if self.real_time {
            let due = Duration::from_secs_f64(self.next as f64 / 16_000.0);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let end = (self.next + FRAME).min(self.samples.len());
        let frame = self.samples[self.next..end].to_vec();
        self.next = end;
        Some(Input::Frame(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_source_cuts_frames_and_stops_on_the_flag() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut src = FileSource::new(vec![0.0; FRAME * 2 + 10], false, stop.clone());
        let lens: Vec<usize> = src
            .by_ref()
            .take(2)
            .map(|i| match i {
                Input::Frame(f) => f.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lens, [FRAME, FRAME]);
        stop.store(true, Ordering::Relaxed);
        assert!(src.next().is_none(), "the flag ends the source");
    }
}
