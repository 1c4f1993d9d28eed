//! Ctrl-C, SIGTERM and `kill -9` during `taskdb migrate`, and an index
//! build that failed part-way: the next run always finishes the job.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pgbouncer::PgBouncer;
use common::process::{
    read_until, signal, signal_pid, spawn_taskdb_at, wait_until, wait_with_limit,
};
use common::{schema_dump, TestDb, WithoutTaskdbEnv};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use taskdb::Backend;

const ALTER_VERSION: &str = "20260208000011";

fn spawn_taskdb(db: &TestDb, args: &[&str]) -> Child {
    spawn_taskdb_at(db.url(), args)
}

/// The last migration before the concurrent index build.
const BEFORE_INDEX: &str = "2026-02-08-000003";
/// The migration that builds idx_tasks_user_completed CONCURRENTLY (a later
/// one replaces that index, so these tests migrate up to this one, check
/// the index, then finish).
const INDEX_MIGRATION: &str = "2026-02-08-000004";

/// A PostgreSQL database migrated up to the concurrent index build, with
/// enough tasks that the build is still running when a signal arrives.
fn before_a_long_index_build() -> TestDb {
    let db = TestDb::migrated_to(Backend::Postgres, BEFORE_INDEX);
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         INSERT INTO tasks (user_id, title, completed)
           SELECT 'u1', 'task ' || n, n % 2 = 0 FROM generate_series(1, 300000) n;",
    );
    db
}

/// How many indexes named `idx_tasks_user_completed` match `condition`
/// (on `pg_index i`).
fn user_completed_indexes(db: &TestDb, condition: &str) -> i64 {
    db.scalar(&format!(
        "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
          WHERE c.relname = 'idx_tasks_user_completed' AND {condition}"
    ))
}

/// Backends of the taskdb process `pid` waiting on a lock.
fn blocked_backends(db: &TestDb, pid: u32) -> i64 {
    db.scalar(&format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name LIKE 'taskdb-migrate-{pid}-%' \
          AND wait_event_type = 'Lock'"
    ))
}

fn interrupted_while_blocked(signal_name: &str, expected_code: i32, bouncer: Option<&PgBouncer>) {
    let db = TestDb::before_alter();
    let url = db.url_via(bouncer);
    let before = schema_dump(&db);
    // A reader's long transaction: the ALTER TABLE has to wait for it.
    let mut reader = PgConnection::establish(db.url()).unwrap();
    reader
        .batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS SHARE MODE")
        .unwrap();
    let child = spawn_taskdb_at(&url, &["migrate", "--lock-timeout", "60s"]);
    let pid = child.id();
    wait_until(
        "the migration waits on the lock",
        Duration::from_secs(20),
        || blocked_backends(&db, pid) > 0,
    );
    signal(&child, signal_name);
    let out = wait_with_limit(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expected_code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: interrupted"), "{stderr}");
    // The blocked statement was cancelled on the server, not left queued
    // while the reader still holds its lock.
    assert_eq!(blocked_backends(&db, pid), 0);
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM __diesel_schema_migrations WHERE version >= '{ALTER_VERSION}'"
        )),
        0,
        "the interrupted migration was rolled back"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM __taskdb_ledger WHERE version >= '{ALTER_VERSION}'"
        )),
        0
    );
    assert_eq!(schema_dump(&db), before);
    reader.batch_execute("ROLLBACK").unwrap();
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn sigint_while_blocked_on_a_lock_rolls_back_and_exits_130() {
    interrupted_while_blocked("INT", 130, None);
}

#[test]
fn sigterm_while_blocked_on_a_lock_rolls_back_and_exits_143() {
    interrupted_while_blocked("TERM", 143, None);
}

#[test]
fn sigint_through_pgbouncer_cancels_the_blocked_statement_too() {
    // The cancelling connection finds the blocked one by backend PID, start
    // time and application_name (which PgBouncer passes on to the server
    // connection it assigns).
    let bouncer = PgBouncer::start("transaction");
    interrupted_while_blocked("INT", 130, Some(&bouncer));
}

