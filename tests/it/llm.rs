//! The local language model on its thread, conversation memory, tools (built-in and an MCP
//! server written for the test) and the fallback chain router → online → local → fallback,
//! with a real HTTP server on 127.0.0.1 standing in for the online model.

use std::path::PathBuf;

use serde_json::Value;
use serena::llm::{
    EngineOptions, GenerateOptions, LlmError, LlmWorker, Message, StopReason, StreamEvent,
};
use serena::models::{format, Resolved};

use crate::common::{model, repo, Env};
use crate::online_server::{Behaviour, TestServer};

const TINY: &str = "llm/llama-2-tiny-random.gguf";

fn resolved(rel: &str) -> Resolved {
    let path = model(rel);
    let format = format::inspect(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    Resolved {
        path,
        name: None,
        format,
    }
}

fn worker(context: u32) -> LlmWorker {
    LlmWorker::spawn(
        &resolved(TINY),
        EngineOptions {
            context,
            threads: 2,
            gpu_layers: 0,
        },
    )
    .expect("load the tiny model")
}

fn greedy(max_tokens: u32) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        temperature: 0.0,
        ..GenerateOptions::default()
    }
}

#[test]
fn the_worker_streams_tokens_and_sentences_then_a_summary() {
    let w = worker(512);
    let mut stream = w
        .start(vec![Message::new("user", "Tell me a story.")], greedy(40))
        .expect("start");
    let (mut tokens, mut text, mut sentences) = (0, String::new(), Vec::new());
    let done = loop {
        match stream.blocking_next().expect("an event") {
            StreamEvent::Token(t) => {
                tokens += 1;
                text.push_str(&t);
            }
            StreamEvent::Sentence(s) => sentences.push(s),
            StreamEvent::Done(g) => break g,
            StreamEvent::Failed(e) => panic!("{e}"),
        }
    };
    assert!(stream.blocking_next().is_none(), "nothing after Done");
    assert_eq!(done.text, text);
    assert!(tokens > 0 && done.tokens <= 40);
    assert_eq!(done.stop, StopReason::MaxTokens);
    // Sentences are the text, cut: nothing lost, nothing added.
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squash(&sentences.concat()), squash(&text));
    assert!(done.first_token.is_some());
    assert_eq!(w.served(), 1);
}

#[test]
fn cancelling_stops_mid_stream_and_the_worker_serves_the_next_request() {
    let w = worker(512);
    let mut stream = w
        .start(vec![Message::new("user", "Go on.")], greedy(200))
        .expect("start");
    let cancel = stream.canceller();
    let mut seen = 0;
    let done = loop {
        match stream.blocking_next().expect("event") {
            StreamEvent::Token(_) => {
                seen += 1;
                if seen == 3 {
                    cancel.cancel();
                }
            }
            StreamEvent::Sentence(_) => {}
            StreamEvent::Done(g) => break g,
            StreamEvent::Failed(e) => panic!("{e}"),
        }
    };
    assert_eq!(done.stop, StopReason::Cancelled);
    assert!(done.tokens < 200, "{} tokens", done.tokens);
    // Dropping a stream mid-way cancels it too; the worker goes on.
    drop(
        w.start(vec![Message::new("user", "again")], greedy(200))
            .expect("start"),
    );
    let g = w
        .start(vec![Message::new("user", "once more")], greedy(8))
        .expect("start")
        .wait(|_| {})
        .expect("third request");
    assert_eq!(g.stop, StopReason::MaxTokens);
}

#[test]
fn old_turns_are_dropped_when_the_context_overflows() {
    let w = worker(256);
    let mut messages = vec![Message::new("system", "Be brief.")];
    for i in 0..20 {
        messages.push(Message::new(
            "user",
            format!("Question number {i} about the weather?"),
        ));
        messages.push(Message::new(
            "assistant",
            format!("Answer number {i}: it is sunny today."),
        ));
    }
    messages.push(Message::new("user", "And tomorrow?"));
    let g = w
        .start(messages, greedy(32))
        .expect("start")
        .wait(|_| {})
        .expect("fits after dropping turns");
    assert!(g.dropped_messages >= 2, "dropped {}", g.dropped_messages);
    assert!(g.prompt_tokens as usize + 32 < 256);

    // A question that alone does not fit is an error, not a crash.
    let huge = "word ".repeat(2000);
    let err = w
        .start(vec![Message::new("user", huge)], greedy(32))
        .expect("start")
        .wait(|_| {})
        .expect_err("cannot fit");
    assert!(matches!(err, LlmError::ContextOverflow { .. }), "{err}");
}

