//! Model management: the catalog, finding model files, verifying, importing and downloading.
//!
//! Lookup order for a model spec (`--model NAME|PATH` or a config value):
//! 1. a path to an existing file;
//! 2. a catalog name or file name, searched in `$SERENA_MODELS`, `./models`,
//!    `general.models_dir`, then `<data dir>/models`; each directory is searched
//!    directly and in its `whisper/`, `vad/` and `llm/` subdirectories.
//!
//! Every file is structurally verified ([`format::inspect`]) before an engine sees it.
//! `pull` downloads into `<data dir>/models/<kind>/`, resumes interrupted downloads and
//! checks the catalog's SHA-256 before the file takes its final name.

pub mod catalog;
pub mod download;
pub mod format;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Classify, ExitCode};
pub use catalog::{Catalog, Entry};
pub use format::{FormatProblem, ModelFormat};

/// Which engine a model file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Speech to text (whisper.cpp ggml).
    Whisper,
    /// Voice activity detection (whisper.cpp's Silero format).
    Vad,
    /// Language model (GGUF).
    Llm,
}

impl ModelKind {
    /// The subdirectory of a model directory that holds this kind.
    pub fn subdir(self) -> &'static str {
        match self {
            ModelKind::Whisper => "whisper",
            ModelKind::Vad => "vad",
            ModelKind::Llm => "llm",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subdir())
    }
}

/// Model errors. All map to exit code 4.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No file was found for a spec.
    #[error(
        "{kind} model `{spec}` not found (searched: {searched}); {hint}",
        searched = display_dirs(searched)
    )]
    NotFound {
        /// What was asked for.
        spec: String,
        /// Which kind.
        kind: ModelKind,
        /// The directories searched.
        searched: Vec<PathBuf>,
        /// How to get it.
        hint: String,
    },
    /// The file is not a usable model.
    #[error(transparent)]
    Inspect(#[from] format::InspectError),
    /// The file is a model, but for another engine.
    #[error("{path} is a {found}, not a {wanted} model")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it is.
        found: String,
        /// What was needed.
        wanted: ModelKind,
    },
    /// The name is not in the catalog.
    #[error("`{0}` is not in the catalog; `serena models list` shows the names")]
    UnknownName(String),
    /// A download failed.
    #[error(transparent)]
    Download(#[from] download::DownloadError),
    /// Copying, removing or creating a directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `rm` of a file Serena does not own.
    #[error("{0} is not in Serena's model directory; remove it yourself if you mean to")]
    NotOwned(PathBuf),
    /// The engine refused a file that passed the structural checks.
    #[error("{path}: the engine could not load it: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The engine's reason.
        reason: String,
    },
}

impl Classify for ModelError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Model
    }
}

/// Directories as one comma-separated line, for messages.
pub fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "nothing".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where to look for model files, in order.
#[derive(Clone, Debug)]
pub struct ModelDirs {
    /// Searched in order.
    pub search: Vec<PathBuf>,
    /// Where `pull` and `add` write: `<data dir>/models`.
    pub own: PathBuf,
}

impl ModelDirs {
    /// The standard search order for this configuration.
    pub fn new(config_models_dir: &Path, data_dir: &Path) -> ModelDirs {
        let mut search = Vec::new();
        if let Some(dir) = std::env::var_os(crate::paths::ENV_MODELS) {
            if !dir.is_empty() {
                search.push(PathBuf::from(dir));
            }
        }
        search.push(PathBuf::from("models"));
        if !config_models_dir.as_os_str().is_empty() {
            search.push(config_models_dir.to_path_buf());
        }
        let own = data_dir.join("models");
        search.push(own.clone());
        ModelDirs { search, own }
    }

    /// Every existing directory a file of `kind` may be in.
    fn candidates(&self, kind: Option<ModelKind>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in &self.search {
            out.push(dir.clone());
            match kind {
                Some(k) => out.push(dir.join(k.subdir())),
                None => {
                    for k in [ModelKind::Whisper, ModelKind::Vad, ModelKind::Llm] {
                        out.push(dir.join(k.subdir()));
                    }
                }
            }
        }
        out
    }

    /// Find a catalog entry's file, under its own name or one of its other names.
    pub fn find_entry(&self, entry: &Entry) -> Option<PathBuf> {
        std::iter::once(&entry.file)
            .chain(&entry.also_files)
            .find_map(|f| self.find_file(f, Some(entry.kind)))
    }

    /// Find a file named `file` for `kind`.
    pub fn find_file(&self, file: &str, kind: Option<ModelKind>) -> Option<PathBuf> {
        self.candidates(kind)
            .into_iter()
            .map(|d| d.join(file))
            .find(|p| p.is_file())
    }
}

/// A model located on disk.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    /// The file.
    pub path: PathBuf,
    /// The catalog entry's name, when the file is a catalog model.
    pub name: Option<String>,
    /// What the file's structure says it is.
    pub format: ModelFormat,
}

