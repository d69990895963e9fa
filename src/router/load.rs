//! Reading template files and compiling them into a [`Router`].
//!
//! Files are merged in order: the built-in files, then user files. A user
//! file with the same name as a built-in one replaces it; lists and
//! expansion rules defined again later override earlier definitions; intent
//! sentences from all files add up.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde_norway::Value;

use super::intent::Intent;
use super::matcher::{CompileEnv, List, Program, Sym, Vocab};
use super::normalize;
use super::slots::SlotValue;
use super::template::{self, Expr};
use super::{Router, RouterError, Template};

/// Most spellings one list value (`in:`) may expand to.
const MAX_VALUE_SPELLINGS: usize = 64;

/// One template file.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// File name, used to merge and in error messages.
    pub name: String,
    /// YAML text.
    pub text: Cow<'static, str>,
}

#[derive(Debug, Deserialize)]
struct FileDoc {
    #[serde(default)]
    intents: BTreeMap<String, IntentDoc>,
    #[serde(default)]
    lists: BTreeMap<String, ListDoc>,
    #[serde(default)]
    expansion_rules: BTreeMap<String, String>,
    #[serde(default)]
    skip_words: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct IntentDoc {
    data: Vec<DataDoc>,
}

/// `requires_context`, `excludes_context`, `response` and `metadata` are
/// accepted and ignored: Serena has no entity registry to check them against.
#[derive(Debug, Deserialize)]
struct DataDoc {
    sentences: Vec<String>,
    #[serde(default)]
    expansion_rules: BTreeMap<String, String>,
    #[serde(default)]
    slots: BTreeMap<String, Value>,
    #[serde(default)]
    required_keywords: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ListDoc {
    values: Option<Vec<ValueDoc>>,
    range: Option<RangeDoc>,
    #[serde(default)]
    wildcard: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ValueDoc {
    Mapped {
        #[serde(rename = "in")]
        input: String,
        out: Option<Value>,
    },
    Plain(Value),
}

/// `type` and `fractions` are accepted and ignored (whole numbers only).
#[derive(Debug, Deserialize)]
struct RangeDoc {
    from: i64,
    to: i64,
    step: Option<i64>,
    multiplier: Option<f64>,
}

/// The built-in template files, embedded at compile time.
pub(crate) fn builtin_sources() -> Vec<Source> {
    macro_rules! files {
        ($($name:literal),* $(,)?) => {
            vec![$(Source {
                name: $name.to_owned(),
                text: Cow::Borrowed(include_str!(concat!("sentences/", $name))),
            }),*]
        };
    }
    files![
        "_common.yaml",
        "homeassistant_HassCancelAllTimers.yaml",
        "homeassistant_HassCancelTimer.yaml",
        "homeassistant_HassDecreaseTimer.yaml",
        "homeassistant_HassGetCurrentDate.yaml",
        "homeassistant_HassGetCurrentTime.yaml",
        "homeassistant_HassIncreaseTimer.yaml",
        "homeassistant_HassNevermind.yaml",
        "homeassistant_HassPauseTimer.yaml",
        "homeassistant_HassStartTimer.yaml",
        "homeassistant_HassTimerStatus.yaml",
        "homeassistant_HassUnpauseTimer.yaml",
        "shopping_list_HassShoppingListAddItem.yaml",
        "shopping_list_HassShoppingListCompleteItem.yaml",
        "todo_HassListAddItem.yaml",
        "todo_HassListCompleteItem.yaml",
        "weather_HassGetWeather.yaml",
        "serena_context.yaml",
        "serena_timers.yaml",
        "serena_nevermind.yaml",
        "serena_SerenaRemember.yaml",
        "serena_SerenaRecall.yaml",
        "serena_SerenaForget.yaml",
        "serena_SerenaSystemStatus.yaml",
        "serena_SerenaSetPowerProfile.yaml",
        "serena_SerenaStop.yaml",
        "serena_SerenaHelp.yaml",
    ]
}

/// `*.yaml` / `*.yml` files of `dir`, sorted by name.
pub(crate) fn dir_sources(dir: &Path) -> Result<Vec<Source>, RouterError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RouterError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Source {
                name,
                text: Cow::Owned(text),
            })
        })
        .collect()
}

/// Puts `overrides` over `base`: same name replaces in place, new names append.
pub(crate) fn merge_sources(mut base: Vec<Source>, overrides: Vec<Source>) -> Vec<Source> {
    for source in overrides {
        match base.iter_mut().find(|s| s.name == source.name) {
            Some(slot) => *slot = source,
            None => base.push(source),
        }
    }
    base
}

fn template_error(file: &str, context: String, message: String) -> RouterError {
    RouterError::Template {
        file: file.to_owned(),
        context,
        message,
    }
}

fn scalar(value: &Value) -> Option<SlotValue> {
    Some(match value {
        Value::String(s) => SlotValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SlotValue::Int(i),
            None => SlotValue::Float(n.as_f64()?),
        },
        Value::Bool(b) => SlotValue::Text(b.to_string()),
        _ => return None,
    })
}

