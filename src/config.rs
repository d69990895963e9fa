//! Serena's configuration: one TOML file, environment overrides, flag overrides.
//!
//! Precedence, lowest first: built-in defaults, the file (`serena config path`),
//! environment variables `SERENA_<SECTION>_<KEY>` (e.g. `SERENA_STT_MODEL=base.en`),
//! then `--set section.key=value` flags and the dedicated flags of each subcommand.
//!
//! Unknown sections or keys and out-of-range values are errors that name the key,
//! where the value came from, and what is allowed. `DEFAULT_FILE` is the commented
//! file `serena config init` writes; a test keeps it in step with [`Config::default`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Classify, ExitCode};

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    /// Paths and general behaviour.
    pub general: General,
    /// Speech to text (whisper.cpp).
    pub stt: Stt,
    /// The local language model (llama.cpp).
    pub llm: Llm,
    /// Speech synthesis.
    pub tts: Tts,
    /// Audio devices.
    pub audio: Audio,
    /// Wake words.
    pub wake: Wake,
    /// The store: history retention.
    pub store: StoreConfig,
    /// Tools the language model may call.
    pub tools: Tools,
    /// The optional online model.
    pub online: Online,
    /// Power profiles and the model memory manager.
    pub power: crate::power::PowerConfig,
}

/// `[tools]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    /// `auto` (the model decides), `required`, `none`, or `tool:NAME`.
    pub choice: String,
    /// Seconds one tool call may take.
    pub timeout_s: u32,
    /// MCP servers file (`{"mcpServers": {...}}`); empty: `mcp.json` beside the config file.
    pub mcp_config: String,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            choice: "auto".into(),
            timeout_s: 10,
            mcp_config: String::new(),
        }
    }
}

/// `[online]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Online {
    /// Base URL of an OpenAI-compatible API (e.g. `http://127.0.0.1:11434/v1`); empty: off.
    pub url: String,
    /// The model name to ask for.
    pub model: String,
    /// The environment variable that holds the API key (the key itself never goes here).
    pub api_key_env: String,
    /// Seconds one attempt may take.
    pub timeout_s: u32,
    /// Consecutive failures that open the circuit breaker.
    pub failures_to_open: u32,
    /// Seconds the breaker stays open before one trial request.
    pub cooldown_s: u32,
}

impl Default for Online {
    fn default() -> Self {
        Online {
            url: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            timeout_s: 10,
            failures_to_open: 3,
            cooldown_s: 30,
        }
    }
}

/// `[store]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// History entries older than this many days are removed (pruned in the background by a
    /// long-running Serena).
    pub history_max_days: u32,
    /// At most this many history entries are kept (the newest).
    pub history_max_entries: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_max_days: 90,
            history_max_entries: 100_000,
        }
    }
}

impl StoreConfig {
    /// The store's retention policy for these settings.
    pub fn retention(&self) -> crate::store::RetentionPolicy {
        crate::store::RetentionPolicy {
            history_max_age: std::time::Duration::from_secs(
                u64::from(self.history_max_days) * 24 * 3600,
            ),
            history_max_count: self.history_max_entries as usize,
            ..crate::store::RetentionPolicy::default()
        }
    }
}

/// `[general]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Data directory (store, wake words, downloaded models). Empty: the platform default.
    pub data_dir: PathBuf,
    /// Extra model directory searched after `SERENA_MODELS` and `./models`. Empty: none.
    pub models_dir: PathBuf,
}

impl Default for General {
    fn default() -> Self {
        General {
            data_dir: PathBuf::new(),
            models_dir: PathBuf::new(),
        }
    }
}

/// `[stt]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stt {
    /// Whisper model: a catalog name (`serena models list`) or a file path.
    pub model: String,
    /// Spoken language: `auto` or a code such as `en`, `de`.
    pub language: String,
    /// CPU threads; 0 picks min(4, available cores) as whisper-cli does.
    pub threads: u32,
    /// Beam size for file transcription; 1 is greedy decoding.
    pub beam_size: u32,
    /// Drop segments whose no-speech probability is above this.
    pub no_speech_threshold: f32,
    /// Voice activity detection model for `--vad` (catalog name or path).
    pub vad_model: String,
    /// Flash attention in whisper's encoder and decoder: much smaller compute buffers.
    pub flash_attn: bool,
}

