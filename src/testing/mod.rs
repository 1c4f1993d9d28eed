//! A fresh, fully migrated database per test, for the backend's own tests
//! and taskdb's (behind the `testing` feature).
//!
//! ```no_run
//! use taskdb::testing::TestDb;
//! use taskdb::models::{user, NewUser};
//!
//! # fn main() -> taskdb::Result<()> {
//! let db = TestDb::postgres()?;             // or TestDb::sqlite()
//! let mut conn = db.pool()?.get()?;
//! let alice = user::create_with(&mut conn, NewUser {
//!     id: None, email: "alice@example.com", password: "pw", name: None,
//! }, TestDb::PASSWORDS)?;                   // bcrypt's cheapest cost: fast tests
//! # Ok(()) }
//! ```
//!
//! - **PostgreSQL**: a migrated template database named after the
//!   migrations' checksums (`taskdb_tpl_<hash>`) is built once across test
//!   processes and cloned (`CREATE DATABASE … TEMPLATE`, the `WAL_LOG`
//!   strategy: no checkpoint). Templates of other migrations (another
//!   checkout, another branch) stay beside it: a process using a template
//!   holds a shared advisory lock on it ([`template_lock_key`]), and only
//!   unused ones beyond [`TEMPLATES_VARIABLE`] are dropped, least recently
//!   used first (module `template`).
//! - A dropped [`TestDb`] hands its database to a background worker and
//!   returns at once; the worker resets it (ends its sessions, checks that
//!   its schema is still a fresh clone's, empties its tables) for the next
//!   test, instead of dropping it: a `DROP DATABASE` forces a checkpoint
//!   that every other test's commits then wait behind (module `reset`).
//!   A test claims a ready database, or clones its own on a connection of
//!   its own; none waits for another's set-up (module `pool`). At exit a
//!   process leaves its reset databases (up to [`WARM_VARIABLE`] per
//!   template) for the next test process of the same migrations, whose
//!   first tests take them instead of waiting for clones (module `warm`);
//!   the rest are dropped together: the drops are sent, and the server
//!   finishes them after the process has gone ([`SPARES_VARIABLE`] `=0`:
//!   no reuse, a clone per test, dropped in batches).
//! - Each test process holds an advisory lock of its own (its owner key)
//!   and its databases' names carry that key: the databases of a process
//!   that died (`kill -9` too) are dropped by the next one, in the
//!   background, and those of one still running are left alone, whatever
//!   host, container or PID namespace either runs in (modules `owner`,
//!   `sweep`).
//! - A failed test's database can be kept for inspection:
//!   [`KEEP_VARIABLE`] `=failed` renames it `taskdb_kept_…` when its
//!   [`TestDb`] drops during the panic, and prints its URL on stderr.
//!   Kept databases are never dropped by taskdb.
//! - **SQLite**: a migrated template file, built once per set of migrations
//!   in the temp directory and checked once per process (a file of that
//!   name holding any other migrations is built again), copied per test
//!   into a directory of its own (module `sqlite`).
//!
//! Environment (read by tests, never by the library proper):
//! [`SERVER_VARIABLE`] (default `postgres://postgres@127.0.0.1:5432/postgres`;
//! its role needs CREATEDB), [`SPARES_VARIABLE`], [`TEMPLATES_VARIABLE`],
//! [`WARM_VARIABLE`], [`KEEP_VARIABLE`].

mod owner;
mod pool;
mod reset;
mod server;
mod sqlite;
mod sweep;
mod template;
mod warm;

use std::path::PathBuf;

use crate::db::{self, Backend, DatabaseUrl, DbConnection, Pool};
use crate::error::{Error, Result};
use crate::models::user::PasswordPolicy;
use server::server_url;
pub use template::template_lock_key;

