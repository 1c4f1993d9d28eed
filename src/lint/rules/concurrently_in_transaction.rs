//! `concurrently-in-transaction`: `CREATE INDEX CONCURRENTLY`, `VACUUM` and
//! their kin refuse to run inside a transaction block. (A migration with
//! `run_in_transaction = false` must also hold one statement: `lint_one`
//! checks that, since it needs the whole file.)

use super::{Ctx, RawFinding, OWN_MIGRATION};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    if !(ctx.in_transaction && ctx.stmt.refuses_transaction()) {
        return Vec::new();
    }
    vec![RawFinding {
        rule: Rule::ConcurrentlyInTransaction,
        table: None,
        lock: None,
        blocks: None,
        holds: None,
        message: "this statement cannot run inside a transaction block, and this migration runs in one (no metadata.toml with `run_in_transaction = false`): it fails".into(),
        recipe: Some(format!("{OWN_MIGRATION}\n{};", ctx.stmt.text)),
    }]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    #[test]
    fn concurrent_statements_need_a_migration_without_transaction() {
        assert_eq!(
            rules_of("CREATE INDEX CONCURRENTLY i ON tasks (title);"),
            ["concurrently-in-transaction"]
        );
        assert_eq!(rules_of("VACUUM tasks;"), ["concurrently-in-transaction"]);
        assert!(findings("CREATE INDEX CONCURRENTLY i ON tasks (title);", false).is_empty());
    }
}
