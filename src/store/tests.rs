//! Tests of the store. Fast (no sleeps); cheap KDF parameters except in one
//! test that uses the defaults.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::backup::{check_archive_bytes, encode_archive, parse_records};
use super::layout;
use super::migrations::{self, MIGRATIONS, SCHEMA_KEY};
use super::records::{encode, u64_key};
use super::tables::{ALL_TABLES, META, NOTES};
use super::*;

type Dump = Vec<(String, Vec<u8>, Vec<u8>)>;

fn cheap() -> BackupOptions {
    BackupOptions {
        kdf: KdfParams {
            m_cost_kib: 1024,
            t_cost: 1,
            p_cost: 1,
        },
        ..BackupOptions::default()
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn entry(i: u64, transcript: &str, reply: &str, time_ms: u64) -> HistoryEntry {
    HistoryEntry {
        id: 0,
        time_ms,
        mode: if i.is_multiple_of(2) {
            InputMode::Voice
        } else {
            InputMode::Text
        },
        transcript: transcript.to_string(),
        intent: i.is_multiple_of(3).then(|| "timer.set".to_string()),
        slots: json!({ "n": i, "unit": "minutes" }),
        reply: reply.to_string(),
        source: ReplySource::Router,
        timings: BTreeMap::from([("asr".to_string(), 100 + i), ("tts".to_string(), 40)]),
        power_profile: "balanced".into(),
    }
}

/// Puts something in every table.
fn fill(s: &Store) {
    let now = now_ms();
    for i in 0..20 {
        s.append_history(entry(
            i,
            &format!("what is {i} plus {i}"),
            &format!("{} ✓", 2 * i),
            now - 1000 + i,
        ))
        .expect("history");
    }
    for t in ["buy milk", "call Mum", "Ünïcödé note"] {
        s.add_note(t).expect("note");
    }
    for it in ["Milk", "eggs", "Bread"] {
        s.add_list_item("Shopping", it).expect("item");
    }
    s.add_list_item("todo", "taxes").expect("item");
    s.complete_list_item("shopping", "milk").expect("complete");
    let a = s
        .insert_timer(TimerRecord::new_running(Some("pasta".into()), 600_000, now))
        .expect("timer");
    let mut b = s
        .insert_timer(TimerRecord::new_running(None, 60_000, now))
        .expect("timer");
    b.pause(now + 10_000);
    s.update_timer(&b).expect("update");
    let mut c = s
        .insert_timer(TimerRecord::new_running(None, 1_000, now - 5_000))
        .expect("timer");
    c.state = TimerState::Fired;
    s.update_timer(&c).expect("update");
    assert!(a.id < b.id && b.id < c.id);
    s.set_setting("voice", &json!("alba")).expect("set");
    s.set_setting("volume", &json!(0.7)).expect("set");
    s.set_setting("wake", &json!({"word": "serena", "sens": [1, 2]}))
        .expect("set");
    for i in 0..10 {
        s.append_metric(&MetricSample {
            time_ms: now + i,
            stage: "asr".into(),
            latency_ms: 100 + i,
            cpu_ms: 80,
            peak_rss_bytes: 1 << 20,
            profile: "balanced".into(),
        })
        .expect("metric");
    }
    s.flush().expect("flush");
}

fn dump(s: &Store) -> Dump {
    let mut out = Vec::new();
    for name in ALL_TABLES {
        let tree = s.t.by_name(name).expect("tree");
        for kv in tree.iter() {
            let (k, v) = kv.expect("kv");
            out.push((name.to_string(), k.to_vec(), v.to_vec()));
        }
    }
    out
}

/// Path -> SHA-256 of every file under `dir`.
fn hash_dir(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(p).expect("read_dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = fs::read(&path).expect("read");
                let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
                out.insert(rel, Sha256::digest(&bytes).to_vec());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let p = e.expect("entry").path();
        let dest = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy");
        }
    }
}

/// A filled, closed store and an archive of it.
fn archived(pass: Option<&str>) -> (tempfile::TempDir, PathBuf, Dump) {
    let d = tmp();
    let dir = d.path().join("store");
    let s = Store::open(&dir).expect("open");
    fill(&s);
    let out = d.path().join("b.serenabk");
    s.backup_with(&out, pass, &cheap()).expect("backup");
    let before = dump(&s);
    s.close().expect("close");
    (d, out, before)
}

// ------------------------------------------------------------------- opening

#[cfg(unix)]
#[test]
fn open_makes_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp();
    let dir = d.path().join("s");
    let s = Store::open(&dir).expect("open");
    s.add_note("x").expect("note");
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for (rel, _) in hash_dir(&dir) {
        assert_eq!(mode(&dir.join(&rel)), 0o600, "{rel:?}");
    }
}

