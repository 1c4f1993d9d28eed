//! Deploys as operators run them: an app rolled back to its previous build,
//! a rollback racing a migration, a revert cut off half-way, a `tasks`
//! table that belongs to another app, a connection lost mid-step.

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::process::{finish, read_until, signal, spawn_taskdb_at, wait_until, wait_with_limit};
use common::{schema_dump, TestDb};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use predicates::str::contains;
use taskdb::migrate::{self, MigrationState};
use taskdb::Backend;

/// A version newer than every migration in this build, as the next
/// release would have recorded it (Diesel's row and taskdb's ledger row).
const FUTURE_VERSION: &str = "20990101000001";
const FUTURE_NAME: &str = "2099-01-01-000001_next_release_step";

fn record_future_migration(db: &TestDb, version: &str, name: &str) {
    db.execute(&format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');
         INSERT INTO __taskdb_ledger (version, name, checksum, state, execution_ms, applied_by, applied_at)
         VALUES ('{version}', '{name}', 'abc', 'applied', 1, 'taskdb (next release)', CURRENT_TIMESTAMP);"
    ));
}

fn stdout_and_stderr(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

both_backends!(
    a_database_ahead_of_the_build_starts_with_a_warning,
    migrated,
    |db| {
        record_future_migration(&db, FUTURE_VERSION, FUTURE_NAME);

        // The previous build starts: the embedded runner and the CLI both go on.
        let applied = migrate::run_pending(&db.database_url()).expect("run_pending refused");
        assert!(applied.is_empty());
        let out = db.taskdb().arg("migrate").output().unwrap();
        let text = stdout_and_stderr(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("warning"), "{text}");
        assert!(text.contains(FUTURE_NAME), "{text}");
        assert!(text.contains("ahead"), "{text}");

        // status shows it as `ahead`, and the deploy gate still passes.
        let out = db.taskdb().args(["status", "--check"]).output().unwrap();
        let text = stdout_and_stderr(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("ahead") && l.contains(FUTURE_NAME)),
            "{text}"
        );
        let plan = migrate::MigrationPlan::load(&mut db.conn()).unwrap();
        let future = plan
            .entries
            .iter()
            .find(|e| e.version == FUTURE_VERSION)
            .unwrap();
        assert_eq!(future.state, MigrationState::Ahead);
        assert!(plan.blockers().is_empty());
    }
);

both_backends!(a_gap_in_the_middle_still_refuses, migrated, |db| {
    // Older than this build's newest migration, yet unknown to it: not a
    // rolled-back release but a build that lacks a migration.
    let removed = "20260101000000";
    record_future_migration(&db, removed, "2026-01-01-000000_lost_step");
    let before = schema_dump(&db);

    let err = migrate::run_pending(&db.database_url()).unwrap_err();
    match &err {
        taskdb::Error::MigrationsBlocked(blocked) => {
            assert!(
                blocked
                    .iter()
                    .any(|b| b.version == removed && b.reason == taskdb::BlockReason::Missing),
                "{err}"
            );
        }
        other => panic!("expected MigrationsBlocked, got {other:?}"),
    }
    db.taskdb()
        .arg("migrate")
        .assert()
        .code(1)
        .stderr(contains("2026-01-01-000000_lost_step"))
        .stderr(contains("no longer in this taskdb build"));
    db.taskdb().args(["status", "--check"]).assert().code(1);
    assert_eq!(schema_dump(&db), before);
});

/// A writer's open transaction: `CREATE INDEX CONCURRENTLY` on `tasks`
/// waits for it to end.
fn hold_a_write_lock_on_tasks(db: &TestDb) -> PgConnection {
    let mut writer = PgConnection::establish(db.url()).unwrap();
    writer
        .batch_execute("BEGIN; LOCK TABLE tasks IN ROW EXCLUSIVE MODE")
        .unwrap();
    writer
}

/// Backends running a concurrent index build or drop that waits on a lock.
fn concurrent_index_statements_waiting(db: &TestDb) -> i64 {
    db.scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
          AND datname = current_database() \
          AND query ILIKE '%INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
    )
}

