//! Shared test helpers: fixture paths, the `serena` binary in a scratch environment.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared fixtures: `$SERENA_SHARED_FIXTURES`, else `../shared/fixtures` next to the repo.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("SERENA_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/fixtures"));
    assert!(
        dir.join("models").is_dir(),
        "shared fixtures not found at {}: check out the shared fixtures next to the repository \
         (../shared/fixtures) or set SERENA_SHARED_FIXTURES",
        dir.display()
    );
    dir
}

/// The fixture model directory (`SERENA_MODELS` for tests).
pub fn models() -> PathBuf {
    shared().join("models")
}

/// A model fixture by path relative to the models directory; fails with what is missing.
pub fn model(rel: &str) -> PathBuf {
    let path = models().join(rel);
    assert!(path.is_file(), "model fixture missing: {}", path.display());
    path
}

/// A file under `audio-fixtures/`; fails with what is missing.
pub fn audio(rel: &str) -> PathBuf {
    let path = repo().join("audio-fixtures").join(rel);
    assert!(path.is_file(), "audio fixture missing: {}", path.display());
    path
}

/// A scratch environment: empty data dir, no config file, fixture models.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `serena` with this environment.
    pub fn serena(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("serena").expect("serena binary");
        cmd.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("SERENA_MODELS", models())
            .env("SERENA_DATA_DIR", self.path().join("data"))
            .env("SERENA_CONFIG", self.path().join("config.toml"))
            // The same power profile on every machine (performance), a laptop on battery too.
            .env("SERENA_POWER", "mains")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// `serena serve --events json ARGS` as a child, its standard error to `stderr`; its
    /// standard output lines arrive on the receiver (read by a thread of their own).
    pub fn spawn_serve(
        &self,
        args: &[&str],
        stderr: std::process::Stdio,
    ) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let mut child = self
            .serena_std()
            .arg("serve")
            .args(["--events", "json"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn serena serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, events)
    }

    /// The data directory `serena` uses in this environment.
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// `serena` as a plain `std::process::Command` with this environment, for long-running
    /// children (`serve`, `notes add --stdin`).
    pub fn serena_std(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("serena"));
        cmd.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("SERENA_MODELS", models())
            .env("SERENA_DATA_DIR", self.data())
            .env("SERENA_CONFIG", self.path().join("config.toml"))
            .env("RUST_LOG", "warn");
        cmd
    }
}

/// `serena ARGS` in `env`, which must succeed; its standard output.
pub fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.serena().args(args).output().expect("run serena");
    assert!(
        out.status.success(),
        "serena {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Words of a transcript, lowercased, punctuation dropped.
pub fn words(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub const JFK: &str =
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country";
