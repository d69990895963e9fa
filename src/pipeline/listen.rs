//! `serena listen`: the always-on loop over any source of 16 kHz mono frames (a live
//! microphone, or a file played as if it were one).
//!
//! Two stages joined by bounded channels, in scoped threads:
//!
//! ```text
//! frames ─▶ front: VAD → endpointer → wake word → barge-in → speaker clock
//!              │  utterances: sync_channel(1)        ▲ brain events: sync_channel(16)
//!              ▼  (drops, counted, when busy;         │ (blocks: the brain waits for
//!            brain: whisper → answer → sentences → synthesis   the front, nothing lost)
//! ```
//!
//! - The front never waits for the engines (unless `lockstep`), so barge-in and the wake
//!   word are heard while a reply is being worked out or spoken. An utterance that arrives
//!   while the brain is still busy is dropped and counted (`dropped` event).
//! - With `lockstep` (files played `--fast`), the front waits for each answer before the
//!   next frame: the input's clock stands still while the engines work, so runs are
//!   deterministic. The speaker always plays on the input's clock (see [`super::speaker`]).
//! - Wake words: an utterance is answered when a wake word was heard in it (or just after
//!   it: detectors lag), or when it starts inside the command window after a wake word or
//!   the follow-up window after a reply. The wake phrase is cut from the transcript; an
//!   utterance that was only the wake word opens the command window.
//! - Barge-in: speech (or a wake word) while a reply plays stops it at once and cancels the
//!   rest of that reply's synthesis. A transcript that is only a stop word ("stop",
//!   "cancel") gets no answer.
//!
//! All positions in events are seconds of input; latencies are wall-clock milliseconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::endpoint::{EndReason, EndpointConfig, EndpointEvent, Endpointer, EnergyVad, RATE};
use super::speaker::Speaker;
use crate::power::profile::notice_between;
use crate::power::{IdleUnloader, ModelSlot, Profile, ProfileSettings, UnloadReason};
use crate::stt::command::transcribe_command;
use crate::stt::{DecodeOptions, WhisperEngine};
use crate::tts::{Speech, Synthesizer};
use crate::vad::{SileroVad, VadParams};

/// Samples per frame handed to the VAD (30 ms).
pub const FRAME: usize = 480;

/// How long after an utterance a late wake-word detection still counts for it.
const WAKE_LAG: f64 = 1.5;
/// How often partial transcripts are made when the profile turns them on, seconds of speech.
const PARTIAL_EVERY_S: f64 = 1.0;
/// Push-to-talk pre-roll: audio kept from before the key went down (0.2 s).
const PTT_PRE_ROLL: usize = RATE as usize / 5;
/// A push-to-talk press shorter than this (0.3 s, pre-roll included) is a slip, not a command.
const PTT_MIN_SAMPLES: usize = RATE as usize * 3 / 10;
/// Where a detector places a word's end may be this much after the VAD's end of speech.
const WAKE_END_SLACK: f64 = 0.5;
/// An utterance that goes on less than this past the wake word's end is the wake word alone.
const WAKE_ONLY_TAIL: f64 = 0.35;
/// Audio kept before the wake word's end when the command follows it in one breath (the
/// detector's end can be late; the transcript's wake phrase is cut anyway).
const WAKE_CUT_MARGIN: f64 = 0.25;

/// What the front reads: audio, or news from the capture.
#[derive(Clone, Debug)]
pub enum Input {
    /// 16 kHz mono samples (any length; [`FRAME`] is usual).
    Frame(Vec<f32>),
    /// The capture dropped this many samples since the last report (a stalled consumer).
    Overrun(u64),
    /// The device failed; the source is trying to get it back.
    DeviceLost(String),
    /// The device works again.
    DeviceRestored,
    /// Push-to-talk: the key went down (`true`: start hearing) or up (`false`: answer what
    /// was heard).
    Talk(bool),
}

/// A wake word heard in the audio.
#[derive(Clone, Debug)]
pub struct WakeHit {
    /// The word's name.
    pub name: String,
    /// What it says (cut from the transcript), e.g. "hey serena".
    pub phrase: String,
    /// The detector's score.
    pub score: f32,
    /// How many samples before the end of the frame that reported it the word ended (the
    /// detector waits for a better match before it reports).
    pub lag_samples: u64,
}

/// A wake-word detector fed the same frames as the VAD.
pub trait WakeDetector {
    /// The names of the words it listens for.
    fn names(&self) -> Vec<String>;
    /// Push one frame; a detection if a wake word ends in it.
    fn push(&mut self, frame: &[f32]) -> Option<WakeHit>;
    /// Forget what was heard (after a detection, or when playback starts).
    fn reset(&mut self);
}

/// What answering produced, as the loop needs it.
#[derive(Clone, Debug)]
pub struct Answered {
    /// The intent, if any.
    pub intent: Option<String>,
    /// Its slots.
    pub slots: serde_json::Value,
    /// The reply text.
    pub reply: String,
    /// Who answered.
    pub source: String,
    /// The power profile the answer was given under (empty: unknown).
    pub power_profile: String,
}

/// When speech may interrupt a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BargeIn {
    /// Any speech stops the reply (use headphones or echo cancellation).
    #[default]
    Speech,
    /// Only a wake word stops it.
    Wake,
    /// Replies always play to the end.
    Off,
}

