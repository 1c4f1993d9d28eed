//! `unique-constraint-under-lock`: a UNIQUE / PRIMARY KEY / EXCLUDE
//! constraint (or an inline one on `ADD COLUMN`) builds its index under
//! ACCESS EXCLUSIVE; build it `CONCURRENTLY` and attach it `USING INDEX`.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE, OWN_MIGRATION};
use crate::lint::model::{AlterCmd, ConstraintKind};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    match cmd {
        AlterCmd::AddConstraint {
            name,
            kind:
                kind @ (ConstraintKind::Unique | ConstraintKind::PrimaryKey | ConstraintKind::Exclusion),
            columns,
            using_index: false,
            ..
        } => {
            let shown = if name.is_empty() { "<name>" } else { name };
            let what = match kind {
                ConstraintKind::Unique => "UNIQUE",
                ConstraintKind::PrimaryKey => "PRIMARY KEY",
                _ => "EXCLUDE",
            };
            let cols = if columns.is_empty() {
                "…".to_string()
            } else {
                columns.join(", ")
            };
            let index = if name.is_empty() {
                format!("{table}_{}_key", columns.join("_"))
            } else {
                name.clone()
            };
            vec![finding(
                Rule::UniqueConstraintUnderLock,
                table,
                ACCESS_EXCLUSIVE,
                Blocks::Both,
                Holds::FullScan,
                format!("{what} constraint `{shown}` on existing table `{table}` builds its index under ACCESS EXCLUSIVE: no read or write gets through until the build is done"),
                format!("{OWN_MIGRATION}\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} ({cols});\n-- then, in the next migration (a catalog change only):\nALTER TABLE {table} ADD CONSTRAINT {index} {what} USING INDEX {index};"),
            )]
        }
        AlterCmd::AddColumn(c) if c.unique => {
            let ty = c.ty.as_ref().map(|t| t.display()).unwrap_or_default();
            let col = &c.name;
            vec![finding(
                Rule::UniqueConstraintUnderLock,
                table,
                ACCESS_EXCLUSIVE,
                Blocks::Both,
                Holds::FullScan,
                format!("adding `{table}.{col}` with UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE"),
                format!("ALTER TABLE {table} ADD COLUMN {col} {ty};\n{OWN_MIGRATION}\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_{col}_key ON {table} ({col});\n-- then:\nALTER TABLE {table} ADD CONSTRAINT {table}_{col}_key UNIQUE USING INDEX {table}_{col}_key;"),
            )]
        }
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    const RULE: &str = "unique-constraint-under-lock";

    #[test]
    fn unique_and_primary_keys_build_under_the_lock() {
        let f = findings(
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
            true,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].recipe.as_deref().unwrap().contains(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);"
        ));
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD PRIMARY KEY (id, user_id);"),
            [RULE]
        );
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD COLUMN code TEXT UNIQUE;"),
            [RULE]
        );
        assert!(rules_of("ALTER TABLE users ADD CONSTRAINT k UNIQUE USING INDEX k;").is_empty());
    }
}
