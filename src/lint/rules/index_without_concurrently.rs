//! `index-without-concurrently`: `CREATE INDEX`, `DROP INDEX` and `REINDEX`
//! on an existing table without `CONCURRENTLY` lock out writes (or reads
//! and writes) for the whole build.

use super::{finding, Blocks, Ctx, Holds, RawFinding, ACCESS_EXCLUSIVE, OWN_MIGRATION, SHARE};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

/// Inserts `CONCURRENTLY` (and `IF NOT EXISTS`, so a rerun after a failed
/// build is safe) after the first `INDEX` keyword of `text`.
fn with_concurrently(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let guard = if lower.contains("if not exists") {
        ""
    } else {
        " IF NOT EXISTS"
    };
    match lower.find("index") {
        Some(at) => format!(
            "{} CONCURRENTLY{guard}{};",
            &text[..at + 5],
            &text[at + 5..]
        ),
        None => format!("{text};"),
    }
}

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let (stmt, file, schema) = (ctx.stmt, ctx.file, ctx.schema);
    let mut out = Vec::new();
    match &stmt.kind {
        StmtKind::CreateIndex {
            table,
            concurrently: false,
            ..
        } if !file.is_new(table) => out.push(finding(
            Rule::IndexWithoutConcurrently,
            table,
            SHARE,
            Blocks::Writes,
            Holds::FullScan,
            format!("CREATE INDEX on existing table `{table}` without CONCURRENTLY holds a SHARE lock on it for the whole build: every insert, update and delete waits"),
            format!("{OWN_MIGRATION}\n{}", with_concurrently(&stmt.text)),
        )),
        StmtKind::DropIndex {
            indexes,
            concurrently: false,
        } => {
            for index in indexes {
                let table = schema.indexes.get(index).cloned().unwrap_or_default();
                if file.created_indexes.contains(index) || file.is_new(&table) {
                    continue;
                }
                let on = if table.is_empty() {
                    "its table".to_string()
                } else {
                    format!("`{table}`")
                };
                out.push(finding(
                    Rule::IndexWithoutConcurrently,
                    &table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Holds::Brief,
                    format!("DROP INDEX `{index}` without CONCURRENTLY takes ACCESS EXCLUSIVE on {on}, and waits behind every running query while all new ones queue behind it"),
                    format!("{OWN_MIGRATION}\nDROP INDEX CONCURRENTLY IF EXISTS {index};"),
                ));
            }
        }
        StmtKind::Reindex {
            target,
            table,
            concurrently: false,
        } => {
            let table = table
                .clone()
                .or_else(|| schema.indexes.get(target).cloned())
                .unwrap_or_default();
            if !file.is_new(&table) && !file.created_indexes.contains(target) {
                let lower = stmt.text.to_ascii_lowercase();
                let keyword_end = ["index", "table"]
                    .iter()
                    .filter_map(|k| lower.find(k).map(|at| at + k.len()))
                    .min()
                    .unwrap_or(7.min(stmt.text.len()));
                out.push(finding(
                    Rule::IndexWithoutConcurrently,
                    &table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Holds::FullScan,
                    format!("REINDEX of `{target}` without CONCURRENTLY blocks writes to the table, and reads that use the index, for the whole rebuild"),
                    format!(
                        "{OWN_MIGRATION}\n{} CONCURRENTLY{};",
                        &stmt.text[..keyword_end],
                        &stmt.text[keyword_end..]
                    ),
                ));
            }
        }
        _ => {}
    }
    out
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{findings, rules_of};

    const RULE: &str = "index-without-concurrently";

    #[test]
    fn create_drop_and_reindex_on_an_existing_table_are_flagged() {
        for sql in [
            "CREATE INDEX i ON tasks (completed);",
            "DROP INDEX idx_tasks_title;",
            "REINDEX INDEX idx_tasks_title;",
            "REINDEX TABLE tasks;",
        ] {
            assert_eq!(rules_of(sql), [RULE], "{sql}");
        }
        let f = findings("CREATE INDEX i ON tasks (completed);", true);
        assert!(f[0]
            .recipe
            .as_deref()
            .unwrap()
            .contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON tasks (completed);"));
    }

    #[test]
    fn concurrent_forms_and_new_tables_are_not() {
        assert!(findings("CREATE INDEX CONCURRENTLY i ON tasks (completed);", false).is_empty());
        assert!(
            rules_of("CREATE TABLE labels (id INT);\nCREATE INDEX i ON labels (id);").is_empty()
        );
    }

    /// `IF NOT EXISTS` on a name that exists creates nothing: the table
    /// that follows is the live one.
    #[test]
    fn create_table_if_not_exists_does_not_make_the_table_new() {
        assert_eq!(
            rules_of(
                "CREATE TABLE IF NOT EXISTS tasks (id INT);\nCREATE INDEX i ON tasks (title);"
            ),
            [RULE]
        );
    }

    #[test]
    fn a_schema_qualified_table_keeps_its_schema() {
        let f = findings("CREATE INDEX i ON app.big (x);", true);
        assert_eq!(f[0].table.as_deref(), Some("app.big"));
    }
}
