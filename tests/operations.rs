//! Deploys as operators run them: an app rolled back to its previous build,
//! a rollback racing a migration, a revert cut off half-way, a `tasks`
//! table that belongs to another app, a connection lost mid-step.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{schema_dump, TestDb};
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

both_backends!(a_database_ahead_of_the_build_starts_with_a_warning, migrated, |db| {
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
    let future = plan.entries.iter().find(|e| e.version == FUTURE_VERSION).unwrap();
    assert_eq!(future.state, MigrationState::Ahead);
    assert!(plan.blockers().is_empty());
});

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
                    .any(|b| b.version == removed && b.state == MigrationState::Missing),
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
