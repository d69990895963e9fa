//! The language model on its own thread.
//!
//! [`LlmWorker::spawn`] loads a model on a dedicated thread that owns it for its whole
//! life (llama.cpp contexts are not shared between threads). Callers send a request with
//! [`LlmWorker::start`] and get a [`ReplyStream`]: tokens and whole sentences as they are
//! produced, then the [`Generation`] summary. Dropping the stream, or
//! [`Canceller::cancel`], stops the generation at the next token.
//!
//! Edges: the request queue is bounded ([`LlmWorker::start`] answers
//! [`LlmError::Busy`] when it is full, rather than queue without limit); the event channel
//! is bounded and *blocks* the engine when the consumer (speech) is slower than the
//! model, which is the backpressure we want: text is never dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::mpsc as tmpsc;

use super::sentences::SentenceSplitter;
use super::{EngineOptions, GenerateOptions, Generation, LlmEngine, LlmError, Message};
use crate::models::Resolved;

/// Requests waiting for the engine beyond the one it is working on.
pub const DEFAULT_QUEUE: usize = 4;

/// Events buffered between the engine and a slow consumer.
const EVENT_BUFFER: usize = 64;

/// What a [`ReplyStream`] yields.
#[derive(Debug)]
pub enum StreamEvent {
    /// A piece of text, as decoded.
    Token(String),
    /// A complete sentence (the pieces since the previous one).
    Sentence(String),
    /// Generation ended.
    Done(Generation),
    /// Generation failed.
    Failed(LlmError),
}

/// Stops a generation from any thread.
#[derive(Clone, Debug)]
pub struct Canceller(Arc<AtomicBool>);

impl Canceller {
    /// Stop at the next token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The events of one request.
#[derive(Debug)]
pub struct ReplyStream {
    events: tmpsc::Receiver<StreamEvent>,
    cancel: Arc<AtomicBool>,
}

impl ReplyStream {
    /// The next event; `None` after `Done` or `Failed`.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        self.events.recv().await
    }

    /// The next event, blocking the thread (not for use inside an async task).
    pub fn blocking_next(&mut self) -> Option<StreamEvent> {
        self.events.blocking_recv()
    }

    /// A handle that cancels this generation.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
    }

    /// Wait for the end, passing each sentence to `on_sentence`.
    ///
    /// # Errors
    /// The engine's error, or [`LlmError::Stopped`] if its thread ended.
    pub fn wait(mut self, mut on_sentence: impl FnMut(&str)) -> Result<Generation, LlmError> {
        while let Some(event) = self.blocking_next() {
            match event {
                StreamEvent::Token(_) => {}
                StreamEvent::Sentence(s) => on_sentence(&s),
                StreamEvent::Done(g) => return Ok(g),
                StreamEvent::Failed(e) => return Err(e),
            }
        }
        Err(LlmError::Stopped)
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

struct Job {
    messages: Vec<Message>,
    opts: GenerateOptions,
    events: tmpsc::Sender<StreamEvent>,
    cancel: Arc<AtomicBool>,
}

/// A model owned by its own thread.
#[derive(Debug)]
pub struct LlmWorker {
    queue: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    name: String,
    load_time: std::time::Duration,
    served: Arc<AtomicU64>,
}

impl LlmWorker {
    /// Load `model` on a new thread; returns once it is loaded (or failed to load).
    ///
    /// # Errors
    /// The load error ([`LlmError::Model`] for a file llama.cpp refuses).
    pub fn spawn(model: &Resolved, opts: EngineOptions) -> Result<LlmWorker, LlmError> {
        Self::spawn_with_queue(model, opts, DEFAULT_QUEUE)
    }

    /// [`LlmWorker::spawn`] with a request queue of `queue` waiting requests.
    ///
    /// # Errors
    /// As [`LlmWorker::spawn`].
    pub fn spawn_with_queue(
        model: &Resolved,
        opts: EngineOptions,
        queue: usize,
    ) -> Result<LlmWorker, LlmError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let model = model.clone();
        let served = Arc::new(AtomicU64::new(0));
        let served_in = served.clone();
        let started = std::time::Instant::now();
        let thread = std::thread::Builder::new()
            .name("serena-llm".into())
            .spawn(move || {
                let engine = match LlmEngine::load(&model, opts) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(e.name().to_string()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in rx {
                    run(&engine, job, &served_in);
                }
                tracing::debug!("language model thread ends");
            })
            .map_err(|e| LlmError::Backend(format!("cannot start a thread: {e}")))?;
        let name = match ready_rx.recv() {
            Ok(Ok(name)) => name,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(LlmError::Stopped);
            }
        };
        Ok(LlmWorker {
            queue: Some(tx),
            thread: Some(thread),
            name,
            load_time: started.elapsed(),
            served,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long loading took.
    pub fn load_time(&self) -> std::time::Duration {
        self.load_time
    }

    /// Requests completed so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Start generating a reply to `messages`. The oldest turns are dropped first if the
    /// prompt and `opts.max_tokens` do not fit the context.
    ///
    /// # Errors
    /// [`LlmError::Busy`] when the queue is full; [`LlmError::Stopped`] if the thread ended.
    pub fn start(
        &self,
        messages: Vec<Message>,
        opts: GenerateOptions,
    ) -> Result<ReplyStream, LlmError> {
        let (events, rx) = tmpsc::channel(EVENT_BUFFER);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            messages,
            opts,
            events,
            cancel: cancel.clone(),
        };
        let queue = self.queue.as_ref().ok_or(LlmError::Stopped)?;
        queue.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => LlmError::Busy,
            mpsc::TrySendError::Disconnected(_) => LlmError::Stopped,
        })?;
        Ok(ReplyStream { events: rx, cancel })
    }
}

impl Drop for LlmWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the request in progress.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(engine: &LlmEngine, job: Job, served: &AtomicU64) {
    let Job {
        mut messages,
        opts,
        events,
        cancel,
    } = job;
    if cancel.load(Ordering::Relaxed) {
        return;
    }
    let _span = tracing::info_span!("llm_generate", model = engine.name()).entered();
    let dropped = match engine.fit(&mut messages, opts.max_tokens) {
        Ok(n) => n,
        Err(e) => {
            let _ = events.blocking_send(StreamEvent::Failed(e));
            return;
        }
    };
    if dropped > 0 {
        tracing::info!(dropped, "dropped old turns to fit the context");
    }
    let mut splitter = SentenceSplitter::new();
    let result = engine.generate(&messages, &opts, |piece| {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        // A closed channel means the caller went away: stop.
        if events
            .blocking_send(StreamEvent::Token(piece.to_string()))
            .is_err()
        {
            return false;
        }
        splitter
            .push(piece)
            .into_iter()
            .all(|s| events.blocking_send(StreamEvent::Sentence(s)).is_ok())
    });
    match result {
        Ok(mut generation) => {
            generation.dropped_messages = dropped;
            if let Some(rest) = splitter.finish() {
                let _ = events.blocking_send(StreamEvent::Sentence(rest));
            }
            tracing::info!(
                tokens = generation.tokens,
                prompt_tokens = generation.prompt_tokens,
                stop = ?generation.stop,
                ms = generation.elapsed.as_millis() as u64,
                "generated"
            );
            served.fetch_add(1, Ordering::Relaxed);
            let _ = events.blocking_send(StreamEvent::Done(generation));
        }
        Err(e) => {
            tracing::warn!(error = %e, "generation failed");
            let _ = events.blocking_send(StreamEvent::Failed(e));
        }
    }
}
