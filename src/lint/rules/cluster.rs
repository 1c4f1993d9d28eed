//! `cluster`: `CLUSTER` rewrites the table under ACCESS EXCLUSIVE.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Cluster { table } = &ctx.stmt.kind else {
        return Vec::new();
    };
    let t = table.clone().unwrap_or_default();
    if ctx.file.is_new(&t) {
        return Vec::new();
    }
    let what = if t.is_empty() {
        "every clustered table".to_string()
    } else {
        format!("`{t}`")
    };
    vec![finding(
        Rule::Cluster,
        &t,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("CLUSTER rewrites {what} under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
        "-- reorder online with pg_repack outside the migration, or leave the order to new rows".into(),
    )]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::rules_of;

    #[test]
    fn cluster_is_flagged() {
        assert_eq!(
            rules_of("CLUSTER tasks USING idx_tasks_title;"),
            ["cluster"]
        );
        assert_eq!(rules_of("CLUSTER;"), ["cluster"]);
    }
}
