//! The schema taskdb's migrations produce, derived (never written down a
//! second time): the compiled migrations are applied to a scratch database
//! of the connected backend, and its catalog is read with the same reader as
//! the live database.
//!
//! - PostgreSQL: a database `taskdb_verify_<random>` is created on the same
//!   server (`TEMPLATE template0`, so nothing an administrator added to
//!   `template1` shows up as expected), migrated by taskdb's own runner,
//!   read, and dropped. That needs the CREATEDB privilege. Without it, the
//!   fallback builds the schema inside one transaction on the live database,
//!   in a fresh schema `taskdb_verify_<random>` that is rolled back at the
//!   end: every migration's `up.sql` runs there, with `CONCURRENTLY` left out
//!   (it cannot run in a transaction, and it makes no difference to the
//!   resulting catalog of empty tables). Nothing of it is ever committed, and
//!   no table of the app is locked.
//! - SQLite: an in-memory database migrated with the SQLite migrations.
//!
//! A `verify` killed between creating and dropping its scratch database
//! leaves a `taskdb_verify_*` database behind; nothing refers to it, so it
//! is safe to drop.

use diesel::connection::SimpleConnection;

use super::catalog::{self, Schema};
use crate::db::{self, AnyConnection, Backend, DatabaseUrl};
use crate::error::{Error, Result};
use crate::migrate;

/// Where the expected schema was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedSource {
    /// A scratch PostgreSQL database, migrated by taskdb's runner.
    ScratchDatabase,
    /// A schema in a rolled-back transaction on the live PostgreSQL
    /// database (the role may not create databases).
    ScratchSchema,
    /// An in-memory SQLite database.
    InMemory,
}

impl ExpectedSource {
    pub fn describe(self) -> &'static str {
        match self {
            ExpectedSource::ScratchDatabase => {
                "a scratch database on the same server, migrated by this taskdb"
            }
            ExpectedSource::ScratchSchema => {
                "a scratch schema in a rolled-back transaction (the role cannot create databases)"
            }
            ExpectedSource::InMemory => "an in-memory SQLite database migrated by this taskdb",
        }
    }
}

/// Builds the expected schema for the backend `conn` talks to. `url` is the
/// live database's URL (PostgreSQL: the scratch database is on its server).
pub fn expected_schema(
    url: &DatabaseUrl,
    conn: &mut AnyConnection,
) -> Result<(Schema, ExpectedSource)> {
    match conn.backend() {
        Backend::Sqlite => Ok((in_memory_sqlite()?, ExpectedSource::InMemory)),
        Backend::Postgres => postgres(url, conn),
    }
}

fn in_memory_sqlite() -> Result<Schema> {
    let mut conn = db::connect(&DatabaseUrl::parse(":memory:")?)?;
    for m in migrate::migrations(Backend::Sqlite) {
        conn.batch_execute(m.up_sql())
            .map_err(|e| Error::MigrationFailed {
                migration: m.dir_name().to_string(),
                reason: e.to_string(),
            })?;
    }
    catalog::read(&mut conn)
}

fn scratch_name() -> String {
    format!(
        "taskdb_verify_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn postgres(url: &DatabaseUrl, conn: &mut AnyConnection) -> Result<(Schema, ExpectedSource)> {
    postgres_scratch(url, conn, Build::Migrations)
}

/// What to build in a scratch PostgreSQL database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Build {
    /// taskdb's own migrations, by taskdb's runner.
    Migrations,
    /// A script (e.g. the schema `taskdb adopt` expects).
    Script(&'static str),
}

/// Builds `build` in a scratch database on `url`'s server (or, without
/// CREATEDB, in a rolled-back scratch schema) and reads its schema.
pub(crate) fn postgres_scratch(
    url: &DatabaseUrl,
    conn: &mut AnyConnection,
    build: Build,
) -> Result<(Schema, ExpectedSource)> {
    let name = scratch_name();
    if let Err(e) = conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")) {
        if e.to_string().contains("permission denied") {
            return Ok((
                scratch_schema(conn, &name, build)?,
                ExpectedSource::ScratchSchema,
            ));
        }
        return Err(Error::MigrationState(format!(
            "cannot create the scratch database {name} the comparison is built in: {}",
            url.scrub(&e.to_string())
        )));
    }
    let built = (|| {
        let scratch = with_database(url, &name)?;
        match build {
            Build::Migrations => {
                migrate::run_pending(&scratch)?;
            }
            Build::Script(sql) => db::connect(&scratch)?.batch_execute(sql)?,
        }
        let mut scratch_conn = db::connect(&scratch)?;
        catalog::read(&mut scratch_conn)
    })();
    let dropped = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    let schema = built?;
    dropped?;
    Ok((schema, ExpectedSource::ScratchDatabase))
}

/// The same server and credentials, another database.
fn with_database(url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl> {
    url.with_database(name)
}

/// The fallback without CREATEDB: see the module docs.
fn scratch_schema(conn: &mut AnyConnection, name: &str, build: Build) -> Result<Schema> {
    conn.batch_execute(&format!(
        "BEGIN; CREATE SCHEMA {name}; SET LOCAL search_path = {name};"
    ))?;
    let built = (|| {
        match build {
            Build::Migrations => {
                for m in migrate::migrations(Backend::Postgres) {
                    conn.batch_execute(&without_concurrently(m.up_sql()))
                        .map_err(|e| Error::MigrationFailed {
                            migration: m.dir_name().to_string(),
                            reason: e.to_string(),
                        })?;
                }
            }
            Build::Script(sql) => conn.batch_execute(&without_concurrently(sql))?,
        }
        catalog::read(conn)
    })();
    conn.batch_execute("ROLLBACK")?;
    built
}

/// `CREATE INDEX CONCURRENTLY` → `CREATE INDEX` (any case), for running a
/// migration inside a transaction on empty tables.
fn without_concurrently(sql: &str) -> String {
    sql.split_inclusive(char::is_whitespace)
        .filter(|word| !word.trim().eq_ignore_ascii_case("concurrently"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrently_is_dropped_in_any_case() {
        assert_eq!(
            without_concurrently("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"),
            "CREATE INDEX IF NOT EXISTS i ON t (a);"
        );
        assert_eq!(
            without_concurrently("drop index concurrently\nx;"),
            "drop index x;"
        );
    }

    #[test]
    fn scratch_database_keeps_server_and_credentials() {
        let live = DatabaseUrl::parse("postgres://app:pw@db.example.com:5433/tasks").unwrap();
        let scratch = with_database(&live, "taskdb_verify_x").unwrap();
        assert_eq!(
            scratch.redacted(),
            "postgres://app@db.example.com:5433/taskdb_verify_x"
        );
        assert!(scratch.expose_secret().contains(":pw@"));
    }
}
