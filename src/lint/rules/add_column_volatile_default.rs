//! `add-column-volatile-default`: a column whose default differs per row
//! (a volatile function, `serial`, identity, a stored generated column)
//! fills every existing row: a table rewrite under ACCESS EXCLUSIVE.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::{AlterCmd, DefaultKind};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::AddColumn(c) = cmd else {
        return Vec::new();
    };
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    let ty = c.ty.as_ref().map(|t| t.display()).unwrap_or_default();
    let col = &c.name;
    if let Some(fills) = &c.fills_rows {
        return vec![finding(
            Rule::AddColumnVolatileDefault,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Holds::FullScan,
            format!("adding `{table}.{col}` as {fills} fills every existing row: a table rewrite under ACCESS EXCLUSIVE"),
            format!("ALTER TABLE {table} ADD COLUMN {col} bigint;  -- nullable, no rewrite\nCREATE SEQUENCE IF NOT EXISTS {table}_{col}_seq OWNED BY {table}.{col};\nALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT nextval('{table}_{col}_seq');  -- new rows only\n-- backfill old rows in batches outside the migration, then add NOT NULL the set-not-null-without-check way"),
        )];
    }
    if c.default != Some(DefaultKind::Volatile) {
        return Vec::new();
    }
    vec![finding(
        Rule::AddColumnVolatileDefault,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("adding `{table}.{col}` with a volatile default gives every existing row its own value: a table rewrite under ACCESS EXCLUSIVE"),
        format!("ALTER TABLE {table} ADD COLUMN {col} {ty};  -- nullable, no rewrite\nALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT <the default>;  -- new rows only\n-- backfill old rows in batches outside the migration;\n-- then NOT NULL via CHECK ({col} IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL (three migrations)"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn per_row_defaults_are_flagged_and_constant_ones_are_not() {
        for sql in [
            "ALTER TABLE tasks ADD COLUMN archived_at TIMESTAMP NOT NULL DEFAULT clock_timestamp();",
            "ALTER TABLE tasks ADD COLUMN token UUID DEFAULT gen_random_uuid();",
            "ALTER TABLE tasks ADD COLUMN seq BIGSERIAL;",
            "ALTER TABLE tasks ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY;",
            "ALTER TABLE tasks ADD COLUMN t INTEGER GENERATED ALWAYS AS (priority * 2) STORED;",
        ] {
            assert_eq!(rules_of(sql), ["add-column-volatile-default"], "{sql}");
        }
        for sql in [
            "ALTER TABLE tasks ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;",
            "ALTER TABLE tasks ADD COLUMN archived_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC');",
            "ALTER TABLE tasks ADD COLUMN seen_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP;",
        ] {
            assert!(rules_of(sql).is_empty(), "{sql}");
        }
    }
}
