//! The operations behind every request, run against an open store.
//!
//! [`Service::execute`] is the one implementation of the protocol: the socket server calls it
//! for its clients and a local [`Handle`](super::Handle) calls it directly, so a command
//! behaves the same with and without a running Serena.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::answer::{self, AnswerOptions};
use crate::config::Config;
use crate::models::{Catalog, ModelDirs};
use crate::skills::lists::{canonical, SHOPPING, TODO};
use crate::store::{self, Store, TimerState};

use super::error::ControlError;
use super::protocol::{
    BackupSummary, Count, ListSummary, ListView, Pong, PowerInForce, Request, ServerStatus,
    StoreCounts, PROTOCOL_VERSION,
};

/// What answering needs besides the store: configuration, model lookup, the data directory.
#[derive(Clone, Debug)]
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// Model search directories.
    pub dirs: ModelDirs,
    /// The model catalog.
    pub catalog: Catalog,
    /// The data directory (holds the store and the control socket).
    pub data_dir: PathBuf,
}

/// Who runs the service: a long-running owner serving clients, or a command that opened the
/// store for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `serena serve` (or another long-running Serena).
    Serve,
    /// A one-shot command with the store opened locally.
    Local,
}

/// An open store plus what answering needs. `Send + Sync`; share it with `Arc`.
pub struct Service {
    store: Arc<Store>,
    ctx: Context,
    role: Role,
    started_unix_ms: u64,
    requests: AtomicU64,
    timers_changed: Option<Arc<Notify>>,
    engines: crate::answer::Engines,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store)
            .field("role", &self.role)
            .finish()
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, ControlError> {
    serde_json::to_value(v).map_err(|e| ControlError::Invalid(format!("cannot encode result: {e}")))
}

fn non_empty<'a>(what: &str, text: &'a str) -> Result<&'a str, ControlError> {
    let t = text.trim();
    if t.is_empty() {
        Err(ControlError::Invalid(format!("the {what} is empty")))
    } else {
        Ok(t)
    }
}

/// A question to answer, with what the asker measured before it and, in process, a
/// callback for the reply's sentences as they are generated.
#[derive(Clone, Copy)]
pub struct Question<'a> {
    /// The question (a transcript, for speech).
    pub text: &'a str,
    /// How it came in.
    pub mode: crate::store::InputMode,
    /// Forget the conversation first.
    pub new_conversation: bool,
    /// Timings of the asker's stages (`stt_ms`, `stt_load_ms`, ...), kept in the history.
    pub timings: &'a std::collections::BTreeMap<String, u64>,
    /// Told each sentence of a language-model reply as it is generated. Only in process:
    /// over the socket the reply comes whole.
    pub on_sentence: Option<&'a dyn Fn(&str)>,
}

impl std::fmt::Debug for Question<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Question")
            .field("text", &self.text)
            .field("mode", &self.mode)
            .field("new_conversation", &self.new_conversation)
            .field("timings", &self.timings)
            .field("streamed", &self.on_sentence.is_some())
            .finish()
    }
}

