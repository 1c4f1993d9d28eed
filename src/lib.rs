//! # taskdb
//!
//! The schema and data layer of the task-tracking app: Diesel migrations for
//! PostgreSQL (production) and SQLite (the embedded default), the generated
//! [`schema`], typed owner-scoped queries in [`models`], an r2d2 pool in
//! [`db`], and a migration runner in [`migrate`] that is safe when many
//! replicas start at once.
//!
//! ```no_run
//! use taskdb::{db, migrate, models::{task, user, NewTask, NewUser, TaskFilter}};
//!
//! # fn main() -> taskdb::Result<()> {
//! let url = db::DatabaseUrl::parse("postgres://app@localhost/tasks")?;
//! let applied = migrate::run_pending(&url)?; // on every start; a no-op costs one query
//! println!("applied {} migrations", applied.len());
//! let pool = db::pool(&url, 8)?;
//! let mut conn = pool.get()?;
//!
//! let alice = user::create(&mut conn, NewUser { id: None, email: "alice@example.com", password: "correct horse", name: None })?;
//! task::create(&mut conn, &alice.id, NewTask { title: "write docs", ..Default::default() })?;
//! let open = task::list(&mut conn, &alice.id, TaskFilter { completed: Some(false), ..Default::default() })?;
//! # Ok(()) }
//! ```
//!
//! Environment variables read by the `taskdb` binary (the library reads none):
//! - `DATABASE_URL`: the database, unless `--database-url` is given; also
//!   read from a `.env` file in the working directory.
//! - `DIRECT_DATABASE_URL`: preferred for migrations when set, because a
//!   transaction pooler breaks the session state migrations rely on.
//! - `TASKDB_LOCK_TIMEOUT`: how long one DDL statement may wait for a table
//!   lock (default `50ms`; a timed-out step is retried), same as `--lock-timeout`.
//! - `TASKDB_SQLITE_BUSY_TIMEOUT`: how long a SQLite command waits for
//!   another connection's write lock before it fails (default `30s`), same
//!   as `--sqlite-busy-timeout`. Library code sets this wait with
//!   [`db::set_sqlite_busy_timeout`].

pub mod adopt;
pub mod catalog;
// The `taskdb` binary's commands: not library API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod db;
pub mod error;
// Signals while the schema changes. A backend's entry point is
// `migrate::cancel_on_ctrl_c` (the `ctrl-c` feature); the rest serves the
// migration runner and the binary.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod interrupt;
#[cfg(not(feature = "cli"))]
#[allow(dead_code)]
mod interrupt;
pub mod lint;
pub mod migrate;
pub mod models;
pub mod orphans;
#[cfg(feature = "cli")]
pub mod rehearse;
// `taskdb new`.
#[cfg(feature = "tokio")]
pub mod nonblocking;
#[cfg(feature = "cli")]
pub mod scaffold;
pub mod schema;
pub mod seed;
mod settings;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;
pub mod versions;

// Compiles the Rust snippets of README.md and docs/ as doc tests, so they
// stay true (in the default build: they show both backends and
// `taskdb::testing`). One struct per file that has Rust snippets.
#[cfg(all(doctest, feature = "postgres", feature = "sqlite", feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
// docs/library.md also shows `taskdb::nonblocking` and `cancel_on_ctrl_c`.
#[cfg(all(
    doctest,
    feature = "postgres",
    feature = "sqlite",
    feature = "testing",
    feature = "tokio",
    feature = "ctrl-c"
))]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryDoctests;
#[cfg(all(doctest, feature = "postgres", feature = "sqlite", feature = "testing"))]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingDoctests;

#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub use db::AnyConnection;
pub use db::{Backend, DatabaseUrl, DbConnection, HasBackend, Pool};

// The versions taskdb is built with, so a backend uses the same ones
// without pinning them by hand.
pub use chrono;
pub use diesel;
pub use error::{BlockReason, BlockedMigration, Error, Result};
pub use r2d2;
