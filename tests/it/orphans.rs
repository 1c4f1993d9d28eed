//! Orphaned tasks: `taskdb migrate` stops before the foreign key check,
//! `taskdb orphans` lists and fixes them, then the migration completes.

use crate::common;

use common::TestDb;
use predicates::prelude::*;
use predicates::str::contains;
use taskdb::Backend;

fn stdout_of(assert: assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

/// The stderr of `taskdb args…` on `db`, which must fail with exit code 1.
fn stderr_of_failed(db: &TestDb, args: &[&str]) -> String {
    let out = db.taskdb().args(args).assert().failure().code(1);
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

/// The migration that creates `tasks`, the app's only table before users.
const TASKS_ONLY: &str = "2026-02-08-000001";

/// A database migrated up to users, with alice (2 tasks) and tasks of two
/// user ids that have no user: ghost-a (3) and ghost-b (1).
fn with_orphans(backend: Backend) -> TestDb {
    let db = TestDb::migrated_to(backend, "2026-02-08-000002");
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('alice', 'alice@example.com', 'x');
         INSERT INTO tasks (user_id, title) VALUES
           ('alice', 'a1'), ('alice', 'a2'),
           ('ghost-a', 'g1'), ('ghost-a', 'g2'), ('ghost-a', 'g3'),
           ('ghost-b', 'g4');",
    );
    db
}

fn applied(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations")
}

/// The last migration before the foreign key is checked.
fn safe_steps(backend: Backend) -> i64 {
    match backend {
        // initial setup, tasks, users, FK NOT VALID, index
        Backend::Postgres => 5,
        // tasks, users
        Backend::Sqlite => 2,
    }
}

/// After the remedy: `migrate` finds no orphaned tasks and applies the rest.
fn migrate_completes(db: &TestDb) {
    db.taskdb()
        .arg("migrate")
        .assert()
        .success()
        .stdout(contains("no orphaned tasks"));
    db.taskdb()
        .arg("status")
        .assert()
        .success()
        .stdout(contains("Pending: 0"));
}

fn migrate_stops_then_fix(db: &TestDb, fix: &[&str]) {
    let stderr = stderr_of_failed(db, &["migrate"]);
    assert!(stderr.contains("4 task(s) belong to no user"), "{stderr}");
    assert!(stderr.contains("2 unknown user_id(s)"), "{stderr}");
    assert!(
        stderr.contains("ghost-a") && stderr.contains("ghost-b"),
        "{stderr}"
    );
    assert!(
        stderr.contains("taskdb orphans")
            && stderr.contains("--assign-to")
            && stderr.contains("--delete"),
        "{stderr}"
    );
    // Only the steps that are safe with orphans present were applied, and
    // no task changed.
    assert_eq!(applied(db), safe_steps(db.backend));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 6);

    let listing = stdout_of(db.taskdb().arg("orphans").assert().success());
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["ghost-a", "3"]), "{listing}");
    assert!(rows.contains(&vec!["ghost-b", "1"]), "{listing}");
    assert!(!listing.contains("alice"), "{listing}");
    assert!(
        listing.contains("Total: 4 orphaned task(s) of 2 unknown user_id(s)"),
        "{listing}"
    );

    // Without --yes and without a terminal: refused, nothing changed.
    let mut no_yes: Vec<&str> = vec!["orphans"];
    no_yes.extend(fix.iter().filter(|a| **a != "--yes"));
    db.taskdb()
        .args(&no_yes)
        .write_stdin("")
        .assert()
        .failure()
        .code(1)
        .stderr(contains("--yes"));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 6);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id LIKE 'ghost-%'"),
        4
    );

    let mut args = vec!["orphans"];
    args.extend(fix);
    let fixed = stdout_of(db.taskdb().args(&args).assert().success());
    assert!(
        fixed.contains("4 orphaned task(s) of 2 unknown user_id(s)"),
        "{fixed}"
    );

    db.taskdb()
        .arg("orphans")
        .assert()
        .success()
        .stdout(contains("No orphaned tasks"));
    migrate_completes(db);
}

both_backends!(assign_to_fixes_and_migrate_completes, empty, |_db| {
    let db = with_orphans(_db.backend);
    migrate_stops_then_fix(&db, &["--assign-to", "alice", "--yes"]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'alice'"),
        6
    );
    // The reassigned tasks kept their titles.
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'alice' AND title LIKE 'g%'"),
        4
    );
});

both_backends!(delete_fixes_and_migrate_completes, empty, |_db| {
    let db = with_orphans(_db.backend);
    migrate_stops_then_fix(&db, &["--delete", "--yes"]);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 2);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'alice'"),
        2
    );
});

both_backends!(assign_to_an_unknown_user_is_refused, empty, |_db| {
    let db = with_orphans(_db.backend);
    db.taskdb()
        .args(["orphans", "--assign-to", "nobody", "--yes"])
        .assert()
        .failure()
        .code(1)
        .stderr(contains("no user with id `nobody`"));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id LIKE 'ghost-%'"),
        4
    );
    // --assign-to and --delete together is a usage error.
    db.taskdb()
        .args(["orphans", "--assign-to", "alice", "--delete", "--yes"])
        .assert()
        .failure()
        .code(2);
});

both_backends!(no_orphans_on_a_migrated_database, migrated, |db| {
    db.taskdb()
        .arg("orphans")
        .assert()
        .success()
        .stdout(contains("No orphaned tasks"));
});

