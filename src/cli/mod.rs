//! Command-line parsing and dispatch.

mod ask_cmd;
mod bench_cmd;
mod config_cmd;
mod devices_cmd;
mod listen_cmd;
mod models_cmd;
mod serve_cmd;
mod status_cmd;
mod store_cmds;
mod tools_cmd;
mod transcribe_cmd;
mod wake_cmd;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serena::config::{Config, ConfigError};
use serena::error::{Classify, ExitCode};
use serena::logging::{self, LogFormat};
use serena::models::{Catalog, ModelDirs};

/// Serena: a local, offline-first, voice-first assistant.
#[derive(Debug, Parser)]
#[command(name = "serena", version, about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage or configuration, 3 bad input file, \
4 model problem, 5 audio device, 6 store, 7 `status` found a required part missing."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
struct Global {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text, global = true)]
    log_format: LogFormatArg,
    /// Configuration file [default: the platform config dir; env SERENA_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration value: section.key=value (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Data directory [default: general.data_dir, env SERENA_DATA_DIR, or the platform data dir].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask something, by text or audio file; the answer is printed (and spoken with --speak).
    Ask(ask_cmd::AskArgs),
    /// Always-on voice commands: wait for a wake word, hear the command, answer out loud.
    Listen(listen_cmd::ListenArgs),
    /// Push-to-talk: hold a global hotkey (or toggle in the terminal), speak, release.
    Ptt(listen_cmd::PttArgs),
    /// The standard benchmark on built-in clips, per power profile (--json, --plot SVG).
    Bench(bench_cmd::BenchArgs),
    /// Train, list, test and remove wake words.
    #[command(subcommand)]
    Wake(wake_cmd::WakeCmd),
    /// Show how sentences are understood: one JSON object per sentence, no side effects.
    Route(ask_cmd::RouteArgs),
    /// Transcribe audio files to text, subtitles or JSON.
    Transcribe(transcribe_cmd::TranscribeArgs),
    /// List, download, import, verify and remove models.
    #[command(subcommand)]
    Models(models_cmd::ModelsCmd),
    /// Show, locate or create the configuration file.
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Check that models, audio devices, speech and storage work.
    Status(status_cmd::StatusArgs),
    /// List audio input and output devices.
    Devices(devices_cmd::DevicesArgs),
    /// List the tools the language model can call (skills and MCP servers' tools).
    #[command(subcommand)]
    Tools(tools_cmd::ToolsCmd),
    /// Run the long-running Serena: owns the store, serves other commands, fires timers.
    Serve(serve_cmd::ServeArgs),
    /// Show past questions and answers.
    History(store_cmds::HistoryArgs),
    /// List, add and remove notes.
    Notes(store_cmds::NotesArgs),
    /// Show and change lists (shopping, to-do and your own).
    Lists(store_cmds::ListsArgs),
    /// List and cancel timers.
    Timers(store_cmds::TimersArgs),
    /// Write a backup archive of all data (optionally encrypted).
    Backup(store_cmds::BackupArgs),
    /// Restore a backup archive, or undo the last restore (not while a Serena runs).
    Restore(store_cmds::RestoreArgs),
    /// Print all data as one readable JSON document.
    Export(store_cmds::ExportArgs),
}

/// Everything a subcommand needs from flags and configuration.
pub struct Ctx {
    pub config: Config,
    pub config_file: PathBuf,
    pub config_found: bool,
    pub data_dir: PathBuf,
    pub dirs: ModelDirs,
    pub catalog: Catalog,
}

impl Ctx {
    fn build(global: &Global) -> Result<Ctx, ConfigError> {
        let config_file = global
            .config
            .clone()
            .unwrap_or_else(serena::paths::config_file);
        let loaded = Config::load(&config_file, std::env::vars(), &global.set)?;
        let config = loaded.config;
        let data_dir = match &global.data_dir {
            Some(dir) => dir.clone(),
            None if std::env::var_os(serena::paths::ENV_DATA_DIR).is_some() => {
                serena::paths::default_data_dir()
            }
            None if !config.general.data_dir.as_os_str().is_empty() => {
                config.general.data_dir.clone()
            }
            None => serena::paths::default_data_dir(),
        };
        let dirs = ModelDirs::new(&config.general.models_dir, &data_dir);
        Ok(Ctx {
            config,
            config_file,
            config_found: loaded.file.is_some(),
            data_dir,
            dirs,
            catalog: Catalog::builtin(),
        })
    }
}

