//! `verify` builds its expected schema in a scratch database
//! `taskdb_verify_<random>`: a Ctrl-C drops it and says so, and one left
//! by a killed `verify` is dropped by the next, while one that a running
//! `verify` still uses is left alone.

use crate::common;

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::process::{signal_pid, spawn_taskdb_at, wait_until, wait_with_limit};
use common::TestDb;
use taskdb::db::{self, AnyConnection, DatabaseUrl};
use taskdb::Backend;

fn spawn_verify(db: &TestDb) -> Child {
    spawn_taskdb_at(db.url(), &["verify"])
}

fn admin() -> AnyConnection {
    db::connect(&DatabaseUrl::parse(&common::admin_url()).unwrap()).unwrap()
}

fn count(conn: &mut AnyConnection, sql: &str) -> usize {
    common::query_lines(conn, sql).len()
}

/// The scratch database the `verify` process `pid` migrates, found by its
/// migration connections (so other tests' scratch databases never count);
/// the process is stopped (SIGSTOP) as soon as it is seen, so the test
/// acts while the scratch database exists.
fn stop_inside_scratch_phase(child: &Child) -> String {
    let pid = child.id();
    let mut admin = admin();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = common::query_lines(
            &mut admin,
            &format!(
                "SELECT datname AS line FROM pg_stat_activity \
                  WHERE application_name LIKE 'taskdb-migrate-{pid}-%' \
                    AND datname LIKE 'taskdb\\_verify\\_%' LIMIT 1"
            ),
        );
        if let Some(name) = found.into_iter().next() {
            signal_pid(pid, "STOP");
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "verify never migrated a scratch database"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn database_exists(name: &str) -> bool {
    count(
        &mut admin(),
        &format!("SELECT datname AS line FROM pg_database WHERE datname = '{name}'"),
    ) == 1
}

/// A `verify` of a migrated PostgreSQL database, stopped while its scratch
/// database exists.
struct StoppedVerify {
    /// The live database: bound to the end of each test (even as `_db`),
    /// since dropping it drops the database under the stopped `verify`.
    db: TestDb,
    child: Child,
    scratch: String,
}

fn verify_stopped_in_scratch_phase() -> StoppedVerify {
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let scratch = stop_inside_scratch_phase(&child);
    StoppedVerify { db, child, scratch }
}

/// Backends connected to any of `databases` other than the caller's own.
fn backends_on(admin: &mut AnyConnection, databases: &[&str]) -> usize {
    let names = databases
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    count(
        admin,
        &format!(
            "SELECT pid::text AS line FROM pg_stat_activity \
              WHERE datname IN ({names}) AND pid <> pg_backend_pid()"
        ),
    )
}

/// A `verify` of another migrated database, which must succeed.
fn another_verify_succeeds() {
    let other = TestDb::migrated(Backend::Postgres);
    other.taskdb().arg("verify").assert().success();
}

/// Another `verify` succeeds and leaves the stopped one's `scratch` alone.
fn another_verify_leaves_alone(scratch: &str) {
    another_verify_succeeds();
    assert!(
        database_exists(scratch),
        "a running verify's scratch database was dropped"
    );
}

/// Lets the stopped `verify` run on (and take what signal is pending) and
/// waits for it to exit.
fn continue_until_exit(child: Child) -> Output {
    signal_pid(child.id(), "CONT");
    wait_with_limit(child, Duration::from_secs(20))
}

#[test]
fn sigint_while_verify_builds_its_scratch_database_drops_it_and_says_so() {
    let StoppedVerify { db, child, scratch } = verify_stopped_in_scratch_phase();
    assert!(database_exists(&scratch));
    // Delivered when the process runs again, inside the scratch phase.
    signal_pid(child.id(), "INT");
    let out = continue_until_exit(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: interrupted by SIGINT"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("scratch database {scratch} was dropped")),
        "{stderr}"
    );
    assert!(!stderr.contains("migration"), "no migration ran: {stderr}");
    assert!(!database_exists(&scratch), "{scratch} was left behind");
    // The live database was not touched.
    db.taskdb().arg("verify").assert().success();
}

#[test]
fn sigterm_while_verify_builds_its_scratch_database_exits_143_and_drops_it() {
    let StoppedVerify {
        db: _db,
        child,
        scratch,
    } = verify_stopped_in_scratch_phase();
    signal_pid(child.id(), "TERM");
    let out = continue_until_exit(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.starts_with("error: interrupted by SIGTERM"),
        "{stderr}"
    );
    assert!(!database_exists(&scratch), "{scratch} was left behind");
}

#[test]
fn a_killed_verifys_scratch_database_is_dropped_by_the_next_verify() {
    let StoppedVerify { db, child, scratch } = verify_stopped_in_scratch_phase();
    signal_pid(child.id(), "KILL");
    let _ = wait_with_limit(child, Duration::from_secs(10));
    assert!(database_exists(&scratch), "kill -9 leaves it behind");
    // The server notices the dead client's connections and ends them.
    let live = db.pg_name().unwrap().to_string();
    wait_until(
        "the killed verify's backends are gone",
        Duration::from_secs(20),
        || backends_on(&mut admin(), &[&live, &scratch]) == 0,
    );
    another_verify_succeeds();
    assert!(!database_exists(&scratch), "{scratch} was not swept");
}

#[test]
fn a_running_verifys_scratch_database_is_left_alone_by_another_verify() {
    let StoppedVerify {
        db: _db,
        child,
        scratch,
    } = verify_stopped_in_scratch_phase();
    another_verify_leaves_alone(&scratch);
    let out = continue_until_exit(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!database_exists(&scratch));
}

#[test]
fn a_running_verifys_scratch_database_with_no_connection_open_is_left_alone() {
    // Between its steps a verify may have no connection to its scratch
    // database at all: what marks it in use is held on its live database.
    let StoppedVerify {
        db: _db,
        child,
        scratch,
    } = verify_stopped_in_scratch_phase();
    let mut admin = admin();
    common::query_lines(
        &mut admin,
        &format!(
            "SELECT pg_terminate_backend(pid)::text AS line FROM pg_stat_activity \
              WHERE datname = '{scratch}'"
        ),
    );
    wait_until(
        "its scratch connections are gone",
        Duration::from_secs(10),
        || backends_on(&mut admin, &[&scratch]) == 0,
    );
    another_verify_leaves_alone(&scratch);
    // Its connection was cut, so it fails; it still drops its database.
    let out = continue_until_exit(child);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!database_exists(&scratch), "{scratch} was left behind");
}
