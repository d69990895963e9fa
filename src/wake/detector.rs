//! The streaming wake-word detector: rustpotter behind a sans-I/O `push(frame)` interface.

use rustpotter::{Rustpotter, RustpotterConfig};

use super::{ScoreMode, WakeError, WakeWordModel, FRAME_SAMPLES, SAMPLE_RATE};

/// rustpotter's energy gate: skip the comparison while the audio's spectral energy stays
/// near its recent minimum (steady silence or noise). Once it opens it stays open 5 s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VadMode {
    /// Compare every 10 ms, whatever the audio.
    Off,
    /// Open at 2× the recent minimum (most sensitive; misses the least).
    #[default]
    Easy,
    /// Open at 2.5×.
    Medium,
    /// Open at 3× (least CPU in noise; may miss a quiet word).
    Hard,
}

/// Detector tuning shared by all words (thresholds and score modes are per word).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Energy gate. [`VadMode::Easy`] brings the idle cost from 0.017 (one recorded word) or
    /// 0.07 (one word from text) down to 0.002 CPU-seconds per audio second, with the same
    /// scores on every fixture clip.
    pub vad: VadMode,
    /// DTW band: how many 10 ms frames the live audio may drift from an example's timing
    /// (rustpotter's default 5; wider made no difference on the fixture clips).
    pub band_size: u16,
    /// Windows over the threshold needed before a detection counts (rustpotter's default 5,
    /// i.e. 50 ms of matching audio).
    pub min_scores: usize,
    /// Cheap pre-check against the averaged example; a window scoring below it is not
    /// compared with each example (0 turns it off; rustpotter's default 0.2).
    pub avg_threshold: f32,
    /// Report as soon as `min_scores` windows matched, instead of waiting half a window for a
    /// better one (lower latency, score and position less exact).
    pub eager: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            vad: VadMode::Easy,
            band_size: 5,
            min_scores: 5,
            avg_threshold: 0.2,
            eager: false,
        }
    }
}

impl DetectorConfig {
    fn to_rustpotter(&self, score_mode: ScoreMode) -> RustpotterConfig {
        let mut c = RustpotterConfig::default();
        c.detector.band_size = self.band_size;
        c.detector.min_scores = self.min_scores;
        c.detector.avg_threshold = self.avg_threshold;
        c.detector.eager = self.eager;
        c.detector.score_mode = score_mode.to_rustpotter();
        c.detector.vad_mode = match self.vad {
            VadMode::Off => None,
            VadMode::Easy => Some(rustpotter::VADMode::Easy),
            VadMode::Medium => Some(rustpotter::VADMode::Medium),
            VadMode::Hard => Some(rustpotter::VADMode::Hard),
        };
        c
    }

    fn check(&self) -> Result<(), WakeError> {
        if !(1..=50).contains(&self.band_size) {
            return Err(WakeError::InvalidOption(format!(
                "band_size {} outside 1..=50",
                self.band_size
            )));
        }
        if !(1..=100).contains(&self.min_scores) {
            return Err(WakeError::InvalidOption(format!(
                "min_scores {} outside 1..=100",
                self.min_scores
            )));
        }
        if !(0.0..1.0).contains(&self.avg_threshold) {
            return Err(WakeError::InvalidOption(format!(
                "avg_threshold {} outside 0..1",
                self.avg_threshold
            )));
        }
        Ok(())
    }
}

/// A wake word heard.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The wake word's name.
    pub name: String,
    /// Its score, 0 to 1 (above the word's threshold).
    pub score: f32,
    /// Sample position (16 kHz, counted from [`Detector::new`] or the last
    /// [`Detector::reset`]) where the best-matching window ended: the word ends at or shortly
    /// before it.
    pub at: u64,
    /// Sample position when the detection was reported; `emitted_at - at` is the latency
    /// added by waiting for a better match (half the longest example, unless `eager`).
    pub emitted_at: u64,
}

