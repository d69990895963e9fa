//! The `serena` binary: flags and configuration in, configured engines out.
//!
//! Only this file and `src/cli/` know about clap. Each subcommand validates its flags,
//! builds what it needs from the library, runs, and returns an exit code; errors are
//! mapped to the codes in [`serena::error::ExitCode`] by [`cli::exit_code_of`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::reset_sigpipe();
    cli::tame_openmp();
    cli::main()
}
