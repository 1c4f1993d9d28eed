//! `set-not-null-without-check`: `SET NOT NULL` scans every row under
//! ACCESS EXCLUSIVE unless a validated `CHECK (col IS NOT NULL)` exists.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::AlterCmd;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::SetNotNull { column } = cmd else {
        return Vec::new();
    };
    let key = (table.to_string(), column.clone());
    if ctx.file.is_new(table) || ctx.schema.validated_not_null.contains(&key) {
        return Vec::new();
    }
    let check = format!("{table}_{column}_not_null");
    vec![finding(
        Rule::SetNotNullWithoutCheck,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("SET NOT NULL on `{table}.{column}` scans every row under ACCESS EXCLUSIVE, because no validated CHECK ({column} IS NOT NULL) exists"),
        format!("ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID;\n-- next migration (SHARE UPDATE EXCLUSIVE: reads and writes go on):\nALTER TABLE {table} VALIDATE CONSTRAINT {check};\n-- next migration (PostgreSQL 12+ uses the validated check and skips the scan):\nALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;\nALTER TABLE {table} DROP CONSTRAINT {check};"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn set_not_null_needs_a_validated_check_first() {
        assert_eq!(
            rules_of("ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;"),
            ["set-not-null-without-check"]
        );
        assert!(rules_of(
            "ALTER TABLE tasks ADD CONSTRAINT p CHECK (priority IS NOT NULL) NOT VALID;\nALTER TABLE tasks VALIDATE CONSTRAINT p;\nALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;"
        )
        .iter()
        .all(|r| *r != "set-not-null-without-check"));
    }
}
