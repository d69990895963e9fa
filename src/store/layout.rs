//! Files and directories of a store directory, the directory lock, and the
//! crash-safe directory swap used by restore and undo.
//!
//! See the `# Layout` section of the [module docs](super) for the picture.
//!
//! # Swap protocol
//!
//! `db.new` is only ever made live after it is complete and flushed:
//!
//! 1. (restore) build and flush `db.new`, remove an old `db.undo`;
//!    (undo) check `db.undo` exists.
//! 2. write the `SWAP` marker (temp file + fsync + rename + fsync dir).
//! 3. (undo only) rename `db.undo` -> `db.new`.
//! 4. rename `db` -> `db.undo`.
//! 5. rename `db.new` -> `db`.
//! 6. remove the marker.
//!
//! Each rename is atomic and followed by an fsync of the directory.
//! [`recover`] runs under the lock before every open / restore / undo:
//! with a marker present it finishes steps 4-6 (whatever of them is left);
//! without a marker a `db.new` can only be a half-built staging copy and is
//! deleted. Either way the live `db` holds the complete old data or the
//! complete new data, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fs2::FileExt;

use super::error::{Result, StoreError};

/// Live sled database directory.
pub(crate) const DB_DIR: &str = "db";
/// Staging directory of a restore / undo in progress.
pub(crate) const NEW_DIR: &str = "db.new";
/// Data replaced by the last restore, kept for undo.
pub(crate) const UNDO_DIR: &str = "db.undo";
/// Marker: `db.new` is complete, the swap must be finished.
pub(crate) const SWAP_MARKER: &str = "SWAP";
/// Advisory lock file.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds the exclusive advisory lock on a store directory until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Creates `dir` (mode 0700) if needed and takes the exclusive lock on
/// `dir/LOCK`. Returns `Locked` if another process, or another open store in
/// this process, holds it.
pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock> {
    create_private_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(&path).map_err(|e| StoreError::io(&path, e))?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
        {
            Err(StoreError::Locked {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

/// Creates a directory (and parents) readable by the user only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    set_mode(dir, 0o700)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| StoreError::io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Makes every file under `path` 0600 and every directory 0700 (Unix).
/// sled creates its files with the process umask; the store directory
/// itself is already 0700, this tightens the files too.
pub(crate) fn restrict_tree(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| StoreError::io(path, e))?;
    if meta.is_dir() {
        set_mode(path, 0o700)?;
        for entry in fs::read_dir(path).map_err(|e| StoreError::io(path, e))? {
            let entry = entry.map_err(|e| StoreError::io(path, e))?;
            restrict_tree(&entry.path())?;
        }
        Ok(())
    } else if meta.is_file() {
        set_mode(path, 0o600)
    } else {
        Ok(())
    }
}

/// fsyncs a directory so that renames / creations in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temp file next to it (mode 0600)
/// is written, fsynced and renamed over `path`, then the directory is
/// fsynced. A crash leaves either the old file or the new one (and possibly
/// a stray `*.tmp`), never a partial file under `path`.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| StoreError::InvalidInput(format!("not a file path: {}", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".{}-{seq}.tmp", std::process::id()));
    let tmp = parent.join(tmp_name);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
        fsync_dir(&parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn rename(dir: &Path, from: &str, to: &str) -> Result<()> {
    let (a, b) = (dir.join(from), dir.join(to));
    fs::rename(&a, &b).map_err(|e| StoreError::io(&a, e))?;
    fsync_dir(dir)
}

fn remove_dir(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(name);
    match fs::remove_dir_all(&p) {
        Ok(()) => fsync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&p, e)),
    }
}

/// Removes a leftover staging directory (call under the lock, after
/// [`recover`]).
pub(crate) fn remove_staging(dir: &Path) -> Result<()> {
    remove_dir(dir, NEW_DIR)
}

/// Finishes an interrupted swap or discards a half-built staging copy.
/// Must be called with the directory locked.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    if dir.join(SWAP_MARKER).exists() {
        tracing::warn!(dir = %dir.display(), "finishing an interrupted restore/undo");
        finish_swap(dir)
    } else if dir.join(NEW_DIR).exists() {
        tracing::warn!(dir = %dir.display(), "discarding an unfinished restore staging copy");
        remove_dir(dir, NEW_DIR)
    } else {
        Ok(())
    }
}

/// Makes the complete, flushed `db.new` live; the current `db` becomes
/// `db.undo` (replacing an older one).
pub(crate) fn install_new(dir: &Path) -> Result<()> {
    remove_dir(dir, UNDO_DIR)?;
    write_file_atomic(&dir.join(SWAP_MARKER), b"swap\n")?;
    finish_swap(dir)
}

/// Swaps `db.undo` and `db`. Returns `NothingToUndo` if there is no
/// `db.undo`.
pub(crate) fn install_undo(dir: &Path) -> Result<()> {
    if !dir.join(UNDO_DIR).is_dir() {
        return Err(StoreError::NothingToUndo);
    }
    write_file_atomic(&dir.join(SWAP_MARKER), b"swap\n")?;
    rename(dir, UNDO_DIR, NEW_DIR)?;
    finish_swap(dir)
}

fn finish_swap(dir: &Path) -> Result<()> {
    if dir.join(NEW_DIR).exists() {
        if dir.join(DB_DIR).exists() {
            // Cannot normally exist here (removed before the marker, or
            // renamed to db.new); be defensive rather than fail the rename.
            remove_dir(dir, UNDO_DIR)?;
            rename(dir, DB_DIR, UNDO_DIR)?;
        }
        rename(dir, NEW_DIR, DB_DIR)?;
    }
    let marker = dir.join(SWAP_MARKER);
    match fs::remove_file(&marker) {
        Ok(()) => fsync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&marker, e)),
    }
}
