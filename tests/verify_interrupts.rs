//! `verify` builds its expected schema in a scratch database
//! `taskdb_verify_<random>`: a Ctrl-C drops it and says so, and one left
//! by a killed `verify` is dropped by the next, while one that a running
//! `verify` still uses is left alone.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use taskdb::db::{self, AnyConnection, DatabaseUrl};
use taskdb::Backend;

fn spawn_verify(db: &TestDb) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
        .current_dir(std::env::temp_dir())
        .env_remove("DATABASE_URL")
        .env_remove("DIRECT_DATABASE_URL")
        .args(["--database-url", db.url(), "verify"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("taskdb did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
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
            signal(pid, "STOP");
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

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_while_verify_builds_its_scratch_database_drops_it_and_says_so() {
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let pid = child.id();
    let scratch = stop_inside_scratch_phase(&child);
    assert!(database_exists(&scratch));
    // Delivered when the process runs again, inside the scratch phase.
    signal(pid, "INT");
    signal(pid, "CONT");
    let out = wait_with_limit(child, Duration::from_secs(20));
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
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let pid = child.id();
    let scratch = stop_inside_scratch_phase(&child);
    signal(pid, "TERM");
    signal(pid, "CONT");
    let out = wait_with_limit(child, Duration::from_secs(20));
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
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let pid = child.id();
    let scratch = stop_inside_scratch_phase(&child);
    signal(pid, "KILL");
    let _ = wait_with_limit(child, Duration::from_secs(10));
    assert!(database_exists(&scratch), "kill -9 leaves it behind");
    // The server notices the dead client's connections and ends them.
    let live = db.pg_name().unwrap().to_string();
    wait_until(
        "the killed verify's backends are gone",
        Duration::from_secs(20),
        || {
            count(
                &mut admin(),
                &format!(
                    "SELECT pid::text AS line FROM pg_stat_activity \
                      WHERE datname IN ('{live}', '{scratch}') AND pid <> pg_backend_pid()"
                ),
            ) == 0
        },
    );
    let other = TestDb::migrated(Backend::Postgres);
    other.taskdb().arg("verify").assert().success();
    assert!(!database_exists(&scratch), "{scratch} was not swept");
}

#[test]
fn a_running_verifys_scratch_database_is_left_alone_by_another_verify() {
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let pid = child.id();
    let scratch = stop_inside_scratch_phase(&child);
    let other = TestDb::migrated(Backend::Postgres);
    other.taskdb().arg("verify").assert().success();
    assert!(
        database_exists(&scratch),
        "a running verify's scratch database was dropped"
    );
    signal(pid, "CONT");
    let out = wait_with_limit(child, Duration::from_secs(20));
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
    let db = TestDb::migrated(Backend::Postgres);
    let child = spawn_verify(&db);
    let pid = child.id();
    let scratch = stop_inside_scratch_phase(&child);
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
        || {
            count(
                &mut admin,
                &format!(
                    "SELECT pid::text AS line FROM pg_stat_activity WHERE datname = '{scratch}'"
                ),
            ) == 0
        },
    );
    let other = TestDb::migrated(Backend::Postgres);
    other.taskdb().arg("verify").assert().success();
    assert!(
        database_exists(&scratch),
        "a running verify's scratch database was dropped"
    );
    // Its connection was cut, so it fails; it still drops its database.
    signal(pid, "CONT");
    let out = wait_with_limit(child, Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!database_exists(&scratch), "{scratch} was left behind");
}
