//! Command router: maps a transcribed sentence to an [`Intent`] and its slots.
//!
//! The router is a template matcher for Home Assistant's sentence syntax
//! (the `home-assistant/intents` project; see `sentences/README.md`), with
//! Home Assistant's English templates for time, date, timers, lists, weather
//! and "never mind", plus Serena's own `serena_*.yaml` templates. Everything
//! is compiled once at load; [`Router::route`] does no I/O and no
//! allocation-heavy work (a few microseconds per sentence).
//!
//! ```no_run
//! # use serena::router::{Router, Routed, Intent};
//! let router = Router::builtin()?;
//! if let Routed::Intent(m) = router.route("Set a timer for 10 minutes.") {
//!     assert_eq!(m.intent, Intent::StartTimer);
//!     assert_eq!(m.slots.int("minutes"), Some(10));
//! }
//! # Ok::<(), serena::router::RouterError>(())
//! ```
//!
//! # Template syntax
//! `[optional]`, `(a|b)` alternatives, `(a;b)` permutations, `<rule>`
//! expansion rules (from any file's top-level `expansion_rules`, or the
//! data block's own), `{list}` / `{list:slot}` lists (`values` with `in`/`out`,
//! `range` with `from`/`to`/`step`/`multiplier`, `wildcard: true`),
//! `skip_words` (dropped anywhere outside wildcards), fixed `slots:` and
//! `required_keywords` per data block. Matching ignores case and
//! punctuation; numbers may be digits or words ("twenty-five").
//!
//! Not supported, and ignored: `requires_context` / `excludes_context`
//! (Serena has no entity registry), `response`, range `type` and `fractions`
//! (whole numbers only), per-data-block `lists`.
//!
//! # Lists Home Assistant fills from its registry
//! Home Assistant fills `{name}` (entity names) and `{area}` from the home's
//! devices. Serena's `serena_context.yaml` makes `{name}` a wildcard (a
//! to-do list's or a place's name, as spoken) and `{area}` an empty list;
//! a user file may define `area` values (e.g. rooms) or a closed `name` list.
//!
//! # Choosing among matches
//! A sentence must match a template completely. When several templates
//! match, the one whose wildcards cover the fewest words wins, then the one
//! that dropped the fewest skip words, then the earliest template. When
//! nothing matches, leading fillers ("hey", "okay", "serena") and trailing
//! thanks are dropped and matching is retried with a lower confidence.
//!
//! # Adding a skill
//! Add a variant to [`Intent`] and a `serena_<Name>.yaml` file under
//! `sentences/` (registered in `load.rs`).

mod intent;
mod load;
mod matcher;
mod normalize;
mod numbers;
mod slots;
mod template;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use intent::{Intent, UnknownIntent};
pub use numbers::parse_number;
pub use slots::{SlotValue, Slots};

use matcher::{Input, List, Program, Search, Sym, Vocab};

/// Confidence of a match found only after dropping filler words.
pub const FUZZY_CONFIDENCE: f32 = 0.8;

/// Leading words dropped on the second, fuzzy pass.
const LEADING_FILLERS: &[&str] = &[
    "hey", "hi", "hello", "ok", "okay", "um", "umm", "uh", "er", "oh", "so", "well", "alright",
    "serena",
];

/// Trailing words dropped on the second, fuzzy pass.
const TRAILING_FILLERS: &[&[&str]] = &[&["thanks"], &["thank", "you"], &["serena"], &["now"]];

/// Why templates could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A template file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML or not in the template file format.
    #[error("{file}: invalid template file: {message}")]
    Yaml {
        /// File name.
        file: String,
        /// Parser message, with line and column.
        message: String,
    },
    /// A file declares sentences for an intent Serena does not have.
    #[error("{file}: unknown intent {name:?}; known intents: {known}")]
    UnknownIntent {
        /// File name.
        file: String,
        /// The intent name in the file.
        name: String,
        /// The names Serena knows, comma-separated.
        known: String,
    },
    /// A sentence, expansion rule or list is malformed or refers to an
    /// unknown rule or list.
    #[error("{file}: {context}: {message}")]
    Template {
        /// File name.
        file: String,
        /// What was being compiled, e.g. `intent HassStartTimer, sentence "..."`.
        context: String,
        /// The problem.
        message: String,
    },
}

/// A recognized command.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// The intent.
    pub intent: Intent,
    /// Filled slots, in sentence order (fixed slots of the template last).
    pub slots: Slots,
    /// 1.0 for a complete template match; [`FUZZY_CONFIDENCE`] when filler
    /// words had to be dropped.
    pub confidence: f32,
}

/// The outcome of routing one sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// The sentence is a command.
    Intent(Match),
    /// No template matches.
    NotUnderstood,
}

impl Routed {
    /// The match, if any.
    pub fn as_match(&self) -> Option<&Match> {
        match self {
            Routed::Intent(m) => Some(m),
            Routed::NotUnderstood => None,
        }
    }

