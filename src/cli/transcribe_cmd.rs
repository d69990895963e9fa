//! `serena transcribe`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serena::audio::decode::Decoder;
use serena::error::ExitCode;
use serena::models::{self, ModelKind};
use serena::stt::{DecodeOptions, WhisperEngine};
use serena::transcribe::format::{self, Format};
use serena::transcribe::{self, Options};
use serena::vad::SileroVad;

use super::{Ctx, UsageError};

/// File extensions taken from directories.
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "mp4", "aac", "aiff", "aif", "caf", "mkv",
    "webm",
];

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Audio files, directories (searched recursively) or - for standard input.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Whisper model: catalog name or path [default: stt.model].
    #[arg(short, long)]
    model: Option<String>,
    /// Spoken language: auto or a code such as en [default: stt.language].
    #[arg(short, long)]
    language: Option<String>,
    /// Translate to English.
    #[arg(long)]
    translate: bool,
    /// Output format (repeatable): txt, srt, vtt, json, tsv.
    #[arg(
        short = 'f',
        long = "format",
        value_name = "FORMAT",
        default_value = "txt"
    )]
    formats: Vec<Format>,
    /// Write <stem>.<ext> for each input and format into this directory.
    #[arg(short, long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Skip inputs whose every output file already exists.
    #[arg(long, requires = "output_dir")]
    skip_existing: bool,
    /// CPU threads [default: stt.threads, else min(4, cores)].
    #[arg(short, long)]
    threads: Option<u32>,
    /// Transcribe only the speech that Silero VAD finds.
    #[arg(long)]
    vad: bool,
    /// VAD model: catalog name or path [default: stt.vad_model].
    #[arg(long, requires = "vad")]
    vad_model: Option<String>,
    /// Initial prompt: names, spelling, style.
    #[arg(long)]
    prompt: Option<String>,
    /// Word-level timestamps (json).
    #[arg(long)]
    word_timestamps: bool,
    /// Beam size; 1 is greedy [default: stt.beam_size].
    #[arg(short, long)]
    beam_size: Option<u32>,
    /// Initial sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Maximum segment length in characters (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_len: u32,
    /// Longest window decoded at once, seconds (memory stays bounded by it).
    #[arg(long, default_value_t = 120.0, hide = true)]
    window_seconds: f64,
}

