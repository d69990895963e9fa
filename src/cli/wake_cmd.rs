//! `serena wake`: train, list, test and remove custom wake words (see `src/wake/`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serena::audio::capture::CaptureOptions;
use serena::audio::decode;
use serena::error::ExitCode;
use serena::pipeline::listen::Input;
use serena::pipeline::source::LiveSource;
use serena::wake::{
    self, espeak_available, from_text, from_text_and_samples, model_path, split_utterances, train,
    Detector, DetectorConfig, TextOptions, TrainOptions, WakeError, WakeWordModel,
};

use super::listen_cmd::CaptureFailure;
use super::{Ctx, UsageError};

#[derive(Debug, Subcommand)]
pub enum WakeCmd {
    /// Make a wake word from recordings of it, from the microphone, or from text.
    Train(TrainArgs),
    /// List the trained wake words.
    List(ListArgs),
    /// Score audio files against wake words: where each is heard and how well.
    Test(TestArgs),
    /// Remove a trained wake word.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The wake word's name; `-` and `_` read as spaces, and what it says is cut from the
    /// command that follows ("hey_serena" says "hey serena").
    name: String,
    /// Recordings of the word (any audio format). A recording that says it several times,
    /// with pauses, gives several examples.
    files: Vec<PathBuf>,
    /// Record the examples from the microphone for this many seconds (say the word three or
    /// four times, pausing between).
    #[arg(long, value_name = "SECONDS", conflicts_with = "from_text")]
    record: Option<u32>,
    /// The microphone for --record [default: audio.input_device].
    #[arg(long, value_name = "NAME", requires = "record")]
    input_device: Option<String>,
    /// Make the word from text alone: espeak-ng says it in several voices and speeds.
    #[arg(long, value_name = "TEXT", conflicts_with = "files")]
    from_text: Option<String>,
    /// What the recordings say [default: the name]. Unless --no-synth, espeak-ng examples of
    /// it are added, so that other voices than the recorded one are heard too.
    #[arg(long, value_name = "TEXT", conflicts_with = "from_text")]
    text: Option<String>,
    /// Train on the recordings alone (no espeak-ng examples).
    #[arg(long, conflicts_with = "from_text")]
    no_synth: bool,
    /// espeak-ng voices for synthetic examples, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "VOICE,...")]
    voices: Vec<String>,
    /// Speaking rates for synthetic examples, words per minute, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "WPM,...")]
    speeds: Vec<u32>,
    /// Detection threshold stored with the word (0 to 1) [default: 0.45 with recordings,
    /// 0.44 from text alone].
    #[arg(long)]
    threshold: Option<f32>,
    /// Replace a word of the same name.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Audio files to search.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Wake words to look for (repeatable) [default: wake.words, or every trained word].
    #[arg(short, long = "word", value_name = "NAME")]
    words: Vec<String>,
    /// Threshold for every word instead of each word's own.
    #[arg(long)]
    threshold: Option<f32>,
    /// Print JSON, one object per file.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The word to remove.
    name: String,
}

pub fn run(ctx: &Ctx, cmd: WakeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WakeCmd::Train(args) => train_cmd(ctx, args),
        WakeCmd::List(args) => list_cmd(ctx, &args),
        WakeCmd::Test(args) => test_cmd(ctx, &args),
        WakeCmd::Remove(args) => remove_cmd(ctx, &args),
    }
}

#[derive(Serialize)]
struct Trained<'a> {
    name: &'a str,
    says: &'a str,
    path: &'a Path,
    recorded_examples: usize,
    synthetic_examples: usize,
    threshold: f32,
    longest_s: f32,
}

