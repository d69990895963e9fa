//! From a question to an answer: transcript → router → skill, or → language model →
//! fallback. This is the path `serena ask` takes; the live pipeline and the servers call
//! the same functions.
//!
//! Order: the router answers the commands it knows (source `router`); anything else goes
//! to the local language model when one is installed (`llm`); when none is, or it fails,
//! a local reply says plainly what is missing and how to fix it (`fallback`). Every answer
//! is recorded in the store's history with the source and per-stage timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::audio::decode;
use crate::config::Config;
use crate::llm::conversation::Conversation;
use crate::llm::health::{BreakerConfig, BreakerMemo};
use crate::llm::online::{ChatOptions, OnlineConfig, OnlineError, OnlineModel};
use crate::llm::{EngineOptions, GenerateOptions, LlmWorker};
use crate::models::{self, Catalog, ModelDirs, ModelKind};
use crate::power::{ModelSlot, ProfileSettings};
use crate::router::{Routed, Router};
use crate::skills;
use crate::store::{HistoryEntry, InputMode, ReplySource, Store};
use crate::stt::{DecodeOptions, WhisperEngine};
use crate::tools::run::CallRecord;
use crate::tools::{chat_with_tools, McpHub, ToolChoice, Toolbox};

/// What an answer needs.
#[derive(Clone, Debug)]
pub struct AnswerOptions<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Model search directories.
    pub dirs: &'a ModelDirs,
    /// The model catalog.
    pub catalog: &'a Catalog,
    /// The data directory (holds the store).
    pub data_dir: &'a Path,
    /// Override of `stt.model` for audio questions.
    pub stt_model: Option<&'a str>,
    /// The wall clock to answer with.
    pub now: SystemTime,
    /// Engines kept loaded by a long-running owner; `None` loads them for this answer.
    pub engines: Option<&'a Engines>,
    /// Forget the conversation before answering.
    pub new_conversation: bool,
    /// Timings of the stages before the answer (a transcription: `stt_ms`,
    /// `stt_load_ms`, ...), recorded in the history with the answer's own.
    pub stage_timings: BTreeMap<String, u64>,
    /// Told each sentence of a language-model reply as soon as it is generated (the live
    /// pipeline speaks it at once); the whole reply is still returned.
    pub on_sentence: Option<SentenceSink<'a>>,
}

/// A callback for the sentences of a reply as they are generated.
#[derive(Clone, Copy)]
pub struct SentenceSink<'a>(pub &'a dyn Fn(&str));

impl std::fmt::Debug for SentenceSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentenceSink")
    }
}

/// An answer, as `serena ask --json` prints it (and the control socket sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// What was asked (the transcript, for audio).
    pub transcript: String,
    /// The intent, when the router understood.
    pub intent: Option<String>,
    /// The intent's slots (and values the skill computed).
    pub slots: serde_json::Value,
    /// What Serena answers.
    pub reply: String,
    /// Who answered: `router`, `online`, `llm` or `fallback`.
    pub source: ReplySource,
    /// Milliseconds per stage.
    pub timings: BTreeMap<String, u64>,
    /// Tools the language model called, with their results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<CallRecord>,
    /// Each stage the question went through, and what happened there.
    #[serde(default)]
    pub hops: Vec<String>,
    /// The power profile in force for this answer.
    #[serde(default)]
    pub power_profile: String,
}

