//! The control protocol: JSON lines over a Unix socket.
//!
//! # Framing
//!
//! One request per line, one response per line, in order, UTF-8 JSON, `\n`-terminated.
//! A client may send many requests on one connection. Blank lines are ignored. Request
//! lines longer than [`MAX_REQUEST_LINE`] bytes are answered with a `too_long` error and
//! the connection is closed (the rest of the line cannot be told from the next request);
//! any other bad line gets an error response and the connection stays usable.
//!
//! # Request
//!
//! ```json
//! {"v": 1, "id": 7, "op": "notes_add", "text": "buy milk"}
//! ```
//!
//! `v` is the protocol version ([`PROTOCOL_VERSION`]; required). `id` is optional and echoed
//! back. `op` selects the [`Request`] variant; its fields sit next to it.
//!
//! # Response
//!
//! ```json
//! {"v": 1, "id": 7, "ok": true, "result": {"id": 3, "text": "buy milk", "created_ms": 1}}
//! {"v": 1, "id": 7, "ok": false, "error": {"code": "not_found", "message": "no note with id 9"}}
//! ```
//!
//! `result` is the operation's value (see each [`Request`] variant); `error` has a
//! machine-readable [`ErrorCode`], the store's error class (`kind`) for `store` errors, and a
//! message for people.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::InputMode;

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line the server accepts, in bytes (newline excluded).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest response line the client accepts, in bytes (an export of a large store is one
/// line).
pub const MAX_RESPONSE_LINE: usize = 512 << 20;

/// A backup passphrase: never printed by `Debug`, wiped from memory when dropped.
#[derive(Clone, Default)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase.
    pub fn new(s: String) -> Passphrase {
        Passphrase(Zeroizing::new(s))
    }

    /// The passphrase text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Serialize for Passphrase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Passphrase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Passphrase::new)
    }
}

fn text_mode() -> InputMode {
    InputMode::Text
}

fn default_limit() -> usize {
    20
}

/// What a client asks for. The comment on each variant names its `result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check. Result: [`Pong`].
    Ping,
    /// What the owner is doing. Result: [`ServerStatus`].
    Status,
    /// The power profile in force and its settings. Result: [`PowerInForce`].
    Power,
    /// Answer a question (router → skill, or language model → fallback), recorded in the
    /// history. Result: [`crate::answer::Answer`].
    Ask {
        /// The question (a transcript for audio).
        text: String,
        /// How it came in (default `text`).
        #[serde(default = "text_mode")]
        mode: InputMode,
        /// Forget the conversation first (`serena ask --new`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        new_conversation: bool,
        /// Timings of the stages before the answer (the asker's transcription: `stt_ms`,
        /// `stt_load_ms`, ...), recorded in the history with it.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        timings: std::collections::BTreeMap<String, u64>,
    },
    /// All notes, oldest first. Result: `[Note]`.
    NotesList,
    /// Add a note (durable before the response). Result: `Note`.
    NotesAdd {
        /// The note.
        text: String,
    },
    /// Remove a note. Result: the removed `Note`; `not_found` if there is none.
    NotesRemove {
        /// Its id.
        id: u64,
    },
    /// Remove every note. Result: [`Count`].
    NotesClear,
    /// Every list with its item counts (the shopping list and the to-do list always).
    /// Result: `[ListSummary]`.
    ListsOverview,
    /// One list's items. Result: [`ListView`]; `not_found` for a list that does not exist.
    ListsShow {
        /// The list's name, as spoken ("shopping", "groceries list").
        name: String,
    },
    /// Create a list. Result: `ListInfo`.
    ListsCreate {
        /// The list's name.
        name: String,
    },
    /// Add an item to an existing list. Result: `ListItem`.
    ListsAdd {
        /// The list's name.
        name: String,
        /// The item.
        item: String,
    },
    /// Check off an item. Result: the updated `ListItem`; `not_found` if none matches.
    ListsComplete {
        /// The list's name.
        name: String,
        /// The item (exact match first, else the only item containing it).
        item: String,
    },
    /// Remove an item, or with no item the whole list. Result: [`Count`] (items removed).
    ListsRemove {
        /// The list's name.
        name: String,
        /// The item; none: the whole list.
        #[serde(default)]
        item: Option<String>,
    },
    /// All timers, by id (every state). Result: `[TimerRecord]`.
    TimersList,
    /// Cancel a running or paused timer. Result: the updated `TimerRecord`.
    TimersCancel {
        /// Its id.
        id: u64,
    },
    /// History, newest first. Result: `[HistoryEntry]`.
    HistorySearch {
        /// Only entries whose transcript or reply contains this (case-insensitive).
        #[serde(default)]
        text: Option<String>,
        /// Only entries at or after this time (unix milliseconds).
        #[serde(default)]
        since_ms: Option<u64>,
        /// At most this many (default 20).
        #[serde(default = "default_limit")]
        limit: usize,
    },
    /// Write a backup archive from a consistent snapshot. The path is the owner's: send an
    /// absolute one. Result: [`BackupSummary`].
    Backup {
        /// Where to write the archive.
        path: PathBuf,
        /// Encrypt with this passphrase.
        #[serde(default)]
        passphrase: Option<Passphrase>,
    },
    /// Every table, decoded. Result: the export object (see `Store::export_json`).
    Export,
    /// One setting. Result: its value, or `null` when unset.
    SettingsGet {
        /// The key.
        key: String,
    },
    /// Every setting. Result: an object.
    SettingsList,
    /// Set a setting (durable before the response). Result: `null`.
    SettingsSet {
        /// The key.
        key: String,
        /// Any JSON value.
        value: serde_json::Value,
    },
}

