//! Database URLs, the two backends, connections and the connection pool.
//!
//! A URL decides the backend: `postgres://` / `postgresql://` is PostgreSQL;
//! `sqlite://path`, `sqlite:path`, `file:path`, a path ending in `.db`,
//! `.sqlite` or `.sqlite3`, or `:memory:` is SQLite. Anything else is an
//! error, never a guess. Every URL taskdb shows goes through
//! [`DatabaseUrl::redacted`], and every driver message through
//! [`DatabaseUrl::scrub`], so a password never reaches the output. How a
//! PostgreSQL URL is read (libpq's rules) is on [`DatabaseUrl::parse`].

use std::fmt;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use diesel::connection::CacheSize;
#[cfg(feature = "sqlite")]
use diesel::connection::SimpleConnection;
#[allow(unused_imports)]
use diesel::Connection;
#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;

use crate::error::{Error, Result};

mod connection;
mod pool;
pub(crate) mod sqlstate;
mod url;

pub(crate) use self::connection::on_concrete;
pub use self::connection::{ConcreteConnection, ModelConnection, OpenConnection};
#[cfg(feature = "testing")]
pub(crate) use self::pool::build_pool;
pub(crate) use self::pool::refuse_in_memory;
#[cfg(feature = "postgres")]
pub use self::pool::{pg_pool, PgPool};
pub use self::pool::{
    pool, pool_builder, ConnectionManager, Pool, PoolBuilder, PoolState, PooledConnection,
};
#[cfg(feature = "sqlite")]
pub use self::pool::{sqlite_pool, SqlitePool};

pub use self::url::{mask_url_passwords, redact_url, DatabaseUrl, SECRET_PARAMETERS};
pub use crate::settings::{set_sqlite_busy_timeout, sqlite_busy_timeout, SQLITE_BUSY_TIMEOUT};

/// File used when no database URL is configured anywhere.
pub const DEFAULT_SQLITE_FILE: &str = "taskdb.db";

/// How long a PostgreSQL connection attempt may take before it fails.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!(
    "taskdb needs a database backend: enable the `postgres` feature, the `sqlite` feature, or both"
);

/// A connection to either backend (a build with both): queries both
/// backends share are written once against [`DbConnection`];
/// backend-specific code matches on this (see [`with_backend!`](crate::with_backend)).
/// The functions in [`crate::models`] run on the connection inside, not
/// through the `MultiConnection` layer.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// The connection of whichever backends this build has:
/// [`AnyConnection`] with both, otherwise the one backend's Diesel
/// connection. [`connect`], [`pool`] and the binary use it.
///
/// **Its meaning changes with Cargo features**, and Cargo unifies features
/// across a dependency graph: if any crate turns on `sqlite` next to
/// `postgres`, this stops being `PgConnection`, and an app's own
/// PostgreSQL-only query on it (`tasks::title.ilike(..)`) no longer
/// compiles. An app on one backend should use that backend's own types
/// instead, whose meaning never changes: `PgConnection` with
/// [`connect_postgres`] and [`PgPool`] / [`pg_pool`] (or
/// `SqliteConnection`, [`connect_sqlite`], [`SqlitePool`] / [`sqlite_pool`]).
/// The functions in [`crate::models`] take all of these ([`ModelConnection`]).
#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub type DbConnection = AnyConnection;
/// The connection of whichever backends this build has: this build has
/// PostgreSQL only, so it is `PgConnection`, but **its meaning changes with
/// Cargo features** (with `sqlite` also on, it is `AnyConnection`): an
/// app on PostgreSQL only should write `PgConnection` (and use [`PgPool`]),
/// which stays the same under feature unification.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
pub type DbConnection = PgConnection;
/// The connection of whichever backends this build has: this build has
/// SQLite only, so it is `SqliteConnection`, but **its meaning changes with
/// Cargo features**: an app on SQLite only should write `SqliteConnection`
/// (and use [`SqlitePool`]), which stays the same under feature
/// unification.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
pub type DbConnection = SqliteConnection;

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl From<PgConnection> for AnyConnection {
    fn from(conn: PgConnection) -> Self {
        AnyConnection::Postgres(conn)
    }
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl From<SqliteConnection> for AnyConnection {
    fn from(conn: SqliteConnection) -> Self {
        AnyConnection::Sqlite(conn)
    }
}

/// Runs the same code on whichever concrete connection `$conn` holds, so a
/// query the shared DSL cannot express is still written once. In a build
/// with one backend it is simply that connection.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[macro_export]
macro_rules! with_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Postgres($c) => $body,
            $crate::db::AnyConnection::Sqlite($c) => $body,
        }
    };
}

