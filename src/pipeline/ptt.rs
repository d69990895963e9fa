//! Push-to-talk triggers: a global hotkey (X11, held or toggled) or a key in the terminal
//! (toggled: terminals do not report releases). Each trigger runs on its own thread and
//! sends `true` (talk) / `false` (answer) into a bounded channel; [`TalkSource`] merges those
//! into the pipeline's [`Input`] stream between frames.
//!
//! **Edges:** trigger → pipeline is `sync_channel(16)` with `try_send`; a key event that does
//! not fit is dropped and counted ([`Keys::dropped`]); key events are rare, so this only
//! happens when the pipeline has stopped reading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::listen::Input;

/// How push-to-talk is triggered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A global hotkey such as `ctrl+shift+space` or `F9`: held to talk, or pressed to
    /// start and again to stop when `toggle`.
    Hotkey {
        /// The key combination (`global-hotkey`'s syntax: modifiers `ctrl`, `shift`, `alt`,
        /// `super`, then one key).
        key: String,
        /// Press to start, press again to stop.
        toggle: bool,
    },
    /// Space or Enter in this terminal starts and stops; `q` or Esc quits.
    Terminal,
}

/// Why a trigger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PttError {
    /// The hotkey text does not parse.
    #[error("cannot read hotkey {key:?}: {reason} (examples: \"ctrl+shift+space\", \"F9\", \"alt+KeyT\")")]
    BadHotkey {
        /// The text.
        key: String,
        /// The parser's message.
        reason: String,
    },
    /// No display to grab a global hotkey on.
    #[error("no global hotkey: {0}")]
    NoDisplay(String),
    /// The display refused the grab (another program holds the key).
    #[error("cannot grab hotkey {key:?}: {reason}")]
    Grab {
        /// The key.
        key: String,
        /// The display's answer.
        reason: String,
    },
    /// The terminal cannot be put in raw mode (standard input is not a terminal).
    #[error("no terminal to read keys from: {0}")]
    NoTerminal(String),
}

/// The running trigger: key events, the count of those dropped, and what ends it.
pub struct Keys {
    rx: Receiver<bool>,
    dropped: Arc<AtomicU64>,
    /// Says in words what to press, for the user.
    pub describe: String,
    _guard: Guard,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("describe", &self.describe)
            .finish()
    }
}

impl Keys {
    /// Key events that did not fit into the channel.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the terminal is in raw mode (lines written to it then need `\r\n`).
    pub fn raw_terminal(&self) -> bool {
        matches!(self._guard, Guard::Terminal)
    }
}

enum Guard {
    #[cfg(target_os = "linux")]
    Hotkey(
        global_hotkey::GlobalHotKeyManager,
        global_hotkey::hotkey::HotKey,
    ),
    Terminal,
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self {
            #[cfg(target_os = "linux")]
            Guard::Hotkey(manager, key) => {
                let _ = manager.unregister(*key);
            }
            Guard::Terminal => {
                let _ = crossterm::terminal::disable_raw_mode();
            }
        }
    }
}

/// Starts `trigger`. `stop` is set when the user quits from the terminal (`q`, Esc,
/// Ctrl-C: in raw mode Ctrl-C is a key, not a signal).
///
/// # Errors
/// [`PttError`]: a hotkey that does not parse, no X display, a key another program holds,
/// or no terminal.
pub fn start(trigger: &Trigger, stop: Arc<AtomicBool>) -> Result<Keys, PttError> {
    let (tx, rx) = mpsc::sync_channel(16);
    let dropped = Arc::new(AtomicU64::new(0));
    let sender = Sender {
        tx,
        dropped: dropped.clone(),
    };
    let (guard, describe) = match trigger {
        Trigger::Hotkey { key, toggle } => hotkey(key, *toggle, sender)?,
        Trigger::Terminal => terminal(sender, stop)?,
    };
    Ok(Keys {
        rx,
        dropped,
        describe,
        _guard: guard,
    })
}

struct Sender {
    tx: SyncSender<bool>,
    dropped: Arc<AtomicU64>,
}

impl Sender {
    /// False once the pipeline is gone.
    fn send(&self, talk: bool) -> bool {
        match self.tx.try_send(talk) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(target_os = "linux")]
fn hotkey(key: &str, toggle: bool, sender: Sender) -> Result<(Guard, String), PttError> {
    use global_hotkey::hotkey::HotKey;
    use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};

