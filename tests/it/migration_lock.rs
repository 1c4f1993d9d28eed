//! The migration lock holds for the whole run whatever session limits the
//! database or the role sets (`idle_in_transaction_session_timeout`,
//! `statement_timeout`, `idle_session_timeout`, `lock_timeout`), directly
//! and through PgBouncer in transaction mode; and a run whose lock is lost
//! anyway stops before its next step and says so.
//!
//! A step is made slow by a long transaction reading `tasks`: the next
//! migration ALTERs it, so it waits, retrying on the lock timeout, until
//! that transaction ends.

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::pgbouncer::PgBouncer;
use common::process::{spawn_taskdb_at, wait_until, wait_with_limit};
use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// How long the long transaction holds up the next step: well past the
/// one-second session limits below.
const HELD: Duration = Duration::from_millis(2500);

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A transaction reading `tasks` on a connection of the test's own, which
/// opts out of the database's session limits so it can stay open.
fn long_reader(db: &TestDb) -> PgConnection {
    let mut conn = PgConnection::establish(db.url()).unwrap();
    conn.batch_execute(
        "SET idle_in_transaction_session_timeout = 0; SET idle_session_timeout = 0;
         SET statement_timeout = 0; BEGIN; SELECT COUNT(*) FROM tasks",
    )
    .unwrap();
    conn
}

/// Two `taskdb migrate` started 1.5 s apart while the long transaction
/// holds up the first one's next step.
fn two_migrators(db: &TestDb, url: &str) -> (Output, Output) {
    let mut long = long_reader(db);
    let first = spawn_taskdb_at(url, &["migrate", "--lock-timeout", "50ms"]);
    std::thread::sleep(Duration::from_millis(1500));
    let second = spawn_taskdb_at(url, &["migrate", "--lock-timeout", "50ms"]);
    std::thread::sleep(HELD - Duration::from_millis(1500));
    long.batch_execute("ROLLBACK").unwrap();
    let first = wait_with_limit(first, Duration::from_secs(60));
    let second = wait_with_limit(second, Duration::from_secs(60));
    (first, second)
}

/// Both succeed; the first applies the rest, the second waited for it
/// and found nothing left to do.
fn check_one_after_the_other(first: Output, second: Output) {
    let (first, second) = (output_text(&first), output_text(&second));
    assert!(
        first.contains("✓ 2026-02-08-000011"),
        "first:\n{first}\nsecond:\n{second}"
    );
    assert!(
        second.contains("Waiting for another migrator"),
        "the second migrator must wait for the first one's lock:\nfirst:\n{first}\nsecond:\n{second}"
    );
    assert!(!second.contains("✓ 2026-02-08-0000"), "second:\n{second}");
}

fn alter_database(db: &TestDb, settings: &str) {
    let name = db.pg_name().unwrap();
    common::admin()
        .batch_execute(&format!("ALTER DATABASE {name} SET {settings}"))
        .unwrap();
}

#[test]
fn the_lock_holds_under_idle_in_transaction_session_timeout() {
    let db = TestDb::before_alter();
    alter_database(&db, "idle_in_transaction_session_timeout = '1s'");
    let (first, second) = two_migrators(&db, db.url());
    assert!(first.status.success(), "{}", output_text(&first));
    assert!(second.status.success(), "{}", output_text(&second));
    check_one_after_the_other(first, second);
}

#[test]
fn the_lock_holds_under_the_roles_session_limits() {
    let db = TestDb::before_alter();
    let name = db.pg_name().unwrap();
    let mut admin = common::admin();
    for setting in [
        "idle_in_transaction_session_timeout = '1s'",
        "idle_session_timeout = '1s'",
        "statement_timeout = '1s'",
        "lock_timeout = '1s'",
    ] {
        // Dropped with the database.
        admin
            .batch_execute(&format!(
                "ALTER ROLE postgres IN DATABASE {name} SET {setting}"
            ))
            .unwrap();
    }
    let (first, second) = two_migrators(&db, db.url());
    assert!(first.status.success(), "{}", output_text(&first));
    assert!(second.status.success(), "{}", output_text(&second));
    check_one_after_the_other(first, second);
}

#[test]
fn the_lock_holds_under_idle_in_transaction_session_timeout_through_pgbouncer() {
    let db = TestDb::before_alter();
    alter_database(&db, "idle_in_transaction_session_timeout = '1s'");
    let bouncer = PgBouncer::start("transaction");
    let (first, second) = two_migrators(&db, &db.url_via(Some(&bouncer)));
    assert!(first.status.success(), "{}", output_text(&first));
    assert!(second.status.success(), "{}", output_text(&second));
    check_one_after_the_other(first, second);
}

#[test]
fn a_lost_lock_stops_the_run_before_the_next_step() {
    let db = TestDb::before_alter();
    let name = db.pg_name().unwrap().to_string();
    let mut long = long_reader(&db);
    let child = spawn_taskdb_at(db.url(), &["migrate", "--lock-timeout", "50ms"]);
    // The backend holding the lock, once it does.
    let holder = || {
        db.rows(&format!(
            "SELECT l.pid::text AS line FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE l.locktype = 'advisory' AND l.granted AND d.datname = '{name}'"
        ))
    };
    wait_until(
        "taskdb holds the migration lock",
        Duration::from_secs(30),
        || !holder().is_empty(),
    );
    let pid = holder().remove(0);
    // As a server restart of that backend, or a DBA, would.
    db.execute(&format!("SELECT pg_terminate_backend({pid})"));
    long.batch_execute("ROLLBACK").unwrap();
    let out = wait_with_limit(child, Duration::from_secs(60));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("lost the migration lock"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // It stopped before the step after the one under way.
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM __diesel_schema_migrations WHERE version = '20260208000012'"
        ),
        0,
        "{text}"
    );
}