#[test]
fn second_open_in_same_process_is_locked() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    let err = Store::open(d.path()).expect_err("second open must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("another Serena process is using {}", d.path().display())
    );
    drop(s);
    let s = Store::open(d.path()).expect("reopen after drop");
    s.close().expect("close");
    Store::open(d.path()).expect("reopen after close");
}

#[test]
fn sled_lock_failure_maps_to_locked() {
    // Someone holding sled's own lock (not ours) must still give `Locked`.
    let d = tmp();
    Store::open(d.path())
        .expect("create")
        .close()
        .expect("close");
    let raw = sled::open(d.path().join(layout::DB_DIR)).expect("raw sled");
    let err = Store::open(d.path()).expect_err("must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    drop(raw);
}

const PROBE_ENV: &str = "SERENA_STORE_LOCK_PROBE";

/// Not a test on its own: the child side of `second_open_in_other_process_is_locked`.
#[test]
fn lock_probe_child() {
    let Some(dir) = std::env::var_os(PROBE_ENV) else {
        return;
    };
    match Store::open(Path::new(&dir)) {
        Ok(_) => println!("PROBE:OPENED"),
        Err(StoreError::Locked { .. }) => println!("PROBE:LOCKED"),
        Err(e) => println!("PROBE:ERROR {e}"),
    }
}

fn probe(dir: &Path) -> String {
    let mp = module_path!();
    let test = format!(
        "{}::lock_probe_child",
        mp.split_once("::").map_or(mp, |x| x.1)
    );
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, dir)
        .output()
        .expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| l.find("PROBE:").map(|i| l[i..].trim().to_string()))
        .unwrap_or_else(|| format!("PROBE:NONE {stdout}"))
}

#[test]
fn second_open_in_other_process_is_locked() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    assert_eq!(probe(d.path()), "PROBE:LOCKED");
    drop(s);
    assert_eq!(probe(d.path()), "PROBE:OPENED");
}

// -------------------------------------------------------------------- tables