/// Errors that stop an answer (everything else becomes a fallback reply).
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The audio file could not be decoded.
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    /// The speech model is missing or broken.
    #[error(transparent)]
    Model(#[from] models::ModelError),
    /// Speech recognition failed.
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    /// The store could not be opened or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The router's templates failed to load.
    #[error(transparent)]
    Router(#[from] crate::router::RouterError),
}

/// The store's directory inside the data directory.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Transcribe an audio file as a spoken command and answer it.
///
/// # Errors
/// [`AnswerError`] for a bad file, a missing model, or a store failure.
pub fn answer_audio(path: &Path, opts: &AnswerOptions<'_>) -> Result<Answer, AnswerError> {
    let (transcript, stt_timings) = transcribe_audio(path, opts)?;
    let store = Store::open(&store_dir(opts.data_dir))?;
    let mut opts = opts.clone();
    opts.stage_timings.extend(stt_timings);
    answer_in(&store, &transcript, InputMode::File, &opts)
}

/// Transcribe an audio file as a spoken command: the transcript and the per-stage timings
/// (`decode_ms`, `stt_load_ms`, `stt_ms`). Touches no store, so a client can transcribe and
/// let the store's owner answer.
///
/// # Errors
/// [`AnswerError`] for a bad file or a missing or broken model.
pub fn transcribe_audio(
    path: &Path,
    opts: &AnswerOptions<'_>,
) -> Result<(String, BTreeMap<String, u64>), AnswerError> {
    let t = Instant::now();
    let samples = decode::decode_file_16k_mono(path)?;
    let decode_ms = t.elapsed().as_millis() as u64;
    let spec = opts.stt_model.unwrap_or(&opts.config.stt.model);
    let model = models::resolve(spec, ModelKind::Whisper, opts.dirs, opts.catalog)?;
    let t = Instant::now();
    let engine = WhisperEngine::load_with(&model, opts.config.stt.flash_attn)?;
    let load_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let decode_opts = DecodeOptions::for_command(&opts.config.stt);
    // A spoken command is short: size Whisper's window to it (guarded against loops).
    let heard = crate::stt::command::transcribe_command(&engine, &samples, &decode_opts)?;
    let stt_ms = t.elapsed().as_millis() as u64;
    let transcript = heard.text;
    let timings = BTreeMap::from([
        ("decode_ms".to_string(), decode_ms),
        ("stt_load_ms".to_string(), load_ms),
        ("stt_ms".to_string(), stt_ms),
        ("stt_audio_ctx".to_string(), u64::from(heard.audio_ctx)),
    ]);
    Ok((transcript, timings))
}

/// Answer a typed question.
///
/// # Errors
/// [`AnswerError::Store`] if the store cannot be opened.
pub fn answer_text(text: &str, opts: &AnswerOptions<'_>) -> Result<Answer, AnswerError> {
    let store = Store::open(&store_dir(opts.data_dir))?;
    answer_in(&store, text, InputMode::Text, opts)
}

/// Answer `text` with an open store (the store's owner answers this way for its clients).
///
/// # Errors
/// [`AnswerError::Store`] if a store read or write fails; [`AnswerError::Router`] if the
/// router's templates fail to load.
pub fn answer_in(
    store: &Store,
    text: &str,
    mode: InputMode,
    opts: &AnswerOptions<'_>,
) -> Result<Answer, AnswerError> {
    let mut timings = opts.stage_timings.clone();
    let meter = crate::usage::Meter::start();
    let t = Instant::now();
    let own_router;
    let router = match opts.engines {
        Some(engines) => engines.router()?,
        None => {
            own_router = Router::for_user()?;
            &own_router
        }
    };
    let routed = router.route(text);
    timings.insert("route_us".into(), t.elapsed().as_micros() as u64);
    let power = crate::power::now::resolve(opts.config, store, crate::store::to_unix_ms(opts.now));
    let profile = power.profile.as_str().to_string();
    if opts.new_conversation {
        Conversation::clear(store)?;
    }
    let env = skills::Env {
        store,
        now: opts.now,
        power_profile: &profile,
        models_loaded: &[],
    };
    let mut hops = Vec::new();
    let mut tool_calls = Vec::new();

    let (intent, mut slots, reply, source) = match &routed {
        Routed::Intent(m) => {
            hops.push(format!("router: {}", m.intent.name()));
            let t = Instant::now();
            let reply = skills::handle(m, &env).map_err(|skills::SkillError::Store(e)| e)?;
            timings.insert("skill_ms".into(), t.elapsed().as_millis() as u64);
            let mut slots = serde_json::to_value(&m.slots).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut slots {
                for (k, v) in reply.data {
                    map.entry(k).or_insert(v);
                }
            }
            (
                Some(m.intent.name().to_string()),
                slots,
                reply.text,
                ReplySource::Router,
            )
        }
        Routed::NotUnderstood if text.trim().is_empty() => (
            None,
            serde_json::json!({}),
            "I didn't hear anything.".to_string(),
            ReplySource::Fallback,
        ),
        Routed::NotUnderstood => {
            hops.push("router: not understood".into());
            let t = Instant::now();
            let outcome = ask_llm(text, store, &env, &power.settings, opts, &mut timings);
            timings.insert("llm_ms".into(), t.elapsed().as_millis() as u64);
            hops.extend(outcome.hops);
            tool_calls = outcome.calls;
            for hop in &hops {
                tracing::info!(hop = %hop, "answer path");
            }
            (None, serde_json::json!({}), outcome.reply, outcome.source)
        }
    };
    if slots.is_null() {
        slots = serde_json::json!({});
    }
    let usage = meter.finish();
    timings.insert("answer_cpu_ms".into(), usage.cpu.as_millis() as u64);
    timings.insert("peak_rss_mb".into(), usage.peak_rss_kb / 1024);
    store.append_history(HistoryEntry {
        id: 0,
        time_ms: crate::store::to_unix_ms(opts.now),
        mode,
        transcript: text.to_string(),
        intent: intent.clone(),
        slots: slots.clone(),
        reply: reply.clone(),
        source,
        timings: timings.clone(),
        power_profile: profile.clone(),
    })?;
    store.flush()?;
    Ok(Answer {
        transcript: text.to_string(),
        intent,
        slots,
        reply,
        source,
        timings,
        tool_calls,
        hops,
        power_profile: profile,
    })
}

/// Engines a long-running Serena keeps loaded between questions (`serena serve`, the live
/// pipeline); `serena ask` makes them for one question. Each loads on first use; the local
/// model lives in a [`ModelSlot`] that the memory manager ([`crate::power::IdleUnloader`])
/// may empty when it sits idle or memory runs low (the next question loads it again).
pub struct Engines {
    router: OnceLock<Router>,
    llm: ModelSlot<LlmWorker, LlmProblem>,
    toolbox: OnceLock<Option<Arc<Toolbox>>>,
    online: OnceLock<Option<Arc<OnlineModel>>>,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("llm", &self.llm)
            .finish_non_exhaustive()
    }
}

