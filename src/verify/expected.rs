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
//! The scratch database lives only as long as the comparison. While it
//! exists, a Ctrl-C or SIGTERM cancels what is running on its behalf,
//! drops it and ends `verify` with [`Error::Interrupted`] (see
//! [`crate::interrupt`]). A `verify` killed outright (`kill -9`, a crash, a
//! lost server connection) leaves a `taskdb_verify_*` database behind; the
//! next one drops it. To tell those from the scratch databases of
//! `verify`s still running (on any database of the server), each `verify`
//! holds a session advisory lock keyed on its scratch database's name,
//! [`SCRATCH_LOCK_CLASS`] and `hashtext(name)`, from before it creates the
//! database until it has dropped it. The sweep drops only the
//! `taskdb_verify_*` databases whose lock no session holds and that no
//! session is connected to (the latter also spares those of an older
//! taskdb, which took no lock).

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use crate::catalog::{self, Schema};
use crate::db::{self, Backend, DatabaseUrl, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::interrupt::{self, CancelGuard};
use crate::migrate;
use crate::source::MigrationSource;

/// First key of the advisory lock a `verify` holds on its scratch
/// database's name ("tvrf" in ASCII); the second is `hashtext(name)`.
/// Advisory locks are per database, but `pg_locks` shows those of every
/// database, which is where the sweep looks.
pub const SCRATCH_LOCK_CLASS: i32 = 0x7476_7266;

/// Prefix of every scratch database's name.
const SCRATCH_PREFIX: &str = "taskdb_verify_";

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
    conn: &mut DbConnection,
    source: &MigrationSource,
) -> Result<(Schema, ExpectedSource)> {
    match conn.backend() {
        Backend::Sqlite => Ok((in_memory_sqlite(source)?, ExpectedSource::InMemory)),
        Backend::Postgres => postgres_scratch(url, conn, Build::Migrations(source)),
    }
}

