//! Rows in every table, derived from the live catalog (never a hand-written
//! list of tables or columns), so a migration that only works on empty
//! tables fails here, whatever tables the migrations have grown by then.
//! Used with `#[path = "rows/mod.rs"] mod rows;`.

use crate::common::TestDb;
use taskdb::Backend;

/// One column of a user table, as the catalog describes it.
#[derive(Debug)]
struct Column {
    table: String,
    name: String,
    sql_type: String,
    /// Has a default, or the database fills it (serial, rowid).
    filled_by_database: bool,
    /// `parent_table.parent_column` for a foreign key column.
    references: Option<(String, String)>,
}

fn columns(db: &TestDb) -> Vec<Column> {
    let sql = match db.backend {
        Backend::Postgres => {
            "SELECT c.table_name || '|' || c.column_name || '|' || lower(c.data_type) || '|' || \
                    (c.column_default IS NOT NULL OR c.is_identity = 'YES')::text || '|' || \
                    coalesce(fk.parent, '') AS line \
               FROM information_schema.columns c \
               LEFT JOIN (SELECT con.conrelid::regclass::text AS child, a.attname::text AS col, \
                                 con.confrelid::regclass::text || '.' || pa.attname AS parent \
                            FROM pg_constraint con \
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
                            JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = con.confkey[1] \
                           WHERE con.contype = 'f') fk \
                 ON fk.child = c.table_name AND fk.col = c.column_name \
              WHERE c.table_schema = 'public' AND c.table_name NOT LIKE '\\_\\_%' \
              ORDER BY c.table_name, c.ordinal_position"
        }
        Backend::Sqlite => {
            "SELECT m.name || '|' || p.name || '|' || lower(p.type) || '|' || \
                    CASE WHEN p.dflt_value IS NOT NULL OR (p.pk = 1 AND lower(p.type) = 'integer') \
                         THEN 'true' ELSE 'false' END || '|' || \
                    coalesce((SELECT f.\"table\" || '.' || coalesce(f.\"to\", 'rowid') \
                                FROM pragma_foreign_key_list(m.name) f WHERE f.\"from\" = p.name LIMIT 1), '') AS line \
               FROM sqlite_master m, pragma_table_info(m.name) p \
              WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                AND m.name NOT LIKE '\\_\\_%' ESCAPE '\\' \
              ORDER BY m.name, p.cid"
        }
    };
    db.rows(sql)
        .into_iter()
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            Column {
                table: parts[0].to_string(),
                name: parts[1].to_string(),
                sql_type: parts[2].to_string(),
                filled_by_database: parts[3] == "true",
                references: parts[4]
                    .split_once('.')
                    .map(|(t, c)| (t.to_string(), c.to_string())),
            }
        })
        .collect()
}

/// The user tables (not taskdb's or Diesel's bookkeeping), in catalog order.
pub fn tables(db: &TestDb) -> Vec<String> {
    let mut names: Vec<String> = columns(db).into_iter().map(|c| c.table).collect();
    names.dedup();
    names
}

/// A value of the column's type, for a row that breaks no rule a migration
/// could reasonably add (non-empty text, no NULL).
fn value(db: &TestDb, column: &Column) -> String {
    if let Some((table, parent)) = &column.references {
        return format!("(SELECT {parent} FROM {table} LIMIT 1)");
    }
    let t = column.sql_type.as_str();
    if t.contains("int")
        || t.contains("serial")
        || t.contains("numeric")
        || t.contains("real")
        || t.contains("double")
    {
        "1".to_string()
    } else if t.contains("bool") {
        if db.backend == Backend::Postgres {
            "false"
        } else {
            "0"
        }
        .to_string()
    } else if t.contains("timestamp") || t.contains("date") {
        "'2026-01-01 00:00:00'".to_string()
    } else {
        // The same text in every text column, so a column that becomes a
        // foreign key later (tasks.user_id, before users exists) already
        // points at its parent's row, as the app's data does.
        "'row-1'".to_string()
    }
}

/// Inserts one row into every user table that has none, parents before
/// children (a foreign key column takes a row of its parent). Columns the
/// database fills (defaults, serials) are left to it; every other column,
/// nullable or not, gets a value.
pub fn fill_every_table(db: &TestDb) {
    let columns = columns(db);
    let mut pending: Vec<String> = tables(db)
        .into_iter()
        .filter(|t| db.scalar(&format!("SELECT COUNT(*) FROM {t}")) == 0)
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|table| {
            let own: Vec<&Column> = columns
                .iter()
                .filter(|c| &c.table == table && !c.filled_by_database)
                .collect();
            let parents_ready = own.iter().all(|c| {
                c.references.as_ref().is_none_or(|(parent, _)| {
                    parent == table || db.scalar(&format!("SELECT COUNT(*) FROM {parent}")) > 0
                })
            });
            if !parents_ready {
                return true;
            }
            let sql = if own.is_empty() {
                format!("INSERT INTO {table} DEFAULT VALUES")
            } else {
                format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    own.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    own.iter()
                        .map(|c| value(db, c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            db.execute(&sql);
            false
        });
        assert!(
            pending.len() < before,
            "cannot fill {pending:?}: their foreign keys form a cycle"
        );
    }
}

/// Panics naming the user tables that hold no row.
pub fn assert_every_table_has_rows(db: &TestDb) {
    let empty: Vec<String> = tables(db)
        .into_iter()
        .filter(|t| db.scalar(&format!("SELECT COUNT(*) FROM {t}")) == 0)
        .collect();
    assert!(empty.is_empty(), "tables without rows: {empty:?}");
}
