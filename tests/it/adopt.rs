//! `taskdb adopt` on the app's database as the Python runner left it
//! (tests/fixtures/legacy_postgres.sql): adopt, migrate, verify clean, every
//! row kept; refusals; a no-op on a database taskdb already manages.

use crate::common;

use common::{schema_dump, TestDb};
use diesel::connection::SimpleConnection;
use taskdb::Backend;

const LEGACY: &str = include_str!("../fixtures/legacy_postgres.sql");

fn legacy_db() -> TestDb {
    let db = TestDb::empty(Backend::Postgres);
    db.execute(LEGACY);
    db
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

/// Every row of both tables, as text, to compare before and after.
fn all_rows(db: &TestDb) -> Vec<String> {
    db.rows(
        "SELECT 'user ' || id || ' ' || email || ' ' || password_hash || ' ' || coalesce(name, '-') || ' ' || created_at::text AS line FROM users
         UNION ALL
         SELECT 'task ' || id || ' ' || user_id || ' ' || title || ' ' || coalesce(description, '-') || ' ' || completed || ' ' || created_at::text || ' ' || updated_at::text FROM tasks
         ORDER BY 1",
    )
}

#[test]
fn legacy_database_adopts_migrates_and_verifies_clean() {
    let db = legacy_db();
    let rows_before = all_rows(&db);
    assert_eq!(rows_before.len(), 7);

    // Before adoption, verify names what the Python runner left behind.
    let out = db.taskdb().arg("verify").assert().code(1);
    let text = stdout(&out);
    for needle in [
        "duplicate_index: index idx_users_email on users",
        "redundant_index: index idx_tasks_user_id on tasks",
        "extra_index: index ix_tasks_user_id on tasks",
        "missing_index: index users_email_lower_key on users",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }

    let out = db.taskdb().arg("adopt").assert().success();
    let text = stdout(&out);
    assert!(text.contains("Adopted: recorded 4 migration(s)"), "{text}");
    let adopted = db.rows(
        "SELECT l.version || ' ' || l.applied_by AS line FROM __taskdb_ledger l
           JOIN __diesel_schema_migrations d ON d.version = l.version ORDER BY 1",
    );
    assert_eq!(
        adopted,
        [
            "20260208000002 taskdb adopt",
            "20260208000003 taskdb adopt",
            "20260208000004 taskdb adopt",
            "20260208000005 taskdb adopt"
        ]
    );
    // Adoption records; it does not change the schema or any row.
    assert_eq!(all_rows(&db), rows_before);
    assert!(db.scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'idx_users_email'") == 1);

    let text = stdout(
        &db.taskdb()
            .args(["migrate", "--dry-run"])
            .assert()
            .success(),
    );
    assert!(text.contains("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_user_id"));
    assert!(!text.contains("2026-02-08-000002_create_users/up.sql"));

    db.taskdb().arg("migrate").assert().success();
    let out = db.taskdb().arg("verify").assert();
    let text = stdout(&out);
    assert!(
        text.contains("The schema matches taskdb's migrations"),
        "{text}"
    );
    out.success();
    db.taskdb().args(["status", "--check"]).assert().success();

    // Every row kept, values unchanged.
    assert_eq!(all_rows(&db), rows_before);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 2);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 5);
    assert_eq!(
        db.rows("SELECT password_hash AS line FROM users WHERE id = 'user123'"),
        ["$2b$12$GN13oPUSkfxY1wG9Dlw3peODmSJwefSFwuKQsNFJbA9B687deyLze"]
    );
    assert_eq!(
        db.rows("SELECT title AS line FROM tasks WHERE user_id = 'user123' ORDER BY id"),
        ["Buy groceries", "Write report", "Call the bank"]
    );
    // The runner's history is kept.
    assert_eq!(db.scalar("SELECT COUNT(*) FROM schema_migrations"), 2);

    // The login works through the library, and emails are now unique
    // ignoring case, enforced by the database.
    let mut conn = db.conn();
    let alice = taskdb::models::user::find_by_email(&mut conn, "alice@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert!(conn
        .batch_execute(
            "INSERT INTO users (id, email, password_hash) VALUES ('dup', 'ALICE@example.COM', 'x')"
        )
        .is_err());
    // The new defaults and triggers work on the adopted tables.
    conn.batch_execute(
        "INSERT INTO tasks (user_id, title) VALUES ('user123', 'after adoption');
         UPDATE users SET name = 'Tester' WHERE id = 'user123';",
    )
    .unwrap();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM users WHERE id = 'user123' AND updated_at > '2026-02-08 10:01:00'"),
        1
    );
    // ON DELETE CASCADE as before.
    conn.batch_execute("DELETE FROM users WHERE id = 'user123'")
        .unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 2);

    // Adopting again is a no-op that says so.
    let text = stdout(&db.taskdb().arg("adopt").assert().success());
    assert!(text.contains("Nothing to adopt"), "{text}");
}

#[test]
fn refuses_a_schema_that_is_not_the_runners() {
    let db = legacy_db();
    db.execute("ALTER TABLE tasks DROP COLUMN description");
    let before = schema_dump(&db);
    let out = db.taskdb().arg("adopt").assert().code(1);
    let text = stdout(&out);
    assert!(text.contains("Not adopted"), "{text}");
    assert!(
        text.contains("missing_column: column tasks.description"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    // Nothing recorded, not even the tracking tables.
    assert_eq!(schema_dump(&db), before);
}

#[test]
fn refuses_unknown_runner_history_and_databases_it_never_migrated() {
    let db = legacy_db();
    db.execute("INSERT INTO schema_migrations (version) VALUES ('003_add_tags')");
    let text = stdout(&db.taskdb().arg("adopt").assert().code(1));
    assert!(text.contains("003_add_tags"), "{text}");

    let empty = TestDb::empty(Backend::Postgres);
    let text = stdout(&empty.taskdb().arg("adopt").assert().code(1));
    assert!(text.contains("no schema_migrations table"), "{text}");
    assert!(schema_dump(&empty).is_empty());
}

#[test]
fn is_a_no_op_on_a_database_taskdb_manages() {
    let db = TestDb::migrated(Backend::Postgres);
    let before = (
        schema_dump(&db),
        db.rows("SELECT version || applied_by AS line FROM __taskdb_ledger ORDER BY 1"),
    );
    let text = stdout(&db.taskdb().arg("adopt").assert().success());
    assert!(
        text.contains("Nothing to adopt: taskdb already manages this database"),
        "{text}"
    );
    let after = (
        schema_dump(&db),
        db.rows("SELECT version || applied_by AS line FROM __taskdb_ledger ORDER BY 1"),
    );
    assert_eq!(after, before);
}

#[test]
fn is_for_postgres_only() {
    let db = TestDb::migrated(Backend::Sqlite);
    let out = db.taskdb().arg("adopt").assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    let help = common::taskdb_cmd()
        .args(["adopt", "--help"])
        .assert()
        .success();
    assert!(stdout(&help).contains("PostgreSQL only"));
}

#[test]
fn warns_about_emails_that_differ_only_in_case() {
    let db = legacy_db();
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u9', 'TEST@example.com', 'x')",
    );
    let text = stdout(&db.taskdb().arg("adopt").assert().success());
    assert!(text.contains("differ only in case"), "{text}");
    assert!(
        text.contains("TEST@example.com, test@example.com"),
        "{text}"
    );
    // migrate stops at the unique index, which names the duplicate.
    let out = db.taskdb().arg("migrate").assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("users_email_lower_key"), "{stderr}");
}
