//! `constraint-without-not-valid`: a CHECK or FOREIGN KEY added to an
//! existing table checks every row under the lock of the `ALTER TABLE`;
//! `NOT VALID` plus a later `VALIDATE CONSTRAINT` checks them without
//! blocking. Inline `CHECK`s of `ADD COLUMN`, and an inline `REFERENCES`
//! on a column with a default, scan the same way.

use super::{
    finding, with_not_valid, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE, SHARE_ROW_EXCLUSIVE,
};
use crate::lint::model::{AlterCmd, ConstraintKind};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let new = ctx.file.is_new(table);
    let validate_later = |name: &str| {
        format!("-- then, in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on):\nALTER TABLE {table} VALIDATE CONSTRAINT {name};")
    };
    match cmd {
        AlterCmd::AddConstraint {
            name,
            kind,
            not_valid: false,
            ..
        } if !new => {
            let shown = if name.is_empty() { "<name>" } else { name };
            match kind {
                ConstraintKind::Check { .. } => vec![finding(
                    Rule::ConstraintWithoutNotValid,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Holds::FullScan,
                    format!("CHECK constraint `{shown}` added to existing table `{table}` without NOT VALID: every row is checked while ACCESS EXCLUSIVE blocks all reads and writes"),
                    format!("{}\n{}", with_not_valid(ctx.stmt, format!("ALTER TABLE {table} ADD CONSTRAINT {shown} CHECK (…) NOT VALID;")), validate_later(shown)),
                )],
                ConstraintKind::ForeignKey { references } => vec![finding(
                    Rule::ConstraintWithoutNotValid,
                    table,
                    SHARE_ROW_EXCLUSIVE,
                    Blocks::Writes,
                    Holds::FullScan,
                    format!("foreign key `{shown}` added to existing table `{table}` without NOT VALID: every row is checked while SHARE ROW EXCLUSIVE on `{table}` and `{references}` blocks their writes"),
                    format!("{}\n{}", with_not_valid(ctx.stmt, format!("ALTER TABLE {table} ADD CONSTRAINT {shown} FOREIGN KEY (…) REFERENCES {references} (…) NOT VALID;")), validate_later(shown)),
                )],
                _ => Vec::new(),
            }
        }
        AlterCmd::ValidateConstraint { name }
            if ctx.in_transaction
                && !new
                && ctx
                    .file
                    .added_not_valid
                    .contains(&(table.to_string(), name.clone())) =>
        {
            vec![finding(
                Rule::ConstraintWithoutNotValid,
                table,
                ACCESS_EXCLUSIVE,
                Blocks::Both,
                Holds::FullScan,
                format!("constraint `{name}` is validated in the same transaction that added it: the scan runs under the ACCESS EXCLUSIVE lock of the ADD, so NOT VALID gains nothing"),
                format!("-- move it to a later migration:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"),
            )]
        }
        AlterCmd::AddColumn(c) if !new => {
            let col = &c.name;
            let ty = c.ty.as_ref().map(|t| t.display()).unwrap_or_default();
            let mut out = Vec::new();
            if c.check {
                let check = format!("{table}_{col}_check");
                out.push(finding(
                    Rule::ConstraintWithoutNotValid,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Holds::FullScan,
                    format!("adding `{table}.{col}` with an inline CHECK checks every existing row while ACCESS EXCLUSIVE blocks all reads and writes"),
                    format!("ALTER TABLE {table} ADD COLUMN {col} {ty};  -- without the CHECK\nALTER TABLE {table} ADD CONSTRAINT {check} CHECK (…) NOT VALID;\n{}", validate_later(&check)),
                ));
            }
            if let (Some(references), Some(_)) = (&c.references, c.default) {
                let fk = format!("{table}_{col}_fkey");
                out.push(finding(
                    Rule::ConstraintWithoutNotValid,
                    table,
                    SHARE_ROW_EXCLUSIVE,
                    Blocks::Writes,
                    Holds::FullScan,
                    format!("adding `{table}.{col}` with a default and REFERENCES `{references}` checks every existing row's value while the writes of `{table}` and `{references}` wait"),
                    format!("ALTER TABLE {table} ADD COLUMN {col} {ty};  -- with its default, without REFERENCES\nALTER TABLE {table} ADD CONSTRAINT {fk} FOREIGN KEY ({col}) REFERENCES {references} NOT VALID;\n{}", validate_later(&fk)),
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    const RULE: &str = "constraint-without-not-valid";

    #[test]
    fn checks_and_foreign_keys_need_not_valid() {
        assert_eq!(
            rules_of(
                "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);"
            ),
            [RULE]
        );
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD CONSTRAINT c CHECK (priority > 0);"),
            [RULE]
        );
        assert!(
            rules_of("ALTER TABLE tasks ADD CONSTRAINT c CHECK (priority > 0) NOT VALID;")
                .is_empty()
        );
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD CONSTRAINT c CHECK (priority > 0) NOT VALID;\nALTER TABLE tasks VALIDATE CONSTRAINT c;"),
            [RULE],
            "validated in the transaction that added it"
        );
    }

    #[test]
    fn an_inline_check_or_a_defaulted_reference_on_add_column_is_a_scan() {
        assert_eq!(
            rules_of("ALTER TABLE tasks ADD COLUMN p INTEGER DEFAULT 0 CHECK (p >= 0);"),
            [RULE]
        );
        let f = findings(
            "ALTER TABLE tasks ADD COLUMN owner VARCHAR(255) DEFAULT 'u1' REFERENCES users;",
            true,
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].lock, Some("SHARE ROW EXCLUSIVE"));
        // Without a default every value is NULL: nothing to check.
        assert!(
            rules_of("ALTER TABLE tasks ADD COLUMN owner VARCHAR(255) REFERENCES users;")
                .is_empty()
        );
    }
}
