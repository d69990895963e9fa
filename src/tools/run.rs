//! The tool loop: generate; if the model called a tool, run it and give the model the
//! result; repeat (at most [`MAX_ROUNDS`] calls); the last text is the reply.

use serde::{Deserialize, Serialize};

use super::grammar::{self, call_grammar, parse_call};
use super::{ToolOutput, Toolbox};
use crate::llm::{GenerateOptions, Generation, LlmError, LlmWorker, Message, StreamEvent};

/// Most tool calls in one answer.
pub const MAX_ROUNDS: usize = 3;

/// Whether and how the model may call tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (a lazy grammar: free text, or a well-formed call).
    Auto,
    /// The first output must be a call to some tool.
    Required,
    /// The first output must be a call to this tool.
    Named(String),
    /// No tools.
    None,
}

impl std::str::FromStr for ToolChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            other => match other.strip_prefix("tool:") {
                Some(name) if !name.is_empty() => ToolChoice::Named(name.into()),
                _ => {
                    return Err(format!(
                        "{other:?}: expected auto, required, none or tool:NAME"
                    ))
                }
            },
        })
    }
}

/// One call the model made and what it got back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRecord {
    /// The tool.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: serde_json::Value,
    /// The result.
    pub output: ToolOutput,
}

/// The outcome of a chat with tools.
#[derive(Clone, Debug, Serialize)]
pub struct ToolChat {
    /// The reply to speak.
    pub reply: String,
    /// The calls made, in order.
    pub calls: Vec<CallRecord>,
    /// Tokens generated over every round.
    pub tokens: u32,
    /// Time to the first spoken sentence, in milliseconds.
    pub first_sentence_ms: Option<u64>,
}

/// Chat with `messages` (system prompt first, question last), letting the model call
/// `toolbox`'s tools. Each spoken sentence goes to `on_sentence` as soon as it is complete
/// (never the text of a call).
///
/// # Errors
/// The engine's errors; tool failures are results, not errors.
pub fn chat_with_tools(
    worker: &LlmWorker,
    toolbox: Option<&Toolbox>,
    mut messages: Vec<Message>,
    opts: &GenerateOptions,
    choice: &ToolChoice,
    env: &crate::skills::Env<'_>,
    on_sentence: &mut dyn FnMut(&str),
) -> Result<ToolChat, LlmError> {
    let started = std::time::Instant::now();
    let tools: Vec<super::ToolSpec> = match (toolbox, choice) {
        (None, _) | (_, ToolChoice::None) => Vec::new(),
        (Some(tb), ToolChoice::Named(name)) => tb
            .specs()
            .iter()
            .filter(|s| &s.name == name)
            .cloned()
            .collect(),
        (Some(tb), _) => tb.specs().to_vec(),
    };
    if !tools.is_empty() {
        let section = grammar::describe(&tools);
        match messages.first_mut() {
            Some(m) if m.role == "system" => {
                m.content.push_str("\n\n");
                m.content.push_str(&section);
            }
            _ => messages.insert(0, Message::new("system", section)),
        }
    }
    let mut chat = ToolChat {
        reply: String::new(),
        calls: Vec::new(),
        tokens: 0,
        first_sentence_ms: None,
    };
    for round in 0..=MAX_ROUNDS {
        let forced = round == 0 && *choice != ToolChoice::Auto;
        let grammar = if tools.is_empty() || round == MAX_ROUNDS {
            None
        } else {
            Some(call_grammar(&tools, !forced).map_err(LlmError::Grammar)?)
        };
        let mut round_opts = opts.clone();
        if grammar.is_some() && forced {
            // A forced call must have room to close, whatever the reply budget.
            round_opts.max_tokens = round_opts.max_tokens.max(128);
        }
        round_opts.grammar = grammar;
        let (text, generation) =
            stream_round(worker, messages.clone(), round_opts, &mut |s: &str| {
                chat.first_sentence_ms
                    .get_or_insert_with(|| started.elapsed().as_millis() as u64);
                on_sentence(s);
            })?;
        chat.tokens += generation.tokens;
        let Some(call) = (!tools.is_empty()).then(|| parse_call(&text)).flatten() else {
            chat.reply = text.trim().to_string();
            break;
        };
        let output = match toolbox {
            Some(tb) => tb.call(&call, env),
            None => ToolOutput::error("no tools"),
        };
        messages.push(Message::new("assistant", text.trim()));
        messages.push(Message::new(
            "tool",
            serde_json::json!({"name": call.name, "result": output.text, "is_error": output.is_error})
                .to_string(),
        ));
        chat.calls.push(CallRecord {
            name: call.name,
            arguments: call.arguments,
            output,
        });
    }
    if chat.reply.is_empty() {
        // A model that says nothing after a call: the tool's own words are the answer.
        if let Some(last) = chat.calls.last() {
            chat.reply = last.output.text.clone();
            on_sentence(&chat.reply);
        }
    }
    Ok(chat)
}

/// One generation; sentences before a tool call go to `on_sentence`.
fn stream_round(
    worker: &LlmWorker,
    messages: Vec<Message>,
    opts: GenerateOptions,
    on_sentence: &mut dyn FnMut(&str),
) -> Result<(String, Generation), LlmError> {
    let mut stream = worker.start(messages, opts)?;
    let mut text = String::new();
    let mut in_call = false;
    while let Some(event) = stream.blocking_next() {
        match event {
            StreamEvent::Token(t) => {
                text.push_str(&t);
                in_call |= text.contains(grammar::OPEN) || text.trim_start().starts_with('<');
            }
            StreamEvent::Sentence(s) => {
                if !in_call && !s.contains('<') {
                    on_sentence(&s);
                }
            }
            StreamEvent::Done(g) => return Ok((text, g)),
            StreamEvent::Failed(e) => return Err(e),
        }
    }
    Err(LlmError::Stopped)
}