impl Service {
    /// A service over `store`. `timers_changed` is notified after every request that may
    /// have changed timers (the timer runtime waits on it).
    pub fn new(
        store: Arc<Store>,
        ctx: Context,
        role: Role,
        timers_changed: Option<Arc<Notify>>,
    ) -> Service {
        let engines = crate::answer::Engines::new(&ctx.config, &ctx.dirs, &ctx.catalog);
        Service {
            store,
            ctx,
            role,
            started_unix_ms: store::now_ms(),
            requests: AtomicU64::new(0),
            timers_changed,
            engines,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The context answers are made with.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Runs one request. Blocking (store writes are flushed before it returns); call it from
    /// a blocking thread in async code.
    ///
    /// # Errors
    /// [`ControlError::Store`] when the store fails, [`ControlError::NotFound`] /
    /// [`ControlError::Invalid`] for requests about things that do not exist or cannot be
    /// done, [`ControlError::Answer`] when answering fails otherwise.
    pub fn execute(&self, request: Request) -> Result<Value, ControlError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let may_change_timers = request.may_change_timers();
        let result = self.run(request);
        if may_change_timers {
            if let Some(n) = &self.timers_changed {
                n.notify_one();
            }
        }
        result
    }

    /// Answer a question (router → skill, or online → local model → fallback), recorded in
    /// the history. Blocking.
    ///
    /// # Errors
    /// [`ControlError::Answer`] when the store or the router fails.
    pub fn answer(
        &self,
        text: &str,
        mode: crate::store::InputMode,
        new_conversation: bool,
    ) -> Result<crate::answer::Answer, ControlError> {
        self.answer_question(&Question {
            text,
            mode,
            new_conversation,
            timings: &std::collections::BTreeMap::new(),
            on_sentence: None,
        })
    }

    /// Answer a [`Question`]: its stage timings go to the history, and the sentences of a
    /// language-model reply reach its callback as they are generated.
    ///
    /// # Errors
    /// As [`Service::answer`].
    pub fn answer_question(
        &self,
        question: &Question<'_>,
    ) -> Result<crate::answer::Answer, ControlError> {
        let ctx = &self.ctx;
        let opts = AnswerOptions {
            config: &ctx.config,
            dirs: &ctx.dirs,
            catalog: &ctx.catalog,
            data_dir: &ctx.data_dir,
            stt_model: None,
            now: SystemTime::now(),
            engines: Some(&self.engines),
            new_conversation: question.new_conversation,
            stage_timings: question.timings.clone(),
            on_sentence: question.on_sentence.map(crate::answer::SentenceSink),
        };
        answer::answer_in(&self.store, question.text, question.mode, &opts)
            .map_err(ControlError::from_answer)
    }

    /// Engines kept loaded between requests.
    pub fn engines(&self) -> &crate::answer::Engines {
        &self.engines
    }

    fn run(&self, request: Request) -> Result<Value, ControlError> {
        let s = &*self.store;
        match request {
            Request::Ping => to_value(Pong {
                pid: std::process::id(),
                version: crate::VERSION.to_string(),
                protocol: PROTOCOL_VERSION,
            }),
            Request::Status => to_value(self.status()?),
            Request::Power => {
                let now_ms = store::now_ms();
                let power = crate::power::now::resolve(&self.ctx.config, s, now_ms);
                to_value(PowerInForce {
                    profile: power.profile,
                    settings: power.settings,
                    source: power.source,
                    pinned_by: power.pinned_by.map(str::to_string),
                    last_change: crate::power::now::last_change(s),
                })
            }
            Request::Ask {
                text,
                mode,
                new_conversation,
                timings,
            } => to_value(self.answer_question(&Question {
                text: &text,
                mode,
                new_conversation,
                timings: &timings,
                on_sentence: None,
            })?),
            Request::NotesList => to_value(s.notes()?),
            Request::NotesAdd { text } => to_value(s.add_note(non_empty("note", &text)?)?),
            Request::NotesRemove { id } => match s.remove_note(id)? {
                Some(note) => to_value(note),
                None => Err(ControlError::NotFound(format!("no note with id {id}"))),
            },
            Request::NotesClear => to_value(Count {
                removed: s.clear_notes()?,
            }),
            Request::ListsOverview => to_value(self.lists_overview()?),
            Request::ListsShow { name } => {
                let list = self.existing_list(&name)?;
                to_value(ListView {
                    items: s.list_items(&list)?,
                    name: list,
                })
            }
            Request::ListsCreate { name } => {
                non_empty("list name", &name)?;
                to_value(s.create_list(&canonical(&name))?)
            }
            Request::ListsAdd { name, item } => {
                let list = self.existing_list(&name)?;
                to_value(s.add_list_item(&list, non_empty("item", &item)?)?)
            }
            Request::ListsComplete { name, item } => {
                let list = self.existing_list(&name)?;
                match s.complete_list_item(&list, non_empty("item", &item)?)? {
                    Some(done) => to_value(done),
                    None => Err(ControlError::NotFound(format!(
                        "no open item {:?} on the {list}",
                        item.trim()
                    ))),
                }
            }
            Request::ListsRemove {
                name,
                item: Some(item),
            } => {
                let list = self.existing_list(&name)?;
                match s.remove_list_item(&list, non_empty("item", &item)?)? {
                    Some(_) => to_value(Count { removed: 1 }),
                    None => Err(ControlError::NotFound(format!(
                        "no item {:?} on the {list}",
                        item.trim()
                    ))),
                }
            }
            Request::ListsRemove { name, item: None } => {
                let list = self.existing_list(&name)?;
                let removed = s.list_items(&list)?.len();
                s.remove_list(&list)?;
                to_value(Count { removed })
            }
            Request::TimersList => to_value(s.timers()?),
            Request::TimersCancel { id } => {
                let Some(mut t) = s.timer(id)? else {
                    return Err(ControlError::NotFound(format!("no timer with id {id}")));
                };
                if !t.is_active() {
                    return Err(ControlError::Invalid(format!(
                        "timer {id} is not running (it is {})",
                        match t.state {
                            TimerState::Fired => "done",
                            _ => "cancelled",
                        }
                    )));
                }
                t.state = TimerState::Cancelled;
                s.update_timer(&t)?;
                to_value(t)
            }
            Request::HistorySearch {
                text,
                since_ms,
                limit,
            } => {
                let since =
                    since_ms.map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
                to_value(s.history_search(text.as_deref(), since, limit)?)
            }
            Request::Backup { path, passphrase } => {
                if !path.is_absolute() {
                    return Err(ControlError::Invalid(format!(
                        "the backup path must be absolute: {}",
                        path.display()
                    )));
                }
                let info = s.backup(&path, passphrase.as_ref().map(|p| p.expose()))?;
                to_value(BackupSummary {
                    path: info.path,
                    size_bytes: info.size_bytes,
                    records: info.archive.record_count,
                    encrypted: info.archive.encrypted,
                    schema_version: info.archive.schema_version,
                    created_unix_ms: info.archive.created_unix_ms,
                })
            }
            Request::Export => {
                let mut buf = Vec::new();
                s.export_json(&mut buf)?;
                serde_json::from_slice(&buf)
                    .map_err(|e| ControlError::Invalid(format!("export is not JSON: {e}")))
            }
            Request::SettingsGet { key } => Ok(s.setting(&key)?.unwrap_or(Value::Null)),
            Request::SettingsList => to_value(s.settings()?),
            Request::SettingsSet { key, value } => {
                non_empty("setting key", &key)?;
                s.set_setting(&key, &value)?;
                Ok(Value::Null)
            }
        }
    }

    fn status(&self) -> Result<ServerStatus, ControlError> {
        let stats = self.store.stats()?;
        let active_timers = self.store.active_timers()?.len();
        Ok(ServerStatus {
            pid: std::process::id(),
            version: crate::VERSION.to_string(),
            owner: match self.role {
                Role::Serve => "serve",
                Role::Local => "local",
            }
            .to_string(),
            store_dir: self.store.dir().to_path_buf(),
            started_unix_ms: self.started_unix_ms,
            requests: self.requests.load(Ordering::Relaxed),
            counts: StoreCounts {
                history: stats.history,
                notes: stats.notes,
                lists: stats.lists,
                list_items: stats.list_items,
                timers: stats.timers,
                active_timers,
                settings: stats.settings,
                metrics: stats.metrics,
                size_on_disk: stats.size_on_disk,
            },
        })
    }

    /// The canonical name of an existing list (the shopping and to-do lists always exist).
    fn existing_list(&self, name: &str) -> Result<String, ControlError> {
        non_empty("list name", name)?;
        let list = canonical(name);
        if list == SHOPPING || list == TODO {
            return Ok(list);
        }
        let exists = self
            .store
            .list_names()?
            .iter()
            .any(|l| l.name.trim().to_lowercase() == list);
        if exists {
            Ok(list)
        } else {
            Err(ControlError::NotFound(format!(
                "you don't have a {list}; create it with: serena lists create \"{}\"",
                list.trim_end_matches(" list")
            )))
        }
    }

    fn lists_overview(&self) -> Result<Vec<ListSummary>, ControlError> {
        let mut names: Vec<String> = vec![SHOPPING.to_string(), TODO.to_string()];
        for info in self.store.list_names()? {
            let n = info.name.trim().to_lowercase();
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
            .into_iter()
            .map(|name| {
                let items = self.store.list_items(&name)?;
                Ok(ListSummary {
                    open: items.iter().filter(|i| !i.done).count(),
                    items: items.len(),
                    name,
                })
            })
            .collect()
    }
}
