//! Ctrl-C and SIGTERM while the schema changes.
//!
//! The `taskdb` binary calls [`install`]. A signal outside a migration, or
//! during one on SQLite (an uncommitted SQLite transaction never survives
//! its process), ends the process at once (exit 128 + signal). During a
//! PostgreSQL migration, a [`Migrator`]
//! has registered its connection's `application_name` with
//! [`CancelGuard`]: the signal is recorded, the statement that connection
//! is running is cancelled server-side (a client that merely stops reading
//! leaves a blocked `ALTER TABLE` queued on the server), the transaction
//! rolls back and the run returns [`Error::Interrupted`]. A second signal
//! ends the process at once.
//!
//! [`Migrator`]: crate::migrate::Migrator

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::{self, Backend, DatabaseUrl};
use crate::error::{Error, Result};

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The migration connections to cancel: URL and `application_name`.
static TARGET: Mutex<Option<(DatabaseUrl, String)>> = Mutex::new(None);

/// Routes SIGINT and SIGTERM to a thread that records them and cancels the
/// running migration statement. Call once, from a binary.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("taskdb-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(signal);
            }
        })?;
    Ok(())
}

fn on_signal(signal: i32) {
    let first = SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let target = TARGET.lock().map(|t| t.clone()).unwrap_or(None);
    match target {
        Some((url, app)) if first && url.backend() == Backend::Postgres => {
            // A statement sent just after one cancel would still block: keep
            // cancelling until the run has rolled back and the process exits
            // (on a thread of its own, so a second signal is still heard).
            let _ = std::thread::Builder::new()
                .name("taskdb-cancel".into())
                .spawn(move || {
                    for _ in 0..40 {
                        cancel(&url, &app);
                        std::thread::sleep(std::time::Duration::from_millis(250));
                    }
                });
        }
        // Nothing to roll back, asked twice, or SQLite (whose unfinished
        // transaction is discarded when the process ends, while its thread
        // may sit in a busy wait no other thread can cut short): stop now.
        _ => {
            eprintln!(
                "error: interrupted by {}; nothing unfinished was kept",
                signal_name(signal)
            );
            std::process::exit(exit_code(signal))
        }
    }
}

/// Cancels whatever the migration connections are running. Best effort: if
/// the server is unreachable the statement fails on its own anyway.
fn cancel(url: &DatabaseUrl, app: &str) {
    if url.backend() != Backend::Postgres {
        return;
    }
    let Ok(mut conn) = db::connect(url) else {
        return;
    };
    #[derive(QueryableByName)]
    struct Cancelled {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        _ok: bool,
    }
    let _ = diesel::sql_query(
        "SELECT pg_cancel_backend(pid) AS _ok FROM pg_stat_activity
          WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(app)
    .load::<Cancelled>(&mut conn);
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
        Some(_) => Err(Error::Interrupted),
        None => Ok(()),
    }
}

/// The shell's convention: 128 + signal number (130 SIGINT, 143 SIGTERM).
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// `SIGINT` / `SIGTERM`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT (Ctrl-C)".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// While alive, a signal cancels the statements of connections opened with
/// `application_name = app` instead of ending the process. One target per
/// process: the CLI runs one migrator (embedded callers install no handler,
/// so for them this is inert).
pub struct CancelGuard {
    _private: (),
}

impl CancelGuard {
    pub fn register(url: &DatabaseUrl, app: &str) -> Self {
        if let Ok(mut target) = TARGET.lock() {
            *target = Some((url.clone(), app.to_string()));
        }
        CancelGuard { _private: () }
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Ok(mut target) = TARGET.lock() {
            *target = None;
        }
    }
}