/// Tunables of the loop.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// End of speech.
    pub endpoint: EndpointConfig,
    /// Seconds after a wake word in which a command is taken.
    pub command_window_s: f64,
    /// Seconds after a reply in which a follow-up needs no wake word (0: off).
    pub follow_up_s: f64,
    /// What interrupts a reply.
    pub barge_in: BargeIn,
    /// Wait for each answer before the next frame (files played as fast as possible).
    pub lockstep: bool,
    /// Words that stop speaking and get no answer.
    pub stop_words: Vec<String>,
    /// Push-to-talk: utterances are what is heard between [`Input::Talk`]`(true)` and
    /// `Talk(false)`; no VAD, end of speech or wake word.
    pub push_to_talk: bool,
    /// Partial transcripts: while an utterance that will be answered goes on, whisper hears
    /// what there is so far every this many seconds of speech (0: off), when it is idle.
    pub partial_every_s: f64,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            endpoint: EndpointConfig::default(),
            command_window_s: 5.0,
            follow_up_s: 5.0,
            barge_in: BargeIn::Speech,
            lockstep: false,
            stop_words: ["stop", "cancel", "never mind", "be quiet", "shut up"]
                .map(String::from)
                .to_vec(),
            push_to_talk: false,
            partial_every_s: 0.0,
        }
    }
}

/// One event of the pipeline, as `--events json` prints it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Listening has begun.
    Listening {
        /// The wake words needed (none: every utterance, or push-to-talk).
        wake_words: Vec<String>,
        /// Whether utterances are push-to-talk.
        push_to_talk: bool,
    },
    /// Push-to-talk: the key went down; what follows is heard.
    TalkStart {
        /// Position in the input.
        at_s: f64,
    },
    /// Push-to-talk: the key went up (or the utterance reached its longest); what was heard
    /// is answered.
    TalkEnd {
        /// Position in the input.
        at_s: f64,
        /// `released`, `max_length` or `end_of_input`.
        reason: &'static str,
        /// Length of the utterance's audio.
        audio_s: f64,
    },
    /// Speech began.
    SpeechStart {
        /// Position in the input.
        at_s: f64,
    },
    /// Speech ended.
    SpeechEnd {
        /// Position in the input.
        at_s: f64,
        /// Why: silence, max_length or end_of_input.
        reason: EndReason,
        /// Length of the utterance's audio.
        audio_s: f64,
    },
    /// An utterance the energy VAD let through, in which Silero heard no speech: not
    /// transcribed.
    Rejected {
        /// Its length.
        audio_s: f64,
        /// Milliseconds Silero took.
        vad_ms: u64,
    },
    /// The power profile in force changed (between utterances).
    Profile {
        /// The new profile.
        profile: String,
        /// Whether always-on listening goes on (`false` in critical: utterances are
        /// not answered until the power is back; push-to-talk still works).
        always_listening: bool,
    },
    /// A model was loaded: on first use, again after the memory manager unloaded it, or
    /// another model for a new power profile.
    ModelLoaded {
        /// The slot (`stt`).
        slot: String,
        /// The model.
        model: String,
        /// How long loading took.
        load_ms: u64,
        /// Whether it had been loaded before in this run.
        reload: bool,
    },
    /// The memory manager unloaded a model; the next use loads it again.
    ModelUnloaded {
        /// The slot (`stt`, `llm`).
        slot: String,
        /// `idle` or `low_memory`.
        reason: &'static str,
        /// Idle: seconds unused. Low memory: MiB available.
        value: f64,
    },
    /// Something said that is not a reply (entering or leaving the critical profile).
    Notice {
        /// What was said.
        text: String,
    },
    /// A wake word was heard.
    Wake {
        /// Which.
        name: String,
        /// The detector's score.
        score: f32,
        /// Position in the input where it was detected.
        at_s: f64,
    },
    /// A command window opened (after a wake word alone, or a reply).
    Window {
        /// `command` or `follow_up`.
        kind: &'static str,
        /// Until this position in the input.
        until_s: f64,
    },
    /// The final transcript.
    Transcript {
        /// Whether this is a partial transcript of an utterance still going on.
        partial: bool,
        /// What was heard (the wake phrase cut off).
        text: String,
        /// Milliseconds in the recogniser.
        latency_ms: u64,
        /// The encoder context used (0: full window).
        audio_ctx: u32,
        /// CPU milliseconds the process spent meanwhile (all threads).
        cpu_ms: u64,
        /// Peak resident memory meanwhile, MiB.
        peak_rss_mb: u64,
    },
    /// What the router understood (if anything) and the reply.
    Reply {
        /// The intent, if the router understood.
        intent: Option<String>,
        /// The intent's slots.
        slots: serde_json::Value,
        /// The reply.
        text: String,
        /// Who answered.
        source: String,
        /// Milliseconds to answer.
        latency_ms: u64,
    },
    /// The first sentence of a reply went to the speaker.
    SpeakingStart {
        /// Position in the input.
        at_s: f64,
        /// Wall-clock milliseconds from the end of speech to the first reply audio queued.
        first_audio_ms: u64,
        /// Milliseconds in the synthesizer for the first sentence.
        synth_ms: u64,
    },
    /// The speaker fell silent.
    SpeakingEnd {
        /// Position in the input.
        at_s: f64,
        /// Whether it was stopped before the end.
        interrupted: bool,
    },
    /// Speech or a wake word stopped a reply.
    BargeIn {
        /// Position in the input.
        at_s: f64,
        /// `speech`, `wake` or `stop_word` (a stop word stops a reply even with barge-in
        /// off).
        by: &'static str,
    },
    /// A stop word: nothing is answered.
    Stopped {
        /// The word.
        text: String,
    },
    /// An utterance was dropped because the recogniser was still busy.
    Dropped {
        /// Utterances dropped so far.
        total: u64,
    },
    /// The capture dropped samples (the pipeline fell behind).
    Overrun {
        /// Samples dropped since the last report.
        samples: u64,
    },
    /// The input device failed; the pipeline waits for it.
    DeviceLost {
        /// Why.
        message: String,
    },
    /// The input device is back.
    DeviceRestored,
    /// Something failed; the pipeline goes on with the next utterance.
    Error {
        /// What failed.
        message: String,
    },
}