/// A database migrated up to the foreign key, and a `migrate` holding the
/// migration lock while its concurrent index build waits for a writer's
/// open transaction (returned: commit it to let the build go on).
fn migrate_waiting_in_its_index_build() -> (TestDb, PgConnection, std::process::Child) {
    let db = TestDb::empty(Backend::Postgres);
    db.taskdb()
        .args(["migrate", "--to", "2026-02-08-000003"])
        .assert()
        .success();
    let writer = hold_a_write_lock_on_tasks(&db);
    let migrate = spawn_taskdb_at(db.url(), &["migrate"]);
    wait_until(
        "migrate waits in its index build",
        Duration::from_secs(30),
        || concurrent_index_statements_waiting(&db) > 0,
    );
    (db, writer, migrate)
}

#[test]
fn rollback_chooses_what_to_revert_under_the_migration_lock() {
    // `migrate` takes the lock and waits in its index build …
    let (db, mut writer, migrate) = migrate_waiting_in_its_index_build();
    // … while a rollback planned against the state before it (the foreign
    // key is the newest migration) waits for the lock.
    let mut rollback = spawn_taskdb_at(db.url(), &["rollback", "--steps", "1", "--yes"]);
    let reader = read_until(&mut rollback, "Waiting for another migrator");
    assert!(
        reader.1.contains("2026-02-08-000003_add_tasks_user_fk"),
        "{}",
        reader.1
    );
    writer.batch_execute("COMMIT").unwrap();

    let migrated = wait_with_limit(migrate, Duration::from_secs(60));
    assert!(
        migrated.status.success(),
        "{}",
        stdout_and_stderr(&migrated)
    );
    let (rolled_back, stdout) = finish(rollback, reader, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&rolled_back.stderr);
    // The plan it showed is no longer the newest migration: it reverts
    // nothing and says why, instead of removing the foreign key from under
    // migrations applied meanwhile.
    assert_eq!(rolled_back.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("changed while"), "{stderr}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_constraint WHERE conname = 'fk_tasks_user_id'"),
        1
    );
    db.taskdb().args(["status", "--check"]).assert().success();
    db.taskdb().arg("verify").assert().success();
}

/// Interrupts `rollback --steps 1` of the concurrent index migration while
/// its `DROP INDEX CONCURRENTLY` waits for a writer: the index is left
/// INVALID on the server.
fn interrupt_a_concurrent_revert(db: &TestDb) {
    db.taskdb()
        .args(["migrate", "--to", INDEX_MIGRATION])
        .assert()
        .success();
    let mut writer = hold_a_write_lock_on_tasks(db);
    let rollback = spawn_taskdb_at(db.url(), &["rollback", "--steps", "1", "--yes"]);
    wait_until(
        "the revert waits in DROP INDEX CONCURRENTLY",
        Duration::from_secs(30),
        || concurrent_index_statements_waiting(db) > 0,
    );
    signal(&rollback, "INT");
    let out = wait_with_limit(rollback, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", stdout_and_stderr(&out));
    writer.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
              WHERE c.relname = 'idx_tasks_user_completed' AND NOT i.indisvalid"
        ),
        1,
        "the cancelled DROP INDEX CONCURRENTLY left the index INVALID"
    );
    // Visible: not `applied`, and the deploy gate fails.
    let status = db.taskdb().args(["status", "--check"]).output().unwrap();
    let text = stdout_and_stderr(&status);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("interrupted") && l.contains(INDEX_MIGRATION)),
        "{text}"
    );
}

const INDEX_MIGRATION: &str = "2026-02-08-000004_index_tasks_user_completed";

#[test]
fn an_interrupted_concurrent_revert_is_finished_by_rollback() {
    let db = TestDb::empty(Backend::Postgres);
    interrupt_a_concurrent_revert(&db);
    db.taskdb()
        .args(["rollback", "--steps", "1", "--yes"])
        .assert()
        .success()
        .stdout(contains(INDEX_MIGRATION));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_class WHERE relname = 'idx_tasks_user_completed'"),
        0
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM __diesel_schema_migrations WHERE version = '20260208000004'"
        ),
        0
    );
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn an_interrupted_concurrent_revert_is_restored_by_migrate() {
    let db = TestDb::empty(Backend::Postgres);
    interrupt_a_concurrent_revert(&db);
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().args(["status", "--check"]).assert().success();
    db.taskdb().arg("verify").assert().success();
}