impl Request {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Status => "status",
            Request::Power => "power",
            Request::Ask { .. } => "ask",
            Request::NotesList => "notes_list",
            Request::NotesAdd { .. } => "notes_add",
            Request::NotesRemove { .. } => "notes_remove",
            Request::NotesClear => "notes_clear",
            Request::ListsOverview => "lists_overview",
            Request::ListsShow { .. } => "lists_show",
            Request::ListsCreate { .. } => "lists_create",
            Request::ListsAdd { .. } => "lists_add",
            Request::ListsComplete { .. } => "lists_complete",
            Request::ListsRemove { .. } => "lists_remove",
            Request::TimersList => "timers_list",
            Request::TimersCancel { .. } => "timers_cancel",
            Request::HistorySearch { .. } => "history_search",
            Request::Backup { .. } => "backup",
            Request::Export => "export",
            Request::SettingsGet { .. } => "settings_get",
            Request::SettingsList => "settings_list",
            Request::SettingsSet { .. } => "settings_set",
        }
    }

    /// Whether the request may change timers (the timer runtime re-reads them after it).
    pub fn may_change_timers(&self) -> bool {
        matches!(self, Request::Ask { .. } | Request::TimersCancel { .. })
    }
}

/// A request with its envelope, as written on the wire.
#[derive(Debug, Serialize)]
pub struct RequestLine<'a> {
    /// Protocol version.
    pub v: u32,
    /// Echoed in the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The request (its `op` and fields).
    #[serde(flatten)]
    pub request: &'a Request,
}

/// Machine-readable error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown `op`, missing or mistyped fields.
    BadRequest,
    /// `v` missing or not spoken by this server.
    UnsupportedVersion,
    /// The request line is longer than [`MAX_REQUEST_LINE`]; the connection is closed.
    TooLong,
    /// The note, list, item or timer does not exist.
    NotFound,
    /// The request is well-formed but cannot be done (empty text, timer already finished).
    Invalid,
    /// The store failed; `kind` says how (busy, io, corruption, version, archive,
    /// passphrase, input).
    Store,
    /// Answering failed for a reason other than the store.
    Answer,
    /// The server is shutting down.
    ShuttingDown,
    /// Too many connections; try again.
    Busy,
    /// A bug on the server side.
    Internal,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLong => "too_long",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Store => "store",
            ErrorCode::Answer => "answer",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// The `error` member of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// For `store` errors: the store's error class (`busy`, `io`, `corruption`, `version`,
    /// `archive`, `passphrase`, `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What went wrong, for people.
    pub message: String,
}

/// A response line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result (when `ok`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
    /// The error (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success.
    pub fn ok(id: Option<u64>, result: serde_json::Value) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: true,
            result,
            error: None,
        }
    }

    /// A failure.
    pub fn error(id: Option<u64>, error: ErrorBody) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: false,
            result: serde_json::Value::Null,
            error: Some(error),
        }
    }
}

/// Parses a request line: the envelope first (so a bad `op` still gets its `id` back and a
/// wrong version is reported as such), then the request.
///
/// # Errors
/// The error response to send back: `bad_request` or `unsupported_version`.
pub fn parse_request(line: &[u8]) -> Result<(Option<u64>, Request), Box<Response>> {
    let bad = |id, message: String| {
        Box::new(Response::error(
            id,
            ErrorBody {
                code: ErrorCode::BadRequest,
                kind: None,
                message,
            },
        ))
    };
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| bad(None, format!("not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(bad(None, "a request is a JSON object".into()));
    };
    let id = obj.get("id").and_then(serde_json::Value::as_u64);
    match obj.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        other => {
            return Err(Box::new(Response::error(
                id,
                ErrorBody {
                    code: ErrorCode::UnsupportedVersion,
                    kind: None,
                    message: match other {
                        Some(v) => format!(
                            "protocol version {v} is not supported (this Serena speaks {PROTOCOL_VERSION})"
                        ),
                        None => format!("missing \"v\" (protocol version; this Serena speaks {PROTOCOL_VERSION})"),
                    },
                },
            )))
        }
    }
    let request =
        serde_json::from_value(value).map_err(|e| bad(id, format!("bad request: {e}")))?;
    Ok((id, request))
}

