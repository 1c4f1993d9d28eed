//! Ctrl-C and SIGTERM while the schema changes.
//!
//! The `taskdb` binary calls [`install`]. A signal while no [`CancelGuard`]
//! is alive, or while only SQLite work is guarded (an uncommitted SQLite
//! transaction never survives its process), ends the process at once (exit
//! 128 + signal). While a PostgreSQL [`CancelGuard`] is alive (a
//! [`Migrator`] from taking its lock to the end of the run, `verify` while
//! its scratch database exists), the signal is recorded and the statements
//! of the backends the guard watches are cancelled server-side (a client
//! that merely stops reading leaves a blocked `ALTER TABLE` queued on the
//! server); the work fails, rolls back or cleans up, and returns
//! [`Error::Interrupted`]. A second signal ends the process at once.
//!
//! A guard cancels only backends this process opened: each is known by its
//! PID (`pg_backend_pid()`), read when the guard starts watching the
//! connection, together with its start time (a later backend can reuse a
//! PID) and its `application_name` (behind a transaction pooler a PID
//! belongs to a server connection that may serve another client later).
//! Never by a name alone: replicas in containers are often all PID 1, so a
//! name made from the PID is shared, and a signal to a replica that only
//! waits for the migration lock would cancel the active replica's work.
//!
//! [`Migrator`]: crate::migrate::Migrator

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
#[cfg(feature = "ctrl-c")]
use std::time::Duration;

use diesel::prelude::*;
#[cfg(feature = "ctrl-c")]
use diesel::sql_types::Bool;
use diesel::sql_types::{Integer, Text};

#[cfg(feature = "ctrl-c")]
use crate::db;
use crate::db::{Backend, DatabaseUrl, DbConnection, HasBackend as _};
use crate::error::{Error, Result};

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Identifies each [`CancelGuard`] in [`GUARDS`].
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// The live guards, innermost last.
static GUARDS: Mutex<Vec<Guarded>> = Mutex::new(Vec::new());

/// How often, and how long, the backends are cancelled after a signal: a
/// statement sent just after one cancel would still block.
#[cfg(feature = "ctrl-c")]
const CANCEL_EVERY: Duration = Duration::from_millis(250);
#[cfg(feature = "ctrl-c")]
const CANCEL_SLICE: Duration = Duration::from_millis(10);

/// The thread that keeps cancelling after a signal, and its stop flag:
/// the process must not exit while it is inside libpq (exit tears down
/// what a connection in progress still uses, and the process then dies
/// of a signal instead of exiting 130 / 143).
#[cfg(feature = "ctrl-c")]
static CANCELLER: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);
#[cfg(feature = "ctrl-c")]
static STOP_CANCELLING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops the cancelling thread a signal started, and waits for it: call
/// before the process exits after an interruption.
#[cfg(feature = "cli")]
pub fn stop_cancelling() {
    #[cfg(feature = "ctrl-c")]
    {
        STOP_CANCELLING.store(true, Ordering::SeqCst);
        let thread = CANCELLER.lock().ok().and_then(|mut slot| slot.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
#[cfg(feature = "ctrl-c")]
const CANCEL_ROUNDS: u32 = 40;

/// One guard's server and the backends it cancels.
struct Guarded {
    id: u64,
    // The server the signal thread connects to, to cancel.
    #[cfg_attr(not(feature = "ctrl-c"), allow(dead_code))]
    url: DatabaseUrl,
    backends: Vec<ServerBackend>,
}

/// A backend this process opened, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct ServerBackend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    /// `backend_start` as text with its UTC offset, so it reads back
    /// exactly whatever the cancelling session's time zone.
    #[diesel(sql_type = Text)]
    started: String,
    #[diesel(sql_type = Text)]
    application_name: String,
}

/// Routes SIGINT and SIGTERM to a thread that records them and cancels the
/// guarded statements. Call once. With `say_why`, a signal that ends the
/// process at once first prints one line saying so (the binary's choice;
/// the library ends the process silently).
#[cfg(feature = "ctrl-c")]
pub fn install(say_why: bool) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("taskdb-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(signal, say_why);
            }
        })?;
    Ok(())
}