impl Default for Stt {
    fn default() -> Self {
        Stt {
            model: "tiny.en".into(),
            language: "en".into(),
            threads: 0,
            beam_size: 5,
            no_speech_threshold: 0.6,
            vad_model: "silero-v6.2.0".into(),
            flash_attn: true,
        }
    }
}

/// `[llm]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Llm {
    /// GGUF model: a catalog name or a file path.
    pub model: String,
    /// Context size in tokens.
    pub context: u32,
    /// Longest reply in tokens.
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// CPU threads; 0 picks the number of available cores.
    pub threads: u32,
    /// Layers offloaded to the GPU (Metal, CUDA, Vulkan builds); 0 keeps everything on the CPU.
    pub gpu_layers: u32,
    /// The system prompt.
    pub system_prompt: String,
    /// Exchanges remembered for follow-up questions (0: none).
    pub memory_turns: u32,
    /// Seconds after which a quiet conversation starts afresh (0: never).
    pub memory_idle_s: u32,
}

impl Default for Llm {
    fn default() -> Self {
        Llm {
            model: "qwen2.5-0.5b-instruct".into(),
            context: 4096,
            max_tokens: 256,
            temperature: 0.7,
            threads: 0,
            gpu_layers: if cfg!(target_os = "macos") { 999 } else { 0 },
            system_prompt: "You are Serena, a helpful voice assistant running on this computer. \
                            Answer in one to three short spoken sentences."
                .into(),
            memory_turns: 8,
            memory_idle_s: 600,
        }
    }
}

/// Which speech synthesizer to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtsEngine {
    /// `say` on macOS, espeak-ng elsewhere.
    Auto,
    /// espeak-ng, run as a program.
    Espeak,
    /// macOS `say`.
    Say,
    /// No speech; replies are printed only.
    None,
}

impl fmt::Display for TtsEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TtsEngine::Auto => "auto",
            TtsEngine::Espeak => "espeak",
            TtsEngine::Say => "say",
            TtsEngine::None => "none",
        })
    }
}

/// `[tts]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tts {
    /// `auto`, `espeak`, `say` or `none`.
    pub engine: TtsEngine,
    /// Voice name for the engine (`en-us` for espeak-ng, `Samantha` for say). Empty: the default.
    pub voice: String,
    /// Speaking rate in words per minute.
    pub rate: u32,
}

impl Default for Tts {
    fn default() -> Self {
        Tts {
            engine: TtsEngine::Auto,
            voice: String::new(),
            rate: 175,
        }
    }
}

/// `[audio]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audio {
    /// Input device name as `serena devices` prints it, or `default`.
    pub input_device: String,
    /// Output device name as `serena devices` prints it, or `default`.
    pub output_device: String,
}

impl Default for Audio {
    fn default() -> Self {
        Audio {
            input_device: "default".into(),
            output_device: "default".into(),
        }
    }
}

/// `[wake]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wake {
    /// Wake words `listen` waits for, by name (`serena wake list`). Empty: every trained word.
    pub words: Vec<String>,
    /// Detection threshold for every word, between 0 and 1; 0 keeps each word's own.
    pub threshold: f32,
    /// Seconds after a wake word alone in which a command is taken.
    pub command_window_s: f32,
    /// Seconds after a reply in which a follow-up needs no wake word (0: off).
    pub follow_up_s: f32,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            words: Vec::new(),
            threshold: 0.0,
            command_window_s: 5.0,
            follow_up_s: 5.0,
        }
    }
}

/// The commented default file written by `serena config init`.
pub const DEFAULT_FILE: &str = include_str!("config/default.toml");

/// Where a configuration value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The configuration file at this path.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A `--set` flag or a dedicated flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration problem. Always maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("invalid configuration in {source_}: {message}")]
    Invalid {
        /// Where the bad value came from.
        source_: Source,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A value has the right type but is out of range.
    #[error("invalid configuration in {source_}: `{key}` = {value}: {allowed}")]
    OutOfRange {
        /// Where the bad value came from.
        source_: Source,
        /// `section.key`.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// `config init` would overwrite an existing file.
    #[error("{0} already exists; remove it or pass --force to overwrite it")]
    Exists(PathBuf),
    /// Writing the file failed.
    #[error("cannot write config file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Classify for ConfigError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ConfigError::Read { .. } | ConfigError::Write { .. } | ConfigError::Exists(_) => {
                ExitCode::Failure
            }
            ConfigError::Invalid { .. } | ConfigError::OutOfRange { .. } => ExitCode::Usage,
        }
    }
}

