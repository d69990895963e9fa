//! `serena bench`: the standard benchmark any user can run, on clips built into the binary,
//! under each power profile: model load time, transcription real-time factor, per-stage
//! command latency through the live pipeline, idle CPU per audio second, peak RSS. A table,
//! `--json`, and `--plot FILE.svg` (latency per stage, plotters).
//!
//! Nothing here touches the user's store: commands are understood by the router alone (no
//! timer is set, nothing is recorded) and replies are written to a scratch WAV.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serena::audio::decode;
use serena::error::ExitCode;
use serena::models::{self, ModelKind};
use serena::pipeline::listen::{self, Answered, Brain, Event, ListenOptions, Stats};
use serena::pipeline::source::FileSource;
use serena::pipeline::speaker::FileSpeaker;
use serena::power::{ModelSlot, Profile, ProfileSettings, VadEngine};
use serena::router::{Routed, Router};
use serena::stt::{DecodeOptions, WhisperEngine};
use serena::usage::Meter;
use serena::vad::SileroVad;

use super::{Ctx, UsageError};

const JFK: &[u8] = include_bytes!("../../audio-fixtures/asr/jfk.wav");
const COMMAND: &[u8] = include_bytes!("../../audio-fixtures/commands/rhasspy3_what_time_is_it.wav");
const NOISE: &[u8] =
    include_bytes!("../../audio-fixtures/keywords/speech_commands_noise_1000ms.wav");

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A profile to run (repeatable): performance, balanced, saver, critical
    /// [default: performance, balanced, saver].
    #[arg(long = "profile", value_name = "PROFILE")]
    profiles: Vec<Profile>,
    /// Whisper model for every profile [default: each profile's, else stt.model].
    #[arg(short, long)]
    model: Option<String>,
    /// Seconds of idle audio (silence, then background noise) per profile.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(5..=3600))]
    idle_s: u32,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw the latency of each stage per profile into this SVG file.
    #[arg(long, value_name = "SVG")]
    plot: Option<PathBuf>,
}

/// One profile's results.
#[derive(Debug, Serialize)]
struct Row {
    profile: String,
    model: String,
    stt_threads: u32,
    vad: String,
    model_load_ms: u64,
    /// Transcription time / audio time for jfk.wav (11 s); below 1 is faster than real time.
    rtf: f64,
    stt_ms: u64,
    answer_ms: u64,
    synth_ms: u64,
    first_audio_ms: u64,
    heard: String,
    idle_silence_cpu_per_s: f64,
    idle_noise_cpu_per_s: f64,
    peak_rss_mb: u64,
}

pub fn run(ctx: &Ctx, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let profiles = if args.profiles.is_empty() {
        vec![Profile::Performance, Profile::Balanced, Profile::Saver]
    } else {
        args.profiles.clone()
    };
    let scratch = tempfile::tempdir()?;
    let clip = |name: &str, bytes: &[u8]| -> anyhow::Result<Vec<f32>> {
        let path = scratch.path().join(name);
        std::fs::write(&path, bytes)?;
        Ok(decode::decode_file_16k_mono(&path)?)
    };
    let jfk = clip("jfk.wav", JFK)?;
    let mut command = vec![0.0f32; 8_000];
    command.extend(clip("command.wav", COMMAND)?);
    command.extend(vec![0.0f32; 16_000]);
    let noise_second = clip("noise.wav", NOISE)?;
    let router = Router::builtin()?;
    let synth = match serena::tts::from_config(&ctx.config.tts) {
        Ok(s) => Some(s),
        Err(serena::tts::TtsError::Disabled) => None,
        Err(e) => return Err(e.into()),
    };
    let base = serena::power::now::base(&ctx.config);
    let mut rows = Vec::new();
    for profile in profiles {
        let settings = ProfileSettings::for_profile(profile, &base);
        if !args.json {
            eprintln!("serena bench: {profile}...");
        }
        rows.push(bench_profile(
            ctx,
            &args,
            &settings,
            &jfk,
            &command,
            &noise_second,
            &router,
            synth.as_deref(),
            scratch.path(),
        )?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows);
    }
    if let Some(path) = &args.plot {
        plot(&rows, path)?;
        if !args.json {
            println!("plot: {}", path.display());
        }
    }
    Ok(ExitCode::Ok)
}