#[test]
fn sigint_while_waiting_for_another_migrator_changes_nothing() {
    let db = TestDb::empty(Backend::Postgres);
    // Another migrator holds the migration lock.
    let mut other = PgConnection::establish(db.url()).unwrap();
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({})",
            taskdb::migrate::ADVISORY_LOCK_KEY
        ))
        .unwrap();
    let mut child = spawn_taskdb(&db, &["migrate"]);
    // Wait for its "waiting" line before interrupting.
    let _reader = read_until(&mut child, "Waiting for another migrator");
    signal(&child, "INT");
    let out = wait_with_limit(child, Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "nothing was created"
    );
}

#[test]
fn sigint_while_sqlite_waits_for_a_writer_stops_and_keeps_nothing() {
    let db = TestDb::empty(Backend::Sqlite);
    // Another writer holds the file's write lock, so the first migration
    // waits in SQLite's busy handler.
    let mut writer = db.conn();
    writer.batch_execute("BEGIN IMMEDIATE").unwrap();
    let mut child = spawn_taskdb(&db, &["migrate"]);
    let _reader = read_until(&mut child, "pending migration");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    // Far sooner than the 30 s busy timeout.
    let out = wait_with_limit(child, Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: interrupted"));
    writer.batch_execute("ROLLBACK").unwrap();
    assert!(!schema_dump(&db).iter().any(|l| l.contains("table tasks")));
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn sigint_outside_a_migration_stops_at_once() {
    // Waiting for an unreachable server (--wait): nothing to roll back.
    let port = common::unused_port();
    let mut child = spawn_taskdb_at(
        &format!("postgres://u@127.0.0.1:{port}/db"),
        &["--wait", "60s", "status"],
    );
    // The first line comes after the handler is installed.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 9];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"database:");
    signal(&child, "INT");
    let out = wait_with_limit(child, Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: interrupted"));
}

/// A pseudo-random number below `bound` (no rand dependency needed).
fn random_below(bound: u64) -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) % bound.max(1)
}

#[test]
fn kill_9_at_any_moment_then_a_rerun_completes_and_verifies() {
    // Kill while migration k runs: k spread over the run, including the
    // concurrent index builds (no transaction) and the FK steps, each
    // after a random 0-4 ms into the step.
    let total = taskdb::migrate::migrations(Backend::Postgres).len();
    for k in [1, 3, 4, 5, 8, 9, 11, total] {
        let db = TestDb::empty(Backend::Postgres);
        let mut child = spawn_taskdb(&db, &["migrate"]);
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut started = 0;
        for line in std::io::BufRead::lines(stdout) {
            if line.unwrap().starts_with('→') {
                started += 1;
                if started == k {
                    break;
                }
            }
        }
        let after = random_below(5);
        std::thread::sleep(Duration::from_millis(after));
        signal(&child, "KILL");
        let _ = wait_with_limit(child, Duration::from_secs(10));
        let rerun = db.taskdb().arg("migrate").assert().success();
        let stdout = String::from_utf8_lossy(&rerun.get_output().stdout).into_owned();
        db.taskdb().arg("verify").assert().success();
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations"),
            total as i64,
            "killed {after} ms into migration {k}; rerun said: {stdout}"
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM __taskdb_ledger WHERE state = 'applied'"),
            total as i64
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid"),
            0,
            "no INVALID index after killing in migration {k}"
        );
        eprintln!(
            "killed {after} ms into migration {k}; the rerun applied: {}",
            stdout.lines().filter(|l| l.starts_with('✓')).count()
        );
    }
}

#[test]
fn kill_9_during_a_concurrent_index_build_then_rerun_waits_or_rebuilds() {
    signal_during_index_build("KILL", None);
}

#[test]
fn sigint_during_a_concurrent_index_build_needs_no_repair() {
    // The build is cancelled on the server (leaving an INVALID index); the
    // step stays marked running, not dirty, so a plain rerun rebuilds it.
    signal_during_index_build("INT", Some(130));
}

