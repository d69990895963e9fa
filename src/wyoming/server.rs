//! The Wyoming TCP server: one task per connection, engines behind a [`WyomingHandler`].
//!
//! What a connection can ask for (→ client to server, ← server to client):
//!
//! * → `describe` ← `info` (from [`WyomingHandler::info`]).
//! * → `ping` ← `pong` with the same text.
//! * → `transcribe`? → `audio-start` → `audio-chunk`* → `audio-stop` ←
//!   `transcript-start`, `transcript-chunk`, `transcript`, `transcript-stop` (the order
//!   of the reference README; without [`ServerOptions::stream_transcript`] only
//!   `transcript`). Audio may come at any rate and channel count (16-bit only); it is
//!   converted with [`WyomingHandler::to_16k_mono`]. `audio-chunk` without `audio-start`
//!   starts a stream in the chunk's format.
//! * → `synthesize` ← `audio-start`, `audio-chunk`* (of [`ServerOptions::samples_per_chunk`]
//!   samples), `audio-stop`. Streamed requests (→ `synthesize-start`,
//!   `synthesize-chunk`*, `synthesize` (ignored, for old servers), `synthesize-stop`) are
//!   spoken in one piece once complete and end with ← `synthesize-stopped`.
//! * → `recognize` ← `intent` or `not-recognized`.
//! * → `transcript` (text to handle) ← `handled` or `not-handled`; → `intent` goes to
//!   [`WyomingHandler::handle_intent`] the same way.
//! * Other types (`error`, `select-program`, `info`, ...) are ignored without being
//!   parsed, so only the data of the types above can be malformed.
//!
//! Bounds: [`Limits`] on every frame; a connection with no complete frame within
//! [`ServerOptions::read_timeout`] gets an `error` (`timeout`) and is closed; a response
//! write that stalls past [`ServerOptions::write_timeout`] closes the connection; at most
//! [`ServerOptions::max_connections`] connections (more get `error`
//! `too-many-connections` and are closed); at most [`ServerOptions::max_audio_seconds`]
//! (and [`ServerOptions::max_audio_bytes`]) of audio per utterance (`error`
//! `audio-too-long`).
//!
//! Engines (transcribe, synthesize, handle) run on the blocking pool and need a permit of
//! [`ServerOptions::engine_slots`], shared by all connections (and by whatever else the
//! caller shares it with). A request that gets none within [`ServerOptions::engine_wait`]
//! is answered `error` `{"text": "busy", "code": "busy"}` (for `handle`: `not-handled`
//! with text `busy`, since Home Assistant only stops waiting on `handled`/`not-handled`).
//!
//! Errors: a frame that does not parse gets an `error` event and closes that connection
//! only. A request that fails (engine error, busy, bad audio) gets an `error` event and,
//! with [`ServerOptions::close_on_error`] (the default), the connection is closed too:
//! reference clients such as Home Assistant ignore `error` events and wait for their
//! answer or for the connection to close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, error, info, warn, Instrument};

use super::audio::{
    check_input_format, default_to_16k_mono, pcm16le_to_samples, samples_to_pcm16le, MAX_RATE,
};
use super::codec::{encode_frame, read_frame, write_frame, Frame, Limits};
use super::error::WyomingError;
use super::event::{
    kind, AudioChunk, AudioFormat, AudioStart, AudioStop, Entity, ErrorEvent, Event, Intent, Reply,
    Transcribe, Transcript, TranscriptChunk, TranscriptStart,
};
use super::info::Info;