fn in_memory_sqlite(source: &MigrationSource) -> Result<Schema> {
    let mut conn = db::connect(&DatabaseUrl::parse(":memory:")?)?;
    for m in source.migrations(Backend::Sqlite)? {
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
        "{SCRATCH_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The advisory lock that marks scratch database `name` as in use. Names
/// are made by [`scratch_name`] (letters, digits, `_`), so they are
/// quoted as they are.
fn scratch_lock(name: &str) -> String {
    format!("{SCRATCH_LOCK_CLASS}, hashtext('{name}')")
}

/// Drops the scratch databases that `verify`s killed before they could
/// drop them left behind (see the module docs).
fn sweep_abandoned(conn: &mut DbConnection) {
    sweep_abandoned_scratch(conn, SCRATCH_PREFIX, "", SCRATCH_LOCK_CLASS);
}

/// Drops the databases named `prefix` + letters and digits + `suffix` that
/// no session holds the advisory lock `(lock_class, hashtext(name))` of and
/// none is connected to: scratch databases whose process was killed before
/// it could drop them (`verify`'s, `rehearse`'s, and the `_build` of a
/// template `rehearse` was keeping). Best effort: one that cannot be
/// dropped now (no privilege, still in use) is left for later.
pub(crate) fn sweep_abandoned_scratch(
    conn: &mut DbConnection,
    prefix: &str,
    suffix: &str,
    lock_class: i32,
) {
    let abandoned = diesel::sql_query(format!(
        "SELECT d.datname::text AS name FROM pg_database d
          WHERE d.datname LIKE '{}%'
            AND NOT EXISTS (SELECT 1 FROM pg_locks l
                             WHERE l.locktype = 'advisory' AND l.objsubid = 2
                               AND l.classid = CAST({lock_class} AS oid)
                               AND l.objid = CAST(hashtext(d.datname) AS oid))
            AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        prefix.replace('_', "\\_")
    ))
    .load::<Abandoned>(conn);
    for db in abandoned.unwrap_or_default() {
        // Only names a scratch database can have reach the SQL.
        if is_scratch_name(&db.name, prefix, suffix) {
            let _ =
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        }
    }
}

/// `name` is `prefix`, then one or more letters and digits, then `suffix`.
fn is_scratch_name(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[derive(diesel::QueryableByName)]
struct Abandoned {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// What to build in a scratch PostgreSQL database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Build<'a> {
    /// These migrations, by taskdb's runner.
    Migrations(&'a MigrationSource),
    /// A script (e.g. the schema `taskdb adopt` expects).
    Script(&'static str),
}

/// Builds `build` in a scratch database on `url`'s server (or, without
/// CREATEDB, in a rolled-back scratch schema) and reads its schema.
pub(crate) fn postgres_scratch(
    url: &DatabaseUrl,
    conn: &mut DbConnection,
    build: Build<'_>,
) -> Result<(Schema, ExpectedSource)> {
    let name = scratch_name();
    // Until the scratch database is gone again, a signal cancels this
    // connection's statements (and those of the migrator building the
    // scratch database) instead of ending the process, so the clean-up
    // below still runs.
    let cancel = CancelGuard::arm(url);
    let result = cancel
        .watch(conn)
        .and_then(|()| {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({})", scratch_lock(&name)))
                .map_err(Error::from)
        })
        .and_then(|()| build_in_scratch_database(url, conn, &cancel, &name, build));
    // A session lock outlives the statement that took it: release it, or a
    // failure would keep it until the connection closes. (The sweep only
    // reads it once the database is gone, so a failure here is harmless.)
    let _ = conn.batch_execute(&format!(
        "SELECT pg_advisory_unlock({})",
        scratch_lock(&name)
    ));
    match result {
        // What the build said it left behind, or that it left nothing.
        Err(e @ Error::Interrupted { .. }) => Err(e),
        Err(_) if interrupt::received().is_some() => {
            Err(Error::interrupted_leaving(CUT_SHORT_EARLY))
        }
        other => other,
    }
}

/// The interruption's outcome when it came before the scratch database
/// existed.
const CUT_SHORT_EARLY: &str =
    "the comparison was cut short before it built anything; nothing was changed";

/// [`postgres_scratch`] once the scratch database's name is locked.
fn build_in_scratch_database(
    url: &DatabaseUrl,
    conn: &mut DbConnection,
    cancel: &CancelGuard,
    name: &str,
    build: Build<'_>,
) -> Result<(Schema, ExpectedSource)> {
    sweep_abandoned(conn);
    if interrupt::received().is_some() {
        return Err(Error::interrupted_leaving(CUT_SHORT_EARLY));
    }
    // Asked, not inferred from an error: a role without CREATEDB builds in
    // a rolled-back schema, and one that may create neither is told what
    // it needs before anything is tried.
    let may = privileges(conn)?;
    if !may.create_database && !may.create_schema {
        return Err(Error::CannotBuildExpected {
            role: may.role,
            database: may.database,
        });
    }
    if !may.create_database {
        return match scratch_schema(conn, name, build) {
            Ok(schema) => Ok((schema, ExpectedSource::ScratchSchema)),
            Err(_) if interrupt::received().is_some() => {
                cancel.unwatch_all();
                // Ends the transaction if a cancelled ROLLBACK did not.
                let _ = conn.batch_execute("ROLLBACK");
                Err(Error::interrupted_leaving(
                    "the comparison was cut short; the transaction of its scratch schema was rolled back and nothing was changed",
                ))
            }
            Err(e) => Err(e),
        };
    }
    if let Err(e) = conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")) {
        if interrupt::received().is_some() {
            // A cancelled CREATE DATABASE leaves nothing behind.
            return Err(Error::interrupted_leaving(
                "the comparison was cut short while creating its scratch database; nothing was changed",
            ));
        }
        return Err(Error::MigrationState(format!(
            "cannot create the scratch database {name} the comparison is built in: {}",
            url.scrub(&e.to_string())
        )));
    }
    let built: Result<Schema> = (|| {
        interrupt::check()?;
        let scratch = with_database(url, name)?;
        match build {
            Build::Migrations(source) => {
                // A throwaway database nobody reads on a standby: waiting
                // for standbys here would only hold up checking one.
                migrate::Migrator::new(scratch.clone())
                    .with_source(source.clone())
                    .with_options(migrate::MigrateOptions {
                        max_replica_lag: migrate::replicas::LagBound::OFF,
                        ..migrate::MigrateOptions::default()
                    })
                    .migrate(None)?;
            }
            Build::Script(sql) => {
                let mut scratch_conn = db::connect(&scratch)?;
                cancel.watch(&mut scratch_conn)?;
                scratch_conn.batch_execute(sql)?;
            }
        }
        interrupt::check()?;
        let mut scratch_conn = db::connect(&scratch)?;
        let schema = catalog::read(&mut scratch_conn)?;
        interrupt::check()?;
        Ok(schema)
    })();
    // The drop runs on the watched connection: it must not be cancelled.
    cancel.unwatch_all();
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let mut dropped = conn.batch_execute(&drop);
    // A cancel the signal handler sent just before `unwatch_all` can still
    // land on the drop: after an interruption, try again a few times.
    for _ in 0..5 {
        if dropped.is_ok() || interrupt::received().is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        dropped = conn.batch_execute(&drop);
    }
    if interrupt::received().is_some() {
        return Err(Error::interrupted_leaving(match &dropped {
            Ok(()) => format!(
                "the comparison was cut short; its scratch database {name} was dropped and nothing else was changed"
            ),
            Err(e) => format!(
                "the comparison was cut short; its scratch database {name} could not be dropped ({}); the next `taskdb verify` drops it",
                url.scrub(&crate::db::one_line(&e.to_string()))
            ),
        }));
    }
    let schema = built?;
    dropped?;
    Ok((schema, ExpectedSource::ScratchDatabase))
}

/// What the session's role may create to build the expected schema in.
#[derive(diesel::QueryableByName)]
struct Privileges {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    create_database: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    create_schema: bool,
    /// Quoted as SQL needs it.
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    database: String,
}

fn privileges(conn: &mut DbConnection) -> Result<Privileges> {
    Ok(diesel::sql_query(
        "SELECT coalesce((SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS create_database,
                has_database_privilege(current_database(), 'CREATE') AS create_schema,
                quote_ident(current_user::text) AS role,
                quote_ident(current_database()::text) AS database",
    )
    .get_result(conn)?)
}

/// The same server and credentials, another database.
fn with_database(url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl> {
    url.with_database(name)
}

/// The fallback without CREATEDB: see the module docs.
fn scratch_schema(conn: &mut DbConnection, name: &str, build: Build<'_>) -> Result<Schema> {
    conn.batch_execute(&format!(
        "BEGIN; CREATE SCHEMA {name}; SET LOCAL search_path = {name};"
    ))?;
    let built = (|| {
        match build {
            Build::Migrations(source) => {
                for m in source.migrations(Backend::Postgres)? {
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
    fn a_sweep_drops_only_names_a_scratch_database_can_have() {
        let (rh, tpl) = ("taskdb_rehearse_", "taskdb_rehearse_tpl_");
        assert!(is_scratch_name("taskdb_rehearse_0a1b2c3d4e5f", rh, ""));
        assert!(is_scratch_name(
            "taskdb_rehearse_tpl_0a1b2c3d4e5f_build",
            tpl,
            "_build"
        ));
        for kept in [
            // A kept template, for the next rehearsal.
            "taskdb_rehearse_tpl_0a1b2c3d4e5f",
            "taskdb_rehearse_tpl_0a1b2c3d4e5f_build",
            "taskdb_rehearse_",
            "taskdb_rehearse_a;DROP",
        ] {
            assert!(!is_scratch_name(kept, rh, ""), "{kept}");
        }
        for kept in [
            "taskdb_rehearse_tpl_0a1b2c3d4e5f",
            "taskdb_rehearse_tpl__build",
            "taskdb_rehearse_tpl_a_b_build",
            "taskdb_rehearse_tpl_0a1b2c3d4e5f_build2",
        ] {
            assert!(!is_scratch_name(kept, tpl, "_build"), "{kept}");
        }
    }

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
