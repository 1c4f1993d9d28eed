//! The `taskdb` binary as a user runs it, on both backends.

use crate::common;

use common::{taskdb_at, taskdb_cmd, unused_port};
use predicates::prelude::*;
use predicates::str::contains;

fn stdout_of(assert: assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

#[test]
fn with_no_url_anywhere_it_uses_taskdb_db_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = taskdb_cmd();
        cmd.current_dir(dir.path()).args(args);
        cmd
    };
    let out = stdout_of(run(&["migrate"]).assert().success());
    let first = out.lines().next().unwrap();
    assert!(
        first.contains("sqlite://taskdb.db") && first.contains("embedded default"),
        "{first}"
    );
    assert!(dir.path().join("taskdb.db").is_file());
    run(&["status"])
        .assert()
        .success()
        .stdout(contains("Pending: 0"));
    run(&["seed"])
        .assert()
        .success()
        .stdout(contains("Created user user123"));
}

#[test]
fn read_only_commands_do_not_create_a_missing_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not_yet.db");
    let url = format!("sqlite://{}", file.display());
    let run = |args: &[&str]| {
        let mut cmd = taskdb_at(&url);
        cmd.args(args);
        cmd
    };
    let status = stdout_of(run(&["status"]).assert().success());
    assert!(status.contains("Applied: 0"), "{status}");
    assert!(!status.contains("Pending: 0"), "{status}");
    run(&["status", "--check"]).assert().code(1);
    run(&["migrate", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("CREATE TABLE"));
    for args in [
        &["verify"][..],
        &["seed"],
        &["rollback", "--yes"],
        &["repair"],
    ] {
        run(args)
            .assert()
            .code(1)
            .stderr(contains("does not exist yet: `taskdb migrate` creates it"));
    }
    assert!(
        !file.exists(),
        "a read-only command created {}",
        file.display()
    );
    run(&["migrate"]).assert().success();
    assert!(file.is_file());
}

#[test]
fn url_precedence_flag_then_env_then_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=sqlite://from_dotenv.db\n",
    )
    .unwrap();
    let run = |envvar: Option<&str>, flag: Option<&str>| {
        let mut cmd = taskdb_cmd();
        cmd.current_dir(dir.path());
        if let Some(v) = envvar {
            cmd.env("DATABASE_URL", v);
        }
        if let Some(f) = flag {
            cmd.args(["--database-url", f]);
        }
        cmd.arg("status");
        let out = stdout_of(cmd.assert());
        out.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(
        run(None, None),
        "database: sqlite://from_dotenv.db (from DATABASE_URL in .env)"
    );
    // A URL that lost is named (without its value).
    assert_eq!(
        run(Some("sqlite://from_env.db"), None),
        "database: sqlite://from_env.db (from DATABASE_URL; DATABASE_URL in .env ignored: \
         the environment's DATABASE_URL wins)"
    );
    assert_eq!(
        run(Some("sqlite://from_env.db"), Some("sqlite://from_flag.db")),
        "database: sqlite://from_flag.db (from --database-url; DATABASE_URL, DATABASE_URL in \
         .env ignored: --database-url wins)"
    );
}

both_backends!(migrate_status_seed_rollback_redo, empty, |db| {
    let out = stdout_of(db.taskdb().arg("migrate").assert().success());
    assert!(out.contains("Found ") && out.contains("Applied "), "{out}");
    let again = stdout_of(db.taskdb().arg("migrate").assert().success());
    assert!(again.contains("Nothing to do"), "{again}");

    let total = taskdb::migrate::migrations(db.backend).len();
    let status = stdout_of(db.taskdb().arg("status").assert().success());
    assert!(
        status.contains(&format!(
            "Total migrations: {total}\nApplied: {total}\nPending: 0"
        )),
        "{status}"
    );
    db.taskdb().args(["status", "--check"]).assert().success();

    db.taskdb()
        .arg("seed")
        .assert()
        .success()
        .stdout(contains("Created user user123 <test@example.com>"))
        .stderr(contains("development password"));
    db.taskdb()
        .arg("seed")
        .assert()
        .success()
        .stdout(contains("already present; nothing changed"));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 1);
    let hash = db.rows("SELECT password_hash AS line FROM users");
    assert!(
        hash[0].starts_with("$2b$12$"),
        "bcrypt cost 12: {}",
        hash[0]
    );

    // Rolling back the users table would drop a row: refused without --yes
    // when there is no terminal to ask at.
    let users_step = taskdb::migrate::migrations(db.backend)
        .into_iter()
        .find(|m| m.name() == "create_users")
        .unwrap();
    db.taskdb()
        .args(["rollback", "--to", &users_step.version()])
        .assert()
        .success();
    db.taskdb()
        .args(["rollback", "--steps", "1"])
        .write_stdin("")
        .assert()
        .code(1)
        .stdout(contains("users: 1 row(s)"))
        .stderr(contains("--yes"));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM users"),
        1,
        "nothing was dropped"
    );
    db.taskdb()
        .args(["rollback", "--steps", "1", "--yes"])
        .assert()
        .success()
        .stdout(contains("Reverted 1 migration(s)"));
    db.taskdb().args(["status", "--check"]).assert().code(1);

    db.taskdb().arg("migrate").assert().success();
    db.taskdb()
        .args(["redo", "--steps", "2"])
        .assert()
        .success()
        .stdout(contains("Reverted 2 and re-applied 2"));
    db.taskdb()
        .args(["rollback", "--all", "--yes"])
        .assert()
        .success();
    db.taskdb()
        .arg("rollback")
        .assert()
        .code(1)
        .stderr(contains("error: nothing to roll back"));
});