/// The engines behind the server. Every method is blocking: the server calls them on
/// tokio's blocking pool (`spawn_blocking`), never on the async workers.
pub trait WyomingHandler: Send + Sync + 'static {
    /// What the server offers, answered to `describe`. The server overwrites
    /// `supports_transcript_streaming` of every ASR program with
    /// [`ServerOptions::stream_transcript`].
    fn info(&self) -> Info;

    /// Transcribes one utterance of 16 kHz mono audio. `language` is the one asked for
    /// by `transcribe`, if any. An `Err` text is sent to the client in an `error` event.
    fn transcribe(&self, pcm_16k_mono: &[i16], language: Option<&str>) -> Result<String, String>;

    /// Speaks `text` with the voice named by the client, if any; returns mono samples and
    /// their sample rate.
    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<(Vec<i16>, u32), String>;

    /// Recognises an intent: its name and entities, or `None` (`not-recognized`).
    fn recognize(&self, text: &str) -> Option<(String, Vec<(String, Value)>)>;

    /// Handles a text command: `Ok(Some(reply))` is `handled`, `Ok(None)` is
    /// `not-handled`, `Err(text)` is `not-handled` with that text.
    fn handle(&self, text: &str) -> Result<Option<String>, String>;

    /// Handles an already recognised intent (a client sending `intent`). By default
    /// nothing is handled (`not-handled`).
    fn handle_intent(
        &self,
        name: &str,
        entities: &[(String, Value)],
    ) -> Result<Option<String>, String> {
        let _ = (name, entities);
        Ok(None)
    }

    /// Converts interleaved 16-bit audio at `rate` Hz with `channels` channels to 16 kHz
    /// mono for [`WyomingHandler::transcribe`]; runs on the blocking pool under the engine
    /// permit. The default downmixes but does not resample: it refuses anything but
    /// 16 kHz. Plug a real resampler in here.
    fn to_16k_mono(&self, samples: &[i16], rate: u32, channels: u16) -> Result<Vec<i16>, String> {
        default_to_16k_mono(samples, rate, channels)
    }
}

/// How the server behaves; [`ServerOptions::default`] is a sensible start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Bounds on each frame.
    pub limits: Limits,
    /// Longest wait for the next complete frame; then the connection is closed.
    pub read_timeout: Duration,
    /// Longest time one write to the client may take; then the connection is closed.
    pub write_timeout: Duration,
    /// Most audio per utterance, in seconds of the stream's own format.
    pub max_audio_seconds: u32,
    /// Most audio per utterance, in bytes, whatever the format (bounds memory for
    /// high-rate multi-channel streams; 24 MiB is 120 s of 48 kHz 16-bit stereo).
    pub max_audio_bytes: usize,
    /// Most connections served at once; more get an `error` and are closed.
    pub max_connections: usize,
    /// Permits for engine work (transcribe, synthesize, handle), shared by all
    /// connections; share the same semaphore with other users of the engines.
    pub engine_slots: Arc<Semaphore>,
    /// How long a request waits for an engine permit before it is answered `busy`.
    pub engine_wait: Duration,
    /// Send `transcript-start` / `-chunk` / `-stop` around `transcript`.
    pub stream_transcript: bool,
    /// Close the connection after an `error` event for a failed request.
    pub close_on_error: bool,
    /// Samples per `audio-chunk` of synthesized audio.
    pub samples_per_chunk: usize,
    /// Longest text accepted for synthesize, recognize and handle, in bytes.
    pub max_text_len: usize,
    /// How long [`serve`] waits for open connections after shutdown before aborting them.
    pub shutdown_grace: Duration,
    /// Counters, shared with whoever wants to read them.
    pub stats: Arc<Stats>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            limits: Limits::default(),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_audio_seconds: 120,
            max_audio_bytes: 24 * 1024 * 1024,
            max_connections: 16,
            engine_slots: Arc::new(Semaphore::new(1)),
            engine_wait: Duration::from_secs(2),
            stream_transcript: true,
            close_on_error: true,
            samples_per_chunk: 1024,
            max_text_len: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
            stats: Arc::new(Stats::default()),
        }
    }
}

