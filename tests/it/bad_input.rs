//! Bad input, one case at a time: each gives one `error: …` line on stderr,
//! a non-zero exit (2 for usage errors, else 1) and leaves the database as
//! it was (schema dump and row counts compared before and after).

use crate::common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use common::process::spawn_taskdb_at;
use common::{schema_dump, taskdb_at, taskdb_cmd, unused_port, TestDb};
use diesel::connection::SimpleConnection;
use taskdb::Backend;

/// Schema plus the row count of every table taskdb owns or tracks.
fn snapshot(db: &TestDb) -> Vec<String> {
    let mut lines = schema_dump(db);
    let tables = match db.backend {
        Backend::Postgres => db
            .rows("SELECT tablename AS line FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
        Backend::Sqlite => db.rows(
            "SELECT name AS line FROM sqlite_master WHERE type = 'table' \
              AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        ),
    };
    for table in tables {
        lines.push(format!(
            "rows {table} = {}",
            db.scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
        ));
    }
    lines
}

/// Runs `cmd`, expecting `code`, one `error:` line containing `expect`,
/// and `db` unchanged.
fn refused(db: &TestDb, mut cmd: assert_cmd::Command, code: i32, expect: &str) {
    let before = snapshot(db);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{cmd:?}: one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{cmd:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{cmd:?}: expected `{expect}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(snapshot(db), before, "{cmd:?} changed the database");
}

/// A migrated PostgreSQL database with the development user in it.
fn seeded() -> TestDb {
    let db = TestDb::migrated(Backend::Postgres);
    db.taskdb().arg("seed").assert().success();
    db
}

fn with_url(url: &str, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = taskdb_at(url);
    cmd.args(args);
    cmd
}

#[test]
fn urls_that_cannot_work() {
    let db = seeded();
    let port = unused_port();
    // 1. malformed URL
    refused(
        &db,
        with_url("postgres://u:p@127.0.0.1:notaport/x", &["migrate"]),
        1,
        "invalid database URL",
    );
    // 2. unknown scheme
    refused(
        &db,
        with_url("mysql://u@127.0.0.1/tasks", &["status"]),
        1,
        "invalid database URL",
    );
    // 3. an empty URL
    refused(&db, with_url("", &["status"]), 1, "invalid database URL");
    // 4. unreachable host: fails at once, never hangs
    let started = Instant::now();
    refused(
        &db,
        with_url(
            &format!("postgres://u@127.0.0.1:{port}/tasks"),
            &["migrate"],
        ),
        1,
        "cannot connect",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // 5. missing database
    refused(
        &db,
        with_url(
            "postgres://postgres@127.0.0.1:5432/taskdb_no_such_database",
            &["migrate"],
        ),
        1,
        "does not exist",
    );
    // 6. --wait gives up with a clear message
    refused(
        &db,
        with_url(
            &format!("postgres://u@127.0.0.1:{port}/tasks"),
            &["--wait", "300ms", "status"],
        ),
        1,
        "still failing after waiting",
    );
}

#[test]
fn wrong_password() {
    // pg_hba trusts loopback here, so PgBouncer (auth_type md5) is what
    // checks the password.
    common::admin()
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE taskdb_pw_test LOGIN PASSWORD 'right-password'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .unwrap();
    let bouncer = PgBouncer::start_with(
        "transaction",
        "md5",
        &[("taskdb_pw_test", "right-password")],
    );
    let db = seeded();
    let url = format!(
        "postgres://taskdb_pw_test:wrong@127.0.0.1:{}/{}",
        bouncer.port,
        db.pg_name().unwrap()
    );
    // 7.
    refused(
        &db,
        with_url(&url, &["migrate"]),
        1,
        "password authentication failed",
    );
    // 8. waiting does not help a wrong password: it fails at once
    let started = Instant::now();
    refused(
        &db,
        with_url(&url, &["--wait", "30s", "migrate"]),
        1,
        "password authentication failed",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `--wait D` against a port nothing listens on: it keeps trying for the
/// whole of D (one last try at the deadline), then says how long it really
/// waited.
#[test]
fn wait_waits_as_long_as_asked_and_says_how_long() {
    let port = unused_port();
    for (wait, secs) in [("1s", 1.0), ("3s", 3.0)] {
        let started = Instant::now();
        let out = with_url(
            &format!("postgres://u@127.0.0.1:{port}/tasks"),
            &["--wait", wait, "status"],
        )
        .output()
        .unwrap();
        let took = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            took >= secs && took < secs + 3.0,
            "--wait {wait} took {took:.2}s: {stderr}"
        );
        // "(still failing after waiting 3.0s)": the time it really waited.
        let said: f64 = stderr
            .split("still failing after waiting ")
            .nth(1)
            .and_then(|rest| rest.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("--wait {wait}: no time waited in: {stderr}"));
        assert!(
            said >= secs && said <= took + 0.05,
            "--wait {wait}: says {said}s, took {took:.2}s: {stderr}"
        );
    }
}

#[test]
fn a_role_without_ddl_rights() {
    common::admin()
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE taskdb_noddl LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .unwrap();
    // PostgreSQL 15: only the owner may CREATE in schema public.
    let empty = TestDb::empty(Backend::Postgres);
    let url = format!(
        "postgres://taskdb_noddl@127.0.0.1:5432/{}",
        empty.pg_name().unwrap()
    );
    // 9.
    refused(&empty, with_url(&url, &["migrate"]), 1, "permission denied");
    let db = seeded();
    let url = format!(
        "postgres://taskdb_noddl@127.0.0.1:5432/{}",
        db.pg_name().unwrap()
    );
    // 10.
    refused(
        &db,
        with_url(&url, &["rollback", "--yes"]),
        1,
        "permission denied",
    );
}

#[test]
fn unknown_versions_and_nothing_to_revert() {
    let db = seeded();
    // 11.
    refused(
        &db,
        db_cmd(&db, &["migrate", "--to", "29991231000000"]),
        1,
        "unknown migration version",
    );
    // 12.
    refused(
        &db,
        db_cmd(&db, &["rollback", "--to", "1999"]),
        1,
        "unknown migration version",
    );
    // 13.
    refused(
        &db,
        db_cmd(&db, &["migrate", "--to", "not-a-version"]),
        1,
        "unknown migration version",
    );
    let empty = TestDb::empty(Backend::Postgres);
    // 14.
    refused(
        &empty,
        db_cmd(&empty, &["rollback"]),
        1,
        "nothing to roll back",
    );
    // 15.
    refused(&empty, db_cmd(&empty, &["redo"]), 1, "nothing to redo");
    let sqlite = TestDb::empty(Backend::Sqlite);
    // 16.
    refused(
        &sqlite,
        db_cmd(&sqlite, &["rollback", "--all"]),
        1,
        "nothing to roll back",
    );
}

fn db_cmd(db: &TestDb, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = db.taskdb();
    cmd.args(args);
    cmd
}

#[test]
fn usage_errors_exit_2() {
    let db = seeded();
    // 17. invalid --wait
    refused(
        &db,
        db_cmd(&db, &["--wait", "soon", "migrate"]),
        2,
        "not a duration",
    );
    // 18. invalid --lock-timeout
    refused(
        &db,
        db_cmd(&db, &["migrate", "--lock-timeout", "forever"]),
        2,
        "forever",
    );
    // 19. --steps 0
    refused(
        &db,
        db_cmd(&db, &["rollback", "--steps", "0"]),
        2,
        "--steps",
    );
    // 20. rollback --to and --steps together
    refused(
        &db,
        db_cmd(
            &db,
            &["rollback", "--steps", "1", "--to", "2026-02-08-000003"],
        ),
        2,
        "cannot be used with",
    );
    // 21. unknown flag
    refused(&db, db_cmd(&db, &["migrate", "--bogus"]), 2, "--bogus");
    // 22. unknown command
    refused(&db, db_cmd(&db, &["migrat"]), 2, "migrat");
    // 23. a negative duration
    refused(&db, db_cmd(&db, &["--wait", "-5s", "status"]), 2, "-5");
}

#[test]
fn seed_refuses_bad_users() {
    let db = seeded();
    // 24. invalid email
    refused(
        &db,
        db_cmd(&db, &["seed", "--id", "u2", "--email", "not-an-email"]),
        1,
        "invalid email",
    );
    // 25. password over bcrypt's 72 bytes
    let long = "x".repeat(73);
    refused(
        &db,
        db_cmd(
            &db,
            &[
                "seed",
                "--id",
                "u2",
                "--email",
                "b@example.com",
                "--password",
                &long,
            ],
        ),
        1,
        "72 bytes",
    );
    // 26. empty password
    refused(
        &db,
        db_cmd(
            &db,
            &[
                "seed",
                "--id",
                "u2",
                "--email",
                "b@example.com",
                "--password",
                "",
            ],
        ),
        1,
        "must not be empty",
    );
    // 27. seeding a database that was never migrated
    let empty = TestDb::empty(Backend::Postgres);
    refused(&empty, db_cmd(&empty, &["seed"]), 1, "taskdb migrate");
}

#[test]
fn bad_files() {
    let db = seeded();
    let dir = tempfile::tempdir().unwrap();
    // 28. a .env that does not parse (even with a valid --database-url)
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=sqlite://x.db\nnot a pair\n",
    )
    .unwrap();
    let mut cmd = db.taskdb();
    cmd.current_dir(dir.path()).arg("status");
    refused(&db, cmd, 1, ".env");
    // 29. SQLite file in a directory that does not exist
    let missing = dir.path().join("no/such/dir/app.db");
    refused(
        &db,
        with_url(&format!("sqlite://{}", missing.display()), &["migrate"]),
        1,
        "does not exist",
    );
    assert!(!missing.exists());
    // 30. SQLite "database" that is not one
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    refused(
        &db,
        with_url(&format!("sqlite://{}", junk.display()), &["migrate"]),
        1,
        "not a database",
    );
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        vec![b'x'; 4096],
        "the file is untouched"
    );
}

#[test]
fn more_found_along_the_way() {
    let db = seeded();
    let dir = tempfile::tempdir().unwrap();
    // 31. a bad DIRECT_DATABASE_URL names the variable it came from
    let mut cmd = taskdb_cmd();
    cmd.env("DATABASE_URL", db.url())
        .env("DIRECT_DATABASE_URL", "mysql://app@db/tasks")
        .arg("migrate");
    refused(&db, cmd, 1, "from DIRECT_DATABASE_URL");
    // 32. a SQLite "file" that is a directory
    let as_dir = dir.path().join("dir.db");
    std::fs::create_dir(&as_dir).unwrap();
    refused(
        &db,
        with_url(&format!("sqlite://{}", as_dir.display()), &["migrate"]),
        1,
        "unable to open",
    );
    // 33. a .env that is not UTF-8
    let env_dir = tempfile::tempdir().unwrap();
    std::fs::write(env_dir.path().join(".env"), b"DATABASE_URL=\xff\xfe\n").unwrap();
    let mut cmd = db.taskdb();
    cmd.current_dir(env_dir.path()).arg("status");
    refused(&db, cmd, 1, ".env");
    // 34. a connection option the driver rejects
    refused(
        &db,
        with_url(&format!("{}?sslmode=bogus", db.url()), &["migrate"]),
        1,
        "sslmode",
    );
    // 35. an unknown --format
    refused(&db, db_cmd(&db, &["status", "--format", "yaml"]), 2, "yaml");
    // 36. a negative --lock-retries
    refused(
        &db,
        db_cmd(&db, &["migrate", "--lock-retries", "-1"]),
        2,
        "-1",
    );
    // 37. orphans: reassign and delete at once
    refused(
        &db,
        db_cmd(&db, &["orphans", "--assign-to", "user123", "--delete"]),
        2,
        "cannot be used with",
    );
    // 38. seed demo with no users
    refused(
        &db,
        db_cmd(&db, &["seed", "demo", "--users", "0"]),
        2,
        "--users",
    );
    // 39. seed demo with an empty password
    refused(
        &db,
        db_cmd(&db, &["seed", "demo", "--password", ""]),
        1,
        "must not be empty",
    );
}

#[test]
fn stdout_closed_early_is_not_an_error() {
    // `taskdb status | head -0`: the reader goes away before taskdb writes.
    let db = seeded();
    let before = snapshot(&db);
    for args in [
        &["status"][..],
        &["status", "--format", "json"],
        &["migrate"],
        &["--help"],
    ] {
        let mut child = spawn_taskdb_at(db.url(), args);
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    assert_eq!(snapshot(&db), before);
    // And through a real shell pipe.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --database-url '{}' status | head -1",
            assert_cmd::cargo::cargo_bin("taskdb").display(),
            db.url()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let _ = std::io::stdout().flush();
}