/// A configuration as loaded, with where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The file it was read from, if the file exists.
    pub file: Option<PathBuf>,
    /// Environment variables and flags that changed a value.
    pub overrides: Vec<Source>,
}

impl Config {
    /// Load from `path` (absent file: defaults), then apply `SERENA_<SECTION>_<KEY>`
    /// variables from `env`, then `section.key=value` pairs from `sets`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file exists but is unreadable; `Invalid` or
    /// `OutOfRange` naming the key and the source when a value is wrong.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Loaded, ConfigError> {
        let (mut table, file) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let table: toml::Table =
                    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                        source_: Source::File(path.to_path_buf()),
                        message: e.to_string(),
                    })?;
                (table, Some(path.to_path_buf()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (toml::Table::new(), None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file_source = Source::File(path.to_path_buf());
        let mut config = from_table(&table, &file_source)?;
        config.validate(&file_source)?;

        let defaults = defaults_table();
        let mut overrides = Vec::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SERENA_"))
            .collect();
        env.sort();
        for (var, raw) in env {
            let Some((section, key)) = split_env_name(&var, &defaults) else {
                continue;
            };
            let source = Source::Env(var.clone());
            apply(&mut table, &defaults, &section, &key, &raw, &source)?;
            config = from_table(&table, &source)?;
            config.validate(&source)?;
            overrides.push(source);
        }
        for set in sets {
            let source = Source::Flag(format!("--set {set}"));
            let Some((path, raw)) = set.split_once('=') else {
                return Err(ConfigError::Invalid {
                    source_: source,
                    message: "expected section.key=value".into(),
                });
            };
            let Some((section, key)) = path.trim().split_once('.') else {
                return Err(ConfigError::Invalid {
                    source_: source,
                    message: format!("`{path}` is not section.key"),
                });
            };
            apply(&mut table, &defaults, section, key, raw.trim(), &source)?;
            config = from_table(&table, &source)?;
            config.validate(&source)?;
            overrides.push(source);
        }
        Ok(Loaded {
            config,
            file,
            overrides,
        })
    }

    /// Check ranges that the types alone do not express.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first bad key.
    pub fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, allowed: &str| ConfigError::OutOfRange {
            source_: source.clone(),
            key: key.into(),
            value,
            allowed: allowed.into(),
        };
        if self.stt.model.trim().is_empty() {
            return Err(bad("stt.model", "\"\"".into(), "a model name or path"));
        }
        if !(self.stt.language == "auto"
            || (2..=3).contains(&self.stt.language.len())
                && self.stt.language.chars().all(|c| c.is_ascii_lowercase()))
        {
            return Err(bad(
                "stt.language",
                format!("{:?}", self.stt.language),
                "`auto` or a language code such as `en`",
            ));
        }
        if !(0.0..1.0).contains(&self.wake.threshold) {
            return Err(bad(
                "wake.threshold",
                self.wake.threshold.to_string(),
                "0 (each word's own) or more, below 1",
            ));
        }
        for (key, value) in [
            ("wake.command_window_s", self.wake.command_window_s),
            ("wake.follow_up_s", self.wake.follow_up_s),
        ] {
            if !(0.0..=600.0).contains(&value) {
                return Err(bad(key, value.to_string(), "0 to 600 seconds"));
            }
        }
        if self.stt.threads > 256 {
            return Err(bad("stt.threads", self.stt.threads.to_string(), "0 to 256"));
        }
        if !(1..=16).contains(&self.stt.beam_size) {
            return Err(bad(
                "stt.beam_size",
                self.stt.beam_size.to_string(),
                "1 to 16",
            ));
        }
        if !(0.0..=1.0).contains(&self.stt.no_speech_threshold) {
            return Err(bad(
                "stt.no_speech_threshold",
                self.stt.no_speech_threshold.to_string(),
                "0.0 to 1.0",
            ));
        }
        if !(128..=1 << 20).contains(&self.llm.context) {
            return Err(bad(
                "llm.context",
                self.llm.context.to_string(),
                "128 to 1048576",
            ));
        }
        if !(1..=1 << 16).contains(&self.llm.max_tokens) {
            return Err(bad(
                "llm.max_tokens",
                self.llm.max_tokens.to_string(),
                "1 to 65536",
            ));
        }
        if !(0.0..=2.0).contains(&self.llm.temperature) {
            return Err(bad(
                "llm.temperature",
                self.llm.temperature.to_string(),
                "0.0 to 2.0",
            ));
        }
        if self.llm.threads > 256 {
            return Err(bad("llm.threads", self.llm.threads.to_string(), "0 to 256"));
        }
        if !(1..=36_500).contains(&self.store.history_max_days) {
            return Err(bad(
                "store.history_max_days",
                self.store.history_max_days.to_string(),
                "1 to 36500",
            ));
        }
        if self.llm.memory_turns > 1000 {
            return Err(bad(
                "llm.memory_turns",
                self.llm.memory_turns.to_string(),
                "0 to 1000",
            ));
        }
        if let Err(why) = self.tools.choice.parse::<crate::tools::ToolChoice>() {
            return Err(bad(
                "tools.choice",
                format!("{:?}", self.tools.choice),
                &why,
            ));
        }
        if !(1..=3600).contains(&self.tools.timeout_s) {
            return Err(bad(
                "tools.timeout_s",
                self.tools.timeout_s.to_string(),
                "1 to 3600",
            ));
        }
        let url = &self.online.url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(
                "online.url",
                format!("{:?}", self.online.url),
                "empty (off) or an http:// or https:// URL",
            ));
        }
        if !(1..=600).contains(&self.online.timeout_s) {
            return Err(bad(
                "online.timeout_s",
                self.online.timeout_s.to_string(),
                "1 to 600",
            ));
        }
        if !(1..=100).contains(&self.online.failures_to_open) {
            return Err(bad(
                "online.failures_to_open",
                self.online.failures_to_open.to_string(),
                "1 to 100",
            ));
        }
        if !(1..=86_400).contains(&self.online.cooldown_s) {
            return Err(bad(
                "online.cooldown_s",
                self.online.cooldown_s.to_string(),
                "1 to 86400",
            ));
        }
        if let Err(e) = self.power.validate() {
            return Err(bad(&format!("power.{}", e.key), e.value, e.allowed));
        }
        if self.store.history_max_entries == 0 {
            return Err(bad("store.history_max_entries", "0".into(), "at least 1"));
        }
        if !(80..=450).contains(&self.tts.rate) {
            return Err(bad(
                "tts.rate",
                self.tts.rate.to_string(),
                "80 to 450 words per minute",
            ));
        }
        Ok(())
    }

    /// The configuration as TOML, as `serena config show` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Write [`DEFAULT_FILE`] to `path`, creating parent directories.
