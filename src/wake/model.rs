//! Wake-word models: training from recordings or text, silence trimming, `.rpw` files.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use rustpotter::{WakewordRef, WakewordRefBuildFromBuffers};

use super::espeak::{synthesize_16k, ESPEAK_PROGRAM};
use super::{WakeError, DEFAULT_TEXT_THRESHOLD, DEFAULT_THRESHOLD, MODEL_EXTENSION, SAMPLE_RATE};

/// Shortest example kept after trimming, milliseconds.
const MIN_EXAMPLE_MS: usize = 250;
/// Longest example, milliseconds: the detector's work per 10 ms grows with the longest.
const MAX_EXAMPLE_MS: usize = 3_000;
/// Most examples per word: each one is compared with the live audio every 10 ms.
const MAX_EXAMPLES: usize = 32;
/// Largest `.rpw` file read (32 examples of 3 s at 40 MFCCs are about 1.6 MB).
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Smallest and largest MFCC size accepted (rustpotter's default is 16).
const MFCC_SIZES: std::ops::RangeInclusive<u16> = 8..=40;
/// Feature frames per example in a file: 10 ms each.
const MIN_FRAMES: usize = 10;
const MAX_FRAMES: usize = MAX_EXAMPLE_MS / 10 + 10;

/// Level analysis frame for trimming and splitting: 10 ms.
const LEVEL_FRAME: usize = SAMPLE_RATE as usize / 100;
/// Audio kept on each side of the speech when trimming, in level frames (10 ms each).
const TRIM_PAD_FRAMES: usize = 3;
/// A recording whose loudest 10 ms is below this level (dBFS) holds no speech.
const SILENCE_DBFS: f32 = -55.0;
/// Level frames averaged (in power) for trimming and splitting: 50 ms.
const SMOOTH_FRAMES: usize = 5;
/// Speech is at least this far above the noise floor, dB...
const EDGE_ABOVE_FLOOR_DB: f32 = 3.0;
/// ...and somewhere reaches this far above it, dB...
const CORE_ABOVE_FLOOR_DB: f32 = 8.0;
/// ...and at most this far below the loudest frame, dB.
const BELOW_PEAK_DB: f32 = 40.0;
/// A recording whose loudest frame is less than this above its floor is not trimmed, dB.
const MIN_CONTRAST_DB: f32 = 10.0;
/// Silence that separates two utterances in [`split_utterances`], in level frames.
const SPLIT_GAP_FRAMES: usize = 30;
/// Shorter bursts are clicks, not utterances, in level frames.
const MIN_BURST_FRAMES: usize = 15;
/// Utterances peaking this far below the loudest one are noise, dB.
const UTTERANCE_BELOW_PEAK_DB: f32 = 20.0;

/// How a word's scores against its examples become its score; stored in the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreMode {
    /// The best example's score (rustpotter's default). Right for recorded examples: the
    /// user's own examples then count fully, even among synthetic ones.
    #[default]
    Max,
    /// The mean of the examples' scores.
    Average,
    /// The median.
    Median,
    /// The 75th percentile. Right for words made from text (many voices): it separated the
    /// wake words from other speech better than the maximum, with one threshold for all.
    P75,
    /// The 90th percentile.
    P90,
}

impl ScoreMode {
    pub(super) fn to_rustpotter(self) -> rustpotter::ScoreMode {
        match self {
            ScoreMode::Max => rustpotter::ScoreMode::Max,
            ScoreMode::Average => rustpotter::ScoreMode::Average,
            ScoreMode::Median => rustpotter::ScoreMode::Median,
            ScoreMode::P75 => rustpotter::ScoreMode::P75,
            ScoreMode::P90 => rustpotter::ScoreMode::P90,
        }
    }
}

/// How [`train`] builds a model.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// MFCC coefficients per 10 ms feature frame (8 to 40; rustpotter's default is 16). All
    /// words in one [`super::Detector`] must use the same size.
    pub mfcc_size: u16,
    /// Trim silence (and steady background noise) before and after each example. Leave it on
    /// unless the examples are already cut tightly: the detector's window is as long as the
    /// longest example, and silence in an example must then be matched too.
    pub trim: bool,
    /// Detection threshold stored in the model (0 to 1, exclusive).
    pub threshold: f32,
    /// Score mode stored in the model.
    pub score_mode: ScoreMode,
}