/// The variable naming the PostgreSQL server tests create databases on.
pub const SERVER_VARIABLE: &str = "TASKDB_TEST_DATABASE_URL";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The variable setting how many migrated PostgreSQL databases each test
/// process keeps ready ahead of its tests; `0` turns the stock and the
/// reuse of databases off (a clone per test, dropped after it).
pub const SPARES_VARIABLE: &str = "TASKDB_TEST_SPARES";
/// Spares kept when [`SPARES_VARIABLE`] is unset. Used databases are
/// reset and reused besides, so the stock only covers a test starting
/// while every database is in use or being reset.
pub const DEFAULT_SPARES: usize = 2;

/// The variable setting how many PostgreSQL templates (sets of migrations)
/// may stay on the server; unused ones beyond it are dropped, least
/// recently used first. One in use is never dropped.
pub const TEMPLATES_VARIABLE: &str = "TASKDB_TEST_TEMPLATES";
/// Templates kept when [`TEMPLATES_VARIABLE`] is unset.
pub const DEFAULT_TEMPLATES: usize = 4;

/// The variable setting how many reset PostgreSQL databases a test
/// process leaves at exit, per template, for the next test process of the
/// same migrations to take instead of cloning (`taskdb_w_…`, and
/// `taskdb_d_…` for ones still to be reset); `0` leaves none and takes
/// none: nothing is left behind at exit. Like templates, they are a
/// bounded cache: the sweep drops those beyond the bound and those of
/// templates that are gone.
pub const WARM_VARIABLE: &str = "TASKDB_TEST_WARM";
/// Databases left per template when [`WARM_VARIABLE`] is unset.
pub const DEFAULT_WARM: usize = 16;

/// The variable that keeps failed tests' PostgreSQL databases: `failed`
/// keeps the database of a test whose [`TestDb`] drops while the test
/// panics (renamed `taskdb_kept_…`, its URL printed on stderr); unset or
/// `never`, every database is dropped or reused.
pub const KEEP_VARIABLE: &str = "TASKDB_TEST_KEEP";

/// The first key of the advisory lock a process holds on each template it
/// uses (see [`template_lock_key`]): "tdbu".
pub const TEMPLATE_LOCK_CLASS: i32 = 0x7464_6275;

/// A database that exists for one test.
pub struct TestDb {
    backend: Backend,
    url: DatabaseUrl,
    /// PostgreSQL: the database's name, reset or dropped with it.
    name: Option<String>,
    /// Migrated (a clone of the template), not empty.
    migrated: bool,
    /// SQLite: the directory holding the file, removed with it.
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("url", &self.url).finish()
    }
}

impl TestDb {
    /// Password hashing for tests: bcrypt's cheapest cost (4), about 1 ms a
    /// hash instead of 0.2–0.5 s.
    pub const PASSWORDS: PasswordPolicy = PasswordPolicy::CHEAPEST;

    /// A migrated PostgreSQL database on the test server.
    pub fn postgres() -> Result<Self> {
        Self::new(Backend::Postgres)
    }

    /// A migrated SQLite file (in a build with SQLite).
    #[cfg(feature = "sqlite")]
    pub fn sqlite() -> Result<Self> {
        Self::new(Backend::Sqlite)
    }

