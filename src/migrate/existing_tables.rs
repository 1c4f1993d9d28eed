//! Checks `migrate` makes before its first change.
//!
//! The first migration adopts an existing `tasks` table with `CREATE TABLE
//! IF NOT EXISTS`, which would accept a table of any shape: on a database
//! where another app owns a `tasks` table, the migrations after it would
//! add functions, `users` and a trigger on that app's table before failing
//! at the foreign key. So before anything runs, an existing `tasks` must be
//! the app's: the columns it had before user accounts (the ones `taskdb
//! adopt` expects), with their types and nullability.

use diesel::connection::SimpleConnection;

use crate::catalog;
use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::source::LocalMigration;

/// One column of the app's `tasks` table as it stood before user accounts.
struct AppColumn {
    name: &'static str,
    /// As PostgreSQL's `format_type` prints it.
    postgres: &'static str,
    /// As declared in SQLite (compared ignoring case).
    sqlite: &'static str,
    nullable: bool,
}

const APP_TASKS_COLUMNS: [AppColumn; 7] = [
    AppColumn {
        name: "id",
        postgres: "integer",
        sqlite: "integer",
        nullable: false,
    },
    AppColumn {
        name: "user_id",
        postgres: "character varying(255)",
        sqlite: "varchar(255)",
        nullable: false,
    },
    AppColumn {
        name: "title",
        postgres: "character varying(255)",
        sqlite: "varchar(255)",
        nullable: false,
    },
    AppColumn {
        name: "description",
        postgres: "text",
        sqlite: "text",
        nullable: true,
    },
    AppColumn {
        name: "completed",
        postgres: "boolean",
        sqlite: "boolean",
        nullable: false,
    },
    AppColumn {
        name: "created_at",
        postgres: "timestamp without time zone",
        sqlite: "timestamp",
        nullable: false,
    },
    AppColumn {
        name: "updated_at",
        postgres: "timestamp without time zone",
        sqlite: "timestamp",
        nullable: false,
    },
];

/// True when `m` takes over an existing `tasks` table as it finds it.
fn adopts_existing_tasks(m: &LocalMigration) -> bool {
    m.up_sql()
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(6)
        .any(|w| w == ["create", "table", "if", "not", "exists", "tasks"])
}

/// Refuses, changing nothing, when a pending migration would adopt an
/// existing `tasks` table that is not the app's.
pub fn check_existing_tables(conn: &mut DbConnection, pending: &[LocalMigration]) -> Result<()> {
    if !pending.iter().any(adopts_existing_tasks) {
        return Ok(());
    }
    let backend = conn.backend();
    // One snapshot for the catalog's several queries: on SQLite another
    // migrator may create the table between them (on PostgreSQL the
    // migration lock keeps other migrators out).
    let schema = match backend {
        Backend::Sqlite => {
            conn.batch_execute("BEGIN")?;
            let read = catalog::read(conn);
            conn.batch_execute("COMMIT")?;
            read?
        }
        Backend::Postgres => catalog::read(conn)?,
    };
    let Some(tasks) = schema.tables.get("tasks") else {
        return Ok(());
    };
    let mut differences = Vec::new();
    for expected in &APP_TASKS_COLUMNS {
        let want = match backend {
            Backend::Postgres => expected.postgres,
            Backend::Sqlite => expected.sqlite,
        };
        let want_null = if expected.nullable { "" } else { " NOT NULL" };
        let Some(found) = tasks.columns.iter().find(|c| c.name == expected.name) else {
            differences.push(format!(
                "missing column {} {want}{want_null}",
                expected.name
            ));
            continue;
        };
        if !found.data_type.eq_ignore_ascii_case(want) {
            differences.push(format!(
                "column {} is {}, expected {want}",
                expected.name, found.data_type
            ));
        }
        // SQLite reports its INTEGER PRIMARY KEY (the rowid) as nullable.
        let is_rowid = backend == Backend::Sqlite && expected.name == "id";
        if found.nullable != expected.nullable && !is_rowid {
            differences.push(format!(
                "column {} is {}, expected{}",
                expected.name,
                if found.nullable {
                    "nullable"
                } else {
                    "NOT NULL"
                },
                if expected.nullable {
                    " nullable"
                } else {
                    want_null
                }
            ));
        }
    }
    for column in &tasks.columns {
        if !APP_TASKS_COLUMNS.iter().any(|c| c.name == column.name) {
            differences.push(format!("extra column {} {}", column.name, column.data_type));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::IncompatibleTable {
        table: "tasks".into(),
        differences,
    })
}
