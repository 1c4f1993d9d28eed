//! taskdb's integration tests, one crate: real PostgreSQL servers, real
//! SQLite files and the `taskdb` binary driven as a user runs it. Each
//! module is one topic (its own `//!` says which); `common` holds the
//! helpers, `rows` fills every table. The crate needs the default features
//! (both backends, the binary, `taskdb::testing`); `tests/library_only.rs`
//! covers the builds a backend makes without them.

#![cfg(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "cli",
    feature = "testing"
))]

#[macro_use]
mod common;
mod rows;

mod adopt;
mod backfill;
mod bad_input;
mod build_script;
mod cli;
mod config_precedence;
mod demo_seed;
mod deploy;
mod dry_run;
mod duplicate_versions;
mod error_messages;
mod fast_path;
mod if_not_exists;
mod interrupts;
mod json;
mod lint;
mod lint_preflight;
mod lock_timeouts;
mod migration_lock;
mod migrations;
mod migrations_dir;
mod new_migration;
#[cfg(feature = "tokio")]
mod nonblocking;
mod operations;
mod orphans;
mod pipes;
mod pool;
mod queries;
mod query_plans;
mod rehearse;
mod secrets;
mod server_language;
mod testing_api;
mod urls;
mod verify;
mod verify_interrupts;
