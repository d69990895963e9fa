//! `serena serve`: the long-running Serena. Owns the store, serves the control socket, fires
//! timers, prunes old data, and stops cleanly on Ctrl-C / SIGTERM.
//!
//! Each part is a task on one tokio runtime sharing one [`Shutdown`]; later parts (the live
//! voice pipeline, Wyoming and HTTP servers) are more tasks started here behind their flags.
//! Events (ready, timer done, stopping) are printed on standard output, one line each, as
//! text or JSON (`--events json`); logs go to standard error.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Serialize;
use serena::control::{self, Owner, Role, Service, Shutdown};
use serena::error::ExitCode;
use serena::skills::timer_runtime::{self, TimerEvent, WallClock};
use serena::store::spawn_maintenance;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use super::store_cmds::{context, parse_duration};
use super::{Ctx, UsageError};
use serena::gateway::Gateway;

/// How long shutdown waits for the tasks to finish (requests in progress, a timer being
/// announced).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EventFormat {
    /// `timer_done id=3 name=pasta late_ms=12 message="Pasta timer done"`.
    Text,
    /// One JSON object per line, with an `event` member.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Format of the event lines on standard output.
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    events: EventFormat,
    /// Do not speak when a timer goes off (the event is still printed).
    #[arg(long)]
    no_speak: bool,
    /// How often to prune old history, metrics and finished timers (10m, 1h, 1d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    maintenance_every: Duration,
    /// Wyoming server (Home Assistant): tcp://HOST:PORT, or `off` [default: tcp://127.0.0.1:10300].
    #[arg(long, value_name = "URI")]
    wyoming: Option<String>,
    /// OpenAI-compatible HTTP API: HOST:PORT, or `off` [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Bearer token the HTTP API requires (needed to listen beyond this machine).
    #[arg(long, env = "SERENA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Let the Wyoming server listen beyond this machine (Wyoming has no authentication).
    #[arg(long)]
    insecure_allow_remote: bool,
    /// Advertise the Wyoming server over mDNS (`_wyoming._tcp.local.`), so Home Assistant
    /// discovers it.
    #[arg(long)]
    mdns: bool,
}

/// Advertise the Wyoming server on `port`; the daemon stops the advertisement when shut down.
fn advertise(port: u16) -> Result<mdns_sd::ServiceDaemon, mdns_sd::Error> {
    let daemon = mdns_sd::ServiceDaemon::new()?;
    let host = sysinfo::System::host_name().unwrap_or_else(|| "serena".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let info = mdns_sd::ServiceInfo::new(
        "_wyoming._tcp.local.",
        &format!("serena-{host}"),
        &format!("{host}.local."),
        "",
        port,
        None::<std::collections::HashMap<String, String>>,
    )?
    .enable_addr_auto();
    daemon.register(info)?;
    Ok(daemon)
}

const DEFAULT_WYOMING: &str = "127.0.0.1:10300";
const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// Where a server listens: `None` when turned off.
fn server_addr(
    flag: Option<&str>,
    default: &str,
    scheme: Option<&str>,
) -> Result<Option<(std::net::SocketAddr, bool)>, UsageError> {
    let (raw, explicit) = match flag {
        Some(f) => (f, true),
        None => (default, false),
    };
    if raw == "off" {
        return Ok(None);
    }
    let bare = match scheme {
        Some(s) => raw.strip_prefix(s).unwrap_or(raw),
        None => raw,
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(bare)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            UsageError(format!(
                "cannot use {raw:?} as an address: expected {}HOST:PORT or off",
                scheme.unwrap_or("")
            ))
        })?;
    Ok(Some((addr, explicit)))
}

/// Bind `addr`; a failure on a default address is a warning (the server stays off), on an
/// address the user asked for it is an error.
async fn bind(
    what: &str,
    addr: Option<(std::net::SocketAddr, bool)>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some((addr, explicit)) = addr else {
        return Ok(None);
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "the {what} server is off: its default address is in use");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("cannot listen on {addr} for {what}: {e}")),
    }
}

/// What `serve` reports on standard output.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event<'a> {
    /// Listening; the store is open.
    Ready {
        pid: u32,
        socket: &'a std::path::Path,
        active_timers: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        wyoming: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        http: Option<String>,
    },
    /// A timer went off.
    TimerDone {
        #[serde(flatten)]
        timer: &'a TimerEvent,
        message: String,
    },
    /// The memory manager unloaded a model (idle, or memory ran low); the next request
    /// loads it again.
    ModelUnloaded {
        slot: &'a str,
        /// `idle` or `low_memory`.
        reason: &'a str,
        /// Idle: seconds unused. Low memory: MiB available.
        value: f64,
    },
    /// The power profile in force changed (battery, mains, or pinned by voice).
    Profile { from: String, to: String },
    /// A signal arrived; draining.
    Stopping { signal: &'a str },
    /// The store is closed and the socket removed.
    Stopped,
}

