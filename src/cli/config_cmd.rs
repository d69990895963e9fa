//! `serena config show|path|init`.

use clap::Subcommand;
use serena::error::ExitCode;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (file, environment and flags applied) as TOML.
    Show,
    /// Print the configuration file's path.
    Path,
    /// Write a commented default configuration file.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Show => {
            if ctx.config_found {
                println!("# from {}", ctx.config_file.display());
            } else {
                println!("# {} does not exist: defaults", ctx.config_file.display());
            }
            print!("{}", ctx.config.to_toml());
        }
        ConfigCmd::Path => println!("{}", ctx.config_file.display()),
        ConfigCmd::Init { force } => {
            serena::config::init_file(&ctx.config_file, force)?;
            eprintln!("wrote {}", ctx.config_file.display());
        }
    }
    Ok(ExitCode::Ok)
}
