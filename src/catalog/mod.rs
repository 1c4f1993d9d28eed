//! Reads the live schema of one database from its catalog, into the same
//! shape for both backends: PostgreSQL from `pg_catalog`, SQLite from
//! `sqlite_master` and the `pragma_*` table functions. The expected schema is
//! read by this same reader from a freshly migrated scratch database, so
//! the two sides always speak the same dialect.

use std::collections::BTreeMap;

use diesel::prelude::*;
#[cfg(feature = "postgres")]
use diesel::sql_types::Bool;
#[cfg(feature = "sqlite")]
use diesel::sql_types::Integer;
use diesel::sql_types::{Nullable, Text};
#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;

#[cfg(feature = "postgres")]
pub mod table_size;

/// A table's live size (rows: the planner's estimate from its current pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSize {
    pub rows: i64,
    pub bytes: i64,
}

use crate::db::{one_line, DbConnection};
use crate::error::Result;

/// Tables that hold migration history, not the app's data: Diesel's and
/// taskdb's tracking tables, and the Python runner's `schema_migrations`,
/// which `taskdb adopt` leaves in place as the database's earlier history.
pub const IGNORED_TABLES: [&str; 3] = [
    "__diesel_schema_migrations",
    "__taskdb_ledger",
    "schema_migrations",
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
    Check,
}

impl ConstraintKind {
    /// `primary key`, `unique constraint`, `foreign key`, `check constraint`.
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
        Postgres(c) => read_postgres(c)?,
        Sqlite(c) => read_sqlite(c)?,
    );
    schema
        .tables
        .retain(|name, _| !IGNORED_TABLES.contains(&name.as_str()));
    Ok(schema)
}

/// Splits on a separator that cannot occur in identifiers or expressions.
#[cfg(feature = "postgres")]
fn split_list(list: Option<String>) -> Vec<String> {
    list.map(|l| {
        l.split('\u{1f}')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
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

// ---------------------------------------------------------------- PostgreSQL

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    data_type: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    nullable: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    default_expr: Option<String>,
}

// Tables with no columns still show up (LEFT JOIN).
#[cfg(feature = "postgres")]
const PG_COLUMNS: &str = "
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       format_type(a.atttypid, a.atttypmod) AS data_type,
       NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default_expr
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
 ORDER BY c.relname, a.attnum";

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct PgConstraint {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    columns: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_table: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_columns: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    on_delete: Option<String>,
    #[diesel(sql_type = Bool)]
    validated: bool,
    #[diesel(sql_type = Text)]
    definition: String,
}

#[cfg(feature = "postgres")]
const PG_CONSTRAINTS: &str = "
SELECT c.relname::text AS table_name, k.conname::text AS name, k.contype::text AS kind,
       (SELECT string_agg(a.attname::text, chr(31) ORDER BY u.ord)
          FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum) AS columns,
       f.relname::text AS ref_table,
       (SELECT string_agg(a.attname::text, chr(31) ORDER BY u.ord)
          FROM unnest(k.confkey) WITH ORDINALITY u(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum) AS ref_columns,
       CASE k.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT'
            WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END AS on_delete,
       k.convalidated AS validated, pg_get_constraintdef(k.oid) AS definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class f ON f.oid = k.confrelid
 WHERE n.nspname = current_schema() AND k.contype IN ('p', 'u', 'f', 'c')
 ORDER BY c.relname, k.conname";

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    columns: Option<String>,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Bool)]
    is_primary: bool,
    #[diesel(sql_type = Bool)]
    is_valid: bool,
    #[diesel(sql_type = Bool)]
    is_partial: bool,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Nullable<Text>)]
    constraint_name: Option<String>,
    #[diesel(sql_type = Text)]
    definition: String,
}

#[cfg(feature = "postgres")]
const PG_INDEXES: &str = "
SELECT t.relname::text AS table_name, ic.relname::text AS name,
       (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true), chr(31) ORDER BY k)
          FROM generate_series(1, i.indnkeyatts) k) AS columns,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       i.indpred IS NOT NULL AS is_partial, am.amname::text AS method,
       (SELECT k.conname::text FROM pg_constraint k
         WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')
         LIMIT 1) AS constraint_name,
       pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
 WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p')
 ORDER BY t.relname, ic.relname";

#[derive(QueryableByName)]
struct NamedDefinition {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    definition: Option<String>,
}

#[cfg(feature = "postgres")]
const PG_TRIGGERS: &str = "
SELECT c.relname::text AS table_name, g.tgname::text AS name, pg_get_triggerdef(g.oid) AS definition
  FROM pg_trigger g
  JOIN pg_class c ON c.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND NOT g.tgisinternal
 ORDER BY c.relname, g.tgname";

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct CurrentSchema {
    #[diesel(sql_type = Text)]
    name: String,
}

