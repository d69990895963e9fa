//! Benchmark of Serena's local LLM path, for scripts/bench-llm.sh (which compares it with
//! llama.cpp's own `llama-bench` and `llama-simple` built from the same libraries).
//!
//! ```text
//! cargo build --release --example llm_bench
//! target/release/examples/llm_bench --model M.gguf --threads 2 --prompt-tokens 64 \
//!     --max-tokens 128 --reps 5 [--context 4096] [--warmup 1]
//! target/release/examples/llm_bench ... --print-prompt     # the templated prompt, then exit
//! target/release/examples/llm_bench ... --breakdown        # where the time goes (see below)
//! target/release/examples/llm_bench ... --direct           # LlmEngine::generate, no worker
//! ```
//!
//! Default mode: Serena's real path. The model is loaded once with
//! `LlmWorker::spawn(EngineOptions { context, threads, gpu_layers: 0 })`; each repetition sends
//! one user message through `LlmWorker::start` (greedy: temperature 0, `max_tokens` T) and
//! reads the `ReplyStream` on this thread, as a caller would. The user message is filler text
//! sized so that the *templated* prompt (the model's chat template, or ChatML) tokenizes to
//! `--prompt-tokens` tokens, or the first count above it. `--warmup` requests (default 1) run
//! first and are reported apart as `cold` (the first request after loading), not in the
//! medians.
//!
//! Per repetition (all times in milliseconds):
//! - `prompt_ms`: `Generation::prompt_time`, as `generate` measures it: chat template +
//!   tokenization + creating the llama context (KV cache, compute buffers) + decoding the
//!   prompt. `pp_tps` = prompt tokens / `prompt_ms` (so it is *not* llama-bench's pure
//!   decode figure; `--breakdown` gives that one).
//! - `first_token_ms`: `Generation::first_token` (from the start of `generate` to the first
//!   piece of text: prompt_ms + sampling and detokenizing the first token).
//! - `caller_first_token_ms`: from `LlmWorker::start` to the first `StreamEvent::Token` on the
//!   caller's side (adds the queue hand-off, `fit`'s template/tokenize passes, the channel).
//! - `caller_first_sentence_ms`: from `start` to the first `StreamEvent::Sentence` (what
//!   speech waits for; with a model that never ends a sentence it arrives at the end).
//! - `elapsed_ms`: `Generation::elapsed`; `caller_done_ms`: `start` to `StreamEvent::Done`.
//! - `tg_tps` = `tokens / (elapsed - first_token)`: Serena decodes every token it emits, so
//!   the span after the first token holds exactly `tokens` single-token `llama_decode` calls,
//!   plus `tokens - 1` greedy samples (`tokens` when it stopped at end-of-generation),
//!   detokenization, the sentence splitter and the channel sends. It is the steady-state
//!   generation rate a listener sees, comparable to llama-bench's `tg` (decode only).
//!
//! `--direct` calls `LlmEngine::generate` on the main thread with a callback that does nothing:
//! the same figures from `Generation`, without the worker thread, the event channel, the
//! sentence splitter or a consumer thread being woken for every token.
//!
//! `--breakdown` does not use Serena's engine: it replays `LlmEngine::generate`'s steps with
//! llama-cpp-2 directly, with the same parameters as src/llm/mod.rs (n_ctx = context,
//! n_batch = min(context, 512), default n_ubatch, n_threads = n_threads_batch = threads, the
//! default flash-attention policy, `LlamaSampler::greedy`), and times each step: template +
//! tokenize, `new_context`, prompt decode, and per generated token the sample, detokenize and
//! decode. It also times two alternatives on the same logits without using them: the greedy
//! sampler inside a sampler chain, and a plain argmax over `get_logits_ith`; and after the
//! reply, the prompt decoded again on the same context once its KV cache is cleared (what
//! keeping one context across requests would cost). It exists to explain differences from
//! llama-bench; keep it in step with src/llm/mod.rs when that changes.
//!
//! Output: one JSON line on stdout (medians, per-run values, the last reply's text); progress
//! on stderr. `--print-prompt` prints the templated prompt on stdout and
//! `llm_bench: prompt_tokens N` on stderr (the bench script feeds both to llama.cpp's tools).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serena::llm::{EngineOptions, GenerateOptions, LlmEngine, LlmWorker, Message, StreamEvent};
use serena::models::{format, Resolved};