/// Server counters (monotonic except `connections_active`).
#[derive(Debug, Default)]
pub struct Stats {
    connections_accepted: AtomicU64,
    connections_active: AtomicU64,
    connections_rejected: AtomicU64,
    frames_received: AtomicU64,
    frames_sent: AtomicU64,
    errors_sent: AtomicU64,
    malformed_frames: AtomicU64,
    timeouts: AtomicU64,
    busy_rejections: AtomicU64,
    transcriptions: AtomicU64,
    syntheses: AtomicU64,
    recognitions: AtomicU64,
    handle_requests: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Connections accepted (including rejected ones).
    pub connections_accepted: u64,
    /// Connections being served now.
    pub connections_active: u64,
    /// Connections turned away because [`ServerOptions::max_connections`] were open.
    pub connections_rejected: u64,
    /// Frames read.
    pub frames_received: u64,
    /// Frames written.
    pub frames_sent: u64,
    /// `error` events sent (all causes).
    pub errors_sent: u64,
    /// Frames that did not parse or were too large.
    pub malformed_frames: u64,
    /// Connections closed for sending nothing within the read timeout.
    pub timeouts: u64,
    /// Requests answered `busy` for want of an engine permit.
    pub busy_rejections: u64,
    /// Transcriptions run.
    pub transcriptions: u64,
    /// Syntheses run.
    pub syntheses: u64,
    /// Recognitions run.
    pub recognitions: u64,
    /// Handle requests run.
    pub handle_requests: u64,
}

