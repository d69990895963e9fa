//! The typed tables and their operations on [`Store`].
//!
//! Each table is one sled tree (see the layout table in the
//! [module docs](super)). Ids are allocated from in-memory counters that are
//! initialised at open from `max(meta/next_id/<table>, last key + 1)`; the
//! counter is persisted in `meta` whenever records are deleted, so that ids
//! are never reused even when the newest record is removed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use super::error::{Result, StoreError};
use super::records::{
    decode, decode_borrowed, encode, key_u64, list_header_key, list_item_key, list_key, metric_key,
    split_list_key, u64_key, HistoryEntry, HistoryProbe, ListInfo, ListItem, MetricSample, Note,
    TimerRecord,
};
use super::{duration_ms, now_ms, to_unix_ms, Store};

pub(crate) const HISTORY: &str = "history";
pub(crate) const NOTES: &str = "notes";
pub(crate) const LISTS: &str = "lists";
pub(crate) const TIMERS: &str = "timers";
pub(crate) const SETTINGS: &str = "settings";
pub(crate) const METRICS: &str = "metrics";
pub(crate) const META: &str = "meta";

/// All trees of the store, in backup order.
pub(crate) const ALL_TABLES: [&str; 7] = [META, HISTORY, NOTES, LISTS, TIMERS, SETTINGS, METRICS];

/// Handles to the trees.
pub(crate) struct Tables {
    pub(crate) history: sled::Tree,
    pub(crate) notes: sled::Tree,
    pub(crate) lists: sled::Tree,
    pub(crate) timers: sled::Tree,
    pub(crate) settings: sled::Tree,
    pub(crate) metrics: sled::Tree,
    pub(crate) meta: sled::Tree,
}

impl Tables {
    pub(crate) fn open(db: &sled::Db) -> Result<Tables> {
        Ok(Tables {
            history: db.open_tree(HISTORY)?,
            notes: db.open_tree(NOTES)?,
            lists: db.open_tree(LISTS)?,
            timers: db.open_tree(TIMERS)?,
            settings: db.open_tree(SETTINGS)?,
            metrics: db.open_tree(METRICS)?,
            meta: db.open_tree(META)?,
        })
    }

    /// The tree called `name`, if it is one of ours.
    pub(crate) fn by_name(&self, name: &str) -> Option<&sled::Tree> {
        Some(match name {
            HISTORY => &self.history,
            NOTES => &self.notes,
            LISTS => &self.lists,
            TIMERS => &self.timers,
            SETTINGS => &self.settings,
            METRICS => &self.metrics,
            META => &self.meta,
            _ => return None,
        })
    }
}

/// Maps a table name from outside (an archive) to our `'static` name.
pub(crate) fn table_name(name: &str) -> Option<&'static str> {
    ALL_TABLES.iter().copied().find(|t| *t == name)
}

