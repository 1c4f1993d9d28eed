//! `unbatched-backfill`: an `UPDATE` or `DELETE` of every row of an
//! existing table in the migration's one transaction.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ROW_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Write {
        verb,
        table,
        whole: true,
    } = &ctx.stmt.kind
    else {
        return Vec::new();
    };
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    let batch = if *verb == "UPDATE" {
        format!("UPDATE {table} SET … WHERE id IN (SELECT id FROM {table} WHERE <not yet done> LIMIT 10000);")
    } else {
        format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} LIMIT 10000);")
    };
    vec![finding(
        Rule::UnbatchedBackfill,
        table,
        ROW_EXCLUSIVE,
        Blocks::Writes,
        Holds::UntilCommit,
        format!("{verb} of every row of existing table `{table}` in one transaction locks each row it touches until the migration commits: the app's writes to them wait"),
        format!("-- backfill in batches, each its own transaction, outside the migration (repeat until 0 rows):\n{batch}"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn whole_table_writes_are_flagged_and_filtered_ones_are_not() {
        assert_eq!(
            rules_of("UPDATE tasks SET completed = false;"),
            ["unbatched-backfill"]
        );
        assert_eq!(rules_of("DELETE FROM tasks;"), ["unbatched-backfill"]);
        assert!(rules_of("UPDATE tasks SET completed = false WHERE id = 1;").is_empty());
    }
}
