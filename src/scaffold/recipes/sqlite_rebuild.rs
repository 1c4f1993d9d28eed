//! The table rebuild SQLite needs to add a constraint or change a column
//! (it has no `ADD CONSTRAINT`), shared by the recipes that do either.

use super::{files, MigrationFiles, Result, ScaffoldError};
use crate::scaffold::sqlite_schema::{split_items, Table};

/// The table rebuild SQLite needs to change `table`: a new table from
/// `items`, every row copied, the old one dropped, its indexes and triggers
/// created again. `down.sql` is the reverse rebuild, to the definition the
/// table has now.
pub(super) fn sqlite_rebuild(
    table_name: &str,
    table: &Table,
    items: &[String],
    why: &str,
) -> Result<MigrationFiles> {
    if !table.referenced_by.is_empty() {
        return Err(ScaffoldError::Refused(format!(
            "SQLite adds a constraint by rebuilding the table, and `{table_name}` is referenced by {}: dropping it inside the migration's transaction would delete their rows by cascade (PRAGMA foreign_keys cannot be switched off in a transaction). Write this migration by hand: `taskdb new NAME` writes skeletons",
            table.referenced_by.join(", ")
        )));
    }
    let Some(body) = table.body() else {
        return Err(ScaffoldError::Refused(format!(
            "cannot read the definition of `{table_name}`: {}",
            table.sql
        )));
    };
    let columns = table
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let recreate: String = table
        .indexes
        .iter()
        .chain(&table.triggers)
        .map(|sql| format!("\n{};\n", sql.trim()))
        .collect();
    let up = format!(
        "\
-- {why}
-- SQLite cannot add a constraint to an existing table: rebuild it (the
-- documented 12-step way, inside this migration's transaction), every row
-- kept. A row that breaks the new rule makes the copy fail, so nothing is
-- lost silently.
CREATE TABLE {table_name}_new (
    {items}
);
INSERT INTO {table_name}_new ({columns})
    SELECT {columns} FROM {table_name};
DROP TABLE {table_name};
ALTER TABLE {table_name}_new RENAME TO {table_name};
{recreate}",
        items = items.join(",\n    "),
    );
    let down = format!(
        "\
-- Back to {table_name} as it was before, every row kept.
CREATE TABLE {table_name}_old ({body});
INSERT INTO {table_name}_old ({columns})
    SELECT {columns} FROM {table_name};
DROP TABLE {table_name};
ALTER TABLE {table_name}_old RENAME TO {table_name};
{recreate}"
    );
    Ok(files(up, down))
}

pub(super) fn table_items(table_name: &str, table: &Table) -> Result<Vec<String>> {
    table.body().map(split_items).ok_or_else(|| {
        ScaffoldError::Refused(format!(
            "cannot read the definition of `{table_name}`: {}",
            table.sql
        ))
    })
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::{fixture, schema};
    use crate::scaffold::recipes::{build, AddCheck, ColumnRef, Recipe};
    use crate::scaffold::sqlite_schema::SqliteSchema;

    #[test]
    fn sqlite_rebuild_up_and_down_apply_and_restore_the_table() {
        let schema = schema();
        let recipe = Recipe::AddCheck(AddCheck {
            table: "tasks".into(),
            expression: "length(title) > 0".into(),
        });
        let steps = build("tasks_title_not_empty", &recipe, &schema).unwrap();
        let mut migrations = fixture();
        let before = schema.table("tasks").unwrap().clone();
        migrations.push(("up".into(), steps[0].sqlite.up.clone()));
        let after = SqliteSchema::from_migrations(&migrations).unwrap();
        let tasks = after.table("tasks").unwrap();
        assert!(
            tasks.sql.contains("CHECK (length(title) > 0)"),
            "{}",
            tasks.sql
        );
        assert_eq!(tasks.indexes, schema.table("tasks").unwrap().indexes);
        assert_eq!(tasks.triggers, schema.table("tasks").unwrap().triggers);
        migrations.push(("down".into(), steps[0].sqlite.down.clone()));
        let reverted = SqliteSchema::from_migrations(&migrations).unwrap();
        let reverted = reverted.table("tasks").unwrap();
        // The definition comes back word for word (SQLite quotes a renamed
        // table's name, so compare what is inside the parentheses).
        assert_eq!(reverted.body(), before.body());
        assert_eq!(reverted.columns, before.columns);
        assert_eq!(reverted.indexes, before.indexes);
        assert_eq!(reverted.triggers, before.triggers);
    }

    #[test]
    fn a_sqlite_rebuild_of_a_referenced_table_is_refused() {
        let recipe = Recipe::SetNotNull(ColumnRef::parse("users.name").unwrap());
        let err = build("x", &recipe, &schema()).unwrap_err().to_string();
        assert!(err.contains("referenced by tasks"), "{err}");
    }
}
