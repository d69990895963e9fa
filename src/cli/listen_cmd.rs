//! `serena listen`: always-on voice commands, from the microphone or from a file played as if
//! it were the microphone (`--input-file`), waiting for the trained wake words (`src/wake/`)
//! or, with `--no-wake`, answering every utterance. The loop is `src/pipeline/listen.rs`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serena::audio::capture::{CaptureError, CaptureOptions};
use serena::audio::decode;
use serena::control::{self, PowerInForce};
use serena::error::ExitCode;
use serena::models::{self, ModelKind};
use serena::pipeline::endpoint::EndpointConfig;
use serena::pipeline::listen::{
    self, Answered, BargeIn, Brain, Event, Input, ListenOptions, Stats, WakeDetector,
};
use serena::pipeline::ptt::{self, PttError, TalkSource, Trigger};
use serena::pipeline::source::{FileSource, LiveSource};
use serena::pipeline::speaker::{DeviceSpeaker, FileSpeaker, Speaker};
use serena::power::{Base, ModelSlot, Profile, ProfileSettings, VadEngine};
use serena::store::InputMode;
use serena::stt::{DecodeOptions, WhisperEngine};
use serena::vad::SileroVad;
use serena::wake::{DetectorConfig, WakeWords};

use super::store_cmds::context;
use super::{Ctx, UsageError};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EventFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line, with `event` and `t_ms`.
    Json,
}

/// Where audio comes from and goes to, and how events are printed: shared by `listen` and
/// `ptt`.
#[derive(Debug, Args)]
pub struct IoArgs {
    /// Play this audio file as if it were the microphone.
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// The microphone [default: audio.input_device], as `serena devices` names it.
    #[arg(long, value_name = "NAME", conflicts_with = "input_file")]
    input_device: Option<String>,
    /// The speaker [default: audio.output_device], as `serena devices` names it.
    #[arg(long, value_name = "NAME", conflicts_with = "output_file")]
    output_device: Option<String>,
    /// Write the spoken replies into this WAV file instead of playing them.
    #[arg(long, value_name = "WAV")]
    output_file: Option<PathBuf>,
    /// Format of the event lines on standard output.
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    events: EventFormat,
    /// Whisper model [default: stt.model].
    #[arg(short, long)]
    model: Option<String>,
    /// The longest utterance, in seconds.
    #[arg(long, default_value_t = 15)]
    max_utterance_s: u64,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Answer every utterance, without waiting for a wake word.
    #[arg(long)]
    no_wake: bool,
    /// Wait for this wake word (repeatable) [default: wake.words, or every trained word].
    #[arg(
        short = 'w',
        long = "wake-word",
        value_name = "NAME",
        conflicts_with = "no_wake"
    )]
    wake_words: Vec<String>,
    /// Detection threshold for every wake word (0 to 1) [default: wake.threshold, or each
    /// word's own].
    #[arg(long, value_name = "T", conflicts_with = "no_wake")]
    wake_threshold: Option<f32>,
    #[command(flatten)]
    io: IoArgs,
    /// With --input-file: as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Silence that ends an utterance, in milliseconds.
    #[arg(long, default_value_t = 500)]
    hang_ms: u64,
    /// Seconds after a reply in which a follow-up needs no wake word (0: off)
    /// [default: wake.follow_up_s].
    #[arg(long, value_name = "SECONDS")]
    follow_up_s: Option<f64>,
    /// Seconds after a wake word said alone in which a command is taken
    /// [default: wake.command_window_s].
    #[arg(long, value_name = "SECONDS")]
    command_window_s: Option<f64>,
    /// What may interrupt a reply while it plays.
    #[arg(long, value_enum, default_value_t = BargeIn::Speech)]
    barge_in: BargeIn,
    /// Voice activity detection: the energy VAD alone (nearly free), or also Silero on each
    /// utterance before whisper (drops noise, trims silence); auto follows the power profile.
    #[arg(long, value_enum, default_value_t = VadChoice::Auto)]
    vad: VadChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum VadChoice {
    /// The power profile's choice (Silero on mains and balanced, energy in saver).
    Auto,
    /// The energy VAD alone.
    Energy,
    /// The energy VAD, then Silero on each utterance (model: stt.vad_model).
    Silero,
}

#[derive(Debug, Args)]
pub struct PttArgs {
    /// The global hotkey (X11): modifiers ctrl, shift, alt, super, then one key.
    #[arg(long, default_value = "ctrl+shift+space", value_name = "KEY")]
    hotkey: String,
    /// Press the hotkey to start and again to stop, instead of holding it.
    #[arg(long)]
    toggle: bool,
    /// Use this terminal instead of a global hotkey: Space starts and stops, q quits (the
    /// default when there is no X display).
    #[arg(long)]
    terminal: bool,
    #[command(flatten)]
    io: IoArgs,
}

