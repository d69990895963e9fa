//! `serena devices`.

use clap::Args;
use serena::audio::devices;
use serena::error::ExitCode;

use super::Ctx;

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(_ctx: &Ctx, args: DevicesArgs) -> anyhow::Result<ExitCode> {
    let list = devices::list();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::Ok);
    }
    if list.is_empty() {
        println!("no audio devices found (is a sound server running?)");
    }
    for d in &list {
        let mark = if d.is_default { "*" } else { " " };
        let default = match &d.default_config {
            Ok(c) => format!("default {} Hz, {} ch, {}", c.min_rate, c.channels, c.format),
            Err(e) => format!("not usable: {e}"),
        };
        println!(
            "{mark} {:<6} {:<24} {}  ({default})",
            d.direction, d.id, d.name
        );
        let mut rates: Vec<String> = d
            .supported
            .iter()
            .map(|r| {
                if r.min_rate == r.max_rate {
                    format!("{} Hz {} ch {}", r.min_rate, r.channels, r.format)
                } else {
                    format!(
                        "{}-{} Hz {} ch {}",
                        r.min_rate, r.max_rate, r.channels, r.format
                    )
                }
            })
            .collect();
        rates.dedup();
        if !rates.is_empty() {
            println!("         supports: {}", rates.join("; "));
        }
    }
    if !list.is_empty() {
        println!("(* = default)");
    }
    Ok(ExitCode::Ok)
}
