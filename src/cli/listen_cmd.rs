//! `serena listen`: always-on voice commands. For now without a wake word (`--no-wake`) and
//! from a file played as if it were the microphone (`--input-file`); the live capture and
//! wake words are the next steps of the pipeline (see `src/pipeline/`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serena::audio::decode;
use serena::control;
use serena::error::ExitCode;
use serena::models::{self, ModelKind};
use serena::pipeline::endpoint::EndpointConfig;
use serena::pipeline::listen::{
    self, Answered, BargeIn, Brain, Event, Input, ListenOptions, Stats, FRAME,
};
use serena::pipeline::speaker::{DeviceSpeaker, FileSpeaker, Speaker};
use serena::store::InputMode;
use serena::stt::{DecodeOptions, WhisperEngine};

use super::store_cmds::context;
use super::{Ctx, UsageError};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EventFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line, with `event` and `t_ms`.
    Json,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Answer every utterance, without waiting for a wake word (required for now).
    #[arg(long)]
    no_wake: bool,
    /// Play this audio file as if it were the microphone (required for now).
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// With --input-file: as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Write the spoken replies into this WAV file instead of playing them.
    #[arg(long, value_name = "WAV")]
    output_file: Option<PathBuf>,
    /// Format of the event lines on standard output.
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    events: EventFormat,
    /// Whisper model [default: stt.model].
    #[arg(short, long)]
    model: Option<String>,
    /// Silence that ends an utterance, in milliseconds.
    #[arg(long, default_value_t = 500)]
    hang_ms: u64,
    /// The longest utterance, in seconds.
    #[arg(long, default_value_t = 15)]
    max_utterance_s: u64,
    /// Seconds after a reply in which a follow-up needs no wake word (0: off).
    #[arg(long, default_value_t = 5.0)]
    follow_up_s: f64,
    /// What may interrupt a reply while it plays.
    #[arg(long, value_enum, default_value_t = BargeIn::Speech)]
    barge_in: BargeIn,
}

pub fn run(ctx: &Ctx, args: ListenArgs) -> anyhow::Result<ExitCode> {
    if !args.no_wake {
        return Err(UsageError(
            "wake words are not built yet: use --no-wake to answer every utterance".into(),
        )
        .into());
    }
    let Some(input) = &args.input_file else {
        return Err(UsageError(
            "live microphone capture is not built yet: use --input-file FILE (a recording \
             played as if it were the microphone)"
                .into(),
        )
        .into());
    };
    let samples = decode::decode_file_16k_mono(input)?;
    let spec = args.model.as_deref().unwrap_or(&ctx.config.stt.model);
    let model = models::resolve(spec, ModelKind::Whisper, &ctx.dirs, &ctx.catalog)?;
    let engine = WhisperEngine::load_with(&model, ctx.config.stt.flash_attn)?;
    let decode_opts = DecodeOptions::for_command(&ctx.config.stt);
    let endpoint = EndpointConfig {
        hang: Duration::from_millis(args.hang_ms),
        max_utterance: Duration::from_secs(args.max_utterance_s.max(1)),
        ..EndpointConfig::default()
    };

    let started = Instant::now();
    let fast = args.fast;
    let frames = samples.chunks(FRAME).enumerate().map(move |(i, f)| {
        if !fast {
            // Real time: frame i is "heard" at i × 30 ms.
            let due = Duration::from_millis(30 * i as u64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Input::Frame(f.to_vec())
    });

    let mut handle = control::open(context(ctx))?;
    let mut answer = move |text: &str| -> Result<Answered, String> {
        let a = handle
            .ask(text, InputMode::Voice)
            .map_err(|e| e.to_string())?;
        Ok(Answered {
            intent: a.intent,
            slots: a.slots,
            reply: a.reply,
            source: serde_json::to_value(a.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        })
    };
    let synth = match serena::tts::from_config(&ctx.config.tts) {
        Ok(s) => Some(s),
        Err(serena::tts::TtsError::Disabled) => None,
        Err(e) => return Err(e.into()),
    };
    let mut speaker: Box<dyn Speaker> = match &args.output_file {
        Some(path) => Box::new(FileSpeaker::new(path, FILE_RATE)),
        None => Box::new(DeviceSpeaker::open(&ctx.config.audio.output_device)?),
    };
    let opts = ListenOptions {
        endpoint,
        follow_up_s: args.follow_up_s,
        barge_in: args.barge_in,
        lockstep: fast,
        ..ListenOptions::default()
    };
    let format = args.events;
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
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    let stats = Stats::default();
    listen::run(
        frames,
        Brain {
            engine: &engine,
            decode: &decode_opts,
            answer: &mut answer,
            synth: synth.as_deref(),
        },
        None,
        speaker.as_mut(),
        &opts,
        &stats,
        &mut emit,
    );
    Ok(ExitCode::Ok)
}

/// Rate of the WAV written by `--output-file`: espeak-ng's own, so its speech is not
/// resampled.
const FILE_RATE: u32 = 22_050;

fn text_of(event: &Event) -> String {
    match event {
        Event::Listening { wake_words } if wake_words.is_empty() => {
            "listening (every utterance is answered)".into()
        }
        Event::Listening { wake_words } => format!("listening for {}", wake_words.join(", ")),
        Event::SpeechStart { at_s } => format!("speech starts at {at_s:.2} s"),
        Event::SpeechEnd { at_s, reason, .. } => format!("speech ends at {at_s:.2} s ({reason:?})"),
        Event::Wake { name, score, at_s } => {
            format!("wake word {name} ({score:.2}) at {at_s:.2} s")
        }
        Event::Window { kind, until_s } => format!("{kind} window until {until_s:.2} s"),
        Event::Transcript {
            text, latency_ms, ..
        } => format!("heard {text:?} ({latency_ms} ms)"),
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
