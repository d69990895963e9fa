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
    // The last hour, from the history (through the running Serena when there is one).
    let since = serena::store::now_ms().saturating_sub(3_600_000);
    let last_hour = serena::control::open(super::store_cmds::context(ctx))
        .and_then(|mut h| h.history(None, Some(since), 100_000))
        .map(|entries| status::activity(&entries))
        .map_err(|e| tracing::debug!(error = %e, "no history for the status"))
        .ok();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let serde_json::Value::Object(map) = &mut v {
            map.insert("last_hour".into(), serde_json::to_value(&last_hour)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
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
        if let Some(a) = last_hour.as_ref().filter(|a| a.answers > 0) {
            let sources: Vec<String> = a
                .by_source
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("last hour: {} answers ({})", a.answers, sources.join(", "));
            for (stage, st) in &a.stages {
                println!(
                    "       {stage:<13} p50 {} p95 {} ({} samples)",
                    st.p50, st.p95, st.count
                );
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
