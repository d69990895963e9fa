//! Serena's skills as tools: each tool is an intent, its arguments are the intent's slots,
//! and the skill's spoken reply is the result. The router and the model thus share one
//! implementation of every command.

use serde_json::{json, Value};

use super::{Origin, ToolOutput, ToolSpec};
use crate::router::{Intent, Match, SlotValue, Slots};

/// One built-in tool: its name, what it does, the intent it runs, its argument schema,
/// and how arguments are renamed into slots.
struct Builtin {
    name: &'static str,
    description: &'static str,
    intent: Intent,
    schema: fn() -> Value,
    /// (argument, slot) pairs whose names differ.
    renames: &'static [(&'static str, &'static str)],
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

fn duration_args() -> Value {
    json!({
        "type": "object",
        "properties": {
            "hours": {"type": "integer", "minimum": 0, "maximum": 99},
            "minutes": {"type": "integer", "minimum": 0, "maximum": 999},
            "seconds": {"type": "integer", "minimum": 0, "maximum": 9999},
            "name": {"type": "string", "maxLength": 64}
        },
        "additionalProperties": false
    })
}

fn timer_name_args() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 64}},
        "additionalProperties": false
    })
}

fn list_args() -> Value {
    json!({
        "type": "object",
        "properties": {
            "item": {"type": "string", "minLength": 1, "maxLength": 200},
            "list": {"type": "string", "maxLength": 64}
        },
        "required": ["item"],
        "additionalProperties": false
    })
}

fn note_args() -> Value {
    json!({
        "type": "object",
        "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 2000}},
        "required": ["note"],
        "additionalProperties": false
    })
}

fn recall_args() -> Value {
    json!({
        "type": "object",
        "properties": {"about": {"type": "string", "maxLength": 200}},
        "additionalProperties": false
    })
}

fn status_args() -> Value {
    json!({
        "type": "object",
        "properties": {
            "topic": {
                "type": "string",
                "enum": ["overall", "battery", "cpu", "memory", "models", "power_profile"]
            }
        },
        "additionalProperties": false
    })
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "get_time",
        description: "The current local time.",
        intent: Intent::GetCurrentTime,
        schema: no_args,
        renames: &[],
    },
    Builtin {
        name: "get_date",
        description: "Today's date.",
        intent: Intent::GetCurrentDate,
        schema: no_args,
        renames: &[],
    },
    Builtin {
        name: "start_timer",
        description: "Start a countdown timer, optionally named.",
        intent: Intent::StartTimer,
        schema: duration_args,
        renames: &[],
    },
    Builtin {
        name: "cancel_timer",
        description: "Cancel a timer (by name, or the only one).",
        intent: Intent::CancelTimer,
        schema: timer_name_args,
        renames: &[],
    },
    Builtin {
        name: "timer_status",
        description: "How much time is left on the timers.",
        intent: Intent::TimerStatus,
        schema: timer_name_args,
        renames: &[],
    },
    Builtin {
        name: "add_to_list",
        description: "Add an item to a list (the shopping list unless another is named).",
        intent: Intent::ListAddItem,
        schema: list_args,
        renames: &[("list", "name")],
    },
    Builtin {
        name: "remember",
        description: "Keep a note for the user.",
        intent: Intent::Remember,
        schema: note_args,
        renames: &[],
    },
    Builtin {
        name: "recall",
        description: "Read back the user's notes, optionally only those about something.",
        intent: Intent::Recall,
        schema: recall_args,
        renames: &[("about", "note")],
    },
    Builtin {
        name: "system_status",
        description: "Battery, CPU, memory, loaded models or the power profile.",
        intent: Intent::SystemStatus,
        schema: status_args,
        renames: &[],
    },
];

/// The built-in tools.
pub fn specs() -> Vec<ToolSpec> {
    BUILTINS
        .iter()
        .map(|b| ToolSpec {
            name: b.name.into(),
            description: b.description.into(),
            input_schema: (b.schema)(),
            origin: Origin::Builtin,
        })
        .collect()
}

/// Run built-in tool `name` with already validated `args`.
pub fn call(name: &str, args: &Value, env: &crate::skills::Env<'_>) -> ToolOutput {
    let Some(b) = BUILTINS.iter().find(|b| b.name == name) else {
        return ToolOutput::error(format!("there is no built-in tool named {name:?}"));
    };
    let mut slots = Slots::new();
    if let Value::Object(map) = args {
        for (arg, value) in map {
            let slot = b
                .renames
                .iter()
                .find(|(a, _)| a == arg)
                .map_or(arg.as_str(), |(_, s)| s);
            let value = match value {
                Value::Number(n) if n.is_i64() => SlotValue::Int(n.as_i64().unwrap_or_default()),
                Value::Number(n) => SlotValue::Float(n.as_f64().unwrap_or_default()),
                Value::String(s) => SlotValue::Text(s.clone()),
                other => SlotValue::Text(other.to_string()),
            };
            slots.insert(slot, value);
        }
    }
    if b.intent == Intent::ListAddItem && slots.text("name").is_none() {
        slots.insert("name", SlotValue::Text("shopping".into()));
    }
    let m = Match {
        intent: b.intent,
        slots,
        confidence: 1.0,
    };
    match crate::skills::handle(&m, env) {
        Ok(reply) => ToolOutput::ok(reply.text),
        Err(e) => ToolOutput::error(format!("{name} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::time::{Duration, SystemTime};

    #[test]
    fn every_schema_is_valid_and_names_are_unique() {
        let specs = specs();
        for s in &specs {
            jsonschema::validator_for(&s.input_schema)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), specs.len());
    }

    #[test]
    fn tools_run_the_skills() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let env = crate::skills::Env {
            store: &store,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            power_profile: "balanced",
            models_loaded: &[],
        };
        let out = call("start_timer", &json!({"minutes": 10}), &env);
        assert!(!out.is_error, "{out:?}");
        assert!(out.text.contains("10 minutes"), "{}", out.text);
        assert_eq!(store.active_timers().expect("timers").len(), 1);

        let out = call("add_to_list", &json!({"item": "milk"}), &env);
        assert!(!out.is_error, "{out:?}");
        let list = crate::skills::lists::canonical("shopping");
        assert_eq!(
            store.list_items(&list).expect("items").len(),
            1,
            "{}",
            out.text
        );
    }
}
