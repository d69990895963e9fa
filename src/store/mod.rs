//! Serena's embedded store: history, notes, lists, timers, settings and
//! metrics in one [sled] database, with versioned records, migrations,
//! backups and crash-safe restore.
//!
//! # Layout
//!
//! The caller passes a directory (normally the platform data dir). It is
//! created with mode 0700; files in it are made 0600 (Unix).
//!
//! ```text
//! <dir>/LOCK      advisory exclusive lock, held by an open Store or a restore
//! <dir>/db/       the live sled database
//! <dir>/db.undo/  data replaced by the last restore (for undo_restore_dir)
//! <dir>/db.new/   staging copy while a restore/undo runs (transient)
//! <dir>/SWAP      marker while db.new is being swapped in (transient)
//! ```
//!
//! Inside `db/` every table is one sled tree:
//!
//! | tree       | key (big-endian)              | value                    |
//! |------------|-------------------------------|--------------------------|
//! | `history`  | id `u64`                      | [`HistoryEntry`]         |
//! | `notes`    | id `u64`                      | [`Note`]                 |
//! | `lists`    | name `0x00` / name `0x00` id  | [`ListInfo`] / [`ListItem`] |
//! | `timers`   | id `u64`                      | [`TimerRecord`]          |
//! | `settings` | UTF-8 key                     | JSON value               |
//! | `metrics`  | time_ms `u64` ++ seq `u64`    | [`MetricSample`]         |
//! | `meta`     | `schema_version`, `next_id/<table>` | `u32` / `u64` BE   |
//!
//! Values start with a version byte (see [`records`]). `meta/schema_version`
//! is the schema of the whole store; [`migrations`] upgrades older stores
//! once, at open.
//!
//! # Durability
//!
//! Writes the user is told about return only after [`Store::flush`]:
//! notes (add / remove / clear), list changes, timer insert / update /
//! remove, settings, history clearing and pruning, and restore / undo (which
//! fsync everything and the directory).
//!
//! History appends and metric samples are *batched*: they are in the
//! database as soon as the call returns (visible to reads and backups) and
//! reach the disk with sled's background flush (every 500 ms), at the latest
//! after [`StoreOptions::batch_flush_every`] batched writes (the call that
//! reaches it flushes), or at [`Store::flush`] / [`Store::close`] / drop. A
//! crash can lose at most the last ~500 ms of them.
//!
//! # Concurrency
//!
//! `Store` is `Send + Sync`; share it with `Arc`. Only one `Store` per
//! directory can exist at a time, across processes and within one: a second
//! [`Store::open`] returns [`StoreError::Locked`]. [`Store::backup`] takes a
//! consistent snapshot of all tables by briefly holding out writers while it
//! copies the data into memory (reads go on); encoding, encryption and the
//! file write happen after writers are let in again.
//!
//! # Backup and restore
//!
//! See `backup.rs` for the archive format. Restore works on a *closed* store
//! directory ([`restore_dir`], [`undo_restore_dir`]); [`Store::restore`]
//! wraps close + restore + reopen.

mod backup;
mod error;
mod layout;
pub mod migrations;
pub mod records;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backup::{
    read_archive_info, restore_dir, undo_restore_dir, ArchiveInfo, BackupInfo, BackupOptions,
    KdfParams, RestoreInfo, ARCHIVE_FORMAT_VERSION, ARCHIVE_MAGIC,
};
pub use error::{Result, StoreError, StoreErrorKind};
pub use migrations::CURRENT_SCHEMA;
pub use records::{
    HistoryEntry, InputMode, ListInfo, ListItem, MetricSample, Note, ReplySource, TimerRecord,
    TimerState,
};
pub use tables::{spawn_maintenance, MaintenanceReport, RetentionPolicy, StoreStats};

use layout::DirLock;
use tables::{IdCounters, Tables};

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Flush after this many batched writes (history appends, metric
    /// samples). Default 256. sled also flushes in the background every
    /// 500 ms.
    pub batch_flush_every: u64,
    /// sled page cache size in bytes. Default 64 MiB.
    pub cache_capacity: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            batch_flush_every: 256,
            cache_capacity: 64 * 1024 * 1024,
        }
    }
}