fn train_cmd(ctx: &Ctx, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let path = model_path(&ctx.data_dir, &args.name)?;
    if path.exists() && !args.force {
        return Err(UsageError(format!(
            "wake word {:?} is already trained ({}); --force replaces it",
            args.name,
            path.display()
        ))
        .into());
    }
    let mut text_opts = TextOptions::default();
    if !args.voices.is_empty() {
        text_opts.voices = args.voices.clone();
    }
    if !args.speeds.is_empty() {
        text_opts.speeds_wpm = args.speeds.clone();
    }
    let synthetic = text_opts.voices.len() * text_opts.speeds_wpm.len();

    let (mut model, recorded, synth, says) = if let Some(text) = &args.from_text {
        if let Some(t) = args.threshold {
            text_opts.train.threshold = t;
        }
        let model = from_text(&args.name, text, &text_opts)?;
        (model, 0, synthetic, text.clone())
    } else {
        let mut examples = Vec::new();
        for file in &args.files {
            let audio = decode::decode_file_16k_mono(file)?;
            let found = split_utterances(&audio);
            if found.is_empty() {
                return Err(WakeError::BadSample {
                    name: args.name.clone(),
                    index: examples.len(),
                    reason: format!("no speech found in {}", file.display()),
                }
                .into());
            }
            examples.extend(found);
        }
        if let Some(seconds) = args.record {
            let device = args
                .input_device
                .clone()
                .unwrap_or_else(|| ctx.config.audio.input_device.clone());
            let says = args
                .text
                .clone()
                .unwrap_or_else(|| wake::phrase_of(&args.name));
            eprintln!(
                "Say {says:?} three or four times, pausing a second between, in the next \
                 {seconds} seconds..."
            );
            let audio = record(&device, seconds)?;
            let found = split_utterances(&audio);
            eprintln!("heard {} example(s)", found.len());
            if found.is_empty() {
                return Err(WakeError::NoSamples {
                    name: args.name.clone(),
                }
                .into());
            }
            examples.extend(found);
        }
        if examples.is_empty() {
            return Err(UsageError(
                "give recordings of the word (FILE...), --record SECONDS, or --from-text TEXT"
                    .into(),
            )
            .into());
        }
        let mut opts = TrainOptions {
            trim: false, // split_utterances has cut each example already
            ..TrainOptions::default()
        };
        if let Some(t) = args.threshold {
            opts.threshold = t;
        }
        let says = args
            .text
            .clone()
            .unwrap_or_else(|| wake::phrase_of(&args.name));
        let with_synth = !args.no_synth && espeak_available(&text_opts.program);
        if !args.no_synth && !with_synth {
            tracing::warn!(
                "espeak-ng is not installed: training on the recordings alone, which may not \
                 hear other voices (install espeak-ng, or pass --no-synth to silence this)"
            );
        }
        let model = if with_synth {
            from_text_and_samples(&args.name, &says, &examples, &text_opts, &opts)?
        } else {
            train(&args.name, &examples, &opts)?
        };
        let synth = if with_synth { synthetic } else { 0 };
        (model, examples.len(), synth, says)
    };
    if let Some(t) = args.threshold {
        model.set_threshold(t)?;
    }
    model.set_text(&says);
    model.save(&path)?;
    let out = Trained {
        name: &args.name,
        says: &says,
        path: &path,
        recorded_examples: recorded,
        synthetic_examples: synth,
        threshold: model.threshold(),
        longest_s: model.longest_s(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "trained wake word {:?} (says {:?}): {} recorded + {} synthetic examples, \
             threshold {:.2}\n  {}",
            out.name,
            out.says,
            out.recorded_examples,
            out.synthetic_examples,
            out.threshold,
            path.display()
        );
    }
    Ok(ExitCode::Ok)
}

/// `seconds` of the microphone, 16 kHz mono.
fn record(device: &str, seconds: u32) -> anyhow::Result<Vec<f32>> {
    let stop = Arc::new(AtomicBool::new(false));
    let opts = CaptureOptions {
        device: Some(device.to_string()),
        ..CaptureOptions::default()
    };
    let source = LiveSource::open(opts, stop).map_err(CaptureFailure)?;
    let want = seconds as usize * wake::SAMPLE_RATE as usize;
    let mut audio = Vec::with_capacity(want);
    for input in source {
        match input {
            Input::Frame(frame) => audio.extend_from_slice(&frame),
            Input::DeviceLost(message) => {
                anyhow::bail!("the microphone stopped while recording: {message}")
            }
            Input::Overrun(_) | Input::DeviceRestored | Input::Talk(_) => {}
        }
        if audio.len() >= want {
            break;
        }
    }
    Ok(audio)
}