/// Filler for the user message; words are added one at a time until the prompt is long enough.
const FILLER: &str = "Please tell me what the weather will be like in Paris tomorrow morning, \
    whether I should take an umbrella to work, and what time the sun sets there in late \
    autumn when the days are getting shorter and the evenings colder than in the summer. ";

struct Args {
    model: PathBuf,
    threads: u32,
    context: u32,
    prompt_tokens: usize,
    max_tokens: u32,
    reps: usize,
    warmup: usize,
    print_prompt: bool,
    breakdown: bool,
    direct: bool,
}

fn usage() -> &'static str {
    "usage: llm_bench --model FILE.gguf [--threads N] [--context N] [--prompt-tokens N] \
     [--max-tokens N] [--reps N] [--warmup N] [--print-prompt | --breakdown | --direct]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: PathBuf::new(),
        threads: 2,
        context: 4096,
        prompt_tokens: 64,
        max_tokens: 128,
        reps: 5,
        warmup: 1,
        print_prompt: false,
        breakdown: false,
        direct: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: '{v}' is not a valid number"))
        }
        match flag.as_str() {
            "--model" | "-m" => args.model = PathBuf::from(value("--model")?),
            "--threads" | "-t" => args.threads = num("--threads", value("--threads")?)?,
            "--context" | "-c" => args.context = num("--context", value("--context")?)?,
            "--prompt-tokens" | "-p" => {
                args.prompt_tokens = num("--prompt-tokens", value("--prompt-tokens")?)?
            }
            "--max-tokens" | "-n" => args.max_tokens = num("--max-tokens", value("--max-tokens")?)?,
            "--reps" | "-r" => args.reps = num("--reps", value("--reps")?)?,
            "--warmup" => args.warmup = num("--warmup", value("--warmup")?)?,
            "--print-prompt" => args.print_prompt = true,
            "--breakdown" => args.breakdown = true,
            "--direct" => args.direct = true,
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{}", usage())),
        }
    }
    if args.model.as_os_str().is_empty() {
        return Err(format!("--model is required\n{}", usage()));
    }
    if args.threads == 0 || args.reps == 0 || args.max_tokens == 0 {
        return Err("--threads, --reps and --max-tokens must be at least 1".into());
    }
    Ok(args)
}

