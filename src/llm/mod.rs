//! The local language model: llama.cpp through llama-cpp-2.
//!
//! [`LlmEngine`] owns one loaded GGUF model. [`LlmEngine::generate`] formats a chat with
//! the model's own template (or ChatML when the file has none), decodes the prompt and
//! samples tokens until an end-of-generation token, `max_tokens`, or the caller's
//! `on_token` callback asks to stop; a [`Grammar`] constrains what it may emit.
//!
//! Around it:
//! - [`worker`]: the engine on its own thread behind a bounded request queue; callers get
//!   a stream of tokens and sentences back and can cancel it.
//! - [`sentences`]: cuts the stream into sentences so speech starts early.
//! - [`conversation`]: the last turns, bounded by tokens and kept in the store.
//! - [`health`] and [`online`]: the optional online model behind a circuit breaker.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;

use crate::models::{ModelError, Resolved};

pub mod conversation;
pub mod health;
pub mod online;
pub mod sentences;
pub mod worker;

pub use worker::{LlmWorker, ReplyStream, StreamEvent};

/// Errors from the language model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// llama.cpp's backend could not start.
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    /// The prompt does not fit in the context.
    #[error("the prompt needs {needed} tokens but the context holds {context}")]
    ContextOverflow {
        /// Prompt tokens.
        needed: usize,
        /// Context size.
        context: u32,
    },
    /// Decoding failed.
    #[error("llama.cpp failed: {0}")]
    Engine(String),
    /// A grammar did not parse.
    #[error("bad grammar: {0}")]
    Grammar(String),
    /// The engine's request queue is full.
    #[error("the language model is busy")]
    Busy,
    /// The engine's thread has stopped.
    #[error("the language model's thread has stopped")]
    Stopped,
}

/// A chat turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with this role.
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Generation settings.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Longest reply in tokens.
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// Sampling seed.
    pub seed: u32,
    /// A grammar the output must follow.
    pub grammar: Option<Grammar>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            temperature: 0.7,
            seed: 1234,
            grammar: None,
        }
    }
}

