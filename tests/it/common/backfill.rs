//! A project with a backfill migration (`taskdb new --backfill`), and what
//! the ledger says of it: for the backfill tests here and in
//! tests/replicas.

use std::path::{Path, PathBuf};

use diesel::prelude::*;

use super::checkout::checkout_copy;
use super::TestDb;
use taskdb::Backend;

pub const SET: &str = "priority = id % 7";
pub const PREDICATE: &str = "priority IS NULL AND NOT completed";

/// A copy of the crate's migrations plus two new ones: `tasks.priority`
/// added nullable, then backfilled for the open tasks.
pub fn project_with_backfill() -> tempfile::TempDir {
    let project = checkout_copy();
    super::taskdb_cmd()
        .current_dir(project.path())
        .args([
            "new",
            "add_tasks_priority",
            "--add-column",
            "tasks",
            "priority",
            "integer",
        ])
        .assert()
        .success();
    super::taskdb_cmd()
        .current_dir(project.path())
        .args([
            "new",
            "fill_tasks_priority",
            "--backfill",
            "tasks",
            SET,
            "--where",
            PREDICATE,
        ])
        .assert()
        .success();
    project
}

/// The directory of the newest migration named `name` under `backend`.
pub fn migration_dir(project: &Path, backend: &str, name: &str) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(project.join("migrations").join(backend))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(name))
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no {backend} migration {name}"))
}

pub fn version_of(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    name.split('_').next().unwrap().replace('-', "")
}

/// `rows` tasks of one user, every third one completed.
pub fn with_tasks(backend: Backend, rows: u32) -> TestDb {
    let db = TestDb::migrated(backend);
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO tasks (user_id, title, completed) SELECT 'u1', 'task ' || i, i % 3 = 0 FROM n;"
    ));
    db
}

/// `taskdb migrate`'s arguments with `project`'s migrations.
pub fn migrate_args(project: &Path) -> Vec<String> {
    vec![
        "--migrations-dir".into(),
        project.join("migrations").display().to_string(),
        "migrate".into(),
    ]
}

/// A checksum of `table`'s (id, priority), in id order.
pub fn checksum(db: &TestDb, table: &str) -> Vec<String> {
    db.rows(&format!(
        "SELECT md5(string_agg(id || ':' || coalesce(priority::text, ''), ',' ORDER BY id)) AS line FROM {table}"
    ))
}

/// The ledger's (state, rows walked) for `version`, `None` while it has
/// no row (or no backfill columns yet).
pub fn ledger_progress(db: &TestDb, version: &str) -> Option<(String, i64)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    diesel::sql_query(format!(
        "SELECT state, coalesce(backfill_rows, 0) AS rows FROM __taskdb_ledger WHERE version = '{version}'"
    ))
    .get_result::<Row>(&mut db.conn())
    .ok()
    .map(|r| (r.state, r.rows))
}

/// Every open task got `SET`'s value and the completed ones (outside the
/// predicate) were left alone.
pub fn assert_filled(db: &TestDb) {
    for (rows, what) in [
        (
            "NOT completed AND priority IS NULL",
            "open tasks left unfilled",
        ),
        (
            "NOT completed AND priority <> id % 7",
            "open tasks filled wrong",
        ),
        (
            "completed AND priority IS NOT NULL",
            "completed tasks touched",
        ),
    ] {
        let count = db.scalar(&format!("SELECT count(*) FROM tasks WHERE {rows}"));
        assert_eq!(count, 0, "{what}");
    }
}