/// The shortest filler prefix (whole words) whose templated prompt has at least `target`
/// tokens, and that count. `count` maps a user message to its templated prompt's tokens.
fn build_prompt(
    target: usize,
    count: impl Fn(&str) -> Result<usize, String>,
) -> Result<(String, usize), String> {
    let words: Vec<&str> = FILLER.split_whitespace().collect();
    let mut text = String::new();
    let mut n = count(&text)?;
    let mut i = 0;
    while n < target {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(words[i % words.len()]);
        i += 1;
        n = count(&text)?;
        if i > target * 4 + 100 {
            return Err(format!("cannot reach {target} prompt tokens"));
        }
    }
    Ok((text, n))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians of every numeric field over the runs.
fn medians(runs: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for run in runs {
        let Value::Object(fields) = run else { continue };
        for (k, v) in fields {
            if v.is_number() && !out.contains_key(k) {
                let vals = runs.iter().filter_map(|r| r[k].as_f64()).collect();
                out.insert(k.clone(), round3(median(vals)));
            }
        }
    }
    Value::Object(out)
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("llm_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if args.breakdown {
        breakdown(&args)
    } else {
        serena_path(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm_bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn resolved(path: &Path) -> Result<Resolved, String> {
    // The error names the file already.
    let format = format::inspect(path).map_err(|e| e.to_string())?;
    Ok(Resolved {
        path: path.to_path_buf(),
        name: None,
        format,
    })
}

fn engine_options(args: &Args) -> EngineOptions {
    EngineOptions {
        context: args.context,
        threads: args.threads,
        gpu_layers: 0,
    }
}

// --- Serena's own path --------------------------------------------------------------------

fn serena_path(args: &Args) -> Result<(), String> {
    let model = resolved(&args.model)?;
    let load_started = Instant::now();
    let engine = LlmEngine::load(&model, engine_options(args)).map_err(|e| e.to_string())?;
    let engine_load_ms = ms(load_started.elapsed());
    let templated = |text: &str| {
        engine
            .format_chat(&[Message::new("user", text)])
            .map_err(|e| e.to_string())
    };
    let (user, prompt_tokens) = build_prompt(args.prompt_tokens, |t| {
        Ok(engine.count_tokens(&templated(t)?))
    })?;
    if args.print_prompt {
        eprintln!("llm_bench: prompt_tokens {prompt_tokens}");
        print!("{}", templated(&user)?);
        return Ok(());
    }
    let opts = GenerateOptions {
        max_tokens: args.max_tokens,
        temperature: 0.0,
        seed: 1234,
        grammar: None,
    };
    // Default: the worker (the prompt was sized with a throwaway engine, dropped before the
    // worker loads its own). --direct: LlmEngine::generate on this thread with a callback that
    // does nothing, i.e. Serena's generate loop without the worker thread, the channel and
    // the sentence splitter.
    let (side, engine, worker, load_ms) = if args.direct {
        ("serena-direct", Some(engine), None, engine_load_ms)
    } else {
        drop(engine);
        let started = Instant::now();
        let w = LlmWorker::spawn(&model, engine_options(args)).map_err(|e| e.to_string())?;
        ("serena", None, Some(w), ms(started.elapsed()))
    };
    eprintln!(
        "llm_bench: {side}: loaded in {load_ms:.1} ms; prompt {prompt_tokens} tokens, \
         {} threads, context {}, max_tokens {}",
        args.threads, args.context, args.max_tokens
    );
    let mut cold = Value::Null;
    let mut runs = Vec::new();
    let mut text_of_last = String::new();
    for i in 0..args.warmup + args.reps {
        let (run, text) = match (&worker, &engine) {
            (Some(w), _) => one_request(w, &user, &opts)?,
            (None, Some(e)) => direct_request(e, &user, &opts)?,
            (None, None) => unreachable!(),
        };
        if i == 0 {
            cold = run.clone();
        }
        if i >= args.warmup {
            eprintln!("llm_bench: {side} run {}: {run}", i + 1 - args.warmup);
            runs.push(run);
            text_of_last = text;
        }
    }
    let out = json!({
        "side": side,
        "model": args.model.display().to_string(),
        "threads": args.threads,
        "context": args.context,
        "prompt_tokens_target": args.prompt_tokens,
        "max_tokens": args.max_tokens,
        "reps": args.reps,
        "warmup": args.warmup,
        "load_ms": round3(load_ms),
        "cold": if args.warmup > 0 { cold } else { Value::Null },
        "median": medians(&runs),
        "runs": runs,
        "text": text_of_last,
    });
    println!("{out}");
    Ok(())
}

/// The per-request figures every mode shares, from the engine's own [`Generation`] timings.
fn generation_figures(g: &serena::llm::Generation) -> serde_json::Map<String, Value> {
    let ft = g.first_token.map(ms).unwrap_or(f64::NAN);
    let after_first = ms(g.elapsed) - ft;
    let v = json!({
        "prompt_tokens": g.prompt_tokens,
        "tokens": g.tokens,
        "stop": g.stop,
        "prompt_ms": ms(g.prompt_time),
        "pp_tps": g.prompt_tokens as f64 / g.prompt_time.as_secs_f64(),
        "first_token_ms": ft,
        "elapsed_ms": ms(g.elapsed),
        "tg_tps": if after_first > 0.0 { g.tokens as f64 / (after_first / 1e3) } else { f64::NAN },
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn direct_request(
    engine: &LlmEngine,
    user: &str,
    opts: &GenerateOptions,
) -> Result<(Value, String), String> {
    let g = engine
        .generate(&[Message::new("user", user)], opts, |_| true)
        .map_err(|e| format!("generation failed: {e}"))?;
    let run = Value::Object(generation_figures(&g));
    Ok((run, g.text))
}

fn one_request(
    worker: &LlmWorker,
    user: &str,
    opts: &GenerateOptions,
) -> Result<(Value, String), String> {
    let t0 = Instant::now();
    let mut stream = worker
        .start(vec![Message::new("user", user)], opts.clone())
        .map_err(|e| e.to_string())?;
    let mut first_token = None;
    let mut first_sentence = None;
    let mut events = 0u32;
    loop {
        match stream.blocking_next() {
            Some(StreamEvent::Token(_)) => {
                events += 1;
                first_token.get_or_insert_with(|| t0.elapsed());
            }
            Some(StreamEvent::Sentence(_)) => {
                first_sentence.get_or_insert_with(|| t0.elapsed());
            }
            Some(StreamEvent::Done(g)) => {
                let done = t0.elapsed();
                let mut run = generation_figures(&g);
                run.insert("token_events".into(), json!(events));
                run.insert(
                    "caller_first_token_ms".into(),
                    json!(first_token.map(ms).unwrap_or(f64::NAN)),
                );
                run.insert(
                    "caller_first_sentence_ms".into(),
                    json!(first_sentence.map(ms).unwrap_or(f64::NAN)),
                );
                run.insert("caller_done_ms".into(), json!(ms(done)));
                return Ok((Value::Object(run), g.text));
            }
            Some(StreamEvent::Failed(e)) => return Err(format!("generation failed: {e}")),
            None => return Err("the language model's thread stopped".into()),
        }
    }
}

// --- breakdown: generate()'s steps, timed, with llama-cpp-2 directly ---------------------------

fn breakdown(args: &Args) -> Result<(), String> {
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_backend::LlamaBackend;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::params::LlamaModelParams;
    use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
    use llama_cpp_2::sampling::LlamaSampler;

    let err = |e: &dyn std::fmt::Display| e.to_string();
    resolved(&args.model)?; // the same structural check Serena makes
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let backend = LlamaBackend::init().map_err(|e| err(&e))?;
    let load_started = Instant::now();
    let model = LlamaModel::load_from_file(
        &backend,
        &args.model,
        &LlamaModelParams::default().with_n_gpu_layers(0),
    )
    .map_err(|e| err(&e))?;
    let load_ms = ms(load_started.elapsed());
    let template = match model.chat_template(None) {
        Ok(t) => t,
        Err(_) => LlamaChatTemplate::new("chatml").map_err(|e| err(&e))?,
    };
    let format = |text: &str| -> Result<String, String> {
        let msg = LlamaChatMessage::new("user".into(), text.into()).map_err(|e| err(&e))?;
        model
            .apply_chat_template(&template, &[msg], true)
            .map_err(|e| err(&e))
    };
    let vocab = model.vocab();
    let (user, _) = build_prompt(args.prompt_tokens, |t| {
        Ok(vocab.tokenize(format(t)?.as_bytes(), true, true).len())
    })?;

    let n_ctx = args.context.max(128);
    let threads = args.threads as i32;
    let mut runs = Vec::new();
    for i in 0..args.warmup + args.reps {
        let t0 = Instant::now();
        let prompt = format(&user)?;
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let t_tok = t0.elapsed();
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx.min(512))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let t1 = Instant::now();
        let mut ctx = model.new_context(&backend, params).map_err(|e| err(&e))?;
        let t_ctx = t1.elapsed();
        let t2 = Instant::now();
        let mut batch = LlamaBatch::new(512, 1);
        let mut pos = 0i32;
        for chunk in tokens.chunks(512) {
            batch.clear();
            for (k, &t) in chunk.iter().enumerate() {
                let last = pos as usize + k + 1 == tokens.len();
                batch
                    .add(t, pos + k as i32, &[0], last)
                    .map_err(|e| err(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| err(&e))?;
            pos += chunk.len() as i32;
        }
        let t_prompt = t2.elapsed();
        let mut sampler = LlamaSampler::greedy();
        // Alternatives timed on the same logits (not used for the reply): greedy inside a
        // sampler chain (llama.cpp then reuses the chain's candidate buffer instead of
        // allocating n_vocab entries per call, as llama-simple does), and a plain argmax.
        let mut chain = LlamaSampler::chain_simple([LlamaSampler::greedy()]);
        let (mut t_chain, mut t_argmax, mut disagree) = (Duration::ZERO, Duration::ZERO, 0u32);
        let (mut t_sample, mut t_piece, mut t_decode) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut last_index = batch.n_tokens() - 1;
        let mut generated = 0u32;
        let mut first_token = Duration::ZERO;
        let gen_started = Instant::now();
        while generated < args.max_tokens && (pos as u32) + 1 < n_ctx {
            let x = Instant::now();
            let alt = chain.sample(&ctx, last_index);
            let y = Instant::now();
            let best = argmax(ctx.get_logits_ith(last_index));
            let a = Instant::now();
            t_chain += y - x;
            t_argmax += a - y;
            let token = sampler.sample(&ctx, last_index);
            let b = Instant::now();
            t_sample += b - a;
            disagree += u32::from(alt != token || best != token.0);
            if vocab.is_eog(token) {
                break;
            }
            generated += 1;
            let piece = vocab.token_to_piece(token, false, None);
            std::hint::black_box(&piece);
            let c = Instant::now();
            t_piece += c - b;
            if generated == 1 {
                first_token = t0.elapsed();
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(|e| err(&e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| err(&e))?;
            t_decode += c.elapsed();
            last_index = 0;
        }
        let t_gen = gen_started.elapsed();
        // The same prompt again on this context after clearing its KV cache: what a context
        // kept across requests (created once at load) would cost instead of new_context +
        // a first decode on fresh buffers.
        ctx.clear_kv_cache();
        let t3 = Instant::now();
        let mut again = 0i32;
        for chunk in tokens.chunks(512) {
            batch.clear();
            for (k, &t) in chunk.iter().enumerate() {
                let last = again as usize + k + 1 == tokens.len();
                batch
                    .add(t, again + k as i32, &[0], last)
                    .map_err(|e| err(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| err(&e))?;
            again += chunk.len() as i32;
        }
        let t_prompt_reused = t3.elapsed();
        let per_tok = |d: Duration| {
            if generated > 0 {
                ms(d) * 1e3 / generated as f64
            } else {
                f64::NAN
            }
        };
        let run = json!({
            "prompt_tokens": tokens.len(),
            "tokens": generated,
            "tokenize_ms": ms(t_tok),
            "new_context_ms": ms(t_ctx),
            "prompt_decode_ms": ms(t_prompt),
            "pp_decode_tps": tokens.len() as f64 / t_prompt.as_secs_f64(),
            "prompt_decode_reused_ms": ms(t_prompt_reused),
            "pp_decode_reused_tps": tokens.len() as f64 / t_prompt_reused.as_secs_f64(),
            "first_token_ms": ms(first_token),
            "sample_us_per_token": per_tok(t_sample),
            "chain_sample_us_per_token": per_tok(t_chain),
            "argmax_us_per_token": per_tok(t_argmax),
            "sampler_disagreements": disagree,
            "piece_us_per_token": per_tok(t_piece),
            "decode_us_per_token": per_tok(t_decode),
            "tg_decode_only_tps": generated as f64 / t_decode.as_secs_f64(),
            // The loop as Serena runs it: without the two alternatives timed above.
            "tg_loop_tps": generated as f64 / (t_gen - t_chain - t_argmax).as_secs_f64(),
        });
        if i >= args.warmup {
            eprintln!("llm_bench: breakdown run {}: {run}", i + 1 - args.warmup);
            runs.push(run);
        }
    }
    let out = json!({
        "side": "breakdown",
        "model": args.model.display().to_string(),
        "threads": args.threads,
        "context": n_ctx,
        "n_batch": n_ctx.min(512),
        "max_tokens": args.max_tokens,
        "reps": args.reps,
        "load_ms": round3(load_ms),
        "median": medians(&runs),
        "runs": runs,
    });
    println!("{out}");
    Ok(())
}

/// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as i32
}
