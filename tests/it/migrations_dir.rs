//! `--migrations-dir`: migrations read at run time, not compiled in, so a
//! team tries a new migration without rebuilding taskdb. On both backends
//! a migration written by `taskdb new` into a copy of `migrations/` is
//! planned, applied, verified and rolled back; and the pre-flight, end to
//! end, refuses the issue-12 migration on a large table (from the
//! directory's facts file, or linted on the spot when that file does not
//! cover it) and lets it through on an empty one.

use crate::common;

use std::path::Path;

use common::checkout::{checkout_copy, copy_dir, crate_root};
use common::TestDb;
use predicates::str::contains;
use taskdb::Backend;

const SAFE_FIRST: &str = "2026-03-01-000000_add_tasks_note";
const UNSAFE: &str = "2026-03-01-000001_archive_tasks";

/// A project directory holding a copy of taskdb's `migrations/` (and the
/// `Cargo.toml` `taskdb new` looks for).
fn project() -> tempfile::TempDir {
    checkout_copy()
}

/// `taskdb` on `db`, reading migrations from `project`'s `migrations/`.
fn taskdb_with(project: &Path, db: &TestDb) -> assert_cmd::Command {
    let mut cmd = db.taskdb();
    cmd.arg("--migrations-dir").arg(project.join("migrations"));
    cmd
}

fn applied(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM __diesel_schema_migrations")
}

fn compiled_in(backend: Backend) -> i64 {
    taskdb::migrate::migrations(backend).len() as i64
}

#[test]
fn a_new_migration_runs_from_the_directory_on_both_backends() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let project = project();
        common::taskdb_cmd()
            .current_dir(project.path())
            .args(["new", "tasks_note", "--add-column", "tasks", "note", "text"])
            .assert()
            .success();
        let db = TestDb::migrated(backend);
        assert_eq!(applied(&db), compiled_in(backend));

        taskdb_with(project.path(), &db)
            .arg("status")
            .assert()
            .success()
            .stdout(contains("_tasks_note"))
            .stdout(contains("Pending: 1"));
        taskdb_with(project.path(), &db)
            .arg("migrate")
            .assert()
            .success()
            .stdout(contains("_tasks_note"));
        assert_eq!(applied(&db), compiled_in(backend) + 1, "{backend:?}");
        let has_note = "SELECT count(*) FROM (SELECT note FROM tasks LIMIT 0) AS t";
        db.scalar(has_note);

        // The schema the directory's migrations build is the live one...
        taskdb_with(project.path(), &db)
            .arg("verify")
            .assert()
            .success();
        // ...and not the one compiled in, which lacks the column.
        db.taskdb()
            .arg("verify")
            .assert()
            .code(1)
            .stdout(contains("note"));

        taskdb_with(project.path(), &db)
            .args(["rollback", "--yes"])
            .assert()
            .success()
            .stdout(contains("_tasks_note"));
        assert_eq!(applied(&db), compiled_in(backend), "{backend:?}");
        taskdb_with(project.path(), &db)
            .arg("status")
            .assert()
            .success()
            .stdout(contains("Pending: 1"));
    }
}

#[test]
fn one_backend_directory_works_as_the_diesel_cli_takes_it() {
    let project = project();
    let db = TestDb::empty(Backend::Sqlite);
    db.taskdb()
        .arg("--migrations-dir")
        .arg(project.path().join("migrations/sqlite"))
        .arg("migrate")
        .assert()
        .success();
    assert_eq!(applied(&db), compiled_in(Backend::Sqlite));
}

#[test]
fn a_missing_directory_is_one_clear_error_and_changes_nothing() {
    let db = TestDb::empty(Backend::Sqlite);
    let missing = crate_root().join("target/no-such-migrations-dir");
    db.taskdb()
        .arg("--migrations-dir")
        .arg(&missing)
        .arg("migrate")
        .assert()
        .code(1)
        .stderr(contains("error: cannot read migrations at"))
        .stderr(contains("no-such-migrations-dir"));
    let tables = db.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    assert_eq!(tables, 0);
}