impl Stats {
    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_active: get(&self.connections_active),
            connections_rejected: get(&self.connections_rejected),
            frames_received: get(&self.frames_received),
            frames_sent: get(&self.frames_sent),
            errors_sent: get(&self.errors_sent),
            malformed_frames: get(&self.malformed_frames),
            timeouts: get(&self.timeouts),
            busy_rejections: get(&self.busy_rejections),
            transcriptions: get(&self.transcriptions),
            syntheses: get(&self.syntheses),
            recognitions: get(&self.recognitions),
            handle_requests: get(&self.handle_requests),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Decrements `connections_active` however the connection task ends.
struct ActiveConnection(Arc<Stats>);

impl ActiveConnection {
    fn new(stats: Arc<Stats>) -> ActiveConnection {
        bump(&stats.connections_active);
        ActiveConnection(stats)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a closing connection keeps reading (and discarding) so that the peer gets our
/// last event instead of a reset.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// Serves Wyoming on `listener` until `shutdown` completes, then stops accepting, tells
/// open connections to finish (a request in progress completes), waits for them at most
/// [`ServerOptions::shutdown_grace`] and aborts the rest.
pub async fn serve<H, F>(listener: TcpListener, handler: Arc<H>, opts: ServerOptions, shutdown: F)
where
    H: WyomingHandler,
    F: Future<Output = ()>,
{
    let opts = Arc::new(opts);
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    info!(addr = ?listener.local_addr().ok(), "wyoming server listening");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    bump(&opts.stats.connections_accepted);
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            let span = tracing::info_span!("wyoming", %peer);
                            let task = connection(
                                stream,
                                peer,
                                handler.clone(),
                                opts.clone(),
                                stop_rx.clone(),
                                slot,
                            );
                            tasks.spawn(task.instrument(span));
                        }
                        Err(_) => {
                            bump(&opts.stats.connections_rejected);
                            warn!(%peer, "too many wyoming connections; refusing one");
                            tasks.spawn(reject(stream, opts.clone(), stop_rx.clone()));
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "wyoming accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_task_end(done),
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    let drained = timeout(opts.shutdown_grace, async {
        while let Some(done) = tasks.join_next().await {
            log_task_end(done);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            open = tasks.len(),
            "wyoming connections still open after the shutdown grace; aborting them"
        );
        tasks.shutdown().await;
    }
    info!("wyoming server stopped");
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            error!("a wyoming connection task panicked: {e}");
        }
    }
}

async fn connection<H: WyomingHandler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    opts: Arc<ServerOptions>,
    mut stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    debug!(%peer, "wyoming connection opened");
    // Small events (pong, transcript) should not wait for Nagle.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let (read_half, write_half) = stream.into_split();
    let stopped = async move {
        // Also returns when the sender is gone, which only happens once serve() ends.
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    serve_connection(
        BufReader::new(read_half),
        write_half,
        handler,
        &opts,
        stopped,
        Some(slot),
    )
    .await;
    debug!(%peer, "wyoming connection closed");
}

/// Tells a connection over the limit why it is refused, then closes it.
async fn reject(stream: TcpStream, opts: Arc<ServerOptions>, mut stop: watch::Receiver<bool>) {
    let (read_half, mut write_half) = stream.into_split();
    let frame = Event::Error(ErrorEvent::new(
        "too many connections",
        "too-many-connections",
    ))
    .into_frame();
    if let Ok(Ok(())) = timeout(opts.write_timeout, write_frame(&mut write_half, &frame)).await {
        bump(&opts.stats.frames_sent);
        bump(&opts.stats.errors_sent);
    }
    let _ = timeout(opts.write_timeout, write_half.shutdown()).await;
    let mut reader = BufReader::new(read_half);
    tokio::select! {
        () = linger(&mut reader) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

/// Reads and discards what the peer still sends, briefly, so that closing does not reset
/// the connection before the peer has read our last event.
async fn linger<R: AsyncBufRead + Unpin>(reader: &mut R) {
    let _ = timeout(LINGER, async {
        let mut discarded = 0usize;
        while discarded < LINGER_BYTES {
            match reader.fill_buf().await {
                Ok(buf) if !buf.is_empty() => {
                    let n = buf.len();
                    reader.consume(n);
                    discarded += n;
                }
                _ => break,
            }
        }
    })
    .await;
}

/// How a connection ended.
enum Ending {
    /// The peer closed, or we are shutting down: close normally.
    Normal,
    /// We sent an error and close: linger so that the peer can read it.
    AfterError,
    /// Writing failed: nothing more can be sent.
    Dead,
}

/// Serves one connection on any byte stream (TCP, Unix socket, stdio, in-memory) until
/// the peer closes, an error closes it, or `shutdown` completes (between events: a
/// request in progress is finished first).
///
/// `slot` (the connection's place under [`ServerOptions::max_connections`]) is given back
/// before the peer sees the close, so a peer that has seen its connection end can count on
/// the slot being free; lingering after an error does not hold it.
pub async fn serve_connection<R, W, H, F>(
    mut reader: R,
    writer: W,
    handler: Arc<H>,
    opts: &ServerOptions,
    shutdown: F,
    slot: Option<OwnedSemaphorePermit>,
) where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
    H: WyomingHandler,
    F: Future<Output = ()>,
{
    let _active = ActiveConnection::new(opts.stats.clone());
    let mut conn = Connection {
        handler,
        opts,
        writer: BufWriter::new(writer),
        transcribe: None,
        audio: AudioState::Idle,
        synth_stream: None,
    };
    tokio::pin!(shutdown);
    let ending = loop {
        let read = tokio::select! {
            biased;
            () = &mut shutdown => break Ending::Normal,
            read = timeout(opts.read_timeout, read_frame(&mut reader, &opts.limits)) => read,
        };
        let frame = match read {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break Ending::Normal,
            Err(_elapsed) => {
                bump(&opts.stats.timeouts);
                debug!("no wyoming event within {:?}; closing", opts.read_timeout);
                let text = format!("no event within {} s; closing", opts.read_timeout.as_secs());
                break match conn.send_error("timeout", text).await {
                    Ok(()) => Ending::AfterError,
                    Err(_) => Ending::Dead,
                };
            }
            Ok(Err(e)) if e.is_protocol_violation() => {
                bump(&opts.stats.malformed_frames);
                warn!(error = %e, "bad wyoming frame; closing the connection");
                break match conn.send_error(e.code(), e.to_string()).await {
                    Ok(()) => Ending::AfterError,
                    Err(_) => Ending::Dead,
                };
            }
            Ok(Err(e)) => {
                debug!(error = %e, "wyoming read ended");
                break Ending::Dead;
            }
        };
        bump(&opts.stats.frames_received);
        let flow = conn.on_frame(frame).await;
        let flushed = conn.flush().await;
        match (flow, flushed) {
            (Ok(Flow::Continue), Ok(())) => {}
            (Ok(Flow::Close), Ok(())) => break Ending::AfterError,
            (Err(e), _) | (_, Err(e)) => {
                debug!(error = %e, "wyoming write failed");
                break Ending::Dead;
            }
        }
    };
    drop(slot);
    match ending {
        Ending::Dead => {}
        Ending::Normal => {
            let _ = conn.flush().await;
            let _ = timeout(opts.write_timeout, conn.writer.shutdown()).await;
        }
        Ending::AfterError => {
            let _ = conn.flush().await;
            let _ = timeout(opts.write_timeout, conn.writer.shutdown()).await;
            tokio::select! {
                () = linger(&mut reader) => {}
                () = &mut shutdown => {}
            }
        }
    }
}

/// The event types the server acts on; others are ignored without being parsed.
const SERVED_KINDS: &[&str] = &[
    kind::DESCRIBE,
    kind::PING,
    kind::TRANSCRIBE,
    kind::AUDIO_START,
    kind::AUDIO_CHUNK,
    kind::AUDIO_STOP,
    kind::SYNTHESIZE,
    kind::SYNTHESIZE_START,
    kind::SYNTHESIZE_CHUNK,
    kind::SYNTHESIZE_STOP,
    kind::RECOGNIZE,
    kind::TRANSCRIPT,
    kind::INTENT,
];

/// Whether to keep serving a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// Audio of the utterance being received.
enum AudioState {
    Idle,
    Receiving {
        format: AudioFormat,
        bytes: Vec<u8>,
        max_bytes: usize,
    },
    /// The stream was refused (error sent); its chunks are dropped until `audio-stop`.
    Discarding,
}

/// A streamed synthesis request being collected.
struct SynthStream {
    voice: Option<String>,
    text: String,
}

struct Connection<'a, W, H> {
    handler: Arc<H>,
    opts: &'a ServerOptions,
    writer: BufWriter<W>,
    transcribe: Option<Transcribe>,
    audio: AudioState,
    synth_stream: Option<SynthStream>,
}

/// Runs `f` on the blocking pool; `None` if it panicked.
async fn blocking<T, F>(f: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Some(value),
        Err(e) => {
            error!("a wyoming handler call failed: {e}");
            None
        }
    }
}

impl<W: AsyncWrite + Unpin, H: WyomingHandler> Connection<'_, W, H> {
    async fn send(&mut self, event: Event) -> Result<(), WyomingError> {
        self.send_frame(&event.into_frame()).await
    }