    /// A migrated database of `backend`.
    pub fn new(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Postgres => Self::postgres_database(true),
            Backend::Sqlite => Self::sqlite_file(true),
        }
    }

    /// A database with no tables at all (for testing migrations).
    pub fn empty(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Postgres => Self::postgres_database(false),
            Backend::Sqlite => Self::sqlite_file(false),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("test.db"))
    }

    /// One connection, set up as [`db::connect`] sets up every connection.
    pub fn conn(&self) -> Result<DbConnection> {
        db::connect(&self.url)
    }

    /// A small pool (up to 4 connections) to this database. Connections
    /// open as the test asks for them, not all four up front: each costs a
    /// server process on PostgreSQL, and most tests use one.
    pub fn pool(&self) -> Result<Pool> {
        db::build_pool(&self.url, db::pool_builder().max_size(4).min_idle(Some(0)))
    }

    fn postgres_database(migrated: bool) -> Result<Self> {
        let server = server_url()?;
        let spares = spares_wanted()?;
        let name = if migrated {
            let template = template::hold(&server)?;
            let warm = warm_kept(spares)?;
            sweep::start_once(&server, Some(&template), templates_kept()?, warm);
            pool::claim(&server, &template, spares, warm, tests_at_once().max(2))?
        } else {
            sweep::start_once(&server, None, templates_kept()?, warm_kept(spares)?);
            pool::create_empty(&server)?
        };
        Ok(TestDb {
            backend: Backend::Postgres,
            url: server.with_database(&name)?,
            name: Some(name),
            migrated,
            dir: None,
        })
    }

    fn sqlite_file(migrated: bool) -> Result<Self> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::InvalidInput(format!("cannot create a temp directory: {e}")))?;
        let path = dir.path().join("test.db");
        if migrated {
            std::fs::copy(sqlite::sqlite_template()?, &path).map_err(|e| {
                Error::InvalidInput(format!("cannot copy the SQLite template: {e}"))
            })?;
        }
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        Ok(TestDb {
            backend: Backend::Sqlite,
            url,
            name: None,
            migrated,
            dir: Some(dir),
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        if std::thread::panicking() && keep_failed() {
            if let Ok(server) = server_url() {
                let kept = pool::keep(&server, &name);
                let url = server
                    .with_database(&kept)
                    .map(|u| u.redacted().to_string())
                    .unwrap_or_default();
                let test = std::thread::current()
                    .name()
                    .map(|t| format!(" of {t}"))
                    .unwrap_or_default();
                eprintln!("taskdb::testing: kept the database{test}: {kept} ({url})");
                return;
            }
        }
        pool::give_back(name, self.migrated, spares_wanted().unwrap_or(0));
    }
}

/// The migrated PostgreSQL template's name, built if no process has built
/// it yet (for tools that clone it themselves). This process holds it in
/// use until it exits.
pub fn postgres_template() -> Result<String> {
    template::ensure(&server_url()?)
}

fn spares_wanted() -> Result<usize> {
    number(SPARES_VARIABLE, DEFAULT_SPARES)
}

/// Databases left warm per template: none without reuse.
fn warm_kept(spares: usize) -> Result<usize> {
    if spares == 0 {
        return Ok(0);
    }
    number(WARM_VARIABLE, DEFAULT_WARM)
}

/// How many tests this process runs at once, as libtest decides it
/// (`--test-threads`, `RUST_TEST_THREADS`, else the CPUs), or 1 under
/// cargo-nextest's process per test. Read once: it cannot change.
fn tests_at_once() -> usize {
    static ONCE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ONCE.get_or_init(read_tests_at_once)
}

fn read_tests_at_once() -> usize {
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test") {
        return 1;
    }
    let args: Vec<String> = std::env::args().collect();
    let from_args =
        args.iter()
            .enumerate()
            .find_map(|(i, arg)| match arg.strip_prefix("--test-threads") {
                Some(rest) if rest.starts_with('=') => rest[1..].parse().ok(),
                Some("") => args.get(i + 1)?.parse().ok(),
                _ => None,
            });
    from_args
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok()?.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn templates_kept() -> Result<usize> {
    number(TEMPLATES_VARIABLE, DEFAULT_TEMPLATES).map(|n| n.max(1))
}

fn number(variable: &str, default: usize) -> Result<usize> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::InvalidInput(format!("{variable} must be a number (got {text:?})"))
        }),
    }
}

/// Whether [`KEEP_VARIABLE`] asks to keep failed tests' databases.
fn keep_failed() -> bool {
    std::env::var(KEEP_VARIABLE).is_ok_and(|v| v.trim().eq_ignore_ascii_case("failed"))
}