#[test]
fn notes_lists_timers_settings_metrics() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    let n1 = s.add_note("Buy milk").expect("note");
    let n2 = s.add_note("call the plumber").expect("note");
    s.add_note("milk the cow").expect("note");
    assert!(matches!(s.add_note("  "), Err(StoreError::InvalidInput(_))));
    assert_eq!(s.notes().expect("notes").len(), 3);
    assert_eq!(s.remove_note(n2.id).expect("rm"), Some(n2.clone()));
    assert_eq!(s.remove_note(n2.id).expect("rm"), None);
    let gone = s.remove_notes_matching("MILK").expect("rm");
    assert_eq!(gone.len(), 2);
    assert_eq!(gone[0], n1);
    assert!(s.notes().expect("notes").is_empty());
    s.add_note("a").expect("note");
    assert_eq!(s.clear_notes().expect("clear"), 1);

    s.add_list_item("Shopping", "Milk").expect("add");
    s.add_list_item("shopping ", "oat milk").expect("add");
    s.add_list_item("shopping", "Eggs").expect("add");
    s.create_list("Packing").expect("create");
    let names: Vec<String> = s
        .list_names()
        .expect("names")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["Packing", "Shopping"]);
    // Exact match wins over substring.
    let done = s.complete_list_item("SHOPPING", "milk").expect("done");
    assert_eq!(done.map(|i| i.text), Some("Milk".into()));
    // Now only one open item contains "milk".
    let done = s.complete_list_item("shopping", "milk").expect("done");
    assert_eq!(done.map(|i| i.text), Some("oat milk".into()));
    assert_eq!(
        s.complete_list_item("shopping", "milk").expect("none"),
        None
    );
    let items = s.list_items("Shopping").expect("items");
    assert_eq!(
        items
            .iter()
            .map(|i| (i.text.as_str(), i.done))
            .collect::<Vec<_>>(),
        [("Milk", true), ("oat milk", true), ("Eggs", false)]
    );
    assert_eq!(
        s.remove_list_item("shopping", "eggs")
            .expect("rm")
            .map(|i| i.text),
        Some("Eggs".into())
    );
    assert!(s.list_items("packing").expect("items").is_empty());
    assert!(s.remove_list("packing").expect("rm list"));
    assert!(!s.remove_list("packing").expect("rm list"));
    assert!(s.add_list_item("a\0b", "x").is_err());

    let now = now_ms();
    let t = s
        .insert_timer(TimerRecord::new_running(Some("tea".into()), 180_000, now))
        .expect("timer");
    let mut t2 = s
        .insert_timer(TimerRecord::new_running(None, 60_000, now))
        .expect("timer");
    t2.state = TimerState::Cancelled;
    s.update_timer(&t2).expect("update");
    assert_eq!(s.active_timers().expect("active"), vec![t.clone()]);
    assert_eq!(s.timer(t.id).expect("get"), Some(t.clone()));
    let mut ghost = t.clone();
    ghost.id = 999;
    assert!(matches!(
        s.update_timer(&ghost),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(s.remove_timer(t2.id).expect("rm"), Some(t2));

    s.set_setting("volume", &json!(0.5)).expect("set");
    assert_eq!(s.setting("volume").expect("get"), Some(json!(0.5)));
    assert_eq!(s.setting_as::<f64>("volume").expect("typed"), Some(0.5));
    assert!(s.setting_as::<String>("volume").is_err());
    assert!(s.remove_setting("volume").expect("rm"));
    assert_eq!(s.setting("volume").expect("get"), None);

    for i in 0..5u64 {
        s.append_metric(&MetricSample {
            time_ms: 1_000 + i * 10,
            stage: "llm".into(),
            latency_ms: i,
            cpu_ms: i,
            peak_rss_bytes: 0,
            profile: "eco".into(),
        })
        .expect("metric");
    }
    let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    let got = s.metrics_range(at(1_010), at(1_030)).expect("range");
    assert_eq!(
        got.iter().map(|m| m.time_ms).collect::<Vec<_>>(),
        [1_010, 1_020]
    );
}

#[test]
fn timers_survive_reopen_with_right_remaining_time() {
    let d = tmp();
    let (running, paused) = {
        let s = Store::open(d.path()).expect("open");
        let r = s
            .insert_timer(TimerRecord::new_running(None, 300_000, 1_000_000))
            .expect("t");
        let mut p = s
            .insert_timer(TimerRecord::new_running(
                Some("eggs".into()),
                420_000,
                1_000_000,
            ))
            .expect("t");
        p.pause(1_060_000);
        s.update_timer(&p).expect("update");
        (r, p)
    };
    let s = Store::open(d.path()).expect("reopen");
    let active = s.active_timers().expect("active");
    assert_eq!(active, vec![running, paused]);
    // After a "restart" 2 minutes later:
    assert_eq!(active[0].remaining_ms(1_120_000), 180_000);
    assert_eq!(active[1].remaining_ms(1_120_000), 360_000);
}

#[test]
fn history_search_filters_newest_first() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    let base = now_ms() - 10_000;
    for i in 0..10u64 {
        let (t, r) = if i.is_multiple_of(2) {
            ("Set a TIMER please", "ok")
        } else {
            ("weather", "Sunny, no timer needed")
        };
        s.append_history(entry(i, t, r, base + i * 1000))
            .expect("append");
    }
    let all = s.history_search(None, None, 100).expect("all");
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let hits = s.history_search(Some("timer"), None, 100).expect("text");
    assert_eq!(hits.len(), 10); // transcript or reply
    let hits = s.history_search(Some("SUNNY"), None, 3).expect("text");
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].time_ms, base + 9_000);
    let since = UNIX_EPOCH + Duration::from_millis(base + 7_000);
    let hits = s
        .history_search(Some("please"), Some(since), 100)
        .expect("since");
    assert_eq!(
        hits.iter().map(|h| h.time_ms).collect::<Vec<_>>(),
        [base + 8_000]
    );
    assert!(s
        .history_search(Some("nothing"), None, 5)
        .expect("x")
        .is_empty());
    let first = s.history_get(all[9].id).expect("get").expect("some");
    assert_eq!(first.slots, json!({"n": 0, "unit": "minutes"}));
}