fn signal_during_index_build(signal_name: &str, expected_code: Option<i32>) {
    let db = before_a_long_index_build();
    let child = spawn_taskdb(&db, &["migrate", "--to", INDEX_MIGRATION]);
    let pid = child.id();
    wait_until("the index build runs", Duration::from_secs(20), || {
        db.scalar(&format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name LIKE 'taskdb-migrate-{pid}-%' \
              AND query ILIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'"
        )) > 0
    });
    signal(&child, signal_name);
    let out = wait_with_limit(child, Duration::from_secs(10));
    if let Some(code) = expected_code {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The server may still be building: the rerun must wait for that build
    // or rebuild what it left INVALID, never take it as done.
    let rerun = db
        .taskdb()
        .args(["migrate", "--to", INDEX_MIGRATION])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&rerun.get_output().stdout).into_owned();
    eprintln!("{stdout}");
    assert_eq!(user_completed_indexes(&db, "i.indisvalid"), 1, "{stdout}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn an_invalid_index_from_a_failed_build_is_rebuilt_not_taken_as_done() {
    let db = TestDb::migrated_to(Backend::Postgres, BEFORE_INDEX);
    // Duplicate rows make a UNIQUE concurrent build under the migration's
    // index name fail, leaving an INVALID index with that name behind.
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         INSERT INTO tasks (user_id, title) VALUES ('u1', 'one'), ('u1', 'two');",
    );
    let failed = db.conn().batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY idx_tasks_user_completed ON tasks (user_id, completed)",
    );
    assert!(failed.is_err());
    assert_eq!(user_completed_indexes(&db, "NOT i.indisvalid"), 1);
    db.taskdb()
        .args(["migrate", "--to", INDEX_MIGRATION])
        .assert()
        .success()
        .stdout(predicates::str::contains("INVALID"));
    assert_eq!(
        user_completed_indexes(&db, "i.indisvalid AND NOT i.indisunique"),
        1,
        "rebuilt as the migration defines it"
    );
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}

/// `taskdb` in a PID namespace of its own, where it is PID 1 like a
/// replica in a container. Returns the `unshare` process; signal the
/// taskdb inside it with [`namespaced_taskdb_pid`].
fn spawn_taskdb_as_pid_1(db: &TestDb, args: &[&str]) -> Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(assert_cmd::cargo::cargo_bin("taskdb"))
        .current_dir(std::env::temp_dir())
        .without_taskdb_env()
        .args(["--database-url", db.url()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The taskdb process `unshare` forked (its PID outside the namespace):
/// unshare does not pass SIGTERM on to its child.
fn namespaced_taskdb_pid(unshare: &Child) -> u32 {
    let pid = unshare.id();
    let mut children = String::new();
    wait_until("unshare forks taskdb", Duration::from_secs(5), || {
        children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        !children.trim().is_empty()
    });
    children.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn sigterm_to_a_replica_waiting_for_the_lock_leaves_the_same_pid_replicas_index_build_alone() {
    let db = before_a_long_index_build();
    let name = db.pg_name().unwrap().to_string();
    let building = || {
        db.scalar(&format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' \
              AND query ILIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'"
        ))
    };
    // Replica A builds the index, replica B waits for the migration lock;
    // both are PID 1 in their own namespaces.
    let active = spawn_taskdb_as_pid_1(&db, &["migrate", "--to", INDEX_MIGRATION]);
    wait_until(
        "replica A builds the index",
        Duration::from_secs(20),
        || building() > 0,
    );
    let mut waiting = spawn_taskdb_as_pid_1(&db, &["migrate", "--to", INDEX_MIGRATION]);
    let _reader = read_until(&mut waiting, "Waiting for another migrator");
    assert!(
        building() > 0,
        "the build finished before the test could signal"
    );
    signal_pid(namespaced_taskdb_pid(&waiting), "TERM");
    let waited = wait_with_limit(waiting, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(waited.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("waiting for another migrator's lock, so no migration was in progress"),
        "{stderr}"
    );
    let finished = wait_with_limit(active, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&finished.stdout);
    assert!(
        finished.status.success(),
        "replica A failed: {}{stdout}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert_eq!(user_completed_indexes(&db, "i.indisvalid"), 1, "{stdout}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __taskdb_ledger WHERE state <> 'applied'"),
        0,
        "nothing is dirty or left running"
    );
    db.taskdb().arg("migrate").assert().success();
    db.taskdb().arg("verify").assert().success();
}