pub fn run(ctx: &Ctx, args: ListenArgs) -> anyhow::Result<ExitCode> {
    if args.fast && args.io.input_file.is_none() {
        return Err(UsageError("--fast only applies to --input-file".into()).into());
    }
    let stop = stop_on_signals();
    let mut handle = control::open(context(ctx))?;
    let power = power_now(&mut handle);
    // Wake words before the devices open: a word that is not trained is a usage error. In
    // saver (and critical) each word is loaded in its low-power version.
    let frugal = power.as_ref().is_some_and(|p| p.profile >= Profile::Saver);
    let wake_words = if args.no_wake {
        None
    } else {
        let names = if args.wake_words.is_empty() {
            ctx.config.wake.words.clone()
        } else {
            args.wake_words.clone()
        };
        let threshold = args
            .wake_threshold
            .or((ctx.config.wake.threshold > 0.0).then_some(ctx.config.wake.threshold));
        Some(WakeWords::load(
            &ctx.data_dir,
            &names,
            threshold,
            DetectorConfig::default(),
            frugal,
        )?)
    };
    let mut opts = ListenOptions {
        endpoint: EndpointConfig {
            hang: Duration::from_millis(args.hang_ms),
            max_utterance: Duration::from_secs(args.io.max_utterance_s.max(1)),
            ..EndpointConfig::default()
        },
        follow_up_s: args
            .follow_up_s
            .unwrap_or(f64::from(ctx.config.wake.follow_up_s)),
        command_window_s: args
            .command_window_s
            .unwrap_or(f64::from(ctx.config.wake.command_window_s)),
        barge_in: args.barge_in,
        lockstep: args.fast,
        ..ListenOptions::default()
    };
    // A critical battery suspends always-on listening: say so, and take push-to-talk only.
    if power.as_ref().is_some_and(|p| !p.settings.always_listening) {
        eprintln!(
            "serena: the battery is critical: always-on listening is suspended, push-to-talk only"
        );
        let keys = start_trigger(
            &Trigger::Hotkey {
                key: DEFAULT_HOTKEY.into(),
                toggle: false,
            },
            false,
            &stop,
        )?;
        eprintln!("push-to-talk: {}\r", keys.describe);
        let raw = keys.raw_terminal();
        let source = open_input(ctx, &args.io, false, &stop)?;
        let source = Box::new(TalkSource::new(source, keys));
        opts.push_to_talk = true;
        opts.follow_up_s = 0.0;
        opts.lockstep = false;
        let run = Run {
            handle,
            power,
            vad: VadChoice::Energy,
            notice: Some(serena::power::profile::CRITICAL_NOTICE),
            raw,
        };
        return run_loop(ctx, &args.io, source, None, &opts, run);
    }
    let source = open_input(ctx, &args.io, args.fast, &stop)?;
    let run = Run {
        handle,
        power,
        vad: args.vad,
        notice: None,
        raw: false,
    };
    run_loop(ctx, &args.io, source, wake_words, &opts, run)
}

/// The hotkey `ptt` grabs unless told otherwise.
const DEFAULT_HOTKEY: &str = "ctrl+shift+space";

/// The power profile in force, or `None` (logged) when it cannot be read.
fn power_now(handle: &mut control::Handle) -> Option<PowerInForce> {
    match handle.power() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the power profile; using the configured settings");
            None
        }
    }
}