/// Resolve `spec` (a path, catalog name or file name) to a verified file of `kind`.
///
/// # Errors
/// [`ModelError::NotFound`] listing the directories searched and how to get the model;
/// [`ModelError::Inspect`] if the file is broken; [`ModelError::WrongKind`] if it is for
/// another engine.
pub fn resolve(
    spec: &str,
    kind: ModelKind,
    dirs: &ModelDirs,
    catalog: &Catalog,
) -> Result<Resolved, ModelError> {
    let as_path = Path::new(spec);
    let looks_like_path = spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/');
    let (path, name) = if as_path.is_file() {
        (
            as_path.to_path_buf(),
            catalog.by_file(file_name(as_path)).map(|e| e.name.clone()),
        )
    } else if looks_like_path {
        return Err(ModelError::NotFound {
            spec: spec.into(),
            kind,
            searched: vec![],
            hint: "no such file".into(),
        });
    } else if let Some(entry) = catalog.get(spec).filter(|e| e.kind == kind) {
        let found = dirs.find_entry(entry);
        match found {
            Some(path) => (path, Some(entry.name.clone())),
            None => {
                return Err(ModelError::NotFound {
                    spec: spec.into(),
                    kind,
                    searched: dirs.search.clone(),
                    hint: format!(
                    "get it with `serena models pull {}`, or put {} in one of those directories",
                    entry.name, entry.file
                ),
                })
            }
        }
    } else if let Some(path) = dirs.find_file(spec, Some(kind)) {
        (path, catalog.by_file(spec).map(|e| e.name.clone()))
    } else {
        return Err(ModelError::NotFound {
            spec: spec.into(),
            kind,
            searched: dirs.search.clone(),
            hint: format!(
                "`{spec}` is neither a file nor a {kind} model in the catalog (`serena models list`)"
            ),
        });
    };
    let format = format::inspect(&path)?;
    if format.kind() != kind {
        return Err(ModelError::WrongKind {
            path,
            found: format.describe(),
            wanted: kind,
        });
    }
    Ok(Resolved { path, name, format })
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// One model file found on disk by [`installed`].
#[derive(Clone, Debug, Serialize)]
pub struct Installed {
    /// The file.
    pub path: PathBuf,
    /// The catalog name, if the file name is in the catalog.
    pub name: Option<String>,
    /// Structure check result: the format, or the problem.
    pub status: Result<ModelFormat, String>,
}

/// Every model file (`*.bin`, `*.gguf`) in the search directories.
pub fn installed(dirs: &ModelDirs, catalog: &Catalog) -> Vec<Installed> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs.candidates(None) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("bin") | Some("gguf")
                    )
            })
            .collect();
        files.sort();
        for path in files {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !seen.insert(canonical) {
                continue;
            }
            let name = catalog.by_file(file_name(&path)).map(|e| e.name.clone());
            let status = format::inspect(&path).map_err(|e| match e {
                format::InspectError::Bad { problem, .. } => problem.to_string(),
                other => other.to_string(),
            });
            out.push(Installed { path, name, status });
        }
    }
    out
}

/// Copy a verified model file into `<own>/<kind>/`.
///
/// # Errors
/// [`ModelError::Inspect`] if the file is not a usable model; [`ModelError::Io`] on copy failure.
pub fn add(src: &Path, dirs: &ModelDirs) -> Result<PathBuf, ModelError> {
    let format = format::inspect(src)?;
    let dest_dir = dirs.own.join(format.kind().subdir());
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(&dest_dir).map_err(io(&dest_dir))?;
    let dest = dest_dir.join(file_name(src));
    let tmp = dest.with_extension("adding");
    std::fs::copy(src, &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok(dest)
}

/// Remove a model from Serena's own model directory.
///
/// # Errors
/// [`ModelError::NotOwned`] for files elsewhere; [`ModelError::NotFound`] if absent.
pub fn remove(spec: &str, dirs: &ModelDirs, catalog: &Catalog) -> Result<PathBuf, ModelError> {
    let file = catalog
        .get(spec)
        .map(|e| e.file.clone())
        .unwrap_or_else(|| spec.to_string());
    let own = ModelDirs {
        search: vec![dirs.own.clone()],
        own: dirs.own.clone(),
    };
    match own.find_file(&file, None) {
        Some(path) => {
            std::fs::remove_file(&path).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        }
        None => match dirs.find_file(&file, None) {
            Some(elsewhere) => Err(ModelError::NotOwned(elsewhere)),
            None => Err(ModelError::NotFound {
                spec: spec.into(),
                kind: catalog.get(spec).map_or(ModelKind::Whisper, |e| e.kind),
                searched: dirs.search.clone(),
                hint: "nothing to remove".into(),
            }),
        },
    }
}

/// SHA-256 of a file, as lowercase hex.
///
/// # Errors
/// I/O errors reading the file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