/// The local model's slot key: the settings it was loaded with.
fn llm_key(threads: u32, gpu_layers: u32) -> String {
    format!("threads={threads} gpu_layers={gpu_layers}")
}

fn parse_llm_key(key: &str) -> (u32, u32) {
    let mut threads = 0;
    let mut gpu_layers = 0;
    for part in key.split_whitespace() {
        match part.split_once('=') {
            Some(("threads", v)) => threads = v.parse().unwrap_or(0),
            Some(("gpu_layers", v)) => gpu_layers = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    (threads, gpu_layers)
}

/// The local model's worker as one answer gets it.
pub struct LlmFetched {
    /// The worker.
    pub worker: Arc<LlmWorker>,
    /// How long loading took, when this answer loaded it.
    pub loaded: Option<Duration>,
}

impl Engines {
    /// Engines for this configuration; nothing is loaded yet. Models unload after
    /// `power.idle_unload_seconds` without use (when an [`crate::power::IdleUnloader`]
    /// watches [`Engines::llm_slot`]).
    pub fn new(config: &Config, dirs: &ModelDirs, catalog: &Catalog) -> Engines {
        let (config, dirs, catalog) = (config.clone(), dirs.clone(), catalog.clone());
        let idle = config.power.idle_unload();
        let llm = ModelSlot::keyed("llm", idle, move |key: &str| {
            let (threads, gpu_layers) = parse_llm_key(key);
            load_llm(&config, &dirs, &catalog, threads, gpu_layers)
        });
        Engines {
            router: OnceLock::new(),
            llm,
            toolbox: OnceLock::new(),
            online: OnceLock::new(),
        }
    }

    /// The local model's worker, loading it on first use (or again after an unload).
    /// The worker runs with `threads` and `gpu_layers` (the power profile's); other values
    /// reload it, which happens only between questions.
    ///
    /// # Errors
    /// A readable reason when the model is missing or fails to load.
    pub fn llm(&self, threads: u32, gpu_layers: u32) -> Result<LlmFetched, LlmProblem> {
        let key = llm_key(threads, gpu_layers);
        if let Some(old) = self.llm.loaded_key().filter(|k| *k != key) {
            tracing::info!(from = %old, to = %key, "reloading the language model for the power profile");
        }
        let fetched = self.llm.get_as_blocking(&key)?;
        Ok(LlmFetched {
            worker: fetched.engine,
            loaded: fetched.loaded,
        })
    }

    /// The local model's slot, for the memory manager.
    pub fn llm_slot(&self) -> &ModelSlot<LlmWorker, LlmProblem> {
        &self.llm
    }

    /// The local model's name, when it is loaded.
    pub fn llm_loaded(&self) -> Option<String> {
        self.llm.peek().map(|w| w.name().to_string())
    }

    /// Unload the local model (the next question loads it again).
    pub fn unload_llm(&self) -> bool {
        self.llm.unload()
    }

    /// The intent router, compiled on first use (it takes milliseconds; routing takes
    /// microseconds).
    ///
    /// # Errors
    /// [`crate::router::RouterError`] when the user's sentence files do not load.
    pub fn router(&self) -> Result<&Router, crate::router::RouterError> {
        if let Some(r) = self.router.get() {
            return Ok(r);
        }
        let router = Router::for_user()?;
        Ok(self.router.get_or_init(|| router))
    }

    /// The online model, when `[online] url` is set. Made on first use, it takes up the
    /// breaker state the last process left in `store` (a one-shot `serena ask` thus skips
    /// an endpoint an earlier one found down).
    pub fn online(&self, config: &Config, store: &Store, now_ms: u64) -> Option<Arc<OnlineModel>> {
        self.online
            .get_or_init(|| {
                let model = online_for(config)?;
                if let Ok(Some(memo)) = store.setting_as::<BreakerMemo>(ONLINE_BREAKER) {
                    model.restore_breaker(&memo, now_ms);
                }
                Some(Arc::new(model))
            })
            .clone()
    }

    /// The tools: the skills and the configured MCP servers' tools (started on first use).
    pub fn toolbox(&self, config: &Config) -> Option<Arc<Toolbox>> {
        self.toolbox
            .get_or_init(|| {
                if config.tools.choice == "none" {
                    return None;
                }
                Some(Arc::new(toolbox_for(config)))
            })
            .clone()
    }
}

/// The online model `config` describes, if any.
pub fn online_for(config: &Config) -> Option<OnlineModel> {
    let c = &config.online;
    if c.url.trim().is_empty() {
        return None;
    }
    let timeout = Duration::from_secs(u64::from(c.timeout_s));
    Some(OnlineModel::new(OnlineConfig {
        name: host_of(&c.url),
        base_url: c.url.trim_end_matches('/').to_string(),
        model: c.model.clone(),
        api_key_env: (!c.api_key_env.is_empty()).then(|| c.api_key_env.clone()),
        timeout,
        breaker: BreakerConfig {
            failure_threshold: c.failures_to_open,
            cool_down: Duration::from_secs(u64::from(c.cooldown_s)),
            ..BreakerConfig::default()
        },
        ..OnlineConfig::default()
    }))
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    host.rsplit('@').next().unwrap_or(host).to_string()
}

/// The store setting that carries the online model's breaker across processes (`serena
/// ask` is one process per question; a long-running Serena also keeps it in memory).
pub const ONLINE_BREAKER: &str = "online.breaker";

/// The tools for `config`: the skills, plus the MCP servers of its `tools.mcp_config`.
pub fn toolbox_for(config: &Config) -> Toolbox {
    let timeout = Duration::from_secs(u64::from(config.tools.timeout_s));
    let path = if config.tools.mcp_config.is_empty() {
        let default = crate::paths::config_file().with_file_name("mcp.json");
        default.exists().then_some(default)
    } else {
        Some(PathBuf::from(&config.tools.mcp_config))
    };
    let hub = path.and_then(|path| match crate::tools::mcp::load_config(&path) {
        Ok(servers) if servers.is_empty() => None,
        Ok(servers) => Some(McpHub::start(servers, timeout)),
        Err(e) => {
            tracing::warn!(error = %e, "MCP servers not started");
            None
        }
    });
    Toolbox::new(hub, timeout)
}

/// Why the local model cannot answer.
#[derive(Debug)]
pub enum LlmProblem {
    /// No model is installed.
    Missing(String),
    /// The model failed to load.
    Broken(String),
}

fn load_llm(
    config: &Config,
    dirs: &ModelDirs,
    catalog: &Catalog,
    threads: u32,
    gpu_layers: u32,
) -> Result<LlmWorker, LlmProblem> {
    let cfg = &config.llm;
    let model =
        models::resolve(&cfg.model, ModelKind::Llm, dirs, catalog).map_err(|e| match e {
            models::ModelError::NotFound { .. } | models::ModelError::UnknownName(_) => {
                LlmProblem::Missing(e.to_string())
            }
            other => LlmProblem::Broken(other.to_string()),
        })?;
    LlmWorker::spawn(
        &model,
        EngineOptions {
            context: cfg.context,
            threads,
            gpu_layers,
        },
    )
    .map_err(|e| LlmProblem::Broken(e.to_string()))
}

/// The online model's reply, if it is configured, allowed, healthy and answers.
fn ask_online(
    online: &OnlineModel,
    messages: &[crate::llm::Message],
    store: &Store,
    opts: &AnswerOptions<'_>,
    hops: &mut Vec<String>,
) -> Option<String> {
    let name = online.name().to_string();
    let now_ms = crate::store::to_unix_ms(opts.now);
    let cfg = &opts.config;
    let chat = ChatOptions {
        max_tokens: cfg.llm.max_tokens,
        temperature: cfg.llm.temperature,
        deadline: Instant::now() + Duration::from_secs(u64::from(cfg.online.timeout_s)),
        stream: true,
    };
    let result = online.chat(messages, &chat, &mut |_| true);
    let kept = serde_json::to_value(online.breaker_memo(now_ms))
        .map_err(|e| crate::store::StoreError::InvalidInput(e.to_string()))
        .and_then(|v| store.set_setting(ONLINE_BREAKER, &v));
    if let Err(e) = kept {
        tracing::warn!(error = %e, "cannot store the online model's state");
    }
    match result {
        Ok(r) if !r.text.trim().is_empty() => {
            hops.push(format!(
                "online {name}: answered in {} ms ({} attempts)",
                r.latency.as_millis(),
                r.attempts
            ));
            Some(r.text.trim().to_string())
        }
        Ok(_) => {
            hops.push(format!("online {name}: empty reply"));
            None
        }
        Err(OnlineError::Unavailable { retry_in }) => {
            hops.push(format!(
                "online {name}: skipped, circuit open for {} s more",
                retry_in.as_millis().div_ceil(1000)
            ));
            None
        }
        Err(e) => {
            tracing::warn!(endpoint = %name, error = %e, "online model failed; going local");
            hops.push(format!("online {name}: {e}"));
            None
        }
    }
}

/// What the language-model stage produced.
struct LlmOutcome {
    reply: String,
    source: ReplySource,
    calls: Vec<CallRecord>,
    hops: Vec<String>,
}

/// The local model's answer (with conversation memory and tools), or a fallback that
/// says what is missing.
fn ask_llm(
    text: &str,
    store: &Store,
    env: &skills::Env<'_>,
    power: &ProfileSettings,
    opts: &AnswerOptions<'_>,
    timings: &mut BTreeMap<String, u64>,
) -> LlmOutcome {
    let cfg = &opts.config.llm;
    let mut hops = Vec::new();
    let idle = Duration::from_secs(u64::from(cfg.memory_idle_s));
    let mut conversation = if cfg.memory_turns == 0 {
        Conversation::default()
    } else {
        Conversation::load(store, opts.now, idle).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the conversation; starting afresh");
            Conversation::default()
        })
    };
    let messages = conversation.prompt(&cfg.system_prompt, text);

    let own;
    let engines = match opts.engines {
        Some(e) => e,
        None => {
            own = Engines::new(opts.config, opts.dirs, opts.catalog);
            &own
        }
    };
    if let Some(online) = engines.online(opts.config, store, crate::store::to_unix_ms(opts.now)) {
        let reply = if power.online_allowed {
            ask_online(&online, &messages, store, opts, &mut hops)
        } else {
            hops.push(format!(
                "online {}: not used in the {} profile",
                online.name(),
                env.power_profile
            ));
            None
        };
        if let Some(reply) = reply {
            if cfg.memory_turns > 0 {
                if let Err(e) =
                    conversation.record(store, text, &reply, cfg.memory_turns as usize, opts.now)
                {
                    tracing::warn!(error = %e, "cannot store the conversation");
                }
            }
            return LlmOutcome {
                reply,
                source: ReplySource::Online,
                calls: Vec::new(),
                hops,
            };
        }
    }
    let gpu_layers = power.llm_gpu_layers.unwrap_or(cfg.gpu_layers);
    let worker = match engines.llm(power.llm_threads, gpu_layers) {
        Ok(fetched) => {
            if let Some(took) = fetched.loaded {
                hops.push(format!("llm: loaded in {} ms", took.as_millis()));
                timings.insert("llm_load_ms".into(), took.as_millis() as u64);
            }
            fetched.worker
        }
        Err(LlmProblem::Missing(e)) => {
            tracing::info!(error = %e, "no language model; answering with the fallback");
            hops.push(format!("llm: not installed ({e})"));
            return LlmOutcome {
                reply: format!(
                    "I can only help with timers, lists, notes, the time and the system for now: \
                     no language model is installed. Install one with: serena models pull {}",
                    opts.catalog
                        .get(&cfg.model)
                        .map_or("qwen2.5-0.5b-instruct", |e| e.name.as_str())
                ),
                source: ReplySource::Fallback,
                calls: Vec::new(),
                hops,
            };
        }
        Err(LlmProblem::Broken(e)) => {
            tracing::warn!(error = %e, "the language model failed to load; answering with the fallback");
            hops.push(format!("llm: failed to load ({e})"));
            return LlmOutcome {
                reply: format!(
                    "My language model failed to load ({e}), so I can't answer that right now."
                ),
                source: ReplySource::Fallback,
                calls: Vec::new(),
                hops,
            };
        }
    };
    let toolbox = engines.toolbox(opts.config);
    let choice: ToolChoice = opts.config.tools.choice.parse().unwrap_or(ToolChoice::Auto);
    let gen = GenerateOptions {
        max_tokens: power.llm_max_tokens,
        temperature: cfg.temperature,
        seed: 1234,
        grammar: None,
    };
    let result = chat_with_tools(
        &worker,
        toolbox.as_deref(),
        messages,
        &gen,
        &choice,
        env,
        &mut |sentence: &str| {
            if let Some(sink) = opts.on_sentence {
                (sink.0)(sentence);
            }
        },
    );
    match result {
        Ok(chat) if !chat.reply.trim().is_empty() => {
            hops.push(format!(
                "llm: answered ({} tokens, {} tool calls)",
                chat.tokens,
                chat.calls.len()
            ));
            if cfg.memory_turns > 0 {
                if let Err(e) = conversation.record(
                    store,
                    text,
                    &chat.reply,
                    cfg.memory_turns as usize,
                    opts.now,
                ) {
                    tracing::warn!(error = %e, "cannot store the conversation");
                }
            }
            LlmOutcome {
                reply: chat.reply,
                source: ReplySource::Llm,
                calls: chat.calls,
                hops,
            }
        }
        Ok(chat) => {
            hops.push("llm: empty reply".into());
            LlmOutcome {
                reply: "I have no answer to that.".into(),
                source: ReplySource::Fallback,
                calls: chat.calls,
                hops,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the language model failed; answering with the fallback");
            hops.push(format!("llm: failed ({e})"));
            LlmOutcome {
                reply: format!("My language model failed ({e}), so I can't answer that right now."),
                source: ReplySource::Fallback,
                calls: Vec::new(),
                hops,
            }
        }
    }
}

/// Errors while speaking.
#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    /// Synthesis failed.
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
    /// The WAV file could not be written.
    #[error("cannot write {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's error.
        source: hound::Error,
    },
}

