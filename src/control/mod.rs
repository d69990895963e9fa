//! One owner, many commands: the control socket of a long-running Serena.
//!
//! sled lets one process open a database. While a long-running Serena (`serena serve`, later
//! the live voice pipeline and the Wyoming / HTTP servers) owns the store, every other
//! command talks to it over a Unix socket; when none runs, the command opens the store
//! itself. [`open`] decides and returns a [`Handle`] with the same methods either way, so
//! each command is written once.
//!
//! ```text
//! <data dir>/          0700, checked to belong to the user
//! <data dir>/serena.sock   0600, created by the owner, removed when it stops
//! <data dir>/store/    the store (its LOCK is what makes an owner an owner)
//! ```
//!
//! * [`Owner::claim`] (a long-running Serena): opens the store, which takes its lock (a
//!   second owner finds the lock, asks the socket for the first one's pid and fails with
//!   "another Serena (pid N) is running and owns DIR"), then binds the socket. A socket
//!   file left by a crashed owner is stale by construction (the lock was free) and removed.
//! * [`server::run`]: the owner's accept loop (tokio), JSON lines ([`protocol`]) answered by
//!   [`Service::execute`] on the blocking pool.
//! * [`Client`]: a blocking client. [`open`]: socket first, the store directly when nobody
//!   listens; a short bounded retry covers an owner that is starting or a one-shot command
//!   that holds the store for a moment.

mod client;
mod error;
pub mod protocol;
pub mod server;
mod service;
mod shutdown;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use client::{Client, DEFAULT_TIMEOUT, SLOW_TIMEOUT};
pub use error::{kind_name, ControlError};
pub use protocol::{
    BackupSummary, Count, ErrorCode, ListSummary, ListView, Passphrase, Pong, PowerInForce,
    Request, ServerStatus, Settings, StoreCounts, PROTOCOL_VERSION,
};
pub use service::{Context, Question, Role, Service};
pub use shutdown::Shutdown;

use crate::answer::{store_dir, Answer};
use crate::store::{
    HistoryEntry, InputMode, ListInfo, ListItem, Note, Store, StoreError, TimerRecord,
};

/// File name of the control socket inside the data directory.
pub const SOCKET_NAME: &str = "serena.sock";

/// How long [`open`] and [`Owner::claim`] retry while the store is locked by a process that
/// does not (yet) answer on the socket.
pub const LOCK_RETRY: Duration = Duration::from_secs(3);

/// The control socket of the data directory `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Creates `dir` if needed and makes sure only its owner, the current user, can enter it
/// (mode 0700), so that a socket inside it is private.
///
/// # Errors
/// [`ControlError::UnsafeDir`] if it belongs to another user or cannot be created or
/// restricted.
pub fn private_dir(dir: &Path) -> Result<(), ControlError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let unsafe_dir = |why: String| ControlError::UnsafeDir {
        path: dir.to_path_buf(),
        why,
    };
    fs::create_dir_all(dir).map_err(|e| unsafe_dir(format!("cannot create it: {e}")))?;
    let meta = fs::metadata(dir).map_err(|e| unsafe_dir(format!("cannot read it: {e}")))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "the data directory belongs to uid {}, not to you (uid {me})",
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| unsafe_dir(format!("cannot make it private (0700): {e}")))?;
    }
    Ok(())
}

/// Fails with [`ControlError::Running`] when a Serena answers on the data directory's
/// socket (for operations that need the store closed, like restore).
///
/// # Errors
/// [`ControlError::Running`]; [`ControlError::Socket`] if the socket cannot be probed.
pub fn ensure_not_running(data_dir: &Path, why: &'static str) -> Result<(), ControlError> {
    match Client::connect(&socket_path(&absolute(data_dir)))? {
        Some(c) => Err(ControlError::Running {
            pid: c.owner_pid(),
            dir: absolute(data_dir),
            why,
        }),
        None => Ok(()),
    }
}

