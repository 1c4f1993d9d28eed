//! `taskdb verify` on real databases: clean right after `migrate` on both
//! backends, and every difference introduced by hand named.

use crate::common;

use common::{schema_dump, TestDb};
use diesel::connection::SimpleConnection;
use serde_json::Value;
use taskdb::Backend;

/// Runs `verify --format json`, returning the exit code and the document.
fn verify_json(db: &TestDb) -> (i32, Value) {
    let output = db
        .taskdb()
        .args(["verify", "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), json)
}

/// The (kind, object) pairs of a verify document.
fn differences(json: &Value) -> Vec<(String, String)> {
    json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_has(found: &[(String, String)], kind: &str, object: &str) {
    assert!(
        found.iter().any(|(k, o)| k == kind && o == object),
        "expected {kind} on `{object}` among {found:#?}"
    );
}

both_backends!(clean_right_after_migrate, migrated, |db| {
    let before = schema_dump(&db);
    let out = db.taskdb().arg("verify").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for needle in [
        "Database Schema Verification",
        "Users Table:",
        "Indexes on Users:",
        "Indexes on Tasks:",
        "Foreign Key Constraints:",
        "users_email_lower_key (UNIQUE on lower(",
        "-> users.id (ON DELETE CASCADE)",
        "The schema matches taskdb's migrations",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // Every index the migrations built is listed, whichever they are.
    for index in index_names(&db) {
        assert!(text.contains(&index), "index {index} missing in:\n{text}");
    }
    let (code, json) = verify_json(&db);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["clean"], true);
    assert!(differences(&json).is_empty());
    // Verify only reads.
    assert_eq!(schema_dump(&db), before);
});

both_backends!(an_unmigrated_database_lacks_every_table, empty, |db| {
    // An existing but empty database (opening the SQLite file creates it;
    // verify itself refuses to create one).
    drop(db.conn());
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    let found = differences(&json);
    assert_has(&found, "missing_table", "table users");
    assert_has(&found, "missing_table", "table tasks");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        json["pending_migrations"],
        taskdb::migrate::migrations(db.backend).len()
    );
    let out = db.taskdb().arg("verify").assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("migration(s) are pending"), "{text}");
});

/// Names of the indexes on `users` and `tasks`, from the live catalog.
fn index_names(db: &TestDb) -> Vec<String> {
    db.rows(match db.backend {
        Backend::Postgres => {
            "SELECT indexname AS line FROM pg_indexes WHERE tablename IN ('users', 'tasks')"
        }
        Backend::Sqlite => {
            "SELECT name AS line FROM sqlite_master WHERE type = 'index' \
              AND tbl_name IN ('users', 'tasks') AND sql IS NOT NULL"
        }
    })
}

both_backends!(names_an_extra_and_a_duplicate_index, migrated, |db| {
    // A second copy of an index the migrations built on tasks (whichever
    // that is) under another name.
    let (name, definition) = {
        let rows = db.rows(match db.backend {
            Backend::Postgres => {
                "SELECT indexname || '|' || indexdef AS line FROM pg_indexes \
                  WHERE tablename = 'tasks' AND indexname <> 'tasks_pkey' ORDER BY 1 LIMIT 1"
            }
            Backend::Sqlite => {
                "SELECT name || '|' || sql AS line FROM sqlite_master WHERE type = 'index' \
                  AND tbl_name = 'tasks' AND sql IS NOT NULL ORDER BY 1 LIMIT 1"
            }
        });
        let (name, definition) = rows[0].split_once('|').unwrap();
        (name.to_string(), definition.to_string())
    };
    let copy = definition.replacen(&name, "tasks_index_again", 1);
    db.execute(&format!(
        "CREATE INDEX tasks_title_idx ON tasks (title);
         CREATE INDEX idx_tasks_user_id ON tasks (user_id);
         {copy};"
    ));
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    assert_eq!(json["clean"], false);
    let found = differences(&json);
    assert_has(&found, "extra_index", "index tasks_title_idx on tasks");
    assert_has(&found, "extra_index", "index idx_tasks_user_id on tasks");
    assert_has(
        &found,
        "redundant_index",
        "index idx_tasks_user_id on tasks",
    );
    assert_has(
        &found,
        "duplicate_index",
        "index tasks_index_again on tasks",
    );
    // A non-redundant extra index is drift, not redundancy.
    assert!(!found
        .iter()
        .any(|(k, o)| k == "redundant_index" && o.contains("tasks_title_idx")));
    // The text report lists them too, and exits 1.
    let out = db.taskdb().arg("verify").assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("redundant_index: index idx_tasks_user_id on tasks"));
});