/// Speak `text`: to `output_file` if given; else to the configured speaker; and when the
/// speaker is not usable, to `<data dir>/last-reply.wav`. Returns the file written, if any.
///
/// # Errors
/// [`SpeakError`] when synthesis fails or the file cannot be written.
pub fn speak(
    text: &str,
    config: &Config,
    output_file: Option<&Path>,
    data_dir: &Path,
) -> Result<Option<PathBuf>, SpeakError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let tts = crate::tts::from_config(&config.tts)?;
    let speech = tts.synthesize(text)?;
    let write = |path: &Path| -> Result<Option<PathBuf>, SpeakError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::audio::playback::write_wav(path, &speech.samples, speech.sample_rate).map_err(
            |source| SpeakError::Wav {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Ok(Some(path.to_path_buf()))
    };
    if let Some(path) = output_file {
        return write(path);
    }
    match crate::audio::playback::play(
        &speech.samples,
        speech.sample_rate,
        &config.audio.output_device,
    ) {
        Ok(()) => Ok(None),
        Err(e) => {
            tracing::debug!(error = %e, "no usable speaker; writing the reply to a file");
            let written = write(&data_dir.join("last-reply.wav"))?;
            // Data files are the user's only (like the store).
            #[cfg(unix)]
            if let Some(path) = &written {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(written)
        }
    }
}