#[allow(clippy::too_many_arguments)]
fn bench_profile(
    ctx: &Ctx,
    args: &BenchArgs,
    settings: &ProfileSettings,
    jfk: &[f32],
    command: &[f32],
    noise_second: &[f32],
    router: &Router,
    synth: Option<&dyn serena::tts::Synthesizer>,
    scratch: &Path,
) -> anyhow::Result<Row> {
    let meter = Meter::start();
    let spec = args
        .model
        .clone()
        .or_else(|| settings.whisper_model.clone())
        .unwrap_or_else(|| ctx.config.stt.model.clone());
    let model = models::resolve(&spec, ModelKind::Whisper, &ctx.dirs, &ctx.catalog)?;
    let t = Instant::now();
    let engine = WhisperEngine::load_with(&model, ctx.config.stt.flash_attn)?;
    let model_load_ms = t.elapsed().as_millis() as u64;
    // The pipeline takes whisper from a slot; nothing unloads it here.
    let slot: ModelSlot<WhisperEngine, String> = ModelSlot::keyed("stt", None, |spec: &str| {
        Err(format!("{spec} is not reloaded during the benchmark"))
    });
    let engine = slot.put(&spec, engine, t.elapsed());

    // Transcription speed on a file.
    let file_opts = DecodeOptions {
        threads: settings.stt_threads,
        ..DecodeOptions::default()
    };
    let t = Instant::now();
    engine.transcribe(jfk, 0.0, &file_opts)?;
    let rtf = t.elapsed().as_secs_f64() / (jfk.len() as f64 / 16_000.0);

    // A spoken command through the pipeline, as `listen --fast` runs it.
    let mut silero = match settings.vad_engine {
        VadEngine::Silero => models::resolve(
            &ctx.config.stt.vad_model,
            ModelKind::Vad,
            &ctx.dirs,
            &ctx.catalog,
        )
        .ok()
        .and_then(|m| SileroVad::load(&m, 1).ok()),
        VadEngine::Energy => None,
    };
    let vad = if silero.is_some() { "silero" } else { "energy" };
    let mut decode_opts = DecodeOptions::for_command(&ctx.config.stt);
    decode_opts.threads = settings.stt_threads;
    let mut answer = |text: &str,
                      _: &std::collections::BTreeMap<String, u64>,
                      _: &mut dyn FnMut(&str)|
     -> Result<Answered, String> {
        let (intent, reply) = match router.route(text) {
            Routed::Intent(m) => (Some(format!("{:?}", m.intent)), "It is twelve o'clock."),
            Routed::NotUnderstood => (None, "Sorry, I did not understand."),
        };
        Ok(Answered {
            intent,
            slots: serde_json::Value::Null,
            reply: reply.to_string(),
            source: "router".into(),
            power_profile: settings.profile.to_string(),
        })
    };
    let events = run_pipeline(
        command.to_vec(),
        Brain {
            synth,
            vad: silero.as_mut(),
            ..Brain::new(&slot, &spec, decode_opts.clone(), &mut answer)
        },
        &scratch.join("reply.wav"),
    );
    let mut row = Row {
        profile: settings.profile.to_string(),
        model: spec.clone(),
        stt_threads: settings.stt_threads,
        vad: vad.into(),
        model_load_ms,
        rtf,
        stt_ms: 0,
        answer_ms: 0,
        synth_ms: 0,
        first_audio_ms: 0,
        heard: String::new(),
        idle_silence_cpu_per_s: 0.0,
        idle_noise_cpu_per_s: 0.0,
        peak_rss_mb: 0,
    };
    for event in &events {
        match event {
            Event::Transcript {
                partial: false,
                latency_ms,
                text,
                ..
            } => {
                row.stt_ms = *latency_ms;
                row.heard = text.clone();
            }
            Event::Reply { latency_ms, .. } => row.answer_ms = *latency_ms,
            Event::SpeakingStart {
                first_audio_ms,
                synth_ms,
                ..
            } => {
                row.synth_ms = *synth_ms;
                row.first_audio_ms = *first_audio_ms;
            }
            _ => {}
        }
    }
    if row.heard.is_empty() {
        return Err(UsageError(format!(
            "the {} profile heard nothing in the bundled command clip: is {spec} a trained model?",
            settings.profile
        ))
        .into());
    }

    // Idle: silence, then background noise, through the front (no wake word).
    let n = args.idle_s as usize * 16_000;
    for noisy in [false, true] {
        let audio: Vec<f32> = if noisy {
            noise_second.iter().copied().cycle().take(n).collect()
        } else {
            vec![0.0; n]
        };
        let idle = Meter::start();
        let mut none = |_: &str,
                        _: &std::collections::BTreeMap<String, u64>,
                        _: &mut dyn FnMut(&str)|
         -> Result<Answered, String> { Err("idle".into()) };
        run_pipeline(
            audio,
            Brain {
                vad: silero.as_mut(),
                ..Brain::new(&slot, &spec, decode_opts.clone(), &mut none)
            },
            &scratch.join("idle.wav"),
        );
        let per_s = idle.finish().cpu.as_secs_f64() / f64::from(args.idle_s);
        if noisy {
            row.idle_noise_cpu_per_s = per_s;
        } else {
            row.idle_silence_cpu_per_s = per_s;
        }
    }
    row.peak_rss_mb = meter.finish().peak_rss_kb / 1024;
    Ok(row)
}