/// An open store. See the [module docs](self).
pub struct Store {
    db: sled::Db,
    t: Tables,
    ids: IdCounters,
    /// Writers take it shared, `backup` exclusive: gives backups a snapshot
    /// that is consistent across trees.
    gate: RwLock<()>,
    unflushed: AtomicU64,
    opts: StoreOptions,
    dir: PathBuf,
    migrated_from: Option<u32>,
    // Declared last so that it is released after the database is closed.
    _lock: DirLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    ///
    /// Finishes an interrupted restore if one is pending, then runs pending
    /// migrations.
    ///
    /// # Errors
    /// - [`StoreError::Locked`] if another process (or another `Store` in
    ///   this process) has the store open;
    /// - [`StoreError::SchemaTooNew`] if the store was written by a newer
    ///   Serena; [`StoreError::Migration`] if a migration failed (the store
    ///   is left at the last good version);
    /// - [`StoreError::Io`] / [`StoreError::Db`] / [`StoreError::CorruptRecord`]
    ///   for file system or database failures.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with explicit options. Same errors.
    pub fn open_with(dir: &Path, opts: StoreOptions) -> Result<Store> {
        let lock = layout::lock_dir(dir)?;
        layout::recover(dir)?;
        let db_path = dir.join(layout::DB_DIR);
        let db = open_sled_after_own_close(&db_path, opts.cache_capacity)?;
        layout::restrict_tree(&db_path)?;
        let t = Tables::open(&db)?;
        let migrated_from = migrations::migrate(&db)?;
        let ids = IdCounters::load(&t)?;
        tracing::debug!(dir = %dir.display(), schema = CURRENT_SCHEMA, ?migrated_from, "store opened");
        Ok(Store {
            db,
            t,
            ids,
            gate: RwLock::new(()),
            unflushed: AtomicU64::new(0),
            opts,
            dir: dir.to_path_buf(),
            migrated_from,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Schema version the store had before migrations ran at this open, if
    /// any ran.
    pub fn migrated_from(&self) -> Option<u32> {
        self.migrated_from
    }

    /// Writes everything to disk (fsync).
    ///
    /// # Errors
    /// [`StoreError::Io`] / [`StoreError::Db`] if sled cannot write.
    pub fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map_err(|e| StoreError::from_sled(e, &self.dir))?;
        self.unflushed.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes and closes the store, releasing the directory lock.
    ///
    /// # Errors
    /// As [`Store::flush`]; the store is closed either way.
    pub fn close(self) -> Result<()> {
        self.flush()
        // Drop closes sled, then releases the lock.
    }

    /// Closes this store, restores `archive` into its directory with
    /// [`restore_dir`] and reopens it. Returns the restore result and the
    /// reopened store: after a failed restore the store is reopened with its
    /// data unchanged.
    ///
    /// ```text
    /// let (restored, store) = store.restore(&archive, Some(pass));
    /// let store = store?;      // reopening failed (e.g. disk error)
    /// let info = restored?;    // the archive was refused
    /// ```
    ///
    /// # Errors
    /// First element: the errors of [`restore_dir`] (or of the flush at
    /// close). Second element: the errors of [`Store::open`].
    pub fn restore(
        self,
        archive: &Path,
        passphrase: Option<&str>,
    ) -> (Result<RestoreInfo>, Result<Store>) {
        let dir = self.dir.clone();
        let opts = self.opts.clone();
        let restored = self
            .close()
            .and_then(|()| restore_dir(&dir, archive, passphrase));
        (restored, Store::open_with(&dir, opts))
    }

    /// Takes the write gate shared (normal writes).
    fn write_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the write gate exclusively (snapshot for backup).
    fn snapshot_guard(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes now (acknowledged writes).
    fn ack(&self) -> Result<()> {
        self.flush()
    }

    /// Counts a batched write; flushes when the batch is full.
    fn batched(&self) -> Result<()> {
        let n = self.unflushed.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.opts.batch_flush_every.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    fn sled_err(&self, e: sled::Error) -> StoreError {
        StoreError::from_sled(e, &self.dir)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "flushing the store at close failed");
        }
    }
}

/// Open sled while holding our own `LOCK`. No other process can then have the database,
/// so a sled lock failure can only be this process's previous handle, whose background
/// flusher thread lets go within its flush interval (500 ms) after the last `Store` is
/// dropped. Retry for a bounded time instead of failing a close-then-reopen (restore,
/// tests) on that race.
fn open_sled_after_own_close(path: &Path, cache_capacity: u64) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match open_sled(path, cache_capacity) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub(crate) fn open_sled(path: &Path, cache_capacity: u64) -> Result<sled::Db> {
    let dir = path.parent().unwrap_or(path);
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        .flush_every_ms(Some(500))
        .open()
        .map_err(|e| StoreError::from_sled(e, dir))
}

/// Current wall-clock time in unix milliseconds (0 before 1970).
pub fn now_ms() -> u64 {
    to_unix_ms(SystemTime::now())
}

/// A `SystemTime` as unix milliseconds (0 before 1970, saturating).
pub fn to_unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
