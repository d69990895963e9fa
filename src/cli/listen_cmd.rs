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
use serena::pipeline::listen::{self, Answered, Event, FRAME};
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
        f.to_vec()
    });

    let mut handle = control::open(context(ctx))?;
    let mut answer = |text: &str| -> Result<Answered, String> {
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
    let mut spoken: Vec<f32> = Vec::new();
    let mut spoken_rate = 0u32;
    let output = args.output_file.clone();
    let config = ctx.config.clone();
    let data_dir = ctx.data_dir.clone();
    let mut speak = |text: &str| -> Result<(), String> {
        match &output {
            Some(path) => {
                let tts = serena::tts::from_config(&config.tts).map_err(|e| e.to_string())?;
                let speech = tts.synthesize(text).map_err(|e| e.to_string())?;
                if spoken_rate != 0 && spoken_rate != speech.sample_rate {
                    return Err("the synthesizer changed its sample rate".into());
                }
                spoken_rate = speech.sample_rate;
                spoken.extend(&speech.samples);
                // Half a second between replies.
                spoken.extend(std::iter::repeat_n(0.0, speech.sample_rate as usize / 2));
                serena::audio::playback::write_wav(path, &spoken, spoken_rate)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            None => serena::answer::speak(text, &config, None, &data_dir)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
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
    listen::run(
        frames,
        &engine,
        &decode_opts,
        endpoint,
        &mut answer,
        &mut speak,
        &mut emit,
    );
    Ok(ExitCode::Ok)
}

fn text_of(event: &Event) -> String {
    match event {
        Event::Listening => "listening".into(),
        Event::SpeechStart { at_s } => format!("speech starts at {at_s:.2} s"),
        Event::SpeechEnd { at_s, reason, .. } => format!("speech ends at {at_s:.2} s ({reason:?})"),
        Event::Transcript {
            text, latency_ms, ..
        } => format!("heard {text:?} ({latency_ms} ms)"),
        Event::Reply { text, source, .. } => format!("reply ({source}): {text}"),
        Event::SpeakingStart => "speaking".into(),
        Event::SpeakingEnd { .. } => "done speaking".into(),
        Event::Error { message } => format!("error: {message}"),
    }
}
