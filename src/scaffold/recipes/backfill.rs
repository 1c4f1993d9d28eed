//! `--backfill`: an `UPDATE` of the rows matching a predicate. Its
//! `up.sql` is one ordinary `UPDATE` (what the diesel CLI, and taskdb on
//! SQLite, run); on PostgreSQL its `metadata.toml` names it a backfill, so
//! `taskdb migrate` runs it in short batches in primary-key order, saving
//! its position after each.

use super::checks::{check_expression, existing_table};
use super::{Backfill, MigrationFiles, Result, ScaffoldError, SqliteSchema, Step};
use crate::source;

pub(super) fn backfill(name: &str, b: &Backfill, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &b.table)?;
    check_expression("SET list", &b.set)?;
    check_expression("--where predicate", &b.predicate)?;
    let Some(key) = table.primary_key() else {
        return Err(ScaffoldError::Refused(format!(
            "`{}` has no one-column primary key to walk the batches in",
            b.table
        )));
    };
    let spec = source::Backfill {
        table: b.table.clone(),
        set: b.set.trim().to_string(),
        predicate: b.predicate.trim().to_string(),
        key: key.name.to_ascii_lowercase(),
    };
    let update = spec.update_sql();
    let postgres_up = format!(
        "\
-- A backfill: `taskdb migrate` runs this UPDATE in short batches in {key}
-- order, each its own transaction, and saves its position after each, so
-- it resumes where it stopped (metadata.toml: [backfill], which must say
-- the same as this statement). The diesel CLI runs it as one UPDATE, fine
-- on a development database. Running a batch twice changes nothing more:
-- the WHERE skips rows already done.
{update};
",
        key = spec.key
    );
    let down = "\
-- Nothing to undo: a backfill fills in data, and the migration that added
-- the column removes it with the column.
SELECT 1;
"
    .to_string();
    let metadata = format!(
        "\
# taskdb runs this backfill in batches, each in its own transaction.
run_in_transaction = false

{}",
        spec.metadata_table()
    );
    Ok(vec![Step {
        name: name.to_string(),
        postgres: MigrationFiles {
            up: postgres_up,
            down: down.clone(),
            metadata: Some(metadata),
        },
        sqlite: MigrationFiles {
            up: format!("-- A backfill: SQLite runs it as one UPDATE.\n{update};\n"),
            down,
            metadata: None,
        },
    }])
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::{schema, statements};
    use crate::scaffold::recipes::{build, Backfill, Recipe};
    use crate::source;

    fn recipe(table: &str, set: &str, predicate: &str) -> Recipe {
        Recipe::Backfill(Backfill {
            table: table.into(),
            set: set.into(),
            predicate: predicate.into(),
        })
    }

    #[test]
    fn backfill_is_one_update_and_metadata_that_names_it() {
        let steps = build(
            "fill_tasks_title",
            &recipe("tasks", "title = upper(title)", "title <> upper(title)"),
            &schema(),
        )
        .unwrap();
        assert_eq!(steps.len(), 1);
        let pg = &steps[0].postgres;
        assert_eq!(
            statements(&pg.up).trim(),
            "UPDATE tasks SET title = upper(title) WHERE title <> upper(title);"
        );
        let metadata = pg.metadata.as_deref().unwrap();
        let spec = source::Backfill::from_metadata(Some(metadata), "x")
            .unwrap()
            .unwrap();
        assert_eq!(spec.key, "id");
        assert!(spec.matches_up_sql(&pg.up));
        assert!(metadata
            .lines()
            .any(|l| l.trim() == "run_in_transaction = false"));
        assert_eq!(statements(&pg.down).trim(), "SELECT 1;");
        let sqlite = &steps[0].sqlite;
        assert_eq!(
            statements(&sqlite.up).trim(),
            "UPDATE tasks SET title = upper(title) WHERE title <> upper(title);"
        );
        assert_eq!(sqlite.metadata, None);
    }

    #[test]
    fn backfill_refuses_unknown_tables_and_second_statements() {
        let err = build("x", &recipe("projects", "a = 1", "true"), &schema()).unwrap_err();
        assert!(err.to_string().contains("no table `projects`"), "{err}");
        assert!(build(
            "x",
            &recipe("tasks", "title = 'a'; DROP TABLE tasks", "true"),
            &schema()
        )
        .is_err());
        assert!(build(
            "x",
            &recipe("tasks", "title = 'a'", "true) OR (1 = 1"),
            &schema()
        )
        .is_err());
        assert!(build("x", &recipe("tasks", "title = 'a'", ""), &schema()).is_err());
    }
}