both_backends!(names_a_dropped_foreign_key, migrated, |db| {
    match db.backend {
        Backend::Postgres => db.execute("ALTER TABLE tasks DROP CONSTRAINT fk_tasks_user_id"),
        // SQLite cannot drop a constraint: rebuild the table without it
        // (the down.sql of the migration that added it).
        Backend::Sqlite => db.execute(
            taskdb::migrate::resolve(Backend::Sqlite, "2026-02-08-000003")
                .unwrap()
                .down_sql()
                .unwrap(),
        ),
    }
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    let found = differences(&json);
    let name = match db.backend {
        Backend::Postgres => "fk_tasks_user_id",
        Backend::Sqlite => "tasks_user_id_fkey",
    };
    assert_has(
        &found,
        "missing_constraint",
        &format!("foreign key {name} on tasks"),
    );
});

#[test]
fn names_changed_columns_postgres() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "ALTER TABLE users ALTER COLUMN name TYPE TEXT;
         ALTER TABLE tasks ALTER COLUMN description SET NOT NULL;
         ALTER TABLE tasks ALTER COLUMN completed DROP DEFAULT;
         ALTER TABLE users ADD COLUMN nickname TEXT;",
    );
    let (_, json) = verify_json(&db);
    let found = differences(&json);
    assert_has(&found, "column_type", "column users.name");
    assert_has(&found, "column_nullability", "column tasks.description");
    assert_has(&found, "column_default", "column tasks.completed");
    assert_has(&found, "extra_column", "column users.nickname");
    let d = json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "column_type")
        .unwrap();
    assert_eq!(d["expected"], "character varying(255)");
    assert_eq!(d["actual"], "text");
}

#[test]
fn names_changed_columns_sqlite() {
    let db = TestDb::migrated(Backend::Sqlite);
    // SQLite alters a column by rebuilding its table: from the table the
    // migrations built (whatever columns they gave it), with two changed.
    let table =
        db.rows("SELECT sql AS line FROM sqlite_master WHERE type = 'table' AND name = 'tasks'");
    let body = &table[0][table[0].find('(').unwrap()..];
    let changed = body
        .replacen("title VARCHAR(255) NOT NULL", "title TEXT NOT NULL", 1)
        .replacen("description TEXT,", "description TEXT NOT NULL,", 1);
    assert_ne!(
        changed.matches("NOT NULL").count(),
        body.matches("NOT NULL").count()
    );
    assert!(changed.contains("title TEXT NOT NULL"), "{body}");
    let columns =
        db.rows("SELECT group_concat(name, ', ') AS line FROM pragma_table_info('tasks')");
    let dependents = db.rows(
        "SELECT sql AS line FROM sqlite_master WHERE tbl_name = 'tasks' \
          AND type IN ('index', 'trigger') AND sql IS NOT NULL",
    );
    db.execute(&format!(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE tasks_new {changed};
         INSERT INTO tasks_new ({cols}) SELECT {cols} FROM tasks;
         DROP TABLE tasks;
         ALTER TABLE tasks_new RENAME TO tasks;
         {dependents};
         PRAGMA foreign_keys = ON;",
        cols = columns[0],
        dependents = dependents.join(";\n"),
    ));
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    let found = differences(&json);
    assert_has(&found, "column_type", "column tasks.title");
    assert_has(&found, "column_nullability", "column tasks.description");
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn names_an_invalid_index_postgres() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "INSERT INTO users (id, email, password_hash, name) VALUES
             ('u1', 'a@example.com', 'x', 'Same Name'),
             ('u2', 'b@example.com', 'x', 'Same Name');",
    );
    // A concurrent build that fails leaves its index behind, INVALID.
    let failed = db
        .conn()
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY users_name_key ON users (name)");
    assert!(failed.is_err());
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    let found = differences(&json);
    assert_has(&found, "invalid_index", "index users_name_key on users");
    assert_has(&found, "extra_index", "index users_name_key on users");
    let out = db.taskdb().arg("verify").assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("users_name_key (UNIQUE on name) [INVALID]"),
        "{text}"
    );
}

