//! `--set-not-null`: on PostgreSQL a `CHECK (col IS NOT NULL)` added
//! `NOT VALID`, validated, then `SET NOT NULL` (which the validated check
//! spares its scan) and the check dropped; on SQLite a table rebuild.

use super::checks::{existing_column, existing_table, object_name};
use super::constraint::validate_step;
use super::sqlite_rebuild::{sqlite_rebuild, table_items};
use super::{files, no_op, ColumnRef, Result, ScaffoldError, SqliteSchema, Step};
use crate::scaffold::sqlite_schema::item_column;

pub(super) fn set_not_null(name: &str, c: &ColumnRef, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &c.table)?;
    existing_column(&c.table, table, &c.column)?;
    if table.column(&c.column).is_some_and(|col| col.not_null) {
        return Err(ScaffoldError::Refused(format!(
            "column `{}.{}` is NOT NULL already",
            c.table, c.column
        )));
    }
    let constraint = object_name(format!("{}_{}_not_null", c.table, c.column))?;
    let check = format!("CHECK ({} IS NOT NULL)", c.column);
    let first_up = format!(
        "\
-- Step 1 of 3 towards {table}.{col} NOT NULL. SET NOT NULL alone scans the
-- whole table under an ACCESS EXCLUSIVE lock. A CHECK added NOT VALID is a
-- catalog change; new and updated rows must have a {col} from now on.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint} {check}
    NOT VALID;
",
        table = c.table,
        col = c.column
    );
    let first_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        c.table
    );
    let mut items = table_items(&c.table, table)?;
    let mut found = false;
    for item in &mut items {
        if item_column(item).is_some_and(|col| col.eq_ignore_ascii_case(&c.column)) {
            item.push_str(" NOT NULL");
            found = true;
        }
    }
    if !found {
        return Err(ScaffoldError::Refused(format!(
            "cannot find the definition of `{}` in `{}`: {}",
            c.column, c.table, table.sql
        )));
    }
    let sqlite = sqlite_rebuild(
        &c.table,
        table,
        &items,
        &format!("Makes {}.{} NOT NULL.", c.table, c.column),
    )?;
    let rebuilt = format!(
        "the first of these migrations rebuilt {} with {} NOT NULL.",
        c.table, c.column
    );
    let mut validate = validate_step(name, &c.table, &constraint, &rebuilt);
    validate.postgres.up = validate.postgres.up.replacen(
        "-- Checks the rows",
        &format!(
            "-- Step 2 of 3 towards {}.{} NOT NULL. Checks the rows",
            c.table, c.column
        ),
        1,
    );
    let last_up = format!(
        "\
-- Step 3 of 3. The validated check proves no row has a NULL {col}, so SET
-- NOT NULL skips its scan (PostgreSQL 12+) and holds its lock only for a
-- catalog update. The check is redundant after it.
ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;
ALTER TABLE {table} DROP CONSTRAINT {constraint};
",
        table = c.table,
        col = c.column
    );
    let last_down = format!(
        "\
-- Back to a nullable column guarded by the validated check (adding it
-- scans the table once; the column is NOT NULL here, so it cannot fail).
ALTER TABLE {table} ADD CONSTRAINT {constraint} {check};
ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL;
",
        table = c.table,
        col = c.column
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(first_up, first_down),
            sqlite,
        },
        validate,
        Step {
            name: format!("{name}_set_not_null"),
            postgres: files(last_up, last_down),
            sqlite: no_op(&rebuilt),
        },
    ])
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::{schema, statements};
    use crate::scaffold::recipes::{build, ColumnRef, Recipe};

    #[test]
    fn set_not_null_goes_through_a_validated_check() {
        let recipe = Recipe::SetNotNull(ColumnRef::parse("tasks.description").unwrap());
        let steps = build("tasks_description_not_null", &recipe, &schema()).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            [
                "tasks_description_not_null",
                "tasks_description_not_null_validate",
                "tasks_description_not_null_set_not_null"
            ]
        );
        assert!(statements(&steps[0].postgres.up).contains(
            "ADD CONSTRAINT tasks_description_not_null CHECK (description IS NOT NULL)\n    NOT VALID;"
        ));
        assert!(steps[1]
            .postgres
            .up
            .contains("VALIDATE CONSTRAINT tasks_description_not_null;"));
        assert_eq!(
            statements(&steps[2].postgres.up).trim(),
            "ALTER TABLE tasks ALTER COLUMN description SET NOT NULL;\nALTER TABLE tasks DROP CONSTRAINT tasks_description_not_null;"
        );
        let down = statements(&steps[2].postgres.down);
        assert!(down.contains(
            "ADD CONSTRAINT tasks_description_not_null CHECK (description IS NOT NULL);"
        ));
        assert!(down.contains("ALTER COLUMN description DROP NOT NULL;"));
        assert!(steps[0].sqlite.up.contains("description TEXT NOT NULL,"));
        assert_eq!(statements(&steps[2].sqlite.up).trim(), "SELECT 1;");

        let err = build(
            "x",
            &Recipe::SetNotNull(ColumnRef::parse("tasks.title").unwrap()),
            &schema(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("NOT NULL already"), "{err}");
    }
}
