//! The SQL `taskdb new` writes for each kind of change, PostgreSQL and
//! SQLite side by side.
//!
//! PostgreSQL shapes (`taskdb lint` accepts exactly these; docs/lint.md):
//! - a column is added nullable, or NOT NULL with a constant default (no
//!   table rewrite); a volatile default is refused with the backfill recipe;
//! - an index is built `CONCURRENTLY IF NOT EXISTS`, the only statement of
//!   a migration that runs outside a transaction;
//! - a foreign key or CHECK is added `NOT VALID` (a catalog change), then
//!   validated by a second migration (a scan that does not block writes);
//! - NOT NULL is a validated `CHECK (col IS NOT NULL)` first, so that
//!   `SET NOT NULL` skips its scan, then the check is dropped.
//!
//! SQLite has one writer and no online DDL, so its side is the plain form:
//! `ADD COLUMN`, `CREATE INDEX`, and for a constraint the table rebuild of
//! `2026-02-08-000003_add_tasks_user_fk`. Where PostgreSQL needs more
//! migrations than SQLite, SQLite's extra ones are no-ops that keep both
//! histories under the same names.
//!
//! One file per kind of change; `checks` holds what every recipe checks
//! before it writes, `sqlite_rebuild` the table rebuild several share.

mod add_column;
mod add_index;
mod backfill;
mod checks;
mod constraint;
mod set_not_null;
mod skeleton;
mod sqlite_rebuild;

use self::add_column::add_column;
use self::add_index::add_index;
use self::backfill::backfill;
use self::constraint::{add_check, add_foreign_key};
use self::set_not_null::set_not_null;
use self::skeleton::skeleton;
use super::sqlite_schema::SqliteSchema;
use super::{MigrationFiles, Result, ScaffoldError};

pub use self::add_column::is_constant_default;
pub use self::add_index::index_name;

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// Commented skeletons, to fill in by hand.
    Skeleton,
    AddColumn(AddColumn),
    AddIndex(AddIndex),
    AddForeignKey(AddForeignKey),
    AddCheck(AddCheck),
    SetNotNull(ColumnRef),
    Backfill(Backfill),
}

/// `table.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: String,
    pub column: String,
}

impl ColumnRef {
    /// Parses `tasks.due_date`.
    pub fn parse(input: &str) -> Result<Self> {
        match input.split_once('.') {
            Some((table, column)) => Ok(ColumnRef {
                table: table.to_string(),
                column: column.to_string(),
            }),
            None => Err(ScaffoldError::Refused(format!(
                "`{input}` is not TABLE.COLUMN (e.g. tasks.project_id)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddColumn {
    pub table: String,
    pub column: String,
    /// The SQL type as given (`timestamp`, `varchar(255)`, `integer`).
    pub sql_type: String,
    pub not_null: bool,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddIndex {
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// A partial index's `WHERE` predicate.
    pub predicate: Option<String>,
}

/// `UPDATE table SET set WHERE predicate`, run by taskdb in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub table: String,
    /// The `SET` list, e.g. `priority = 0`.
    pub set: String,
    /// The rows to change, e.g. `priority IS NULL`.
    pub predicate: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    SetNull,
    Restrict,
    NoAction,
}

impl OnDelete {
    fn sql(self) -> &'static str {
        match self {
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::NoAction => "NO ACTION",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddForeignKey {
    pub from: ColumnRef,
    pub to: ColumnRef,
    pub on_delete: Option<OnDelete>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheck {
    pub table: String,
    pub expression: String,
}

/// One migration of a recipe, before it gets its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The directory name after the version, e.g. `add_tasks_fk_validate`.
    pub name: String,
    pub postgres: MigrationFiles,
    pub sqlite: MigrationFiles,
}

/// The migrations of `recipe`, named after `name`, checked against the
/// current SQLite schema (tables and columns must exist, a rebuild needs
/// the table's definition).
pub fn build(name: &str, recipe: &Recipe, schema: &SqliteSchema) -> Result<Vec<Step>> {
    match recipe {
        Recipe::Skeleton => Ok(vec![skeleton(name)]),
        Recipe::AddColumn(c) => add_column(name, c, schema),
        Recipe::AddIndex(i) => add_index(name, i, schema),
        Recipe::AddForeignKey(fk) => add_foreign_key(name, fk, schema),
        Recipe::AddCheck(check) => add_check(name, check, schema),
        Recipe::SetNotNull(c) => set_not_null(name, c, schema),
        Recipe::Backfill(b) => backfill(name, b, schema),
    }
}

fn files(up: String, down: String) -> MigrationFiles {
    MigrationFiles {
        up,
        down,
        metadata: None,
    }
}

/// A SQLite migration that only keeps the histories aligned.
fn no_op(rebuilt: &str) -> MigrationFiles {
    let text = format!(
        "\
-- Nothing to do on SQLite: {rebuilt}
-- This migration keeps both backends' histories under the same names.
SELECT 1;
"
    );
    files(text.clone(), text)
}

/// The schema and helpers the recipes' tests share.
#[cfg(test)]
mod fixtures {
    use super::SqliteSchema;

    /// The app's SQLite schema as its first release left it, written out
    /// here so that these tests do not change meaning when a migration is
    /// added to the crate.
    const FIXTURE: &str = "
        CREATE TABLE users (
            id VARCHAR(255) PRIMARY KEY NOT NULL,
            email VARCHAR(255) NOT NULL,
            name VARCHAR(255),
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
        CREATE INDEX idx_users_created_at ON users (created_at);
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id VARCHAR(255) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            title VARCHAR(255) NOT NULL,
            description TEXT,
            completed BOOLEAN NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed);
        CREATE TRIGGER tasks_set_updated_at AFTER UPDATE ON tasks
        FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
        BEGIN
            UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
        END;
    ";

    pub(super) fn fixture() -> Vec<(String, String)> {
        vec![("fixture".to_string(), FIXTURE.to_string())]
    }

    pub(super) fn schema() -> SqliteSchema {
        SqliteSchema::from_migrations(&fixture()).unwrap()
    }

    /// The SQL of a file without its comment lines.
    pub(super) fn statements(sql: &str) -> String {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