/// A llama.cpp grammar (GBNF) that constrains generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grammar {
    /// The GBNF text.
    pub gbnf: String,
    /// The rule to start from.
    pub root: String,
    /// Lazy grammars apply only once one of these words appears; free text before it.
    /// Empty: the grammar applies from the first token.
    pub triggers: Vec<String>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` was reached.
    MaxTokens,
    /// The caller stopped it.
    Cancelled,
    /// The context filled up.
    ContextFull,
}

/// What `generate` produced.
#[derive(Clone, Debug)]
pub struct Generation {
    /// The reply text.
    pub text: String,
    /// Tokens generated.
    pub tokens: u32,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Why it stopped.
    pub stop: StopReason,
    /// Old turns dropped so the prompt fit the context.
    pub dropped_messages: usize,
    /// Time to decode the prompt.
    pub prompt_time: std::time::Duration,
    /// Time from the start to the first piece of text (None when nothing was produced).
    pub first_token: Option<std::time::Duration>,
    /// Time for the whole generation.
    pub elapsed: std::time::Duration,
}

/// Engine settings fixed at load time.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Context size in tokens.
    pub context: u32,
    /// CPU threads.
    pub threads: u32,
    /// Layers offloaded to the GPU.
    pub gpu_layers: u32,
}

fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Backend(e.clone()))
}

/// The ggml version both engines run on, as llama.cpp reports it.
pub fn system_info() -> String {
    // llama_print_system_info lists the CPU features and backends ggml was built with.
    let ptr = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if ptr.is_null() {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A loaded GGUF model.
pub struct LlmEngine {
    model: LlamaModel,
    template: LlamaChatTemplate,
    opts: EngineOptions,
    name: String,
}

impl std::fmt::Debug for LlmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmEngine")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LlmEngine {
    /// Load a verified GGUF model.
    ///
    /// # Errors
    /// [`LlmError::Model`] with [`ModelError::Load`] when llama.cpp refuses the file.
    pub fn load(model: &Resolved, opts: EngineOptions) -> Result<LlmEngine, LlmError> {
        let backend = backend()?;
        let _span = tracing::info_span!("llm_load", model = %model.path.display()).entered();
        let params = LlamaModelParams::default().with_n_gpu_layers(opts.gpu_layers);
        let llama = LlamaModel::load_from_file(backend, &model.path, &params).map_err(|e| {
            ModelError::Load {
                path: model.path.clone(),
                reason: e.to_string(),
            }
        })?;
        let template = match llama.chat_template(None) {
            Ok(t) => t,
            Err(_) => {
                LlamaChatTemplate::new("chatml").map_err(|e| LlmError::Engine(e.to_string()))?
            }
        };
        Ok(LlmEngine {
            model: llama,
            template,
            opts,
            name: model.name.clone().unwrap_or_else(|| file_stem(&model.path)),
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prompt text for a chat, as the model's template formats it.
    ///
    /// # Errors
    /// [`LlmError::Engine`] if a message holds a NUL byte or the template fails.
    pub fn format_chat(&self, messages: &[Message]) -> Result<String, LlmError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LlmError::Engine(e.to_string()))?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| LlmError::Engine(e.to_string()))
    }

    /// Number of tokens `text` takes.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
            .len()
    }

    /// Drop the oldest turns of `messages` until the prompt leaves `reserve` tokens of the
    /// context free for the reply. The first message stays when it is the system prompt,
    /// and the last message (the question) always stays. Returns how many were dropped.
    ///
    /// # Errors
    /// [`LlmError::ContextOverflow`] when even the system prompt and the question do not
    /// fit; [`LlmError::Engine`] when the template fails.
    pub fn fit(&self, messages: &mut Vec<Message>, reserve: u32) -> Result<usize, LlmError> {
        let n_ctx = self.opts.context.max(128) as usize;
        let reserve = (reserve as usize).min(n_ctx / 2);
        let keep_first = usize::from(messages.first().is_some_and(|m| m.role == "system"));
        let mut dropped = 0;
        loop {
            let needed = self.count_tokens(&self.format_chat(messages)?);
            if needed + reserve < n_ctx {
                return Ok(dropped);
            }
            if messages.len() <= keep_first + 1 {
                return Err(LlmError::ContextOverflow {
                    needed: needed + reserve,
                    context: n_ctx as u32,
                });
            }
            messages.remove(keep_first);
            dropped += 1;
            // Never start the kept history with an assistant turn.
            if messages.len() > keep_first + 1 && messages[keep_first].role == "assistant" {
                messages.remove(keep_first);
                dropped += 1;
            }
        }
    }

    /// Generate a reply to `messages`. `on_token` receives each piece of text as it is
    /// decoded and returns `false` to stop.
    ///
    /// # Errors
    /// [`LlmError::ContextOverflow`] when the prompt does not fit; [`LlmError::Engine`]
    /// when llama.cpp fails.
    pub fn generate(
        &self,
        messages: &[Message],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(&str) -> bool,
    ) -> Result<Generation, LlmError> {
        let started = std::time::Instant::now();
        let backend = backend()?;
        let engine = |e: &dyn std::fmt::Display| LlmError::Engine(e.to_string());
        let prompt = self.format_chat(messages)?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let n_ctx = self.opts.context.max(128);
        if tokens.len() + 1 >= n_ctx as usize {
            return Err(LlmError::ContextOverflow {
                needed: tokens.len(),
                context: n_ctx,
            });
        }
        let threads = self.opts.threads.max(1) as i32;
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx.min(512))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = self
            .model
            .new_context(backend, ctx_params)
            .map_err(|e| engine(&e))?;

        let mut batch = LlamaBatch::new(512, 1);
        let mut pos: i32 = 0;
        for chunk in tokens.chunks(512) {
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let last = pos as usize + i + 1 == tokens.len();
                batch
                    .add(t, pos + i as i32, &[0], last)
                    .map_err(|e| engine(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| engine(&e))?;
            pos += chunk.len() as i32;
        }
        let prompt_time = started.elapsed();
        let mut first_token = None;

        // The grammar is kept apart from the chain: checking one sampled token against it
        // is cheap, checking the whole vocabulary is not (llama.cpp's common sampler does
        // the same). Only when the chain's choice breaks the grammar is every token checked.
        let mut grammar = match &opts.grammar {
            None => None,
            Some(g) => Some(
                if g.triggers.is_empty() {
                    LlamaSampler::grammar(&self.model, &g.gbnf, &g.root)
                } else {
                    LlamaSampler::grammar_lazy(&self.model, &g.gbnf, &g.root, &g.triggers, &[])
                }
                .map_err(|e| LlmError::Grammar(e.to_string()))?,
            ),
        };
        let mut sampler = if opts.temperature <= 0.0 {
            // In a chain, llama.cpp reuses one candidate array instead of filling a new
            // vocabulary-sized one per token (measured: 0.84× → par with llama-bench).
            LlamaSampler::chain_simple([LlamaSampler::greedy()])
        } else {
            LlamaSampler::chain_simple([
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::temp(opts.temperature),
                LlamaSampler::dist(opts.seed),
            ])
        };
        let mut text = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut generated = 0u32;
        let mut last_index = batch.n_tokens() - 1;
        let stop = loop {
            if generated >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            if pos as u32 + 1 >= n_ctx {
                break StopReason::ContextFull;
            }
            let token = match grammar.as_mut() {
                // `sample` also accepts the token into the chain.
                None => sampler.sample(&ctx, last_index),
                Some(g) => {
                    let token = sample_with_grammar(&ctx, last_index, &mut sampler, g)?;
                    sampler.accept(token);
                    g.try_accept(token).map_err(|e| engine(&e))?;
                    token
                }
            };
            if vocab.is_eog(token) {
                break StopReason::EndOfTurn;
            }
            generated += 1;
            pending.extend(vocab.token_to_piece(token, false, None));
            // Emit only complete UTF-8; a multi-byte character may span tokens.
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid > 0 {
                let piece = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                text.push_str(&piece);
                first_token.get_or_insert_with(|| started.elapsed());
                if !on_token(&piece) {
                    break StopReason::Cancelled;
                }
            }
            // The last token is not decoded: nothing would read its logits.
            if generated >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(|e| engine(&e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| engine(&e))?;
            last_index = 0;
        };
        Ok(Generation {
            text,
            tokens: generated,
            prompt_tokens: tokens.len() as u32,
            stop,
            dropped_messages: 0,
            prompt_time,
            first_token,
            elapsed: started.elapsed(),
        })
    }
}

/// The chain's choice if the grammar allows it, else the chain's choice among the tokens
/// the grammar allows. Accepts nothing.
fn sample_with_grammar(
    ctx: &llama_cpp_2::context::LlamaContext<'_>,
    index: i32,
    chain: &mut LlamaSampler,
    grammar: &mut LlamaSampler,
) -> Result<llama_cpp_2::token::LlamaToken, LlmError> {
    use llama_cpp_2::token::data::LlamaTokenData;
    use llama_cpp_2::token::data_array::LlamaTokenDataArray;
    let mut candidates = ctx.token_data_array_ith(index);
    candidates.apply_sampler(chain);
    if let Some(token) = candidates.selected_token() {
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        one.apply_sampler(grammar);
        if one.data.first().is_some_and(|d| d.logit().is_finite()) {
            return Ok(token);
        }
    }
    let mut candidates = ctx.token_data_array_ith(index);
    candidates.apply_sampler(grammar);
    candidates.apply_sampler(chain);
    candidates
        .selected_token()
        .ok_or_else(|| LlmError::Grammar("no token satisfies the grammar".into()))
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
