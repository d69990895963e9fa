//! Record types stored in the tables, and their on-disk encoding.
//!
//! # Value encoding
//!
//! Every value starts with one version byte, followed by the record encoded
//! as JSON (serde_json): `[version][json...]`. JSON is used (rather than a
//! compact binary format) because history slots and settings are arbitrary
//! `serde_json::Value`s, which non-self-describing formats cannot decode.
//! A record type whose layout changes gets a new version byte; the decoder
//! of a table accepts every version it knows and a migration may rewrite old
//! ones.
//!
//! # Key encoding
//!
//! Integers in keys are big-endian so that sled's byte order is numeric
//! order: `history`, `notes`, `timers` are keyed by their `u64` id,
//! `metrics` by `time_ms ++ seq`, `lists` by `list_key ++ 0x00` (the list
//! header) and `list_key ++ 0x00 ++ item_id` (its items), `settings` by the
//! UTF-8 key.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// Version byte of records encoded as `[1][json]`.
pub(crate) const RECORD_V1: u8 = 1;

/// How a request reached Serena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputMode {
    /// Typed text.
    Text,
    /// Wake word + voice.
    Voice,
    /// Push-to-talk.
    Ptt,
    /// Audio file.
    File,
    /// Local API.
    Api,
}

/// Which component produced the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplySource {
    /// The intent router.
    Router,
    /// An online service.
    Online,
    /// The local LLM.
    Llm,
    /// The fallback reply.
    Fallback,
}

/// One exchange: what was said and what Serena answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Monotonic id, assigned by [`Store::append_history`](super::Store::append_history).
    pub id: u64,
    /// Wall-clock time, unix milliseconds.
    pub time_ms: u64,
    /// How the request came in.
    pub mode: InputMode,
    /// What the user said or typed.
    pub transcript: String,
    /// Recognised intent, if any.
    pub intent: Option<String>,
    /// Intent slots.
    pub slots: serde_json::Value,
    /// Serena's reply.
    pub reply: String,
    /// Who produced the reply.
    pub source: ReplySource,
    /// Per-stage timings in milliseconds (e.g. `"asr" -> 310`).
    pub timings: BTreeMap<String, u64>,
    /// Power profile in effect.
    pub power_profile: String,
}

/// A note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Monotonic id.
    pub id: u64,
    /// The note text.
    pub text: String,
    /// Creation time, unix milliseconds (for notes migrated from schema v1,
    /// which had no timestamps: the time of the migration).
    pub created_ms: u64,
}

/// Header record of a list (exists as long as the list exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    /// Display name, as first given (e.g. "Shopping").
    pub name: String,
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
}

/// An item of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItem {
    /// Monotonic id (unique across all lists).
    pub id: u64,
    /// The item text.
    pub text: String,
    /// Whether it was completed.
    pub done: bool,
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
}

/// State of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerState {
    /// Counting down.
    Running,
    /// Paused; `paused_remaining_ms` holds what is left.
    Paused,
    /// Went off.
    Fired,
    /// Cancelled by the user.
    Cancelled,
}

/// A timer, stored so that the right remaining time can be restored after a
/// restart.
///
/// Invariant: while `Running`, the deadline is `started_at_ms + duration_ms`
/// (wall clock). Resuming a paused timer moves `started_at_ms` so that this
/// stays true (see [`TimerRecord::resume`]). Wall-clock jumps while Serena is
/// down shift running timers accordingly; that is the best that can be done
/// across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    /// Id (0 when inserting: the store assigns one).
    pub id: u64,
    /// Optional name ("pasta").
    pub name: Option<String>,
    /// Total duration in milliseconds.
    pub duration_ms: u64,
    /// Wall-clock start of the (virtual) uninterrupted run, unix ms.
    pub started_at_ms: u64,
    /// Remaining time while paused.
    pub paused_remaining_ms: Option<u64>,
    /// Current state.
    pub state: TimerState,
}

impl TimerRecord {
    /// A new running timer started at `now_ms`.
    pub fn new_running(name: Option<String>, duration_ms: u64, now_ms: u64) -> Self {
        TimerRecord {
            id: 0,
            name,
            duration_ms,
            started_at_ms: now_ms,
            paused_remaining_ms: None,
            state: TimerState::Running,
        }
    }

    /// Wall-clock deadline (unix ms) of a running timer.
    pub fn deadline_ms(&self) -> u64 {
        self.started_at_ms.saturating_add(self.duration_ms)
    }

    /// Remaining time at `now_ms`: counts down while running, frozen while
    /// paused, zero once fired or cancelled.
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        match self.state {
            TimerState::Running => self.deadline_ms().saturating_sub(now_ms),
            TimerState::Paused => self.paused_remaining_ms.unwrap_or(0),
            TimerState::Fired | TimerState::Cancelled => 0,
        }
    }

    /// Pauses a running timer at `now_ms` (no-op otherwise).
    pub fn pause(&mut self, now_ms: u64) {
        if self.state == TimerState::Running {
            self.paused_remaining_ms = Some(self.remaining_ms(now_ms));
            self.state = TimerState::Paused;
        }
    }

    /// Resumes a paused timer at `now_ms` (no-op otherwise).
    pub fn resume(&mut self, now_ms: u64) {
        if self.state == TimerState::Paused {
            let remaining = self.paused_remaining_ms.take().unwrap_or(0);
            let elapsed = self.duration_ms.saturating_sub(remaining);
            self.started_at_ms = now_ms.saturating_sub(elapsed);
            self.state = TimerState::Running;
        }
    }

    /// Whether the timer still counts (running or paused).
    pub fn is_active(&self) -> bool {
        matches!(self.state, TimerState::Running | TimerState::Paused)
    }
}

