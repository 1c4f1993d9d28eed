//! `taskdb new NAME`: commented skeletons, the rules of an online-safe
//! migration written where the SQL goes.

use super::{files, Step};

pub(super) fn skeleton(name: &str) -> Step {
    let postgres_up = format!(
        "\
-- {name} (PostgreSQL): write the change here.
--
-- tasks and users hold rows and take writes during a deploy, so every
-- statement must be online-safe (`taskdb lint` checks it):
-- - a new column is nullable, or NOT NULL with a constant default;
-- - an index on an existing table is CREATE INDEX CONCURRENTLY, the only
--   statement of its own migration, with metadata.toml saying
--   `run_in_transaction = false`;
-- - a foreign key or CHECK is added NOT VALID and validated by a later
--   migration; SET NOT NULL comes after a validated CHECK (col IS NOT NULL).
-- `taskdb new --help` lists the kinds that write these shapes for you.
"
    );
    let postgres_down = "\
-- Undo everything up.sql does, so `taskdb redo` and `taskdb rollback` work.
"
    .to_string();
    let sqlite_up = format!(
        "\
-- {name} (SQLite): the same change as the PostgreSQL up.sql of this
-- migration, in SQLite's terms.
--
-- ADD COLUMN needs a constant default (CURRENT_TIMESTAMP fails once the
-- table has rows). SQLite cannot add a constraint to an existing table or
-- change a column: rebuild the table as
-- migrations/sqlite/2026-02-08-000003_add_tasks_user_fk does.
"
    );
    Step {
        name: name.to_string(),
        postgres: files(postgres_up, postgres_down.clone()),
        sqlite: files(sqlite_up, postgres_down),
    }
}

#[cfg(test)]
mod tests {
    use crate::scaffold::recipes::fixtures::statements;
    use crate::scaffold::recipes::{build, Recipe};
    use crate::scaffold::sqlite_schema::SqliteSchema;

    #[test]
    fn skeletons_are_comments_only() {
        let steps = build("add_projects", &Recipe::Skeleton, &SqliteSchema::default()).unwrap();
        assert_eq!(steps.len(), 1);
        for text in [
            &steps[0].postgres.up,
            &steps[0].postgres.down,
            &steps[0].sqlite.up,
        ] {
            assert!(statements(text).trim().is_empty(), "{text}");
        }
        assert!(steps[0].postgres.up.contains("CONCURRENTLY"));
    }
}
