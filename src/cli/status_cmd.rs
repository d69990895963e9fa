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

/// `75` → `1 min 15 s`.
fn human_seconds(s: u64) -> String {
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
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
    let mut handle = serena::control::open(super::store_cmds::context(ctx))
        .map_err(|e| tracing::debug!(error = %e, "no store for the status"))
        .ok();
    let last_hour = handle
        .as_mut()
        .and_then(|h| {
            h.history(None, Some(since), 100_000)
                .map_err(|e| tracing::debug!(error = %e, "no history for the status"))
                .ok()
        })
        .map(|entries| status::activity(&entries));
    // The profile in force with the pins and the last change kept in the store.
    let power = handle.as_mut().and_then(|h| {
        h.power()
            .map_err(|e| tracing::debug!(error = %e, "no power profile for the status"))
            .ok()
    });
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let serde_json::Value::Object(map) = &mut v {
            map.insert("last_hour".into(), serde_json::to_value(&last_hour)?);
            map.insert("profile".into(), serde_json::to_value(&power)?);
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
        if let Some(p) = &power {
            let by = p
                .pinned_by
                .as_deref()
                .map_or(String::from("automatic"), |by| format!("pinned by {by}"));
            let s = &p.settings;
            println!(
                "profile: {} ({by}): whisper {} threads, {} VAD, LLM {} threads / {} tokens, online {}, {}",
                p.profile,
                s.stt_threads,
                if s.vad_engine == serena::power::VadEngine::Silero { "Silero" } else { "energy" },
                s.llm_threads,
                s.llm_max_tokens,
                if s.online_allowed { "allowed" } else { "off" },
                if s.always_listening { "always listening" } else { "push-to-talk only" },
            );
            if let Some(c) = &p.last_change {
                let ago = serena::store::now_ms().saturating_sub(c.at_ms) / 1000;
                println!(
                    "       last change: {} → {} {} ago ({})",
                    c.from,
                    c.to,
                    human_seconds(ago),
                    c.state
                );
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
