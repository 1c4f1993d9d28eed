//! `truncate`: `TRUNCATE` takes ACCESS EXCLUSIVE until commit and removes
//! every row the running app relies on.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Truncate { tables } = &ctx.stmt.kind else {
        return Vec::new();
    };
    tables
        .iter()
        .filter(|t| !ctx.file.is_new(t))
        .map(|table| finding(
            Rule::Truncate,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Holds::UntilCommit,
            format!("TRUNCATE `{table}` takes ACCESS EXCLUSIVE until the migration commits and removes every row the running app relies on"),
            format!("-- delete in batches, each its own transaction, outside the migration:\nDELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} LIMIT 10000);"),
        ))
        .collect()
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn truncating_an_existing_table_is_flagged() {
        assert_eq!(rules_of("TRUNCATE tasks;"), ["truncate"]);
        assert_eq!(
            rules_of("TRUNCATE TABLE tasks, users;"),
            ["truncate", "truncate"]
        );
        assert!(rules_of("CREATE TABLE l (a INT);\nTRUNCATE l;").is_empty());
    }
}