/// A performance sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Wall-clock time, unix milliseconds.
    pub time_ms: u64,
    /// Pipeline stage ("asr", "llm", ...).
    pub stage: String,
    /// Wall latency in milliseconds.
    pub latency_ms: u64,
    /// CPU time in milliseconds.
    pub cpu_ms: u64,
    /// Peak resident set size in bytes.
    pub peak_rss_bytes: u64,
    /// Power profile in effect.
    pub profile: String,
}

/// Encodes a record as `[RECORD_V1][json]`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_V1);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::InvalidInput(format!("cannot encode record: {e}")))?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::CorruptRecord {
                table,
                detail: format!("undecodable v1 record: {e}"),
            })
        }
        Some((v, _)) => Err(StoreError::CorruptRecord {
            table,
            detail: format!("unknown record version {v}"),
        }),
        None => Err(StoreError::CorruptRecord {
            table,
            detail: "empty value".into(),
        }),
    }
}

/// The fields of a [`HistoryEntry`] that search filters on, borrowed from
/// the stored bytes where possible (no allocation unless JSON escapes).
#[derive(Deserialize)]
pub(crate) struct HistoryProbe<'a> {
    pub(crate) time_ms: u64,
    #[serde(borrow)]
    pub(crate) transcript: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) reply: Cow<'a, str>,
}

/// Like [`decode`], for types that borrow from `bytes`.
pub(crate) fn decode_borrowed<'a, T: Deserialize<'a>>(
    table: &'static str,
    bytes: &'a [u8],
) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::CorruptRecord {
                table,
                detail: format!("undecodable v1 record: {e}"),
            })
        }
        _ => Err(StoreError::CorruptRecord {
            table,
            detail: "unknown record version or empty value".into(),
        }),
    }
}

/// Big-endian `u64` key.
pub(crate) fn u64_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Reads a big-endian `u64` key.
pub(crate) fn key_u64(table: &'static str, key: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = key.try_into().map_err(|_| StoreError::CorruptRecord {
        table,
        detail: format!("key of {} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Metrics key: `time_ms ++ seq`, both big-endian.
pub(crate) fn metric_key(time_ms: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time_ms.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Normalised key of a list name: trimmed and lower-cased. Fails on names
/// that are empty or contain NUL.
pub(crate) fn list_key(name: &str) -> Result<Vec<u8>> {
    let norm = name.trim().to_lowercase();
    if norm.is_empty() || norm.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "invalid list name {name:?}"
        )));
    }
    Ok(norm.into_bytes())
}

/// Key of a list header: `list_key ++ 0x00`.
pub(crate) fn list_header_key(list_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(list_key.len() + 1);
    k.extend_from_slice(list_key);
    k.push(0);
    k
}

/// Key of a list item: `list_key ++ 0x00 ++ id`.
pub(crate) fn list_item_key(list_key: &[u8], id: u64) -> Vec<u8> {
    let mut k = list_header_key(list_key);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Splits a `lists` key into (list key, item id); item id is `None` for a
/// header.
pub(crate) fn split_list_key(key: &[u8]) -> Result<(&[u8], Option<u64>)> {
    let corrupt = || StoreError::CorruptRecord {
        table: "lists",
        detail: "malformed list key".into(),
    };
    let nul = key.iter().position(|&b| b == 0).ok_or_else(corrupt)?;
    let (name, rest) = key.split_at(nul);
    match rest.len() {
        1 => Ok((name, None)),
        9 => Ok((name, Some(key_u64("lists", &rest[1..])?))),
        _ => Err(corrupt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_pause_resume_keeps_remaining() {
        let mut t = TimerRecord::new_running(None, 60_000, 1_000);
        assert_eq!(t.remaining_ms(11_000), 50_000);
        t.pause(11_000);
        assert_eq!(t.remaining_ms(500_000), 50_000);
        t.resume(600_000);
        assert_eq!(t.remaining_ms(600_000), 50_000);
        assert_eq!(t.remaining_ms(640_000), 10_000);
        assert_eq!(t.deadline_ms(), 650_000);
    }

    #[test]
    fn decode_rejects_unknown_version_and_garbage() {
        assert!(decode::<Note>("notes", &[]).is_err());
        assert!(decode::<Note>("notes", &[9, b'{', b'}']).is_err());
        assert!(decode::<Note>("notes", &[1, b'x']).is_err());
        let n = Note {
            id: 3,
            text: "hi".into(),
            created_ms: 5,
        };
        let bytes = encode(&n).expect("encode");
        assert_eq!(decode::<Note>("notes", &bytes).expect("decode"), n);
    }

    #[test]
    fn list_keys_round_trip() {
        let lk = list_key("  Shopping ").expect("key");
        assert_eq!(lk, b"shopping");
        assert_eq!(
            split_list_key(&list_header_key(&lk)).expect("h"),
            (&b"shopping"[..], None)
        );
        assert_eq!(
            split_list_key(&list_item_key(&lk, 7)).expect("i"),
            (&b"shopping"[..], Some(7))
        );
        assert!(list_key("  ").is_err());
        assert!(list_key("a\0b").is_err());
    }
}
