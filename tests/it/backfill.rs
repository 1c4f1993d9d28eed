//! Backfill migrations (`taskdb new --backfill`): the files written for
//! both backends lint clean; SQLite runs it as one `UPDATE`.
//! Migrations are read from a copy of `migrations/` (`--migrations-dir`).

use crate::common;

use std::path::Path;

use common::checkout::checkout_copy;
use common::TestDb;
use predicates::str::contains;
use taskdb::Backend;

const SET: &str = "priority = id % 7";
const PREDICATE: &str = "priority IS NULL AND NOT completed";

/// A copy of the crate's migrations plus two new ones: `tasks.priority`
/// added nullable, then backfilled for the open tasks.
fn project_with_backfill() -> tempfile::TempDir {
    let project = checkout_copy();
    common::taskdb_cmd()
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
    common::taskdb_cmd()
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
fn migration_dir(project: &Path, backend: &str, name: &str) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(project.join("migrations").join(backend))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(name))
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no {backend} migration {name}"))
}

/// `rows` tasks of one user, every third one completed.
fn with_tasks(backend: Backend, rows: u32) -> TestDb {
    let db = TestDb::migrated(backend);
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO tasks (user_id, title, completed) SELECT 'u1', 'task ' || i, i % 3 = 0 FROM n;"
    ));
    db
}

/// `taskdb migrate`'s arguments with `project`'s migrations.
fn migrate_args(project: &Path) -> Vec<String> {
    vec![
        "--migrations-dir".into(),
        project.join("migrations").display().to_string(),
        "migrate".into(),
    ]
}

#[test]
fn new_writes_a_backfill_for_both_backends_that_lints_clean() {
    let project = project_with_backfill();
    let pg = migration_dir(project.path(), "postgres", "_fill_tasks_priority");
    let up = std::fs::read_to_string(pg.join("up.sql")).unwrap();
    assert!(
        up.contains("UPDATE tasks SET priority = id % 7 WHERE priority IS NULL AND NOT completed;"),
        "{up}"
    );
    let down = std::fs::read_to_string(pg.join("down.sql")).unwrap();
    assert!(down.contains("SELECT 1;") && down.contains("--"), "{down}");
    let metadata: toml::Table = std::fs::read_to_string(pg.join("metadata.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(metadata["run_in_transaction"].as_bool(), Some(false));
    let backfill = metadata["backfill"].as_table().unwrap();
    assert_eq!(backfill["table"].as_str(), Some("tasks"));
    assert_eq!(backfill["set"].as_str(), Some(SET));
    assert_eq!(backfill["where"].as_str(), Some(PREDICATE));
    assert_eq!(backfill["key"].as_str(), Some("id"));

    let sqlite = migration_dir(project.path(), "sqlite", "_fill_tasks_priority");
    assert_eq!(sqlite.file_name(), pg.file_name());
    let up = std::fs::read_to_string(sqlite.join("up.sql")).unwrap();
    assert!(
        up.contains("UPDATE tasks SET priority = id % 7 WHERE priority IS NULL AND NOT completed;")
    );
    assert!(sqlite.join("down.sql").is_file());

    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success()
        .stdout(contains("0 error(s), 0 warning(s)"));
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["lint", "--check-facts", "migrations/lint-facts.json"])
        .assert()
        .success();

    // up.sql edited without its [backfill]: lint says they differ.
    let edited = std::fs::read_to_string(pg.join("up.sql"))
        .unwrap()
        .replace("id % 7", "id % 8");
    std::fs::write(pg.join("up.sql"), edited).unwrap();
    common::taskdb_cmd()
        .current_dir(project.path())
        .arg("lint")
        .assert()
        .code(1)
        .stdout(contains("parse-error"))
        .stdout(contains("[backfill] describes"));

    // --where belongs to a kind; a backfill needs it.
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["new", "x", "--where", "true"])
        .assert()
        .code(2);
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["new", "x", "--backfill", "tasks", "priority = 1"])
        .assert()
        .code(2);
}

#[test]
fn sqlite_runs_a_backfill_as_one_update() {
    let project = project_with_backfill();
    let db = with_tasks(Backend::Sqlite, 2_000);
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("_fill_tasks_priority"));
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE NOT completed AND priority IS NULL"),
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE NOT completed AND priority <> id % 7"),
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE completed AND priority IS NOT NULL"),
        0
    );
}
