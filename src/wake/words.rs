//! The trained wake words in the data directory, and [`WakeWords`]: the ones `listen` waits
//! for, loaded into one [`Detector`] behind the pipeline's [`WakeDetector`] trait.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::pipeline::listen::{WakeDetector, WakeHit};

use super::{Detector, DetectorConfig, WakeError, WakeWordModel, MODEL_EXTENSION};

/// Where trained wake words live: `<data_dir>/wakewords`.
pub fn words_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wakewords")
}

/// What a wake word's name says: the name with `-` and `_` read as spaces ("hey_serena" says
/// "hey serena"). It is cut from the start of the transcript of the command.
pub fn phrase_of(name: &str) -> String {
    name.replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A wake-word file found in the data directory.
#[derive(Debug)]
pub struct Installed {
    /// The word's name (the file's stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The word, or why its file cannot be used.
    pub model: Result<WakeWordModel, WakeError>,
}

/// Every `.rpw` file in [`words_dir`], sorted by name. A file that cannot be read is listed
/// with its error rather than hiding the others.
///
/// # Errors
/// [`WakeError::Io`] if the directory exists but cannot be listed.
pub fn installed(data_dir: &Path) -> Result<Vec<Installed>, WakeError> {
    let dir = words_dir(data_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(WakeError::Io {
                action: "read",
                path: dir,
                source,
            })
        }
    };
    let mut out: Vec<Installed> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == MODEL_EXTENSION) && p.is_file())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            let model = WakeWordModel::load(&path);
            Some(Installed { name, path, model })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The wake words `listen` waits for, with the phrase each one says.
pub struct WakeWords {
    detector: Detector,
    phrases: HashMap<String, String>,
    names: Vec<String>,
}

impl std::fmt::Debug for WakeWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeWords")
            .field("words", &self.detector.words().collect::<Vec<_>>())
            .finish()
    }
}

impl WakeWords {
    /// Loads the words named in `names` from the data directory, or every trained word when
    /// `names` is empty. `threshold` replaces each word's own threshold; `frugal` loads
    /// each word's low-power version ([`WakeWordModel::frugal`]).
    ///
    /// # Errors
    /// [`WakeError::NoneTrained`] when there is nothing to load; [`WakeError::NotTrained`]
    /// for a name with no file; the file's own error when one is corrupt or unreadable (a
    /// word the user asked for is never skipped silently); [`WakeError::InvalidOption`] for
    /// a threshold outside (0, 1).
    pub fn load(
        data_dir: &Path,
        names: &[String],
        threshold: Option<f32>,
        config: DetectorConfig,
        frugal: bool,
    ) -> Result<WakeWords, WakeError> {
        let models = if names.is_empty() {
            let found = installed(data_dir)?;
            if found.is_empty() {
                return Err(WakeError::NoneTrained {
                    dir: words_dir(data_dir),
                });
            }
            found
                .into_iter()
                .map(|i| i.model)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let mut models = Vec::with_capacity(names.len());
            for name in names {
                let path = super::model_path(data_dir, name)?;
                if !path.is_file() {
                    return Err(WakeError::NotTrained {
                        name: name.clone(),
                        path,
                    });
                }
                models.push(WakeWordModel::load(&path)?);
            }
            models
        };
        let models: Vec<WakeWordModel> = if frugal {
            models.iter().map(WakeWordModel::frugal).collect()
        } else {
            models
        };
        WakeWords::new(&models, threshold, config)
    }

    /// The given words in one detector.
    ///
    /// # Errors
    /// As [`Detector::add`] and [`Detector::set_threshold`].
    pub fn new(
        models: &[WakeWordModel],
        threshold: Option<f32>,
        config: DetectorConfig,
    ) -> Result<WakeWords, WakeError> {
        let mut detector = Detector::new(config)?;
        let mut phrases = HashMap::new();
        let mut names = Vec::new();
        for model in models {
            match threshold {
                Some(t) => detector.add_with_threshold(model, t)?,
                None => detector.add(model)?,
            }
            let phrase = model
                .text()
                .map_or_else(|| phrase_of(model.name()), str::to_string);
            phrases.insert(model.name().to_string(), phrase);
            names.push(model.name().to_string());
        }
        Ok(WakeWords {
            detector,
            phrases,
            names,
        })
    }

    /// The words and their thresholds.
    pub fn words(&self) -> impl Iterator<Item = (&str, f32)> {
        self.detector.words()
    }
}

impl WakeDetector for WakeWords {
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn push(&mut self, frame: &[f32]) -> Option<WakeHit> {
        let best = self
            .detector
            .push(frame)
            .into_iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))?;
        let phrase = self
            .phrases
            .get(&best.name)
            .cloned()
            .unwrap_or_else(|| phrase_of(&best.name));
        Some(WakeHit {
            lag_samples: best.emitted_at.saturating_sub(best.at),
            name: best.name,
            phrase,
            score: best.score,
        })
    }

    fn reset(&mut self) {
        self.detector.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_its_words() {
        assert_eq!(phrase_of("hey_serena"), "hey serena");
        assert_eq!(phrase_of("hey-serena"), "hey serena");
        assert_eq!(phrase_of("porcupine"), "porcupine");
        assert_eq!(phrase_of("Hey  Jane"), "Hey Jane");
    }

    #[test]
    fn nothing_trained_is_a_clear_error_and_a_missing_name_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = WakeWords::load(dir.path(), &[], None, DetectorConfig::default(), false)
            .expect_err("nothing trained");
        assert!(matches!(err, WakeError::NoneTrained { .. }), "{err}");
        assert!(err.to_string().contains("serena wake train"), "{err}");
        let err = WakeWords::load(
            dir.path(),
            &["hey serena".into()],
            None,
            DetectorConfig::default(),
            false,
        )
        .expect_err("not trained");
        assert!(err.to_string().contains("hey serena.rpw"), "{err}");
    }

    #[test]
    fn a_corrupt_file_is_listed_with_its_error_and_refused_by_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(words_dir(dir.path())).expect("mkdir");
        std::fs::write(words_dir(dir.path()).join("broken.rpw"), b"not cbor").expect("write");
        std::fs::write(words_dir(dir.path()).join("notes.txt"), b"ignored").expect("write");
        let found = installed(dir.path()).expect("list");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "broken");
        assert!(matches!(found[0].model, Err(WakeError::Corrupt { .. })));
        let err = WakeWords::load(dir.path(), &[], None, DetectorConfig::default(), false)
            .expect_err("corrupt");
        assert!(matches!(err, WakeError::Corrupt { .. }), "{err}");
    }
}
