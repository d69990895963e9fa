//! `serena status`.

use std::time::Duration;

use clap::Args;
use serena::error::ExitCode;
use serena::status::{self, Level};

use super::Ctx;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let report = status::run(&status::Options {
        config: &ctx.config,
        dirs: &ctx.dirs,
        catalog: &ctx.catalog,
        data_dir: &ctx.data_dir,
        device_timeout: Duration::from_secs(3),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let b = &report.build;
        println!(
            "serena {} — backends: {}; ggml {} ({}); whisper.cpp {}",
            b.version,
            b.backends.join(", "),
            b.ggml_version,
            b.ggml_commit,
            b.whisper_cpp_version
        );
        for c in &report.checks {
            let tag = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("[{tag}] {:<13} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("       {:<13} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if report.ok {
                "Serena is ready."
            } else {
                "Something Serena needs is missing (see FAIL above)."
            }
        );
    }
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Unhealthy
    })
}
