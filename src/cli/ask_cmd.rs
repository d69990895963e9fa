//! `serena ask` and `serena route`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use clap::Args;
use serena::error::ExitCode;
use serena::router::Router;

use super::{store_cmds, Ctx, UsageError};
use serena::answer::{self, AnswerOptions};
use serena::control;
use serena::store::InputMode;

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// Sentences to route; none: one sentence per line on standard input.
    text: Vec<String>,
}

/// `serena route`: text in, one JSON object per sentence out, no side effects.
pub fn route(_ctx: &Ctx, args: RouteArgs) -> anyhow::Result<ExitCode> {
    let router = Router::for_user()?;
    let print = |text: &str| -> anyhow::Result<()> {
        let routed = router.route(text);
        println!("{}", serde_json::to_string(&routed.report(text))?);
        Ok(())
    };
    if args.text.is_empty() {
        if std::io::stdin().is_terminal() {
            eprintln!("reading sentences from standard input, one per line (Ctrl-D to end)");
        }
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading standard input")?;
            if !line.trim().is_empty() {
                print(line.trim())?;
            }
        }
    } else {
        for t in &args.text {
            print(t)?;
        }
    }
    Ok(ExitCode::Ok)
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// What to ask, as text.
    #[arg(conflicts_with = "audio")]
    text: Vec<String>,
    /// Transcribe this audio file and ask what it says.
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,
    /// Speak the reply (to the speaker; to a WAV file when there is none).
    #[arg(long)]
    speak: bool,
    /// Write the spoken reply to this WAV file instead of playing it.
    #[arg(long, value_name = "WAV")]
    output_file: Option<PathBuf>,
    /// Print a JSON object: transcript, intent, slots, reply, source, timings.
    #[arg(long)]
    json: bool,
    /// Whisper model for --audio [default: stt.model].
    #[arg(short, long)]
    model: Option<String>,
    /// Start a new conversation: forget the earlier turns.
    #[arg(long)]
    new: bool,
}

pub fn ask(ctx: &Ctx, args: AskArgs) -> anyhow::Result<ExitCode> {
    let text = args.text.join(" ");
    if args.audio.is_none() && text.trim().is_empty() {
        return Err(UsageError("give the question as text, or --audio FILE".into()).into());
    }
    let started = Instant::now();
    let opts = AnswerOptions {
        config: &ctx.config,
        dirs: &ctx.dirs,
        catalog: &ctx.catalog,
        data_dir: &ctx.data_dir,
        stt_model: args.model.as_deref(),
        now: SystemTime::now(),
        engines: None,
        new_conversation: args.new,
        stage_timings: Default::default(),
        on_sentence: None,
    };
    // Audio is transcribed here; the answer comes from the store's owner: the running
    // Serena when there is one (over its socket), else this process.
    let (text, mode, stt_timings) = match &args.audio {
        Some(path) => {
            let (transcript, timings) = answer::transcribe_audio(path, &opts)?;
            (transcript, InputMode::File, timings)
        }
        None => (text, InputMode::Text, Default::default()),
    };
    // The transcription's timings go to the history with the answer.
    let mut answer = control::open(store_cmds::context(ctx))?.ask_question(&control::Question {
        text: &text,
        mode,
        new_conversation: args.new,
        timings: &stt_timings,
        on_sentence: None,
    })?;

    if args.speak || args.output_file.is_some() {
        let t = Instant::now();
        let spoken = answer::speak(
            &answer.reply,
            &ctx.config,
            args.output_file.as_deref(),
            &ctx.data_dir,
        )?;
        answer
            .timings
            .insert("tts_ms".into(), t.elapsed().as_millis() as u64);
        if let Some(path) = spoken {
            eprintln!("(spoken reply written to {})", path.display());
        }
    }
    answer
        .timings
        .insert("total_ms".into(), started.elapsed().as_millis() as u64);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if !answer.reply.is_empty() {
        println!("{}", answer.reply);
    }
    Ok(ExitCode::Ok)
}
