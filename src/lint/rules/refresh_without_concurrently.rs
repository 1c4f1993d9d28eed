//! `refresh-without-concurrently`: `REFRESH MATERIALIZED VIEW` without
//! `CONCURRENTLY` holds ACCESS EXCLUSIVE on the view for the whole refresh,
//! so every read of it waits.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Refresh {
        view,
        concurrently: false,
    } = &ctx.stmt.kind
    else {
        return Vec::new();
    };
    vec![finding(
        Rule::RefreshWithoutConcurrently,
        view,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("REFRESH MATERIALIZED VIEW `{view}` without CONCURRENTLY recomputes it under ACCESS EXCLUSIVE: every read of it waits until it is done"),
        format!("-- needs a unique index on the view (CREATE UNIQUE INDEX CONCURRENTLY … ON {view} (…)):\nREFRESH MATERIALIZED VIEW CONCURRENTLY {view};"),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn refresh_needs_concurrently() {
        assert_eq!(
            rules_of("REFRESH MATERIALIZED VIEW task_counts;"),
            ["refresh-without-concurrently"]
        );
        assert!(rules_of("REFRESH MATERIALIZED VIEW CONCURRENTLY task_counts;").is_empty());
    }
}