/// Starts the hotkey, or the terminal when asked to or when there is no display.
fn start_trigger(
    hotkey: &Trigger,
    terminal: bool,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<ptt::Keys> {
    if terminal {
        return Ok(ptt::start(&Trigger::Terminal, stop.clone())?);
    }
    match ptt::start(hotkey, stop.clone()) {
        Ok(keys) => Ok(keys),
        Err(PttError::NoDisplay(why)) if std::io::stdin().is_terminal() => {
            eprintln!("serena: {why}; using this terminal instead");
            Ok(ptt::start(&Trigger::Terminal, stop.clone())?)
        }
        Err(e) => Err(e.into()),
    }
}

/// What `run_loop` needs besides the input: the store handle, the power profile, the VAD
/// choice, a notice to say first, and whether the terminal is raw.
struct Run {
    handle: control::Handle,
    power: Option<PowerInForce>,
    vad: VadChoice,
    notice: Option<&'static str>,
    raw: bool,
}

/// `serena ptt`: push-to-talk through a global hotkey, or this terminal.
pub fn run_ptt(ctx: &Ctx, args: PttArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals();
    let hotkey = Trigger::Hotkey {
        key: args.hotkey.clone(),
        toggle: args.toggle,
    };
    let keys = start_trigger(&hotkey, args.terminal, &stop)?;
    eprintln!("push-to-talk: {}\r", keys.describe);
    let raw = keys.raw_terminal();
    let source = open_input(ctx, &args.io, false, &stop)?;
    let source = Box::new(TalkSource::new(source, keys));
    let opts = ListenOptions {
        endpoint: EndpointConfig {
            max_utterance: Duration::from_secs(args.io.max_utterance_s.max(1)),
            ..EndpointConfig::default()
        },
        follow_up_s: 0.0,
        push_to_talk: true,
        ..ListenOptions::default()
    };
    let mut handle = control::open(context(ctx))?;
    let power = power_now(&mut handle);
    let run = Run {
        handle,
        power,
        vad: VadChoice::Energy,
        notice: None,
        raw,
    };
    run_loop(ctx, &args.io, source, None, &opts, run)
}

/// The microphone or the file played as one; opened before the models load, so a missing
/// device or file fails fast.
fn open_input(
    ctx: &Ctx,
    io: &IoArgs,
    fast: bool,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Box<dyn Iterator<Item = Input>>> {
    Ok(match &io.input_file {
        Some(path) => {
            let samples = decode::decode_file_16k_mono(path)?;
            Box::new(FileSource::new(samples, !fast, stop.clone()))
        }
        None => {
            let device = io
                .input_device
                .clone()
                .unwrap_or_else(|| ctx.config.audio.input_device.clone());
            let opts = CaptureOptions {
                device: Some(device),
                ..CaptureOptions::default()
            };
            let live = LiveSource::open(opts, stop.clone()).map_err(CaptureFailure)?;
            tracing::info!(device = ?live.device_name(), "listening on the microphone");
            Box::new(live)
        }
    })
}

/// Loads the engines, applies the power profile and runs the pipeline until the input ends.
fn run_loop(
    ctx: &Ctx,
    io: &IoArgs,
    source: Box<dyn Iterator<Item = Input>>,
    mut wake_words: Option<WakeWords>,
    opts: &ListenOptions,
    run: Run,
) -> anyhow::Result<ExitCode> {
    let Run {
        handle,
        power,
        vad,
        notice,
        raw,
    } = run;
    // The profiles scale the model in use: `--model` when given, else `stt.model`.
    let spec = io
        .model
        .as_deref()
        .unwrap_or(&ctx.config.stt.model)
        .to_string();
    let base = Base::new(
        &spec,
        ctx.config.stt.threads,
        ctx.config.llm.threads,
        ctx.config.llm.max_tokens,
    );
    let settings = power
        .as_ref()
        .map(|p| ProfileSettings::for_profile(p.profile, &base));
    let stt_model = settings
        .as_ref()
        .map_or(spec.as_str(), |s| s.whisper_model_or(&spec))
        .to_string();
    // Whisper lives in a slot the memory manager may empty; the first load happens here so
    // that a missing or broken model fails before listening starts (exit code 4).
    let t = Instant::now();
    let model = models::resolve(&stt_model, ModelKind::Whisper, &ctx.dirs, &ctx.catalog)?;
    let engine = WhisperEngine::load_with(&model, ctx.config.stt.flash_attn)?;
    let first_load = t.elapsed();
    let (dirs, catalog) = (ctx.dirs.clone(), ctx.catalog.clone());
    let flash_attn = ctx.config.stt.flash_attn;
    let stt_slot: ModelSlot<WhisperEngine, String> =
        ModelSlot::keyed("stt", ctx.config.power.idle_unload(), move |spec: &str| {
            let model = models::resolve(spec, ModelKind::Whisper, &dirs, &catalog)
                .map_err(|e| e.to_string())?;
            WhisperEngine::load_with(&model, flash_attn).map_err(|e| e.to_string())
        });
    drop(stt_slot.put(&stt_model, engine, first_load));
    let mut unloader = ctx.config.power.unloader();
    unloader.add(stt_slot.clone());
    if let Some(engines) = handle.local_engines() {
        // The language model, when this process answers (no `serena serve` running).
        unloader.add(engines.llm_slot().clone());
    }
    let mut decode_opts = DecodeOptions::for_command(&ctx.config.stt);
    if let Some(s) = &settings {
        decode_opts.threads = s.stt_threads;
    }
    let mut opts = opts.clone();
    if settings.as_ref().is_some_and(|s| s.partial_transcripts) && !opts.push_to_talk {
        opts.partial_every_s = PARTIAL_EVERY_S;
    }
    let use_silero = match vad {
        VadChoice::Energy => false,
        VadChoice::Silero => true,
        VadChoice::Auto => settings
            .as_ref()
            .is_none_or(|s| s.vad_engine == VadEngine::Silero),
    };
    let mut silero = if use_silero {
        match models::resolve(
            &ctx.config.stt.vad_model,
            ModelKind::Vad,
            &ctx.dirs,
            &ctx.catalog,
        )
        .map_err(anyhow::Error::from)
        .and_then(|m| Ok(SileroVad::load(&m, 1)?))
        {
            Ok(v) => Some(v),
            Err(e) if vad == VadChoice::Auto => {
                tracing::info!(error = %e, "no Silero VAD model: the energy VAD alone decides");
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };

    let started = Instant::now();
    let mut current = settings
        .as_ref()
        .map(|s| s.profile.to_string())
        .unwrap_or_default();
    let mut on_profile = move |profile: &str| -> Option<ProfileSettings> {
        if profile.is_empty() || profile == current {
            return None;
        }
        current = profile.to_string();
        let p: Profile = profile.parse().ok()?;
        Some(ProfileSettings::for_profile(p, &base))
    };
    // The answers and the idle power polls share the store's handle (both on the brain's
    // thread).
    let handle = std::sync::Mutex::new(handle);
    let mut answer = |text: &str,
                      timings: &BTreeMap<String, u64>,
                      on_sentence: &mut dyn FnMut(&str)|
     -> Result<Answered, String> {
        let sink = std::cell::RefCell::new(on_sentence);
        let say = |s: &str| (*sink.borrow_mut())(s);
        let a = handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ask_question(&control::Question {
                text,
                mode: InputMode::Voice,
                new_conversation: false,
                timings,
                on_sentence: Some(&say),
            })
            .map_err(|e| e.to_string())?;
        Ok(Answered {
            intent: a.intent,
            slots: a.slots,
            reply: a.reply,
            source: serde_json::to_value(a.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            power_profile: a.power_profile,
        })
    };
    let mut poll_profile = || -> Option<String> {
        let mut handle = handle.lock().unwrap_or_else(|p| p.into_inner());
        power_now(&mut handle).map(|p| p.profile.to_string())
    };
    let synth = match serena::tts::from_config(&ctx.config.tts) {
        Ok(s) => Some(s),
        Err(serena::tts::TtsError::Disabled) => None,
        Err(e) => return Err(e.into()),
    };
    let mut speaker: Box<dyn Speaker> = match &io.output_file {
        Some(path) => Box::new(FileSpeaker::new(path, FILE_RATE)),
        None => {
            let device = io
                .output_device
                .as_deref()
                .unwrap_or(&ctx.config.audio.output_device);
            Box::new(DeviceSpeaker::open(device)?)
        }
    };
    let format = io.events;
    let end = if raw && std::io::stdout().is_terminal() {
        "\r\n"
    } else {
        "\n"
    };
    let mut emit = |event: &Event| {
        let t_ms = started.elapsed().as_millis() as u64;
        let line = match format {
            EventFormat::Json => {
                let mut v = serde_json::to_value(event).unwrap_or_default();
                if let serde_json::Value::Object(map) = &mut v {
                    map.insert("t_ms".into(), t_ms.into());
                }
                v.to_string()
            }
            EventFormat::Text => format!("{t_ms:>7} ms  {}", text_of(event)),
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{line}{end}").and_then(|()| out.flush());
    };
    if let Some(p) = &power {
        emit(&Event::Profile {
            profile: p.profile.to_string(),
            always_listening: p.settings.always_listening,
        });
        tracing::info!(profile = %p.profile, source = %p.source, silero = silero.is_some(), "power profile");
    }
    emit(&Event::ModelLoaded {
        slot: "stt".into(),
        model: stt_model.clone(),
        load_ms: first_load.as_millis() as u64,
        reload: false,
    });
    if let (Some(text), Some(synth)) = (notice, synth.as_deref()) {
        match synth.synthesize(text) {
            Ok(speech) => {
                if let Err(message) = speaker.queue(speech) {
                    emit(&Event::Error { message });
                }
            }
            Err(e) => emit(&Event::Error {
                message: e.to_string(),
            }),
        }
    }
    let stats = Stats::default();
    listen::run(
        source,
        Brain {
            configured_model: io.model.is_none().then(|| spec.clone()),
            synth: synth.as_deref(),
            vad: silero.as_mut(),
            on_profile: Some(&mut on_profile),
            poll_profile: Some(&mut poll_profile),
            poll_every: Duration::from_secs(u64::from(ctx.config.power.poll_seconds.max(1))),
            profile: power.as_ref().map(|p| p.profile),
            memory: Some(&unloader),
            ..Brain::new(&stt_slot, &stt_model, decode_opts, &mut answer)
        },
        wake_words.as_mut().map(|w| w as &mut dyn WakeDetector),
        speaker.as_mut(),
        &opts,
        &stats,
        &mut emit,
    );
    Ok(ExitCode::Ok)
}

/// A microphone that cannot be opened: exit code 5 like other device errors.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CaptureFailure(#[from] pub CaptureError);

/// Ctrl-C (SIGINT) and SIGTERM set the returned flag: the sources end, the utterance in
/// progress is answered, the last reply is played or written, and `listen` exits 0.
fn stop_on_signals() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    #[cfg(unix)]
    {
        extern "C" fn on_signal(_: libc::c_int) {
            // An atomic load (OnceLock::get) and an atomic store: async-signal-safe.
            if let Some(flag) = FLAG.get() {
                flag.store(true, Ordering::SeqCst);
            }
        }
        let handler = on_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
        // SAFETY: installing a handler that only touches atomics.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    }
    flag
}

/// Rate of the WAV written by `--output-file`: espeak-ng's own, so its speech is not
/// resampled.
const FILE_RATE: u32 = 22_050;

/// Partial transcripts, when the profile turns them on: every second of speech.
const PARTIAL_EVERY_S: f64 = 1.0;

fn text_of(event: &Event) -> String {
    match event {
        Event::Listening {
            push_to_talk: true, ..
        } => "ready: talk while the key is down".into(),
        Event::Listening { wake_words, .. } if wake_words.is_empty() => {
            "listening (every utterance is answered)".into()
        }
        Event::Listening { wake_words, .. } => format!("listening for {}", wake_words.join(", ")),
        Event::TalkStart { at_s } => format!("talking from {at_s:.2} s"),
        Event::TalkEnd {
            at_s,
            reason,
            audio_s,
        } => format!("talk ends at {at_s:.2} s ({reason}, {audio_s:.1} s heard)"),
        Event::SpeechStart { at_s } => format!("speech starts at {at_s:.2} s"),
        Event::SpeechEnd { at_s, reason, .. } => format!("speech ends at {at_s:.2} s ({reason:?})"),
        Event::Wake { name, score, at_s } => {
            format!("wake word {name} ({score:.2}) at {at_s:.2} s")
        }
        Event::Window { kind, until_s } => format!("{kind} window until {until_s:.2} s"),
        Event::Transcript {
            text,
            latency_ms,
            partial: true,
            ..
        } => format!("hearing {text:?}... ({latency_ms} ms)"),
        Event::Transcript {
            text, latency_ms, ..
        } => format!("heard {text:?} ({latency_ms} ms)"),
        Event::Rejected { audio_s, .. } => {
            format!("not speech ({audio_s:.1} s of sound; Silero heard no voice)")
        }
        Event::Profile {
            profile,
            always_listening: false,
        } => format!("power profile: {profile} (always-on listening suspended)"),
        Event::Profile { profile, .. } => format!("power profile: {profile}"),
        Event::ModelLoaded {
            slot,
            model,
            load_ms,
            reload,
        } => format!(
            "{slot} model {model} {} in {load_ms} ms",
            if *reload { "reloaded" } else { "loaded" }
        ),
        Event::ModelUnloaded {
            slot,
            reason: "idle",
            value,
        } => format!("{slot} model unloaded: idle for {value:.0} s"),
        Event::ModelUnloaded { slot, value, .. } => {
            format!("{slot} model unloaded: low memory ({value:.0} MiB available)")
        }
        Event::Notice { text } => format!("notice: {text}"),
        Event::Reply { text, source, .. } => format!("reply ({source}): {text}"),
        Event::SpeakingStart { first_audio_ms, .. } => {
            format!("speaking ({first_audio_ms} ms after the end of speech)")
        }
        Event::SpeakingEnd { interrupted, .. } => if *interrupted {
            "speaking stopped"
        } else {
            "done speaking"
        }
        .into(),
        Event::BargeIn { by, .. } => format!("barge-in by {by}"),
        Event::Stopped { text } => format!("stop word {text:?}"),
        Event::Dropped { total } => format!("utterance dropped: still busy ({total} so far)"),
        Event::Overrun { samples } => format!("capture overrun: {samples} samples lost"),
        Event::DeviceLost { message } => format!("input device lost: {message}"),
        Event::DeviceRestored => "input device back".into(),
        Event::Error { message } => format!("error: {message}"),
    }
}