pub fn run(ctx: &Ctx, args: TranscribeArgs) -> anyhow::Result<ExitCode> {
    let inputs = expand_inputs(&args.inputs)?;
    if inputs.len() > 1 && args.output_dir.is_none() {
        return Err(UsageError(format!(
            "{} inputs need --output-dir (standard output takes one transcript)",
            inputs.len()
        ))
        .into());
    }
    if !(0.0..=1.0).contains(&args.temperature) {
        return Err(UsageError("--temperature must be between 0 and 1".into()).into());
    }
    if !(1.0..=1800.0).contains(&args.window_seconds) {
        return Err(UsageError("--window-seconds must be between 1 and 1800".into()).into());
    }
    let mut formats = args.formats.clone();
    formats.dedup();
    let stt = &ctx.config.stt;
    let beam_size = args.beam_size.unwrap_or(stt.beam_size);
    if !(1..=16).contains(&beam_size) {
        return Err(UsageError("--beam-size must be between 1 and 16".into()).into());
    }
    let language = args
        .language
        .clone()
        .unwrap_or_else(|| stt.language.clone());

    let model = models::resolve(
        args.model.as_deref().unwrap_or(&stt.model),
        ModelKind::Whisper,
        &ctx.dirs,
        &ctx.catalog,
    )?;
    let vad = if args.vad {
        let spec = args.vad_model.as_deref().unwrap_or(&stt.vad_model);
        Some(models::resolve(
            spec,
            ModelKind::Vad,
            &ctx.dirs,
            &ctx.catalog,
        )?)
    } else {
        None
    };
    let engine = WhisperEngine::load_with(&model, stt.flash_attn)?;
    let mut silero = match &vad {
        Some(v) => Some(SileroVad::load(v, 1)?),
        None => None,
    };
    if !engine.is_multilingual() && language != "en" && language != "auto" {
        return Err(UsageError(format!(
            "{} understands English only; use a multilingual model for --language {language}",
            engine.name()
        ))
        .into());
    }
    let threads = args
        .threads
        .or((stt.threads > 0).then_some(stt.threads))
        .unwrap_or_else(serena::stt::default_threads);
    let opts = Options {
        decode: DecodeOptions {
            language: Some(language),
            translate: args.translate,
            threads,
            beam_size,
            temperature: args.temperature,
            prompt: args.prompt.clone(),
            word_timestamps: args.word_timestamps,
            max_len: args.max_len,
            no_speech_threshold: stt.no_speech_threshold,
            ..DecodeOptions::default()
        },
        window_s: args.window_seconds,
        ..Options::default()
    };

    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let progress = std::io::stderr().is_terminal();
    let mut failed = 0usize;
    for input in &inputs {
        match transcribe_one(
            input,
            &engine,
            silero.as_mut(),
            &opts,
            &formats,
            args.output_dir.as_deref(),
            args.skip_existing,
            progress,
        ) {
            Ok(()) => {}
            Err(e) => {
                if super::exit_code_of(&e) != ExitCode::Input {
                    return Err(e);
                }
                eprintln!("serena: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        if inputs.len() > 1 {
            eprintln!("serena: {failed} of {} inputs failed", inputs.len());
        }
        return Ok(ExitCode::Input);
    }
    Ok(ExitCode::Ok)
}

#[allow(clippy::too_many_arguments)]
fn transcribe_one(
    input: &Path,
    engine: &WhisperEngine,
    vad: Option<&mut SileroVad>,
    opts: &Options,
    formats: &[Format],
    output_dir: Option<&Path>,
    skip_existing: bool,
    progress: bool,
) -> anyhow::Result<()> {
    let is_stdin = input.as_os_str() == "-";
    let stem = if is_stdin {
        "stdin".to_string()
    } else {
        input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "audio".into())
    };
    let outputs: Vec<(Format, PathBuf)> = match output_dir {
        Some(dir) => formats
            .iter()
            .map(|f| (*f, dir.join(format!("{stem}.{}", f.extension()))))
            .collect(),
        None => vec![],
    };
    if skip_existing && !outputs.is_empty() && outputs.iter().all(|(_, p)| p.exists()) {
        tracing::info!(input = %input.display(), "skipped: outputs exist");
        return Ok(());
    }
    let decoder = if is_stdin {
        Decoder::from_reader(Box::new(std::io::stdin()), None)?
    } else {
        Decoder::open(input)?
    };
    let label = if is_stdin {
        "-".to_string()
    } else {
        input.display().to_string()
    };
    let bar = progress.then(|| {
        let total = decoder.info().duration_s.unwrap_or(0.0);
        let bar = indicatif::ProgressBar::new((total * 10.0) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {pos:>5}/{len:5} (×0.1 s) eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(stem.clone());
        bar
    });

    // Stream segments to standard output when there is one text-like format and no files.
    let stream_format = match (output_dir, formats) {
        (None, [f]) if *f != Format::Json => Some(*f),
        _ => None,
    };
    let mut streamer = match stream_format {
        Some(f) => {
            let mut w = format::SegmentWriter::new(f, std::io::stdout())?;
            w.begin()?;
            Some(w)
        }
        None => None,
    };
    let mut write_error: Option<std::io::Error> = None;
    let transcript = transcribe::transcribe(engine, vad, decoder, &label, opts, |seg| {
        if let Some(bar) = &bar {
            bar.set_position((seg.end * 10.0) as u64);
        }
        if let Some(w) = streamer.as_mut() {
            if let Err(e) = w.segment(seg) {
                write_error.get_or_insert(e);
            }
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let transcript = transcript?;
    if let Some(e) = write_error {
        return Err(e).context("writing to standard output");
    }
    if let Some(w) = streamer {
        w.finish()?.flush()?;
        return Ok(());
    }
    let stdout = std::io::stdout();
    if outputs.is_empty() {
        let mut out = stdout.lock();
        for f in formats {
            format::write(*f, &transcript, &mut out)?;
        }
        out.flush()?;
        return Ok(());
    }
    for (f, path) in outputs {
        let tmp = path.with_extension(format!("{}.tmp", f.extension()));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        format::write(f, &transcript, &mut file)?;
        file.flush()?;
        drop(file);
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(output = %path.display(), "wrote");
    }
    Ok(())
}

/// Files as given; directories expanded recursively to their audio files, sorted.
fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found)?;
            found.sort();
            if found.is_empty() {
                return Err(UsageError(format!(
                    "{}: no audio files in this directory",
                    input.display()
                ))
                .into());
            }
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    if out.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(UsageError("standard input (-) can be given once".into()).into());
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}
