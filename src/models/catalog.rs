//! The built-in model catalog: what `serena models pull` can fetch.
//!
//! The data lives in `catalog.toml` next to this file: one `[[model]]` table per file with
//! its download URL, exact size and SHA-256, each taken from the publisher's own listing.
//! `SERENA_MODEL_MIRROR` replaces the `https://huggingface.co` prefix of every URL, for
//! people who keep a local mirror.

use serde::{Deserialize, Serialize};

use super::ModelKind;

/// Environment variable holding a mirror base URL that replaces `https://huggingface.co`.
pub const ENV_MIRROR: &str = "SERENA_MODEL_MIRROR";
const UPSTREAM: &str = "https://huggingface.co";

/// One downloadable model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Short name, used on the command line and in the config: `tiny.en`, `base`, ...
    pub name: String,
    /// Which engine it is for.
    pub kind: ModelKind,
    /// File name on disk.
    pub file: String,
    /// Download URL.
    pub url: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// One line for `models list`.
    pub description: String,
    /// Other names the same bytes are published under (for example whisper.cpp's
    /// repository copy of the Silero model); found by lookup like `file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_files: Vec<String>,
}

impl Entry {
    /// The URL to fetch, with `SERENA_MODEL_MIRROR` applied.
    pub fn effective_url(&self) -> String {
        match std::env::var(ENV_MIRROR) {
            Ok(mirror) if !mirror.is_empty() => match self.url.strip_prefix(UPSTREAM) {
                Some(rest) => format!("{}{rest}", mirror.trim_end_matches('/')),
                None => self.url.clone(),
            },
            _ => self.url.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: Vec<Entry>,
}

/// The catalog.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn builtin() -> Catalog {
        // The embedded file is checked by a unit test, so this cannot fail in a release.
        let file: File =
            toml::from_str(include_str!("catalog.toml")).unwrap_or(File { model: vec![] });
        Catalog {
            entries: file.model,
        }
    }

    /// All entries, in catalog order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry whose file name (or one of its other names) is `file`.
    pub fn by_file(&self, file: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.file == file || e.also_files.iter().any(|f| f == file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_is_consistent() {
        let file: File = toml::from_str(include_str!("catalog.toml")).expect("catalog.toml parses");
        assert!(
            file.model.len() >= 10,
            "catalog has {} entries",
            file.model.len()
        );
        let mut names = std::collections::HashSet::new();
        for e in &file.model {
            assert!(names.insert(e.name.clone()), "duplicate name {}", e.name);
            assert_eq!(
                e.sha256.len(),
                64,
                "{}: sha256 must be 64 hex digits",
                e.name
            );
            assert!(e
                .sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(e.url.starts_with("https://"), "{}", e.name);
            assert!(
                e.url.ends_with(&e.file),
                "{}: url must end with the file name",
                e.name
            );
            assert!(e.size > 100_000, "{}", e.name);
        }
        for kind in [ModelKind::Whisper, ModelKind::Vad, ModelKind::Llm] {
            assert!(file.model.iter().any(|e| e.kind == kind), "no {kind} model");
        }
    }
}
