//! Logging setup: `tracing` to standard error.
//!
//! `RUST_LOG` wins when set; otherwise `-v` (debug), `-vv` (trace) and `-q` (errors only)
//! choose the level, `info` by default for Serena and `warn` for the engines, whose
//! C libraries are chatty. `--log-format json` writes one JSON object per line.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber. `verbosity`: -1 quiet, 0 default, 1 debug, 2+ trace.
pub fn init(verbosity: i8, format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbosity {
            i8::MIN..=-1 => "error",
            0 => "warn,serena=info",
            1 => "info,serena=debug,whisper_rs=info,llama_cpp_2=info",
            _ => "debug,serena=trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(verbosity > 0);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}
