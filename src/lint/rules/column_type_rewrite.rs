//! `column-type-rewrite`: `ALTER COLUMN … TYPE` rewrites (or rescans)
//! every row under ACCESS EXCLUSIVE unless the change is binary-coercible
//! and no narrower (`varchar(n)` → `varchar(m ≥ n)` / `text`, …).

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE};
use crate::lint::model::{AlterCmd, TypeInfo};
use crate::lint::Rule;

pub fn check(ctx: &Ctx<'_>, table: &str, cmd: &AlterCmd) -> Vec<RawFinding> {
    let AlterCmd::AlterType { column, ty, using } = cmd else {
        return Vec::new();
    };
    if ctx.file.is_new(table) {
        return Vec::new();
    }
    let old = ctx.schema.columns.get(&(table.to_string(), column.clone()));
    let Some(why) = rewrite_reason(old, ty.as_ref(), *using) else {
        return Vec::new();
    };
    let to = ty
        .as_ref()
        .map(|t| t.display())
        .unwrap_or_else(|| "…".into());
    vec![finding(
        Rule::ColumnTypeRewrite,
        table,
        ACCESS_EXCLUSIVE,
        Blocks::Both,
        Holds::FullScan,
        format!("changing `{table}.{column}` to {to} {why}, under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
        format!("ALTER TABLE {table} ADD COLUMN {column}_new {to};\n-- release an app version that writes both; backfill {column}_new in batches outside the migration;\n-- switch reads to {column}_new, then in a later release:\nALTER TABLE {table} DROP COLUMN {column};\nALTER TABLE {table} RENAME COLUMN {column}_new TO {column};"),
    )]
}

/// Why a type change rewrites or rescans the table, or `None` when
/// PostgreSQL only changes the catalog (binary-coercible, no narrower).
pub(super) fn rewrite_reason(old: Option<&TypeInfo>, new: Option<&TypeInfo>, using: bool) -> Option<String> {
    if using {
        return Some("with USING rewrites every row".into());
    }
    let Some(new) = new else {
        return Some("may rewrite every row".into());
    };
    let Some(old) = old else {
        return Some(
            "from a type lint cannot see (the column was not created by these migrations) may rewrite every row; only varchar(n) → varchar(m ≥ n) / text and numeric(p,s) → numeric(q ≥ p,s) are free"
                .to_string(),
        );
    };
    if old.array != new.array {
        return Some(format!("from {} rewrites every row", old.display()));
    }
    let textual = |t: &TypeInfo| t.name == "text" || (t.name == "varchar" && t.mods.is_empty());
    let free = match (old.name.as_str(), new.name.as_str()) {
        _ if old == new => true,
        ("varchar", "varchar") => {
            new.mods.is_empty() || old.mods.first() <= new.mods.first() && !old.mods.is_empty()
        }
        ("varchar" | "text", _) if textual(new) => true,
        ("numeric", "numeric") => {
            new.mods.is_empty()
                || (!old.mods.is_empty()
                    && old.mods.first() <= new.mods.first()
                    && old.mods.get(1).unwrap_or(&0) == new.mods.get(1).unwrap_or(&0))
        }
        ("varbit", "varbit") => {
            new.mods.is_empty() || old.mods.first() <= new.mods.first() && !old.mods.is_empty()
        }
        ("cidr", "inet") => true,
        _ => false,
    };
    if free {
        return None;
    }
    let narrows = old.name == new.name;
    Some(if narrows {
        format!("from {} rescans every row to check it fits", old.display())
    } else {
        format!("from {} rewrites every row", old.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[i64]) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            mods: mods.to_vec(),
            array: false,
        }
    }

    #[test]
    fn binary_coercible_type_changes_are_free() {
        for (old, new) in [
            (t("varchar", &[100]), t("varchar", &[255])),
            (t("varchar", &[100]), t("varchar", &[])),
            (t("varchar", &[100]), t("text", &[])),
            (t("text", &[]), t("varchar", &[])),
            (t("numeric", &[10, 2]), t("numeric", &[12, 2])),
            (t("numeric", &[10, 2]), t("numeric", &[])),
            (t("cidr", &[]), t("inet", &[])),
        ] {
            assert_eq!(
                rewrite_reason(Some(&old), Some(&new), false),
                None,
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn rewriting_type_changes_are_flagged() {
        for (old, new) in [
            (t("varchar", &[255]), t("varchar", &[100])),
            (t("int4", &[]), t("int8", &[])),
            (t("text", &[]), t("varchar", &[50])),
            (t("varchar", &[]), t("varchar", &[50])),
            (t("numeric", &[10, 2]), t("numeric", &[12, 4])),
            (t("timestamp", &[]), t("timestamptz", &[])),
        ] {
            assert!(
                rewrite_reason(Some(&old), Some(&new), false).is_some(),
                "{old:?} → {new:?}"
            );
        }
        let v = t("varchar", &[100]);
        assert!(rewrite_reason(Some(&v), Some(&t("varchar", &[255])), true).is_some());
        assert!(rewrite_reason(None, Some(&t("text", &[])), false).is_some());
    }
}