#[derive(Serialize)]
struct Listed {
    name: String,
    says: String,
    path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    examples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn list_cmd(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let listed: Vec<Listed> = wake::installed(&ctx.data_dir)?
        .into_iter()
        .map(|i| {
            let (examples, threshold, error) = match &i.model {
                Ok(m) => (Some(m.examples()), Some(m.threshold()), None),
                Err(e) => (None, None, Some(e.to_string())),
            };
            Listed {
                says: i
                    .model
                    .as_ref()
                    .ok()
                    .and_then(|m| m.text())
                    .map_or_else(|| wake::phrase_of(&i.name), str::to_string),
                name: i.name,
                path: i.path,
                examples,
                threshold,
                error,
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::Ok);
    }
    if listed.is_empty() {
        println!(
            "no wake words yet (they live in {}); make one with `serena wake train`",
            wake::words_dir(&ctx.data_dir).display()
        );
    }
    for l in &listed {
        match (&l.error, l.examples, l.threshold) {
            (Some(e), _, _) => println!("{:<20} UNUSABLE: {e}", l.name),
            (None, Some(n), Some(t)) => {
                println!(
                    "{:<20} says {:<24} {n:>3} examples  threshold {t:.2}",
                    l.name,
                    format!("{:?}", l.says)
                )
            }
            _ => {}
        }
    }
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct Heard {
    name: String,
    at_s: f64,
    score: f32,
}

#[derive(Serialize)]
struct WordResult {
    name: String,
    threshold: f32,
    /// The best score anywhere in the file, detected or not.
    best: f32,
}

#[derive(Serialize)]
struct FileResult {
    file: PathBuf,
    detections: Vec<Heard>,
    words: Vec<WordResult>,
}

fn test_cmd(ctx: &Ctx, args: &TestArgs) -> anyhow::Result<ExitCode> {
    let names = if args.words.is_empty() {
        ctx.config.wake.words.clone()
    } else {
        args.words.clone()
    };
    let loaded = load_models(&ctx.data_dir, &names)?;
    let mut failed = false;
    for file in &args.files {
        let audio = match decode::decode_file_16k_mono(file) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("serena: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let result = score_file(file, &audio, &loaded, args.threshold)?;
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
        } else {
            println!("{}", file.display());
            for w in &result.words {
                println!(
                    "  {:<20} best {:.3}  threshold {:.2}",
                    w.name, w.best, w.threshold
                );
            }
            for d in &result.detections {
                println!("  heard {:?} at {:.2} s ({:.3})", d.name, d.at_s, d.score);
            }
            if result.detections.is_empty() {
                println!("  no wake word heard");
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(if failed {
        ExitCode::Input
    } else {
        ExitCode::Ok
    })
}

fn load_models(data_dir: &Path, names: &[String]) -> Result<Vec<WakeWordModel>, WakeError> {
    if names.is_empty() {
        let found = wake::installed(data_dir)?;
        if found.is_empty() {
            return Err(WakeError::NoneTrained {
                dir: wake::words_dir(data_dir),
            });
        }
        return found.into_iter().map(|i| i.model).collect();
    }
    names
        .iter()
        .map(|name| {
            let path = model_path(data_dir, name)?;
            if !path.is_file() {
                return Err(WakeError::NotTrained {
                    name: name.clone(),
                    path,
                });
            }
            WakeWordModel::load(&path)
        })
        .collect()
}

/// Runs each word over the file (followed by 1.5 s of quiet, so a word at the very end can
/// complete): the detections at the threshold, and the best score at any threshold.
fn score_file(
    file: &Path,
    audio: &[f32],
    models: &[WakeWordModel],
    threshold: Option<f32>,
) -> Result<FileResult, WakeError> {
    let mut padded = audio.to_vec();
    padded.extend(quiet(Duration::from_millis(1500)));
    let mut detector = Detector::new(DetectorConfig::default())?;
    let mut words = Vec::new();
    for model in models {
        match threshold {
            Some(t) => detector.add_with_threshold(model, t)?,
            None => detector.add(model)?,
        }
        let mut probe = Detector::new(DetectorConfig::default())?;
        probe.add_with_threshold(model, 0.001)?;
        let mut best = 0.0f32;
        for frame in padded.chunks(wake::FRAME_SAMPLES) {
            for d in probe.push(frame) {
                best = best.max(d.score);
            }
            if let Some((_, s)) = probe.partial() {
                best = best.max(s);
            }
        }
        words.push(WordResult {
            name: model.name().to_string(),
            threshold: threshold.unwrap_or(model.threshold()),
            best,
        });
    }
    let detections = padded
        .chunks(wake::FRAME_SAMPLES)
        .flat_map(|f| detector.push(f))
        .map(|d| Heard {
            at_s: d.at_s(),
            name: d.name,
            score: d.score,
        })
        .collect();
    Ok(FileResult {
        file: file.to_path_buf(),
        detections,
        words,
    })
}

/// Deterministic noise near -70 dBFS, like an idle microphone (digital silence would keep
/// the detector's energy gate shut).
fn quiet(length: Duration) -> Vec<f32> {
    let n = (length.as_secs_f64() * f64::from(wake::SAMPLE_RATE)) as usize;
    let mut seed = 12_345u32;
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.001
        })
        .collect()
}

fn remove_cmd(ctx: &Ctx, args: &RemoveArgs) -> anyhow::Result<ExitCode> {
    let path = model_path(&ctx.data_dir, &args.name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {
            println!("removed wake word {:?}", args.name);
            Ok(ExitCode::Ok)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(WakeError::NotTrained {
            name: args.name.clone(),
            path,
        }
        .into()),
        Err(source) => Err(WakeError::Io {
            action: "remove",
            path,
            source,
        }
        .into()),
    }
}