/// Parse, run, and map the outcome to an exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::Ok.into()
                }
                _ => ExitCode::Usage.into(),
            };
        }
    };
    let verbosity = if cli.global.quiet {
        -1
    } else {
        cli.global.verbose.min(3) as i8
    };
    logging::init(
        verbosity,
        match cli.global.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
    );
    let ctx = match Ctx::build(&cli.global) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("serena: {e}");
            return e.exit_code().into();
        }
    };
    let result = match cli.command {
        Command::Ask(args) => ask_cmd::ask(&ctx, args),
        Command::Route(args) => ask_cmd::route(&ctx, args),
        Command::Transcribe(args) => transcribe_cmd::run(&ctx, args),
        Command::Models(cmd) => models_cmd::run(&ctx, cmd),
        Command::Config(cmd) => config_cmd::run(&ctx, cmd),
        Command::Status(args) => status_cmd::run(&ctx, args),
        Command::Devices(args) => devices_cmd::run(&ctx, args),
        Command::Listen(args) => listen_cmd::run(&ctx, args),
        Command::Wake(cmd) => wake_cmd::run(&ctx, cmd),
        Command::Bench(args) => bench_cmd::run(&ctx, args),
        Command::Ptt(args) => listen_cmd::run_ptt(&ctx, args),
        Command::Tools(cmd) => tools_cmd::run(&ctx, cmd),
        Command::Serve(args) => serve_cmd::run(&ctx, args),
        Command::History(args) => store_cmds::history(&ctx, args),
        Command::Notes(args) => store_cmds::notes(&ctx, args),
        Command::Lists(args) => store_cmds::lists(&ctx, args),
        Command::Timers(args) => store_cmds::timers(&ctx, args),
        Command::Backup(args) => store_cmds::backup(&ctx, args),
        Command::Restore(args) => store_cmds::restore(&ctx, args),
        Command::Export(args) => store_cmds::export(&ctx, args),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("serena: {e:#}");
            exit_code_of(&e).into()
        }
    }
}

/// The exit code an error deserves: the first error in its chain that knows.
pub fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ConfigError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<serena::models::ModelError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<serena::audio::devices::DeviceError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<serena::pipeline::ptt::PttError>() {
            use serena::pipeline::ptt::PttError as P;
            return match e {
                P::BadHotkey { .. } => ExitCode::Usage,
                P::NoDisplay(_) | P::Grab { .. } | P::NoTerminal(_) => ExitCode::Device,
            };
        }
        if let Some(e) = cause.downcast_ref::<serena::wake::WakeError>() {
            return e.exit_code();
        }
        if cause.downcast_ref::<listen_cmd::CaptureFailure>().is_some() {
            return ExitCode::Device;
        }
        if let Some(serena::stt::SttError::Model(m)) = cause.downcast_ref::<serena::stt::SttError>()
        {
            return m.exit_code();
        }
        if let Some(serena::transcribe::TranscribeError::Decode(_)) =
            cause.downcast_ref::<serena::transcribe::TranscribeError>()
        {
            return ExitCode::Input;
        }
        if let Some(e) = cause.downcast_ref::<serena::answer::AnswerError>() {
            use serena::answer::AnswerError as A;
            return match e {
                A::Decode(_) => ExitCode::Input,
                A::Model(m) => m.exit_code(),
                A::Stt(serena::stt::SttError::Model(m)) => m.exit_code(),
                A::Store(_) => ExitCode::Store,
                _ => ExitCode::Failure,
            };
        }
        if cause
            .downcast_ref::<serena::audio::decode::DecodeError>()
            .is_some()
        {
            return ExitCode::Input;
        }
        if let Some(e) = cause.downcast_ref::<serena::control::ControlError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<serena::store::StoreError>() {
            let _ = e;
            return ExitCode::Store;
        }
        if cause
            .downcast_ref::<serena::router::RouterError>()
            .is_some()
        {
            return ExitCode::Usage; // the user's sentence files are configuration
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return ExitCode::Usage;
        }
    }
    ExitCode::Failure
}

/// A flag combination that makes no sense; exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The shared ggml runs its threads with OpenMP, whose default busy-waiting collapses when
/// other programs share the cores (runs measured 10× slower on a busy 2-core machine).
/// Serena is a background assistant on a shared machine: wait passively unless the user
/// chose otherwise. Called first thing in `main`, before any thread or OpenMP region exists.
pub fn tame_openmp() {
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "passive");
    }
}

/// Die quietly on a closed pipe (`serena transcribe x.wav | head -1`), like other Unix tools.
pub fn reset_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