#[test]
fn a_full_queue_answers_busy() {
    let w = LlmWorker::spawn_with_queue(
        &resolved(TINY),
        EngineOptions {
            context: 512,
            threads: 1,
            gpu_layers: 0,
        },
        1,
    )
    .expect("load");
    // Hold the engine with a stream nobody reads (it blocks once the event buffer fills),
    // fill the one queue slot, then one more is refused.
    let mut streams = Vec::new();
    let mut busy = false;
    for _ in 0..4 {
        match w.start(vec![Message::new("user", "hi")], greedy(4000)) {
            Ok(s) => streams.push(s),
            Err(LlmError::Busy) => {
                busy = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(busy, "the queue never filled");
}

#[test]
fn broken_and_unusable_models_are_refused_clearly() {
    for (rel, why) in [
        ("llm/ggml-vocab-llama-spm.gguf", "vocabulary-only"),
        ("llm/tinyllamas-stories-260k-f32.gguf", "GGUF version 1"),
    ] {
        let err = format::inspect(&model(rel)).map(|_| ()).expect_err(rel);
        assert!(err.to_string().contains(why), "{rel}: {err}");

        // Through `ask`: a clear fallback reply, exit 0, the source says so.
        let env = Env::new();
        let out = ask_json(
            &env,
            &["--set", &format!("llm.model={}", model(rel).display())],
            "why is the sky blue",
        );
        assert_eq!(out["source"], "fallback", "{out}");
        assert!(
            out["reply"].as_str().unwrap_or_default().contains(why),
            "{rel}: {}",
            out["reply"]
        );
    }
}

fn ask_json(env: &Env, sets: &[&str], question: &str) -> Value {
    let mut args: Vec<&str> = sets.to_vec();
    args.extend(["ask", "--json", question]);
    let out = crate::common::ok(env, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn tiny_sets() -> Vec<String> {
    vec![
        "--set".into(),
        format!("llm.model={}", model(TINY).display()),
        "--set".into(),
        "llm.max_tokens=12".into(),
        "--set".into(),
        "llm.temperature=0".into(),
    ]
}

fn mcp_config(env: &Env) -> PathBuf {
    let path = env.path().join("mcp.json");
    let server = repo().join("tests/fixtures/mcp_test_server.py");
    let json = serde_json::json!({"mcpServers": {
        "calc": {"command": "python3", "args": [server]},
        "broken": {"command": env.path().join("no-such-program")},
    }});
    std::fs::write(&path, json.to_string()).expect("write mcp.json");
    path
}

#[test]
fn tools_list_shows_skills_and_mcp_tools() {
    let env = Env::new();
    let cfg = mcp_config(&env);
    let out = crate::common::ok(
        &env,
        &[
            "--set",
            &format!("tools.mcp_config={}", cfg.display()),
            "tools",
            "list",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = v["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for n in [
        "get_time",
        "start_timer",
        "add_to_list",
        "remember",
        "add",
        "fail",
        "hang",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let servers = v["mcp_servers"].as_array().expect("servers");
    let calc = servers.iter().find(|s| s["name"] == "calc").expect("calc");
    assert_eq!(calc["tools"], 3);
    let broken = servers
        .iter()
        .find(|s| s["name"] == "broken")
        .expect("broken");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot run")),
        "{broken}"
    );
}

#[test]
fn the_tiny_model_under_a_grammar_calls_an_mcp_tool_and_gets_its_result() {
    let env = Env::new();
    let cfg = mcp_config(&env);
    let mut sets = tiny_sets();
    let cfg_set = format!("tools.mcp_config={}", cfg.display());
    sets.extend([
        "--set".into(),
        cfg_set,
        "--set".into(),
        "tools.choice=tool:add".into(),
    ]);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let out = ask_json(&env, &sets, "what is two plus three");
    assert_eq!(out["source"], "llm", "{out}");
    let call = &out["tool_calls"][0];
    assert_eq!(call["name"], "add", "{out}");
    // The arguments parsed against the schema; the server's result came back.
    let a = call["arguments"]["a"].as_i64().expect("a is an integer");
    let b = call["arguments"]["b"].as_i64().expect("b is an integer");
    assert_eq!(call["output"]["text"], (a + b).to_string(), "{out}");
    assert_eq!(call["output"]["is_error"], false);
    assert!(!out["reply"].as_str().unwrap_or_default().is_empty());
}

#[test]
fn a_tool_that_hangs_or_fails_gives_the_model_an_error_result() {
    let env = Env::new();
    let cfg = mcp_config(&env);
    for (tool, expect) in [("hang", "timed out"), ("fail", "failed on purpose")] {
        let mut sets = tiny_sets();
        sets.extend([
            "--set".into(),
            format!("tools.mcp_config={}", cfg.display()),
            "--set".into(),
            format!("tools.choice=tool:{tool}"),
            "--set".into(),
            "tools.timeout_s=1".into(),
        ]);
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let out = ask_json(&env, &sets, "do the thing");
        let call = &out["tool_calls"][0];
        assert_eq!(call["name"], tool, "{out}");
        assert_eq!(call["output"]["is_error"], true, "{out}");
        assert!(
            call["output"]["text"]
                .as_str()
                .unwrap_or_default()
                .contains(expect),
            "{out}"
        );
    }
}

#[test]
fn conversation_memory_is_kept_between_asks_and_new_forgets_it() {
    let env = Env::new();
    let sets = tiny_sets();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    ask_json(&env, &sets, "my name is Ada");
    ask_json(&env, &sets, "what is my name");
    let export: Value =
        serde_json::from_str(&crate::common::ok(&env, &["export"])).expect("export json");
    let turns = export["settings"]["llm.conversation"]["turns"]
        .as_array()
        .unwrap_or_else(|| panic!("no conversation in {export}"))
        .clone();
    assert_eq!(turns.len(), 4);
    assert_eq!(turns[0]["content"], "my name is Ada");
    // History records who answered.
    let history = crate::common::ok(&env, &["history", "--json"]);
    assert!(history.contains("\"llm\""), "{history}");

    let mut new_sets = sets.clone();
    new_sets.extend(["ask", "--new", "--json", "hello again"]);
    crate::common::ok(&env, &new_sets);
    let export: Value =
        serde_json::from_str(&crate::common::ok(&env, &["export"])).expect("export json");
    let turns = export["settings"]["llm.conversation"]["turns"]
        .as_array()
        .expect("turns");
    assert_eq!(turns.len(), 2, "only the new exchange: {turns:?}");
    assert_eq!(turns[0]["content"], "hello again");
}

fn online_sets(server: &TestServer) -> Vec<String> {
    let mut sets = tiny_sets();
    sets.extend([
        "--set".into(),
        format!("online.url={}", server.base_url()),
        "--set".into(),
        "online.model=test".into(),
        "--set".into(),
        "online.timeout_s=2".into(),
        "--set".into(),
        "online.failures_to_open=2".into(),
        "--set".into(),
        "online.cooldown_s=600".into(),
        "--set".into(),
        "tools.choice=none".into(),
    ]);
    sets
}

#[test]
fn online_answers_while_healthy_then_local_once_the_breaker_opens() {
    let env = Env::new();
    let server = TestServer::start();
    let sets = online_sets(&server);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();

    // Healthy: streamed answer from the online model.
    server.push([Behaviour::Stream(vec!["It is ".into(), "blue.".into()])]);
    let out = ask_json(&env, &sets, "why is the sky blue");
    assert_eq!(out["source"], "online", "{out}");
    assert_eq!(out["reply"], "It is blue.");

    // Garbage and a server error (retried, then given up): local model answers.
    server.push([Behaviour::Garbage("not json".into())]);
    let out = ask_json(&env, &sets, "why is grass green");
    assert_eq!(out["source"], "llm", "{out}");
    let hops = out["hops"].to_string();
    assert!(hops.contains("online"), "{hops}");

    server.push([Behaviour::Fail(401)]);
    let out = ask_json(&env, &sets, "why is snow white");
    assert_eq!(out["source"], "llm", "{out}");

    // Two failures opened the breaker: the next question goes local at once, without
    // touching the server.
    let before = server.connections();
    let out = ask_json(&env, &sets, "why is the sea salty");
    assert_eq!(out["source"], "llm", "{out}");
    assert_eq!(
        server.connections(),
        before,
        "an open breaker must not connect"
    );
    assert!(
        out["hops"].to_string().contains("circuit open"),
        "{}",
        out["hops"]
    );
}

#[test]
fn a_hanging_endpoint_costs_one_timeout_then_nothing() {
    let env = Env::new();
    let server = TestServer::start();
    let mut sets = online_sets(&server);
    sets.extend(["--set".into(), "online.failures_to_open=1".into()]);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    server.push([Behaviour::Hang]);
    let out = ask_json(&env, &sets, "tell me something");
    assert_eq!(out["source"], "llm", "{out}");
    let first = server.connections();
    assert!(first >= 1);
    let out = ask_json(&env, &sets, "tell me more");
    assert_eq!(out["source"], "llm", "{out}");
    assert_eq!(server.connections(), first, "the breaker is open");
}

#[test]
fn with_no_model_at_all_the_fallback_says_what_is_missing() {
    let env = Env::new();
    let out = ask_json(
        &env,
        &["--set", "llm.model=qwen2.5-0.5b-instruct"],
        "write me a poem",
    );
    assert_eq!(out["source"], "fallback", "{out}");
    let reply = out["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("serena models pull"), "{reply}");
}
