//! Reads the live schema of one database from its catalog, into the same
//! shape for both backends: PostgreSQL from `pg_catalog`, SQLite from
//! `sqlite_master` and the `pragma_*` table functions. The expected schema is
//! read by this same reader from a freshly migrated scratch database, so
//! the two sides always speak the same dialect.
//!
//! This module holds the shape both readers fill and [`read`], which picks
//! one; `pg` and `sqlite` hold each backend's catalog queries.

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "postgres")]
pub mod table_size;

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use crate::db::DbConnection;
use crate::error::Result;

/// A table's live size (rows: the planner's estimate from its current pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSize {
    pub rows: i64,
    pub bytes: i64,
}

/// Tables that hold migration history, not the app's data: Diesel's and
/// taskdb's tracking tables, and the Python runner's `schema_migrations`,
/// which `taskdb adopt` leaves in place as the database's earlier history;
/// and `taskdb distribute`'s record of its steps on a Citus coordinator.
pub const IGNORED_TABLES: [&str; 4] = [
    "__diesel_schema_migrations",
    "__taskdb_ledger",
    "schema_migrations",
    "__taskdb_distribution",
];

/// The schema of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Schema {
    /// Tables by name.
    pub tables: BTreeMap<String, Table>,
}

/// One table with everything hanging off it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    pub name: String,
    /// In column order.
    pub columns: Vec<Column>,
    /// Primary key, unique, foreign key and check constraints.
    pub constraints: Vec<Constraint>,
    /// Every index, including those backing a constraint.
    pub indexes: Vec<Index>,
    pub triggers: Vec<Trigger>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// As the database spells it (`character varying(255)`, `VARCHAR(255)`).
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    /// The default expression as the database prints it.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    // Read from PostgreSQL's catalog only.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Check,
}

impl ConstraintKind {
    /// `primary key`, `unique constraint`, `foreign key`, `check constraint`.
    #[cfg(feature = "cli")]
    pub fn label(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::Unique => "unique constraint",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check constraint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Constraint {
    /// The database's name (SQLite constraints have none: a name is made
    /// up from the columns).
    pub name: String,
    pub kind: ConstraintKind,
    pub columns: Vec<String>,
    /// Foreign keys: the referenced table and columns.
    pub references: Option<(String, Vec<String>)>,
    /// Foreign keys: `CASCADE`, `NO ACTION`, `RESTRICT`, `SET NULL`, `SET DEFAULT`.
    pub on_delete: Option<String>,
    /// False for a PostgreSQL constraint added `NOT VALID` and not yet
    /// validated: old rows were never checked.
    pub validated: bool,
    /// The full definition as the database prints it.
    pub definition: String,
}

impl Constraint {
    /// What identifies the rule regardless of its name: kind and columns
    /// (and target, for a foreign key; expression, for a check).
    #[cfg(feature = "cli")]
    pub fn signature(&self) -> String {
        match self.kind {
            ConstraintKind::ForeignKey => {
                let (table, cols) = self.references.clone().unwrap_or_default();
                format!(
                    "foreign key ({}) → {table} ({})",
                    self.columns.join(", "),
                    cols.join(", ")
                )
            }
            ConstraintKind::Check => format!("check {}", self.definition),
            kind => format!("{} ({})", kind.label(), self.columns.join(", ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Index {
    pub name: String,
    /// Key columns or expressions, in order (`user_id`, `lower(email)`).
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// False for a PostgreSQL index whose build failed or was cut off: it is
    /// maintained on every write but never used, and enforces nothing.
    pub valid: bool,
    /// Only rows matching a WHERE clause are indexed.
    pub partial: bool,
    /// Access method (`btree`, …); SQLite indexes are all b-trees.
    pub method: String,
    /// The constraint this index implements, if any.
    pub constraint: Option<String>,
    /// `CREATE [UNIQUE] INDEX …` as the database prints it.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trigger {
    pub name: String,
    pub definition: String,
}

/// Reads the schema of the database `conn` is connected to (PostgreSQL:
/// its current schema), leaving out the [`IGNORED_TABLES`].
pub fn read(conn: &mut DbConnection) -> Result<Schema> {
    let mut schema = crate::db::on_backend!(conn,
        Postgres(c) => pg::read(c)?,
        Sqlite(c) => sqlite::read(c)?,
    );
    schema
        .tables
        .retain(|name, _| !IGNORED_TABLES.contains(&name.as_str()));
    Ok(schema)
}

fn table_entry<'s>(schema: &'s mut Schema, name: &str) -> &'s mut Table {
    schema
        .tables
        .entry(name.to_string())
        .or_insert_with(|| Table {
            name: name.to_string(),
            ..Table::default()
        })
}

/// A name and its definition, by table: the rows of both backends' trigger
/// queries, and of SQLite's table list.
#[derive(QueryableByName)]
struct NamedDefinition {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    definition: Option<String>,
}