impl Default for TrainOptions {
    /// For recorded examples, alone or with synthetic ones: [`DEFAULT_THRESHOLD`],
    /// [`ScoreMode::Max`].
    fn default() -> Self {
        TrainOptions {
            mfcc_size: 16,
            trim: true,
            threshold: DEFAULT_THRESHOLD,
            score_mode: ScoreMode::Max,
        }
    }
}

impl TrainOptions {
    /// For words made from text only: [`DEFAULT_TEXT_THRESHOLD`], [`ScoreMode::P75`].
    pub fn text() -> TrainOptions {
        TrainOptions {
            threshold: DEFAULT_TEXT_THRESHOLD,
            score_mode: ScoreMode::P75,
            ..TrainOptions::default()
        }
    }
}

/// How [`from_text`] makes examples with espeak-ng: every voice at every speed.
#[derive(Clone, Debug, PartialEq)]
pub struct TextOptions {
    /// espeak-ng voices (`espeak-ng --voices=en` lists them; `+m3`, `+f3`... pick variants).
    pub voices: Vec<String>,
    /// Speaking rates, words per minute (espeak-ng's default is 175).
    pub speeds_wpm: Vec<u32>,
    /// The espeak-ng program.
    pub program: PathBuf,
    /// Training options for [`from_text`] ([`TrainOptions::text`] by default).
    pub train: TrainOptions,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            voices: [
                "en-us",
                "en-gb-x-rp",
                "en-us+m3",
                "en-us+f3",
                "en-gb-scotland",
            ]
            .map(String::from)
            .to_vec(),
            speeds_wpm: vec![140, 175, 210],
            program: PathBuf::from(ESPEAK_PROGRAM),
            train: TrainOptions::text(),
        }
    }
}

/// A trained wake word: rustpotter's wake-word reference (the MFCC features of each example,
/// their DTW average, the detection threshold) plus the score mode.
#[derive(Clone)]
pub struct WakeWordModel {
    file: RpwFile,
}

/// The `.rpw` file: rustpotter's `WakewordRef` fields, plus `score_mode`, which rustpotter
/// ignores when it reads the file (and which defaults to `max`, rustpotter's default, when a
/// file made by rustpotter lacks it).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct RpwFile {
    name: String,
    avg_features: Option<Vec<Vec<f32>>>,
    samples_features: HashMap<String, Vec<Vec<f32>>>,
    threshold: Option<f32>,
    avg_threshold: Option<f32>,
    rms_level: f32,
    mfcc_size: u16,
    #[serde(default)]
    score_mode: ScoreMode,
    /// What the word says (Serena's addition, like `score_mode`); cut from transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl RpwFile {
    fn from_ref(r: WakewordRef, score_mode: ScoreMode) -> RpwFile {
        RpwFile {
            name: r.name,
            avg_features: r.avg_features,
            samples_features: r.samples_features,
            threshold: r.threshold,
            avg_threshold: r.avg_threshold,
            rms_level: r.rms_level,
            mfcc_size: r.mfcc_size,
            score_mode,
            text: None,
        }
    }
}

impl std::fmt::Debug for WakeWordModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeWordModel")
            .field("name", &self.file.name)
            .field("examples", &self.examples())
            .field("mfcc_size", &self.file.mfcc_size)
            .field("threshold", &self.threshold())
            .field("score_mode", &self.file.score_mode)
            .field("longest_s", &self.longest_s())
            .finish()
    }
}

impl WakeWordModel {
    /// The wake word's name (also its file name in Serena's data dir).
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// Detection threshold: a window scoring above it is a detection.
    pub fn threshold(&self) -> f32 {
        self.file.threshold.unwrap_or(DEFAULT_THRESHOLD)
    }

    /// Changes the detection threshold stored in the model.
    ///
    /// # Errors
    /// [`WakeError::InvalidOption`] unless `0 < threshold < 1`.
    pub fn set_threshold(&mut self, threshold: f32) -> Result<(), WakeError> {
        check_threshold(threshold)?;
        self.file.threshold = Some(threshold);
        Ok(())
    }

    /// How the scores against the examples combine.
    pub fn score_mode(&self) -> ScoreMode {
        self.file.score_mode
    }

    /// What the word says, if it was recorded with the model (words trained by Serena);
    /// otherwise [`super::phrase_of`] its name.
    pub fn text(&self) -> Option<&str> {
        self.file.text.as_deref()
    }