both_backends!(migrate_leaves_another_apps_tasks_table_alone, empty, |db| {
    // Another app's `tasks`: same name, different shape.
    let id = match db.backend {
        Backend::Postgres => "id SERIAL PRIMARY KEY",
        Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    db.execute(&format!(
        "CREATE TABLE tasks ({id}, name TEXT NOT NULL, due DATE, completed BOOLEAN NOT NULL DEFAULT false);
         INSERT INTO tasks (name, completed) VALUES ('water plants', false);"
    ));
    let before = schema_dump(&db);

    let out = db.taskdb().arg("migrate").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stdout_and_stderr(&out));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in [
        "tasks",
        "user_id",
        "title",
        "extra column name",
        "nothing was changed",
    ] {
        assert!(stderr.contains(needle), "`{needle}` missing from: {stderr}");
    }
    let err = migrate::run_pending(&db.database_url()).unwrap_err();
    assert!(
        matches!(err, taskdb::Error::IncompatibleTable { .. }),
        "{err:?}"
    );
    // Exactly as it was: no tracking tables, no functions, no trigger.
    assert_eq!(schema_dump(&db), before);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 1);
    db.taskdb()
        .args(["migrate", "--dry-run"])
        .assert()
        .code(1)
        .stderr(contains("extra column name"));
});

both_backends!(migrate_adopts_the_apps_own_tasks_table, empty, |db| {
    // The app's table from before user accounts, with its rows.
    let (id, no) = match db.backend {
        Backend::Postgres => ("id SERIAL PRIMARY KEY", "false"),
        Backend::Sqlite => ("id INTEGER PRIMARY KEY AUTOINCREMENT", "0"),
    };
    db.execute(&format!(
        "CREATE TABLE tasks ({id}, user_id VARCHAR(255) NOT NULL, title VARCHAR(255) NOT NULL,
           description TEXT, completed BOOLEAN NOT NULL DEFAULT {no},
           created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);"
    ));
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
});

#[test]
fn a_connection_lost_mid_step_is_named_as_such() {
    let db = TestDb::before_alter();
    // A reader's long transaction: the ALTER TABLE waits for it …
    let mut reader = PgConnection::establish(db.url()).unwrap();
    reader
        .batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS SHARE MODE")
        .unwrap();
    let child = spawn_taskdb_at(db.url(), &["migrate", "--lock-timeout", "60s"]);
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                   AND datname = current_database() AND wait_event_type = 'Lock'";
    wait_until(
        "the step waits for its lock",
        Duration::from_secs(30),
        || db.scalar(waiting) > 0,
    );
    // … when the server ends its session (a restart, a failover, an admin).
    db.scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE pid <> pg_backend_pid() AND datname = current_database() \
            AND wait_event_type = 'Lock') AS t",
    );
    let out = wait_with_limit(child, Duration::from_secs(30));
    reader.batch_execute("ROLLBACK").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stdout_and_stderr(&out));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("lost the connection to the server"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2026-02-08-000011_utc_timestamp_defaults"),
        "{stderr}"
    );
    assert!(stderr.contains("taskdb migrate"), "{stderr}");
    assert!(!stderr.contains(" : "), "a message repeated: {stderr}");
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn status_calls_a_build_in_progress_running_not_interrupted() {
    let (db, mut writer, migrate) = migrate_waiting_in_its_index_build();
    let out = db.taskdb().arg("status").output().unwrap();
    let text = stdout_and_stderr(&out);
    let line = text
        .lines()
        .find(|l| l.contains(INDEX_MIGRATION))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("running"), "{text}");
    assert!(!line.contains("interrupted"), "{text}");
    writer.batch_execute("COMMIT").unwrap();
    let out = wait_with_limit(migrate, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stdout_and_stderr(&out));
}