both_backends!(unknown_versions_are_clear_errors, empty, |db| {
    db.taskdb()
        .args(["migrate", "--to", "1999"])
        .assert()
        .code(1)
        .stderr(contains("error: unknown migration version `1999`"));
    db.taskdb().arg("migrate").assert().success();
    db.taskdb()
        .args(["rollback", "--to", "nope"])
        .assert()
        .code(1)
        .stderr(contains("unknown migration version `nope`"));
});

both_backends!(
    seed_refuses_bad_input_and_unmigrated_databases,
    empty,
    |db| {
        db.taskdb()
            .arg("seed")
            .assert()
            .code(1)
            .stderr(contains("`taskdb migrate`"));
        db.taskdb().arg("migrate").assert().success();
        db.taskdb()
            .args(["seed", "--email", "nope"])
            .assert()
            .code(1)
            .stderr(contains("invalid email"));
        let long = "x".repeat(73);
        db.taskdb()
            .args(["seed", "--password", &long])
            .assert()
            .code(1)
            .stderr(contains("72 bytes"));
        db.taskdb()
            .args(["seed", "--password", ""])
            .assert()
            .code(1)
            .stderr(contains("must not be empty"));
        assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
    }
);

#[test]
fn unreachable_server_is_one_line_without_the_password() {
    let url = format!(
        "postgres://postgres:Sentinel-Secret-1@127.0.0.1:{}/x",
        unused_port()
    );
    for cmd in ["migrate", "status", "seed", "rollback", "redo", "repair"] {
        let out = taskdb_at(&url).arg(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stderr.lines().count(), 1, "{cmd}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot connect to postgres://postgres@127.0.0.1:"),
            "{cmd}: {stderr}"
        );
        assert!(
            !stderr.contains("Sentinel") && !stdout.contains("Sentinel"),
            "{cmd}"
        );
    }
}

#[test]
fn every_command_explains_itself() {
    let top = stdout_of(taskdb_cmd().arg("--help").assert().success());
    for cmd in ["migrate", "status", "rollback", "redo", "seed", "repair"] {
        assert!(top.contains(cmd), "{cmd} missing from --help");
        let help = stdout_of(taskdb_cmd().args([cmd, "--help"]).assert().success());
        assert!(
            help.contains("Usage: taskdb") && help.contains("--database-url"),
            "{cmd}: {help}"
        );
    }
    taskdb_cmd().arg("frobnicate").assert().code(2);
    taskdb_cmd()
        .args(["rollback", "--steps", "1", "--all"])
        .assert()
        .code(2);
    taskdb_cmd()
        .args(["--wait", "soon", "status"])
        .assert()
        .code(2)
        .stderr(contains("not a duration"));
}

#[test]
fn bad_urls_are_refused_before_anything_runs() {
    for (url, expect) in [
        ("mysql://root@localhost/db", "invalid database URL"),
        ("tasks", "invalid database URL"),
        ("postgres://u:pw@host:notaport/db", "invalid database URL"),
    ] {
        taskdb_at(url)
            .arg("status")
            .assert()
            .code(1)
            .stderr(contains(expect).and(contains(":pw@").not()));
    }
}