    /// Records what the word says.
    pub fn set_text(&mut self, text: &str) {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        self.file.text = (!text.is_empty()).then_some(text);
    }

    /// Changes the score mode stored in the model.
    pub fn set_score_mode(&mut self, mode: ScoreMode) {
        self.file.score_mode = mode;
    }

    /// The low-power version of this word: its recorded examples and only the fastest
    /// speaking rate of its espeak-ng ones. Fast examples are the shortest, and the
    /// detector's work per 10 ms grows with the number and the length of the examples.
    /// Measured on the fixture word (2 recorded + 15 espeak examples): 7 examples, about
    /// 40% of the detector's CPU on speech, the same detection of another speaker (0.473)
    /// and the same best score over the negatives (0.433). A word with no espeak examples
    /// is returned unchanged.
    pub fn frugal(&self) -> WakeWordModel {
        let rate = |name: &str| -> Option<u32> { name.rsplit_once('@')?.1.parse().ok() };
        let Some(fastest) = self
            .file
            .samples_features
            .keys()
            .filter_map(|k| rate(k))
            .max()
        else {
            return self.clone();
        };
        let mut out = self.clone();
        out.file
            .samples_features
            .retain(|name, _| rate(name).is_none_or(|r| r == fastest));
        out
    }

    /// Names of the examples (`example-01`... for recordings, `VOICE@WPM` for espeak-ng).
    pub fn example_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .file
            .samples_features
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of examples the model compares the audio with.
    pub fn examples(&self) -> usize {
        self.file.samples_features.len()
    }

    /// MFCC coefficients per feature frame.
    pub fn mfcc_size(&self) -> u16 {
        self.file.mfcc_size
    }

    /// Length of the longest example, seconds: the detector's window.
    pub fn longest_s(&self) -> f32 {
        longest_frames(&self.file) as f32 / 100.0
    }

    /// The model as `.rpw` bytes (rustpotter's CBOR format).
    ///
    /// # Errors
    /// [`WakeError::Engine`] if serialization fails (not expected).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WakeError> {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&self.file, &mut bytes)
            .map_err(|e| WakeError::Engine(e.to_string()))?;
        Ok(bytes)
    }

    /// A model from `.rpw` bytes, validated as [`WakeWordModel::load`] does.
    ///
    /// # Errors
    /// [`WakeError::Corrupt`] if the bytes are not a valid wake-word reference.
    pub fn from_bytes(bytes: &[u8]) -> Result<WakeWordModel, WakeError> {
        parse(bytes).map_err(|reason| WakeError::Corrupt {
            path: PathBuf::from("<memory>"),
            reason,
        })
    }

    /// Writes the model to `path` (parent directories created), atomically: a temporary file
    /// in the same directory is renamed over `path`.
    ///
    /// # Errors
    /// [`WakeError::Io`] if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), WakeError> {
        let io = |source| WakeError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let bytes = self.to_bytes()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads and validates a `.rpw` wake-word reference file.
    ///
    /// Everything rustpotter would otherwise index or unwrap is checked (non-empty examples of
    /// 0.1 to 3 s, equal MFCC sizes, finite values, thresholds in 0..1), so a truncated,
    /// corrupt or hostile file gives an error and never a panic later in the detector.
    /// rustpotter's neural-network models (`WakewordModel`) are not supported.
    ///
    /// # Errors
    /// [`WakeError::Io`] if the file cannot be read; [`WakeError::Corrupt`] if it is not a
    /// valid wake-word reference (or is larger than 8 MiB).
    pub fn load(path: &Path) -> Result<WakeWordModel, WakeError> {
        let io = |source| WakeError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let corrupt = |reason| WakeError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(corrupt(format!(
                "larger than {} MiB",
                MAX_FILE_BYTES / 1024 / 1024
            )));
        }
        parse(&bytes).map_err(corrupt)
    }

    /// A copy of the rustpotter reference with `threshold` set, for the detector.
    pub(super) fn to_ref_with_threshold(&self, threshold: f32) -> WakewordRef {
        let f = &self.file;
        WakewordRef {
            name: f.name.clone(),
            avg_features: f.avg_features.clone(),
            samples_features: f.samples_features.clone(),
            threshold: Some(threshold),
            avg_threshold: f.avg_threshold,
            rms_level: f.rms_level,
            mfcc_size: f.mfcc_size,
        }
    }
}

