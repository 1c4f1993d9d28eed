//! `--add-foreign-key` and `--add-check`: on PostgreSQL the constraint is
//! added `NOT VALID` (a catalog change), then a second migration validates
//! the rows already there (a scan that does not block writes); on SQLite
//! the table is rebuilt with it, and the second migration is a no-op.

use super::checks::{check_expression, existing_column, existing_table, object_name};
use super::sqlite_rebuild::{sqlite_rebuild, table_items};
use super::{files, no_op, AddCheck, AddForeignKey, Result, SqliteSchema, Step};

pub(super) fn validate_step(name: &str, table: &str, constraint: &str, rebuilt: &str) -> Step {
    let postgres_up = format!(
        "\
-- Checks the rows that existed before {constraint} was added. Takes SHARE
-- UPDATE EXCLUSIVE, which does not block inserts, updates or deletes.
-- Fails, naming the constraint, if an old row breaks it: fix those rows,
-- then run `taskdb migrate` again.
ALTER TABLE {table} VALIDATE CONSTRAINT {constraint};
"
    );
    let postgres_down = "\
-- A validated constraint cannot be made NOT VALID again; reverting the
-- previous migration drops it.
SELECT 1;
"
    .to_string();
    Step {
        name: format!("{name}_validate"),
        postgres: files(postgres_up, postgres_down),
        sqlite: no_op(rebuilt),
    }
}

pub(super) fn add_foreign_key(
    name: &str,
    fk: &AddForeignKey,
    schema: &SqliteSchema,
) -> Result<Vec<Step>> {
    let table = existing_table(schema, &fk.from.table)?;
    existing_column(&fk.from.table, table, &fk.from.column)?;
    let parent = existing_table(schema, &fk.to.table)?;
    existing_column(&fk.to.table, parent, &fk.to.column)?;
    let constraint = object_name(format!("fk_{}_{}", fk.from.table, fk.from.column))?;
    let on_delete = fk
        .on_delete
        .map(|action| format!(" ON DELETE {}", action.sql()))
        .unwrap_or_default();
    let references = format!(
        "FOREIGN KEY ({}) REFERENCES {} ({}){on_delete}",
        fk.from.column, fk.to.table, fk.to.column
    );
    let postgres_up = format!(
        "\
-- NOT VALID skips the full-table scan, so the ALTER holds its write-blocking
-- lock only for a catalog update. New and updated rows are checked from now
-- on; the next migration checks the rows already there, under a weaker lock.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint}
    {references}
    NOT VALID;
",
        table = fk.from.table
    );
    let postgres_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        fk.from.table
    );
    let mut items = table_items(&fk.from.table, table)?;
    items.push(format!("CONSTRAINT {constraint} {references}"));
    let sqlite = sqlite_rebuild(
        &fk.from.table,
        table,
        &items,
        &format!(
            "Adds the foreign key {}.{} -> {}.{}.",
            fk.from.table, fk.from.column, fk.to.table, fk.to.column
        ),
    )?;
    let rebuilt = format!(
        "the previous migration rebuilt {} and checked every row.",
        fk.from.table
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(postgres_up, postgres_down),
            sqlite,
        },
        validate_step(name, &fk.from.table, &constraint, &rebuilt),
    ])
}

pub(super) fn add_check(name: &str, check: &AddCheck, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &check.table)?;
    check_expression("check expression", &check.expression)?;
    let constraint = object_name(format!("chk_{name}"))?;
    let expression = check.expression.trim();
    let postgres_up = format!(
        "\
-- NOT VALID skips the full-table scan, so the ALTER holds its write-blocking
-- lock only for a catalog update. New and updated rows are checked from now
-- on; the next migration checks the rows already there, under a weaker lock.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint} CHECK ({expression})
    NOT VALID;
