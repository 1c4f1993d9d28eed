//! `taskdb seed demo`: realistic demo users and tasks, fast, on both
//! backends; and no progress line when output is not a terminal.

use crate::common;

use common::TestDb;
use predicates::str::contains;
use taskdb::models::user;

fn stdout_of(assert: assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

both_backends!(demo_seed_fills_users_and_tasks, migrated, |db| {
    db.taskdb().arg("seed").assert().success();
    let run = db
        .taskdb()
        .args(["seed", "demo", "--users", "40", "--tasks-per-user", "25"])
        .assert()
        .success()
        .stderr(contains("development credential"));
    let out = stdout_of(run);
    assert!(
        out.contains("Created 40 demo user(s) and 1000 task(s)"),
        "{out}"
    );
    assert!(out.contains("1040 rows") && out.contains("rows/s"), "{out}");
    assert!(out.contains("`demo-password`"), "{out}");
    // Not a terminal: no progress line, no cursor control.
    let stderr = String::from_utf8_lossy(&run_again(&db).get_output().stderr).into_owned();
    assert!(
        !stderr.contains('\r') && !stderr.contains("⋯"),
        "{stderr:?}"
    );

    // Two runs, plus the development user; no collision between runs.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 81);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 2000);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT lower(email)) FROM users"),
        81
    );
    // Every task has an owner, and every demo user has 25 tasks.
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)"
        ),
        0
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM (SELECT user_id FROM tasks GROUP BY user_id HAVING COUNT(*) <> 25) x"
        ),
        0
    );
    // Roughly 30% done, some described, dates spread over months.
    let done = db.scalar("SELECT COUNT(*) FROM tasks WHERE completed");
    assert!((450..750).contains(&done), "{done} of 2000 completed");
    let described = db.scalar("SELECT COUNT(*) FROM tasks WHERE description IS NOT NULL");
    assert!((400..1200).contains(&described), "{described} described");
    let days =
        db.scalar("SELECT COUNT(DISTINCT substr(CAST(created_at AS TEXT), 1, 10)) FROM tasks");
    assert!(days > 60, "{days} distinct days");
    // The development user is untouched; a demo user logs in with the
    // demo password, and not with another.
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM users WHERE id = 'user123' AND email = 'test@example.com'"),
        1
    );
    let email = out
        .split("log in as e.g. ")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix('.'))
        .unwrap()
        .to_string();
    let mut conn = db.conn();
    assert!(user::authenticate(&mut conn, &email, "demo-password")
        .unwrap()
        .is_some());
    assert!(user::authenticate(&mut conn, &email, "password123")
        .unwrap()
        .is_none());
    // One hash per run, reused for every demo user of the run.
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT password_hash) FROM users WHERE id LIKE 'demo-%'"),
        2
    );
});

both_backends!(
    demo_seed_skewed_keeps_the_total_with_a_heavy_tail,
    migrated,
    |db| {
        let run = db
            .taskdb()
            .args([
                "seed",
                "demo",
                "--users",
                "200",
                "--tasks-per-user",
                "50",
                "--skewed",
            ])
            .assert()
            .success();
        let out = stdout_of(run);
        assert!(
            out.contains("Created 200 demo user(s) and 10000 task(s)"),
            "{out}"
        );
        assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 10_000);
        // The heaviest 1 % (2 users) own at least a tenth; most own fewer
        // than the mean.
        let heaviest = db.scalar(
        "SELECT CAST(SUM(n) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM tasks GROUP BY user_id ORDER BY n DESC LIMIT 2) x",
    );
        assert!(heaviest >= 1_000, "the heaviest 2 users own {heaviest}");
        let below = db.scalar(
        "SELECT COUNT(*) FROM users u WHERE (SELECT COUNT(*) FROM tasks t WHERE t.user_id = u.id) < 50",
    );
        assert!(below > 120, "{below} of 200 users below the mean");
    }
);

fn run_again(db: &TestDb) -> assert_cmd::assert::Assert {
    db.taskdb()
        .args(["seed", "demo", "--users", "40", "--tasks-per-user", "25"])
        .assert()
        .success()
}

both_backends!(bad_demo_arguments_are_clear_errors, migrated, |db| {
    db.taskdb()
        .args(["seed", "demo", "--users", "0"])
        .assert()
        .failure()
        .code(2)
        .stderr(contains("--users"));
    db.taskdb()
        .args(["seed", "demo", "--tasks-per-user", "-3"])
        .assert()
        .failure()
        .code(2);
    db.taskdb()
        .args([
            "seed",
            "demo",
            "--users",
            "1000000",
            "--tasks-per-user",
            "10000",
        ])
        .assert()
        .failure()
        .code(1)
        .stderr(contains("at most"));
    // seed's own options do not mix with the subcommand.
    db.taskdb()
        .args(["seed", "--id", "x", "demo"])
        .assert()
        .failure()
        .code(2);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
});

#[test]
fn demo_seed_needs_a_migrated_database() {
    let db = TestDb::empty(taskdb::Backend::Sqlite);
    db.taskdb()
        .args(["seed", "demo"])
        .assert()
        .failure()
        .code(1)
        .stderr(contains("taskdb migrate"));
}

#[test]
fn migrate_prints_no_progress_line_when_not_a_terminal() {
    let db = TestDb::empty(taskdb::Backend::Postgres);
    let run = db.taskdb().arg("migrate").assert().success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        !stderr.contains('\r') && !stderr.contains("⋯"),
        "{stderr:?}"
    );
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    assert!(
        !stdout.contains('\r') && !stdout.contains("⋯"),
        "{stdout:?}"
    );
}

/// Runs the binary on a pseudo-terminal (`script` from util-linux), so
/// stderr is a terminal; returns everything the terminal showed.
fn on_a_terminal(db: &TestDb, args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("taskdb");
    let command = format!("{} --database-url '{}' {args}", bin.display(), db.url());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DATABASE_URL")
        .env_remove("DIRECT_DATABASE_URL")
        .output()
        .expect("script (util-linux) runs the binary on a pseudo-terminal");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_progress_line_that_is_cleared_afterwards() {
    let db = TestDb::empty(taskdb::Backend::Postgres);
    let shown = on_a_terminal(&db, "migrate");
    assert!(
        shown.contains("⋯ 2026-02-08-000004_index_tasks_user_completed"),
        "{shown:?}"
    );
    assert!(shown.contains("\r\x1b[2K"), "{shown:?}");
    let shown = on_a_terminal(&db, "seed demo --users 50 --tasks-per-user 10");
    assert!(shown.contains("⋯ seeding demo data"), "{shown:?}");
    assert!(shown.contains("Created 50 demo user(s)"), "{shown:?}");
}