#[cfg(feature = "ctrl-c")]
fn on_signal(signal: i32, say_why: bool) {
    let first = SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let guarded = GUARDS
        .lock()
        .map(|g| g.iter().any(|g| g.url.backend() == Backend::Postgres))
        .unwrap_or(false);
    if first && guarded {
        // Keep cancelling until the work has rolled back and the process
        // exits (on a thread of its own, so a second signal is still heard).
        let thread = std::thread::Builder::new()
            .name("taskdb-cancel".into())
            .spawn(|| {
                for _ in 0..CANCEL_ROUNDS {
                    if STOP_CANCELLING.load(Ordering::SeqCst) {
                        return;
                    }
                    cancel_watched();
                    // In slices, so that `stop_cancelling` waits little.
                    let mut slept = Duration::ZERO;
                    while slept < CANCEL_EVERY && !STOP_CANCELLING.load(Ordering::SeqCst) {
                        std::thread::sleep(CANCEL_SLICE);
                        slept += CANCEL_SLICE;
                    }
                }
            });
        if let (Ok(thread), Ok(mut slot)) = (thread, CANCELLER.lock()) {
            *slot = Some(thread);
        }
        return;
    }
    // Nothing to clean up, asked twice, or SQLite (whose unfinished
    // transaction is discarded when the process ends, while its thread may
    // sit in a busy wait no other thread can cut short): stop now.
    if say_why {
        eprintln!(
            "error: interrupted by {}; nothing unfinished was kept",
            signal_name(signal)
        );
    }
    std::process::exit(exit_code(signal))
}

/// Cancels whatever the watched backends are running. Best effort: if the
/// server is unreachable the statements fail on their own anyway.
#[cfg(feature = "ctrl-c")]
fn cancel_watched() {
    let targets: Vec<(DatabaseUrl, Vec<ServerBackend>)> = match GUARDS.lock() {
        Ok(guards) => guards
            .iter()
            .filter(|g| g.url.backend() == Backend::Postgres && !g.backends.is_empty())
            .map(|g| (g.url.clone(), g.backends.clone()))
            .collect(),
        Err(_) => return,
    };
    for (url, backends) in targets {
        let Ok(mut conn) = db::connect(&url) else {
            continue;
        };
        for backend in backends {
            let _ = cancel(&mut conn, &backend);
        }
    }
}

#[cfg(feature = "ctrl-c")]
fn cancel(conn: &mut DbConnection, backend: &ServerBackend) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Cancelled {
        #[diesel(sql_type = Bool)]
        _ok: bool,
    }
    diesel::sql_query(
        "SELECT pg_cancel_backend(pid) AS _ok FROM pg_stat_activity
          WHERE pid = $1 AND backend_start = CAST($2 AS timestamptz)
            AND application_name = $3",
    )
    .bind::<Integer, _>(backend.pid)
    .bind::<Text, _>(&backend.started)
    .bind::<Text, _>(&backend.application_name)
    .load::<Cancelled>(conn)
    .map(|_| ())
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `Err(Interrupted)` once a signal has arrived: called between steps.
pub fn check() -> Result<()> {
    match received() {
        Some(_) => Err(Error::interrupted()),
        None => Ok(()),
    }
}

/// The shell's convention: 128 + signal number (130 SIGINT, 143 SIGTERM).
#[cfg(feature = "ctrl-c")]
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// `SIGINT` / `SIGTERM`.
#[cfg(feature = "ctrl-c")]
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT (Ctrl-C)".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// While alive, a signal cancels the statements of the backends this guard
/// [watches](Self::watch) instead of ending the process. Guards nest (a
/// `verify` migrating its scratch database runs a migrator inside its own
/// guard); each cancels only its own backends. Embedded callers install no
/// handler, so for them this is inert.
pub struct CancelGuard {
    id: u64,
}

impl CancelGuard {
    /// From now on a signal is left to the caller (see the module docs).
    /// Cancelling connects to `url`'s server.
    pub fn arm(url: &DatabaseUrl) -> Self {
        let id = NEXT_GUARD.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut guards) = GUARDS.lock() {
            guards.push(Guarded {
                id,
                url: url.clone(),
                backends: Vec::new(),
            });
        }
        CancelGuard { id }
    }

    /// Cancels `conn`'s statements on a signal. Learns its backend with one
    /// query (PostgreSQL; SQLite needs nothing); watching it again is a
    /// no-op.
    pub fn watch(&self, conn: &mut DbConnection) -> Result<()> {
        if conn.backend() != Backend::Postgres {
            return Ok(());
        }
        let backend: ServerBackend = diesel::sql_query(
            "SELECT pid, CAST(backend_start AS text) AS started,
                    COALESCE(application_name, '') AS application_name
               FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .get_result(conn)?;
        if let Ok(mut guards) = GUARDS.lock() {
            if let Some(g) = guards.iter_mut().find(|g| g.id == self.id) {
                if !g.backends.contains(&backend) {
                    g.backends.push(backend);
                }
            }
        }
        Ok(())
    }

    /// Stops cancelling this guard's backends, so the clean-up after an
    /// interruption (e.g. dropping a scratch database on a watched
    /// connection) is not cancelled in turn. The guard stays armed.
    #[cfg(feature = "cli")]
    pub fn unwatch_all(&self) {
        if let Ok(mut guards) = GUARDS.lock() {
            if let Some(g) = guards.iter_mut().find(|g| g.id == self.id) {
                g.backends.clear();
            }
        }
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Ok(mut guards) = GUARDS.lock() {
            guards.retain(|g| g.id != self.id);
        }
    }
}
