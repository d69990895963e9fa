//! A private PulseAudio server with a virtual microphone and speaker, per test process.
//!
//! Recipe from the project's audio-testing notes: null sinks with `norewinds=1`, the
//! microphone feed's monitor remapped as the default source. cpal reaches it through
//! ALSA's pulse plugin (`libasound2-plugins`). Tests that use it take [`lock`] so they never
//! share the virtual microphone at once.

use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub struct Pulse {
    pub dir: tempfile::TempDir,
    child: Mutex<Child>,
    /// The shell line that runs the server (with its watchdog).
    script: String,
}

impl Pulse {
    /// Environment variables that point a child process at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.path();
        vec![
            ("XDG_RUNTIME_DIR".into(), d.display().to_string()),
            (
                "PULSE_RUNTIME_PATH".into(),
                d.join("pulse").display().to_string(),
            ),
            (
                "PULSE_STATE_PATH".into(),
                d.join("state").display().to_string(),
            ),
            (
                "PULSE_SERVER".into(),
                format!("unix:{}", d.join("pulse/native").display()),
            ),
            (
                "PULSE_COOKIE".into(),
                d.join("cookie").display().to_string(),
            ),
        ]
    }

    /// Run a pulse utility (`pactl`, `paplay`, `parec`) against this server.
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env()).env("HOME", self.dir.path());
        cmd
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.crash();
    }
}

fn start() -> Pulse {
    for tool in ["pulseaudio", "pactl", "paplay", "parec"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "{tool} is not installed: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("pulse")).expect("mkdir");
    std::fs::create_dir_all(d.join("state")).expect("mkdir");
    let socket = d.join("pulse/native");
    let script = format!(
        "load-module module-native-protocol-unix auth-anonymous=1 socket={}\n\
         load-module module-null-sink sink_name=speaker rate=48000 channels=2 norewinds=1\n\
         load-module module-null-sink sink_name=mic_feed rate=48000 channels=1 norewinds=1\n\
         load-module module-remap-source source_name=virtmic master=mic_feed.monitor channels=1\n\
         set-default-sink speaker\n\
         set-default-source virtmic\n",
        socket.display()
    );
    let pa = d.join("test.pa");
    std::fs::write(&pa, script).expect("write test.pa");
    let log = d.join("pulse.log");
    // A watchdog shell ends the server when this test process goes away (statics are not
    // dropped at exit).
    let watchdog = format!(
        "pulseaudio -n -F '{pa}' --daemonize=no --exit-idle-time=-1 --use-pid-file=no \
         --disallow-module-loading=no --realtime=no --high-priority=no --log-target=file:'{log}' & \
         pa=$!; while kill -0 {me} 2>/dev/null && kill -0 $pa 2>/dev/null; do sleep 1; done; kill $pa 2>/dev/null",
        pa = pa.display(),
        log = log.display(),
        me = std::process::id()
    );
    let pulse = Pulse {
        child: Mutex::new(Pulse::spawn(&watchdog, d)),
        dir,
        script: watchdog,
    };
    pulse.wait_ready();
    pulse
}

impl Pulse {
    /// Kill the server (as a crash would), and start it again on the same socket.
    pub fn crash(&self) {
        if let Ok(mut child) = self.child.lock() {
            // The watchdog shell's child is the server: kill the whole process group.
            let pgid = child.id() as libc::pid_t;
            // SAFETY: signalling the process group we created for the watchdog.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Start the server again after [`Pulse::crash`].
    pub fn restart(&self) {
        if let Ok(mut child) = self.child.lock() {
            *child = Pulse::spawn(&self.script, self.dir.path());
        }
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let pulse = self;
        let log = self.dir.path().join("pulse.log");
        // Wait until it answers.
        let started = Instant::now();
        loop {
            let ok = pulse
                .cmd("pactl")
                .arg("info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "private PulseAudio did not start; see {}",
                log.display()
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    fn spawn(script: &str, d: &std::path::Path) -> Child {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.env("HOME", d)
            .env("XDG_RUNTIME_DIR", d)
            .env("PULSE_RUNTIME_PATH", d.join("pulse"))
            .env("PULSE_STATE_PATH", d.join("state"))
            .env("PULSE_COOKIE", d.join("cookie"))
            .spawn()
            .expect("cannot start sh for the PulseAudio watchdog")
    }
}

static SERVER: OnceLock<Pulse> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::new(());

/// A server of the test's own (for tests that crash it), stopped when dropped.
pub fn private() -> Pulse {
    start()
}

/// The shared server, started on first use.
pub fn server() -> &'static Pulse {
    SERVER.get_or_init(start)
}

/// Exclusive use of the virtual devices.
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