#[derive(Clone, Copy)]
struct Events(EventFormat);

impl Events {
    fn emit(self, event: &Event<'_>) {
        let line = match self.0 {
            EventFormat::Json => serde_json::to_string(event).unwrap_or_default(),
            EventFormat::Text => match event {
                Event::Ready {
                    pid,
                    socket,
                    active_timers,
                    wyoming,
                    http,
                } => format!(
                    "ready pid={pid} socket={} active_timers={active_timers} wyoming={} http={}",
                    socket.display(),
                    wyoming.as_deref().unwrap_or("off"),
                    http.as_deref().unwrap_or("off"),
                ),
                Event::TimerDone { timer, message } => format!(
                    "timer_done id={} name={} late_ms={} message={message:?}",
                    timer.id,
                    timer.name.as_deref().unwrap_or("-"),
                    timer.late_ms
                ),
                Event::ModelUnloaded {
                    slot,
                    reason,
                    value,
                } => format!("model_unloaded slot={slot} reason={reason} value={value:.1}"),
                Event::Profile { from, to } => format!("profile from={from} to={to}"),
                Event::Stopping { signal } => format!("stopping signal={signal}"),
                Event::Stopped => "stopped".to_string(),
            },
        };
        let mut out = std::io::stdout().lock();
        // Nobody reading standard output is no reason to stop serving.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

/// `serena serve`.
pub fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Check the addresses before claiming anything.
    let wyoming = server_addr(args.wyoming.as_deref(), DEFAULT_WYOMING, Some("tcp://"))?;
    let http = server_addr(args.http.as_deref(), DEFAULT_HTTP, None)?;
    if let Some((addr, _)) = wyoming {
        if !addr.ip().to_canonical().is_loopback() && !args.insecure_allow_remote {
            return Err(UsageError(format!(
                "refusing to serve Wyoming on {addr}: the protocol has no authentication, so anyone \
                 on the network could use it; add --insecure-allow-remote if you mean it"
            ))
            .into());
        }
    }
    if let Some((addr, _)) = http {
        serena::http::check_bind(addr, args.token.as_deref()).map_err(UsageError)?;
    }
    let owner = Owner::claim(&ctx.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serena-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(ctx, args, owner, wyoming, http))
}

type Addr = Option<(std::net::SocketAddr, bool)>;

async fn serve(
    ctx: &Ctx,
    args: ServeArgs,
    mut owner: Owner,
    wyoming: Addr,
    http: Addr,
) -> anyhow::Result<ExitCode> {
    let events = Events(args.events);
    let listener = owner.take_listener()?;
    let store = Arc::clone(owner.store());
    let shutdown = Shutdown::new();
    let timers_changed = Arc::new(Notify::new());
    let mut cx = context(ctx);
    cx.data_dir = owner.data_dir().to_path_buf();
    let service = Arc::new(Service::new(
        Arc::clone(&store),
        cx.clone(),
        Role::Serve,
        Some(Arc::clone(&timers_changed)),
    ));
    let active_timers = store.active_timers()?.len();
    // Before anything can answer on the socket: a client that saw us ready may signal us.
    let mut signals = Signals::install().context("installing signal handlers")?;

    let mut tasks = JoinSet::new();
    tasks.spawn(control::server::run(
        listener,
        Arc::clone(&service),
        shutdown.clone(),
    ));
    let (timer_tx, timer_rx) = mpsc::channel(32);
    tasks.spawn(timer_runtime::run(
        Arc::clone(&store),
        WallClock,
        timers_changed,
        timer_tx,
        shutdown.clone(),
    ));
    tasks.spawn(announce(timer_rx, events, (!args.no_speak).then_some(cx)));

    let gateway = Arc::new(Gateway::new(Arc::clone(&service)));
    // One engine call at a time across both servers: two at once on a small machine only
    // make both slower (the shared ggml's threads compete).
    let engine_slots = Arc::new(tokio::sync::Semaphore::new(1));
    let wyoming_listener = bind("Wyoming", wyoming).await?;
    let wyoming_addr = wyoming_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| format!("tcp://{a}"));
    let mut mdns = None;
    if let (true, Some(listener)) = (args.mdns, &wyoming_listener) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        match advertise(port) {
            Ok(d) => mdns = Some(d),
            Err(e) => tracing::warn!(error = %e, "cannot advertise over mDNS"),
        }
    }
    if let Some(listener) = wyoming_listener {
        let stop = shutdown.clone();
        tasks.spawn(serena::wyoming::serve(
            listener,
            Arc::clone(&gateway),
            serena::wyoming::ServerOptions {
                engine_slots: Arc::clone(&engine_slots),
                ..serena::wyoming::ServerOptions::default()
            },
            async move { stop.wait().await },
        ));
    }
    let http_listener = bind("HTTP", http).await?;
    let http_addr = http_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());
    if let Some(listener) = http_listener {
        let stop = shutdown.clone();
        let opts = serena::http::ServerOptions {
            token: args.token.clone(),
            engine_slots: Some(Arc::clone(&engine_slots)),
            ..serena::http::ServerOptions::default()
        };
        let backend = Arc::clone(&gateway);
        tasks.spawn(async move {
            if let Err(e) =
                serena::http::serve(listener, backend, opts, async move { stop.wait().await }).await
            {
                tracing::warn!(error = %e, "the HTTP server stopped");
            }
        });
    }
    // The memory manager: the speech and language models unload when idle
    // (`power.idle_unload_seconds`) or when memory runs low (`power.min_available_mb`).
    let mut unloader = ctx.config.power.unloader();
    unloader.add(gateway.whisper_slot().clone());
    unloader.add(service.engines().llm_slot().clone());
    let (unload_tx, unload_rx) = mpsc::channel(16);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let stats = unloader
            .run(Some(unload_tx), async move { stop.wait().await })
            .await;
        tracing::debug!(?stats, "memory manager stopped");
    });
    tasks.spawn(report_unloads(unload_rx, events));
    tasks.spawn(watch_power(
        Arc::clone(&service),
        events,
        Duration::from_secs(u64::from(ctx.config.power.poll_seconds.max(1))),
        shutdown.clone(),
    ));
    let maintenance = spawn_maintenance(
        Arc::clone(&store),
        ctx.config.store.retention(),
        args.maintenance_every,
    );
    drop(store);

    events.emit(&Event::Ready {
        pid: std::process::id(),
        socket: owner.socket_path(),
        active_timers,
        wyoming: wyoming_addr,
        http: http_addr,
    });
    let signal = signals.recv().await;
    events.emit(&Event::Stopping { signal });
    tracing::info!(signal, "stopping");
    shutdown.trigger();
    maintenance.abort();
    let _ = maintenance.await;
    let drained = tokio::time::timeout(STOP_TIMEOUT, async {
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::warn!(error = %e, "a serve task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks still running after {STOP_TIMEOUT:?}; stopping anyway");
        tasks.abort_all();
    }
    if let Some(d) = mdns {
        let _ = d.shutdown();
    }
    drop(gateway);
    drop(service);
    owner.close()?;
    events.emit(&Event::Stopped);
    Ok(ExitCode::Ok)
}

