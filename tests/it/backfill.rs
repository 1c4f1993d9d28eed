//! Backfill migrations (`taskdb new --backfill`): the files written for
//! both backends lint clean; on PostgreSQL `taskdb migrate` runs the
//! `UPDATE` in batches in key order and records it done, and after a
//! `kill -9` part-way a second run resumes from the saved key and ends
//! with the table one `UPDATE` gives; Ctrl-C stops it between batches
//! and a rerun resumes (a lagging standby: tests/replicas); SQLite runs it as one `UPDATE`.
//! Migrations are read from a copy of `migrations/` (`--migrations-dir`).

use crate::common;

use std::time::Duration;

use common::backfill::{
    assert_filled, checksum, ledger_progress, migrate_args, migration_dir, project_with_backfill,
    version_of, with_tasks, PREDICATE, SET,
};
use common::process::{finish, read_until, signal, spawn_taskdb_at, wait_until, wait_with_limit};
use diesel::connection::SimpleConnection;
use predicates::str::contains;
use taskdb::Backend;

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
fn postgres_runs_a_backfill_in_batches_and_records_it_done() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 50_000);
    // A ledger from before backfills: migrate adds their columns.
    db.execute("ALTER TABLE __taskdb_ledger DROP COLUMN IF EXISTS backfill_key, DROP COLUMN IF EXISTS backfill_rows");
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("_fill_tasks_priority"))
        .stdout(contains("batch of"));
    assert_filled(&db);
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), 50_000))
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM __diesel_schema_migrations WHERE version = '{version}'"
        )),
        1
    );
    // Nothing left to do.
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success();
}

#[test]
fn a_killed_backfill_resumes_and_ends_as_one_update_would() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let rows = 300_000;
    let db = with_tasks(Backend::Postgres, rows);
    // The same table, changed by one UPDATE.
    db.execute(&format!(
        "CREATE TABLE tasks_expected AS SELECT id, completed FROM tasks;
         ALTER TABLE tasks_expected ADD COLUMN priority integer;
         UPDATE tasks_expected SET {SET} WHERE {PREDICATE};"
    ));

    // Short batches, so that there are many to stop between.
    let mut args = migrate_args(project.path());
    args.extend(["--backfill-batch-time".into(), "10ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn_taskdb_at(db.url(), &args);
    wait_until("a batch is saved", Duration::from_secs(60), || {
        ledger_progress(&db, &version).is_some_and(|(_, done)| done > 0)
    });
    signal(&child, "KILL");
    wait_with_limit(child, Duration::from_secs(10));
    let (state, done) = ledger_progress(&db, &version).unwrap();
    assert_eq!(
        state, "running",
        "the backfill finished before it could be killed"
    );
    assert!(done < i64::from(rows), "{done}");
    // Once the server has ended the killed run's session, status says how
    // far it got.
    wait_until(
        "the killed run's session ends",
        Duration::from_secs(30),
        || {
            db.scalar(
                "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'taskdb-migrate-%'",
            ) == 0
        },
    );
    db.taskdb()
        .args([
            "--migrations-dir",
            &project.path().join("migrations").display().to_string(),
            "status",
        ])
        .assert()
        .success()
        .stdout(contains(format!("backfill rows {done}/")))
        .stdout(contains("the next migrate resumes it there"));

    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("resuming the backfill"));
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), i64::from(rows)))
    );
    assert_eq!(checksum(&db, "tasks"), checksum(&db, "tasks_expected"));
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
    assert_filled(&db);
}

#[test]
fn ctrl_c_stops_a_backfill_between_batches_saying_what_is_done() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let rows = 300_000;
    let db = with_tasks(Backend::Postgres, rows);
    let mut args = migrate_args(project.path());
    args.extend(["--backfill-batch-time".into(), "10ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn_taskdb_at(db.url(), &args);
    wait_until("a batch is saved", Duration::from_secs(60), || {
        ledger_progress(&db, &version).is_some_and(|(_, done)| done > 0)
    });
    signal(&child, "INT");
    let out = wait_with_limit(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("are done and saved"), "{stderr}");
    let (state, done) = ledger_progress(&db, &version).unwrap();
    assert_eq!(state, "running");
    assert!(done > 0 && done < i64::from(rows), "{done}");

    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("resuming the backfill"));
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), i64::from(rows)))
    );
}

#[test]
fn a_batch_that_waits_on_a_row_lock_rolls_back_and_retries_under_the_lock_timeout() {
    let project = project_with_backfill();
    let add_column = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_add_tasks_priority",
    ));
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 5_000);
    let mut to = migrate_args(project.path());
    to.extend(["--to".into(), add_column]);
    db.taskdb().args(&to).assert().success();

    // The app holds a row of the first batch.
    let mut app = db.conn();
    app.batch_execute("BEGIN; SELECT id FROM tasks WHERE id = 10 FOR UPDATE")
        .unwrap();
    let mut args = migrate_args(project.path());
    args.extend(["--lock-timeout".into(), "50ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn_taskdb_at(db.url(), &args);
    let reader = read_until(&mut child, "waited too long");
    assert_eq!(
        ledger_progress(&db, &version).map(|(_, done)| done),
        Some(0)
    );
    app.batch_execute("COMMIT").unwrap();
    let (out, stdout) = finish(child, reader, Duration::from_secs(60));
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), 5_000))
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE NOT completed AND priority IS NULL"),
        0
    );
}