/// Runs the same code on whichever concrete connection `$conn` holds, so a
/// query the shared DSL cannot express is still written once. In a build
/// with one backend it is simply that connection.
#[cfg(not(all(feature = "postgres", feature = "sqlite")))]
#[macro_export]
macro_rules! with_backend {
    ($conn:expr, |$c:ident| $body:expr) => {{
        let $c = $conn;
        $body
    }};
}

/// Backend-specific code inside taskdb: the arm of a backend this build
/// leaves out is dropped unexpanded, so it may call functions that exist
/// only with that backend.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
macro_rules! on_backend {
    ($conn:expr, Postgres($pg:ident) => $pg_body:expr, Sqlite($lite:ident) => $lite_body:expr $(,)?) => {
        match $conn {
            $crate::db::AnyConnection::Postgres($pg) => $pg_body,
            $crate::db::AnyConnection::Sqlite($lite) => $lite_body,
        }
    };
}
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
macro_rules! on_backend {
    ($conn:expr, Postgres($pg:ident) => $pg_body:expr, Sqlite($lite:ident) => $lite_body:expr $(,)?) => {{
        let $pg = $conn;
        $pg_body
    }};
}
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
macro_rules! on_backend {
    ($conn:expr, Postgres($pg:ident) => $pg_body:expr, Sqlite($lite:ident) => $lite_body:expr $(,)?) => {{
        let $lite = $conn;
        $lite_body
    }};
}
pub(crate) use on_backend;

