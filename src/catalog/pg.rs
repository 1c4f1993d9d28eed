//! PostgreSQL's side of the reader: `pg_catalog`, for the current schema.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::PgConnection;

use super::{
    table_entry, Column, Constraint, ConstraintKind, Index, NamedDefinition, Schema, Trigger,
};
use crate::db::one_line;
use crate::error::Result;

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

const PG_TRIGGERS: &str = "
SELECT c.relname::text AS table_name, g.tgname::text AS name, pg_get_triggerdef(g.oid) AS definition
  FROM pg_trigger g
  JOIN pg_class c ON c.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND NOT g.tgisinternal
 ORDER BY c.relname, g.tgname";

#[derive(QueryableByName)]
struct CurrentSchema {
    #[diesel(sql_type = Text)]
    name: String,
}

pub(super) fn read(conn: &mut PgConnection) -> Result<Schema> {
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

/// Splits on a separator that cannot occur in identifiers or expressions.
fn split_list(list: Option<String>) -> Vec<String> {
    list.map(|l| {
        l.split('\u{1f}')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}