#[test]
fn names_a_not_valid_constraint_and_nothing_else_postgres() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "ALTER TABLE tasks DROP CONSTRAINT fk_tasks_user_id;
         ALTER TABLE tasks ADD CONSTRAINT fk_tasks_user_id
             FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID;",
    );
    let (code, json) = verify_json(&db);
    assert_eq!(code, 1);
    assert_eq!(
        differences(&json),
        vec![(
            "not_valid_constraint".to_string(),
            "foreign key fk_tasks_user_id on tasks".to_string()
        )]
    );
}

#[test]
fn names_a_changed_delete_action_and_missing_trigger_postgres() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "ALTER TABLE tasks DROP CONSTRAINT fk_tasks_user_id;
         ALTER TABLE tasks ADD CONSTRAINT fk_tasks_user_id
             FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT;
         DROP TRIGGER set_updated_at ON users;
         DROP INDEX users_email_lower_key;",
    );
    let (_, json) = verify_json(&db);
    let found = differences(&json);
    assert_has(
        &found,
        "changed_constraint",
        "foreign key fk_tasks_user_id on tasks",
    );
    assert_has(&found, "missing_trigger", "trigger set_updated_at on users");
    assert_has(
        &found,
        "missing_index",
        "index users_email_lower_key on users",
    );
}

/// A login role without CREATEDB, dropped when the guard drops (declare it
/// before the database it owns, so the database goes first).
struct Role(String);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = common::admin().batch_execute(&format!("DROP ROLE IF EXISTS {}", self.0));
    }
}

#[test]
fn works_without_createdb_through_a_rolled_back_schema_postgres() {
    let role = Role(format!(
        "taskdb_nocreatedb_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    let db = TestDb::migrated(Backend::Postgres);
    common::admin()
        .batch_execute(&format!(
            "CREATE ROLE {} LOGIN NOCREATEDB; ALTER DATABASE {} OWNER TO {};",
            role.0,
            db.pg_name().unwrap(),
            role.0
        ))
        .unwrap();
    let mut url = url::Url::parse(&common::pg_url(db.pg_name().unwrap())).unwrap();
    url.set_username(&role.0).unwrap();
    url.set_password(None).unwrap();
    let url = url.to_string();
    let before = schema_dump(&db);
    let output = common::taskdb_cmd()
        .args(["--database-url", &url, "verify", "--format", "json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stderr));
    });
    assert_eq!(json["expected_from"], "scratch_schema", "{json:#}");
    assert_eq!(json["clean"], true, "{json:#}");
    assert_eq!(output.status.code(), Some(0));
    // Rolled back: nothing of the scratch schema is left.
    assert_eq!(schema_dump(&db), before);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname LIKE 'taskdb_verify_%'"),
        0
    );
}

#[test]
fn a_read_only_role_is_told_what_verify_needs_and_expected_from_builds_elsewhere_postgres() {
    let db = TestDb::migrated(Backend::Postgres);
    let name = db.pg_name().unwrap().to_string();
    // May read the schema, create nothing: no CREATEDB, no CREATE on the
    // database.
    let mut role = common::role::Role::create("taskdb_read_only");
    role.grant_in(
        &name,
        &format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}",
            role.name
        ),
    );
    let url = role.url(&name);
    let output = common::taskdb_at(&url).arg("verify").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    for needed in [role.name.as_str(), "CREATEDB", "--expected-from"] {
        assert!(error[0].contains(needed), "no {needed:?} in {stderr}");
    }

    // Built on a role that may: the comparison runs and is clean.
    let output = common::taskdb_at(&url)
        .args(["verify", "--format", "json", "--expected-from", db.url()])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stderr));
    });
    assert_eq!(json["clean"], true, "{json:#}");
    assert_eq!(json["expected_from"], "scratch_database", "{json:#}");
    assert_eq!(output.status.code(), Some(0));
}
