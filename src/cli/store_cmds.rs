//! `serena history`, `notes`, `lists`, `timers`, `backup`, `restore` and `export`: what the
//! store holds. Each goes through the running Serena when there is one and opens the store
//! itself otherwise (`serena::control::open`); `restore` needs the store closed and refuses
//! while a Serena runs.

use std::fs::OpenOptions;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serena::control::{self, Context, Handle, Passphrase};
use serena::error::ExitCode;
use serena::store::{self, TimerRecord, TimerState};

use super::{Ctx, UsageError};

/// Environment variable holding the backup passphrase (else it is asked on the terminal).
pub const ENV_PASSPHRASE: &str = "SERENA_BACKUP_PASSPHRASE";

/// What the control layer needs from the command line's context.
pub fn context(ctx: &Ctx) -> Context {
    Context {
        config: ctx.config.clone(),
        dirs: ctx.dirs.clone(),
        catalog: ctx.catalog.clone(),
        data_dir: ctx.data_dir.clone(),
    }
}

fn open(ctx: &Ctx) -> anyhow::Result<Handle> {
    Ok(control::open(context(ctx))?)
}

/// Parses "90s", "10m", "2h", "3d", "1w", "1h30m" (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration (like 90s, 10m, 2h, 3d, 1w or 1h30m)");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

fn local_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

// ------------------------------------------------------------------- history

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only exchanges whose question or answer contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Only exchanges from this recent period (90s, 10m, 2h, 3d, 1w).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    since: Option<Duration>,
    /// At most this many (the most recent).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print a JSON array, newest first.
    #[arg(long)]
    json: bool,
}