/// Compiles merged sources into a router.
pub(crate) fn build(sources: &[Source]) -> Result<Router, RouterError> {
    let mut docs = Vec::with_capacity(sources.len());
    for source in sources {
        let doc: FileDoc = serde_norway::from_str(&source.text).map_err(|e| RouterError::Yaml {
            file: source.name.clone(),
            message: e.to_string(),
        })?;
        docs.push((source.name.as_str(), doc));
    }

    // Global rules and lists: later files override earlier ones.
    let mut rules: HashMap<String, Expr> = HashMap::new();
    let mut list_docs: BTreeMap<&str, (&str, &ListDoc)> = BTreeMap::new();
    let mut skip_phrases: Vec<String> = Vec::new();
    for (file, doc) in &docs {
        for (name, body) in &doc.expansion_rules {
            let expr = template::parse(body)
                .map_err(|e| template_error(file, format!("expansion rule <{name}>"), e))?;
            rules.insert(name.clone(), expr);
        }
        for (name, list) in &doc.lists {
            list_docs.insert(name, (file, list));
        }
        skip_phrases.extend(doc.skip_words.iter().cloned());
    }

    let mut vocab = Vocab::default();
    let mut lists = Vec::with_capacity(list_docs.len());
    let mut list_ids = HashMap::new();
    for (name, (file, doc)) in list_docs {
        let list = compile_list(doc, &mut vocab)
            .map_err(|e| template_error(file, format!("list {{{name}}}"), e))?;
        list_ids.insert(name.to_owned(), lists.len());
        lists.push(list);
    }

    let mut slot_names = Vec::new();
    let mut templates = Vec::new();
    for (file, doc) in &docs {
        for (intent_name, intent_doc) in &doc.intents {
            let intent = Intent::from_str(intent_name).map_err(|_| RouterError::UnknownIntent {
                file: file.to_string(),
                name: intent_name.clone(),
                known: Intent::ALL
                    .iter()
                    .map(Intent::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            for data in &intent_doc.data {
                let mut local = HashMap::new();
                for (name, body) in &data.expansion_rules {
                    let expr = template::parse(body).map_err(|e| {
                        template_error(
                            file,
                            format!("intent {intent_name}, expansion rule <{name}>"),
                            e,
                        )
                    })?;
                    local.insert(name.as_str(), expr);
                }
                let lookup = |name: &str| local.get(name).or_else(|| rules.get(name)).cloned();
                let mut fixed = Vec::new();
                for (slot, value) in &data.slots {
                    let value = scalar(value).ok_or_else(|| {
                        template_error(
                            file,
                            format!("intent {intent_name}, slot {slot:?}"),
                            "fixed slot values must be strings, numbers or booleans".into(),
                        )
                    })?;
                    fixed.push((slot.clone(), value));
                }
                let keywords: Vec<Sym> = data
                    .required_keywords
                    .iter()
                    .flat_map(|k| normalize::words(k))
                    .map(|w| vocab.intern(&w))
                    .collect();
                for sentence in &data.sentences {
                    let context = || format!("intent {intent_name}, sentence {sentence:?}");
                    let program = template::parse(sentence)
                        .and_then(|expr| template::inline_rules(&expr, &lookup, &mut Vec::new()))
                        .and_then(|expr| template::to_node(&expr))
                        .and_then(|node| {
                            let mut env = CompileEnv {
                                vocab: &mut vocab,
                                lists: &list_ids,
                                slot_names: &mut slot_names,
                            };
                            Program::compile(&node, &mut env)
                        })
                        .map_err(|e| template_error(file, context(), e))?;
                    templates.push(Template {
                        intent,
                        program,
                        fixed: fixed.clone(),
                        keywords: keywords.clone(),
                    });
                }
            }
        }
    }

    let mut skip_words: Vec<Vec<Sym>> = skip_phrases
        .iter()
        .map(|p| {
            normalize::words(p)
                .iter()
                .map(|w| vocab.intern(w))
                .collect()
        })
        .filter(|p: &Vec<Sym>| !p.is_empty())
        .collect();
    skip_words.sort();
    skip_words.dedup();
    tracing::debug!(
        files = sources.len(),
        templates = templates.len(),
        lists = lists.len(),
        "router templates compiled"
    );

    Ok(Router {
        vocab,
        lists,
        templates,
        slot_names,
        skip_words,
    })
}

fn compile_list(doc: &ListDoc, vocab: &mut Vocab) -> Result<List, String> {
    match (&doc.values, &doc.range, doc.wildcard) {
        (Some(values), None, false) => {
            let mut entries = Vec::new();
            for value in values {
                let (input, out) = match value {
                    ValueDoc::Mapped { input, out } => {
                        let out = match out {
                            Some(v) => {
                                scalar(v).ok_or_else(|| format!("value {input:?}: bad `out`"))?
                            }
                            None => SlotValue::Text(input.clone()),
                        };
                        (input.clone(), out)
                    }
                    ValueDoc::Plain(v) => {
                        let out =
                            scalar(v).ok_or("values must be strings, numbers or in/out pairs")?;
                        (out.to_string(), out)
                    }
                };
                let node = template::parse(&input)
                    .and_then(|expr| template::to_node(&expr))
                    .map_err(|e| format!("value {input:?}: {e}"))?;
                for words in template::word_sequences(&node, MAX_VALUE_SPELLINGS)
                    .map_err(|e| format!("value {input:?}: {e}"))?
                {
                    if !words.is_empty() {
                        let syms = words.iter().map(|w| vocab.intern(w)).collect();
                        entries.push((syms, out.clone()));
                    }
                }
            }
            Ok(List::values(entries))
        }
        (None, Some(range), false) => {
            let step = range.step.unwrap_or(1);
            if step < 1 || range.from > range.to {
                return Err(format!(
                    "bad range: from {} to {} step {step}",
                    range.from, range.to
                ));
            }
            Ok(List::Range {
                from: range.from,
                to: range.to,
                step,
                multiplier: range.multiplier,
            })
        }
        (None, None, true) => Ok(List::Wildcard),
        _ => Err("a list needs exactly one of `values`, `range` or `wildcard: true`".into()),
    }
}