/// Counters of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Utterances dropped at the front → brain edge.
    pub dropped_utterances: AtomicU64,
    /// Samples the capture dropped (as reported by the source).
    pub overrun_samples: AtomicU64,
    /// Utterances answered.
    pub answered: AtomicU64,
}

/// The engines the brain uses.
pub struct Brain<'a> {
    /// Whisper, in a slot keyed by model name that the memory manager may empty (the next
    /// utterance loads it again, with a [`Event::ModelLoaded`]).
    pub stt: &'a ModelSlot<WhisperEngine, String>,
    /// The whisper model to use (the slot's key).
    pub stt_model: String,
    /// The model the power profiles scale (`ProfileSettings::whisper_model_or`); `None`
    /// keeps `stt_model` whatever the profile (the user named one).
    pub configured_model: Option<String>,
    /// Decoding settings for commands (threads change with the power profile).
    pub decode: DecodeOptions,
    /// Answers a transcript, given the timings of the stages before it (for the history)
    /// and a callback for the reply's sentences as they are generated; returns the whole
    /// answer.
    pub answer: &'a mut AnswerFn<'a>,
    /// The synthesizer; `None`: replies are not spoken.
    pub synth: Option<&'a dyn Synthesizer>,
    /// Silero, to check each utterance for speech (and trim it) before whisper; `None`:
    /// the energy VAD's verdict stands.
    pub vad: Option<&'a mut SileroVad>,
    /// Called after each answer with the power profile it was given, and while idle with
    /// the profile polled by `poll_profile`; returns the settings to apply from the next
    /// utterance when the profile changed.
    pub on_profile: Option<&'a mut OnProfile<'a>>,
    /// Reads the power profile in force now (`None`: unknown); called every
    /// `poll_every` while no utterance comes, so a battery that runs down is noticed
    /// between commands.
    pub poll_profile: Option<&'a mut PollProfile<'a>>,
    /// How often `poll_profile` is called while idle.
    pub poll_every: Duration,
    /// The profile in force at the start (entering or leaving critical from it is
    /// announced).
    pub profile: Option<Profile>,
    /// The memory manager over the engines' slots. The front runs its checks between
    /// frames (on the wall clock), so a model goes when idle or when memory runs low
    /// even while nothing is said.
    pub memory: Option<&'a IdleUnloader>,
}

impl<'a> Brain<'a> {
    /// A brain that transcribes with `stt_model` from `stt` and answers with `answer`:
    /// no speech out, no Silero, no power profile, no memory manager (set those fields).
    pub fn new(
        stt: &'a ModelSlot<WhisperEngine, String>,
        stt_model: &str,
        decode: DecodeOptions,
        answer: &'a mut AnswerFn<'a>,
    ) -> Brain<'a> {
        Brain {
            stt,
            stt_model: stt_model.to_string(),
            configured_model: None,
            decode,
            answer,
            synth: None,
            vad: None,
            on_profile: None,
            poll_profile: None,
            poll_every: Duration::from_secs(30),
            profile: None,
            memory: None,
        }
    }
}

/// See [`Brain::answer`].
pub type AnswerFn<'a> = dyn FnMut(&str, &BTreeMap<String, u64>, &mut dyn FnMut(&str)) -> Result<Answered, String>
    + Send
    + 'a;

/// See [`Brain::on_profile`]: given the profile an answer was given under, the settings to
/// apply when it changed.
pub type OnProfile<'a> = dyn FnMut(&str) -> Option<ProfileSettings> + Send + 'a;

/// See [`Brain::poll_profile`].
pub type PollProfile<'a> = dyn FnMut() -> Option<String> + Send + 'a;

struct Utterance {
    id: u64,
    audio: Vec<f32>,
    /// A partial transcript of an utterance still going on: transcribed, not answered.
    partial: bool,
    /// The wake phrase to cut from the transcript.
    wake_phrase: Option<String>,
    ended_at: Instant,
}

enum FromBrain {
    Event(Event),
    Speech {
        id: u64,
        speech: Speech,
        first: bool,
        synth_ms: u64,
        since_end_ms: u64,
    },
    /// The utterance was only the wake word: open the command window.
    WakeOnly,
    /// A stop word.
    Stop,
    /// A new power profile's settings, for the front.
    Profile(ProfileSettings),
    /// A notice to say (not a reply).
    Notice(Speech),
    Done {
        id: u64,
        partial: bool,
    },
}