#[test]
fn prune_history_by_age_and_count() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    let now = now_ms();
    let day = 24 * 3600 * 1000;
    for i in 0..10u64 {
        // 5 entries 10 days old, 5 recent
        let t = if i < 5 {
            now - 10 * day
        } else {
            now - 1000 + i
        };
        s.append_history(entry(i, "t", "r", t)).expect("append");
    }
    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(s.prune_history(week, 100).expect("prune"), 5);
    assert_eq!(s.history_len(), 5);
    assert_eq!(s.prune_history(week, 3).expect("prune"), 2);
    let left = s.history_search(None, None, 10).expect("left");
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [10, 9, 8]);
    let report = s
        .run_maintenance(&RetentionPolicy::default())
        .expect("maint");
    assert_eq!(report.history_removed, 0);
    // Ids are not reused after deleting the newest, even across reopen.
    assert_eq!(s.clear_history().expect("clear"), 3);
    drop(s);
    let s = Store::open(d.path()).expect("reopen");
    assert_eq!(
        s.append_history(entry(0, "t", "r", now)).expect("append"),
        11
    );
    let n = s.add_note("x").expect("note");
    s.remove_note(n.id).expect("rm");
    drop(s);
    let s = Store::open(d.path()).expect("reopen");
    assert_eq!(s.add_note("y").expect("note").id, n.id + 1);
}

#[test]
fn maintenance_prunes_metrics_and_finished_timers() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    let now = now_ms();
    let day = 24 * 3600 * 1000;
    for t in [now - 40 * day, now - 2 * day, now] {
        s.append_metric(&MetricSample {
            time_ms: t,
            stage: "asr".into(),
            latency_ms: 1,
            cpu_ms: 1,
            peak_rss_bytes: 1,
            profile: "p".into(),
        })
        .expect("metric");
    }
    let mut old = s
        .insert_timer(TimerRecord::new_running(None, 1000, now - 3 * day))
        .expect("timer");
    old.state = TimerState::Fired;
    s.update_timer(&old).expect("update");
    s.insert_timer(TimerRecord::new_running(None, 1000, now - 3 * day))
        .expect("still running (overdue) timers are kept");
    let r = s
        .run_maintenance(&RetentionPolicy::default())
        .expect("maint");
    assert_eq!(
        r,
        MaintenanceReport {
            history_removed: 0,
            metrics_removed: 1,
            timers_removed: 1
        }
    );
    assert_eq!(s.timers().expect("timers").len(), 1);
}