fn longest_frames(r: &RpwFile) -> usize {
    r.samples_features.values().map(Vec::len).max().unwrap_or(0)
}

/// Decodes and validates a reference.
fn parse(bytes: &[u8]) -> Result<WakeWordModel, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let file: RpwFile = ciborium::de::from_reader(bytes).map_err(|e| match e {
        ciborium::de::Error::Io(_) => "the file ends early (truncated)".to_string(),
        other => format!("not a wake word reference ({other})"),
    })?;
    validate(&file)?;
    Ok(WakeWordModel { file })
}

fn validate(r: &RpwFile) -> Result<(), String> {
    if r.name.trim().is_empty() || r.name.len() > 256 {
        return Err("the wake word has no name".into());
    }
    if let Some(text) = &r.text {
        if text.chars().count() > 100 || text.chars().any(char::is_control) {
            return Err("its text is longer than 100 characters or has control characters".into());
        }
    }
    if !MFCC_SIZES.contains(&r.mfcc_size) {
        return Err(format!(
            "MFCC size {} outside {}..={}",
            r.mfcc_size,
            MFCC_SIZES.start(),
            MFCC_SIZES.end()
        ));
    }
    if r.samples_features.is_empty() {
        return Err("it has no examples".into());
    }
    if r.samples_features.len() > MAX_EXAMPLES {
        return Err(format!(
            "{} examples (at most {MAX_EXAMPLES})",
            r.samples_features.len()
        ));
    }
    let width = usize::from(r.mfcc_size);
    let check_matrix = |what: &str, m: &[Vec<f32>]| -> Result<(), String> {
        if !(MIN_FRAMES..=MAX_FRAMES).contains(&m.len()) {
            return Err(format!(
                "{what} has {} feature frames (expected {MIN_FRAMES} to {MAX_FRAMES})",
                m.len()
            ));
        }
        if m.iter().any(|frame| frame.len() != width) {
            return Err(format!("{what} has frames of the wrong size"));
        }
        if m.iter().flatten().any(|v| !v.is_finite()) {
            return Err(format!("{what} has non-finite values"));
        }
        Ok(())
    };
    for (key, m) in &r.samples_features {
        check_matrix(&format!("example {key:?}"), m)?;
    }
    if let Some(avg) = &r.avg_features {
        check_matrix("the averaged example", avg)?;
    }
    for (what, t) in [
        ("threshold", r.threshold),
        ("avg_threshold", r.avg_threshold),
    ] {
        if let Some(t) = t {
            if !(0.0..=1.0).contains(&t) {
                return Err(format!("{what} {t} outside 0..1"));
            }
        }
    }
    if !r.rms_level.is_finite() || r.rms_level < 0.0 {
        return Err("invalid RMS level".into());
    }
    Ok(())
}

/// Where Serena keeps the wake word `name`: `<data_dir>/wakewords/<name>.rpw`.
///
/// # Errors
/// [`WakeError::InvalidName`] if `name` is not usable as a file name (see [`train`]).
pub fn model_path(data_dir: &Path, name: &str) -> Result<PathBuf, WakeError> {
    check_name(name)?;
    Ok(data_dir
        .join("wakewords")
        .join(format!("{name}.{MODEL_EXTENSION}")))
}

fn check_name(name: &str) -> Result<(), WakeError> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.starts_with([' ', '-', '.'])
        && !name.ends_with(' ')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(WakeError::InvalidName {
            name: name.to_string(),
        })
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

/// Trains a wake word from recordings of it: 16 kHz mono samples, one utterance of the word
/// each (three to eight examples from the user's own voice work best; [`split_utterances`]
/// cuts a recording that repeats the word). With `opts.trim` silence around each example is
/// cut first.
///
/// `name` becomes the model's name and its file name: 1 to 64 letters, digits, spaces, `-`
/// or `_`, not starting with a space, `-` or `.`.
///
/// # Errors
/// [`WakeError::InvalidName`]; [`WakeError::NoSamples`] if `samples` is empty;
/// [`WakeError::BadSample`] for an example that has non-finite values, no speech, or is
/// shorter than 0.25 s or longer than 3 s after trimming; [`WakeError::InvalidOption`] for
/// options out of range (or more than 32 examples).
pub fn train(
    name: &str,
    samples: &[Vec<f32>],
    opts: &TrainOptions,
) -> Result<WakeWordModel, WakeError> {
    let examples: Vec<(String, &[f32], bool)> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("example-{:02}", i + 1), s.as_slice(), opts.trim))
        .collect();
    train_named(name, &examples, opts)
}