///
/// # Errors
/// [`ConfigError::Exists`] unless `force`; [`ConfigError::Write`] on I/O failure.
pub fn init_file(path: &Path, force: bool) -> Result<(), ConfigError> {
    if path.exists() && !force {
        return Err(ConfigError::Exists(path.to_path_buf()));
    }
    let write = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    std::fs::write(path, DEFAULT_FILE).map_err(write)
}

fn defaults_table() -> toml::Table {
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

fn from_table(table: &toml::Table, source: &Source) -> Result<Config, ConfigError> {
    Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| ConfigError::Invalid {
        source_: source.clone(),
        message: e.message().trim().to_string(),
    })
}

/// `SERENA_LLM_MAX_TOKENS` → (`llm`, `max_tokens`), if `llm` is a known section.
fn split_env_name(var: &str, defaults: &toml::Table) -> Option<(String, String)> {
    let rest = var.strip_prefix("SERENA_")?.to_ascii_lowercase();
    defaults.keys().find_map(|section| {
        let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
        (!key.is_empty()).then(|| (section.clone(), key.to_string()))
    })
}

fn apply(
    table: &mut toml::Table,
    defaults: &toml::Table,
    section: &str,
    key: &str,
    raw: &str,
    source: &Source,
) -> Result<(), ConfigError> {
    let Some(known) = defaults.get(section).and_then(toml::Value::as_table) else {
        let sections: Vec<&str> = defaults.keys().map(String::as_str).collect();
        return Err(ConfigError::Invalid {
            source_: source.clone(),
            message: format!(
                "unknown section `{section}`, expected one of {}",
                sections.join(", ")
            ),
        });
    };
    let Some(default) = known.get(key) else {
        let keys: Vec<&str> = known.keys().map(String::as_str).collect();
        return Err(ConfigError::Invalid {
            source_: source.clone(),
            message: format!(
                "unknown key `{key}` in [{section}], expected one of {}",
                keys.join(", ")
            ),
        });
    };
    let value = parse_value(raw, default);
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(key.to_string(), value);
            Ok(())
        }
        _ => Err(ConfigError::Invalid {
            source_: source.clone(),
            message: format!("`{section}` must be a table"),
        }),
    }
}