/// Which engine a connection talks to: `conn.backend()` on a
/// [`DbConnection`] in every build.
pub trait HasBackend {
    fn backend(&self) -> Backend;
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl HasBackend for AnyConnection {
    fn backend(&self) -> Backend {
        match self {
            AnyConnection::Postgres(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[cfg(feature = "postgres")]
impl HasBackend for PgConnection {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

#[cfg(feature = "sqlite")]
impl HasBackend for SqliteConnection {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

/// The two supported database engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

impl Backend {
    /// The one-line refusal for a URL of a backend this build leaves out.
    #[cfg_attr(all(feature = "postgres", feature = "sqlite"), allow(dead_code))]
    pub(crate) fn not_built(self) -> Error {
        let feature = match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        };
        Error::BackendNotBuilt(format!(
            "this build of taskdb has no {self} support; enable the `{feature}` feature"
        ))
    }
}

/// Opens one connection, set up the way taskdb needs it:
/// PostgreSQL without a statement cache behind a transaction pooler;
/// SQLite with foreign keys enforced, a busy timeout and WAL.
// `.into()` wraps the connection in [`AnyConnection`] when both backends
// are built in and is the identity otherwise.
#[allow(clippy::useless_conversion)]
pub fn connect(url: &DatabaseUrl) -> Result<DbConnection> {
    match url.backend() {
        #[cfg(feature = "postgres")]
        Backend::Postgres => Ok(connect_postgres(url)?.into()),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Ok(connect_sqlite(url)?.into()),
        #[allow(unreachable_patterns)]
        backend => Err(backend.not_built()),
    }
}

/// [`connect`] for a PostgreSQL URL, as Diesel's own `PgConnection`: the
/// type a PostgreSQL-only app uses, whatever other backends the build has.
/// A URL of another backend is refused.
#[cfg(feature = "postgres")]
pub fn connect_postgres(url: &DatabaseUrl) -> Result<PgConnection> {
    expect_backend(url, Backend::Postgres)?;
    let mut conn =
        PgConnection::establish(url.expose_secret()).map_err(|e| connect_error(url, &e))?;
    if url.is_pooled() {
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    }
    Ok(conn)
}

/// [`connect`] for a SQLite URL, as Diesel's own `SqliteConnection`. A URL
/// of another backend is refused.
#[cfg(feature = "sqlite")]
pub fn connect_sqlite(url: &DatabaseUrl) -> Result<SqliteConnection> {
    expect_backend(url, Backend::Sqlite)?;
    if let Some(parent) = url.sqlite_path().as_deref().and_then(Path::parent) {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(connect_error(
                url,
                &format!("directory `{}` does not exist", parent.display()),
            ));
        }
    }
    let mut conn =
        SqliteConnection::establish(url.expose_secret()).map_err(|e| connect_error(url, &e))?;
    configure_sqlite(&mut conn).map_err(|e| connect_error(url, &e))?;
    Ok(conn)
}

/// Refuses a URL of another backend than a typed connection's.
fn expect_backend(url: &DatabaseUrl, expected: Backend) -> Result<()> {
    if url.backend() == expected {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "a {expected} connection needs a {expected} URL, not `{}`",
        url.redacted()
    )))
}

/// A failed connection attempt, with the password kept out of it.
fn connect_error(url: &DatabaseUrl, e: &dyn fmt::Display) -> Error {
    Error::Connect {
        url: url.redacted().to_string(),
        reason: one_line(&url.scrub(&e.to_string())),
    }
}

/// Like [`connect`], retrying with backoff for up to `wait` while the server
/// is unreachable (a database starting next to the app). The last sleep is
/// cut to the time left and one more attempt is made at the deadline, so the
/// whole of `wait` is used; the error then says how long it really waited.
/// Errors that waiting cannot fix (bad password, missing database) fail at
/// once.
pub fn connect_with_wait(url: &DatabaseUrl, wait: Option<Duration>) -> Result<DbConnection> {
    let Some(wait) = wait else {
        return connect(url);
    };
    let started = Instant::now();
    let deadline = started + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match connect(url) {
            Ok(conn) => return Ok(conn),
            Err(Error::Connect { url: shown, reason }) if is_transient(url) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Connect {
                        url: shown,
                        reason: format!(
                            "{reason} (still failing after waiting {:.1}s)",
                            started.elapsed().as_secs_f64()
                        ),
                    });
                }
                std::thread::sleep(delay.min(left));
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Server not up (yet): worth retrying. Authentication and missing databases
/// are not. Asked with libpq's `PQping` (no answer, or "not accepting
/// connections yet": starting up, shutting down, in recovery), not read
/// from the error, whose words depend on the server's `lc_messages` and
/// the client's locale.
fn is_transient(url: &DatabaseUrl) -> bool {
    match url.backend() {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let Ok(conninfo) = std::ffi::CString::new(url.expose_secret()) else {
                return false;
            };
            // SAFETY: PQping reads the NUL-terminated string during the
            // call and keeps no pointer to it.
            let ping = unsafe { pq_sys::PQping(conninfo.as_ptr()) };
            matches!(
                ping,
                pq_sys::PGPing::PQPING_REJECT | pq_sys::PGPing::PQPING_NO_RESPONSE
            )
        }
        // A SQLite file opens or not; waiting does not change that.
        _ => false,
    }
}

/// Applies the settings every SQLite connection needs. Without
/// `foreign_keys = ON` SQLite ignores ON DELETE CASCADE silently.
#[cfg(feature = "sqlite")]
pub fn configure_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
        sqlite_busy_timeout().as_millis()
    ))?;
    // Switching to WAL needs a moment of exclusive access; a concurrent
    // opener can make it fail with SQLITE_BUSY despite the busy timeout.
    let mut attempts = 0;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") {
            Ok(()) => return Ok(()),
            Err(e) if attempts < 50 && e.to_string().contains("locked") => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20 * attempts));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Collapses a multi-line driver message into one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
