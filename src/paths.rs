//! Where Serena keeps its configuration, data and models.
//!
//! Every location can be overridden, in this order: a flag, an environment variable,
//! the configuration file, then the platform default from the `directories` crate
//! (`~/.config/serena`, `~/.local/share/serena` on Linux; `~/Library/Application
//! Support/serena` on macOS).

use std::path::PathBuf;

use directories::ProjectDirs;

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "SERENA_CONFIG";
/// Environment variable naming the data directory (store, wake words, downloaded models).
pub const ENV_DATA_DIR: &str = "SERENA_DATA_DIR";
/// Environment variable naming an extra model directory, searched before the defaults.
pub const ENV_MODELS: &str = "SERENA_MODELS";

fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "serena")
}

/// The configuration file: `$SERENA_CONFIG`, else `<platform config dir>/config.toml`.
pub fn config_file() -> PathBuf {
    if let Some(path) = std::env::var_os(ENV_CONFIG) {
        return PathBuf::from(path);
    }
    match project_dirs() {
        Some(dirs) => dirs.config_dir().join("config.toml"),
        None => PathBuf::from("serena.toml"),
    }
}

/// The default data directory: `$SERENA_DATA_DIR`, else the platform data directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(path) = std::env::var_os(ENV_DATA_DIR) {
        return PathBuf::from(path);
    }
    match project_dirs() {
        Some(dirs) => dirs.data_dir().to_path_buf(),
        None => PathBuf::from(".serena"),
    }
}

/// A directory of the user's own intent templates (`*.yaml`, Home Assistant syntax), merged
/// over the built-in ones: `<platform config dir>/sentences`, next to the config file.
pub fn user_sentences_dir() -> PathBuf {
    config_file()
        .parent()
        .map(|d| d.join("sentences"))
        .unwrap_or_else(|| PathBuf::from("sentences"))
}
