//! `lock-table`: an explicit `LOCK TABLE` in a mode that blocks the app,
//! held until the migration commits.

use super::{Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

fn lock_name(mode: &str) -> &'static str {
    match mode {
        "ACCESS EXCLUSIVE" => ACCESS_EXCLUSIVE,
        "EXCLUSIVE" => "EXCLUSIVE",
        "SHARE ROW EXCLUSIVE" => SHARE_ROW_EXCLUSIVE,
        _ => SHARE,
    }
}

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::LockTable { tables, mode } = &ctx.stmt.kind else {
        return Vec::new();
    };
    let blocks = match mode.as_str() {
        "ACCESS EXCLUSIVE" => Blocks::Both,
        "EXCLUSIVE" | "SHARE ROW EXCLUSIVE" | "SHARE" => Blocks::Writes,
        _ => return Vec::new(),
    };
    tables
        .iter()
        .filter(|t| !ctx.file.is_new(t))
        .map(|table| RawFinding {
            rule: Rule::LockTable,
            table: Some(table.clone()),
            lock: Some(lock_name(mode)),
            blocks: Some(blocks),
            holds: Some(Holds::UntilCommit),
            message: format!(
                "LOCK TABLE `{table}` IN {mode} MODE blocks {} on it until the migration commits",
                blocks.describe()
            ),
            recipe: Some("-- remove it: each statement takes the lock it needs, for as short as it can,\n-- and taskdb's lock timeout bounds how long it may wait".into()),
        })
        .collect()
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    #[test]
    fn blocking_modes_are_flagged_and_weak_ones_are_not() {
        assert_eq!(
            rules_of("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;"),
            ["lock-table"]
        );
        assert_eq!(rules_of("LOCK tasks;"), ["lock-table"]);
        let f = findings("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;", true);
        assert_eq!(f[0].lock, Some("SHARE ROW EXCLUSIVE"));
        assert!(rules_of("LOCK TABLE tasks IN ACCESS SHARE MODE;").is_empty());
    }
}
