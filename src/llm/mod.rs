//! The local language model: llama.cpp through llama-cpp-2.
//!
//! [`LlmEngine`] owns one loaded GGUF model. [`LlmEngine::generate`] formats a chat with
//! the model's own template (or ChatML when the file has none), decodes the prompt and
//! samples tokens until an end-of-generation token, `max_tokens`, or the caller's
//! `on_token` callback asks to stop. Later work puts the engine on its own thread behind
//! a bounded request channel; this module stays synchronous and free of I/O.

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            temperature: 0.7,
            seed: 1234,
        }
    }
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

        let mut sampler = if opts.temperature <= 0.0 {
            LlamaSampler::greedy()
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
            let token = sampler.sample(&ctx, last_index);
            sampler.accept(token);
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
                if !on_token(&piece) {
                    break StopReason::Cancelled;
                }
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
        })
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