/// A project whose PostgreSQL migrations end with a safe step and then the
/// issue-12 one (an index without CONCURRENTLY, a CHECK without NOT VALID,
/// a volatile default); with `fresh_facts`, its `lint-facts.json` covers
/// them, otherwise they are linted on the spot.
fn project_with_issue_12(fresh_facts: bool) -> tempfile::TempDir {
    let project = project();
    let pg = project.path().join("migrations/postgres");
    let safe = pg.join(SAFE_FIRST);
    std::fs::create_dir_all(&safe).unwrap();
    std::fs::write(
        safe.join("up.sql"),
        "ALTER TABLE tasks ADD COLUMN note TEXT;\n",
    )
    .unwrap();
    std::fs::write(
        safe.join("down.sql"),
        "ALTER TABLE tasks DROP COLUMN note;\n",
    )
    .unwrap();
    copy_dir(
        &crate_root()
            .join("tests/fixtures/lint/issue12/unsafe/postgres")
            .join(UNSAFE),
        &pg.join(UNSAFE),
    );
    if fresh_facts {
        common::taskdb_cmd()
            .current_dir(project.path())
            .args(["lint", "--write-facts", "migrations/lint-facts.json"])
            .assert()
            .success();
    }
    project
}

fn tasks_with_rows(rows: u32) -> TestDb {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'u1@example.com', 'x');
         INSERT INTO tasks (user_id, title) SELECT 'u1', 'task ' || g FROM generate_series(1, {rows}) g;
         ANALYZE tasks;"
    ));
    db
}

fn refused_before_touching_the_table(fresh_facts: bool) {
    let project = project_with_issue_12(fresh_facts);
    let db = tasks_with_rows(50_000);
    let before = common::schema_dump(&db);
    assert_eq!(applied(&db), compiled_in(Backend::Postgres));

    let out = taskdb_with(project.path(), &db)
        .arg("migrate")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    for expected in [
        "error: refusing to migrate: 2026-03-01-000001_archive_tasks [index-without-concurrently] holds SHARE on tasks (50.0k rows,",
        "safe recipe: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_title ON tasks (title)",
        "[constraint-without-not-valid] holds ACCESS EXCLUSIVE on tasks (50.0k rows,",
        "CHECK (title <> '') NOT VALID",
        "[add-column-volatile-default]",
        "nothing was applied",
        "now 10000 rows)",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
    // Neither the unsafe step nor the safe one before it ran.
    assert_eq!(common::schema_dump(&db), before);
    assert_eq!(applied(&db), compiled_in(Backend::Postgres));

    taskdb_with(project.path(), &db)
        .args(["migrate", "--dry-run"])
        .assert()
        .success()
        .stdout(contains(
            "-- lint: 2026-03-01-000001_archive_tasks [index-without-concurrently]: holds SHARE on tasks (50.0k rows",
        ))
        .stdout(contains("MB) for a full scan, blocking writes: refused"));

    // `taskdb lint` on the directory, as the project's CI gate runs it.
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["lint", "migrations/postgres"])
        .assert()
        .code(1)
        .stdout(contains("3 error(s)"));
}

#[test]
fn migrate_refuses_the_issue_12_migration_on_a_large_table_and_applies_nothing() {
    refused_before_touching_the_table(false);
}

#[test]
fn the_refusal_works_from_the_directorys_facts_file() {
    refused_before_touching_the_table(true);
}

#[test]
fn migrate_proceeds_on_an_empty_table_and_says_so() {
    let project = project_with_issue_12(false);
    let db = TestDb::migrated(Backend::Postgres);
    taskdb_with(project.path(), &db)
        .arg("migrate")
        .assert()
        .success()
        .stderr(contains(
            "taskdb: lint: 2026-03-01-000001_archive_tasks [index-without-concurrently]: holds SHARE on tasks (0 rows",
        ))
        .stderr(contains(
            "proceeding, the table is at most 10000 rows (--unsafe-threshold",
        ));
    assert_eq!(applied(&db), compiled_in(Backend::Postgres) + 2);
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tasks' AND column_name IN ('note', 'archived_at')"),
        2
    );
}

#[test]
fn a_higher_threshold_lets_it_through() {
    let project = project_with_issue_12(false);
    let db = tasks_with_rows(20_000);
    taskdb_with(project.path(), &db)
        .args(["migrate", "--unsafe-threshold", "100000"])
        .assert()
        .success()
        .stderr(contains("proceeding, the table is at most 100000 rows"));
    assert_eq!(applied(&db), compiled_in(Backend::Postgres) + 2);
}
