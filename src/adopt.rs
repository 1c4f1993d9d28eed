//! Adopting a PostgreSQL database that the app's old Python runner migrated
//! (its `schema_migrations` lists `001_create_users_table` and
//! `002_add_tasks_foreign_key`).
//!
//! [`adopt`] first checks that the live schema really is that state: the
//! schema in `adopt/legacy_schema.sql` (the seed's summary, plus the tasks
//! table as SQLModel created it) is built in a scratch database and compared
//! with the live one by `verify`'s comparison. Column defaults may differ
//! (the app set its timestamps itself; a later migration sets taskdb's
//! defaults anyway); anything else refuses the adoption, with the
//! differences. It then records, in Diesel's table and taskdb's ledger
//! (`applied_by` = `taskdb adopt`), the taskdb migrations that state
//! already satisfies ([`SATISFIED`]), and leaves the rest to `taskdb
//! migrate`, whose migrations converge the database on taskdb's schema:
//! the duplicate indexes dropped, emails unique ignoring case, UTC
//! defaults, the `updated_at` triggers. No row is touched. The runner's
//! `schema_migrations` stays as the database's earlier history (`verify`
//! ignores it).
//!
//! Only PostgreSQL: the Python runner only ever ran on PostgreSQL.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::{self, sqlstate, Backend, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::migrate::{self, apply, ledger, lock::MigrationLock, MigrateOptions, MigrationPlan};
use crate::verify::{self, expected, Difference, DifferenceKind};

/// The schema the Python runner left.
pub const LEGACY_SCHEMA: &str = include_str!("adopt/legacy_schema.sql");

/// The versions the Python runner's `schema_migrations` lists.
pub const LEGACY_VERSIONS: [&str; 2] = ["001_create_users_table", "002_add_tasks_foreign_key"];

/// Recorded in the ledger as who applied the adopted migrations.
pub const APPLIED_BY: &str = "taskdb adopt";

/// taskdb migrations the legacy state already satisfies, with why. Running
/// them would fail (the tables and the constraint exist) or do nothing.
pub const SATISFIED: [(&str, &str); 4] = [
    (
        "2026-02-08-000002_create_users",
        "users exists (the runner's 001_create_users_table)",
    ),
    (
        "2026-02-08-000003_add_tasks_user_fk",
        "fk_tasks_user_id exists (the runner's 002_add_tasks_foreign_key)",
    ),
    (
        "2026-02-08-000004_index_tasks_user_completed",
        "idx_tasks_user_completed exists (the runner's 002_add_tasks_foreign_key)",
    ),
    (
        "2026-02-08-000005_validate_tasks_user_fk",
        "fk_tasks_user_id was added validated",
    ),
];

/// What [`adopt`] found and did.
#[derive(Debug, Clone)]
pub enum Adoption {
    /// taskdb already tracks this database; nothing was changed.
    AlreadyManaged { applied: usize },
    /// The database is not the Python runner's state; nothing was changed.
    Refused {
        reason: String,
        differences: Vec<Difference>,
    },
    /// The satisfied migrations were recorded.
    Adopted {
        /// Directory names recorded as applied, with why.
        recorded: Vec<(String, &'static str)>,
        /// Directory names left for `taskdb migrate`.
        pending: Vec<String>,
        /// Emails that differ only in case: the case-insensitive unique
        /// index `taskdb migrate` builds fails until they are resolved.
        email_conflicts: Vec<String>,
    },
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Adopts the database at `url` (see the module docs).
pub fn adopt(url: &DatabaseUrl, wait: Option<std::time::Duration>) -> Result<Adoption> {
    if url.backend() != Backend::Postgres {
        return Err(Error::InvalidInput(
            "adopt is for PostgreSQL databases migrated by the Python runner; a SQLite database needs only `taskdb migrate`".into(),
        ));
    }
    let mut conn = db::connect_with_wait(url, wait)?;
    let plan = MigrationPlan::load(&mut conn)?;
    let applied = plan.applied().count();
    if applied > 0 {
        return Ok(Adoption::AlreadyManaged { applied });
    }
    if let Some(refusal) = check_legacy_state(url, &mut conn)? {
        return Ok(refusal);
    }
    let satisfied = SATISFIED
        .iter()
        .map(|(dir, why)| migrate::resolve(Backend::Postgres, dir).map(|m| (m, *why)))
        .collect::<Result<Vec<_>>>()?;

    let _lock = MigrationLock::acquire(url, || {})?;
    let settings = MigrateOptions {
        lock_retries: 0,
        applied_by: APPLIED_BY.into(),
        ..MigrateOptions::default()
    };
    let recorded = apply::in_write_transaction(&mut conn, &settings, |c| {
        ledger::create_tables(c)?;
        // Another taskdb may have started managing it meanwhile.
        if MigrationPlan::load(c)?.applied().count() > 0 {
            return Ok(None);
        }
        for (m, _) in &satisfied {
            ledger::record_applied(c, m, 0, APPLIED_BY)?;
        }
        Ok(Some(()))
    })?;
    if recorded.is_none() {
        let applied = MigrationPlan::load(&mut conn)?.applied().count();
        return Ok(Adoption::AlreadyManaged { applied });
    }
    let plan = MigrationPlan::load(&mut conn)?;
    let email_conflicts = diesel::sql_query(
        "SELECT string_agg(email, ', ' ORDER BY email) AS line FROM users
          GROUP BY lower(email) HAVING COUNT(*) > 1 ORDER BY 1",
    )
    .load::<Line>(&mut conn)?
    .into_iter()
    .map(|l| l.line)
    .collect();
    Ok(Adoption::Adopted {
        recorded: satisfied
            .iter()
            .map(|(m, why)| (m.dir_name().to_string(), *why))
            .collect(),
        pending: plan.pending().map(|e| e.name.clone()).collect(),
        email_conflicts,
    })
}

/// None when the live database is the Python runner's state; otherwise
/// the refusal saying why.
fn check_legacy_state(url: &DatabaseUrl, conn: &mut DbConnection) -> Result<Option<Adoption>> {
    let refuse = |reason: String| {
        Ok(Some(Adoption::Refused {
            reason,
            differences: Vec::new(),
        }))
    };
    if !sqlstate::table_exists(conn, "schema_migrations")? {
        return refuse(
            "there is no schema_migrations table, so the Python runner did not migrate this database (a new database needs only `taskdb migrate`)".into(),
        );
    }
    let versions: Vec<String> =
        diesel::sql_query("SELECT version::text AS line FROM schema_migrations ORDER BY 1")
            .load::<Line>(conn)?
            .into_iter()
            .map(|l| l.line)
            .collect();
    if versions != LEGACY_VERSIONS {
        return refuse(format!(
            "schema_migrations lists [{}]; adopt knows the Python runner's [{}] only",
            versions.join(", "),
            LEGACY_VERSIONS.join(", ")
        ));
    }
    let actual = crate::catalog::read(conn)?;
    let (legacy, _) =
        expected::postgres_scratch(url, conn, expected::Build::Script(LEGACY_SCHEMA))?;
    let differences: Vec<Difference> = verify::compare(&legacy, &actual)
        .into_iter()
        .filter(|d| d.kind != DifferenceKind::ColumnDefault)
        .collect();
    if differences.is_empty() {
        return Ok(None);
    }
    Ok(Some(Adoption::Refused {
        reason: format!(
            "the schema is not the one the Python runner left ({} difference(s)); adopt records migrations as applied only when their result is really there",
            differences.len()
        ),
        differences,
    }))
}
