//! Tools the language model can call: Serena's own skills and the tools of MCP servers.
//!
//! - [`builtin`]: the skills (time, timers, lists, notes, system status) as tools, each a
//!   JSON schema mapped onto a router intent and its slots.
//! - [`mcp`]: MCP servers the user configures, spoken to over stdio with `rmcp`.
//! - [`grammar`]: the llama.cpp grammar that makes even a weak model emit a well-formed
//!   call, and the parser for calls.
//! - [`run`]: the loop: generate, call, feed the result back, generate the reply.
//!
//! Invariants: arguments are validated against the tool's schema before anything runs;
//! a tool that fails, times out or is unknown gives the model an error result; nothing a
//! tool or a model does can crash the caller.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod builtin;
pub mod grammar;
pub mod mcp;
pub mod run;

pub use grammar::{parse_call, ToolCall};
pub use mcp::{McpHub, McpServerConfig};
pub use run::{chat_with_tools, ToolChat, ToolChoice};

/// Where a tool comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "server")]
pub enum Origin {
    /// One of Serena's skills.
    Builtin,
    /// An MCP server, by its configured name.
    Mcp(String),
}

/// A tool as the model sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSpec {
    /// Unique name (MCP tools whose name collides with another get `server.name`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of its arguments (an object schema).
    pub input_schema: serde_json::Value,
    /// Where it comes from.
    pub origin: Origin,
}

/// What a tool returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The result as text (for the model and for speech).
    pub text: String,
    /// Whether it is an error result.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(text: impl Into<String>) -> ToolOutput {
        ToolOutput {
            text: text.into(),
            is_error: false,
        }
    }

    /// An error result (the model is told; nothing crashes).
    pub fn error(text: impl Into<String>) -> ToolOutput {
        ToolOutput {
            text: text.into(),
            is_error: true,
        }
    }
}

/// Check `args` against a tool's JSON schema.
///
/// # Errors
/// A readable list of what is wrong.
pub fn validate(schema: &serde_json::Value, args: &serde_json::Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the tool's schema is invalid: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(args)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Every tool available: the skills, then the MCP servers' tools.
#[derive(Debug, Default)]
pub struct Toolbox {
    specs: Vec<ToolSpec>,
    /// The MCP servers, when any are configured.
    pub mcp: Option<McpHub>,
    /// How long one call may take.
    pub timeout: Duration,
}

impl Toolbox {
    /// The built-in tools and those of `mcp`'s servers. Names that collide get the
    /// server's name in front (`server.tool`).
    pub fn new(mcp: Option<McpHub>, timeout: Duration) -> Toolbox {
        let mut specs = builtin::specs();
        if let Some(hub) = &mcp {
            for mut spec in hub.tools() {
                if specs.iter().any(|s| s.name == spec.name) {
                    if let Origin::Mcp(server) = &spec.origin {
                        spec.name = format!("{server}.{}", spec.name);
                    }
                }
                specs.push(spec);
            }
        }
        Toolbox {
            specs,
            mcp,
            timeout,
        }
    }

    /// The tools, in the order the model sees them.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Run a call: unknown tools and invalid arguments give an error result without
    /// running anything.
    pub fn call(&self, call: &ToolCall, env: &crate::skills::Env<'_>) -> ToolOutput {
        let Some(spec) = self.specs.iter().find(|s| s.name == call.name) else {
            return ToolOutput::error(format!("there is no tool named {:?}", call.name));
        };
        if let Err(why) = validate(&spec.input_schema, &call.arguments) {
            return ToolOutput::error(format!("invalid arguments for {}: {why}", call.name));
        }
        let _span = tracing::info_span!("tool_call", tool = %call.name).entered();
        let out = match &spec.origin {
            Origin::Builtin => builtin::call(&call.name, &call.arguments, env),
            Origin::Mcp(server) => match &self.mcp {
                Some(hub) => {
                    let name = call
                        .name
                        .strip_prefix(&format!("{server}."))
                        .unwrap_or(&call.name);
                    hub.call(server, name, &call.arguments, self.timeout)
                }
                None => ToolOutput::error("no MCP servers are running"),
            },
        };
        tracing::info!(is_error = out.is_error, "tool answered");
        out
    }
}
