//! The store through the CLI, with no Serena running: backup / restore / undo round trips,
//! encrypted archives, and acknowledged writes surviving SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::{ok, Env};

/// `serena export --json` without the export time.
fn export(env: &Env) -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(&ok(env, &["export", "--json"])).expect("export is JSON");
    doc.as_object_mut()
        .expect("export is an object")
        .remove("exported_unix_ms");
    doc
}

/// Path → SHA-256 of every file under `dir`.
fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(
                    path.strip_prefix(dir)
                        .expect("prefix")
                        .display()
                        .to_string(),
                    hex::encode(Sha256::digest(&bytes)),
                );
            }
        }
    }
    out
}

fn fill(env: &Env) {
    ok(env, &["notes", "add", "the keys are in the drawer"]);
    ok(env, &["notes", "add", "call mum on sunday"]);
    ok(env, &["lists", "create", "groceries"]);
    ok(env, &["lists", "add", "groceries", "oat", "milk"]);
    ok(env, &["lists", "add", "groceries", "bread"]);
    ok(env, &["lists", "done", "groceries", "bread"]);
    ok(env, &["lists", "add", "shopping", "apples"]);
    ok(env, &["ask", "set a timer for 10 minutes"]);
    ok(env, &["ask", "add eggs to my shopping list"]);
    ok(env, &["ask", "what time is it"]);
}

#[test]
fn backup_restore_and_undo_round_trip_through_the_cli() {
    let env = Env::new();
    fill(&env);
    let before = export(&env);
    assert_eq!(before["notes"].as_array().map(Vec::len), Some(2));
    assert_eq!(before["timers"].as_array().map(Vec::len), Some(1));
    assert_eq!(before["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(before["lists"].as_array().map(Vec::len), Some(2));

    let archive = env.path().join("backup.serena");
    ok(&env, &["backup", archive.to_str().expect("utf-8")]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive)
            .expect("archive")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the archive is the user's only");
    }

    // Lose the store entirely, then restore it.
    std::fs::remove_dir_all(env.data().join("store")).expect("wipe the store");
    assert_eq!(export(&env)["notes"].as_array().map(Vec::len), Some(0));
    std::fs::remove_dir_all(env.data().join("store")).expect("wipe the store again");
    let said = ok(&env, &["restore", archive.to_str().expect("utf-8")]);
    assert!(said.contains("Restored"), "{said}");
    assert_eq!(
        export(&env),
        before,
        "export after restore equals export before backup"
    );

    // Change something, restore over it, then undo the restore.
    ok(&env, &["notes", "add", "written after the backup"]);
    let changed = export(&env);
    let said = ok(&env, &["restore", archive.to_str().expect("utf-8")]);
    assert!(said.contains("--undo"), "{said}");
    assert_eq!(export(&env), before);
    ok(&env, &["restore", "--undo"]);
    assert_eq!(
        export(&env),
        changed,
        "undo puts back what the restore replaced"
    );
}

#[test]
fn encrypted_backups_need_the_right_passphrase_and_a_wrong_one_changes_nothing() {
    let env = Env::new();
    fill(&env);
    let before = export(&env);
    let archive = env.path().join("secret.serena");
    let path = archive.to_str().expect("utf-8");
    env.serena()
        .args(["backup", "--encrypt", path])
        .env("SERENA_BACKUP_PASSPHRASE", "correct horse battery staple")
        .assert()
        .success();
    let bytes = std::fs::read(&archive).expect("archive");
    assert!(
        !bytes.windows(6).any(|w| w == b"drawer"),
        "the archive must not hold plaintext"
    );

    ok(&env, &["notes", "add", "only in the live store"]);
    let live = hash_tree(&env.data());

    // Wrong passphrase: exit 6, says why, every file byte-for-byte unchanged.
    let out = env
        .serena()
        .args(["restore", path])
        .env("SERENA_BACKUP_PASSPHRASE", "wrong")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(
        hash_tree(&env.data()),
        live,
        "a refused restore changes nothing"
    );

    // No passphrase and no terminal: refused before anything happens.
    let out = env.serena().args(["restore", path]).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hash_tree(&env.data()), live);

    // A file that is not an archive: exit 6, unchanged.
    let junk = env.path().join("junk");
    std::fs::write(&junk, b"not a backup").expect("write");
    let out = env
        .serena()
        .args(["restore", junk.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(hash_tree(&env.data()), live);

    env.serena()
        .args(["restore", path])
        .env("SERENA_BACKUP_PASSPHRASE", "correct horse battery staple")
        .assert()
        .success();
    assert_eq!(export(&env), before);
}

/// xorshift64*: a fixed-seed generator, so a failing run can be repeated exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn acknowledged_notes_survive_sigkill() {
    let env = Env::new();
    let mut rng = Rng(0x5EED_CAFE_F00D_u64);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let started = Instant::now();
    const ROUNDS: usize = 50;
    for round in 0..ROUNDS {
        let kill_after = rng.below(12) as usize;
        let mut child = env
            .serena_std()
            .args(["notes", "add", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serena notes add --stdin");
        let mut stdin = child.stdin.take().expect("stdin");
        // More lines than will be acknowledged: the child is busy writing when it dies.
        let texts: Vec<String> = (0..kill_after + 8)
            .map(|i| format!("round {round} note {i}"))
            .collect();
        stdin
            .write_all(texts.join("\n").as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .expect("feed notes");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for text in texts.iter().take(kill_after) {
            let line = lines.next().expect("an acknowledgement").expect("read");
            let id: u64 = line
                .strip_prefix("ok ")
                .and_then(|id| id.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected acknowledgement {line:?}"));
            acked.insert(id, text.clone());
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        drop(stdin);

        let notes: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&env, &["notes", "--json"])).expect("notes JSON");
        let found: BTreeMap<u64, String> = notes
            .iter()
            .filter_map(|n| Some((n["id"].as_u64()?, n["text"].as_str()?.to_string())))
            .collect();
        for (id, text) in &acked {
            assert_eq!(
                found.get(id),
                Some(text),
                "round {round}: acknowledged note {id} lost after SIGKILL"
            );
        }
        let ids: BTreeSet<u64> = found.keys().copied().collect();
        assert_eq!(ids.len(), found.len());
    }
    assert!(
        acked.len() > ROUNDS,
        "the test acknowledged too few notes to mean much"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "crash test took {:?}",
        started.elapsed()
    );
}