#[test]
fn export_json_contains_every_table() {
    let d = tmp();
    let s = Store::open(d.path()).expect("open");
    fill(&s);
    let mut out = Vec::new();
    s.export_json(&mut out).expect("export");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
    assert_eq!(v["history"].as_array().map(Vec::len), Some(20));
    assert_eq!(v["notes"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["lists"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["lists"][0]["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["timers"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["settings"]["voice"], json!("alba"));
    assert_eq!(v["metrics"].as_array().map(Vec::len), Some(10));
    assert_eq!(v["notes"][2]["text"], json!("Ünïcödé note"));
}

// -------------------------------------------------------------------- backup

#[test]
fn backup_restore_round_trip_plain_and_encrypted() {
    for pass in [None, Some("correct horse battery staple")] {
        let (d, archive, before) = archived(pass);
        let info = read_archive_info(&archive).expect("info");
        assert_eq!(info.encrypted, pass.is_some());
        assert_eq!(info.schema_version, CURRENT_SCHEMA);
        assert_eq!(info.record_count, before.len() as u64);
        assert_eq!(info.serena_version, env!("CARGO_PKG_VERSION"));

        // Wipe: clear the live data, then restore in place.
        let dir = d.path().join("store");
        let s = Store::open(&dir).expect("open");
        s.clear_history().expect("wipe");
        s.clear_notes().expect("wipe");
        s.remove_list("shopping").expect("wipe");
        s.add_note("only after the backup").expect("note");
        let wiped = dump(&s);
        let (r, s) = s.restore(&archive, pass);
        let (r, s) = (r.expect("restore"), s.expect("reopen"));
        assert_eq!(r.archive, info);
        assert!(r.undo_available);
        assert_eq!(r.migrated_from, None);
        assert_eq!(dump(&s), before, "every record restored");
        assert_eq!(s.list_items("shopping").expect("items").len(), 3);
        drop(s);

        // Undo puts the wiped state back; undo again redoes the restore.
        undo_restore_dir(&dir).expect("undo");
        let s = Store::open(&dir).expect("open");
        assert_eq!(dump(&s), wiped);
        drop(s);
        undo_restore_dir(&dir).expect("redo");
        let s = Store::open(&dir).expect("open");
        assert_eq!(dump(&s), before);
        drop(s);

        // Restore into a brand-new directory.
        let fresh = d.path().join("fresh");
        let r = restore_dir(&fresh, &archive, pass).expect("restore fresh");
        assert!(!r.undo_available);
        let s = Store::open(&fresh).expect("open");
        assert_eq!(dump(&s), before);
        drop(s);
        assert!(matches!(
            undo_restore_dir(&fresh),
            Err(StoreError::NothingToUndo)
        ));
    }
}

#[test]
fn encrypted_backup_with_default_kdf() {
    let d = tmp();
    let s = Store::open(&d.path().join("s")).expect("open");
    s.add_note("secret").expect("note");
    let out = d.path().join("b.serenabk");
    let info = s.backup(&out, Some("pw")).expect("backup");
    assert!(info.archive.encrypted);
    let raw = fs::read(&out).expect("read");
    assert!(!raw.windows(6).any(|w| w == b"secret"), "plaintext leaked");
    drop(s);
    let fresh = d.path().join("f");
    restore_dir(&fresh, &out, Some("pw")).expect("restore");
    let s = Store::open(&fresh).expect("open");
    assert_eq!(s.notes().expect("notes")[0].text, "secret");
}

#[test]
fn backup_leaves_no_temp_files_and_replaces_atomically() {
    let (d, archive, _) = archived(None);
    let s = Store::open(&d.path().join("store")).expect("open");
    s.add_note("more").expect("note");
    s.backup(&archive, None).expect("overwrite");
    let names: Vec<_> = fs::read_dir(d.path())
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")));
    assert!(matches!(
        s.backup(&archive, Some("")),
        Err(StoreError::InvalidInput(_))
    ));
}

/// Restores `bytes` as an archive into `dir` and checks the live files did
/// not change.
fn refused(dir: &Path, bytes: &[u8], pass: Option<&str>) -> StoreError {
    let before = hash_dir(dir);
    let path = dir.parent().expect("parent").join("bad.serenabk");
    fs::write(&path, bytes).expect("write");
    let err = restore_dir(dir, &path, pass).expect_err("must be refused");
    assert_eq!(hash_dir(dir), before, "live store changed after {err:?}");
    assert!(!dir.join(layout::NEW_DIR).exists());
    err
}

#[test]
fn truncated_archives_are_refused_at_every_length() {
    let (d, archive, _) = archived(None);
    let bytes = fs::read(&archive).expect("read");
    for cut in 0..bytes.len() {
        match check_archive_bytes(&bytes[..cut], None) {
            Err(StoreError::Truncated { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let dir = d.path().join("store");
    for cut in [0, 5, 12, 40, bytes.len() / 2, bytes.len() - 1] {
        let e = refused(&dir, &bytes[..cut], None);
        assert!(matches!(e, StoreError::Truncated { .. }), "{cut}: {e:?}");
    }
    // Trailing garbage is refused too.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(refused(&dir, &long, None), StoreError::Corrupt(_)));
}

#[test]
fn bit_flips_are_refused_everywhere() {
    for pass in [None, Some("pw")] {
        let (d, archive, _) = archived(pass);
        let bytes = fs::read(&archive).expect("read");
        let hlen = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        let payload_start = 14 + hlen;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            let err = check_archive_bytes(&b, pass).expect_err("flip accepted");
            // The version field gives UnsupportedVersion, everything else
            // an archive error (NotAnArchive, Truncated, Checksum, Corrupt).
            let want = if (8..10).contains(&i) {
                StoreErrorKind::Version
            } else {
                StoreErrorKind::Archive
            };
            assert_eq!(err.kind(), want, "byte {i}: {err:?}");
            if i >= payload_start {
                assert!(
                    matches!(err, StoreError::ChecksumMismatch(_)),
                    "{i}: {err:?}"
                );
            }
        }
        let dir = d.path().join("store");
        for i in [0, 9, 11, 20, payload_start + 3, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 0x80;
            refused(&dir, &b, pass);
        }
    }
}

#[test]
fn version_passphrase_and_garbage_errors_are_precise() {
    let (d, archive, _) = archived(Some("right"));
    let dir = d.path().join("store");
    let bytes = fs::read(&archive).expect("read");

    let e = refused(&dir, &bytes, None);
    assert!(matches!(e, StoreError::PassphraseRequired), "{e:?}");
    assert!(e.is_retryable());
    let e = refused(&dir, &bytes, Some("wrong"));
    assert!(matches!(e, StoreError::WrongPassphrase), "{e:?}");

    let mut v2 = bytes.clone();
    v2[9] = 2;
    let e = refused(&dir, &v2, Some("right"));
    assert!(
        matches!(
            e,
            StoreError::UnsupportedVersion {
                what: "format",
                found: 2,
                ..
            }
        ),
        "{e:?}"
    );

    let e = refused(&dir, b"PK\x03\x04 this is a zip file", None);
    assert!(matches!(e, StoreError::NotAnArchive { .. }), "{e:?}");
    assert!(!e.is_retryable());

    // Newer schema, well-formed archive.
    let note = encode(&Note {
        id: 1,
        text: "x".into(),
        created_ms: 1,
    })
    .expect("enc");
    let (newer, _) = encode_archive(
        &[(NOTES, &u64_key(1), &note)],
        CURRENT_SCHEMA + 1,
        None,
        &cheap(),
    )
    .expect("archive");
    let e = refused(&dir, &newer, None);
    assert!(
        matches!(e, StoreError::UnsupportedVersion { what: "schema", .. }),
        "{e:?}"
    );

    // Well-formed container with a record that does not decode.
    let (bad, _) = encode_archive(
        &[(NOTES, &u64_key(1), b"\x01{not json")],
        CURRENT_SCHEMA,
        None,
        &cheap(),
    )
    .expect("archive");
    let e = refused(&dir, &bad, None);
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");

    // A store that is open cannot be restored into.
    let s = Store::open(&dir).expect("open");
    let e = restore_dir(&dir, &archive, Some("right")).expect_err("locked");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    // Store::restore gives the store back on failure.
    let (r, back) = s.restore(&archive, Some("nope"));
    assert!(matches!(r, Err(StoreError::WrongPassphrase)), "{r:?}");
    assert_eq!(back.expect("reopened").notes().expect("notes").len(), 3);
}

#[test]
fn parse_records_is_bounded() {
    // Declared lengths larger than what is left must not panic or allocate.
    let mut c = vec![5u8];
    c.extend_from_slice(b"notes");
    c.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(parse_records(&c, 1), Err(StoreError::Corrupt(_))));
    let mut c = vec![5u8];
    c.extend_from_slice(b"notes");
    c.extend_from_slice(&8u32.to_be_bytes());
    c.extend_from_slice(&[0; 4]);
    assert!(matches!(parse_records(&c, 1), Err(StoreError::Corrupt(_))));
    let mut c = vec![3u8];
    c.extend_from_slice(b"xyz");
    assert!(matches!(parse_records(&c, 1), Err(StoreError::Corrupt(_))));
    assert!(matches!(parse_records(&[], 1), Err(StoreError::Corrupt(_))));
    assert!(parse_records(&[], 0).expect("empty").is_empty());
}

#[test]
fn backup_while_another_thread_writes_is_consistent() {
    let d = tmp();
    let store = Arc::new(Store::open(&d.path().join("s")).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 50 {
                let body = "x".repeat((i % 200) as usize);
                s.add_note(&format!("begin {i} {body} end {i}"))
                    .expect("note");
                s.append_history(entry(i, "t", "r", i)).expect("history");
                i += 1;
            }
            i
        })
    };
    let mut archives = Vec::new();
    for k in 0..4 {
        let out = d.path().join(format!("b{k}.serenabk"));
        store.backup(&out, None).expect("backup");
        archives.push(out);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(written >= 50);
    for a in archives {
        let bytes = fs::read(&a).expect("read");
        check_archive_bytes(&bytes, None).expect("valid");
        let fresh = tempfile::tempdir().expect("tmp");
        restore_dir(fresh.path(), &a, None).expect("restore");
        let s = Store::open(fresh.path()).expect("open");
        let notes = s.notes().expect("notes");
        // A snapshot of a single writer: notes 1..=n, no gaps, all complete.
        for (idx, n) in notes.iter().enumerate() {
            let i = idx as u64;
            assert_eq!(n.id, i + 1);
            let want = format!("begin {i} {} end {i}", "x".repeat((i % 200) as usize));
            assert_eq!(n.text, want);
        }
        // Each note was written before its history entry: the snapshot has
        // either as many entries or one fewer.
        let h = s.history_len();
        assert!(
            h == notes.len() || h + 1 == notes.len(),
            "{h} vs {}",
            notes.len()
        );
    }
}

// ------------------------------------------------------- crash-safe restore

#[test]
fn interrupted_swap_is_finished_or_discarded() {
    let d = tmp();
    let old_dir = d.path().join("old");
    let new_dir = d.path().join("new");
    let old = {
        let s = Store::open(&old_dir).expect("open");
        s.add_note("old data").expect("note");
        dump(&s)
    };
    let new = {
        let s = Store::open(&new_dir).expect("open");
        s.add_note("new data").expect("note");
        s.add_note("more new data").expect("note");
        dump(&s)
    };
    let state = |name: &str| {
        let dir = d.path().join(name);
        copy_dir(&old_dir, &dir);
        copy_dir(&new_dir.join(layout::DB_DIR), &dir.join(layout::NEW_DIR));
        dir
    };
    // Killed while building the staging copy: no marker -> old data.
    let dir = state("building");
    assert_eq!(dump(&Store::open(&dir).expect("open")), old);
    assert!(!dir.join(layout::NEW_DIR).exists());
    // Marker written, nothing renamed yet -> new data, old kept for undo.
    let dir = state("marked");
    fs::write(dir.join(layout::SWAP_MARKER), "swap\n").expect("marker");
    assert_eq!(dump(&Store::open(&dir).expect("open")), new);
    undo_restore_dir(&dir).expect("undo");
    assert_eq!(dump(&Store::open(&dir).expect("open")), old);
    // Live dir already moved aside -> new data.
    let dir = state("half-swapped");
    fs::write(dir.join(layout::SWAP_MARKER), "swap\n").expect("marker");
    fs::rename(dir.join(layout::DB_DIR), dir.join(layout::UNDO_DIR)).expect("mv");
    assert_eq!(dump(&Store::open(&dir).expect("open")), new);
    assert!(!dir.join(layout::SWAP_MARKER).exists());
    // Killed during undo after the marker, before any rename -> unchanged.
    let dir = state("undo-marked");
    fs::remove_dir_all(dir.join(layout::NEW_DIR)).expect("rm");
    copy_dir(&new_dir.join(layout::DB_DIR), &dir.join(layout::UNDO_DIR));
    fs::write(dir.join(layout::SWAP_MARKER), "swap\n").expect("marker");
    assert_eq!(dump(&Store::open(&dir).expect("open")), old);
}

// ---------------------------------------------------------------- migrations

/// Writes a schema-v1 store: notes as plain UTF-8, `schema_version` = 1.
fn write_v1_fixture(dir: &Path, notes: &[&str]) {
    fs::create_dir_all(dir).expect("mkdir");
    let db = sled::open(dir.join(layout::DB_DIR)).expect("sled");
    let t = db.open_tree(NOTES).expect("tree");
    for (i, n) in notes.iter().enumerate() {
        t.insert(u64_key(i as u64 + 1), n.as_bytes())
            .expect("insert");
    }
    db.open_tree(META)
        .expect("meta")
        .insert(SCHEMA_KEY, &1u32.to_be_bytes())
        .expect("schema");
    db.flush().expect("flush");
}

#[test]
fn migration_list_reaches_current_schema() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.from, i as u32 + 1);
    }
    assert_eq!(MIGRATIONS.len() as u32 + 1, CURRENT_SCHEMA);
}

#[test]
fn v1_store_is_migrated_once() {
    let d = tmp();
    write_v1_fixture(d.path(), &["buy milk", "Ünïcödé", ""]);
    let before = now_ms();
    let s = Store::open(d.path()).expect("open v1");
    assert_eq!(s.migrated_from(), Some(1));
    let notes = s.notes().expect("notes");
    assert_eq!(
        notes
            .iter()
            .map(|n| (n.id, n.text.as_str()))
            .collect::<Vec<_>>(),
        [(1, "buy milk"), (2, "Ünïcödé"), (3, "")]
    );
    assert!(notes.iter().all(|n| n.created_ms >= before));
    assert_eq!(s.add_note("new").expect("note").id, 4);
    assert_eq!(
        migrations::schema_version(&s.t.meta).expect("v"),
        Some(CURRENT_SCHEMA)
    );
    drop(s);
    let s = Store::open(d.path()).expect("reopen");
    assert_eq!(s.migrated_from(), None);
    assert_eq!(s.notes().expect("notes").len(), 4);
}

#[test]
fn v1_store_without_version_and_rerun_are_handled() {
    // Data but no schema_version: treated as v1. A half-done migration
    // (some notes already v2) is completed without damage.
    let d = tmp();
    write_v1_fixture(d.path(), &["one", "two"]);
    {
        let db = sled::open(d.path().join(layout::DB_DIR)).expect("sled");
        db.open_tree(META)
            .expect("meta")
            .remove(SCHEMA_KEY)
            .expect("rm");
        let note = Note {
            id: 1,
            text: "one".into(),
            created_ms: 42,
        };
        db.open_tree(NOTES)
            .expect("notes")
            .insert(u64_key(1), encode(&note).expect("enc"))
            .expect("insert");
        db.flush().expect("flush");
    }
    let s = Store::open(d.path()).expect("open");
    let notes = s.notes().expect("notes");
    assert_eq!(notes[0].created_ms, 42);
    assert_eq!(notes[1].text, "two");
}

#[test]
fn newer_schema_refuses_to_open() {
    let d = tmp();
    Store::open(d.path())
        .expect("create")
        .close()
        .expect("close");
    {
        let db = sled::open(d.path().join(layout::DB_DIR)).expect("sled");
        db.open_tree(META)
            .expect("meta")
            .insert(SCHEMA_KEY, &(CURRENT_SCHEMA + 1).to_be_bytes())
            .expect("set");
        db.flush().expect("flush");
    }
    let e = Store::open(d.path()).expect_err("too new");
    assert!(matches!(e, StoreError::SchemaTooNew { .. }), "{e:?}");
    assert_eq!(e.kind(), StoreErrorKind::Version);
}

#[test]
fn v1_archive_restores_and_migrates() {
    let d = tmp();
    let schema = 1u32.to_be_bytes();
    let k1 = u64_key(1);
    let k2 = u64_key(2);
    let records = [
        (META, SCHEMA_KEY, &schema[..]),
        (NOTES, &k1[..], &b"first note"[..]),
        (NOTES, &k2[..], &b"second note"[..]),
    ];
    let (bytes, info) = encode_archive(&records, 1, Some("pw"), &cheap()).expect("archive");
    assert_eq!(info.schema_version, 1);
    let path = d.path().join("v1.serenabk");
    fs::write(&path, &bytes).expect("write");
    let dir = d.path().join("s");
    let live = Store::open(&dir).expect("open");
    live.add_note("current").expect("note");
    drop(live);
    let r = restore_dir(&dir, &path, Some("pw")).expect("restore");
    assert_eq!(r.migrated_from, Some(1));
    let s = Store::open(&dir).expect("open");
    let texts: Vec<String> = s
        .notes()
        .expect("notes")
        .into_iter()
        .map(|n| n.text)
        .collect();
    assert_eq!(texts, ["first note", "second note"]);
    assert_eq!(s.add_note("third").expect("note").id, 3);

    // A v1 archive whose note is not UTF-8 fails in migration, live untouched.
    drop(s);
    let bad = [
        (META, SCHEMA_KEY, &schema[..]),
        (NOTES, &k1[..], &b"\xff\xfe"[..]),
    ];
    let (bytes, _) = encode_archive(&bad, 1, None, &cheap()).expect("archive");
    let e = refused(&dir, &bytes, None);
    assert!(matches!(e, StoreError::Migration { .. }), "{e:?}");
}

#[test]
fn time_helpers() {
    assert_eq!(to_unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    assert!(to_unix_ms(SystemTime::now()) > 1_600_000_000_000);
}
