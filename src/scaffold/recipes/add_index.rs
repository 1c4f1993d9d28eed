//! `--add-index`: `CREATE INDEX CONCURRENTLY IF NOT EXISTS` on PostgreSQL,
//! alone in its migration and outside a transaction; a plain
//! `CREATE INDEX` on SQLite.

use super::checks::{check_expression, existing_column, existing_table, object_name};
use super::{files, AddIndex, MigrationFiles, Result, ScaffoldError, SqliteSchema, Step};

const NO_TRANSACTION_INDEX: &str = "\
# CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction. up.sql and
# down.sql hold exactly one statement each: Diesel sends a multi-statement
# file as one implicit transaction.
run_in_transaction = false
";

/// The name `taskdb new --add-index` gives an index.
pub fn index_name(i: &AddIndex) -> String {
    let columns = i.columns.join("_");
    if i.unique {
        format!("{}_{columns}_key", i.table)
    } else {
        format!("idx_{}_{columns}", i.table)
    }
}

pub(super) fn add_index(name: &str, i: &AddIndex, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &i.table)?;
    if i.columns.is_empty() {
        return Err(ScaffoldError::Refused(
            "give the index's columns, comma-separated (e.g. user_id,due_date)".to_string(),
        ));
    }
    for column in &i.columns {
        existing_column(&i.table, table, column)?;
    }
    if let Some(predicate) = &i.predicate {
        check_expression("--where predicate", predicate)?;
    }
    let index = object_name(index_name(i))?;
    if schema.has_index(&index) {
        return Err(ScaffoldError::Refused(format!(
            "an index named `{index}` exists already"
        )));
    }
    let unique = if i.unique { "UNIQUE " } else { "" };
    let columns = i.columns.join(", ");
    let predicate = i
        .predicate
        .as_ref()
        .map(|p| format!(" WHERE {}", p.trim()))
        .unwrap_or_default();
    let target = format!("{index} ON {} ({columns}){predicate}", i.table);
    let postgres_up = format!(
        "\
-- CONCURRENTLY builds the index without blocking writes to {table}. It
-- cannot run in a transaction, so this file holds this one statement
-- (metadata.toml). A build that fails or is cut off leaves an INVALID
-- index: the next `taskdb migrate` drops and rebuilds it.
CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {target};
",
        table = i.table
    );
    let postgres_down = format!("DROP INDEX CONCURRENTLY IF EXISTS {index};\n");
    let sqlite_up = format!("CREATE {unique}INDEX {target};\n");
    let sqlite_down = format!("DROP INDEX IF EXISTS {index};\n");
    Ok(vec![Step {
        name: name.to_string(),
        postgres: MigrationFiles {
            up: postgres_up,
            down: postgres_down,
            metadata: Some(NO_TRANSACTION_INDEX.to_string()),
        },
        sqlite: files(sqlite_up, sqlite_down),
    }])
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::{schema, statements};
    use crate::scaffold::recipes::{build, AddIndex, Recipe};

    #[test]
    fn add_index_is_concurrent_and_alone_outside_a_transaction() {
        let recipe = Recipe::AddIndex(AddIndex {
            table: "tasks".into(),
            columns: vec!["user_id".into(), "created_at".into()],
            unique: false,
            predicate: Some("NOT completed".into()),
        });
        let steps = build("index_tasks_open", &recipe, &schema()).unwrap();
        assert_eq!(steps.len(), 1);
        let pg = &steps[0].postgres;
        assert_eq!(
            statements(&pg.up).trim(),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_user_id_created_at ON tasks (user_id, created_at) WHERE NOT completed;"
        );
        assert_eq!(
            pg.down,
            "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_id_created_at;\n"
        );
        let metadata = pg.metadata.as_deref().unwrap();
        assert!(metadata
            .lines()
            .any(|l| l.trim() == "run_in_transaction = false"));
        // One statement per file: Diesel would wrap several in a transaction.
        assert_eq!(statements(&pg.up).matches(';').count(), 1);
        assert_eq!(
            crate::migrate::apply::created_index_names(&pg.up),
            ["idx_tasks_user_id_created_at"]
        );
        let sqlite = &steps[0].sqlite;
        assert_eq!(
            sqlite.up,
            "CREATE INDEX idx_tasks_user_id_created_at ON tasks (user_id, created_at) WHERE NOT completed;\n"
        );
        assert_eq!(sqlite.metadata, None);
        assert_eq!(
            sqlite.down,
            "DROP INDEX IF EXISTS idx_tasks_user_id_created_at;\n"
        );

        let unique = Recipe::AddIndex(AddIndex {
            table: "users".into(),
            columns: vec!["name".into()],
            unique: true,
            predicate: None,
        });
        let steps = build("x", &unique, &schema()).unwrap();
        assert!(steps[0].postgres.up.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_name_key ON users (name);"
        ));
    }

    #[test]
    fn add_index_refuses_unknown_columns_and_existing_names_and_second_statements() {
        let mut i = AddIndex {
            table: "tasks".into(),
            columns: vec!["due_date".into()],
            unique: false,
            predicate: None,
        };
        let err = build("x", &Recipe::AddIndex(i.clone()), &schema()).unwrap_err();
        assert!(
            err.to_string().contains("no column `tasks.due_date`"),
            "{err}"
        );
        i.columns = vec!["user_id".into()];
        i.predicate = Some("true; DROP TABLE tasks".into());
        assert!(build("x", &Recipe::AddIndex(i.clone()), &schema()).is_err());
        i.predicate = None;
        i.columns = vec!["created_at".into()];
        i.table = "users".into();
        let err = build("x", &Recipe::AddIndex(i), &schema()).unwrap_err();
        assert!(err.to_string().contains("idx_users_created_at"), "{err}");
    }
}