    let hotkey: HotKey =
        key.parse().map_err(
            |e: global_hotkey::hotkey::HotKeyParseError| PttError::BadHotkey {
                key: key.to_string(),
                reason: e.to_string(),
            },
        )?;
    // global-hotkey's own thread gives up silently without a display: check first.
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if let Err(e) = x11rb::connect(None) {
        let why = if display.is_empty() {
            "no X display (DISPLAY is not set); Wayland sessions need the terminal toggle".into()
        } else {
            format!("cannot open X display {display:?}: {e}")
        };
        return Err(PttError::NoDisplay(why));
    }
    let manager = GlobalHotKeyManager::new().map_err(|e| PttError::NoDisplay(e.to_string()))?;
    manager.register(hotkey).map_err(|e| PttError::Grab {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    let id = hotkey.id();
    std::thread::Builder::new()
        .name("serena-hotkey".into())
        .spawn(move || {
            let mut talking = false;
            for event in GlobalHotKeyEvent::receiver().iter() {
                if event.id != id {
                    continue;
                }
                let next = match (event.state, toggle) {
                    (HotKeyState::Pressed, true) => !talking,
                    (HotKeyState::Pressed, false) => true,
                    (HotKeyState::Released, false) => false,
                    (HotKeyState::Released, true) => continue,
                };
                if next != talking {
                    talking = next;
                    if !sender.send(talking) {
                        return;
                    }
                }
            }
        })
        .map_err(|e| PttError::NoDisplay(format!("cannot start the hotkey thread: {e}")))?;
    let describe = if toggle {
        format!("press {key} to talk and again to stop (global hotkey, X display {display})")
    } else {
        format!("hold {key} while talking (global hotkey, X display {display})")
    };
    Ok((Guard::Hotkey(manager, hotkey), describe))
}

#[cfg(not(target_os = "linux"))]
fn hotkey(key: &str, _toggle: bool, _sender: Sender) -> Result<(Guard, String), PttError> {
    Err(PttError::NoDisplay(format!(
        "global hotkeys ({key}) are built for X11 on Linux only so far; use --terminal"
    )))
}

fn terminal(sender: Sender, stop: Arc<AtomicBool>) -> Result<(Guard, String), PttError> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

    crossterm::terminal::enable_raw_mode().map_err(|e| PttError::NoTerminal(e.to_string()))?;
    let guard = Guard::Terminal;
    std::thread::Builder::new()
        .name("serena-keys".into())
        .spawn(move || {
            let mut talking = false;
            while let Ok(ev) = event::read() {
                let Event::Key(key) = ev else { continue };
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    KeyCode::Char(' ') | KeyCode::Enter => {
                        talking = !talking;
                        if !sender.send(talking) {
                            return;
                        }
                    }
                    KeyCode::Char('q') | KeyCode::Esc => break,
                    KeyCode::Char('c' | 'd') if ctrl => break,
                    _ => {}
                }
            }
            // Quitting while talking answers what was said.
            if talking {
                sender.send(false);
            }
            stop.store(true, Ordering::SeqCst);
        })
        .map_err(|e| PttError::NoTerminal(format!("cannot start the key thread: {e}")))?;
    Ok((
        guard,
        "press Space (or Enter) to talk and again to stop; q quits (terminal)".into(),
    ))
}

/// The pipeline's input with the trigger's key events merged in between frames.
pub struct TalkSource<I> {
    inner: I,
    keys: Keys,
}

impl<I> TalkSource<I> {
    /// Merges `keys` into `inner`.
    pub fn new(inner: I, keys: Keys) -> Self {
        TalkSource { inner, keys }
    }
}

impl<I: Iterator<Item = Input>> Iterator for TalkSource<I> {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        if let Ok(talk) = self.keys.rx.try_recv() {
            return Some(Input::Talk(talk));
        }
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_events_come_between_frames_and_overflow_is_counted() {
        let (tx, rx) = mpsc::sync_channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let sender = Sender {
            tx,
            dropped: dropped.clone(),
        };
        assert!(sender.send(true));
        assert!(sender.send(false));
        assert!(sender.send(true)); // full: dropped, counted
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        let keys = Keys {
            rx,
            dropped,
            describe: String::new(),
            _guard: Guard::Terminal,
        };
        let frames = (0..3).map(|_| Input::Frame(vec![0.0; 480]));
        let got: Vec<String> = TalkSource::new(frames, keys)
            .map(|i| match i {
                Input::Talk(t) => format!("talk {t}"),
                Input::Frame(_) => "frame".into(),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(got, ["talk true", "talk false", "frame", "frame", "frame"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_bad_hotkey_or_no_display_is_a_clear_error() {
        let (tx, _rx) = mpsc::sync_channel(1);
        let sender = || Sender {
            tx: tx.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let err = hotkey("ctrl+nokey", false, sender())
            .err()
            .expect("bad key");
        assert!(matches!(err, PttError::BadHotkey { .. }), "{err}");
    }
}