#[cfg(feature = "postgres")]
fn read_postgres(conn: &mut PgConnection) -> Result<Schema> {
    let mut schema = Schema::default();
    // Definitions name tables schema-qualified; the schema is the same on
    // both sides in meaning but not always in name (the scratch schema of
    // the fallback), so it is left out.
    let current: CurrentSchema =
        diesel::sql_query("SELECT current_schema()::text AS name").get_result(conn)?;
    let unqualified = |sql: &str| {
        one_line(sql)
            .replace(&format!(" {}.", current.name), " ")
            .replace(&format!("({}.", current.name), "(")
    };
    for row in diesel::sql_query(PG_COLUMNS).load::<PgColumn>(conn)? {
        let table = table_entry(&mut schema, &row.table_name);
        if let (Some(name), Some(data_type)) = (row.column_name, row.data_type) {
            table.columns.push(Column {
                name,
                data_type,
                nullable: row.nullable.unwrap_or(true),
                default: row.default_expr,
            });
        }
    }
    for row in diesel::sql_query(PG_CONSTRAINTS).load::<PgConstraint>(conn)? {
        let kind = match row.kind.as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            _ => ConstraintKind::Check,
        };
        let references = row
            .ref_table
            .map(|t| (t, split_list(row.ref_columns.clone())));
        table_entry(&mut schema, &row.table_name)
            .constraints
            .push(Constraint {
                name: row.name,
                kind,
                columns: split_list(row.columns),
                references,
                on_delete: if kind == ConstraintKind::ForeignKey {
                    row.on_delete
                } else {
                    None
                },
                validated: row.validated,
                definition: unqualified(&row.definition),
            });
    }
    for row in diesel::sql_query(PG_INDEXES).load::<PgIndex>(conn)? {
        table_entry(&mut schema, &row.table_name)
            .indexes
            .push(Index {
                name: row.name,
                columns: split_list(row.columns),
                unique: row.is_unique,
                primary: row.is_primary,
                valid: row.is_valid,
                partial: row.is_partial,
                method: row.method,
                constraint: row.constraint_name,
                definition: unqualified(&row.definition),
            });
    }
    for row in diesel::sql_query(PG_TRIGGERS).load::<NamedDefinition>(conn)? {
        table_entry(&mut schema, &row.table_name)
            .triggers
            .push(Trigger {
                name: row.name,
                definition: unqualified(&row.definition.unwrap_or_default()),
            });
    }
    Ok(schema)
}

// -------------------------------------------------------------------- SQLite

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
const SQLITE_TABLES: &str = "SELECT m.name AS table_name, m.name AS name, m.sql AS definition
  FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name";

#[cfg(feature = "sqlite")]
const SQLITE_COLUMNS: &str = "
SELECT m.name AS table_name, p.name AS name, p.type AS data_type, p.\"notnull\" AS not_null,
       p.dflt_value AS default_expr, p.pk AS pk
  FROM sqlite_master m, pragma_table_info(m.name) p
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, p.cid";

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
const SQLITE_INDEXES: &str = "
SELECT m.name AS table_name, l.name AS name, l.\"unique\" AS is_unique, l.origin AS origin,
       l.partial AS partial, i.sql AS definition
  FROM sqlite_master m, pragma_index_list(m.name) l
  LEFT JOIN sqlite_master i ON i.type = 'index' AND i.name = l.name
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, l.name";

#[cfg(feature = "sqlite")]
#[derive(QueryableByName)]
struct SqliteIndexColumn {
    #[diesel(sql_type = Integer)]
    cid: i32,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
const SQLITE_FOREIGN_KEYS: &str = "
SELECT m.name AS table_name, f.id AS id, f.\"table\" AS ref_table, f.\"from\" AS from_column,
       f.\"to\" AS to_column, f.on_delete AS on_delete
  FROM sqlite_master m, pragma_foreign_key_list(m.name) f
 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
 ORDER BY m.name, f.id, f.seq";

#[cfg(feature = "sqlite")]
const SQLITE_TRIGGERS: &str = "SELECT tbl_name AS table_name, name, sql AS definition
  FROM sqlite_master WHERE type = 'trigger' ORDER BY tbl_name, name";

#[cfg(feature = "sqlite")]
fn read_sqlite(conn: &mut SqliteConnection) -> Result<Schema> {
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
#[cfg(feature = "sqlite")]
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

#[cfg(all(test, feature = "sqlite"))]
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
