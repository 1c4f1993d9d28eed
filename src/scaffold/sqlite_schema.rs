//! The SQLite schema the crate's migrations build, read back from an
//! in-memory database they were applied to. SQLite cannot add a constraint
//! to an existing table or change a column: a migration rebuilds the table,
//! and to write that rebuild `taskdb new` needs the table's definition as
//! it stands after the newest migration, together with its indexes and
//! triggers (dropped with the old table, so created again).

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};
use diesel::SqliteConnection;

use super::{Result, ScaffoldError};

/// One column, as `pragma_table_info` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub not_null: bool,
    /// Its position in the primary key (1 for the first), 0 outside it.
    pub primary_key: i32,
}

/// A table and what a rebuild must carry over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// The `CREATE TABLE` statement as SQLite stores it.
    pub sql: String,
    pub columns: Vec<Column>,
    /// `CREATE INDEX` statements (SQLite's automatic indexes have none).
    pub indexes: Vec<String>,
    /// Index names, the automatic ones included.
    pub index_names: Vec<String>,
    pub triggers: Vec<String>,
    /// Tables whose foreign keys reference this one.
    pub referenced_by: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The primary key's one column; `None` for a composite key or none.
    pub fn primary_key(&self) -> Option<&Column> {
        let mut key = self.columns.iter().filter(|c| c.primary_key > 0);
        match (key.next(), key.next()) {
            (Some(column), None) => Some(column),
            _ => None,
        }
    }

    /// The part of `CREATE TABLE x (…)` between the outer parentheses.
    pub fn body(&self) -> Option<&str> {
        let start = self.sql.find('(')?;
        let end = self.sql.rfind(')')?;
        (end > start).then(|| &self.sql[start + 1..end])
    }
}

/// The user tables of the schema, by name.
#[derive(Debug, Clone, Default)]
pub struct SqliteSchema {
    pub tables: BTreeMap<String, Table>,
}

#[derive(QueryableByName)]
struct MasterRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    tbl_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    sql: Option<String>,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct ReferenceRow {
    #[diesel(sql_type = Text)]
    parent: String,
}

impl SqliteSchema {
    /// Applies `migrations` (directory name, `up.sql`), in order, to an
    /// in-memory database with foreign keys on (as taskdb connects), and
    /// reads the result.
    pub fn from_migrations(migrations: &[(String, String)]) -> Result<Self> {
        let failed = |migration: &str, e: &dyn std::fmt::Display| ScaffoldError::SqliteMigrations {
            migration: migration.to_string(),
            reason: crate::db::one_line(&e.to_string()),
        };
        let mut conn = SqliteConnection::establish(":memory:")
            .map_err(|e| failed("(in-memory database)", &e))?;
        conn.batch_execute("PRAGMA foreign_keys = ON")
            .map_err(|e| failed("(in-memory database)", &e))?;
        for (name, sql) in migrations {
            conn.batch_execute(sql).map_err(|e| failed(name, &e))?;
        }
        Self::read(&mut conn).map_err(|e| failed("(reading the schema)", &e))
    }

