//! What a rollback would destroy: tables its `down.sql` files drop (and do
//! not rebuild under the same name), with their row counts, and columns
//! they drop (`ALTER TABLE … DROP COLUMN`) while they hold non-NULL
//! values, so the user sees the loss before anything runs.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::apply::quote_ident;
use crate::db::DbConnection;
use crate::error::Result;
use crate::source::LocalMigration;

/// A table a rollback would drop while it still holds rows, or a column
/// it would drop while it holds non-NULL values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableLoss {
    pub migration: String,
    pub table: String,
    /// Set when only this column is dropped; `rows` then counts its
    /// non-NULL values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub rows: i64,
}

impl TableLoss {
    /// E.g. `table tasks holding 3 row(s)` or `column tasks.priority holding
    /// 3 non-NULL value(s)`.
    pub fn describe(&self) -> String {
        match &self.column {
            None => format!("table {} holding {} row(s)", self.table, self.rows),
            Some(c) => format!(
                "column {}.{c} holding {} non-NULL value(s)",
                self.table, self.rows
            ),
        }
    }
}

/// Every table the given `down.sql` files drop that holds rows now, and
/// every column they drop that holds values.
pub fn data_loss(conn: &mut DbConnection, reverting: &[LocalMigration]) -> Result<Vec<TableLoss>> {
    let mut losses = Vec::new();
    for m in reverting {
        let Some(down) = m.down_sql() else { continue };
        let dropped = dropped_tables(down);
        for table in &dropped {
            if let Some(rows) = row_count(conn, table, None) {
                if rows > 0 {
                    losses.push(TableLoss {
                        migration: m.dir_name().to_string(),
                        table: table.clone(),
                        column: None,
                        rows,
                    });
                }
            }
        }
        for (table, column) in dropped_columns(down) {
            if dropped.contains(&table) {
                continue;
            }
            if let Some(rows) = row_count(conn, &table, Some(&column)) {
                if rows > 0 {
                    losses.push(TableLoss {
                        migration: m.dir_name().to_string(),
                        table,
                        column: Some(column),
                        rows,
                    });
                }
            }
        }
    }
    Ok(losses)
}

/// (table, column) of each `ALTER TABLE t DROP [COLUMN] [IF EXISTS] c`
/// in `sql`, including several `DROP` clauses of one statement.
pub fn dropped_columns(sql: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for statement in sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
    {
        let words: Vec<String> = statement
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| w.trim_matches('"').to_string())
            .collect();
        let upper = |k: usize| words.get(k).map(|w| w.to_ascii_uppercase());
        if upper(0).as_deref() != Some("ALTER") || upper(1).as_deref() != Some("TABLE") {
            continue;
        }
        let mut i = 2;
        if upper(i).as_deref() == Some("IF") {
            i += 2;
        }
        if upper(i).as_deref() == Some("ONLY") {
            i += 1;
        }
        let Some(table) = words.get(i).cloned() else {
            continue;
        };
        for j in i + 1..words.len() {
            if upper(j).as_deref() != Some("DROP") {
                continue;
            }
            let mut k = j + 1;
            match upper(k).as_deref() {
                Some("COLUMN") => k += 1,
                Some("CONSTRAINT") => continue,
                _ => {}
            }
            if upper(k).as_deref() == Some("IF") {
                k += 2;
            }
            if let Some(column) = words.get(k) {
                out.push((table.clone(), column.clone()));
            }
        }
    }
    out
}

/// Tables dropped by `sql` that the same script does not recreate by
/// renaming another table to that name (SQLite's rebuild pattern).
pub fn dropped_tables(sql: &str) -> Vec<String> {
    let words: Vec<String> = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .flat_map(|l| l.split_whitespace())
        .map(|w| w.trim_end_matches(';').trim_matches('"').to_string())
        .collect();
    let upper = |k: usize| words.get(k).map(|w| w.to_ascii_uppercase());
    let mut dropped = Vec::new();
    let mut renamed_to = Vec::new();
    for i in 0..words.len() {
        if upper(i).as_deref() == Some("DROP") && upper(i + 1).as_deref() == Some("TABLE") {
            let mut j = i + 2;
            if upper(j).as_deref() == Some("IF") {
                j += 2;
            }
            if let Some(name) = words.get(j) {
                for name in name.split(',').filter(|n| !n.is_empty()) {
                    dropped.push(name.to_string());
                }
            }
        }
        if upper(i).as_deref() == Some("RENAME") && upper(i + 1).as_deref() == Some("TO") {
            if let Some(name) = words.get(i + 2) {
                renamed_to.push(name.to_string());
            }
        }
    }
    dropped.retain(|t| !renamed_to.contains(t));
    dropped
}

/// Rows in `table` (with a non-NULL `column`, when given), or None if it
/// (or the column) does not exist.
fn row_count(conn: &mut DbConnection, table: &str, column: Option<&str>) -> Option<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let filter = column
        .map(|c| format!(" WHERE {} IS NOT NULL", quote_ident(c)))
        .unwrap_or_default();
    diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM {}{filter}",
        quote_ident(table)
    ))
    .get_result::<Count>(conn)
    .ok()
    .map(|c| c.n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_tables_are_not_losses() {
        let sql = "CREATE TABLE tasks_old (id INT);\nINSERT INTO tasks_old SELECT * FROM tasks;\nDROP TABLE tasks;\nALTER TABLE tasks_old RENAME TO tasks;";
        assert!(dropped_tables(sql).is_empty());
        assert_eq!(dropped_tables("DROP TABLE IF EXISTS users;"), vec!["users"]);
        assert_eq!(
            dropped_tables("-- DROP TABLE x\nSELECT 1;"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn dropped_columns_are_found_in_each_spelling() {
        let sql = "ALTER TABLE tasks DROP COLUMN IF EXISTS priority;\n-- ALTER TABLE x DROP COLUMN y;\nALTER TABLE IF EXISTS users DROP name, DROP CONSTRAINT c, DROP COLUMN \"Nick\";\nALTER TABLE tasks ADD COLUMN z INT;";
        assert_eq!(
            dropped_columns(sql),
            vec![
                ("tasks".to_string(), "priority".to_string()),
                ("users".to_string(), "name".to_string()),
                ("users".to_string(), "Nick".to_string()),
            ]
        );
    }
}
