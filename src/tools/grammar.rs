//! Tool calls on the wire between Serena and the model.
//!
//! A call is written `<tool_call>{"name": "...", "arguments": {...}}</tool_call>`, the
//! form Qwen and Hermes-style models are trained on. [`call_grammar`] turns the tools'
//! schemas into a llama.cpp grammar (through llama.cpp's own JSON-schema converter) so
//! the model can only write a call to a real tool with arguments of the right shape;
//! lazily (free text until the model opens `<tool_call>`) or from the first token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ToolSpec;
use crate::llm::Grammar;

/// The tag that opens a call.
pub const OPEN: &str = "<tool_call>";
/// The tag that closes a call.
pub const CLOSE: &str = "</tool_call>";

/// A call the model made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool.
    pub name: String,
    /// Its arguments (an object).
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// The grammar for one call to any of `tools`. `lazy`: free text is allowed until the
/// model writes [`OPEN`]; otherwise the output must be a call from the first token.
///
/// # Errors
/// A message when llama.cpp cannot convert a schema.
pub fn call_grammar(tools: &[ToolSpec], lazy: bool) -> Result<Grammar, String> {
    let alternatives: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    "arguments": t.input_schema,
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let schema = json!({"oneOf": alternatives});
    let body = llama_cpp_2::json_schema_to_grammar(&schema.to_string())
        .map_err(|e| format!("cannot make a grammar of the tools' schemas: {e}"))?;
    // The converter's start rule is `root`; ours wraps it in the tags.
    let gbnf = format!(
        "{body}\ntool-call ::= \"{OPEN}\" tool-ws root tool-ws \"{CLOSE}\"\ntool-ws ::= [ \\t\\n]{{0,4}}\n"
    );
    Ok(Grammar {
        gbnf,
        root: "tool-call".into(),
        triggers: if lazy { vec![OPEN.into()] } else { Vec::new() },
    })
}

/// The first tool call in `text`: between the tags, or (for models that leave them out)
/// a bare JSON object with `name` and `arguments`. `None` when there is none or it does
/// not parse.
pub fn parse_call(text: &str) -> Option<ToolCall> {
    let body = match text.find(OPEN) {
        Some(start) => {
            let rest = &text[start + OPEN.len()..];
            rest.find(CLOSE).map_or(rest, |end| &rest[..end])
        }
        None => text,
    };
    let body = body.trim();
    let start = body.find('{')?;
    let mut stream = serde_json::Deserializer::from_str(&body[start..]).into_iter::<Value>();
    let value = stream.next()?.ok()?;
    let call: ToolCall = serde_json::from_value(value).ok()?;
    if call.name.is_empty() || !call.arguments.is_object() {
        return None;
    }
    Some(call)
}

/// The text before a call, which the model meant to say.
pub fn text_before_call(text: &str) -> &str {
    text.find(OPEN).map_or(text, |i| &text[..i]).trim()
}

/// How the tools are described to the model in the system prompt.
pub fn describe(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "You can call tools. To call one, answer with only\n\
         <tool_call>{\"name\": \"TOOL\", \"arguments\": {...}}</tool_call>\n\
         and you will get its result. The tools:\n",
    );
    for t in tools {
        out.push_str(&format!(
            "- {}: {} Arguments: {}\n",
            t.name, t.description, t.input_schema
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse_with_and_without_tags() {
        let c = parse_call(
            "Sure. <tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 2}}</tool_call>",
        )
        .expect("call");
        assert_eq!(c.name, "add");
        assert_eq!(c.arguments, json!({"a": 2}));
        let c = parse_call("{\"name\": \"get_time\", \"arguments\": {}} trailing").expect("bare");
        assert_eq!(c.name, "get_time");
        assert_eq!(
            parse_call("<tool_call>{\"name\": \"x\"}")
                .expect("no args")
                .arguments,
            json!({})
        );
        assert_eq!(text_before_call("Sure. <tool_call>{}"), "Sure.");
    }

    #[test]
    fn malformed_calls_are_none() {
        for text in [
            "",
            "hello",
            "<tool_call>not json</tool_call>",
            "<tool_call>{\"name\": 3}</tool_call>",
            "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>",
            "{\"name\": \"a\", \"arguments\": {\"unterminated\": ",
        ] {
            assert_eq!(parse_call(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_grammar_converts_every_builtin_schema() {
        let tools = super::super::builtin::specs();
        let g = call_grammar(&tools, true).expect("grammar");
        assert!(g.gbnf.contains("tool-call ::="), "{}", g.gbnf);
        assert_eq!(g.triggers, vec![OPEN.to_string()]);
        assert!(call_grammar(&tools, false)
            .expect("grammar")
            .triggers
            .is_empty());
    }
}
