//! End-of-speech detection: from per-frame speech decisions to utterances.
//!
//! [`Endpointer`] is a pure state machine (sans I/O): push 16 kHz mono frames with the VAD's
//! verdict for each, get [`EndpointEvent`]s back. It keeps a pre-roll so the first syllable
//! is never cut, needs `start_frames` of speech in a row to start (a click is not speech),
//! ends an utterance after `hang` of silence, and cuts one that runs past `max_utterance`.
//! The audio of the utterance (pre-roll included) comes with the end event. Memory is
//! bounded by `max_utterance` plus the pre-roll.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples per second of the audio the endpointer sees.
pub const RATE: u32 = 16_000;

/// Tunables.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    /// Audio kept from before speech starts.
    pub pre_roll: Duration,
    /// Frames of speech in a row that start an utterance.
    pub start_frames: u32,
    /// Silence that ends an utterance.
    pub hang: Duration,
    /// The longest utterance; longer speech is cut here.
    pub max_utterance: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            pre_roll: Duration::from_millis(300),
            start_frames: 3,
            hang: Duration::from_millis(500),
            max_utterance: Duration::from_secs(15),
        }
    }
}

/// Why an utterance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Silence after speech.
    Silence,
    /// It reached the maximum length.
    MaxLength,
    /// The input ended.
    EndOfInput,
}

/// What the endpointer reports.
#[derive(Clone, Debug, PartialEq)]
pub enum EndpointEvent {
    /// Speech started at this time (seconds from the start of the input).
    SpeechStart {
        /// When the speech started (the first speech frame of the run).
        at_s: f64,
    },
    /// Speech ended; the utterance's audio (pre-roll included).
    SpeechEnd {
        /// When the last speech frame ended.
        at_s: f64,
        /// Why it ended.
        reason: EndReason,
        /// 16 kHz mono samples from the pre-roll to the end of the last speech frame.
        audio: Vec<f32>,
    },
}

/// The state machine.
#[derive(Debug)]
pub struct Endpointer {
    cfg: EndpointConfig,
    /// Recent frames while idle (the pre-roll), newest last.
    recent: VecDeque<Vec<f32>>,
    recent_samples: usize,
    /// Consecutive speech frames while idle.
    run: u32,
    /// The utterance being collected, if any.
    utterance: Option<Vec<f32>>,
    /// Samples of trailing silence in the utterance.
    silence: usize,
    /// Samples seen so far.
    position: u64,
}

impl Endpointer {
    /// A new endpointer.
    pub fn new(cfg: EndpointConfig) -> Endpointer {
        Endpointer {
            cfg,
            recent: VecDeque::new(),
            recent_samples: 0,
            run: 0,
            utterance: None,
            silence: 0,
            position: 0,
        }
    }

    fn samples(d: Duration) -> usize {
        (d.as_secs_f64() * f64::from(RATE)).round() as usize
    }

    fn seconds(samples: u64) -> f64 {
        samples as f64 / f64::from(RATE)
    }

    /// Whether an utterance is being collected.
    pub fn in_speech(&self) -> bool {
        self.utterance.is_some()
    }

    /// The utterance collected so far, while one is in progress.
    pub fn current(&self) -> Option<&[f32]> {
        self.utterance.as_deref()
    }

    /// Push one frame and the VAD's verdict for it.
    pub fn push(&mut self, frame: &[f32], speech: bool) -> Vec<EndpointEvent> {
        let mut events = Vec::new();
        self.position += frame.len() as u64;
        match self.utterance.as_mut() {
            None => {
                self.recent.push_back(frame.to_vec());
                self.recent_samples += frame.len();
                self.run = if speech { self.run + 1 } else { 0 };
                if self.run >= self.cfg.start_frames.max(1) {
                    // The run's frames plus the pre-roll before them.
                    let run_len: usize = self
                        .recent
                        .iter()
                        .rev()
                        .take(self.run as usize)
                        .map(Vec::len)
                        .sum();
                    let keep = run_len + Self::samples(self.cfg.pre_roll);
                    while self.recent_samples > keep {
                        match self.recent.pop_front() {
                            Some(f) => self.recent_samples -= f.len(),
                            None => break,
                        }
                    }
                    let audio: Vec<f32> = self.recent.drain(..).flatten().collect();
                    self.recent_samples = 0;
                    events.push(EndpointEvent::SpeechStart {
                        at_s: Self::seconds(self.position - run_len as u64),
                    });
                    self.utterance = Some(audio);
                    self.silence = 0;
                    self.run = 0;
                } else {
                    // Keep only what the pre-roll and a starting run can need.
                    let limit = Self::samples(self.cfg.pre_roll)
                        + frame.len() * self.cfg.start_frames.max(1) as usize;
                    while self.recent_samples > limit && self.recent.len() > 1 {
                        match self.recent.pop_front() {
                            Some(f) => self.recent_samples -= f.len(),
                            None => break,
                        }
                    }
                }
            }
            Some(audio) => {
                audio.extend_from_slice(frame);
                if speech {
                    self.silence = 0;
                } else {
                    self.silence += frame.len();
                }
                let reason = if self.silence >= Self::samples(self.cfg.hang) {
                    Some(EndReason::Silence)
                } else if audio.len() >= Self::samples(self.cfg.max_utterance) {
                    Some(EndReason::MaxLength)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    events.push(self.finish(reason));
                }
            }
        }
        events
    }