/// Run the pipeline over `input` until it ends. Every event goes to `emit` (in order, from
/// this thread). Errors of one utterance become [`Event::Error`] and the loop goes on.
pub fn run(
    input: impl Iterator<Item = Input>,
    brain: Brain<'_>,
    mut wake: Option<&mut dyn WakeDetector>,
    speaker: &mut dyn Speaker,
    opts: &ListenOptions,
    stats: &Stats,
    emit: &mut dyn FnMut(&Event),
) {
    let (utt_tx, utt_rx) = mpsc::sync_channel::<Utterance>(1);
    let (ev_tx, ev_rx) = mpsc::sync_channel::<FromBrain>(16);
    // The id of the newest reply the front cancelled: the brain skips synthesis for it.
    let cancelled = AtomicU64::new(0);
    let memory = brain.memory;
    std::thread::scope(|scope| {
        let cancelled_ref = &cancelled;
        let brain_thread = std::thread::Builder::new()
            .name("serena-brain".into())
            .spawn_scoped(scope, move || {
                brain_loop(brain, utt_rx, ev_tx, cancelled_ref, &opts.stop_words)
            });
        if let Err(e) = brain_thread {
            emit(&Event::Error {
                message: format!("cannot start the recogniser thread: {e}"),
            });
            return;
        }
        let mut front = Front {
            opts,
            stats,
            ep: Endpointer::new(opts.endpoint.clone()),
            vad: EnergyVad::default(),
            position: 0,
            speech_start: None,
            last_wake: None,
            window_until: None,
            pending: None,
            next_id: 0,
            speaking: None,
            cancelled: &cancelled,
            utt_tx: Some(utt_tx),
            ev_rx,
            in_flight: 0,
            needs_wake: wake.is_some() && !opts.push_to_talk,
            talk: None,
            partial_every_s: opts.partial_every_s,
            partial_at: 0,
            recent: std::collections::VecDeque::with_capacity(PTT_PRE_ROLL),
            memory,
            memory_checked: Instant::now(),
            suspended: false,
        };
        emit(&Event::Listening {
            wake_words: wake.as_ref().map(|w| w.names()).unwrap_or_default(),
            push_to_talk: opts.push_to_talk,
        });
        for item in input {
            match item {
                Input::Frame(frame) if opts.push_to_talk => {
                    front.talk_frame(&frame, speaker, emit);
                }
                Input::Frame(frame) => {
                    front.frame(&frame, wake.as_deref_mut(), speaker, emit);
                }
                Input::Talk(true) => front.talk_start(speaker, emit),
                Input::Talk(false) => front.talk_end("released", emit),
                Input::Overrun(samples) => {
                    stats.overrun_samples.fetch_add(samples, Ordering::Relaxed);
                    emit(&Event::Overrun { samples });
                }
                Input::DeviceLost(message) => emit(&Event::DeviceLost { message }),
                Input::DeviceRestored => emit(&Event::DeviceRestored),
            }
        }
        // The input ended: the utterance in progress is finished and answered.
        front.talk_end("end_of_input", emit);
        if let Some(event) = front.ep.finish_input() {
            front.endpoint_event(event, speaker, emit);
        }
        front.dispatch_pending_now(emit);
        front.utt_tx = None; // the brain ends once it has answered what it has
        front.drain(speaker, emit, true);
        front.speaker_tick(0, speaker, emit);
        // Let the last reply play out (or be written).
        let was_playing = speaker.playing();
        if let Err(message) = speaker.finish() {
            emit(&Event::Error { message });
        }
        if was_playing {
            emit(&Event::SpeakingEnd {
                at_s: front.now_s(),
                interrupted: false,
            });
        }
    });
}

/// The front stage's state.
struct Front<'a> {
    opts: &'a ListenOptions,
    stats: &'a Stats,
    ep: Endpointer,
    vad: EnergyVad,
    /// Samples heard so far.
    position: u64,
    /// Where the current utterance started (samples).
    speech_start: Option<u64>,
    /// The last wake word heard: position and phrase.
    last_wake: Option<(u64, String)>,
    /// Utterances starting before this position need no wake word.
    window_until: Option<u64>,
    /// An utterance that ended without a wake word, kept a moment for a late detection.
    pending: Option<(u64, u64, Vec<f32>, Instant)>,
    next_id: u64,
    /// The reply being spoken: its utterance id, and whether all its sentences are queued.
    speaking: Option<(u64, bool)>,
    cancelled: &'a AtomicU64,
    utt_tx: Option<SyncSender<Utterance>>,
    ev_rx: Receiver<FromBrain>,
    /// Utterances sent to the brain and not yet done.
    in_flight: u32,
    /// Whether utterances need a wake word (or a window).
    needs_wake: bool,
    /// Push-to-talk: the audio since the key went down.
    talk: Option<Vec<f32>>,
    /// Partial transcripts every this many seconds of speech (0: off).
    partial_every_s: f64,
    /// Length of the utterance when its last partial was sent.
    partial_at: usize,
    /// Push-to-talk: the last samples before the key went down (people start speaking as
    /// they press).
    recent: std::collections::VecDeque<f32>,
    /// The memory manager, checked every `check_every` of wall-clock time.
    memory: Option<&'a IdleUnloader>,
    memory_checked: Instant,
    /// Always-on listening is suspended (critical battery): utterances are not answered.
    suspended: bool,
}

