//! Errors say what happened: a SQLite write lock held too long, a full disk
//! during `seed demo`, a value longer than its column. One `error: …` line
//! each, naming the cause, never the driver's bare or doubled text.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestDb, WithoutTaskdbEnv};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

use taskdb::seed::{self, DemoOptions};
use taskdb::Backend;

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// Another process's write transaction on the SQLite file of `db`, open
/// until the returned connection is dropped.
fn hold_write_lock(db: &TestDb) -> SqliteConnection {
    let path = db.sqlite_path().unwrap().to_str().unwrap().to_string();
    let mut holder = SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    holder
}

/// A migrated SQLite database whose write lock another process holds until
/// the returned connection is dropped.
fn sqlite_with_its_write_lock_held() -> (TestDb, SqliteConnection) {
    let db = TestDb::migrated(Backend::Sqlite);
    let holder = hold_write_lock(&db);
    (db, holder)
}

/// The binary on `db` with `TASKDB_SQLITE_BUSY_TIMEOUT=timeout`.
fn taskdb_with_busy_timeout(db: &TestDb, timeout: &str) -> assert_cmd::Command {
    let mut cmd = db.taskdb();
    cmd.env("TASKDB_SQLITE_BUSY_TIMEOUT", timeout);
    cmd
}

#[test]
fn a_held_sqlite_lock_says_how_long_it_waited() {
    let (db, _holder) = sqlite_with_its_write_lock_held();
    let started = Instant::now();
    let out = taskdb_with_busy_timeout(&db, "700ms")
        .arg("seed")
        .assert()
        .failure()
        .code(1);
    let waited = started.elapsed();
    let stderr = stderr_of(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: the SQLite database is locked by another process"),
        "{stderr}"
    );
    assert!(stderr.contains("(waited 700 ms)"), "{stderr}");
    assert!(stderr.contains("TASKDB_SQLITE_BUSY_TIMEOUT"), "{stderr}");
    assert!(
        !stderr.contains("database is locked: database is locked"),
        "{stderr}"
    );
    // It did wait, for the configured time and not the default 30 s.
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
}

#[test]
fn the_wait_ends_in_success_when_the_lock_is_released_in_time() {
    let (db, holder) = sqlite_with_its_write_lock_held();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(holder);
    });
    taskdb_with_busy_timeout(&db, "20s")
        .arg("seed")
        .assert()
        .success();
    release.join().unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 1);
}

#[test]
fn a_bad_busy_timeout_is_a_usage_error() {
    let db = TestDb::migrated(Backend::Sqlite);
    let out = taskdb_with_busy_timeout(&db, "soon")
        .arg("status")
        .assert()
        .failure()
        .code(2);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("soon"), "{stderr}");
}

/// A database error's text appears once in the one-line error, not twice
/// (`x: x`): the message and its cause chain are not both printed.
#[test]
fn a_database_error_is_not_repeated() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute("DROP TABLE tasks");
    let mut conn = db.conn();
    let err = taskdb::models::task::count(&mut conn, "u1").unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert_eq!(text.matches("does not exist").count(), 1, "{text}");
}

#[test]
fn a_full_disk_during_demo_seeding_is_reported_as_such() {
    let db = TestDb::migrated(Backend::Sqlite);
    let mut conn = db.conn();
    // A few pages more than the schema needs: the demo rows do not fit.
    let pages = db.scalar("SELECT page_count FROM pragma_page_count()");
    conn.batch_execute(&format!("PRAGMA max_page_count = {}", pages + 8))
        .unwrap();
    let err = seed::seed_demo(
        &mut conn,
        &DemoOptions {
            users: 2000,
            tasks_per_user: 10,
            password: "demo-password".into(),
            shape: Default::default(),
        },
        &mut |_, _| {},
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("database or disk is full"), "{text}");
    assert!(!text.contains("cannot rollback"), "{text}");
    // Nothing of the run was kept.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 0);
    // The connection is still usable.
    conn.batch_execute("SELECT 1").unwrap();
}

/// The CLI on a real full file system: a tiny tmpfs in a private mount
/// namespace (util-linux `unshare`), so nothing leaks out of the test.
#[test]
fn a_full_disk_during_demo_seeding_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("taskdb");
    let script = format!(
        "set -e; mount -t tmpfs -o size=300k tmpfs '{dir}'; \
         '{bin}' -D '{dir}/t.db' migrate >/dev/null; \
         '{bin}' -D '{dir}/t.db' seed demo --users 3000 --tasks-per-user 10",
        dir = dir.path().display(),
        bin = bin.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .without_taskdb_env()
        .output()
        .expect("unshare (util-linux) runs the test in its own mount namespace");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("database or disk is full"), "{stderr}");
    assert!(!lines[0].contains("cannot rollback"), "{stderr}");
}

both_backends!(too_long_seed_values_name_the_field, migrated, |db| {
    let long = "x".repeat(300);
    let cases: [(&[&str], &str); 3] = [
        (
            &["--id", "u2", "--email", "u2@example.com", "--name", &long],
            "name",
        ),
        (&["--id", &long, "--email", "u2@example.com"], "user id"),
        (
            &["--id", "u2", "--email", &format!("{long}@example.com")],
            "email",
        ),
    ];
    for (args, field) in cases {
        let out = db
            .taskdb()
            .arg("seed")
            .args(args)
            .assert()
            .failure()
            .code(1);
        let stderr = stderr_of(&out);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(stderr.contains("at most 255 characters"), "{stderr}");
        assert!(!stderr.contains("character varying"), "{stderr}");
        // The value itself is not echoed back in full.
        assert!(!stderr.contains(&long), "{stderr}");
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
});

// The limit counts characters, as VARCHAR(255) does, not bytes.
both_backends!(
    the_limit_counts_characters_like_the_column,
    migrated,
    |db| {
        let id = "é".repeat(255);
        let name = "名".repeat(255);
        db.taskdb()
            .args([
                "seed",
                "--id",
                &id,
                "--email",
                "e@example.com",
                "--name",
                &name,
            ])
            .assert()
            .success();
        assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 1);
    }
);
