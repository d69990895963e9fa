//! Schema versions and the migrations between them.
//!
//! `meta/schema_version` (a big-endian `u32`) is the schema of the whole
//! store. [`MIGRATIONS`] is an ordered list; at open every migration whose
//! `from` is at or above the stored version runs once, in order. Each
//! migration applies its changes *and* the new schema version in one sled
//! transaction, so a crash leaves the store at either the old or the new
//! version, and a re-run after a crash starts from a consistent state.
//!
//! A fresh (empty) store is stamped with [`CURRENT_SCHEMA`] directly. A store
//! with data but no version is treated as version 1.
//!
//! # History
//!
//! - **v1**: `notes` values were the plain UTF-8 note text, without a
//!   version byte or timestamp.
//! - **v2**: every value is a versioned record (`[1][json]`, see
//!   [`records`](super::records)); notes are [`Note`] records.
//!
//! To change a record layout: bump [`CURRENT_SCHEMA`], add a migration
//! `from: CURRENT_SCHEMA - 1`, and add a test that builds a store at the old
//! version and opens it.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::error::{Result, StoreError};
use super::records::{decode, encode, Note, RECORD_V1};
use super::tables::{ALL_TABLES, META, NOTES};

/// Schema version written by this build.
pub const CURRENT_SCHEMA: u32 = 2;

/// Key of the schema version in the `meta` tree.
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";

/// One migration step `from -> from + 1`.
pub struct Migration {
    /// Schema version this step starts from.
    pub from: u32,
    /// What it changes.
    pub description: &'static str,
    run: fn(&sled::Db, u32) -> Result<()>,
}

/// All migrations, ordered by `from`.
pub const MIGRATIONS: &[Migration] = &[Migration {
    from: 1,
    description: "notes: plain UTF-8 text -> versioned Note records with id and timestamp",
    run: v1_to_v2,
}];

/// The schema version stored in `db`, if any.
pub(crate) fn schema_version(meta: &sled::Tree) -> Result<Option<u32>> {
    match meta.get(SCHEMA_KEY)? {
        None => Ok(None),
        Some(v) => {
            let b: [u8; 4] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::CorruptRecord {
                    table: META,
                    detail: "schema_version is not 4 bytes".into(),
                })?;
            Ok(Some(u32::from_be_bytes(b)))
        }
    }
}

fn is_empty(db: &sled::Db) -> Result<bool> {
    for name in ALL_TABLES {
        if !db.open_tree(name)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Brings `db` to [`CURRENT_SCHEMA`]. Returns the version it started from if
/// any migration ran.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] if the stored version is newer than ours;
/// [`StoreError::Migration`] if a step fails (earlier steps stay applied);
/// database errors.
pub(crate) fn migrate(db: &sled::Db) -> Result<Option<u32>> {
    let meta = db.open_tree(META)?;
    let start = match schema_version(&meta)? {
        Some(v) => v,
        None if is_empty(db)? => {
            meta.insert(SCHEMA_KEY, &CURRENT_SCHEMA.to_be_bytes())?;
            db.flush()?;
            return Ok(None);
        }
        None => 1,
    };
    if start > CURRENT_SCHEMA {
        return Err(StoreError::SchemaTooNew {
            found: start,
            supported: CURRENT_SCHEMA,
        });
    }
    if start == CURRENT_SCHEMA {
        return Ok(None);
    }
    let mut version = start;
    for m in MIGRATIONS.iter().filter(|m| m.from >= start) {
        if m.from != version {
            return Err(StoreError::Migration {
                from: version,
                to: version + 1,
                detail: format!("no migration from schema {version}"),
            });
        }
        tracing::info!(
            from = m.from,
            to = m.from + 1,
            what = m.description,
            "migrating store"
        );
        (m.run)(db, m.from).map_err(|e| match e {
            e @ StoreError::Migration { .. } => e,
            other => StoreError::Migration {
                from: m.from,
                to: m.from + 1,
                detail: other.to_string(),
            },
        })?;
        db.flush()?;
        version = m.from + 1;
    }
    if version != CURRENT_SCHEMA {
        return Err(StoreError::Migration {
            from: version,
            to: CURRENT_SCHEMA,
            detail: "migration list does not reach the current schema".into(),
        });
    }
    Ok(Some(start))
}

/// v1 -> v2: notes become versioned [`Note`] records. Already converted
/// values (a valid v2 record) are left as they are, so the step is also
/// idempotent.
fn v1_to_v2(db: &sled::Db, from: u32) -> Result<()> {
    let notes = db.open_tree(NOTES)?;
    let meta = db.open_tree(META)?;
    let now = super::now_ms();
    let mut rewrites = Vec::new();
    for kv in notes.iter() {
        let (k, v) = kv?;
        if v.first() == Some(&RECORD_V1) && decode::<Note>(NOTES, &v).is_ok() {
            continue;
        }
        let id = super::records::key_u64(NOTES, &k)?;
        let text = String::from_utf8(v.to_vec()).map_err(|_| StoreError::Migration {
            from,
            to: from + 1,
            detail: format!("note {id} is not UTF-8"),
        })?;
        let note = Note {
            id,
            text,
            created_ms: now,
        };
        rewrites.push((k, encode(&note)?));
    }
    let to = from + 1;
    (&notes, &meta)
        .transaction(|(n, m)| {
            for (k, v) in &rewrites {
                n.insert(k, v.as_slice())?;
            }
            m.insert(SCHEMA_KEY, &to.to_be_bytes())?;
            Ok::<(), ConflictableTransactionError<StoreError>>(())
        })
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::from(e),
        })
}