/// Decodes one record of `table` at the current schema and returns it as
/// JSON (for export).
pub(crate) fn decode_any(
    table: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<serde_json::Value> {
    decode_record(table, key, value, true).map(|v| v.unwrap_or(serde_json::Value::Null))
}

/// Checks that one record of `table` decodes at the current schema (for
/// validating restored data).
pub(crate) fn check_record(table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
    decode_record(table, key, value, false).map(|_| ())
}

fn decode_record(
    table: &'static str,
    key: &[u8],
    value: &[u8],
    want_json: bool,
) -> Result<Option<serde_json::Value>> {
    let to_json = |v: &dyn erased::Ser| -> Result<Option<serde_json::Value>> {
        if want_json {
            v.json().map(Some)
        } else {
            Ok(None)
        }
    };
    match table {
        HISTORY => {
            key_u64(table, key)?;
            to_json(&decode::<HistoryEntry>(table, value)?)
        }
        NOTES => {
            key_u64(table, key)?;
            to_json(&decode::<Note>(table, value)?)
        }
        TIMERS => {
            key_u64(table, key)?;
            to_json(&decode::<TimerRecord>(table, value)?)
        }
        LISTS => match split_list_key(key)? {
            (_, None) => to_json(&decode::<ListInfo>(table, value)?),
            (_, Some(_)) => to_json(&decode::<ListItem>(table, value)?),
        },
        SETTINGS => {
            std::str::from_utf8(key).map_err(|_| StoreError::CorruptRecord {
                table,
                detail: "setting key is not UTF-8".into(),
            })?;
            to_json(&decode::<serde_json::Value>(table, value)?)
        }
        METRICS => {
            if key.len() != 16 {
                return Err(StoreError::CorruptRecord {
                    table,
                    detail: "metric key is not 16 bytes".into(),
                });
            }
            to_json(&decode::<MetricSample>(table, value)?)
        }
        META => {
            let k = String::from_utf8_lossy(key).into_owned();
            if value.len() == 8 {
                let v = key_u64(table, value)?;
                to_json(&serde_json::json!({ "key": k, "value": v }))
            } else if value.len() == 4 {
                let mut b = [0u8; 4];
                b.copy_from_slice(value);
                to_json(&serde_json::json!({ "key": k, "value": u32::from_be_bytes(b) }))
            } else {
                Err(StoreError::CorruptRecord {
                    table,
                    detail: format!("meta value of {} bytes", value.len()),
                })
            }
        }
        _ => Err(StoreError::CorruptRecord {
            table,
            detail: "unknown table".into(),
        }),
    }
}

mod erased {
    //! Object-safe "serialise to JSON" so `decode_record` can take any record.
    use super::{Result, StoreError};

    pub(super) trait Ser {
        fn json(&self) -> Result<serde_json::Value>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> Result<serde_json::Value> {
            serde_json::to_value(self).map_err(|e| StoreError::Db(format!("json: {e}")))
        }
    }
}

/// In-memory id allocators.
pub(crate) struct IdCounters {
    history: AtomicU64,
    notes: AtomicU64,
    items: AtomicU64,
    timers: AtomicU64,
    metric_seq: AtomicU64,
}

fn next_id_key(table: &str) -> String {
    format!("next_id/{table}")
}

fn stored_next(meta: &sled::Tree, table: &str) -> Result<u64> {
    match meta.get(next_id_key(table))? {
        Some(v) => key_u64(META, &v),
        None => Ok(1),
    }
}

fn after_last(tree: &sled::Tree, table: &'static str) -> Result<u64> {
    match tree.last()? {
        Some((k, _)) => Ok(key_u64(table, &k)?.saturating_add(1)),
        None => Ok(1),
    }
}

impl IdCounters {
    pub(crate) fn load(t: &Tables) -> Result<IdCounters> {
        let mut max_item = 0u64;
        for kv in t.lists.iter() {
            let (k, _) = kv?;
            if let (_, Some(id)) = split_list_key(&k)? {
                max_item = max_item.max(id);
            }
        }
        let metric_seq = match t.metrics.last()? {
            Some((k, _)) if k.len() == 16 => key_u64(METRICS, &k[8..])?.wrapping_add(1),
            _ => 0,
        };
        Ok(IdCounters {
            history: AtomicU64::new(
                stored_next(&t.meta, HISTORY)?.max(after_last(&t.history, HISTORY)?),
            ),
            notes: AtomicU64::new(stored_next(&t.meta, NOTES)?.max(after_last(&t.notes, NOTES)?)),
            items: AtomicU64::new(stored_next(&t.meta, LISTS)?.max(max_item.saturating_add(1))),
            timers: AtomicU64::new(
                stored_next(&t.meta, TIMERS)?.max(after_last(&t.timers, TIMERS)?),
            ),
            metric_seq: AtomicU64::new(metric_seq),
        })
    }

    fn counter(&self, table: &str) -> &AtomicU64 {
        match table {
            HISTORY => &self.history,
            NOTES => &self.notes,
            TIMERS => &self.timers,
            _ => &self.items,
        }
    }
}

/// Retention limits applied by [`Store::run_maintenance`].
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// History older than this is removed.
    pub history_max_age: Duration,
    /// At most this many history entries are kept (newest).
    pub history_max_count: usize,
    /// Metric samples older than this are removed.
    pub metrics_max_age: Duration,
    /// Fired / cancelled timers whose deadline is older than this are removed.
    pub finished_timers_max_age: Duration,
}