/// `samples` through the listen loop as fast as possible; its events.
fn run_pipeline(samples: Vec<f32>, brain: Brain<'_>, reply: &Path) -> Vec<Event> {
    let stop = Arc::new(AtomicBool::new(false));
    let source = FileSource::new(samples, false, stop);
    let mut speaker = FileSpeaker::new(reply, 22_050);
    let opts = ListenOptions {
        lockstep: true,
        follow_up_s: 0.0,
        ..ListenOptions::default()
    };
    let mut events = Vec::new();
    listen::run(
        source,
        brain,
        None,
        &mut speaker,
        &opts,
        &Stats::default(),
        &mut |e: &Event| events.push(e.clone()),
    );
    events
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<12} {:>7} {:>6} {:>8} {:>6} {:>7} {:>8} {:>7} {:>11} {:>12} {:>11} {:>8}",
        "profile",
        "threads",
        "vad",
        "load ms",
        "RTF",
        "stt ms",
        "answer",
        "synth",
        "first audio",
        "idle silence",
        "idle noise",
        "peak MB"
    );
    for r in rows {
        println!(
            "{:<12} {:>7} {:>6} {:>8} {:>6.3} {:>7} {:>8} {:>7} {:>11} {:>12.4} {:>11.4} {:>8}",
            r.profile,
            r.stt_threads,
            r.vad,
            r.model_load_ms,
            r.rtf,
            r.stt_ms,
            r.answer_ms,
            r.synth_ms,
            r.first_audio_ms,
            r.idle_silence_cpu_per_s,
            r.idle_noise_cpu_per_s,
            r.peak_rss_mb
        );
    }
    println!(
        "RTF: transcription time per audio second (jfk.wav, 11 s). Latencies in ms for a 2 s \
         command (end of speech → first reply audio). Idle: CPU seconds per audio second."
    );
}

/// Grouped bars: for each profile, the milliseconds of each stage.
fn plot(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;

    type Stage = (&'static str, fn(&Row) -> u64, RGBColor);
    let stages: [Stage; 4] = [
        ("speech to text", |r| r.stt_ms, RGBColor(31, 119, 180)),
        ("answer", |r| r.answer_ms, RGBColor(255, 127, 14)),
        ("synthesis", |r| r.synth_ms, RGBColor(44, 160, 44)),
        (
            "first audio (total)",
            |r| r.first_audio_ms,
            RGBColor(214, 39, 40),
        ),
    ];
    let top = rows
        .iter()
        .map(|r| r.first_audio_ms.max(r.stt_ms))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let n = rows.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Command latency per stage", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc("milliseconds")
        .draw()
        .map_err(|e| draw(&e))?;
    // Each group's profile, written above it.
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Text::new(
                r.profile.clone(),
                (i as f64 + 0.1, top * 0.97),
                ("sans-serif", 16).into_font(),
            )
        }))
        .map_err(|e| draw(&e))?;
    let width = 0.8 / stages.len() as f64;
    for (k, (label, value, color)) in stages.iter().enumerate() {
        let bars = rows.iter().enumerate().map(|(i, r)| {
            let x0 = i as f64 + 0.1 + k as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, value(r) as f64)],
                color.filled(),
            )
        });
        chart
            .draw_series(bars)
            .map_err(|e| draw(&e))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}
