//! `table-rewrite`: `ALTER TABLE … SET LOGGED`, `SET UNLOGGED` and
//! `SET TABLESPACE` copy the whole table under ACCESS EXCLUSIVE.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::AlterCmd;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::Rewrite { what } = cmd else {
        return Vec::new();
    };
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    vec![finding(
        Rule::TableRewrite,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("ALTER TABLE `{table}` {what} copies every row into a new file under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
        format!("-- there is no online form: run it in a maintenance window, outside the deploy,\n-- or copy the table online (a new table, a batched copy, a rename) instead of {what}"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn logged_unlogged_and_tablespace_changes_are_rewrites() {
        for sql in [
            "ALTER TABLE tasks SET UNLOGGED;",
            "ALTER TABLE tasks SET LOGGED;",
            "ALTER TABLE tasks SET TABLESPACE fast;",
        ] {
            assert_eq!(rules_of(sql), ["table-rewrite"], "{sql}");
        }
        assert!(rules_of("CREATE TABLE l (a INT);\nALTER TABLE l SET UNLOGGED;").is_empty());
    }
}