impl Default for RetentionPolicy {
    /// 90 days / 100 000 entries of history, 30 days of metrics, finished
    /// timers after 1 day.
    fn default() -> Self {
        RetentionPolicy {
            history_max_age: Duration::from_secs(90 * 24 * 3600),
            history_max_count: 100_000,
            metrics_max_age: Duration::from_secs(30 * 24 * 3600),
            finished_timers_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What [`Store::run_maintenance`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// History entries removed.
    pub history_removed: usize,
    /// Metric samples removed.
    pub metrics_removed: usize,
    /// Finished timers removed.
    pub timers_removed: usize,
}

/// Record counts and size, from [`Store::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// History entries.
    pub history: usize,
    /// Notes.
    pub notes: usize,
    /// Lists.
    pub lists: usize,
    /// List items (all lists).
    pub list_items: usize,
    /// Timers (all states).
    pub timers: usize,
    /// Settings.
    pub settings: usize,
    /// Metric samples.
    pub metrics: usize,
    /// sled's size on disk, bytes.
    pub size_on_disk: u64,
}

fn ci_contains(haystack: &str, needle_lower: &str) -> bool {
    if haystack.is_ascii() && needle_lower.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle_lower.as_bytes());
        n.is_empty()
            || h.windows(n.len())
                .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
    } else {
        haystack.to_lowercase().contains(needle_lower)
    }
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn non_empty(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        Err(StoreError::InvalidInput(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

const CAS_RETRIES: usize = 16;

impl Store {
    fn alloc_id(&self, table: &str) -> u64 {
        self.ids.counter(table).fetch_add(1, Ordering::Relaxed)
    }

    /// Persists the id counter of `table` so ids stay unique after deletes.
    fn persist_next_id(&self, table: &str) -> Result<()> {
        let next = self.ids.counter(table).load(Ordering::Relaxed);
        // Keep the maximum: a concurrent caller may persist a stale value.
        self.t
            .meta
            .update_and_fetch(next_id_key(table), |old| {
                let old = old
                    .and_then(|o| <[u8; 8]>::try_from(o).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(old.max(next).to_be_bytes().to_vec())
            })
            .map_err(|e| self.sled_err(e))?;
        Ok(())
    }

    // ----------------------------------------------------------------- history

    /// Appends an exchange to the history and returns its id (the `id` field
    /// of `entry` is ignored). Batched: not flushed before returning (see
    /// the module docs).
    ///
    /// # Errors
    /// [`StoreError::Io`] / [`StoreError::Db`] if the write (or a batch
    /// flush) fails.
    pub fn append_history(&self, mut entry: HistoryEntry) -> Result<u64> {
        {
            let _g = self.write_guard();
            entry.id = self.alloc_id(HISTORY);
            self.t
                .history
                .insert(u64_key(entry.id), encode(&entry)?)
                .map_err(|e| self.sled_err(e))?;
        }
        self.batched()?;
        Ok(entry.id)
    }

    /// One history entry by id.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`] if it cannot be decoded; database errors.
    pub fn history_get(&self, id: u64) -> Result<Option<HistoryEntry>> {
        match self.t.history.get(u64_key(id))? {
            Some(v) => Ok(Some(decode(HISTORY, &v)?)),
            None => Ok(None),
        }
    }

    /// History entries, newest first, at most `limit`, optionally only
    /// those whose transcript or reply contains `text` (case-insensitive)
    /// and those at or after `since`.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`] if a scanned entry cannot be decoded;
    /// database errors.
    pub fn history_search(
        &self,
        text: Option<&str>,
        since: Option<SystemTime>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>> {
        let needle = text.map(str::to_lowercase).filter(|n| !n.is_empty());
        let since_ms = since.map(to_unix_ms);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for kv in self.t.history.iter().rev() {
            let (_, v) = kv?;
            // Filter on a borrowed partial decode; decode fully only hits.
            let p: HistoryProbe<'_> = decode_borrowed(HISTORY, &v)?;
            if since_ms.is_some_and(|s| p.time_ms < s) {
                continue;
            }
            if let Some(n) = &needle {
                if !ci_contains(&p.transcript, n) && !ci_contains(&p.reply, n) {
                    continue;
                }
            }
            out.push(decode(HISTORY, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of history entries (O(n)).
    pub fn history_len(&self) -> usize {
        self.t.history.len()
    }

    /// Removes history entries older than `max_age` and, beyond that, the
    /// oldest ones so that at most `max_count` remain. Returns how many
    /// were removed. Flushed.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`] if an entry cannot be decoded (nothing
    /// is removed then); database errors.
    pub fn prune_history(&self, max_age: Duration, max_count: usize) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(duration_ms(max_age));
        let removed = {
            let _g = self.write_guard();
            let total = self.t.history.len();
            let over = total.saturating_sub(max_count);
            let mut batch = sled::Batch::default();
            let mut removed = 0usize;
            for (i, kv) in self.t.history.iter().enumerate() {
                let (k, v) = kv?;
                let e: HistoryEntry = decode(HISTORY, &v)?;
                if i < over || e.time_ms < cutoff {
                    batch.remove(k);
                    removed += 1;
                }
            }
            if removed > 0 {
                self.persist_next_id(HISTORY)?;
                self.t
                    .history
                    .apply_batch(batch)
                    .map_err(|e| self.sled_err(e))?;
            }
            removed
        };
        if removed > 0 {
            self.ack()?;
            tracing::debug!(removed, "pruned history");
        }
        Ok(removed)
    }

    /// Deletes the whole history. Returns how many entries were removed.
    /// Flushed.
    ///
    /// # Errors
    /// Database errors.
    pub fn clear_history(&self) -> Result<usize> {
        let n = {
            let _g = self.write_guard();
            let n = self.t.history.len();
            self.persist_next_id(HISTORY)?;
            self.t.history.clear().map_err(|e| self.sled_err(e))?;
            n
        };
        self.ack()?;
        Ok(n)
    }

    // ------------------------------------------------------------------- notes

    /// Adds a note; returns only after it is flushed to disk.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for empty text; I/O / database errors.
    pub fn add_note(&self, text: &str) -> Result<Note> {
        non_empty("note", text)?;
        let note = {
            let _g = self.write_guard();
            let note = Note {
                id: self.alloc_id(NOTES),
                text: text.to_string(),
                created_ms: now_ms(),
            };
            self.t
                .notes
                .insert(u64_key(note.id), encode(&note)?)
                .map_err(|e| self.sled_err(e))?;
            note
        };
        self.ack()?;
        Ok(note)
    }

    /// All notes, oldest first.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn notes(&self) -> Result<Vec<Note>> {
        self.t
            .notes
            .iter()
            .map(|kv| decode(NOTES, &kv?.1))
            .collect()
    }

    /// Removes the note `id`; returns it if it existed. Flushed.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; I/O / database errors.
    pub fn remove_note(&self, id: u64) -> Result<Option<Note>> {
        let old = {
            let _g = self.write_guard();
            self.persist_next_id(NOTES)?;
            self.t
                .notes
                .remove(u64_key(id))
                .map_err(|e| self.sled_err(e))?
        };
        self.ack()?;
        old.map(|v| decode(NOTES, &v)).transpose()
    }

    /// Removes every note whose text contains `text` (case-insensitive);
    /// returns the removed notes. Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for empty text; [`StoreError::CorruptRecord`];
    /// I/O / database errors.
    pub fn remove_notes_matching(&self, text: &str) -> Result<Vec<Note>> {
        non_empty("search text", text)?;
        let needle = text.trim().to_lowercase();
        let removed = {
            let _g = self.write_guard();
            let hits: Vec<Note> = self
                .notes()?
                .into_iter()
                .filter(|n| ci_contains(&n.text, &needle))
                .collect();
            if !hits.is_empty() {
                self.persist_next_id(NOTES)?;
                let mut batch = sled::Batch::default();
                for n in &hits {
                    batch.remove(&u64_key(n.id));
                }
                self.t
                    .notes
                    .apply_batch(batch)
                    .map_err(|e| self.sled_err(e))?;
            }
            hits
        };
        self.ack()?;
        Ok(removed)
    }

    /// Forgets all notes; returns how many there were. Flushed.
    ///
    /// # Errors
    /// I/O / database errors.
    pub fn clear_notes(&self) -> Result<usize> {
        let n = {
            let _g = self.write_guard();
            let n = self.t.notes.len();
            self.persist_next_id(NOTES)?;
            self.t.notes.clear().map_err(|e| self.sled_err(e))?;
            n
        };
        self.ack()?;
        Ok(n)
    }

    // ------------------------------------------------------------------- lists

    fn ensure_list(&self, lk: &[u8], name: &str) -> Result<ListInfo> {
        let hk = list_header_key(lk);
        if let Some(v) = self.t.lists.get(&hk)? {
            return decode(LISTS, &v);
        }
        let info = ListInfo {
            name: name.trim().to_string(),
            created_ms: now_ms(),
        };
        match self
            .t
            .lists
            .compare_and_swap(&hk, None as Option<&[u8]>, Some(encode(&info)?))
            .map_err(|e| self.sled_err(e))?
        {
            Ok(()) => Ok(info),
            Err(cas) => match cas.current {
                Some(v) => decode(LISTS, &v),
                None => Ok(info),
            },
        }
    }

    /// Creates the list `name` if it does not exist (names compare
    /// case-insensitively); returns it. Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty name or one containing NUL;
    /// I/O / database errors.
    pub fn create_list(&self, name: &str) -> Result<ListInfo> {
        let lk = list_key(name)?;
        let info = {
            let _g = self.write_guard();
            self.ensure_list(&lk, name)?
        };
        self.ack()?;
        Ok(info)
    }

    /// Adds an item to the list `list` (created if needed). Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid list name or empty text;
    /// I/O / database errors.
    pub fn add_list_item(&self, list: &str, text: &str) -> Result<ListItem> {
        let lk = list_key(list)?;
        non_empty("list item", text)?;
        let item = {
            let _g = self.write_guard();
            self.ensure_list(&lk, list)?;
            let item = ListItem {
                id: self.alloc_id(LISTS),
                text: text.trim().to_string(),
                done: false,
                created_ms: now_ms(),
            };
            self.t
                .lists
                .insert(list_item_key(&lk, item.id), encode(&item)?)
                .map_err(|e| self.sled_err(e))?;
            item
        };
        self.ack()?;
        Ok(item)
    }

    /// Items of the list `list` in insertion order (empty if the list does
    /// not exist).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid name; [`StoreError::CorruptRecord`];
    /// database errors.
    pub fn list_items(&self, list: &str) -> Result<Vec<ListItem>> {
        let hk = list_header_key(&list_key(list)?);
        let mut out = Vec::new();
        for kv in self.t.lists.scan_prefix(&hk) {
            let (k, v) = kv?;
            if k.len() > hk.len() {
                out.push(decode(LISTS, &v)?);
            }
        }
        Ok(out)
    }

    /// All lists (headers), ordered by normalised name.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn list_names(&self) -> Result<Vec<ListInfo>> {
        let mut out = Vec::new();
        for kv in self.t.lists.iter() {
            let (k, v) = kv?;
            if let (_, None) = split_list_key(&k)? {
                out.push(decode(LISTS, &v)?);
            }
        }
        Ok(out)
    }

    /// Finds the item to act on: the first (not done, if `open_only`) item
    /// whose text equals `text` case-insensitively, else the only such item
    /// containing it.
    fn find_item(
        &self,
        lk: &[u8],
        text: &str,
        open_only: bool,
    ) -> Result<Option<(sled::IVec, sled::IVec, ListItem)>> {
        let hk = list_header_key(lk);
        let needle = text.trim().to_lowercase();
        let mut exact = None;
        let mut partial = Vec::new();
        for kv in self.t.lists.scan_prefix(&hk) {
            let (k, v) = kv?;
            if k.len() == hk.len() {
                continue;
            }
            let item: ListItem = decode(LISTS, &v)?;
            if open_only && item.done {
                continue;
            }
            if same_text(&item.text, text) {
                exact = Some((k, v, item));
                break;
            }
            if ci_contains(&item.text, &needle) {
                partial.push((k, v, item));
            }
        }
        Ok(exact.or_else(|| {
            if partial.len() == 1 {
                partial.pop()
            } else {
                None
            }
        }))
    }

    /// Marks the item matching `text` in `list` done (exact case-insensitive
    /// match among open items first, else the only open item containing
    /// `text`). Returns the updated item, or `None` if nothing matched.
    /// Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid name or empty text;
    /// [`StoreError::CorruptRecord`]; I/O / database errors.
    pub fn complete_list_item(&self, list: &str, text: &str) -> Result<Option<ListItem>> {
        let lk = list_key(list)?;
        non_empty("item text", text)?;
        let done = {
            let _g = self.write_guard();
            let mut result = None;
            for _ in 0..CAS_RETRIES {
                let Some((k, old, mut item)) = self.find_item(&lk, text, true)? else {
                    break;
                };
                item.done = true;
                let swapped = self
                    .t
                    .lists
                    .compare_and_swap(&k, Some(&old), Some(encode(&item)?))
                    .map_err(|e| self.sled_err(e))?;
                if swapped.is_ok() {
                    result = Some(item);
                    break;
                }
            }
            result
        };
        if done.is_some() {
            self.ack()?;
        }
        Ok(done)
    }

    /// Removes the item matching `text` from `list` (same matching as
    /// [`Store::complete_list_item`], done items included). Flushed.
    ///
    /// # Errors
    /// As [`Store::complete_list_item`].
    pub fn remove_list_item(&self, list: &str, text: &str) -> Result<Option<ListItem>> {
        let lk = list_key(list)?;
        non_empty("item text", text)?;
        let removed = {
            let _g = self.write_guard();
            let mut result = None;
            for _ in 0..CAS_RETRIES {
                let Some((k, old, item)) = self.find_item(&lk, text, false)? else {
                    break;
                };
                self.persist_next_id(LISTS)?;
                let swapped = self
                    .t
                    .lists
                    .compare_and_swap(&k, Some(&old), None as Option<&[u8]>)
                    .map_err(|e| self.sled_err(e))?;
                if swapped.is_ok() {
                    result = Some(item);
                    break;
                }
            }
            result
        };
        if removed.is_some() {
            self.ack()?;
        }
        Ok(removed)
    }

    /// Deletes the list `list` with all its items; returns whether it
    /// existed. Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid name; I/O / database errors.
    pub fn remove_list(&self, list: &str) -> Result<bool> {
        let hk = list_header_key(&list_key(list)?);
        let existed = {
            let _g = self.write_guard();
            let mut batch = sled::Batch::default();
            let mut any = false;
            for kv in self.t.lists.scan_prefix(&hk) {
                let (k, _) = kv?;
                batch.remove(k);
                any = true;
            }
            if any {
                self.persist_next_id(LISTS)?;
                self.t
                    .lists
                    .apply_batch(batch)
                    .map_err(|e| self.sled_err(e))?;
            }
            any
        };
        if existed {
            self.ack()?;
        }
        Ok(existed)
    }

    // ------------------------------------------------------------------ timers

    /// Stores a new timer (its `id` is assigned and returned in the record).
    /// Flushed.
    ///
    /// # Errors
    /// I/O / database errors.
    pub fn insert_timer(&self, mut timer: TimerRecord) -> Result<TimerRecord> {
        {
            let _g = self.write_guard();
            timer.id = self.alloc_id(TIMERS);
            self.t
                .timers
                .insert(u64_key(timer.id), encode(&timer)?)
                .map_err(|e| self.sled_err(e))?;
        }
        self.ack()?;
        Ok(timer)
    }

    /// Replaces the stored timer with the same id (pause, resume, fire,
    /// cancel). Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] if no timer has that id; I/O / database
    /// errors.
    pub fn update_timer(&self, timer: &TimerRecord) -> Result<()> {
        {
            let _g = self.write_guard();
            let key = u64_key(timer.id);
            if !self.t.timers.contains_key(key)? {
                return Err(StoreError::InvalidInput(format!(
                    "no timer with id {}",
                    timer.id
                )));
            }
            self.t
                .timers
                .insert(key, encode(timer)?)
                .map_err(|e| self.sled_err(e))?;
        }
        self.ack()
    }

    /// The timer `id`.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn timer(&self, id: u64) -> Result<Option<TimerRecord>> {
        self.t
            .timers
            .get(u64_key(id))?
            .map(|v| decode(TIMERS, &v))
            .transpose()
    }

    /// All timers, by id.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn timers(&self) -> Result<Vec<TimerRecord>> {
        self.t
            .timers
            .iter()
            .map(|kv| decode(TIMERS, &kv?.1))
            .collect()
    }

    /// Running and paused timers, by id (what to re-arm after a restart;
    /// use [`TimerRecord::remaining_ms`]).
    ///
    /// # Errors
    /// As [`Store::timers`].
    pub fn active_timers(&self) -> Result<Vec<TimerRecord>> {
        Ok(self
            .timers()?
            .into_iter()
            .filter(|t| t.is_active())
            .collect())
    }

    /// Deletes the timer `id`; returns it if it existed. Flushed.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; I/O / database errors.
    pub fn remove_timer(&self, id: u64) -> Result<Option<TimerRecord>> {
        let old = {
            let _g = self.write_guard();
            self.persist_next_id(TIMERS)?;
            self.t
                .timers
                .remove(u64_key(id))
                .map_err(|e| self.sled_err(e))?
        };
        self.ack()?;
        old.map(|v| decode(TIMERS, &v)).transpose()
    }

    // ---------------------------------------------------------------- settings

    /// The setting `key`, if set.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        self.t
            .settings
            .get(key.as_bytes())?
            .map(|v| decode(SETTINGS, &v))
            .transpose()
    }

    /// The setting `key` deserialised as `T`.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] if the stored value is not a `T`;
    /// otherwise as [`Store::setting`].
    pub fn setting_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.setting(key)?
            .map(|v| {
                serde_json::from_value(v).map_err(|e| {
                    StoreError::InvalidInput(format!("setting {key:?} has another type: {e}"))
                })
            })
            .transpose()
    }

    /// Sets `key` to `value`. Flushed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty key; I/O / database errors.
    pub fn set_setting(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        if key.is_empty() {
            return Err(StoreError::InvalidInput("empty setting key".into()));
        }
        {
            let _g = self.write_guard();
            self.t
                .settings
                .insert(key.as_bytes(), encode(value)?)
                .map_err(|e| self.sled_err(e))?;
        }
        self.ack()
    }

    /// Removes `key`; returns whether it was set. Flushed.
    ///
    /// # Errors
    /// I/O / database errors.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        let existed = {
            let _g = self.write_guard();
            self.t
                .settings
                .remove(key.as_bytes())
                .map_err(|e| self.sled_err(e))?
                .is_some()
        };
        self.ack()?;
        Ok(existed)
    }

    /// All settings.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn settings(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut out = BTreeMap::new();
        for kv in self.t.settings.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::CorruptRecord {
                table: SETTINGS,
                detail: "setting key is not UTF-8".into(),
            })?;
            out.insert(key, decode(SETTINGS, &v)?);
        }
        Ok(out)
    }

    // ----------------------------------------------------------------- metrics

    /// Appends a metric sample. Batched (see the module docs).
    ///
    /// # Errors
    /// I/O / database errors.
    pub fn append_metric(&self, sample: &MetricSample) -> Result<()> {
        {
            let _g = self.write_guard();
            let seq = self.ids.metric_seq.fetch_add(1, Ordering::Relaxed);
            self.t
                .metrics
                .insert(metric_key(sample.time_ms, seq), encode(sample)?)
                .map_err(|e| self.sled_err(e))?;
        }
        self.batched()
    }

    /// Samples with `since <= time < until`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`]; database errors.
    pub fn metrics_range(&self, since: SystemTime, until: SystemTime) -> Result<Vec<MetricSample>> {
        let (a, b) = (to_unix_ms(since), to_unix_ms(until));
        if a >= b {
            return Ok(Vec::new());
        }
        self.t
            .metrics
            .range(metric_key(a, 0)..metric_key(b, 0))
            .map(|kv| decode(METRICS, &kv?.1))
            .collect()
    }

    /// Removes metric samples older than `max_age`; returns how many.
    ///
    /// # Errors
    /// I/O / database errors.
    pub fn prune_metrics(&self, max_age: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(duration_ms(max_age));
        let _g = self.write_guard();
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.t.metrics.range(..metric_key(cutoff, 0)) {
            batch.remove(kv?.0);
            n += 1;
        }
        if n > 0 {
            self.t
                .metrics
                .apply_batch(batch)
                .map_err(|e| self.sled_err(e))?;
        }
        Ok(n)
    }

    // ------------------------------------------------------------- maintenance

    /// Applies `policy` (history, metrics, finished timers) and flushes.
    /// Meant to be called periodically by the daemon (see
    /// [`spawn_maintenance`]).
    ///
    /// # Errors
    /// As [`Store::prune_history`].
    pub fn run_maintenance(&self, policy: &RetentionPolicy) -> Result<MaintenanceReport> {
        let history_removed =
            self.prune_history(policy.history_max_age, policy.history_max_count)?;
        let metrics_removed = self.prune_metrics(policy.metrics_max_age)?;
        let cutoff = now_ms().saturating_sub(duration_ms(policy.finished_timers_max_age));
        let mut timers_removed = 0;
        for t in self.timers()? {
            if !t.is_active() && t.deadline_ms() < cutoff {
                self.remove_timer(t.id)?;
                timers_removed += 1;
            }
        }
        self.flush()?;
        let report = MaintenanceReport {
            history_removed,
            metrics_removed,
            timers_removed,
        };
        tracing::debug!(?report, "store maintenance done");
        Ok(report)
    }

    /// Record counts and size on disk (O(n): counts every tree).
    ///
    /// # Errors
    /// [`StoreError::CorruptRecord`] for a malformed list key; database errors.
    pub fn stats(&self) -> Result<StoreStats> {
        let mut lists = 0;
        let mut list_items = 0;
        for kv in self.t.lists.iter() {
            match split_list_key(&kv?.0)? {
                (_, None) => lists += 1,
                (_, Some(_)) => list_items += 1,
            }
        }
        Ok(StoreStats {
            history: self.t.history.len(),
            notes: self.t.notes.len(),
            lists,
            list_items,
            timers: self.t.timers.len(),
            settings: self.t.settings.len(),
            metrics: self.t.metrics.len(),
            size_on_disk: self.db.size_on_disk().map_err(|e| self.sled_err(e))?,
        })
    }
}

/// Runs [`Store::run_maintenance`] every `every` on tokio's blocking pool
/// until the returned task is aborted. Errors are logged, not fatal.
pub fn spawn_maintenance(
    store: Arc<Store>,
    policy: RetentionPolicy,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (s, p) = (Arc::clone(&store), policy.clone());
            match tokio::task::spawn_blocking(move || s.run_maintenance(&p)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "store maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "store maintenance task panicked"),
            }
        }
    })
}
