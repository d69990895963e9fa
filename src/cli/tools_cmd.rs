//! `serena tools`.

use clap::{Args, Subcommand};
use serena::error::ExitCode;
use serena::tools::{Origin, Toolbox};

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum ToolsCmd {
    /// List every tool: Serena's skills, then each MCP server's tools.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON: tools (with their argument schemas) and MCP servers.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, cmd: ToolsCmd) -> anyhow::Result<ExitCode> {
    let ToolsCmd::List(args) = cmd;
    let toolbox: Toolbox = serena::answer::toolbox_for(&ctx.config);
    let servers = toolbox
        .mcp
        .as_ref()
        .map(|h| h.servers().to_vec())
        .unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "choice": ctx.config.tools.choice,
                "tools": toolbox.specs(),
                "mcp_servers": servers,
            }))?
        );
        return Ok(ExitCode::Ok);
    }
    println!("tool choice: {}", ctx.config.tools.choice);
    for spec in toolbox.specs() {
        let from = match &spec.origin {
            Origin::Builtin => "serena".to_string(),
            Origin::Mcp(server) => format!("mcp:{server}"),
        };
        println!("  {:<20} {:<14} {}", spec.name, from, spec.description);
    }
    for s in &servers {
        match &s.error {
            None => println!("MCP server {}: {} tools", s.name, s.tools),
            Some(e) => println!("MCP server {}: not available: {e}", s.name),
        }
    }
    if servers.is_empty() {
        println!(
            "no MCP servers configured (tools.mcp_config, or mcp.json beside the config file)"
        );
    }
    Ok(ExitCode::Ok)
}