",
        table = check.table
    );
    let postgres_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        check.table
    );
    let mut items = table_items(&check.table, table)?;
    items.push(format!("CONSTRAINT {constraint} CHECK ({expression})"));
    let sqlite = sqlite_rebuild(
        &check.table,
        table,
        &items,
        &format!("Adds the check ({expression}) on {}.", check.table),
    )?;
    let rebuilt = format!(
        "the previous migration rebuilt {} and checked every row.",
        check.table
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(postgres_up, postgres_down),
            sqlite,
        },
        validate_step(name, &check.table, &constraint, &rebuilt),
    ])
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::{schema, statements};
    use crate::scaffold::recipes::{build, AddCheck, AddForeignKey, ColumnRef, OnDelete, Recipe};

    #[test]
    fn add_foreign_key_is_not_valid_then_validated_and_a_sqlite_rebuild() {
        let recipe = Recipe::AddForeignKey(AddForeignKey {
            from: ColumnRef::parse("tasks.title").unwrap(),
            to: ColumnRef::parse("users.id").unwrap(),
            on_delete: Some(OnDelete::SetNull),
        });
        let steps = build("tasks_title_fk", &recipe, &schema()).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["tasks_title_fk", "tasks_title_fk_validate"]
        );
        let add = statements(&steps[0].postgres.up);
        assert!(add.contains("ADD CONSTRAINT fk_tasks_title"), "{add}");
        assert!(
            add.contains("FOREIGN KEY (title) REFERENCES users (id) ON DELETE SET NULL"),
            "{add}"
        );
        assert!(add.trim_end().ends_with("NOT VALID;"), "{add}");
        assert_eq!(
            steps[0].postgres.down,
            "ALTER TABLE tasks DROP CONSTRAINT IF EXISTS fk_tasks_title;\n"
        );
        assert_eq!(
            statements(&steps[1].postgres.up).trim(),
            "ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_title;"
        );
        assert!(steps.iter().all(|s| s.postgres.metadata.is_none()));

        // SQLite: the rebuild in the first, a no-op in the second.
        let rebuild = &steps[0].sqlite.up;
        assert!(rebuild.contains("CREATE TABLE tasks_new ("), "{rebuild}");
        assert!(rebuild.contains(
            "CONSTRAINT fk_tasks_title FOREIGN KEY (title) REFERENCES users (id) ON DELETE SET NULL"
        ));
        assert!(rebuild.contains("DROP TABLE tasks;\nALTER TABLE tasks_new RENAME TO tasks;"));
        // The table's index and trigger come back.
        assert!(rebuild
            .contains("CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed);"));
        assert!(rebuild.contains("CREATE TRIGGER tasks_set_updated_at"));
        let down = &steps[0].sqlite.down;
        assert!(down.contains("CREATE TABLE tasks_old ("), "{down}");
        assert!(!down.contains("fk_tasks_title"), "{down}");
        assert!(down.contains("CREATE TRIGGER tasks_set_updated_at"));
        assert_eq!(statements(&steps[1].sqlite.up).trim(), "SELECT 1;");
    }

    #[test]
    fn add_check_is_not_valid_then_validated() {
        let recipe = Recipe::AddCheck(AddCheck {
            table: "tasks".into(),
            expression: "length(title) > 0".into(),
        });
        let steps = build("tasks_title_not_empty", &recipe, &schema()).unwrap();
        assert_eq!(steps.len(), 2);
        let add = statements(&steps[0].postgres.up);
        assert!(
            add.contains("ADD CONSTRAINT chk_tasks_title_not_empty CHECK (length(title) > 0)\n    NOT VALID;"),
            "{add}"
        );
        assert_eq!(steps[1].name, "tasks_title_not_empty_validate");
        assert!(steps[1]
            .postgres
            .up
            .contains("ALTER TABLE tasks VALIDATE CONSTRAINT chk_tasks_title_not_empty;"));
        assert!(steps[0]
            .sqlite
            .up
            .contains("CONSTRAINT chk_tasks_title_not_empty CHECK (length(title) > 0)"));
    }
}