/// Makes a wake word from text: espeak-ng says `text` in every voice at every speed of
/// `opts` (15 examples by default), the examples are resampled to 16 kHz and trimmed, and a
/// model is trained with `opts.train` ([`TrainOptions::text`] by default: score mode
/// [`ScoreMode::P75`], threshold [`DEFAULT_TEXT_THRESHOLD`]).
///
/// Words made this way match real voices less closely than a speaker's own recordings match
/// that speaker; [`from_text_and_samples`] adds a few recordings.
///
/// # Errors
/// [`WakeError::InvalidName`]; [`WakeError::InvalidText`] if `text` is empty, longer than
/// 100 characters or has control characters; [`WakeError::EspeakMissing`] if espeak-ng is
/// not installed; [`WakeError::Espeak`] if a voice is unknown or espeak-ng fails; then as
/// [`train`].
pub fn from_text(name: &str, text: &str, opts: &TextOptions) -> Result<WakeWordModel, WakeError> {
    check_name(name)?;
    let owned = synthesize_examples(text, opts)?;
    let examples: Vec<(String, &[f32], bool)> = owned
        .iter()
        .map(|(k, s)| (k.clone(), s.as_slice(), opts.train.trim))
        .collect();
    train_named(name, &examples, &opts.train)
}

/// Makes a wake word from text and recordings together: the espeak-ng examples of
/// [`from_text`] (voices and speeds from `text_opts`) plus `samples` (16 kHz mono, trimmed
/// when `train_opts.trim`), trained with `train_opts` (use [`TrainOptions::default`]: score
/// mode [`ScoreMode::Max`], so the speaker's own examples count fully).
///
/// Measured: a word from 15 espeak-ng examples plus the two utterances of one recording
/// detected the recorded speaker (0.73) and another speaker (0.47) and scored at most 0.43 on
/// 22 clips of other speech; the recording alone did not reach the other speaker.
///
/// # Errors
/// As [`from_text`] and [`train`].
pub fn from_text_and_samples(
    name: &str,
    text: &str,
    samples: &[Vec<f32>],
    text_opts: &TextOptions,
    train_opts: &TrainOptions,
) -> Result<WakeWordModel, WakeError> {
    check_name(name)?;
    let owned = synthesize_examples(text, text_opts)?;
    let examples: Vec<(String, &[f32], bool)> = owned
        .iter()
        .map(|(k, s)| (k.clone(), s.as_slice(), true))
        .chain(samples.iter().enumerate().map(|(i, s)| {
            (
                format!("example-{:02}", i + 1),
                s.as_slice(),
                train_opts.trim,
            )
        }))
        .collect();
    train_named(name, &examples, train_opts)
}

