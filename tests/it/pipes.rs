//! A closed stdout (`taskdb migrate | head -1` under `pipefail`) never turns
//! "nothing applied" into success: output is informational, so a command
//! that changes the database finishes its work and exits by its result.
//! Read-only commands still treat a closed pipe as the reader being done.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::{schema_dump, TestDb, WithoutTaskdbEnv};
use taskdb::Backend;

/// A pipe whose read end is already closed: the first write to it fails
/// with EPIPE, deterministically (no race with a reader that exits).
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let writer = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    Stdio::from(writer)
}

/// Runs the binary against `db` with stdout a closed pipe, no terminal on
/// stdin, in an empty directory with no URL inherited.
fn run_with_stdout_closed(db: &TestDb, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
        .current_dir(dir.path())
        .without_taskdb_env()
        .args(["--database-url", db.url()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Applied versions as Diesel records them.
fn applied_versions(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations")
}

/// How many of the app's tables exist.
fn app_tables(db: &TestDb) -> i64 {
    db.scalar(match db.backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
              WHERE table_schema = 'public' AND table_name IN ('users', 'tasks')"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'tasks')"
        }
    })
}

both_backends!(migrate_with_stdout_closed_applies_everything, empty, |db| {
    let out = run_with_stdout_closed(&db, &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let total = taskdb::migrate::migrations(db.backend).len() as i64;
    assert_eq!(applied_versions(&db), total);
    let reference = TestDb::migrated(db.backend);
    assert_eq!(schema_dump(&db), schema_dump(&reference));

    // Seeding changes data too: it must happen.
    let out = run_with_stdout_closed(&db, &["seed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM users WHERE id = 'user123'"),
        1
    );
});

both_backends!(
    rollback_all_with_stdout_closed_reverts_everything,
    migrated,
    |db| {
        // Rows in `users`: the data-loss list and its confirmation are
        // printed (to nowhere) before --yes lets the rollback go ahead.
        db.taskdb().arg("seed").assert().success();
        let out = run_with_stdout_closed(&db, &["rollback", "--all", "--yes"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        assert_eq!(applied_versions(&db), 0);
        assert_eq!(app_tables(&db), 0);
    }
);

both_backends!(
    rollback_without_yes_and_stdout_closed_still_refuses,
    migrated,
    |db| {
        db.taskdb().arg("seed").assert().success();
        let total = taskdb::migrate::migrations(db.backend).len() as i64;
        let out = run_with_stdout_closed(&db, &["rollback", "--all"]);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.starts_with("error: refusing to drop"), "{stderr}");
        assert_eq!(applied_versions(&db), total);
        assert_eq!(app_tables(&db), 2);
    }
);

both_backends!(failing_migrate_with_stdout_closed_exits_1, empty, |db| {
    // A `users` table that is not ours: the migration creating it fails.
    db.execute("CREATE TABLE users (something INTEGER)");
    let out = run_with_stdout_closed(&db, &["migrate"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("users"), "{stderr}");
});

both_backends!(status_with_stdout_closed_exits_by_its_result, empty, |db| {
    // Read-only: a closed pipe is the reader being done.
    for args in [&["status"][..], &["status", "--format", "json"]] {
        let out = run_with_stdout_closed(&db, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
    }
    // But a deploy gate still fails while migrations are pending.
    let out = run_with_stdout_closed(&db, &["status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(applied_versions_or_none(&db), 0);
});

/// Applied versions, 0 when Diesel's table does not exist yet.
fn applied_versions_or_none(db: &TestDb) -> i64 {
    let exists = db.scalar(match db.backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
              WHERE table_name = '__diesel_schema_migrations'"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE name = '__diesel_schema_migrations'"
        }
    });
    if exists == 0 {
        0
    } else {
        applied_versions(db)
    }
}

#[test]
fn migrate_piped_into_head_under_pipefail_applies_everything() {
    let db = TestDb::empty(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .current_dir(dir.path())
        .without_taskdb_env()
        .args(["-o", "pipefail", "-c"])
        .arg(format!(
            "'{}' --database-url '{}' migrate | head -1",
            assert_cmd::cargo::cargo_bin("taskdb").display(),
            db.url()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("database: "), "{stdout}");
    let total = taskdb::migrate::migrations(Backend::Postgres).len() as i64;
    assert_eq!(applied_versions(&db), total);
}