    fn read(conn: &mut SqliteConnection) -> diesel::QueryResult<Self> {
        let rows: Vec<MasterRow> = diesel::sql_query(
            "SELECT type AS kind, name, tbl_name, sql FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' AND tbl_name NOT LIKE '\\_\\_%' ESCAPE '\\' \
             ORDER BY rowid",
        )
        .load(conn)?;
        let mut tables = BTreeMap::new();
        for row in rows.iter().filter(|r| r.kind == "table") {
            let columns: Vec<ColumnRow> =
                diesel::sql_query("SELECT name, \"notnull\", pk FROM pragma_table_info(?)")
                    .bind::<Text, _>(&row.name)
                    .load(conn)?;
            tables.insert(
                row.name.clone(),
                Table {
                    sql: row.sql.clone().unwrap_or_default(),
                    columns: columns
                        .into_iter()
                        .map(|c| Column {
                            name: c.name,
                            not_null: c.notnull != 0,
                            primary_key: c.pk,
                        })
                        .collect(),
                    ..Table::default()
                },
            );
        }
        // Automatic indexes (UNIQUE, PRIMARY KEY) are named sqlite_autoindex_*.
        let auto: Vec<MasterRow> = diesel::sql_query(
            "SELECT type AS kind, name, tbl_name, sql FROM sqlite_master \
             WHERE type = 'index' AND name LIKE 'sqlite_%'",
        )
        .load(conn)?;
        for row in rows.iter().chain(&auto) {
            let Some(table) = tables.get_mut(&row.tbl_name) else {
                continue;
            };
            match (row.kind.as_str(), &row.sql) {
                ("index", sql) => {
                    table.index_names.push(row.name.clone());
                    if let Some(sql) = sql {
                        table.indexes.push(sql.clone());
                    }
                }
                ("trigger", Some(sql)) => table.triggers.push(sql.clone()),
                _ => {}
            }
        }
        let names: Vec<String> = tables.keys().cloned().collect();
        for child in names {
            let parents: Vec<ReferenceRow> = diesel::sql_query(
                "SELECT DISTINCT \"table\" AS parent FROM pragma_foreign_key_list(?)",
            )
            .bind::<Text, _>(&child)
            .load(conn)?;
            for parent in parents {
                if let Some(table) = tables.get_mut(&parent.parent) {
                    if parent.parent != child {
                        table.referenced_by.push(child.clone());
                    }
                }
            }
        }
        Ok(SqliteSchema { tables })
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Whether any table has an index of that name.
    pub fn has_index(&self, name: &str) -> bool {
        self.tables
            .values()
            .any(|t| t.index_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }
}

/// Splits a table body at its top-level commas (not those inside
/// parentheses, quotes or comments), trimmed.
pub fn split_items(body: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                for next in chars.by_ref() {
                    current.push(next);
                    if next == c {
                        break;
                    }
                }
            }
            '[' => {
                current.push(c);
                for next in chars.by_ref() {
                    current.push(next);
                    if next == ']' {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // A comment runs to the end of the line; it is dropped.
                for next in chars.by_ref() {
                    if next == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => {
                items.push(current.trim().to_string());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_string());
    }
    items
}

/// The column an item of a table body defines, if it is a column definition
/// (not a table constraint).
pub fn item_column(item: &str) -> Option<String> {
    let first = item.split_whitespace().next()?;
    let upper = first.to_ascii_uppercase();
    if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"].contains(&upper.as_str()) {
        return None;
    }
    Some(
        first
            .trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_body_at_top_level_commas() {
        let items = split_items(
            "\n    id INTEGER PRIMARY KEY,\n    price NUMERIC(10, 2) DEFAULT 'a,b', -- note, here\n    CHECK (price > 0)\n",
        );
        assert_eq!(
            items,
            [
                "id INTEGER PRIMARY KEY",
                "price NUMERIC(10, 2) DEFAULT 'a,b'",
                "CHECK (price > 0)"
            ]
        );
        assert_eq!(item_column(&items[1]).as_deref(), Some("price"));
        assert_eq!(item_column(&items[2]), None);
        assert_eq!(item_column("\"title\" TEXT").as_deref(), Some("title"));
    }

    #[test]
    fn reads_tables_indexes_triggers_and_references() {
        let schema = SqliteSchema::from_migrations(&[(
            "1_x".into(),
            "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT);
             CREATE TABLE tasks (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id));
             CREATE INDEX idx_tasks_user ON tasks (user_id);
             CREATE TRIGGER t AFTER UPDATE ON tasks BEGIN SELECT 1; END;"
                .into(),
        )])
        .unwrap();
        let tasks = schema.table("tasks").unwrap();
        assert_eq!(
            tasks.indexes,
            ["CREATE INDEX idx_tasks_user ON tasks (user_id)"]
        );
        assert_eq!(tasks.triggers.len(), 1);
        assert!(tasks.column("user_id").unwrap().not_null);
        assert_eq!(schema.table("users").unwrap().referenced_by, ["tasks"]);
        assert!(schema.has_index("sqlite_autoindex_users_1"));
        assert!(!schema.has_index("nope"));
    }

    #[test]
    fn a_failing_migration_is_named() {
        let err = SqliteSchema::from_migrations(&[("2_bad".into(), "CREATE TABLE (".into())])
            .unwrap_err();
        assert!(err.to_string().contains("2_bad"), "{err}");
    }
}