impl Front<'_> {
    /// Push-to-talk: a frame is kept while the key is down, else only as pre-roll.
    fn talk_frame(
        &mut self,
        frame: &[f32],
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        self.position += frame.len() as u64;
        self.drain(speaker, emit, false);
        self.speaker_tick(frame.len(), speaker, emit);
        self.check_memory(emit);
        match &mut self.talk {
            Some(audio) => {
                audio.extend_from_slice(frame);
                if audio.len() as f64
                    >= self.opts.endpoint.max_utterance.as_secs_f64() * f64::from(RATE)
                {
                    self.talk_end("max_length", emit);
                }
            }
            None => {
                for &x in frame {
                    if self.recent.len() == PTT_PRE_ROLL {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(x);
                }
            }
        }
    }

    fn talk_start(&mut self, speaker: &mut dyn Speaker, emit: &mut dyn FnMut(&Event)) {
        if self.talk.is_some() {
            return;
        }
        // Talking over a reply stops it, whatever the barge-in setting: the key is deliberate.
        self.barge_in("talk", speaker, emit);
        let mut audio = Vec::with_capacity(RATE as usize * 4);
        audio.extend(self.recent.drain(..));
        self.talk = Some(audio);
        emit(&Event::TalkStart { at_s: self.now_s() });
    }

    fn talk_end(&mut self, reason: &'static str, emit: &mut dyn FnMut(&Event)) {
        let Some(audio) = self.talk.take() else {
            return;
        };
        emit(&Event::TalkEnd {
            at_s: self.now_s(),
            reason,
            audio_s: audio.len() as f64 / f64::from(RATE),
        });
        if audio.len() >= PTT_MIN_SAMPLES {
            self.dispatch(audio, None, Instant::now(), emit);
        }
    }

    fn now_s(&self) -> f64 {
        self.position as f64 / f64::from(RATE)
    }

    fn samples(seconds: f64) -> u64 {
        (seconds.max(0.0) * f64::from(RATE)) as u64
    }

    fn frame(
        &mut self,
        frame: &[f32],
        wake: Option<&mut (dyn WakeDetector + '_)>,
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        self.position += frame.len() as u64;
        self.drain(speaker, emit, false);
        self.speaker_tick(frame.len(), speaker, emit);
        self.check_memory(emit);
        if self.suspended {
            // Critical battery: hear nothing until the power is back (the brain polls it).
            return;
        }

        if let Some(detector) = wake {
            if let Some(hit) = detector.push(frame) {
                detector.reset();
                let word_end = self.position.saturating_sub(hit.lag_samples);
                emit(&Event::Wake {
                    name: hit.name.clone(),
                    score: hit.score,
                    at_s: word_end as f64 / f64::from(RATE),
                });
                if self.opts.barge_in != BargeIn::Off {
                    self.barge_in("wake", speaker, emit);
                }
                self.last_wake = Some((word_end, hit.phrase.clone()));
                self.open_window("command", self.opts.command_window_s, emit);
                // An utterance already over, waiting for this detection.
                if let Some((start, end, audio, ended_at)) = self.pending.take() {
                    if self.position <= end + Self::samples(WAKE_LAG) {
                        self.with_wake(start, end, audio, ended_at, emit);
                    }
                }
            }
        }
        // A held utterance whose late wake word never came is dropped.
        if let Some((_, end, _, _)) = &self.pending {
            if self.position > end + Self::samples(WAKE_LAG) {
                self.pending = None;
            }
        }

        let speech = self.vad.is_speech(frame);
        for event in self.ep.push(frame, speech) {
            self.endpoint_event(event, speaker, emit);
        }
        self.maybe_partial();
    }

    /// Run the memory manager's checks when they are due; report what it unloaded.
    fn check_memory(&mut self, emit: &mut dyn FnMut(&Event)) {
        let Some(unloader) = self.memory else { return };
        if self.memory_checked.elapsed() < unloader.check_every() {
            return;
        }
        self.memory_checked = Instant::now();
        for event in unloader.check(tokio::time::Instant::now()) {
            let (reason, value) = match event.reason {
                UnloadReason::Idle { idle } => ("idle", idle.as_secs_f64()),
                UnloadReason::LowMemory { available, .. } => {
                    ("low_memory", (available >> 20) as f64)
                }
            };
            emit(&Event::ModelUnloaded {
                slot: event.slot,
                reason,
                value,
            });
        }
    }

    /// While an utterance that will be answered goes on and the brain is idle, every
    /// `partial_every_s` of it goes to whisper for a partial transcript.
    fn maybe_partial(&mut self) {
        if self.partial_every_s <= 0.0 || self.in_flight > 0 {
            return;
        }
        let answered = !self.needs_wake || self.window_until.is_some_and(|u| self.position <= u);
        let Some(audio) = self.ep.current().filter(|_| answered) else {
            self.partial_at = 0;
            return;
        };
        if audio.len() < self.partial_at + Self::samples(self.partial_every_s) as usize {
            return;
        }
        self.partial_at = audio.len();
        let Some(tx) = &self.utt_tx else { return };
        let utt = Utterance {
            id: self.next_id + 1,
            audio: audio.to_vec(),
            partial: true,
            wake_phrase: None,
            ended_at: Instant::now(),
        };
        // A partial is optional: when the brain cannot take it, it is skipped, not counted.
        if tx.try_send(utt).is_ok() {
            self.next_id += 1;
            self.in_flight += 1;
        }
    }

    fn endpoint_event(
        &mut self,
        event: EndpointEvent,
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        match event {
            EndpointEvent::SpeechStart { at_s } => {
                self.speech_start = Some(Self::samples(at_s));
                emit(&Event::SpeechStart { at_s });
                if self.opts.barge_in == BargeIn::Speech {
                    self.barge_in("speech", speaker, emit);
                }
            }
            EndpointEvent::SpeechEnd {
                at_s,
                reason,
                audio,
            } => {
                emit(&Event::SpeechEnd {
                    at_s,
                    reason,
                    audio_s: audio.len() as f64 / f64::from(RATE),
                });
                let ended_at = Instant::now();
                let end = Self::samples(at_s);
                let start = self
                    .speech_start
                    .take()
                    .unwrap_or_else(|| end.saturating_sub(audio.len() as u64));
                if !self.needs_wake {
                    self.dispatch(audio, None, ended_at, emit);
                    return;
                }
                let in_window = self.window_until.is_some_and(|until| start <= until);
                if self.wake_in(start, end).is_some() {
                    self.with_wake(start, end, audio, ended_at, emit);
                } else if in_window {
                    self.window_until = None;
                    self.dispatch(audio, None, ended_at, emit);
                } else {
                    self.pending = Some((start, end, audio, ended_at));
                }
            }
        }
    }

    /// The phrase and end of the last wake word, if it was said in the utterance
    /// `start..end`.
    fn wake_in(&self, start: u64, end: u64) -> Option<(u64, String)> {
        self.last_wake
            .as_ref()
            .filter(|(word_end, _)| {
                *word_end >= start && *word_end <= end + Self::samples(WAKE_END_SLACK)
            })
            .cloned()
    }

    /// An utterance with the wake word in it: the wake word alone leaves the command window
    /// open for what comes next; a command said in the same breath is sent on without the
    /// audio of the wake word.
    fn with_wake(
        &mut self,
        start: u64,
        end: u64,
        audio: Vec<f32>,
        ended_at: Instant,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some((word_end, phrase)) = self.wake_in(start, end) else {
            return;
        };
        if end <= word_end + Self::samples(WAKE_ONLY_TAIL) {
            return; // the window opened at the detection waits for the command
        }
        self.window_until = None;
        let audio_start = end.saturating_sub(audio.len() as u64);
        let cut = word_end.saturating_sub(Self::samples(WAKE_CUT_MARGIN));
        let skip = (cut.saturating_sub(audio_start) as usize).min(audio.len());
        let command = audio[skip..].to_vec();
        self.dispatch(command, Some(phrase), ended_at, emit);
    }

    fn open_window(&mut self, kind: &'static str, seconds: f64, emit: &mut dyn FnMut(&Event)) {
        if seconds <= 0.0 || !self.needs_wake {
            return;
        }
        let until = self.position + Self::samples(seconds);
        self.window_until = Some(until);
        emit(&Event::Window {
            kind,
            until_s: until as f64 / f64::from(RATE),
        });
    }

    /// A held utterance at the end of the input: a wake word can no longer come.
    fn dispatch_pending_now(&mut self, _emit: &mut dyn FnMut(&Event)) {
        self.pending = None;
    }

    fn dispatch(
        &mut self,
        audio: Vec<f32>,
        wake_phrase: Option<String>,
        ended_at: Instant,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some(tx) = &self.utt_tx else { return };
        self.next_id += 1;
        self.partial_at = 0;
        let utt = Utterance {
            id: self.next_id,
            audio,
            partial: false,
            wake_phrase,
            ended_at,
        };
        if self.opts.lockstep {
            if tx.send(utt).is_ok() {
                self.in_flight += 1;
            }
            return;
        }
        match tx.try_send(utt) {
            Ok(()) => self.in_flight += 1,
            Err(TrySendError::Full(_)) => {
                let total = self
                    .stats
                    .dropped_utterances
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                emit(&Event::Dropped { total });
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn barge_in(
        &mut self,
        by: &'static str,
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some((id, _)) = self.speaking else { return };
        self.cancelled.store(id, Ordering::Relaxed);
        if speaker.stop() {
            emit(&Event::BargeIn {
                at_s: self.now_s(),
                by,
            });
            emit(&Event::SpeakingEnd {
                at_s: self.now_s(),
                interrupted: true,
            });
        }
        self.speaking = None;
    }

    /// Time went on: notice when a reply finished playing.
    fn speaker_tick(
        &mut self,
        samples: usize,
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        speaker.tick(samples);
        if self.speaking.is_some_and(|(_, complete)| complete) && !speaker.playing() {
            self.speaking = None;
            emit(&Event::SpeakingEnd {
                at_s: self.now_s(),
                interrupted: false,
            });
            self.open_window("follow_up", self.opts.follow_up_s, emit);
        }
    }

    /// Take what the brain has sent. `wait`: until it has finished everything sent to it;
    /// also when in lockstep and something is in flight.
    fn drain(&mut self, speaker: &mut dyn Speaker, emit: &mut dyn FnMut(&Event), wait: bool) {
        loop {
            let blocking = self.in_flight > 0 && (wait || self.opts.lockstep);
            let msg = if blocking {
                match self.ev_rx.recv_timeout(Duration::from_secs(3600)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match self.ev_rx.try_recv() {
                    Ok(m) => m,
                    Err(_) => return,
                }
            };
            self.on_brain(msg, speaker, emit);
        }
    }

    fn on_brain(
        &mut self,
        msg: FromBrain,
        speaker: &mut dyn Speaker,
        emit: &mut dyn FnMut(&Event),
    ) {
        match msg {
            FromBrain::Event(e) => emit(&e),
            FromBrain::Speech {
                id,
                speech,
                first,
                synth_ms,
                since_end_ms,
            } => {
                if self.cancelled.load(Ordering::Relaxed) == id {
                    return;
                }
                if let Err(message) = speaker.queue(speech) {
                    emit(&Event::Error { message });
                    return;
                }
                if first {
                    self.speaking = Some((id, false));
                    emit(&Event::SpeakingStart {
                        at_s: self.now_s(),
                        first_audio_ms: since_end_ms,
                        synth_ms,
                    });
                }
            }
            FromBrain::WakeOnly => self.open_window("command", self.opts.command_window_s, emit),
            FromBrain::Stop => {
                self.barge_in("stop_word", speaker, emit);
            }
            FromBrain::Notice(speech) => {
                if let Err(message) = speaker.queue(speech) {
                    emit(&Event::Error { message });
                }
            }
            FromBrain::Profile(settings) => {
                self.suspended = !settings.always_listening && !self.opts.push_to_talk;
                if self.suspended {
                    // Whatever was being said is not answered; the next speech starts afresh.
                    self.ep = Endpointer::new(self.opts.endpoint.clone());
                    self.pending = None;
                    self.window_until = None;
                }
                self.partial_every_s = if settings.partial_transcripts {
                    self.opts.partial_every_s.max(PARTIAL_EVERY_S)
                } else {
                    0.0
                };
            }
            FromBrain::Done { id, partial } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                if partial {
                    return;
                }
                if let Some((speaking, complete)) = &mut self.speaking {
                    *complete |= *speaking == id;
                }
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn brain_loop(
    mut brain: Brain<'_>,
    rx: Receiver<Utterance>,
    tx: SyncSender<FromBrain>,
    cancelled: &AtomicU64,
    stop_words: &[String],
) {
    let poll_every = brain.poll_every.max(Duration::from_millis(100));
    // Stages measured for a partial transcript (a reload) belong to the final one's answer.
    let mut carried = BTreeMap::new();
    loop {
        let utt = match rx.recv_timeout(poll_every) {
            Ok(utt) => utt,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: has the power changed since the last answer?
                if let Some(profile) = brain.poll_profile.as_deref_mut().and_then(|f| f()) {
                    apply_profile(&mut brain, &profile, &tx);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (id, partial) = (utt.id, utt.partial);
        utterance(&mut brain, utt, &tx, cancelled, stop_words, &mut carried);
        if tx.send(FromBrain::Done { id, partial }).is_err() {
            return;
        }
    }
}

/// A power profile read after an answer or while idle: when it changed, the engines'
/// settings for the next utterance, the front's (partials, suspended listening), and the
/// notice for entering or leaving critical.
fn apply_profile(brain: &mut Brain<'_>, profile: &str, tx: &SyncSender<FromBrain>) {
    let Some(settings) = brain.on_profile.as_deref_mut().and_then(|f| f(profile)) else {
        return;
    };
    brain.decode.threads = settings.stt_threads;
    if let Some(configured) = &brain.configured_model {
        brain.stt_model = settings.whisper_model_or(configured).to_string();
    }
    let previous = brain.profile.replace(settings.profile);
    let notice = previous.and_then(|p| notice_between(p, settings.profile));
    let _ = tx.send(FromBrain::Event(Event::Profile {
        profile: settings.profile.to_string(),
        always_listening: settings.always_listening,
    }));
    let _ = tx.send(FromBrain::Profile(settings));
    let (Some(text), Some(synth)) = (notice, brain.synth) else {
        return;
    };
    match synth.synthesize(text) {
        Ok(speech) => {
            let _ = tx.send(FromBrain::Event(Event::Notice { text: text.into() }));
            let _ = tx.send(FromBrain::Notice(speech));
        }
        Err(e) => {
            let _ = tx.send(FromBrain::Event(Event::Error {
                message: e.to_string(),
            }));
        }
    }
}

/// Speaks a reply sentence by sentence: the first plays while the rest are synthesized.
struct Voice<'a> {
    synth: &'a dyn Synthesizer,
    tx: &'a SyncSender<FromBrain>,
    cancelled: &'a AtomicU64,
    id: u64,
    ended_at: Instant,
    /// Sentences queued so far.
    spoken: usize,
    /// Synthesis failed or the front went away: say nothing more.
    failed: bool,
}

impl Voice<'_> {
    fn say(&mut self, sentence: &str) {
        if self.failed || sentence.trim().is_empty() {
            return;
        }
        if self.cancelled.load(Ordering::Relaxed) == self.id {
            return;
        }
        let t = Instant::now();
        match self.synth.synthesize(sentence) {
            Ok(speech) => {
                let msg = FromBrain::Speech {
                    id: self.id,
                    speech,
                    first: self.spoken == 0,
                    synth_ms: t.elapsed().as_millis() as u64,
                    since_end_ms: self.ended_at.elapsed().as_millis() as u64,
                };
                self.spoken += 1;
                self.failed = self.tx.send(msg).is_err();
            }
            Err(e) => {
                let _ = self.tx.send(FromBrain::Event(Event::Error {
                    message: e.to_string(),
                }));
                self.failed = true;
            }
        }
    }
}

fn utterance(
    brain: &mut Brain<'_>,
    utt: Utterance,
    tx: &SyncSender<FromBrain>,
    cancelled: &AtomicU64,
    stop_words: &[String],
    carried: &mut BTreeMap<String, u64>,
) {
    let send = |e: Event| {
        let _ = tx.send(FromBrain::Event(e));
    };
    let t = Instant::now();
    let meter = crate::usage::Meter::start();
    let mut stages = BTreeMap::new();
    if !utt.partial {
        stages.append(carried);
    }
    let mut audio: &[f32] = &utt.audio;
    if let (Some(vad), false) = (brain.vad.as_deref_mut(), utt.partial) {
        match vad.speech(audio, &VadParams::default()) {
            Ok(spans) if spans.is_empty() => {
                send(Event::Rejected {
                    audio_s: audio.len() as f64 / f64::from(RATE),
                    vad_ms: t.elapsed().as_millis() as u64,
                });
                if utt.wake_phrase.is_some() {
                    let _ = tx.send(FromBrain::WakeOnly);
                }
                return;
            }
            Ok(spans) => {
                // Silero's spans carry its own padding; keep a little more at the end.
                let at = |s: f64| ((s.max(0.0) * f64::from(RATE)) as usize).min(audio.len());
                let (first, last) = (spans[0].start, spans[spans.len() - 1].end);
                let (from, to) = (at(first - 0.1), at(last + 0.2));
                if to > from {
                    audio = &audio[from..to];
                }
            }
            Err(e) => tracing::warn!(error = %e, "Silero failed; the energy VAD's verdict stands"),
        }
        stages.insert("vad_ms".to_string(), t.elapsed().as_millis() as u64);
    }
    // Whisper: loaded on first use, or again after the memory manager unloaded it, or
    // another model for a new power profile. The engine is held (in use) until done.
    let before = brain.stt.loads();
    let engine = match brain.stt.get_as_blocking(&brain.stt_model) {
        Ok(fetched) => {
            if let Some(took) = fetched.loaded {
                let load_ms = took.as_millis() as u64;
                if utt.partial {
                    carried.insert("stt_load_ms".to_string(), load_ms);
                } else {
                    stages.insert("stt_load_ms".to_string(), load_ms);
                }
                send(Event::ModelLoaded {
                    slot: brain.stt.name().to_string(),
                    model: brain.stt_model.clone(),
                    load_ms,
                    reload: before > 0,
                });
            }
            fetched.engine
        }
        Err(message) => {
            send(Event::Error { message });
            return;
        }
    };
    let t_stt = Instant::now();
    let heard = match transcribe_command(&engine, audio, &brain.decode) {
        Ok(h) => h,
        Err(e) => {
            send(Event::Error {
                message: e.to_string(),
            });
            return;
        }
    };
    drop(engine);
    stages.insert("stt_ms".to_string(), t_stt.elapsed().as_millis() as u64);
    stages.insert("stt_audio_ctx".to_string(), u64::from(heard.audio_ctx));
    let text = match &utt.wake_phrase {
        Some(phrase) => strip_wake_phrase(&heard.text, phrase),
        None => heard.text.trim().to_string(),
    };
    let usage = meter.finish();
    stages.insert("stt_cpu_ms".to_string(), usage.cpu.as_millis() as u64);
    send(Event::Transcript {
        partial: utt.partial,
        text: text.clone(),
        latency_ms: t.elapsed().as_millis() as u64,
        audio_ctx: heard.audio_ctx,
        cpu_ms: usage.cpu.as_millis() as u64,
        peak_rss_mb: usage.peak_rss_kb / 1024,
    });
    if utt.partial {
        return;
    }
    let key = normalise(&text);
    if key.is_empty() {
        if utt.wake_phrase.is_some() {
            let _ = tx.send(FromBrain::WakeOnly);
        }
        return; // noise, not words: nothing to answer
    }
    if stop_words.iter().any(|w| normalise(w) == key) {
        send(Event::Stopped { text });
        let _ = tx.send(FromBrain::Stop);
        return;
    }
    let t = Instant::now();
    let mut voice = brain.synth.map(|synth| Voice {
        synth,
        tx,
        cancelled,
        id: utt.id,
        ended_at: utt.ended_at,
        spoken: 0,
        failed: false,
    });
    // A language model's sentences are spoken as they are generated.
    let mut streamed = |sentence: &str| {
        if let Some(v) = voice.as_mut() {
            v.say(sentence);
        }
    };
    let answered = match (brain.answer)(&text, &stages, &mut streamed) {
        Ok(a) => a,
        Err(message) => {
            send(Event::Error { message });
            return;
        }
    };
    send(Event::Reply {
        intent: answered.intent,
        slots: answered.slots,
        text: answered.reply.clone(),
        source: answered.source.clone(),
        latency_ms: t.elapsed().as_millis() as u64,
    });
    // A new power profile applies from the next utterance, never to this one's reply. It
    // is read afresh: the answer may have changed it ("use saver mode").
    let profile = brain
        .poll_profile
        .as_deref_mut()
        .and_then(|f| f())
        .unwrap_or(answered.power_profile);
    apply_profile(brain, &profile, tx);
    let Some(voice) = voice.as_mut() else { return };
    if voice.spoken > 0 && answered.source == "llm" {
        return; // spoken while it was generated
    }
    // A reply that came whole (the router, the online model, a fallback after a failure).
    let mut splitter = crate::llm::sentences::SentenceSplitter::new();
    let mut sentences = splitter.push(&answered.reply);
    sentences.extend(splitter.finish());
    for sentence in sentences {
        voice.say(&sentence);
    }
}

/// Lower case, letters, digits and single spaces.
fn normalise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cut the wake phrase (and what precedes it) from the start of a transcript. Whisper may
/// spell the phrase differently ("Hey, Serena!" / "hey serena"): words are compared
/// normalised; if the phrase is not found, the transcript is kept whole.
pub fn strip_wake_phrase(transcript: &str, phrase: &str) -> String {
    let phrase_words: Vec<String> = normalise(phrase)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let words: Vec<&str> = transcript.split_whitespace().collect();
    if phrase_words.is_empty() {
        return transcript.trim().to_string();
    }
    let norm: Vec<String> = words.iter().map(|w| normalise(w)).collect();
    // The phrase may start within the first few words ("Okay, hey serena ...").
    for start in 0..words.len().min(4) {
        let end = start + phrase_words.len();
        if end <= words.len() && norm[start..end] == phrase_words[..] {
            let rest = words[end..].join(" ");
            return rest
                .trim_start_matches([',', '.', '!', '?', ' '])
                .trim()
                .to_string();
        }
    }
    transcript.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wake_phrase_is_cut_however_whisper_spells_it() {
        assert_eq!(
            strip_wake_phrase("Hey, Serena! What time is it?", "hey serena"),
            "What time is it?"
        );
        assert_eq!(strip_wake_phrase(" Porcupine.", "porcupine"), "");
        assert_eq!(
            strip_wake_phrase("Okay porcupine, set a timer.", "porcupine"),
            "set a timer."
        );
        assert_eq!(
            strip_wake_phrase("What time is it?", "porcupine"),
            "What time is it?"
        );
    }

    #[test]
    fn stop_words_compare_normalised() {
        assert_eq!(normalise("Stop!"), "stop");
        assert_eq!(normalise(" Never   mind. "), "never mind");
    }
}
