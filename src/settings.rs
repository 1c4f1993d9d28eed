//! Process-wide settings of the library, below every other module (the
//! error type reads them for its messages, connections for their setup).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a SQLite writer waits on another writer's lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The busy timeout of SQLite connections, in milliseconds.
static SQLITE_BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(SQLITE_BUSY_TIMEOUT.as_millis() as u64);

/// Sets how long SQLite connections opened from now on wait for another
/// connection's write lock before failing with
/// `Error::SqliteBusy` (default
/// [`SQLITE_BUSY_TIMEOUT`]; the `taskdb` binary takes it from
/// `TASKDB_SQLITE_BUSY_TIMEOUT` / `--sqlite-busy-timeout`). Process-wide,
/// like the file lock it is about.
pub fn set_sqlite_busy_timeout(wait: Duration) {
    // SQLite takes an int of milliseconds.
    let ms = u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .min(i32::MAX as u64);
    SQLITE_BUSY_TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// How long SQLite connections wait on another writer's lock (see
/// [`set_sqlite_busy_timeout`]).
pub fn sqlite_busy_timeout() -> Duration {
    Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS.load(Ordering::Relaxed))
}