    /// A serializable report for `serena route`:
    /// `{"text", "intent", "slots", "confidence"}` (`intent` is `null` and
    /// `confidence` 0 when not understood).
    pub fn report<'a>(&'a self, text: &'a str) -> RouteReport<'a> {
        match self {
            Routed::Intent(m) => RouteReport {
                text,
                intent: Some(m.intent),
                slots: Some(&m.slots),
                confidence: m.confidence,
            },
            Routed::NotUnderstood => RouteReport {
                text,
                intent: None,
                slots: None,
                confidence: 0.0,
            },
        }
    }
}

/// What `serena route` prints; see [`Routed::report`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteReport<'a> {
    /// The input sentence.
    pub text: &'a str,
    /// The intent's name, or `null`.
    pub intent: Option<Intent>,
    /// Slots (`{}` when none, `null` when not understood).
    pub slots: Option<&'a Slots>,
    /// Match confidence, 0 when not understood.
    pub confidence: f32,
}

/// One compiled template sentence.
#[derive(Debug)]
struct Template {
    intent: Intent,
    program: Program,
    /// The data block's fixed `slots:`.
    fixed: Vec<(String, SlotValue)>,
    /// The data block's `required_keywords` (any one must be present).
    keywords: Vec<Sym>,
}

/// Compiled templates; cheap to share (`&Router` is all `route` needs).
#[derive(Debug)]
pub struct Router {
    vocab: Vocab,
    lists: Vec<List>,
    templates: Vec<Template>,
    slot_names: Vec<String>,
    skip_words: Vec<Vec<Sym>>,
}

impl Router {
    /// The built-in templates (embedded in the binary).
    pub fn builtin() -> Result<Router, RouterError> {
        load::build(&load::builtin_sources())
    }

    /// The built-in templates merged with the `*.yaml` files of `dir`.
    ///
    /// A file named like a built-in one (e.g. `serena_SerenaHelp.yaml`)
    /// replaces it (an empty `{}` file disables it); other files add
    /// sentences, lists and expansion rules, and lists or rules defined again
    /// override the built-in definitions.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Router, RouterError> {
        let user = load::dir_sources(dir.as_ref())?;
        load::build(&load::merge_sources(load::builtin_sources(), user))
    }

    /// The built-in templates, with the user's directory merged over them when it exists
    /// ([`crate::paths::user_sentences_dir`]).
    ///
    /// # Errors
    /// As [`Router::from_dir`], naming the user's file that is wrong.
    pub fn for_user() -> Result<Router, RouterError> {
        let dir = crate::paths::user_sentences_dir();
        if dir.is_dir() {
            Router::from_dir(dir)
        } else {
            Router::builtin()
        }
    }

    /// Number of compiled template sentences.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Routes one sentence (as transcribed; case and punctuation ignored).
    pub fn route(&self, text: &str) -> Routed {
        let tokens = normalize::tokenize(text);
        if let Some(m) = self.route_tokens(text, &tokens, 1.0) {
            return Routed::Intent(m);
        }
        let (start, end) = strip_fillers(&tokens);
        if (start, end) != (0, tokens.len()) {
            if let Some(m) = self.route_tokens(text, &tokens[start..end], FUZZY_CONFIDENCE) {
                return Routed::Intent(m);
            }
        }
        Routed::NotUnderstood
    }

    fn route_tokens(
        &self,
        text: &str,
        tokens: &[normalize::Token],
        confidence: f32,
    ) -> Option<Match> {
        if tokens.is_empty() {
            return None;
        }
        let input = Input::new(
            tokens.iter().map(|t| t.text.as_str()).collect(),
            &self.vocab,
        );
        let mut search = Search::new(&self.lists, &self.skip_words, &input);
        for (i, template) in self.templates.iter().enumerate() {
            let has_keyword = template.keywords.is_empty()
                || template
                    .keywords
                    .iter()
                    .any(|k| input.sorted.binary_search(k).is_ok());
            if has_keyword {
                search.run(i, &template.program);
            }
        }
        let found = search.best?;
        let template = self.templates.get(found.template)?;
        let mut slots = Slots::new();
        for (slot, captured) in &found.captures {
            let value = match *captured {
                matcher::Captured::Span { start, end } => {
                    let from = tokens.get(start)?.span.start;
                    let to = tokens.get(end.checked_sub(1)?)?.span.end;
                    SlotValue::Text(text.get(from..to)?.to_owned())
                }
                ref other => Search::value(&self.lists, other)?,
            };
            slots.insert(self.slot_names.get(*slot)?.clone(), value);
        }
        for (name, value) in &template.fixed {
            slots.insert(name.clone(), value.clone());
        }
        Some(Match {
            intent: template.intent,
            slots,
            confidence,
        })
    }
}

/// The token range left after dropping leading and trailing fillers.
fn strip_fillers(tokens: &[normalize::Token]) -> (usize, usize) {
    let mut start = 0;
    while start < tokens.len() && LEADING_FILLERS.contains(&tokens[start].text.as_str()) {
        start += 1;
    }
    let mut end = tokens.len();
    'outer: loop {
        for filler in TRAILING_FILLERS {
            let n = filler.len();
            if end >= start + n
                && tokens[end - n..end]
                    .iter()
                    .zip(filler.iter())
                    .all(|(t, f)| t.text == *f)
            {
                end -= n;
                continue 'outer;
            }
        }
        break;
    }
    (start, end)
}