/// Prints what the memory manager unloaded.
async fn report_unloads(mut rx: mpsc::Receiver<serena::power::UnloadEvent>, events: Events) {
    use serena::power::UnloadReason;
    while let Some(event) = rx.recv().await {
        let (reason, value) = match event.reason {
            UnloadReason::Idle { idle } => ("idle", idle.as_secs_f64()),
            UnloadReason::LowMemory { available, .. } => ("low_memory", (available >> 20) as f64),
        };
        events.emit(&Event::ModelUnloaded {
            slot: &event.slot,
            reason,
            value,
        });
    }
}

/// Reads the power profile every `every` (as answers do, so hysteresis and changes are
/// kept in the store for `serena status`) and reports each change.
async fn watch_power(service: Arc<Service>, events: Events, every: Duration, shutdown: Shutdown) {
    let read = |service: Arc<Service>| {
        tokio::task::spawn_blocking(move || {
            let cx = service.context();
            serena::power::now::resolve(&cx.config, service.store(), serena::store::now_ms())
                .profile
        })
    };
    let Ok(mut current) = read(Arc::clone(&service)).await else {
        return;
    };
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        let Ok(profile) = read(Arc::clone(&service)).await else {
            return;
        };
        if profile != current {
            tracing::info!(from = %current, to = %profile, "power profile changed");
            events.emit(&Event::Profile {
                from: current.to_string(),
                to: profile.to_string(),
            });
            current = profile;
        }
    }
}

/// Prints (and speaks, with a context) each timer event until the timer task ends.
async fn announce(
    mut rx: mpsc::Receiver<TimerEvent>,
    events: Events,
    speak: Option<control::Context>,
) {
    while let Some(timer) = rx.recv().await {
        let message = timer.message();
        events.emit(&Event::TimerDone {
            timer: &timer,
            message: message.clone(),
        });
        let Some(cx) = &speak else { continue };
        let cx = cx.clone();
        let spoken = tokio::task::spawn_blocking(move || {
            serena::answer::speak(&message, &cx.config, None, &cx.data_dir)
        })
        .await;
        match spoken {
            Ok(Ok(Some(path))) => {
                tracing::info!(path = %path.display(), "no speaker: the announcement was written to a file")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot speak the timer announcement"),
            Err(e) => tracing::warn!(error = %e, "the announcement task failed"),
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), caught from installation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of them; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