/// espeak-ng examples of `text`, keyed `VOICE@WPM`.
fn synthesize_examples(
    text: &str,
    opts: &TextOptions,
) -> Result<Vec<(String, Vec<f32>)>, WakeError> {
    let text_err = |reason| WakeError::InvalidText {
        text: text.to_string(),
        reason,
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(text_err("it is empty"));
    }
    if text.chars().count() > 100 {
        return Err(text_err("longer than 100 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(text_err("it has control characters"));
    }
    if opts.voices.is_empty() || opts.speeds_wpm.is_empty() {
        return Err(WakeError::InvalidOption(
            "at least one voice and one speed are needed".into(),
        ));
    }
    if let Some(wpm) = opts.speeds_wpm.iter().find(|w| !(80..=450).contains(*w)) {
        return Err(WakeError::InvalidOption(format!(
            "speed {wpm} words per minute outside 80..=450"
        )));
    }
    let mut out = Vec::with_capacity(opts.voices.len() * opts.speeds_wpm.len());
    for voice in &opts.voices {
        for &wpm in &opts.speeds_wpm {
            let samples = synthesize_16k(&opts.program, voice, wpm, text)?;
            out.push((format!("{voice}@{wpm}"), samples));
        }
    }
    Ok(out)
}

/// Trains from `(key, samples, trim)` examples.
fn train_named(
    name: &str,
    examples: &[(String, &[f32], bool)],
    opts: &TrainOptions,
) -> Result<WakeWordModel, WakeError> {
    check_name(name)?;
    check_threshold(opts.threshold)?;
    if !MFCC_SIZES.contains(&opts.mfcc_size) {
        return Err(WakeError::InvalidOption(format!(
            "mfcc_size {} outside {}..={}",
            opts.mfcc_size,
            MFCC_SIZES.start(),
            MFCC_SIZES.end()
        )));
    }
    if examples.is_empty() {
        return Err(WakeError::NoSamples {
            name: name.to_string(),
        });
    }
    if examples.len() > MAX_EXAMPLES {
        return Err(WakeError::InvalidOption(format!(
            "{} examples (at most {MAX_EXAMPLES})",
            examples.len()
        )));
    }
    let bad = |index: usize, reason: String| WakeError::BadSample {
        name: name.to_string(),
        index,
        reason,
    };
    let mut buffers = HashMap::with_capacity(examples.len());
    for (index, (key, samples, trim)) in examples.iter().enumerate() {
        if samples.iter().any(|v| !v.is_finite()) {
            return Err(bad(index, "it has non-finite samples".into()));
        }
        let kept = if *trim {
            trim_silence(samples)
        } else {
            samples
        };
        if kept.is_empty() {
            return Err(bad(index, "no speech found (silent or too quiet)".into()));
        }
        let ms = kept.len() * 1000 / SAMPLE_RATE as usize;
        if ms < MIN_EXAMPLE_MS {
            return Err(bad(
                index,
                format!("{ms} ms of speech, at least {MIN_EXAMPLE_MS} ms needed"),
            ));
        }
        if ms > MAX_EXAMPLE_MS {
            return Err(bad(
                index,
                format!("{ms} ms long, at most {MAX_EXAMPLE_MS} ms (one wake word per example)"),
            ));
        }
        buffers.insert(key.clone(), wav_bytes(kept));
    }
    let mut inner = WakewordRef::new_from_sample_buffers(
        name.to_string(),
        Some(opts.threshold),
        None,
        buffers,
        opts.mfcc_size,
    )
    .map_err(WakeError::Engine)?;
    inner.threshold = Some(opts.threshold);
    let file = RpwFile::from_ref(inner, opts.score_mode);
    validate(&file).map_err(WakeError::Engine)?;
    Ok(WakeWordModel { file })
}

/// A 16 kHz mono 32-bit float WAV in memory (what rustpotter's trainer reads).
fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(samples.len() * 4 + 64));
    // Writing to memory cannot fail for lengths this small (≤ 3 s).
    if let Ok(mut writer) = hound::WavWriter::new(&mut cursor, spec) {
        for &s in samples {
            let _ = writer.write_sample(s);
        }
        let _ = writer.finalize();
    }
    cursor.into_inner()
}

/// Level in dBFS of each 10 ms frame, smoothed over 50 ms (so a single noisy frame is not
/// speech and a short dip inside a word is not silence).
fn frame_levels(samples: &[f32]) -> Vec<f32> {
    let power: Vec<f32> = samples
        .chunks(LEVEL_FRAME)
        .map(|f| f.iter().map(|v| v * v).sum::<f32>() / f.len() as f32)
        .collect();
    (0..power.len())
        .map(|i| {
            let window = &power
                [i.saturating_sub(SMOOTH_FRAMES / 2)..(i + SMOOTH_FRAMES / 2 + 1).min(power.len())];
            let mean = window.iter().sum::<f32>() / window.len() as f32;
            10.0 * (mean + 1e-12).log10()
        })
        .collect()
}

/// Speech runs in `levels` as inclusive frame ranges: stretches at least 3 dB above the noise
/// floor (the 10th percentile of levels) that reach 8 dB above it somewhere, ignoring
/// anything 40 dB below the loudest frame. The low edge threshold keeps a word's quiet
/// ends; the core threshold keeps noise bumps out. `None` if the recording is silent.
fn speech_runs(levels: &[f32]) -> Option<Vec<(usize, usize)>> {
    let peak = levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if peak < SILENCE_DBFS {
        return None;
    }
    let mut sorted = levels.to_vec();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10];
    if peak - floor < MIN_CONTRAST_DB {
        // Nothing stands out from the floor (speech throughout, or steady noise): keep all.
        return Some(vec![(0, levels.len() - 1)]);
    }
    let edge = (floor + EDGE_ABOVE_FLOOR_DB).max(peak - BELOW_PEAK_DB);
    let core = (floor + CORE_ABOVE_FLOOR_DB).max(peak - BELOW_PEAK_DB);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < levels.len() {
        if levels[i] < edge {
            i += 1;
            continue;
        }
        let start = i;
        while i < levels.len() && levels[i] >= edge {
            i += 1;
        }
        if levels[start..i].iter().any(|&l| l >= core) {
            runs.push((start, i - 1));
        }
    }
    Some(runs)
}

