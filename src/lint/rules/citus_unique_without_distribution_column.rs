//! `citus-unique-without-distribution-column`: on a Citus coordinator, a
//! UNIQUE / PRIMARY KEY constraint or a unique index on a distributed
//! table must contain its distribution column: each shard checks
//! uniqueness only among its own rows, so Citus refuses any other (and the
//! migration fails half-way on a big table). A reference table, one copy
//! everywhere, may have any.

use super::{Ctx, RawFinding};
use crate::lint::model::{AlterCmd, ConstraintKind, StmtKind};
use crate::lint::Rule;

fn found(table: &str, column: &str, what: String, keys: &[String]) -> RawFinding {
    let mut with: Vec<String> = vec![column.to_string()];
    with.extend(keys.iter().filter(|k| *k != column).cloned());
    RawFinding {
        rule: Rule::CitusUniqueWithoutDistributionColumn,
        table: Some(table.to_string()),
        lock: None,
        blocks: None,
        holds: None,
        message: format!("{what} on `{table}`, which Citus distributes by `{column}`, does not contain `{column}`: Citus refuses it (a shard can only check its own rows)"),
        recipe: Some(format!(
            "-- key it by the distribution column too, e.g. ({})\n-- or keep the table a reference table (any unique key), or check uniqueness in the app",
            with.join(", ")
        )),
    }
}

/// The distribution column of `table` when it is distributed and `keys`
/// lack it.
fn missing<'a>(ctx: &'a Ctx<'_>, table: &str, keys: &[String]) -> Option<&'a str> {
    match ctx.schema.citus_table(table) {
        Some(Some(column)) if !keys.iter().any(|k| k == column) => Some(column),
        _ => None,
    }
}

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    match &ctx.stmt.kind {
        StmtKind::CreateIndex {
            index,
            table,
            unique: true,
            columns,
            ..
        } => missing(ctx, table, columns)
            .map(|column| {
                let shown = if index.is_empty() { "<name>" } else { index };
                vec![found(
                    table,
                    column,
                    format!("unique index `{shown}` ({})", columns.join(", ")),
                    columns,
                )]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

pub fn check_alter(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    match cmd {
        AlterCmd::AddConstraint {
            name,
            kind: kind @ (ConstraintKind::Unique | ConstraintKind::PrimaryKey),
            columns,
            using_index: false,
            ..
        } => missing(ctx, table, columns)
            .map(|column| {
                let what = if *kind == ConstraintKind::Unique {
                    "UNIQUE"
                } else {
                    "PRIMARY KEY"
                };
                vec![found(
                    table,
                    column,
                    format!("{what} constraint `{name}` ({})", columns.join(", ")),
                    columns,
                )]
            })
            .unwrap_or_default(),
        AlterCmd::AddColumn(c) if c.unique => missing(ctx, table, std::slice::from_ref(&c.name))
            .map(|column| {
                vec![found(
                    table,
                    column,
                    format!("the inline UNIQUE / PRIMARY KEY of new column `{}`", c.name),
                    std::slice::from_ref(&c.name),
                )]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{citus_rules_of, rules_of};

    const RULE: &str = "citus-unique-without-distribution-column";

    #[test]
    fn unique_keys_of_a_distributed_table_need_its_distribution_column() {
        let sql = "CREATE UNIQUE INDEX CONCURRENTLY tasks_title_key ON tasks (title);";
        assert!(citus_rules_of(sql).contains(&RULE));
        assert!(!rules_of(sql).contains(&RULE), "not on a Citus coordinator");
        assert!(!citus_rules_of(
            "CREATE UNIQUE INDEX CONCURRENTLY tasks_user_title_key ON tasks (user_id, title);"
        )
        .contains(&RULE));
        assert!(!citus_rules_of(
            "CREATE UNIQUE INDEX CONCURRENTLY k ON tasks (lower(title), \"user_id\");"
        )
        .contains(&RULE));
        assert!(citus_rules_of(
            "ALTER TABLE tasks ADD CONSTRAINT tasks_title_key UNIQUE (title);"
        )
        .contains(&RULE));
        assert!(citus_rules_of("ALTER TABLE tasks ADD COLUMN code TEXT UNIQUE;").contains(&RULE));
        // A reference table may have any unique key.
        assert!(!citus_rules_of(
            "CREATE UNIQUE INDEX CONCURRENTLY users_name_key ON users (email);"
        )
        .contains(&RULE));
    }
}
