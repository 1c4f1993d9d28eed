//! `add-column-not-null-without-default`: fails on a table with rows.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::AlterCmd;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::AddColumn(c) = cmd else {
        return Vec::new();
    };
    if ctx.file.is_new(table) || !c.not_null || c.default.is_some() || c.fills_rows.is_some() {
        return Vec::new();
    }
    let ty = c.ty.as_ref().map(|t| t.display()).unwrap_or_default();
    let col = &c.name;
    vec![finding(
        Rule::AddColumnNotNullWithoutDefault,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::Brief,
        format!("adding `{table}.{col}` NOT NULL without a default fails on a table that has rows (every row would hold NULL)"),
        format!("ALTER TABLE {table} ADD COLUMN {col} {ty} NOT NULL DEFAULT <constant>;  -- a constant default: no rewrite (PostgreSQL 11+)"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn not_null_needs_a_default() {
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD COLUMN archived BOOLEAN NOT NULL;"),
            ["add-column-not-null-without-default"]
        );
        assert!(
            rules_of("ALTER TABLE tasks ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;")
                .is_empty()
        );
        assert!(rules_of("ALTER TABLE tasks ADD COLUMN note TEXT;").is_empty());
    }
}
