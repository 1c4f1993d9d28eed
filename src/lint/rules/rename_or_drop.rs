//! `rename-or-drop`: renaming or dropping a table or column that the app
//! version still running during a rolling deploy uses breaks it.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::{AlterCmd, StmtKind};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let file = ctx.file;
    match &ctx.stmt.kind {
        StmtKind::DropTable { tables } => tables
            .iter()
            .filter(|t| !file.is_new(t))
            .map(|table| finding(
                Rule::RenameOrDrop,
                table,
                ACCESS_EXCLUSIVE,
                Blocks::Both,
                Holds::Brief,
                format!("DROP TABLE `{table}`: the app version still running during a rolling deploy reads and writes it, and fails"),
                format!("-- 1. release an app version that no longer uses {table}\n-- 2. then, in a later migration:\nDROP TABLE IF EXISTS {table};"),
            ))
            .collect(),
        StmtKind::RenameTable { table, new_name } if !file.is_new(table) => vec![finding(
            Rule::RenameOrDrop,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Holds::Brief,
            format!("renaming table `{table}` to `{new_name}` breaks every query of the app version still running during a rolling deploy"),
            format!("-- keep the old name working while both app versions run:\nALTER TABLE {table} RENAME TO {new_name};\nCREATE VIEW {table} AS SELECT * FROM {new_name};\n-- and drop the view once no running version uses {table}"),
        )],
        StmtKind::RenameColumn {
            table,
            column,
            new_name,
        } if !file.is_new(table) => vec![finding(
            Rule::RenameOrDrop,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Holds::Brief,
            format!("renaming column `{table}.{column}` to `{new_name}` breaks every query of the app version still running during a rolling deploy"),
            format!("-- expand, then contract:\nALTER TABLE {table} ADD COLUMN {new_name} <type of {column}>;\n-- release an app version that writes both and reads {new_name}; backfill {new_name} in batches;\n-- then, in a later release:\nALTER TABLE {table} DROP COLUMN {column};"),
        )],
        _ => Vec::new(),
    }
}

/// `ALTER TABLE … DROP COLUMN`.
pub fn check_alter(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    match cmd {
        AlterCmd::DropColumn { column } if !ctx.file.is_new(table) => vec![finding(
            Rule::RenameOrDrop,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Holds::Brief,
            format!("dropping column `{table}.{column}` breaks every query of the app version still running during a rolling deploy that names it"),
            format!("-- 1. release an app version that no longer reads or writes {column}\n-- 2. then, in a later migration:\nALTER TABLE {table} DROP COLUMN IF EXISTS {column};"),
        )],
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn renames_and_drops_of_existing_tables_and_columns_are_flagged() {
        for sql in [
            "ALTER TABLE tasks DROP COLUMN description;",
            "ALTER TABLE tasks RENAME COLUMN title TO name;",
            "ALTER TABLE tasks RENAME TO todo;",
            "DROP TABLE tasks;",
        ] {
            assert_eq!(rules_of(sql), ["rename-or-drop"], "{sql}");
        }
        assert!(rules_of(
            "CREATE TABLE l (a INT);\nALTER TABLE l RENAME COLUMN a TO b;\nDROP TABLE l;"
        )
        .is_empty());
    }
}
