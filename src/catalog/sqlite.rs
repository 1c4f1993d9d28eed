//! SQLite's side of the reader: `sqlite_master` and the `pragma_*` table
//! functions.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};
use diesel::SqliteConnection;

use super::{
    table_entry, Column, Constraint, ConstraintKind, Index, NamedDefinition, Schema, Trigger,
};
use crate::db::one_line;
use crate::error::Result;

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Nullable<Text>)]
    default_expr: Option<String>,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

const SQLITE_TABLES: &str = "SELECT m.name AS table_name, m.name AS name, m.sql AS definition
  FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name";

const SQLITE_COLUMNS: &str = "
SELECT m.name AS table_name, p.name AS name, p.type AS data_type, p.\"notnull\" AS not_null,
       p.dflt_value AS default_expr, p.pk AS pk
  FROM sqlite_master m, pragma_table_info(m.name) p
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, p.cid";

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    is_unique: i32,
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Integer)]
    partial: i32,
    #[diesel(sql_type = Nullable<Text>)]
    definition: Option<String>,
}

const SQLITE_INDEXES: &str = "
SELECT m.name AS table_name, l.name AS name, l.\"unique\" AS is_unique, l.origin AS origin,
       l.partial AS partial, i.sql AS definition
  FROM sqlite_master m, pragma_index_list(m.name) l
  LEFT JOIN sqlite_master i ON i.type = 'index' AND i.name = l.name
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, l.name";