    /// The input ended: close an open utterance.
    pub fn finish_input(&mut self) -> Option<EndpointEvent> {
        self.utterance
            .is_some()
            .then(|| self.finish(EndReason::EndOfInput))
    }

    fn finish(&mut self, reason: EndReason) -> EndpointEvent {
        let mut audio = self.utterance.take().unwrap_or_default();
        // Drop the trailing silence (keep a little, as whisper likes a clean ending).
        let tail_keep = Self::samples(Duration::from_millis(100));
        let cut = self.silence.saturating_sub(tail_keep).min(audio.len());
        audio.truncate(audio.len() - cut);
        let at_s = Self::seconds(self.position - self.silence as u64);
        self.silence = 0;
        EndpointEvent::SpeechEnd {
            at_s,
            reason,
            audio,
        }
    }
}

/// A cheap voice activity decision from frame energy, for the low-power path: speech when
/// the frame's RMS is `ratio` times above a slowly tracked noise floor (and above an absolute
/// minimum). Pure Rust, a few operations per sample.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    floor: f32,
    ratio: f32,
    min_rms: f32,
}

impl Default for EnergyVad {
    fn default() -> Self {
        EnergyVad {
            floor: 1e-3,
            ratio: 3.0,
            min_rms: 0.01,
        }
    }
}

impl EnergyVad {
    /// Whether `frame` holds speech; updates the noise floor.
    pub fn is_speech(&mut self, frame: &[f32]) -> bool {
        if frame.is_empty() {
            return false;
        }
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32).sqrt();
        let speech = rms > self.min_rms && rms > self.floor * self.ratio;
        // The floor follows quiet frames quickly and loud ones slowly.
        let rate = if speech { 0.001 } else { 0.05 };
        self.floor = (1.0 - rate) * self.floor + rate * rms.max(1e-5);
        speech
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 480; // 30 ms

    /// Run frames given as a pattern: 'S' speech, '.' silence.
    fn run(cfg: EndpointConfig, pattern: &str) -> Vec<EndpointEvent> {
        let mut ep = Endpointer::new(cfg);
        let mut out = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            let value = i as f32; // each frame's samples carry its index
            out.extend(ep.push(&[value; FRAME], c == 'S'));
        }
        out.extend(ep.finish_input());
        out
    }

    fn ends(events: &[EndpointEvent]) -> Vec<(EndReason, usize, f32)> {
        events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::SpeechEnd { reason, audio, .. } => {
                    Some((*reason, audio.len(), audio.first().copied().unwrap_or(-1.0)))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_utterance_keeps_its_pre_roll_and_ends_after_the_hang_time() {
        // 20 silent frames, 10 speech, 30 silent (0.9 s > 0.5 s hang).
        let pattern = format!("{}{}{}", ".".repeat(20), "S".repeat(10), ".".repeat(30));
        let events = run(EndpointConfig::default(), &pattern);
        let starts: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::SpeechStart { at_s } => Some(*at_s),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![20.0 * 0.03], "start at the first speech frame");
        let ends = ends(&events);
        assert_eq!(ends.len(), 1);
        let (reason, len, first) = ends[0];
        assert_eq!(reason, EndReason::Silence);
        // Pre-roll: 300 ms = 10 frames before frame 20.
        assert_eq!(first, 10.0, "audio starts 10 frames before the speech");
        // 10 pre-roll + 10 speech + ~100 ms of tail.
        assert!((20 * FRAME..=24 * FRAME).contains(&len), "{len}");
    }

    #[test]
    fn a_click_is_not_speech_and_short_pauses_do_not_split() {
        let pattern = format!(
            "{}S..S{}{}{}",
            ".".repeat(10),
            ".".repeat(10),
            "SSSSS.....SSSSS", // a 150 ms pause inside speech
            ".".repeat(40)
        );
        let events = run(EndpointConfig::default(), &pattern);
        assert_eq!(ends(&events).len(), 1, "{events:?}");
    }

    #[test]
    fn long_speech_is_cut_at_the_maximum_and_input_end_closes() {
        let cfg = EndpointConfig {
            max_utterance: Duration::from_secs(1),
            ..EndpointConfig::default()
        };
        let events = run(cfg, &"S".repeat(100));
        let ends = ends(&events);
        assert!(ends.len() >= 2, "{ends:?}");
        assert_eq!(ends[0].0, EndReason::MaxLength);
        assert!(ends[0].1 <= 16_000 + FRAME);
        assert_eq!(ends.last().map(|e| e.0), Some(EndReason::EndOfInput));
    }

    #[test]
    fn idle_memory_stays_bounded() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        for _ in 0..10_000 {
            ep.push(&[0.0; FRAME], false);
        }
        assert!(ep.recent_samples <= 16_000, "{}", ep.recent_samples);
    }

    #[test]
    fn energy_vad_hears_a_tone_over_quiet_noise() {
        let mut vad = EnergyVad::default();
        let quiet: Vec<f32> = (0..FRAME)
            .map(|i| ((i * 7919) % 13) as f32 * 1e-4)
            .collect();
        for _ in 0..50 {
            assert!(!vad.is_speech(&quiet));
        }
        let tone: Vec<f32> = (0..FRAME).map(|i| (i as f32 * 0.2).sin() * 0.3).collect();
        assert!(vad.is_speech(&tone));
        assert!(!vad.is_speech(&[]));
    }
}