    async fn send_frame(&mut self, frame: &Frame) -> Result<(), WyomingError> {
        let bytes = encode_frame(frame)?;
        match timeout(self.opts.write_timeout, self.writer.write_all(&bytes)).await {
            Ok(result) => result?,
            Err(_) => return Err(WyomingError::Timeout("the client to read")),
        }
        bump(&self.opts.stats.frames_sent);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), WyomingError> {
        match timeout(self.opts.write_timeout, self.writer.flush()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(WyomingError::Timeout("the client to read")),
        }
    }

    async fn send_error(&mut self, code: &str, text: String) -> Result<(), WyomingError> {
        bump(&self.opts.stats.errors_sent);
        self.send(Event::Error(ErrorEvent::new(text, code))).await
    }

    /// Answers a failed request with an `error` event; closes if so configured.
    async fn fail(&mut self, code: &str, text: impl Into<String>) -> Result<Flow, WyomingError> {
        let text = text.into();
        debug!(code, text = %text, "wyoming request failed");
        if let AudioState::Receiving { .. } = self.audio {
            self.audio = AudioState::Discarding;
        }
        self.send_error(code, text).await?;
        Ok(if self.opts.close_on_error {
            Flow::Close
        } else {
            Flow::Continue
        })
    }

    /// Waits briefly for an engine permit.
    async fn engine_permit(&self) -> Option<OwnedSemaphorePermit> {
        let slots = self.opts.engine_slots.clone();
        match timeout(self.opts.engine_wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => {
                bump(&self.opts.stats.busy_rejections);
                debug!("wyoming engines busy; rejecting a request");
                None
            }
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Flow, WyomingError> {
        if !SERVED_KINDS.contains(&frame.kind.as_str()) {
            // Not parsed: a type the server does not act on cannot break the connection.
            debug!(kind = %frame.kind, "ignoring wyoming event");
            return Ok(Flow::Continue);
        }
        let event = match Event::from_frame(frame) {
            Ok(event) => event,
            Err(e) => {
                bump(&self.opts.stats.malformed_frames);
                warn!(error = %e, "bad wyoming event; closing the connection");
                self.send_error(e.code(), e.to_string()).await?;
                return Ok(Flow::Close);
            }
        };
        tracing::trace!(kind = event.kind(), "wyoming event");
        match event {
            Event::Describe => self.describe().await,
            Event::Ping(ping) => {
                self.send(Event::Pong(ping)).await?;
                Ok(Flow::Continue)
            }
            Event::Transcribe(request) => {
                self.transcribe = Some(request);
                Ok(Flow::Continue)
            }
            Event::AudioStart(start) => self.begin_audio(start.format()).await,
            Event::AudioChunk(chunk) => self.audio_chunk(chunk).await,
            Event::AudioStop(_) => self.audio_stop().await,
            Event::Synthesize(request) => {
                if self.synth_stream.is_some() {
                    // Sent inside a streamed request for servers without streaming.
                    debug!("ignoring synthesize inside a streamed request");
                    return Ok(Flow::Continue);
                }
                let voice = request.voice.and_then(|v| v.name);
                self.synthesize(request.text, voice).await
            }
            Event::SynthesizeStart(start) => {
                self.synth_stream = Some(SynthStream {
                    voice: start.voice.and_then(|v| v.name),
                    text: String::new(),
                });
                Ok(Flow::Continue)
            }
            Event::SynthesizeChunk(chunk) => self.synthesize_chunk(&chunk.text).await,
            Event::SynthesizeStop => self.synthesize_stop().await,
            Event::Recognize(request) => self.recognize(request.text).await,
            Event::Transcript(transcript) => self.handle_text(transcript.text).await,
            Event::Intent(intent) => self.handle_intent(intent).await,
            other => {
                debug!(kind = other.kind(), "ignoring wyoming event");
                Ok(Flow::Continue)
            }
        }
    }

    async fn describe(&mut self) -> Result<Flow, WyomingError> {
        let handler = self.handler.clone();
        let Some(mut info) = blocking(move || handler.info()).await else {
            return self.fail("internal", "cannot describe the services").await;
        };
        for program in &mut info.asr {
            program.supports_transcript_streaming = self.opts.stream_transcript;
        }
        self.send(Event::Info(info)).await?;
        Ok(Flow::Continue)
    }

    async fn begin_audio(&mut self, format: AudioFormat) -> Result<Flow, WyomingError> {
        if let Err(text) = check_input_format(format.rate, format.width, format.channels) {
            self.audio = AudioState::Discarding;
            return self.fail("unsupported-audio", text).await;
        }
        let max_bytes = u64::from(self.opts.max_audio_seconds)
            .saturating_mul(u64::from(format.rate))
            .saturating_mul(u64::from(format.width))
            .saturating_mul(u64::from(format.channels));
        self.audio = AudioState::Receiving {
            format,
            bytes: Vec::new(),
            max_bytes: usize::try_from(max_bytes)
                .unwrap_or(usize::MAX)
                .min(self.opts.max_audio_bytes),
        };
        Ok(Flow::Continue)
    }

    async fn audio_chunk(&mut self, chunk: AudioChunk) -> Result<Flow, WyomingError> {
        if let AudioState::Idle = self.audio {
            // No audio-start: the chunk's format starts the stream.
            let flow = self.begin_audio(chunk.format()).await?;
            if flow == Flow::Close {
                return Ok(flow);
            }
        }
        let AudioState::Receiving {
            format,
            bytes,
            max_bytes,
        } = &mut self.audio
        else {
            return Ok(Flow::Continue);
        };
        if chunk.format() != *format {
            return self
                .fail(
                    "unsupported-audio",
                    "the audio format changed in the middle of a stream",
                )
                .await;
        }
        if bytes.len().saturating_add(chunk.audio.len()) > *max_bytes {
            let text = format!(
                "too much audio in one utterance (at most {} s or {} bytes)",
                self.opts.max_audio_seconds, self.opts.max_audio_bytes
            );
            return self.fail("audio-too-long", text).await;
        }
        bytes.extend_from_slice(&chunk.audio);
        Ok(Flow::Continue)
    }

    async fn audio_stop(&mut self) -> Result<Flow, WyomingError> {
        let request = self.transcribe.take();
        match std::mem::replace(&mut self.audio, AudioState::Idle) {
            AudioState::Discarding => Ok(Flow::Continue),
            AudioState::Idle => {
                self.transcribe(AudioFormat::SPEECH, Vec::new(), request)
                    .await
            }
            AudioState::Receiving { format, bytes, .. } => {
                self.transcribe(format, bytes, request).await
            }
        }
    }

    async fn transcribe(
        &mut self,
        format: AudioFormat,
        mut bytes: Vec<u8>,
        request: Option<Transcribe>,
    ) -> Result<Flow, WyomingError> {
        let language = request.and_then(|r| r.language);
        let frame_len = usize::from(format.width) * usize::from(format.channels);
        bytes.truncate(bytes.len() - bytes.len() % frame_len.max(1));
        let samples = pcm16le_to_samples(&bytes);
        drop(bytes);
        let text = if samples.is_empty() {
            String::new()
        } else {
            let Some(permit) = self.engine_permit().await else {
                return self.fail("busy", "busy").await;
            };
            bump(&self.opts.stats.transcriptions);
            let handler = self.handler.clone();
            let lang = language.clone();
            let outcome = blocking(move || {
                let _permit = permit;
                let mono = handler
                    .to_16k_mono(&samples, format.rate, format.channels)
                    .map_err(|e| ("unsupported-audio", e))?;
                handler
                    .transcribe(&mono, lang.as_deref())
                    .map_err(|e| ("transcribe-failed", e))
            })
            .await;
            match outcome {
                Some(Ok(text)) => text,
                Some(Err((code, text))) => return self.fail(code, text).await,
                None => return self.fail("internal", "transcription failed").await,
            }
        };
        if self.opts.stream_transcript {
            self.send(Event::TranscriptStart(TranscriptStart {
                language: language.clone(),
                context: None,
            }))
            .await?;
            if !text.is_empty() {
                self.send(Event::TranscriptChunk(TranscriptChunk {
                    text: text.clone(),
                }))
                .await?;
            }
        }
        self.send(Event::Transcript(Transcript {
            text,
            language,
            context: None,
        }))
        .await?;
        if self.opts.stream_transcript {
            self.send(Event::TranscriptStop).await?;
        }
        Ok(Flow::Continue)
    }

    async fn synthesize(
        &mut self,
        text: String,
        voice: Option<String>,
    ) -> Result<Flow, WyomingError> {
        if text.len() > self.opts.max_text_len {
            let message = format!("text longer than {} bytes", self.opts.max_text_len);
            return self.fail("text-too-long", message).await;
        }
        let Some(permit) = self.engine_permit().await else {
            return self.fail("busy", "busy").await;
        };
        bump(&self.opts.stats.syntheses);
        let handler = self.handler.clone();
        let outcome = blocking(move || {
            let _permit = permit;
            handler.synthesize(&text, voice.as_deref())
        })
        .await;
        let (samples, rate) = match outcome {
            Some(Ok(audio)) => audio,
            Some(Err(text)) => return self.fail("synthesize-failed", text).await,
            None => return self.fail("internal", "synthesis failed").await,
        };
        if rate == 0 || rate > MAX_RATE {
            let text = format!("the voice produced audio at {rate} Hz");
            return self.fail("synthesize-failed", text).await;
        }
        self.send_audio(&samples, rate).await?;
        Ok(Flow::Continue)
    }

    async fn send_audio(&mut self, samples: &[i16], rate: u32) -> Result<(), WyomingError> {
        let millis = |offset: usize| {
            let ms = (offset as u64).saturating_mul(1000) / u64::from(rate.max(1));
            i64::try_from(ms).unwrap_or(i64::MAX)
        };
        self.send(Event::AudioStart(AudioStart {
            rate,
            width: 2,
            channels: 1,
            timestamp: Some(0),
        }))
        .await?;
        let mut offset = 0usize;
        for chunk in samples.chunks(self.opts.samples_per_chunk.max(1)) {
            self.send(Event::AudioChunk(AudioChunk {
                rate,
                width: 2,
                channels: 1,
                timestamp: Some(millis(offset)),
                audio: samples_to_pcm16le(chunk),
            }))
            .await?;
            offset += chunk.len();
        }
        self.send(Event::AudioStop(AudioStop {
            timestamp: Some(millis(offset)),
        }))
        .await
    }

    async fn synthesize_chunk(&mut self, text: &str) -> Result<Flow, WyomingError> {
        let max = self.opts.max_text_len;
        let Some(stream) = self.synth_stream.as_mut() else {
            debug!("ignoring synthesize-chunk outside a streamed request");
            return Ok(Flow::Continue);
        };
        if stream.text.len().saturating_add(text.len()) > max {
            self.synth_stream = None;
            return self
                .fail("text-too-long", format!("text longer than {max} bytes"))
                .await;
        }
        stream.text.push_str(text);
        Ok(Flow::Continue)
    }

    async fn synthesize_stop(&mut self) -> Result<Flow, WyomingError> {
        let Some(stream) = self.synth_stream.take() else {
            debug!("ignoring synthesize-stop outside a streamed request");
            return Ok(Flow::Continue);
        };
        let flow = self.synthesize(stream.text, stream.voice).await?;
        if flow == Flow::Continue {
            self.send(Event::SynthesizeStopped).await?;
        }
        Ok(flow)
    }

    async fn recognize(&mut self, text: String) -> Result<Flow, WyomingError> {
        if text.len() > self.opts.max_text_len {
            self.send(Event::NotRecognized(Reply::text("the text is too long")))
                .await?;
            return Ok(Flow::Continue);
        }
        bump(&self.opts.stats.recognitions);
        let handler = self.handler.clone();
        let reply = match blocking(move || handler.recognize(&text)).await {
            Some(Some((name, entities))) => Event::Intent(Intent {
                name,
                entities: entities
                    .into_iter()
                    .map(|(name, value)| Entity { name, value })
                    .collect(),
                text: None,
                context: None,
            }),
            Some(None) => Event::NotRecognized(Reply::default()),
            None => return self.fail("internal", "recognition failed").await,
        };
        self.send(reply).await?;
        Ok(Flow::Continue)
    }

    async fn handle_text(&mut self, text: String) -> Result<Flow, WyomingError> {
        self.run_handle(text.len(), move |handler: &H| handler.handle(&text))
            .await
    }

    async fn handle_intent(&mut self, intent: Intent) -> Result<Flow, WyomingError> {
        let entities: Vec<(String, Value)> = intent
            .entities
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        let name = intent.name;
        self.run_handle(name.len(), move |handler: &H| {
            handler.handle_intent(&name, &entities)
        })
        .await
    }

    /// Runs a handle call under an engine permit and answers `handled` / `not-handled`.
    async fn run_handle<F>(&mut self, input_len: usize, call: F) -> Result<Flow, WyomingError>
    where
        F: FnOnce(&H) -> Result<Option<String>, String> + Send + 'static,
    {
        let reply = if input_len > self.opts.max_text_len {
            Event::NotHandled(Reply::text("the text is too long"))
        } else if let Some(permit) = self.engine_permit().await {
            bump(&self.opts.stats.handle_requests);
            let handler = self.handler.clone();
            match blocking(move || {
                let _permit = permit;
                call(&handler)
            })
            .await
            {
                Some(Ok(Some(text))) => Event::Handled(Reply::text(text)),
                Some(Ok(None)) => Event::NotHandled(Reply::default()),
                Some(Err(text)) => Event::NotHandled(Reply::text(text)),
                None => Event::NotHandled(Reply::text("internal error")),
            }
        } else {
            Event::NotHandled(Reply::text("busy"))
        };
        self.send(reply).await?;
        Ok(Flow::Continue)
    }
}