/// The store, directly or through its owner. Every method is one [`Request`].
#[derive(Debug)]
pub enum Handle {
    /// This process opened the store.
    Local(Box<Service>),
    /// A running Serena owns it; requests go over its socket.
    Remote(Client),
}

/// Opens the store of `ctx.data_dir`: through the running Serena's socket if one answers,
/// else directly. While the store is locked by a process that does not answer on the socket
/// (an owner still starting, a one-shot command), retries for up to [`LOCK_RETRY`].
///
/// # Errors
/// [`ControlError::Store`] when the store cannot be opened (still locked after the retries:
/// kind `busy`); [`ControlError::Socket`] / [`ControlError::Protocol`] when a socket exists
/// but cannot be used.
pub fn open(ctx: Context) -> Result<Handle, ControlError> {
    let mut ctx = ctx;
    ctx.data_dir = absolute(&ctx.data_dir);
    let sock = socket_path(&ctx.data_dir);
    let deadline = Instant::now() + LOCK_RETRY;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(client) = Client::connect(&sock)? {
            tracing::debug!(pid = client.owner_pid(), "using the running Serena");
            return Ok(Handle::Remote(client));
        }
        match Store::open(&store_dir(&ctx.data_dir)) {
            Ok(store) => {
                return Ok(Handle::Local(Box::new(Service::new(
                    Arc::new(store),
                    ctx,
                    Role::Local,
                    None,
                ))))
            }
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Handle {
    /// Whether requests go to a running Serena.
    pub fn is_remote(&self) -> bool {
        matches!(self, Handle::Remote(_))
    }

    /// Runs `request` and decodes its result.
    ///
    /// # Errors
    /// [`ControlError`]: the store's or the owner's error.
    pub fn call<T: DeserializeOwned>(&mut self, request: Request) -> Result<T, ControlError> {
        let value = self.call_value(request)?;
        serde_json::from_value(value)
            .map_err(|e| ControlError::Invalid(format!("unexpected result: {e}")))
    }

    /// The engines, when this process answers itself (no Serena running); a running
    /// Serena manages its own.
    pub fn local_engines(&self) -> Option<&crate::answer::Engines> {
        match self {
            Handle::Local(service) => Some(service.engines()),
            Handle::Remote(_) => None,
        }
    }

    /// Runs `request` and returns its raw result.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn call_value(&mut self, request: Request) -> Result<Value, ControlError> {
        match self {
            Handle::Local(service) => service.execute(request),
            Handle::Remote(client) => client.call_value(&request),
        }
    }

    /// Who owns the store and what it holds.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn status(&mut self) -> Result<ServerStatus, ControlError> {
        self.call(Request::Status)
    }

    /// The power profile in force (read from the power source now, with the hysteresis
    /// and pins kept in the store).
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn power(&mut self) -> Result<PowerInForce, ControlError> {
        self.call(Request::Power)
    }

    /// Answers a question (recorded in the history).
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn ask(&mut self, text: &str, mode: InputMode) -> Result<Answer, ControlError> {
        self.ask_with(text, mode, false)
    }

    /// [`Handle::ask`], first forgetting the conversation when `new_conversation`.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn ask_with(
        &mut self,
        text: &str,
        mode: InputMode,
        new_conversation: bool,
    ) -> Result<Answer, ControlError> {
        self.call(Request::Ask {
            text: text.to_string(),
            mode,
            new_conversation,
            timings: std::collections::BTreeMap::new(),
        })
    }

    /// Answer a [`Question`]. In process, the reply's sentences reach
    /// `question.on_sentence` as they are generated; over the socket the reply comes whole
    /// (and the callback is not called).
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn ask_question(&mut self, question: &Question<'_>) -> Result<Answer, ControlError> {
        match self {
            Handle::Local(service) => service.answer_question(question),
            Handle::Remote(_) => self.call(Request::Ask {
                text: question.text.to_string(),
                mode: question.mode,
                new_conversation: question.new_conversation,
                timings: question.timings.clone(),
            }),
        }
    }

    /// All notes, oldest first.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn notes(&mut self) -> Result<Vec<Note>, ControlError> {
        self.call(Request::NotesList)
    }

    /// Adds a note; durable when this returns.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn add_note(&mut self, text: &str) -> Result<Note, ControlError> {
        self.call(Request::NotesAdd {
            text: text.to_string(),
        })
    }

    /// Removes note `id`.
    ///
    /// # Errors
    /// [`ControlError::NotFound`] (or a remote `not_found`) when there is none.
    pub fn remove_note(&mut self, id: u64) -> Result<Note, ControlError> {
        self.call(Request::NotesRemove { id })
    }

    /// Removes every note; returns how many there were.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn clear_notes(&mut self) -> Result<usize, ControlError> {
        Ok(self.call::<Count>(Request::NotesClear)?.removed)
    }

    /// Every list with its counts.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn lists(&mut self) -> Result<Vec<ListSummary>, ControlError> {
        self.call(Request::ListsOverview)
    }

    /// One list.
    ///
    /// # Errors
    /// Not found when the list does not exist.
    pub fn list(&mut self, name: &str) -> Result<ListView, ControlError> {
        self.call(Request::ListsShow {
            name: name.to_string(),
        })
    }

    /// Creates a list.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn create_list(&mut self, name: &str) -> Result<ListInfo, ControlError> {
        self.call(Request::ListsCreate {
            name: name.to_string(),
        })
    }

    /// Adds an item to an existing list.
    ///
    /// # Errors
    /// Not found when the list does not exist.
    pub fn add_list_item(&mut self, name: &str, item: &str) -> Result<ListItem, ControlError> {
        self.call(Request::ListsAdd {
            name: name.to_string(),
            item: item.to_string(),
        })
    }

    /// Checks off an item.
    ///
    /// # Errors
    /// Not found when the list or the item does not exist.
    pub fn complete_list_item(&mut self, name: &str, item: &str) -> Result<ListItem, ControlError> {
        self.call(Request::ListsComplete {
            name: name.to_string(),
            item: item.to_string(),
        })
    }

    /// Removes an item, or the whole list; returns how many items went.
    ///
    /// # Errors
    /// Not found when the list or the item does not exist.
    pub fn remove_from_lists(
        &mut self,
        name: &str,
        item: Option<&str>,
    ) -> Result<usize, ControlError> {
        Ok(self
            .call::<Count>(Request::ListsRemove {
                name: name.to_string(),
                item: item.map(str::to_string),
            })?
            .removed)
    }

    /// All timers.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn timers(&mut self) -> Result<Vec<TimerRecord>, ControlError> {
        self.call(Request::TimersList)
    }

    /// Cancels a running or paused timer.
    ///
    /// # Errors
    /// Not found / invalid when there is no such active timer.
    pub fn cancel_timer(&mut self, id: u64) -> Result<TimerRecord, ControlError> {
        self.call(Request::TimersCancel { id })
    }

    /// History, newest first.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn history(
        &mut self,
        text: Option<&str>,
        since_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ControlError> {
        self.call(Request::HistorySearch {
            text: text.map(str::to_string),
            since_ms,
            limit,
        })
    }

    /// Writes a backup archive to `path` (made absolute here), from a consistent snapshot.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn backup(
        &mut self,
        path: &Path,
        passphrase: Option<Passphrase>,
    ) -> Result<BackupSummary, ControlError> {
        self.call(Request::Backup {
            path: absolute(path),
            passphrase,
        })
    }

    /// Every table, decoded (the `serena export --json` document).
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn export(&mut self) -> Result<Value, ControlError> {
        self.call_value(Request::Export)
    }

    /// One setting.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn setting(&mut self, key: &str) -> Result<Option<Value>, ControlError> {
        self.call(Request::SettingsGet {
            key: key.to_string(),
        })
    }

    /// Every setting.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn settings(&mut self) -> Result<Settings, ControlError> {
        self.call(Request::SettingsList)
    }

    /// Sets a setting; durable when this returns.
    ///
    /// # Errors
    /// As [`Handle::call`].
    pub fn set_setting(&mut self, key: &str, value: Value) -> Result<(), ControlError> {
        self.call(Request::SettingsSet {
            key: key.to_string(),
            value,
        })
    }
}

