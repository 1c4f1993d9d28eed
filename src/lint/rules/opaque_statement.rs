//! `opaque-statement` (a warning): lint cannot see the statements inside a
//! `DO` block, an `EXECUTE`, a `CALL` or a function a `SELECT` calls, so
//! it cannot say what they lock. The pre-flight treats such a migration
//! like one it cannot check: refused on a database with a table above the
//! threshold, unless allowed with a reason.

use super::{Ctx, RawFinding};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Opaque { what } = &ctx.stmt.kind else {
        return Vec::new();
    };
    vec![RawFinding {
        rule: Rule::OpaqueStatement,
        table: None,
        lock: None,
        blocks: None,
        holds: None,
        message: format!("cannot check statements inside DO/EXECUTE/functions: {what} may lock or rewrite a busy table, and lint cannot see which"),
        recipe: Some("-- write the DDL as plain statements lint can check, or, once you have checked it yourself:\n-- taskdb:allow opaque-statement <what it does and why that is safe>".into()),
    }]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn code_lint_cannot_see_gets_a_warning() {
        for sql in [
            "DO $$ BEGIN EXECUTE 'CREATE INDEX ON tasks (title)'; END $$;",
            "EXECUTE make_index;",
            "CALL rebuild_everything();",
            "SELECT diesel_manage_updated_at('tasks');",
        ] {
            assert_eq!(rules_of(sql), ["opaque-statement"], "{sql}");
        }
        for sql in ["SELECT 1;", "SELECT count(*) FROM tasks;", "SELECT now();"] {
            assert!(rules_of(sql).is_empty(), "{sql}");
        }
    }
}