/// `serena history`.
pub fn history(ctx: &Ctx, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let since_ms = args
        .since
        .map(|d| store::now_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    let entries = open(ctx)?.history(args.search.as_deref(), since_ms, args.limit)?;
    if args.json {
        return print_json(&entries).map(|()| ExitCode::Ok);
    }
    if entries.is_empty() {
        eprintln!("No history.");
    }
    // Oldest first, like a conversation.
    for e in entries.iter().rev() {
        println!("{}  you: {}", local_time(e.time_ms), e.transcript);
        println!("{:16}  serena: {}", "", e.reply);
    }
    Ok(ExitCode::Ok)
}

// --------------------------------------------------------------------- notes

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NotesArgs {
    #[command(subcommand)]
    cmd: Option<NotesCmd>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum NotesCmd {
    /// List the notes (the default).
    List,
    /// Add a note.
    Add {
        /// The note's text.
        #[arg(required_unless_present = "stdin")]
        text: Vec<String>,
        /// Add one note per line of standard input, printing `ok ID` after each is on disk.
        #[arg(long, conflicts_with = "text")]
        stdin: bool,
    },
    /// Remove a note by id.
    #[command(alias = "remove")]
    Rm {
        /// The note's id (see `serena notes`).
        id: u64,
    },
    /// Remove every note.
    Clear,
}

/// `serena notes`.
pub fn notes(ctx: &Ctx, args: NotesArgs) -> anyhow::Result<ExitCode> {
    let mut h = open(ctx)?;
    match args.cmd.unwrap_or(NotesCmd::List) {
        NotesCmd::List => {
            let notes = h.notes()?;
            if args.json {
                return print_json(&notes).map(|()| ExitCode::Ok);
            }
            if notes.is_empty() {
                eprintln!("No notes.");
            }
            for n in notes {
                println!("{:>4}  {}  {}", n.id, local_time(n.created_ms), n.text);
            }
        }
        NotesCmd::Add { stdin: true, .. } => {
            let mut out = std::io::stdout().lock();
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                let note = h.add_note(&line)?;
                // The note is on disk (flushed) before this line is printed.
                writeln!(out, "ok {}", note.id)?;
                out.flush()?;
            }
        }
        NotesCmd::Add { text, .. } => {
            let note = h.add_note(&text.join(" "))?;
            if args.json {
                return print_json(&note).map(|()| ExitCode::Ok);
            }
            println!("Added note {}.", note.id);
        }
        NotesCmd::Rm { id } => {
            let note = h.remove_note(id)?;
            if args.json {
                return print_json(&note).map(|()| ExitCode::Ok);
            }
            println!("Removed note {}: {}", note.id, note.text);
        }
        NotesCmd::Clear => {
            let n = h.clear_notes()?;
            if args.json {
                return print_json(&serde_json::json!({ "removed": n })).map(|()| ExitCode::Ok);
            }
            println!("Removed {n} note{}.", if n == 1 { "" } else { "s" });
        }
    }
    Ok(ExitCode::Ok)
}

// --------------------------------------------------------------------- lists

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ListsArgs {
    #[command(subcommand)]
    cmd: Option<ListsCmd>,
    /// Show this list's items ("shopping", "to-do", "groceries"); none: every list.
    name: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ListsCmd {
    /// Create a list (the shopping list and the to-do list always exist).
    Create {
        /// Its name.
        name: String,
    },
    /// Add an item.
    Add {
        /// The list.
        name: String,
        /// The item.
        #[arg(required = true)]
        item: Vec<String>,
    },
    /// Check an item off.
    Done {
        /// The list.
        name: String,
        /// The item (exact match first, else the only item containing this).
        #[arg(required = true)]
        item: Vec<String>,
    },
    /// Remove an item, or the whole list when no item is given.
    #[command(alias = "remove")]
    Rm {
        /// The list.
        name: String,
        /// The item.
        item: Vec<String>,
    },
}

/// `serena lists`.
pub fn lists(ctx: &Ctx, args: ListsArgs) -> anyhow::Result<ExitCode> {
    let mut h = open(ctx)?;
    let json = args.json;
    match (args.cmd, args.name) {
        (None, None) => {
            let lists = h.lists()?;
            if json {
                return print_json(&lists).map(|()| ExitCode::Ok);
            }
            for l in lists {
                println!(
                    "{}: {} item{} ({} open)",
                    l.name,
                    l.items,
                    if l.items == 1 { "" } else { "s" },
                    l.open
                );
            }
        }
        (None, Some(name)) => {
            let view = h.list(&name)?;
            if json {
                return print_json(&view).map(|()| ExitCode::Ok);
            }
            if view.items.is_empty() {
                eprintln!("The {} is empty.", view.name);
            }
            for i in view.items {
                println!("[{}] {}", if i.done { "x" } else { " " }, i.text);
            }
        }
        (Some(ListsCmd::Create { name }), _) => {
            let info = h.create_list(&name)?;
            if json {
                return print_json(&info).map(|()| ExitCode::Ok);
            }
            println!("Created the {}.", info.name);
        }
        (Some(ListsCmd::Add { name, item }), _) => {
            let added = h.add_list_item(&name, &item.join(" "))?;
            if json {
                return print_json(&added).map(|()| ExitCode::Ok);
            }
            println!("Added {}.", added.text);
        }
        (Some(ListsCmd::Done { name, item }), _) => {
            let done = h.complete_list_item(&name, &item.join(" "))?;
            if json {
                return print_json(&done).map(|()| ExitCode::Ok);
            }
            println!("Checked off {}.", done.text);
        }
        (Some(ListsCmd::Rm { name, item }), _) => {
            let item = (!item.is_empty()).then(|| item.join(" "));
            let n = h.remove_from_lists(&name, item.as_deref())?;
            if json {
                return print_json(&serde_json::json!({ "removed": n })).map(|()| ExitCode::Ok);
            }
            match item {
                Some(item) => println!("Removed {item}."),
                None => println!(
                    "Removed the list ({n} item{}).",
                    if n == 1 { "" } else { "s" }
                ),
            }
        }
    }
    Ok(ExitCode::Ok)
}

// -------------------------------------------------------------------- timers

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TimersArgs {
    #[command(subcommand)]
    cmd: Option<TimersCmd>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum TimersCmd {
    /// List timers: running and paused ones, and those finished in the last day (the default).
    List,
    /// Cancel a running or paused timer.
    Cancel {
        /// The timer's id (see `serena timers`).
        id: u64,
    },
}

fn timer_json(t: &TimerRecord, now_ms: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut v {
        map.insert("remaining_ms".into(), t.remaining_ms(now_ms).into());
    }
    v
}

/// `serena timers`.
pub fn timers(ctx: &Ctx, args: TimersArgs) -> anyhow::Result<ExitCode> {
    let mut h = open(ctx)?;
    let now = store::now_ms();
    match args.cmd.unwrap_or(TimersCmd::List) {
        TimersCmd::List => {
            let timers = h.timers()?;
            if args.json {
                let all: Vec<_> = timers.iter().map(|t| timer_json(t, now)).collect();
                return print_json(&all).map(|()| ExitCode::Ok);
            }
            if timers.is_empty() {
                eprintln!("No timers.");
            }
            for t in &timers {
                let name = t.name.as_deref().unwrap_or("-");
                let total = serena::skills::say_duration(t.duration_ms / 1000);
                let state = match t.state {
                    TimerState::Running => format!(
                        "running, {} left",
                        serena::skills::say_duration(t.remaining_ms(now).div_ceil(1000))
                    ),
                    TimerState::Paused => format!(
                        "paused, {} left",
                        serena::skills::say_duration(t.remaining_ms(now).div_ceil(1000))
                    ),
                    TimerState::Fired => format!("done at {}", local_time(t.deadline_ms())),
                    TimerState::Cancelled => "cancelled".to_string(),
                };
                println!("{:>4}  {name}  {total}  {state}", t.id);
            }
        }
        TimersCmd::Cancel { id } => {
            let t = h.cancel_timer(id)?;
            if args.json {
                return print_json(&timer_json(&t, now)).map(|()| ExitCode::Ok);
            }
            println!("Cancelled timer {id}.");
        }
    }
    Ok(ExitCode::Ok)
}

// ------------------------------------------------------------ backup/restore

/// The backup passphrase: `$SERENA_BACKUP_PASSPHRASE`, else asked on the terminal without
/// echo (twice when `confirm`).
fn passphrase(confirm: bool) -> anyhow::Result<Passphrase> {
    if let Some(p) = std::env::var_os(ENV_PASSPHRASE) {
        let p = p
            .into_string()
            .map_err(|_| UsageError(format!("{ENV_PASSPHRASE} is not valid UTF-8")))?;
        if p.is_empty() {
            return Err(UsageError(format!("{ENV_PASSPHRASE} is empty")).into());
        }
        return Ok(Passphrase::new(p));
    }
    let no_terminal = || {
        UsageError(format!(
            "a passphrase is needed: set {ENV_PASSPHRASE} or run on a terminal"
        ))
    };
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(no_terminal().into());
    }
    let first = Passphrase::new(
        rpassword::prompt_password("Backup passphrase: ").map_err(|_| no_terminal())?,
    );
    if first.expose().is_empty() {
        return Err(UsageError("the passphrase is empty".into()).into());
    }
    if confirm {
        let again =
            Passphrase::new(rpassword::prompt_password("Again: ").map_err(|_| no_terminal())?);
        if again.expose() != first.expose() {
            return Err(UsageError("the passphrases differ".into()).into());
        }
    }
    Ok(first)
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (replaced atomically if it exists; mode 0600).
    file: PathBuf,
    /// Encrypt with a passphrase ($SERENA_BACKUP_PASSPHRASE, else asked on the terminal).
    #[arg(long)]
    encrypt: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// `serena backup`.
pub fn backup(ctx: &Ctx, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let pass = if args.encrypt {
        Some(passphrase(true)?)
    } else {
        None
    };
    let file = std::path::absolute(&args.file)
        .with_context(|| format!("cannot resolve {}", args.file.display()))?;
    let info = open(ctx)?.backup(&file, pass)?;
    if args.json {
        return print_json(&info).map(|()| ExitCode::Ok);
    }
    println!(
        "Backed up {} records to {} ({} bytes{}).",
        info.records,
        info.path.display(),
        info.size_bytes,
        if info.encrypted { ", encrypted" } else { "" }
    );
    Ok(ExitCode::Ok)
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive to restore (everything is checked before the store is touched).
    #[arg(required_unless_present = "undo", conflicts_with = "undo")]
    file: Option<PathBuf>,
    /// Put back the data the last restore replaced.
    #[arg(long)]
    undo: bool,
}

/// `serena restore`: needs the store closed, so it refuses while a Serena runs.
pub fn restore(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    control::ensure_not_running(&ctx.data_dir, "restore replaces the store under it")?;
    let dir = serena::answer::store_dir(&ctx.data_dir);
    let Some(file) = args.file else {
        store::undo_restore_dir(&dir)?;
        println!("Put back the data the last restore replaced (run `serena restore --undo` again to redo it).");
        return Ok(ExitCode::Ok);
    };
    let header = store::read_archive_info(&file)?;
    let pass = if header.encrypted {
        Some(passphrase(false)?)
    } else {
        None
    };
    let info = store::restore_dir(&dir, &file, pass.as_ref().map(Passphrase::expose))?;
    println!(
        "Restored {} records from {} (written {} by Serena {}).",
        info.archive.record_count,
        file.display(),
        local_time(info.archive.created_unix_ms),
        info.archive.serena_version
    );
    if let Some(from) = info.migrated_from {
        println!("The data was upgraded from schema {from}.");
    }
    if info.undo_available {
        println!("The replaced data was kept: `serena restore --undo` puts it back.");
    }
    Ok(ExitCode::Ok)
}

// -------------------------------------------------------------------- export

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// JSON (the only format, and the default).
    #[arg(long)]
    json: bool,
    /// Write to this file (mode 0600) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `serena export`: every table, decoded, as one readable JSON document.
pub fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let _ = args.json;
    let doc = open(ctx)?.export()?;
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match &args.output {
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
        Some(path) => write_private(path, text.as_bytes())?,
    }
    Ok(ExitCode::Ok)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // An existing file keeps its mode on open: make it private too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "h", "2x", "3d4", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