#[derive(QueryableByName)]
struct SqliteIndexColumn {
    #[diesel(sql_type = Integer)]
    cid: i32,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

#[derive(QueryableByName)]
struct SqliteForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    from_column: String,
    #[diesel(sql_type = Nullable<Text>)]
    to_column: Option<String>,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

const SQLITE_FOREIGN_KEYS: &str = "
SELECT m.name AS table_name, f.id AS id, f.\"table\" AS ref_table, f.\"from\" AS from_column,
       f.\"to\" AS to_column, f.on_delete AS on_delete
  FROM sqlite_master m, pragma_foreign_key_list(m.name) f
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, f.id, f.seq";

const SQLITE_TRIGGERS: &str = "SELECT tbl_name AS table_name, name, sql AS definition
  FROM sqlite_master WHERE type = 'trigger' ORDER BY tbl_name, name";

pub(super) fn read(conn: &mut SqliteConnection) -> Result<Schema> {
    let mut schema = Schema::default();
    for row in diesel::sql_query(SQLITE_TABLES).load::<NamedDefinition>(conn)? {
        table_entry(&mut schema, &row.table_name);
    }
    let mut primary_keys: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for row in diesel::sql_query(SQLITE_COLUMNS).load::<SqliteColumn>(conn)? {
        if row.pk > 0 {
            primary_keys
                .entry(row.table_name.clone())
                .or_default()
                .push((row.pk, row.name.clone()));
        }
        // An INTEGER PRIMARY KEY is the rowid: never NULL, though the
        // pragma does not say so.
        let nullable =
            row.not_null == 0 && !(row.pk > 0 && row.data_type.eq_ignore_ascii_case("integer"));
        table_entry(&mut schema, &row.table_name)
            .columns
            .push(Column {
                name: row.name,
                data_type: row.data_type,
                nullable,
                default: row.default_expr,
            });
    }
    for (table, mut cols) in primary_keys {
        cols.sort();
        let columns: Vec<String> = cols.into_iter().map(|(_, c)| c).collect();
        let definition = format!("PRIMARY KEY ({})", columns.join(", "));
        table_entry(&mut schema, &table)
            .constraints
            .push(Constraint {
                name: format!("{table}_pkey"),
                kind: ConstraintKind::PrimaryKey,
                columns,
                references: None,
                on_delete: None,
                validated: true,
                definition,
            });
    }
    for row in diesel::sql_query(SQLITE_INDEXES).load::<SqliteIndex>(conn)? {
        let key_columns: Vec<SqliteIndexColumn> = diesel::sql_query(
            "SELECT cid, name FROM pragma_index_xinfo(?) WHERE \"key\" = 1 ORDER BY seqno",
        )
        .bind::<Text, _>(&row.name)
        .load(conn)?;
        let expressions = row
            .definition
            .as_deref()
            .map(index_key_list)
            .unwrap_or_default();
        let columns: Vec<String> = key_columns
            .iter()
            .enumerate()
            .map(|(i, c)| match (&c.name, c.cid) {
                (Some(name), cid) if cid >= 0 => name.clone(),
                _ => expressions
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "<expression>".into()),
            })
            .collect();
        let constraint = match row.origin.as_str() {
            "pk" => Some(format!("{}_pkey", row.table_name)),
            "u" => Some(format!("{}_{}_key", row.table_name, columns.join("_"))),
            _ => None,
        };
        let table = table_entry(&mut schema, &row.table_name);
        if row.origin == "u" {
            table.constraints.push(Constraint {
                name: constraint.clone().unwrap_or_default(),
                kind: ConstraintKind::Unique,
                columns: columns.clone(),
                references: None,
                on_delete: None,
                validated: true,
                definition: format!("UNIQUE ({})", columns.join(", ")),
            });
        }
        let definition = row.definition.as_deref().map(one_line).unwrap_or_else(|| {
            format!(
                "{} ({}) implied by the table definition",
                if row.origin == "pk" {
                    "PRIMARY KEY"
                } else {
                    "UNIQUE"
                },
                columns.join(", ")
            )
        });
        table.indexes.push(Index {
            name: row.name,
            columns,
            unique: row.is_unique != 0,
            primary: row.origin == "pk",
            valid: true,
            partial: row.partial != 0,
            method: "btree".into(),
            constraint,
            definition,
        });
    }
    // SQLite foreign keys come one row per column, grouped by id.
    struct PendingForeignKey {
        ref_table: String,
        from: Vec<String>,
        to: Vec<String>,
        on_delete: String,
    }
    let mut foreign_keys: BTreeMap<(String, i32), PendingForeignKey> = BTreeMap::new();
    for row in diesel::sql_query(SQLITE_FOREIGN_KEYS).load::<SqliteForeignKey>(conn)? {
        let entry = foreign_keys
            .entry((row.table_name, row.id))
            .or_insert_with(|| PendingForeignKey {
                ref_table: row.ref_table,
                from: Vec::new(),
                to: Vec::new(),
                on_delete: row.on_delete,
            });
        entry.from.push(row.from_column);
        if let Some(to) = row.to_column {
            entry.to.push(to);
        }
    }
    for ((table, _), fk) in foreign_keys {
        let PendingForeignKey {
            ref_table,
            from,
            mut to,
            on_delete,
        } = fk;
        if to.is_empty() {
            // `REFERENCES users` without columns means its primary key.
            to = schema
                .tables
                .get(&ref_table)
                .and_then(|t| {
                    t.constraints
                        .iter()
                        .find(|c| c.kind == ConstraintKind::PrimaryKey)
                })
                .map(|c| c.columns.clone())
                .unwrap_or_default();
        }
        let definition = format!(
            "FOREIGN KEY ({}) REFERENCES {ref_table}({}) ON DELETE {on_delete}",
            from.join(", "),
            to.join(", ")
        );
        let name = format!("{table}_{}_fkey", from.join("_"));
        table_entry(&mut schema, &table)
            .constraints
            .push(Constraint {
                name,
                kind: ConstraintKind::ForeignKey,
                columns: from,
                references: Some((ref_table, to)),
                on_delete: Some(on_delete),
                validated: true,
                definition,
            });
    }
    for row in diesel::sql_query(SQLITE_TRIGGERS).load::<NamedDefinition>(conn)? {
        table_entry(&mut schema, &row.table_name)
            .triggers
            .push(Trigger {
                name: row.name,
                definition: one_line(&row.definition.unwrap_or_default()),
            });
    }
    Ok(schema)
}

/// The key list of `CREATE INDEX name ON table (a, lower(b))`, split at the
/// top-level commas: `["a", "lower(b)"]`.
fn index_key_list(sql: &str) -> Vec<String> {
    let upper = sql.to_ascii_uppercase();
    let Some(on) = upper.find(" ON ") else {
        return Vec::new();
    };
    let Some(open) = sql[on..].find('(').map(|i| on + i) else {
        return Vec::new();
    };
    let mut depth = 0usize;
    let mut parts = Vec::new();
    let mut current = String::new();
    for ch in sql[open + 1..].chars() {
        match ch {
            '(' => {
                depth += 1;
                current.push(ch);
            }
            ')' if depth == 0 => break,
            ')' => {
                depth -= 1;
                current.push(ch);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(ch),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| one_line(&p))
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_split_at_top_level_commas() {
        assert_eq!(
            index_key_list("CREATE UNIQUE INDEX x ON users (lower(email))"),
            vec!["lower(email)"]
        );
        assert_eq!(
            index_key_list("CREATE INDEX y ON tasks (user_id,\n completed)"),
            vec!["user_id", "completed"]
        );
        assert_eq!(
            index_key_list("CREATE INDEX z ON t (coalesce(a, b), c) WHERE c > 0"),
            vec!["coalesce(a, b)", "c"]
        );
    }
}