/// `ping`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The owner's process id.
    pub pid: u32,
    /// The owner's Serena version.
    pub version: String,
    /// The owner's protocol version.
    pub protocol: u32,
}

/// Record counts, as `status` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// History entries.
    pub history: usize,
    /// Notes.
    pub notes: usize,
    /// Lists (created ones).
    pub lists: usize,
    /// List items.
    pub list_items: usize,
    /// Timers (all states).
    pub timers: usize,
    /// Running or paused timers.
    pub active_timers: usize,
    /// Settings.
    pub settings: usize,
    /// Metric samples.
    pub metrics: usize,
    /// Size on disk, bytes.
    pub size_on_disk: u64,
}

/// `status`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Process id of the store's owner.
    pub pid: u32,
    /// Serena version.
    pub version: String,
    /// `"serve"` for a long-running Serena, `"local"` when this process opened the store.
    pub owner: String,
    /// The store directory.
    pub store_dir: PathBuf,
    /// When the owner opened the store, unix milliseconds.
    pub started_unix_ms: u64,
    /// Requests answered since then.
    pub requests: u64,
    /// What the store holds.
    pub counts: StoreCounts,
}

/// The power profile in force, as `listen` applies it between utterances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerInForce {
    /// The profile.
    pub profile: crate::power::Profile,
    /// What it sets.
    pub settings: crate::power::ProfileSettings,
    /// The power source, described.
    pub source: String,
    /// Who pinned the profile (`config` or `voice`), when someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<String>,
    /// The last change of the automatic profile (battery or mains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<crate::power::now::StoredChange>,
}

/// A count of removed things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// How many.
    pub removed: usize,
}

/// One list in `lists_overview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    /// Its name.
    pub name: String,
    /// Items in it.
    pub items: usize,
    /// Items not yet done.
    pub open: usize,
}

/// `lists_show`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListView {
    /// The list's (canonical) name.
    pub name: String,
    /// Its items, in the order they were added.
    pub items: Vec<crate::store::ListItem>,
}

/// `backup`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// Where the archive was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Records in it.
    pub records: u64,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Schema version of the data in it.
    pub schema_version: u32,
    /// Creation time, unix milliseconds.
    pub created_unix_ms: u64,
}

/// `settings_list`'s result.
pub type Settings = BTreeMap<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_envelope_errors_are_specific() {
        let line = serde_json::to_vec(&RequestLine {
            v: PROTOCOL_VERSION,
            id: Some(4),
            request: &Request::NotesAdd {
                text: "milk".into(),
            },
        })
        .expect("encode");
        assert_eq!(
            std::str::from_utf8(&line).expect("utf8"),
            r#"{"v":1,"id":4,"op":"notes_add","text":"milk"}"#
        );
        let (id, req) = parse_request(&line).expect("parse");
        assert_eq!(id, Some(4));
        assert!(matches!(req, Request::NotesAdd { text } if text == "milk"));

        let err = |line: &str| parse_request(line.as_bytes()).expect_err("should fail");
        assert_eq!(err("garbage").error.expect("e").code, ErrorCode::BadRequest);
        assert_eq!(err("[1]").error.expect("e").code, ErrorCode::BadRequest);
        assert_eq!(
            err(r#"{"op":"ping"}"#).error.expect("e").code,
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            err(r#"{"v":2,"op":"ping"}"#).error.expect("e").code,
            ErrorCode::UnsupportedVersion
        );
        let unknown = err(r#"{"v":1,"id":9,"op":"launch_rockets"}"#);
        assert_eq!(unknown.id, Some(9));
        assert_eq!(unknown.error.expect("e").code, ErrorCode::BadRequest);
        assert!(parse_request(br#"{"v":1,"op":"notes_add"}"#).is_err());
    }

    #[test]
    fn passphrases_are_not_printed() {
        let r = Request::Backup {
            path: "/x".into(),
            passphrase: Some(Passphrase::new("hunter2".into())),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_error_codes_decode() {
        let r: Response = serde_json::from_str(
            r#"{"v":1,"ok":false,"error":{"code":"from_the_future","message":"x"}}"#,
        )
        .expect("decode");
        assert_eq!(r.error.expect("e").code, ErrorCode::Unknown);
    }
}