impl Detection {
    /// [`Detection::at`] in seconds.
    pub fn at_s(&self) -> f64 {
        self.at as f64 / f64::from(SAMPLE_RATE)
    }
}

/// One loaded word with its own rustpotter engine.
struct Word {
    model: WakeWordModel,
    threshold: f32,
    engine: Rustpotter,
    /// Score and end position of the engine's current best partial detection.
    best: Option<(f32, u64)>,
}

/// Spots several wake words in a 16 kHz mono stream. A pure state machine: feed frames of any
/// size with [`Detector::push`], get [`Detection`]s back.
///
/// Each word has its own rustpotter engine, so each keeps its own score mode, threshold,
/// window length and detection timing, and one word's near-miss never delays another's
/// detection. The cost grows with the number of words and their examples (see the scratch
/// report for figures). After a detection that word's engine starts afresh, so one utterance
/// gives one detection.
pub struct Detector {
    config: DetectorConfig,
    words: Vec<Word>,
    /// Samples waiting for a full rustpotter frame.
    pending: Vec<f32>,
    /// Samples pushed since construction or reset.
    position: u64,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("config", &self.config)
            .field("words", &self.words().collect::<Vec<_>>())
            .field("position", &self.position)
            .finish()
    }
}

impl Detector {
    /// A detector with no words.
    ///
    /// # Errors
    /// [`WakeError::InvalidOption`] if a setting is out of range.
    pub fn new(config: DetectorConfig) -> Result<Detector, WakeError> {
        config.check()?;
        Ok(Detector {
            config,
            words: Vec::new(),
            pending: Vec::with_capacity(FRAME_SAMPLES),
            position: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Adds a word with the threshold stored in its model.
    ///
    /// # Errors
    /// As [`Detector::add_with_threshold`].
    pub fn add(&mut self, model: &WakeWordModel) -> Result<(), WakeError> {
        self.add_with_threshold(model, model.threshold())
    }

    /// Adds a word with its own threshold (0 to 1, exclusive; higher means fewer false
    /// detections and more misses). The word starts listening with the next samples.
    ///
    /// # Errors
    /// [`WakeError::Duplicate`] if a word of that name is loaded; [`WakeError::InvalidOption`]
    /// for a threshold out of range; [`WakeError::Engine`] if rustpotter refuses the model
    /// (not expected: models are validated when built or loaded).
    pub fn add_with_threshold(
        &mut self,
        model: &WakeWordModel,
        threshold: f32,
    ) -> Result<(), WakeError> {
        check_threshold(threshold)?;
        if self.words.iter().any(|w| w.model.name() == model.name()) {
            return Err(WakeError::Duplicate {
                name: model.name().to_string(),
            });
        }
        let engine = self.engine_for(model, threshold)?;
        self.words.push(Word {
            model: model.clone(),
            threshold,
            engine,
            best: None,
        });
        Ok(())
    }

    fn engine_for(&self, model: &WakeWordModel, threshold: f32) -> Result<Rustpotter, WakeError> {
        let mut engine = Rustpotter::new(&self.config.to_rustpotter(model.score_mode()))
            .map_err(WakeError::Engine)?;
        debug_assert_eq!(engine.get_samples_per_frame(), FRAME_SAMPLES);
        engine
            .add_wakeword_ref(model.name(), model.to_ref_with_threshold(threshold))
            .map_err(WakeError::Engine)?;
        Ok(engine)
    }

    /// Changes a loaded word's threshold (its partial match so far is forgotten).
    ///
    /// # Errors
    /// [`WakeError::Unknown`] if no such word is loaded; [`WakeError::InvalidOption`] for a
    /// threshold out of range.
    pub fn set_threshold(&mut self, name: &str, threshold: f32) -> Result<(), WakeError> {
        check_threshold(threshold)?;
        let index = self
            .words
            .iter()
            .position(|w| w.model.name() == name)
            .ok_or_else(|| WakeError::Unknown {
                name: name.to_string(),
            })?;
        let engine = self.engine_for(&self.words[index].model, threshold)?;
        let word = &mut self.words[index];
        word.engine = engine;
        word.threshold = threshold;
        word.best = None;
        Ok(())
    }

    /// Removes a word; returns whether it was loaded.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.words.len();
        self.words.retain(|w| w.model.name() != name);
        self.words.len() != before
    }

    /// The loaded words and their thresholds.
    pub fn words(&self) -> impl Iterator<Item = (&str, f32)> {
        self.words.iter().map(|w| (w.model.name(), w.threshold))
    }

    /// Samples pushed since construction or the last [`Detector::reset`].
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The best match so far that has not become a detection yet (word and score), if any:
    /// for level meters and for tuning thresholds.
    pub fn partial(&self) -> Option<(&str, f32)> {
        self.words
            .iter()
            .filter_map(|w| {
                w.engine
                    .get_partial_detection()
                    .map(|d| (w.model.name(), d.score))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Feeds 16 kHz mono samples (any number; the pipeline's 480-sample frames are
    /// rustpotter's own size, so they pass straight through). Returns the words detected,
    /// usually none. Non-finite samples are taken as silence and values are clamped to
    /// -1..1.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Detection> {
        let mut detections = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.pending.extend(now.iter().map(|&v| {
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }));
            rest = later;
            self.position += take as u64;
            if self.pending.len() == FRAME_SAMPLES {
                for word in &mut self.words {
                    if let Some(d) = word.run_frame(self.pending.clone(), self.position) {
                        detections.push(d);
                    }
                }
                self.pending.clear();
            }
        }
        detections
    }

    /// Forgets all audio (feature windows, partial matches, buffered samples) and restarts
    /// the position at 0; the words and thresholds stay. Call it when the audio is
    /// interrupted (capture restarted, the assistant's own speech skipped).
    pub fn reset(&mut self) {
        for word in &mut self.words {
            word.engine.reset();
            word.best = None;
        }
        self.pending.clear();
        self.position = 0;
    }
}

impl Word {
    fn run_frame(&mut self, frame: Vec<f32>, position: u64) -> Option<Detection> {
        if let Some(d) = self.engine.process_samples(frame) {
            let at = self.best.take().map_or(position, |(_, at)| at);
            tracing::debug!(word = %d.name, score = d.score, at, "wake word detected");
            return Some(Detection {
                name: d.name,
                score: d.score,
                at,
                emitted_at: position,
            });
        }
        // Remember where the best partial match ended: the detection comes later.
        self.best = match (self.engine.get_partial_detection(), self.best) {
            (None, _) => None,
            (Some(p), Some((score, at))) if p.score == score => Some((score, at)),
            (Some(p), _) => Some((p.score, position)),
        };
        None
    }
}

fn check_threshold(threshold: f32) -> Result<(), WakeError> {
    if threshold > 0.0 && threshold < 1.0 {
        Ok(())
    } else {
        Err(WakeError::InvalidOption(format!(
            "threshold {threshold} must be between 0 and 1"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_is_send() {
        fn send<T: Send>() {}
        send::<Detector>();
        send::<WakeWordModel>();
    }

    #[test]
    fn an_empty_detector_counts_samples_and_detects_nothing() {
        let mut d = Detector::new(DetectorConfig::default()).unwrap();
        for n in [1, 479, 480, 481, 1000, 7] {
            assert!(d.push(&vec![0.1; n]).is_empty());
        }
        assert_eq!(d.position(), 2448);
        d.reset();
        assert_eq!(d.position(), 0);
    }

    #[test]
    fn bad_settings_are_refused() {
        for cfg in [
            DetectorConfig {
                band_size: 0,
                ..DetectorConfig::default()
            },
            DetectorConfig {
                min_scores: 0,
                ..DetectorConfig::default()
            },
            DetectorConfig {
                avg_threshold: 1.0,
                ..DetectorConfig::default()
            },
        ] {
            assert!(matches!(
                Detector::new(cfg),
                Err(WakeError::InvalidOption(_))
            ));
        }
    }
}