/// Utterances in `levels` as inclusive frame ranges: [`speech_runs`] less than 300 ms
/// apart merged, then those shorter than 150 ms (clicks) or peaking more than 20 dB below
/// the loudest (a door, a breath) dropped.
fn utterances(levels: &[f32]) -> Vec<(usize, usize)> {
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in speech_runs(levels).unwrap_or_default() {
        match merged.last_mut() {
            Some((_, last)) if start - *last <= SPLIT_GAP_FRAMES => *last = end,
            _ => merged.push((start, end)),
        }
    }
    let peak_of = |(a, b): (usize, usize)| {
        levels[a..=b]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let loudest = merged
        .iter()
        .map(|&r| peak_of(r))
        .fold(f32::NEG_INFINITY, f32::max);
    merged
        .into_iter()
        .filter(|&(a, b)| b + 1 - a >= MIN_BURST_FRAMES)
        .filter(|&r| peak_of(r) >= loudest - UTTERANCE_BELOW_PEAK_DB)
        .collect()
}

/// Samples of the frame range `first..=last` plus the padding on each side.
fn padded_span(samples: &[f32], first: usize, last: usize) -> &[f32] {
    let start = first.saturating_sub(TRIM_PAD_FRAMES) * LEVEL_FRAME;
    let end = ((last + 1 + TRIM_PAD_FRAMES) * LEVEL_FRAME).min(samples.len());
    samples.get(start..end).unwrap_or_default()
}

/// Cuts silence and background noise before the first and after the last utterance in
/// `samples` (16 kHz mono), keeping 30 ms on each side.
///
/// Levels are measured over 50 ms. Speech is a stretch at least 3 dB above the noise floor
/// (the 10th percentile of levels) that somewhere reaches 8 dB above it, within 40 dB of the
/// loudest level; stretches less than 300 ms apart form one utterance; utterances shorter
/// than 150 ms or peaking 20 dB below the loudest are noise. A recording with less than
/// 10 dB between floor and peak is kept whole; a silent one (below -55 dBFS) gives an empty
/// slice.
///
/// The floor estimate needs some silence in the recording: an example already cut tightly
/// around the word may lose its quiet ends (train it with `trim` off).
pub fn trim_silence(samples: &[f32]) -> &[f32] {
    let found = utterances(&frame_levels(samples));
    match (found.first(), found.last()) {
        (Some(&(first, _)), Some(&(_, last))) => padded_span(samples, first, last),
        _ => &samples[..0],
    }
}

/// Cuts a recording into its utterances (16 kHz mono), as found by [`trim_silence`]:
/// speech separated by at least 300 ms of silence, each with 30 ms of context. For training
/// from one recording in which the word is said several times; the pieces are cut already,
/// so train them with `trim` off.
pub fn split_utterances(samples: &[f32]) -> Vec<Vec<f32>> {
    utterances(&frame_levels(samples))
        .into_iter()
        .map(|(first, last)| padded_span(samples, first, last).to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tone burst of `secs` seconds at `amp`, between `pad` seconds of quiet noise.
    fn burst(pad: f32, secs: f32, amp: f32) -> Vec<f32> {
        let mut seed = 1u32;
        let mut noise = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let n_pad = (pad * 16_000.0) as usize;
        let n = (secs * 16_000.0) as usize;
        let mut out: Vec<f32> = (0..n_pad).map(|_| 0.001 * noise()).collect();
        out.extend(
            (0..n).map(|i| amp * (i as f32 * 2.0 * std::f32::consts::PI * 300.0 / 16_000.0).sin()),
        );
        out.extend((0..n_pad).map(|_| 0.001 * noise()));
        out
    }

    #[test]
    fn trim_keeps_the_speech_and_a_little_context() {
        let x = burst(0.5, 0.6, 0.3);
        let kept = trim_silence(&x);
        let secs = kept.len() as f32 / 16_000.0;
        // The speech, 30 ms on each side, and the 50 ms level smoothing's spread.
        assert!((0.6..=0.72).contains(&secs), "{secs} s kept");
    }

    #[test]
    fn silence_has_no_speech() {
        assert!(trim_silence(&[0.0; 16_000]).is_empty());
        assert!(trim_silence(&[]).is_empty());
        assert!(split_utterances(&[0.0; 16_000]).is_empty());
    }

    #[test]
    fn split_finds_each_utterance() {
        let mut x = burst(0.3, 0.5, 0.3);
        x.extend(burst(0.3, 0.7, 0.2));
        let parts = split_utterances(&x);
        assert_eq!(parts.len(), 2);
        let secs: Vec<f32> = parts.iter().map(|p| p.len() as f32 / 16_000.0).collect();
        assert!((0.5..=0.62).contains(&secs[0]), "{secs:?}");
        assert!((0.7..=0.82).contains(&secs[1]), "{secs:?}");
    }

    #[test]
    fn names_are_file_names() {
        for ok in ["porcupine", "hey serena", "Hé_Lé-2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " x",
            "-x",
            ".x",
            "a/b",
            "..",
            "a\\b",
            "x ",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_name(bad), Err(WakeError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        let p = model_path(Path::new("/data"), "hey serena").unwrap();
        assert_eq!(p, Path::new("/data/wakewords/hey serena.rpw"));
    }

    #[test]
    fn training_rejects_unusable_examples() {
        let opts = TrainOptions::default();
        let err = |samples: Vec<Vec<f32>>| train("w", &samples, &opts).unwrap_err().to_string();
        assert!(err(vec![]).contains("no examples"));
        assert!(err(vec![vec![0.0; 16_000]]).contains("no speech"));
        // A 0.1 s click is no speech at all once trimmed; untrimmed, it is too short.
        assert!(err(vec![burst(0.2, 0.1, 0.3)]).contains("no speech"));
        let untrimmed = TrainOptions {
            trim: false,
            ..TrainOptions::default()
        };
        let short = train("w", &[burst(0.0, 0.1, 0.3)], &untrimmed)
            .unwrap_err()
            .to_string();
        assert!(short.contains("at least 250 ms"), "{short}");
        assert!(err(vec![burst(0.2, 4.0, 0.3)]).contains("at most 3000 ms"));
        assert!(err(vec![vec![f32::NAN; 8_000]]).contains("non-finite"));
        let bad_opts = TrainOptions {
            threshold: 1.5,
            ..TrainOptions::default()
        };
        assert!(train("w", &[burst(0.2, 0.5, 0.3)], &bad_opts).is_err());
    }

    #[test]
    fn the_frugal_word_keeps_the_recordings_and_the_fastest_synthetic_rate() {
        let (a, b, c, d) = (
            burst(0.2, 0.5, 0.3),
            burst(0.2, 0.6, 0.2),
            burst(0.2, 0.4, 0.25),
            burst(0.2, 0.45, 0.3),
        );
        let examples: Vec<(String, &[f32], bool)> = vec![
            ("en-us@140".into(), &a, true),
            ("en-us@210".into(), &b, true),
            ("en-gb@210".into(), &c, true),
            ("example-01".into(), &d, true),
        ];
        let model = train_named("w", &examples, &TrainOptions::default()).unwrap();
        assert_eq!(
            model.frugal().example_names(),
            ["en-gb@210", "en-us@210", "example-01"]
        );
        // Recordings only: nothing to drop.
        let recorded = train("w", &[a.clone(), d.clone()], &TrainOptions::default()).unwrap();
        assert_eq!(recorded.frugal().examples(), 2);
    }

    #[test]
    fn a_model_round_trips_through_bytes() {
        let model = train(
            "tone",
            &[burst(0.2, 0.5, 0.3), burst(0.2, 0.6, 0.2)],
            &TrainOptions::default(),
        )
        .unwrap();
        assert_eq!(model.examples(), 2);
        let bytes = model.to_bytes().unwrap();
        let back = WakeWordModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.name(), "tone");
        assert_eq!(back.threshold(), DEFAULT_THRESHOLD);
        assert_eq!(back.to_bytes().unwrap().len(), bytes.len());
    }
}