/// The owner of a data directory's store: the store itself and the bound control socket.
/// Dropping it removes the socket file, then closes the store.
#[derive(Debug)]
pub struct Owner {
    // Field order: the socket file goes before the store's lock is released.
    socket: SocketFile,
    listener: Option<std::os::unix::net::UnixListener>,
    store: Arc<Store>,
    data_dir: PathBuf,
}

#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        match fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove the control socket")
            }
        }
    }
}

impl Owner {
    /// Becomes the owner of `data_dir`'s store: makes the data directory private, opens the
    /// store (retrying for up to [`LOCK_RETRY`] while a one-shot command holds it) and binds
    /// `<data dir>/serena.sock` (mode 0600), replacing a stale socket file.
    ///
    /// # Errors
    /// [`ControlError::Owned`] when another Serena answers on the socket;
    /// [`ControlError::Store`] when the store cannot be opened (kind `busy` if it stayed
    /// locked); [`ControlError::UnsafeDir`] / [`ControlError::Socket`] when the directory or
    /// the socket cannot be set up.
    pub fn claim(data_dir: &Path) -> Result<Owner, ControlError> {
        let data_dir = absolute(data_dir);
        private_dir(&data_dir)?;
        let sock = socket_path(&data_dir);
        let deadline = Instant::now() + LOCK_RETRY;
        let store = loop {
            match Store::open(&store_dir(&data_dir)) {
                Ok(store) => break store,
                Err(StoreError::Locked { .. }) => {
                    if let Some(client) = Client::connect(&sock)? {
                        return Err(ControlError::Owned {
                            pid: client.owner_pid(),
                            dir: data_dir,
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: store_dir(&data_dir),
                        }
                        .into());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let listener = bind_private(&sock)?;
        Ok(Owner {
            socket: SocketFile(sock),
            listener: Some(listener),
            store: Arc::new(store),
            data_dir,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket.0
    }

    /// The bound listener, as a tokio listener (call inside a runtime; once).
    ///
    /// # Errors
    /// [`ControlError::Socket`] if it was taken already or cannot be registered.
    pub fn take_listener(&mut self) -> Result<tokio::net::UnixListener, ControlError> {
        let sock_err = |source| ControlError::Socket {
            path: self.socket.0.clone(),
            source,
        };
        let listener = self
            .listener
            .take()
            .ok_or_else(|| sock_err(io::Error::other("the listener was taken already")))?;
        tokio::net::UnixListener::from_std(listener).map_err(sock_err)
    }

    /// Stops owning: removes the socket file (no new clients), flushes and closes the store.
    /// Other references to the store (tasks still running) keep it open until they end.
    ///
    /// # Errors
    /// [`ControlError::Store`] if the final flush fails.
    pub fn close(self) -> Result<(), ControlError> {
        let Owner {
            socket,
            listener,
            store,
            ..
        } = self;
        drop(listener);
        drop(socket);
        let flushed = store.flush();
        match Arc::try_unwrap(store) {
            Ok(store) => store.close()?,
            Err(shared) => {
                tracing::warn!("the store is still in use at shutdown; it closes when that ends");
                drop(shared);
            }
        }
        flushed.map_err(Into::into)
    }
}

/// Binds a listening socket at `path` readable by the user only, replacing a stale socket
/// file (callers hold the store lock, so no live owner can be listening there).
fn bind_private(path: &Path) -> Result<std::os::unix::net::UnixListener, ControlError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let sock_err = |source| ControlError::Socket {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(path = %path.display(), "removing a stale control socket");
            fs::remove_file(path).map_err(sock_err)?;
        }
        Ok(_) => {
            return Err(sock_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way; move it",
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(sock_err)?;
    // The directory is 0700 already, so nobody else could use the socket between bind and
    // chmod; this makes the file itself private too.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    listener.set_nonblocking(true).map_err(sock_err)?;
    Ok(listener)
}
