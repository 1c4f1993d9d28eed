//! `vacuum-full`: `VACUUM FULL` rewrites the table under ACCESS EXCLUSIVE.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let StmtKind::Vacuum { full: true, tables } = &ctx.stmt.kind else {
        return Vec::new();
    };
    let tables: Vec<String> = if tables.is_empty() {
        vec![String::new()]
    } else {
        tables.clone()
    };
    tables
        .iter()
        .filter(|t| !ctx.file.is_new(t))
        .map(|table| {
            let name = if table.is_empty() { "every table" } else { table };
            finding(
                Rule::VacuumFull,
                table,
                ACCESS_EXCLUSIVE,
                Blocks::Both,
                Holds::FullScan,
                format!("VACUUM FULL rewrites {name} under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
                format!("VACUUM (ANALYZE) {table};  -- plain VACUUM takes no lock the app waits on; reclaim space online with pg_repack outside the migration"),
            )
        })
        .collect()
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::findings;

    #[test]
    fn vacuum_full_is_flagged_in_both_spellings() {
        for sql in ["VACUUM FULL tasks;", "VACUUM (FULL, ANALYZE) tasks;"] {
            let f = findings(sql, false);
            assert_eq!(f.len(), 1, "{sql}: {f:?}");
            assert_eq!(f[0].rule.name(), "vacuum-full");
        }
        assert!(findings("VACUUM (ANALYZE) tasks;", false).is_empty());
    }
}