#[test]
fn the_index_walk_and_the_anti_join_agree() {
    let db = with_orphans(Backend::Postgres);
    let plain = taskdb::orphans::find(&mut db.conn()).unwrap();
    db.taskdb()
        .args(["migrate", "--to", "2026-02-08-000004"])
        .assert()
        .success();
    let walked = taskdb::orphans::find(&mut db.conn()).unwrap();
    assert_eq!(plain, walked);
    assert_eq!(walked.total(), 4);
    assert_eq!(walked.owners[0].user_id, "ghost-a");
    assert_eq!(walked.owners[0].tasks, 3);
}

#[test]
fn the_library_runner_stops_too() {
    let db = with_orphans(Backend::Sqlite);
    let err = taskdb::migrate::run_pending(&db.database_url()).unwrap_err();
    assert!(
        matches!(
            err,
            taskdb::Error::OrphanedTasks {
                tasks: 4,
                owners: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(predicate::str::contains("ghost-a").eval(&err.to_string()));
}

/// The app's database from before user accounts: a `tasks` table whose rows
/// all belong to the development user `user123`, and no `users` table.
fn pre_auth_app(backend: Backend) -> TestDb {
    let db = match backend {
        // As SQLModel created it (see tests/fixtures/legacy_postgres.sql).
        Backend::Postgres => {
            let db = TestDb::empty(backend);
            db.execute(
                "CREATE TABLE tasks (
                id SERIAL NOT NULL,
                user_id VARCHAR(255) NOT NULL,
                title VARCHAR(255) NOT NULL,
                description TEXT,
                completed BOOLEAN NOT NULL DEFAULT false,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (id)
            );
            CREATE INDEX ix_tasks_user_id ON tasks (user_id);",
            );
            db
        }
        Backend::Sqlite => TestDb::migrated_to(backend, TASKS_ONLY),
    };
    db.execute(
        "INSERT INTO tasks (user_id, title, completed, created_at, updated_at) VALUES
           ('user123', 'Buy groceries', false, '2026-01-10 09:00:00', '2026-01-10 09:00:00'),
           ('user123', 'Write report', true, '2026-01-11 14:30:00', '2026-01-12 08:15:00'),
           ('user123', 'Call the bank', false, '2026-01-15 10:00:00', '2026-01-15 10:00:00');",
    );
    db
}

both_backends!(seed_is_the_remedy_for_the_dev_users_tasks, empty, |_db| {
    let db = pre_auth_app(_db.backend);
    let stderr = stderr_of_failed(&db, &["migrate"]);
    assert!(stderr.contains("3 task(s) belong to no user"), "{stderr}");
    // The error names the remedy the seed was made for.
    assert!(stderr.contains("`taskdb seed`"), "{stderr}");
    assert!(stderr.contains("user123"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(applied(&db), safe_steps(db.backend));

    // The remedy works without hand-written SQL.
    db.taskdb()
        .arg("seed")
        .assert()
        .success()
        .stdout(contains("Created user user123 <test@example.com>"));
    db.taskdb().arg("seed").assert().success();
    migrate_completes(&db);
    // The app's tasks kept their owner and now have a user behind it.
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM tasks t JOIN users u ON u.id = t.user_id WHERE u.id = 'user123'"
        ),
        3
    );
    let mut conn = db.conn();
    assert!(taskdb::models::user::authenticate(
        &mut conn,
        "test@example.com",
        taskdb::seed::DEV_USER_PASSWORD
    )
    .unwrap()
    .is_some());
});

both_backends!(seed_demo_works_once_the_tables_exist, empty, |_db| {
    let db = pre_auth_app(_db.backend);
    db.taskdb().arg("migrate").assert().failure().code(1);
    db.taskdb()
        .args(["seed", "demo", "--users", "3", "--tasks-per-user", "2"])
        .assert()
        .success()
        .stdout(contains("Created 3 demo user(s) and 6 task(s)"));
});

both_backends!(
    the_seed_remedy_is_named_only_for_the_dev_user,
    empty,
    |_db| {
        let db = with_orphans(_db.backend);
        let stderr = stderr_of_failed(&db, &["migrate"]);
        assert!(!stderr.contains("taskdb seed"), "{stderr}");
    }
);

#[test]
fn seed_without_a_users_table_says_to_migrate() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let db = match backend {
            Backend::Postgres => TestDb::empty(backend),
            // The tasks table alone, as the app had it.
            Backend::Sqlite => TestDb::migrated_to(backend, TASKS_ONLY),
        };
        for args in [&["seed"][..], &["seed", "demo"][..]] {
            let stderr = stderr_of_failed(&db, args);
            assert!(stderr.contains("no `users` table"), "{backend}: {stderr}");
            assert!(stderr.contains("`taskdb migrate`"), "{backend}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    }
}

#[test]
fn seed_refuses_a_users_table_of_another_shape() {
    let db = TestDb::migrated_to(Backend::Sqlite, TASKS_ONLY);
    db.execute(
        "CREATE TABLE users (id VARCHAR(255) PRIMARY KEY NOT NULL, email VARCHAR(255) NOT NULL)",
    );
    let stderr = stderr_of_failed(&db, &["seed"]);
    assert!(
        stderr.contains("password_hash") && stderr.contains("`taskdb migrate`"),
        "{stderr}"
    );
}
