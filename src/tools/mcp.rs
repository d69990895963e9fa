//! MCP servers: tools from other programs, over stdio, with the official Rust SDK (`rmcp`).
//!
//! Servers are configured in a JSON file in the format other MCP clients use:
//! `{"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}}}}`.
//! [`McpHub::start`] runs every server as a child process on a thread of its own (with its
//! own small tokio runtime, so the hub works from synchronous code and from inside other
//! runtimes alike), lists their tools, and serves calls with a timeout. A server that
//! does not start, or dies, costs only its own tools: its calls get error results.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc as smpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Origin, ToolOutput, ToolSpec};

/// How one server is started.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Skip this server.
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "mcpServers", default)]
    servers: BTreeMap<String, McpServerConfig>,
}

/// Read an MCP configuration file.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn load_config(path: &Path) -> Result<BTreeMap<String, McpServerConfig>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: ConfigFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not an MCP configuration ({{\"mcpServers\": {{...}}}}): {e}",
            path.display()
        )
    })?;
    Ok(file
        .servers
        .into_iter()
        .filter(|(_, s)| !s.disabled)
        .collect())
}

struct CallRequest {
    server: String,
    tool: String,
    args: serde_json::Map<String, serde_json::Value>,
    timeout: Duration,
    reply: smpsc::SyncSender<ToolOutput>,
}

/// A server's state as `serena tools list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServerStatus {
    /// Its configured name.
    pub name: String,
    /// Tools it offers (0 when it failed).
    pub tools: usize,
    /// Why it is not available.
    pub error: Option<String>,
}

/// The running MCP servers.
#[derive(Debug)]
pub struct McpHub {
    requests: Option<mpsc::Sender<CallRequest>>,
    tools: Vec<ToolSpec>,
    servers: Vec<ServerStatus>,
    thread: Option<JoinHandle<()>>,
}

type Client = RunningService<RoleClient, ()>;

impl McpHub {
    /// Start `servers` and list their tools, waiting at most `connect_timeout` for each.
    pub fn start(servers: BTreeMap<String, McpServerConfig>, connect_timeout: Duration) -> McpHub {
        let (tx, mut rx) = mpsc::channel::<CallRequest>(16);
        let (ready_tx, ready_rx) = smpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("serena-mcp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start a runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
                    let mut tools = Vec::new();
                    let mut statuses = Vec::new();
                    for (name, cfg) in servers {
                        match tokio::time::timeout(connect_timeout, connect(&cfg)).await {
                            Ok(Ok((client, server_tools))) => {
                                statuses.push(ServerStatus {
                                    name: name.clone(),
                                    tools: server_tools.len(),
                                    error: None,
                                });
                                tools.extend(server_tools.into_iter().map(|t| ToolSpec {
                                    name: t.name.to_string(),
                                    description: t
                                        .description
                                        .map(|d| d.to_string())
                                        .unwrap_or_default(),
                                    input_schema: serde_json::Value::Object(
                                        (*t.input_schema).clone(),
                                    ),
                                    origin: Origin::Mcp(name.clone()),
                                }));
                                clients.insert(name, client);
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(server = %name, error = %e, "MCP server failed to start");
                                statuses.push(ServerStatus { name, tools: 0, error: Some(e) });
                            }
                            Err(_) => {
                                let e = format!("no answer within {connect_timeout:?}");
                                tracing::warn!(server = %name, error = %e, "MCP server failed to start");
                                statuses.push(ServerStatus { name, tools: 0, error: Some(e) });
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok((tools, statuses)));
                    let clients = std::sync::Arc::new(clients);
                    while let Some(req) = rx.recv().await {
                        let clients = clients.clone();
                        tokio::spawn(async move {
                            let out = match clients.get(&req.server) {
                                Some(client) => call(client, &req.tool, req.args, req.timeout).await,
                                None => ToolOutput::error(format!(
                                    "the MCP server {:?} is not running",
                                    req.server
                                )),
                            };
                            let _ = req.reply.send(out);
                        });
                    }
                    // The hub is gone: stop the servers.
                    if let Ok(clients) = std::sync::Arc::try_unwrap(clients) {
                        for (_, client) in clients {
                            let _ = tokio::time::timeout(Duration::from_secs(2), client.cancel())
                                .await;
                        }
                    }
                });
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                return McpHub::failed(format!("cannot start a thread: {e}"));
            }
        };
        match ready_rx.recv() {
            Ok(Ok((tools, servers))) => McpHub {
                requests: Some(tx),
                tools,
                servers,
                thread: Some(thread),
            },
            Ok(Err(e)) => {
                let _ = thread.join();
                McpHub::failed(e)
            }
            Err(_) => {
                let _ = thread.join();
                McpHub::failed("the MCP thread stopped".into())
            }
        }
    }

    fn failed(error: String) -> McpHub {
        McpHub {
            requests: None,
            tools: Vec::new(),
            servers: vec![ServerStatus {
                name: "(all)".into(),
                tools: 0,
                error: Some(error),
            }],
            thread: None,
        }
    }

    /// The tools of every server that started.
    pub fn tools(&self) -> Vec<ToolSpec> {
        self.tools.clone()
    }

    /// Each server and whether it started.
    pub fn servers(&self) -> &[ServerStatus] {
        &self.servers
    }

    /// Call `tool` on `server`; blocks the calling thread (not for use on an async task).
    /// Failures and timeouts are error results.
    pub fn call(
        &self,
        server: &str,
        tool: &str,
        args: &serde_json::Value,
        timeout: Duration,
    ) -> ToolOutput {
        let Some(requests) = &self.requests else {
            return ToolOutput::error("no MCP servers are running");
        };
        let args = args.as_object().cloned().unwrap_or_default();
        let (reply, wait) = smpsc::sync_channel(1);
        let req = CallRequest {
            server: server.into(),
            tool: tool.into(),
            args,
            timeout,
            reply,
        };
        if requests.blocking_send(req).is_err() {
            return ToolOutput::error("the MCP thread has stopped");
        }
        // The hub enforces `timeout`; the margin covers only its own scheduling.
        wait.recv_timeout(timeout + Duration::from_secs(1))
            .unwrap_or_else(|_| ToolOutput::error(format!("{tool} did not answer in time")))
    }
}

impl Drop for McpHub {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn connect(cfg: &McpServerConfig) -> Result<(Client, Vec<rmcp::model::Tool>), String> {
    let mut cmd = tokio::process::Command::new(&cfg.command);
    cmd.args(&cfg.args).envs(&cfg.env).kill_on_drop(true);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cfg.command))?;
    let client = ().serve(transport).await.map_err(|e| format!("MCP handshake failed: {e}"))?;
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("cannot list tools: {e}"))?;
    Ok((client, tools))
}

async fn call(
    client: &Client,
    tool: &str,
    args: serde_json::Map<String, serde_json::Value>,
    timeout: Duration,
) -> ToolOutput {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    match tokio::time::timeout(timeout, client.call_tool(params)).await {
        Err(_) => ToolOutput::error(format!("{tool} timed out after {timeout:?}")),
        Ok(Err(e)) => ToolOutput::error(format!("{tool} failed: {e}")),
        Ok(Ok(result)) => {
            let text = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            let text = if text.is_empty() {
                result
                    .structured_content
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            } else {
                text
            };
            ToolOutput {
                text,
                is_error: result.is_error.unwrap_or(false),
            }
        }
    }
}
