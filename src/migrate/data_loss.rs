//! What a rollback would destroy: tables its `down.sql` files drop (and do
//! not rebuild under the same name), with their row counts, so the user
//! sees the loss before anything runs.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::apply::quote_ident;
use super::source::LocalMigration;
use crate::db::DbConnection;
use crate::error::Result;

/// A table a rollback would drop while it still holds rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableLoss {
    pub migration: String,
    pub table: String,
    pub rows: i64,
}

/// Every table the given `down.sql` files drop that holds rows now.
pub fn data_loss(conn: &mut DbConnection, reverting: &[LocalMigration]) -> Result<Vec<TableLoss>> {
    let mut losses = Vec::new();
    for m in reverting {
        let Some(down) = m.down_sql() else { continue };
        for table in dropped_tables(down) {
            if let Some(rows) = row_count(conn, &table) {
                if rows > 0 {
                    losses.push(TableLoss {
                        migration: m.dir_name().to_string(),
                        table,
                        rows,
                    });
                }
            }
        }
    }
    Ok(losses)
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

/// Rows in `table`, or None if it does not exist.
fn row_count(conn: &mut DbConnection, table: &str) -> Option<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", quote_ident(table)))
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
}