/// A raw override string as a TOML value shaped like the default: strings stay strings
/// (no quotes needed), numbers and booleans are parsed.
fn parse_value(raw: &str, default: &toml::Value) -> toml::Value {
    if default.is_str() {
        return toml::Value::String(raw.to_string());
    }
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        sets: &[&str],
    ) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).expect("write");
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(&path, env, &sets)
    }

    #[test]
    fn default_file_matches_defaults_and_documents_every_key() {
        let parsed: Config = toml::from_str(DEFAULT_FILE).expect("default file parses");
        assert_eq!(parsed, Config::default());
        for (section, keys) in defaults_table() {
            assert!(
                DEFAULT_FILE.contains(&format!("[{section}]")),
                "section [{section}] missing from config/default.toml"
            );
            for key in keys.as_table().expect("section table").keys() {
                let documented = DEFAULT_FILE
                    .lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")));
                assert!(
                    documented,
                    "{section}.{key} not documented in config/default.toml"
                );
            }
        }
    }

    #[test]
    fn missing_file_gives_defaults() {
        let loaded = load(None, &[], &[]).expect("load");
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.file.is_none());
    }

    #[test]
    fn unknown_key_names_key_file_and_allowed() {
        let err = load(Some("[stt]\nmodle = \"base.en\"\n"), &[], &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("modle"), "{msg}");
        assert!(msg.contains("config.toml"), "{msg}");
        assert!(msg.contains("model"), "{msg}");
        assert_eq!(err.exit_code(), ExitCode::Usage);
    }

    #[test]
    fn bad_enum_value_lists_allowed_values() {
        let msg = load(Some("[tts]\nengine = \"festival\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("festival") && msg.contains("espeak"), "{msg}");
    }

    #[test]
    fn out_of_range_names_key() {
        let msg = load(Some("[stt]\nbeam_size = 0\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("stt.beam_size") && msg.contains("1 to 16"),
            "{msg}"
        );
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let loaded = load(
            Some("[stt]\nmodel = \"base.en\"\nthreads = 2\n"),
            &[
                ("SERENA_STT_MODEL", "small.en"),
                ("SERENA_LLM_MAX_TOKENS", "64"),
            ],
            &["stt.model=medium.en"],
        )
        .expect("load");
        assert_eq!(loaded.config.stt.model, "medium.en");
        assert_eq!(loaded.config.stt.threads, 2);
        assert_eq!(loaded.config.llm.max_tokens, 64);
        assert_eq!(loaded.overrides.len(), 3);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let msg = load(None, &[("SERENA_STT_BEAM_SIZE", "many")], &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("SERENA_STT_BEAM_SIZE"), "{msg}");
        let msg = load(None, &[("SERENA_STT_COLOUR", "blue")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("SERENA_STT_COLOUR") && msg.contains("colour"),
            "{msg}"
        );
    }

    #[test]
    fn unrelated_serena_variables_are_ignored() {
        let loaded = load(
            None,
            &[
                ("SERENA_MODELS", "/tmp"),
                ("SERENA_POWER", "battery:15:discharging"),
            ],
            &[],
        )
        .expect("load");
        assert!(loaded.overrides.is_empty());
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/config.toml");
        init_file(&path, false).expect("first init");
        assert!(matches!(
            init_file(&path, false),
            Err(ConfigError::Exists(_))
        ));
        init_file(&path, true).expect("forced init");
    }
}
