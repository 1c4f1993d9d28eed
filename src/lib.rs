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

// What a backend uses: the pool and typed queries, the migration runner,
// per-test databases, async wrappers, and the error type.
pub mod db;
pub mod error;
pub mod migrate;
pub mod models;
#[cfg(feature = "tokio")]
pub mod nonblocking;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

// The layers of the `taskdb` binary. In the binary's build (the `cli`
// feature, on by default) they are public for its commands, tests and
// benchmarks, but hidden from the docs and not part of the library's API;
// in a backend's build (`default-features = false`) the ones the runner
// needs are private to the crate and the rest are not compiled.
macro_rules! binary_layer {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        #[cfg(feature = "cli")]
        #[doc(hidden)]
        $(#[$attr])*
        pub mod $name;
        #[cfg(not(feature = "cli"))]
        $(#[$attr])*
        pub(crate) mod $name;
    )*};
}
binary_layer! {
    mod catalog;
    // Signals while the schema changes. A backend's entry point is
    // `migrate::cancel_on_ctrl_c` (the `ctrl-c` feature).
    mod interrupt;
    mod lint;
    mod orphans;
    mod seed;
    mod source;
    mod versions;
}
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod adopt;
// `taskdb distribute`: the schema onto a Citus cluster.
#[cfg(all(feature = "cli", feature = "postgres"))]
#[doc(hidden)]
pub mod distribute;
// The binary's commands (`src/main.rs` calls `cli::main`).
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
// `taskdb rehearse`.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod rehearse;
// `taskdb new`.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod scaffold;
mod settings;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod verify;

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
