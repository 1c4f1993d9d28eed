//! `column-type-breaks-cached-plans` (a warning): a type change that
//! PostgreSQL makes in the catalog only (no rewrite, so
//! `column-type-rewrite` lets it through) still changes the type of what a
//! query returning the column gives back (`varchar(255)` → `text`, or only
//! its modifier, `varchar(100)` → `varchar(255)`). Diesel prepares each
//! query once per connection; a prepared query returning the column then
//! fails on every connection the app already holds, with SQLSTATE 0A000
//! ("cached plan must not change result type"), until that connection is
//! closed.

use super::column_type_rewrite::rewrite_reason;
use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::AlterCmd;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::AlterType {
        column,
        ty: Some(new),
        using,
    } = cmd
    else {
        return Vec::new();
    };
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    let Some(old) = ctx.schema.columns.get(&(table.to_string(), column.clone())) else {
        // A column lint cannot see: column-type-rewrite already says so.
        return Vec::new();
    };
    // A rewrite is column-type-rewrite's (an error); the same type changes
    // nothing a query returns.
    if old == new || rewrite_reason(Some(old), Some(new), *using).is_some() {
        return Vec::new();
    }
    let (from, to) = (old.display(), new.display());
    vec![finding(
        Rule::ColumnTypeBreaksCachedPlans,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::Brief,
        format!("changing `{table}.{column}` from {from} to {to} rewrites nothing, but it changes the type a query returning the column gives back: every app connection that has already prepared such a query (Diesel prepares each query once per connection) fails it with SQLSTATE 0A000 (cached plan must not change result type) until the connection is closed"),
        format!("-- either deploy it with the app's connection pools recycled right after it runs
-- (restart the app, or have its pool drop connections that fail with 0A000), or:
ALTER TABLE {table} ADD COLUMN {column}_new {to};
-- release an app version that writes both; backfill {column}_new in batches outside the migration;
-- switch reads to {column}_new, then in a later release:
ALTER TABLE {table} DROP COLUMN {column};
ALTER TABLE {table} RENAME COLUMN {column}_new TO {column};"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    #[test]
    fn a_type_change_without_rewrite_breaks_the_apps_prepared_queries() {
        for sql in [
            "ALTER TABLE tasks ALTER COLUMN title TYPE text;",
            "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(500);",
            "ALTER TABLE tasks ALTER COLUMN title TYPE varchar;",
            "ALTER TABLE tasks ALTER COLUMN description TYPE varchar;",
            "ALTER TABLE tasks ALTER COLUMN amount TYPE numeric(14,2);",
            "ALTER TABLE tasks ALTER COLUMN amount TYPE numeric;",
            "ALTER TABLE users ALTER COLUMN email TYPE text;",
        ] {
            assert_eq!(rules_of(sql), ["column-type-breaks-cached-plans"], "{sql}");
        }
        let f = &findings("ALTER TABLE tasks ALTER COLUMN title TYPE text;", true)[0];
        assert_eq!(f.rule.level(), crate::lint::Level::Warning);
        assert_eq!(f.table.as_deref(), Some("tasks"));
        assert!(f.message.contains("varchar(255)"), "{}", f.message);
        assert!(f.message.contains("0A000"), "{}", f.message);
        let recipe = f.recipe.as_deref().unwrap();
        assert!(recipe.contains("ADD COLUMN title_new text"), "{recipe}");
        assert!(recipe.contains("recycle"), "{recipe}");
    }

    #[test]
    fn the_same_type_a_rewrite_or_a_new_table_is_not_this_rule() {
        // Same type: nothing changes.
        assert!(rules_of("ALTER TABLE tasks ALTER COLUMN title TYPE varchar(255);").is_empty());
        assert!(rules_of("ALTER TABLE tasks ALTER COLUMN description TYPE text;").is_empty());
        // A rewrite is column-type-rewrite's (an error) alone.
        assert_eq!(
            rules_of("ALTER TABLE tasks ALTER COLUMN priority TYPE bigint;"),
            ["column-type-rewrite"]
        );
        assert_eq!(
            rules_of("ALTER TABLE tasks ALTER COLUMN not_in_these_migrations TYPE text;"),
            ["column-type-rewrite"]
        );
        // Nobody has prepared a query on a table created in the same file.
        assert!(rules_of(
            "CREATE TABLE notes (id int, body varchar(10));\nALTER TABLE notes ALTER COLUMN body TYPE text;"
        )
        .is_empty());
    }
}
