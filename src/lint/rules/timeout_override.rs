//! `timeout-override`: `SET [LOCAL] lock_timeout`, `statement_timeout` (or
//! `RESET`, or `set_config`) in a migration replaces the bound taskdb puts
//! on how long each DDL statement may queue: with `lock_timeout = 0` an
//! `ALTER TABLE` waits behind a long reader while the app's queries queue
//! behind it. The pre-flight refuses such a migration unless it is allowed.

use super::{Ctx, RawFinding};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::SetTimeout { setting } = &ctx.stmt.kind else {
        return Vec::new();
    };
    vec![RawFinding {
        rule: Rule::TimeoutOverride,
        table: None,
        lock: None,
        blocks: None,
        holds: None,
        message: format!("`{}` changes {setting}, which taskdb sets for every step so that no statement queues the app's queries behind it for longer than the bound", ctx.stmt.text),
        recipe: Some("-- remove it; to give this migration another bound, run it with\n-- taskdb migrate --lock-timeout <duration>   (not wider than the app can wait)".into()),
    }]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn every_way_of_changing_a_timeout_is_flagged() {
        for sql in [
            "SET lock_timeout = 0;",
            "SET LOCAL lock_timeout TO '10s';",
            "SET statement_timeout = 0;",
            "RESET lock_timeout;",
            "SELECT set_config('lock_timeout', '0', true);",
        ] {
            assert_eq!(rules_of(sql), ["timeout-override"], "{sql}");
        }
        assert!(rules_of("SET search_path = app;").is_empty());
    }
}
