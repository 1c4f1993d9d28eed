//! `taskdb lint`: each rule's unsafe form is flagged and its safe form (the
//! recipe) is not; allow comments, backend parity, JSON, exit codes; and
//! taskdb's own migrations lint clean with fresh facts.

use crate::common;

use std::path::{Path, PathBuf};

use taskdb::lint::{self, Finding, Level};
use taskdb::source::LocalMigration;
use taskdb::Backend;

/// A migration before the one under test: what the app's schema looks
/// like, so type changes and earlier constraints are known.
const BASE: &str = "
CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY, user_id VARCHAR(255) NOT NULL,
  title VARCHAR(255) NOT NULL, description TEXT, completed BOOLEAN NOT NULL DEFAULT false,
  priority INTEGER, amount NUMERIC(10,2));
CREATE TABLE users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255) NOT NULL);
CREATE INDEX idx_tasks_title ON tasks (title);
";

fn migration(name: &str, up: &str, metadata: Option<&str>) -> LocalMigration {
    LocalMigration::from_files(
        name,
        format!("migrations/postgres/{name}"),
        up.into(),
        Some("SELECT 1;".into()),
        metadata.map(String::from),
    )
}

/// Findings of `up` (after [`BASE`] and `earlier`), transactional unless
/// `metadata` says otherwise.
fn lint_after(earlier: &[&str], up: &str, metadata: Option<&str>) -> Vec<Finding> {
    let mut ms = vec![migration("2026-01-01-000000_base", BASE, None)];
    for (i, sql) in earlier.iter().enumerate() {
        ms.push(migration(
            &format!("2026-01-02-00000{i}_earlier"),
            sql,
            None,
        ));
    }
    ms.push(migration("2026-01-03-000000_under_test", up, metadata));
    lint::lint_migrations(Backend::Postgres, &ms)
        .into_iter()
        .filter(|f| f.migration == "2026-01-03-000000_under_test")
        .collect()
}

fn lint_pg(up: &str) -> Vec<Finding> {
    lint_after(&[], up, None)
}

const NO_TX: &str = "run_in_transaction = false";

fn rules(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.name()).collect()
}

#[track_caller]
fn assert_flags(findings: &[Finding], rule: &str) {
    assert!(
        findings.iter().any(|f| f.rule.name() == rule && !f.allowed),
        "expected {rule}, got {:#?}",
        findings
    );
}

#[track_caller]
fn assert_clean(findings: &[Finding]) {
    assert!(
        findings.is_empty(),
        "expected no finding, got {findings:#?}"
    );
}

#[test]
fn index_create_drop_reindex_need_concurrently() {
    let f = lint_pg("CREATE INDEX idx_tasks_completed ON tasks (completed);");
    assert_flags(&f, "index-without-concurrently");
    assert_eq!(f[0].lock.as_deref(), Some("SHARE"));
    assert_eq!(f[0].blocks, Some(lint::Blocks::Writes));
    assert_eq!(f[0].table.as_deref(), Some("tasks"));
    assert!(f[0].recipe.as_deref().unwrap().contains(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_completed ON tasks (completed);"
    ));
    assert_clean(&lint_after(
        &[],
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_completed ON tasks (completed);",
        Some(NO_TX),
    ));

    let f = lint_pg("DROP INDEX idx_tasks_title;");
    assert_flags(&f, "index-without-concurrently");
    assert_eq!(
        f[0].table.as_deref(),
        Some("tasks"),
        "the index's table is known"
    );
    assert_clean(&lint_after(
        &[],
        "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_title;",
        Some(NO_TX),
    ));

    assert_flags(
        &lint_pg("REINDEX INDEX idx_tasks_title;"),
        "index-without-concurrently",
    );
    assert_flags(
        &lint_pg("REINDEX TABLE tasks;"),
        "index-without-concurrently",
    );
    assert_clean(&lint_after(
        &[],
        "REINDEX INDEX CONCURRENTLY idx_tasks_title;",
        Some(NO_TX),
    ));
}

#[test]
fn concurrently_needs_a_migration_without_transaction_and_one_statement() {
    let f = lint_pg("CREATE INDEX CONCURRENTLY idx_tasks_completed ON tasks (completed);");
    assert_eq!(rules(&f), ["concurrently-in-transaction"]);
    // A metadata.toml without the key is Diesel's false... but a file that
    // says true is a transaction.
    let f = lint_after(
        &[],
        "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_title;",
        Some("run_in_transaction = true"),
    );
    assert_eq!(rules(&f), ["concurrently-in-transaction"]);
    let f = lint_after(
        &[],
        "CREATE INDEX CONCURRENTLY a ON tasks (completed);\nCREATE INDEX CONCURRENTLY b ON tasks (priority);",
        Some(NO_TX),
    );
    assert_eq!(rules(&f), ["concurrently-in-transaction"]);
    assert_eq!(f[0].line, 2);
    assert_flags(&lint_pg("VACUUM tasks;"), "concurrently-in-transaction");
    assert_clean(&lint_after(&[], "VACUUM (ANALYZE) tasks;", Some(NO_TX)));
}

#[test]
fn foreign_keys_and_checks_need_not_valid() {
    let f =
        lint_pg("ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);");
    assert_flags(&f, "constraint-without-not-valid");
    assert_eq!(f[0].lock.as_deref(), Some("SHARE ROW EXCLUSIVE"));
    let f = lint_pg("ALTER TABLE tasks ADD CONSTRAINT title_not_blank CHECK (title <> '');");
    assert_flags(&f, "constraint-without-not-valid");
    assert_eq!(f[0].lock.as_deref(), Some("ACCESS EXCLUSIVE"));
    assert_eq!(f[0].blocks, Some(lint::Blocks::Both));
    assert!(f[0].recipe.as_deref().unwrap().starts_with(
        "ALTER TABLE tasks ADD CONSTRAINT title_not_blank CHECK (title <> '') NOT VALID;"
    ));

    assert_clean(&lint_pg(
        "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    ));
    assert_clean(&lint_after(
        &["ALTER TABLE tasks ADD CONSTRAINT title_not_blank CHECK (title <> '') NOT VALID;"],
        "ALTER TABLE tasks VALIDATE CONSTRAINT title_not_blank;",
        None,
    ));
    // NOT VALID then VALIDATE in one transaction: the scan runs under the
    // ADD's lock.
    let f = lint_pg(
        "ALTER TABLE tasks ADD CONSTRAINT title_not_blank CHECK (title <> '') NOT VALID;\nALTER TABLE tasks VALIDATE CONSTRAINT title_not_blank;",
    );
    assert_eq!(rules(&f), ["constraint-without-not-valid"]);
    assert_eq!(f[0].line, 2);
}

#[test]
fn unique_and_primary_key_constraints_use_a_concurrent_index() {
    let f = lint_pg("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);");
    assert_flags(&f, "unique-constraint-under-lock");
    let recipe = f[0].recipe.as_deref().unwrap();
    assert!(
        recipe.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);"
        ),
        "{recipe}"
    );
    assert!(
        recipe.contains("ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key"),
        "{recipe}"
    );
    assert_flags(
        &lint_pg("ALTER TABLE tasks ADD PRIMARY KEY (id, user_id);"),
        "unique-constraint-under-lock",
    );
    assert_flags(
        &lint_pg("ALTER TABLE tasks ADD COLUMN code VARCHAR(20) UNIQUE;"),
        "unique-constraint-under-lock",
    );
    assert_clean(&lint_after(
        &[],
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);",
        Some(NO_TX),
    ));
    assert_clean(&lint_pg(
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
    ));
}

#[test]
fn set_not_null_needs_a_validated_check_from_before() {
    let f = lint_pg("ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;");
    assert_flags(&f, "set-not-null-without-check");
    assert!(f[0]
        .recipe
        .as_deref()
        .unwrap()
        .contains("CHECK (priority IS NOT NULL) NOT VALID"));
    // The three-migration recipe: added NOT VALID, validated, then SET NOT NULL.
    assert_clean(&lint_after(
        &[
            "ALTER TABLE tasks ADD CONSTRAINT tasks_priority_not_null CHECK (priority IS NOT NULL) NOT VALID;",
            "ALTER TABLE tasks VALIDATE CONSTRAINT tasks_priority_not_null;",
        ],
        "ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;\nALTER TABLE tasks DROP CONSTRAINT tasks_priority_not_null;",
        None,
    ));
    // Added but never validated: PostgreSQL still scans.
    assert_flags(
        &lint_after(
            &["ALTER TABLE tasks ADD CONSTRAINT tasks_priority_not_null CHECK (priority IS NOT NULL) NOT VALID;"],
            "ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;",
            None,
        ),
        "set-not-null-without-check",
    );
    // A check on another column does not count.
    assert_flags(
        &lint_after(
            &["ALTER TABLE tasks ADD CONSTRAINT c CHECK (description IS NOT NULL);"],
            "ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;",
            None,
        ),
        "set-not-null-without-check",
    );
}

#[test]
fn type_changes_that_rewrite_are_flagged_and_binary_coercible_ones_are_not() {
    for unsafe_change in [
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(100);",
        "ALTER TABLE tasks ALTER COLUMN priority TYPE BIGINT;",
        "ALTER TABLE tasks ALTER COLUMN description TYPE VARCHAR(50);",
        "ALTER TABLE tasks ALTER COLUMN amount TYPE NUMERIC(12,4);",
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500) USING upper(title);",
        "ALTER TABLE tasks ALTER COLUMN not_in_these_migrations TYPE TEXT;",
    ] {
        assert_flags(&lint_pg(unsafe_change), "column-type-rewrite");
    }
    for free in [
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500);",
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR;",
        "ALTER TABLE tasks ALTER COLUMN title TYPE TEXT;",
        "ALTER TABLE tasks ALTER COLUMN description TYPE VARCHAR;",
        "ALTER TABLE tasks ALTER COLUMN amount TYPE NUMERIC(14,2);",
    ] {
        // No rewrite, but the app's prepared queries break: a warning only.
        let f = lint_pg(free);
        assert_eq!(rules(&f), ["column-type-breaks-cached-plans"], "{free}");
        assert_eq!(f[0].level, Level::Warning);
    }
    assert_clean(&lint_pg(
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(255);",
    ));
    // Widened once, then again: the second change knows the first.
    assert_eq!(
        rules(&lint_after(
            &["ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500);"],
            "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(1000);",
            None,
        )),
        ["column-type-breaks-cached-plans"]
    );
    assert_clean(&lint_after(
        &["ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500);"],
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500);",
        None,
    ));
}

/// A type change PostgreSQL makes without a rewrite still changes what a
/// query returning the column gives back: every connection that prepared
/// such a query fails with SQLSTATE 0A000 until it reconnects. Lint says so
/// (a warning, with the recipe), and `--deny warnings` refuses it.
#[test]
fn a_type_change_without_rewrite_warns_that_prepared_queries_break() {
    let f = lint_pg("ALTER TABLE tasks ALTER COLUMN title TYPE text;");
    assert_flags(&f, "column-type-breaks-cached-plans");
    assert_eq!(f[0].level, Level::Warning);
    assert_eq!(f[0].table.as_deref(), Some("tasks"));
    assert!(f[0].message.contains("0A000"), "{}", f[0].message);
    let recipe = f[0].recipe.as_deref().unwrap();
    assert!(recipe.contains("ADD COLUMN title_new text"), "{recipe}");

    let dir = tempfile::tempdir().unwrap();
    write_migrations(
        dir.path(),
        "postgres",
        &[
            (
                "2026-01-01-000000_base",
                "CREATE TABLE tasks (id SERIAL PRIMARY KEY, title VARCHAR(255) NOT NULL);",
                None,
            ),
            (
                "2026-01-03-000000_title_text",
                "ALTER TABLE tasks ALTER COLUMN title TYPE text;",
                None,
            ),
        ],
    );
    let pg = dir.path().join("postgres");
    common::taskdb_cmd()
        .arg("lint")
        .arg(&pg)
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "warning[column-type-breaks-cached-plans]",
        ))
        .stdout(predicates::str::contains("0 error(s), 1 warning(s)"));
    common::taskdb_cmd()
        .args(["lint", "--deny", "warnings"])
        .arg(&pg)
        .assert()
        .code(1);
}

#[test]
fn add_column_not_null_volatile_serial_identity() {
    assert_flags(
        &lint_pg("ALTER TABLE tasks ADD COLUMN archived BOOLEAN NOT NULL;"),
        "add-column-not-null-without-default",
    );
    for rewrite in [
        "ALTER TABLE tasks ADD COLUMN archived_at TIMESTAMP NOT NULL DEFAULT clock_timestamp();",
        "ALTER TABLE tasks ADD COLUMN token UUID DEFAULT gen_random_uuid();",
        "ALTER TABLE tasks ADD COLUMN seq BIGSERIAL;",
        "ALTER TABLE tasks ADD COLUMN n SERIAL;",
        "ALTER TABLE tasks ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY;",
        "ALTER TABLE tasks ADD COLUMN t INTEGER GENERATED ALWAYS AS (priority * 2) STORED;",
    ] {
        assert_flags(&lint_pg(rewrite), "add-column-volatile-default");
    }
    for free in [
        "ALTER TABLE tasks ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;",
        "ALTER TABLE tasks ADD COLUMN archived_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC');",
        "ALTER TABLE tasks ADD COLUMN seen_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP;",
        "ALTER TABLE tasks ADD COLUMN note TEXT;",
    ] {
        assert_clean(&lint_pg(free));
    }
}

#[test]
fn renames_drops_truncate_lock_vacuum_full_cluster() {
    for (sql, rule) in [
        (
            "ALTER TABLE tasks DROP COLUMN description;",
            "rename-or-drop",
        ),
        (
            "ALTER TABLE tasks RENAME COLUMN title TO name;",
            "rename-or-drop",
        ),
        ("ALTER TABLE tasks RENAME TO todo;", "rename-or-drop"),
        ("DROP TABLE tasks;", "rename-or-drop"),
        ("TRUNCATE tasks;", "truncate"),
        ("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;", "lock-table"),
        ("LOCK TABLE tasks IN SHARE MODE;", "lock-table"),
        ("CLUSTER tasks USING idx_tasks_title;", "cluster"),
    ] {
        assert_flags(&lint_pg(sql), rule);
    }
    let f = lint_after(&[], "VACUUM FULL tasks;", Some(NO_TX));
    assert_eq!(rules(&f), ["vacuum-full"]);
    assert_eq!(f[0].lock.as_deref(), Some("ACCESS EXCLUSIVE"));
    // A weak lock mode blocks nobody the app needs.
    assert_clean(&lint_pg("LOCK TABLE tasks IN ACCESS SHARE MODE;"));
}

#[test]
fn whole_table_update_or_delete_is_an_unbatched_backfill() {
    let f = lint_pg("UPDATE tasks SET completed = false;");
    assert_flags(&f, "unbatched-backfill");
    assert_flags(&lint_pg("DELETE FROM tasks;"), "unbatched-backfill");
    assert_clean(&lint_pg("UPDATE tasks SET completed = false WHERE id = 1;"));
}

#[test]
fn a_table_created_earlier_in_the_same_migration_gets_no_locking_finding() {
    assert_clean(&lint_pg(
        "CREATE TABLE labels (id SERIAL PRIMARY KEY, task_id INTEGER, name VARCHAR(50));
         CREATE INDEX idx_labels_task ON labels (task_id);
         ALTER TABLE labels ADD CONSTRAINT fk FOREIGN KEY (task_id) REFERENCES tasks (id);
         ALTER TABLE labels ADD CONSTRAINT name_not_blank CHECK (name <> '');
         ALTER TABLE labels ADD CONSTRAINT labels_name_key UNIQUE (name);
         ALTER TABLE labels ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT clock_timestamp();
         ALTER TABLE labels ADD COLUMN seq BIGSERIAL;
         ALTER TABLE labels ALTER COLUMN name SET NOT NULL;
         ALTER TABLE labels ALTER COLUMN name TYPE VARCHAR(20);
         UPDATE labels SET name = lower(name);
         LOCK TABLE labels IN ACCESS EXCLUSIVE MODE;
         TRUNCATE labels;
         DROP INDEX idx_labels_task;
         ALTER TABLE labels RENAME COLUMN name TO title;
         ALTER TABLE labels DROP COLUMN seq;",
    ));
    // The same statements on the existing table are findings.
    assert_flags(
        &lint_pg("CREATE TABLE labels (id SERIAL PRIMARY KEY);\nCREATE INDEX idx_tasks_x ON tasks (title);"),
        "index-without-concurrently",
    );
}

#[test]
fn taskdbs_own_legacy_steps_are_not_findings() {
    // CREATE TABLE IF NOT EXISTS creates (or adopts) the table: the same
    // file's statements on it are new-table statements.
    assert_clean(&lint::lint_migrations(
        Backend::Postgres,
        &[migration(
            "2026-01-01-000000_adopt",
            "CREATE TABLE IF NOT EXISTS t (id INT);\nDROP TRIGGER IF EXISTS set_updated_at ON t;\nSELECT 1;",
            None,
        )],
    ));
}

#[test]
fn a_file_that_does_not_parse_is_an_error_finding() {
    let f = lint_pg("CREATE TABLE (;\nSELECT 1;");
    assert_eq!(rules(&f), ["parse-error"]);
    assert_eq!(f[0].level, Level::Error);
    assert!(f[0].message.contains("syntax error"), "{}", f[0].message);
}

#[test]
fn missing_or_empty_down_is_a_warning() {
    let with_down = |down: Option<&str>| {
        let name = "2026-01-01-000000_x";
        let location = format!("migrations/postgres/{name}");
        LocalMigration::from_files(
            name,
            location,
            "SELECT 1;".into(),
            down.map(String::from),
            None,
        )
    };
    let f = lint::lint_migrations(Backend::Postgres, &[with_down(None)]);
    assert_eq!(rules(&f), ["missing-down"]);
    assert_eq!(f[0].level, Level::Warning);
    let m = with_down(Some("  \n"));
    assert_eq!(
        rules(&lint::lint_migrations(Backend::Postgres, &[m])),
        ["missing-down"]
    );
}

#[test]
fn allow_comment_with_a_reason_marks_the_finding_allowed() {
    let f = lint_pg(
        "-- taskdb:allow index-without-concurrently tasks is empty until the import job runs\nCREATE INDEX idx_tasks_completed ON tasks (completed);",
    );
    assert_eq!(rules(&f), ["index-without-concurrently"]);
    assert!(f[0].allowed);
    assert_eq!(
        f[0].allow_reason.as_deref(),
        Some("tasks is empty until the import job runs")
    );
    // Only the statement right after it.
    let f = lint_pg(
        "-- taskdb:allow index-without-concurrently small table\nCREATE INDEX a ON tasks (completed);\n\nCREATE INDEX b ON tasks (priority);",
    );
    assert_eq!(f.iter().filter(|f| f.allowed).count(), 1, "{f:#?}");
    assert_eq!(f.iter().filter(|f| !f.allowed).count(), 1, "{f:#?}");
}

#[test]
fn allow_comment_without_a_reason_is_an_error_and_allows_nothing() {
    let f = lint_pg(
        "-- taskdb:allow index-without-concurrently\nCREATE INDEX idx_tasks_completed ON tasks (completed);",
    );
    assert_eq!(
        rules(&f),
        ["allow-without-reason", "index-without-concurrently"]
    );
    assert!(f.iter().all(|f| !f.allowed && f.level == Level::Error));
    assert_eq!(f[0].line, 1);
    let f = lint_pg("-- taskdb:allow no-such-rule because\nSELECT 1;");
    assert_eq!(rules(&f), ["allow-unknown-rule"]);
}

#[test]
fn metadata_allow_list_allows_without_touching_up_sql() {
    let f = lint_after(
        &[],
        "CREATE INDEX idx_tasks_completed ON tasks (completed);",
        Some("run_in_transaction = true\n[lint]\nallow = [{ rule = \"index-without-concurrently\", reason = \"applied in 2026 on an empty table\" }]"),
    );
    assert_eq!(rules(&f), ["index-without-concurrently"]);
    assert!(f[0].allowed);
    let f = lint_after(
        &[],
        "CREATE INDEX idx_tasks_completed ON tasks (completed);",
        Some("run_in_transaction = true\n[lint]\nallow = [{ rule = \"index-without-concurrently\" }]"),
    );
    assert_eq!(
        rules(&f),
        ["allow-without-reason", "index-without-concurrently"]
    );
    assert!(!f[1].allowed);
}

fn lint_sqlite(up: &str) -> Vec<Finding> {
    lint::lint_migrations(
        Backend::Sqlite,
        &[
            migration(
                "2026-01-01-000000_base",
                "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT);",
                None,
            )
            .relocated("migrations/sqlite/2026-01-01-000000_base".into()),
            migration("2026-01-02-000000_under_test", up, None),
        ],
    )
}

#[test]
fn sqlite_non_constant_default_and_unsupported_alter_are_warnings() {
    for sql in [
        "ALTER TABLE tasks ADD COLUMN created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP;",
        "ALTER TABLE tasks ADD COLUMN n INTEGER DEFAULT (random());",
    ] {
        let f = lint_sqlite(sql);
        assert_eq!(rules(&f), ["sqlite-non-constant-default"], "{sql}");
        assert_eq!(f[0].level, Level::Warning);
    }
    for sql in [
        "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(10);",
        "ALTER TABLE tasks ADD CONSTRAINT c CHECK (title <> '');",
        "ALTER TABLE tasks ADD COLUMN code TEXT UNIQUE;",
        "ALTER TABLE tasks ADD COLUMN done BOOLEAN NOT NULL;",
    ] {
        assert_eq!(
            rules(&lint_sqlite(sql)),
            ["sqlite-unsupported-alter"],
            "{sql}"
        );
    }
    for sql in [
        "ALTER TABLE tasks ADD COLUMN done BOOLEAN NOT NULL DEFAULT 0;",
        "ALTER TABLE tasks RENAME COLUMN title TO name;",
        "ALTER TABLE tasks DROP COLUMN title;",
        "ALTER TABLE tasks RENAME TO todo;",
        "CREATE TABLE t (id INTEGER);\nALTER TABLE t ADD COLUMN at TIMESTAMP DEFAULT CURRENT_TIMESTAMP;",
        "CREATE TRIGGER x AFTER UPDATE ON tasks BEGIN UPDATE tasks SET title = 'a; b' WHERE id = NEW.id; END;",
    ] {
        assert_clean(&lint_sqlite(sql));
    }
}

// --- the binary -------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/lint").join(rel)
}

/// Writes migration directories under `root/<backend>/`.
fn write_migrations(root: &Path, backend: &str, migrations: &[(&str, &str, Option<&str>)]) {
    for (name, up, metadata) in migrations {
        let dir = root.join(backend).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("up.sql"), up).unwrap();
        std::fs::write(dir.join("down.sql"), "SELECT 1;").unwrap();
        if let Some(m) = metadata {
            std::fs::write(dir.join("metadata.toml"), m).unwrap();
        }
    }
}

#[test]
fn taskdbs_own_migrations_lint_clean() {
    common::taskdb_cmd()
        .current_dir(repo())
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success()
        .stdout(predicates::str::contains("0 error(s), 0 warning(s)"));
}

#[test]
fn the_facts_file_is_fresh_and_the_check_can_fail() {
    let migrations = lint::read_dir(&repo().join("migrations/postgres")).unwrap();
    let migrations: Vec<LocalMigration> = migrations
        .into_iter()
        .map(|m| m.relocated(format!("migrations/postgres/{}", m.dir_name())))
        .collect();
    let text = std::fs::read_to_string(repo().join("migrations/lint-facts.json")).unwrap();
    lint::preflight::check_facts(&migrations, &text).unwrap();
    lint::preflight::check_embedded_facts().unwrap();

    // An edited up.sql, a new migration, a new finding: each is caught.
    let mut edited = migrations.clone();
    edited[1] = LocalMigration::from_files(
        edited[1].dir_name(),
        edited[1].location().into(),
        format!("{}\n-- edited\n", edited[1].up_sql()),
        edited[1].down_sql().map(String::from),
        edited[1].metadata().map(String::from),
    );
    assert!(lint::preflight::check_facts(&edited, &text)
        .unwrap_err()
        .contains("changed"));
    let mut added = migrations.clone();
    added.push(migration(
        "2099-01-01-000000_new",
        "CREATE INDEX i ON tasks (title);",
        None,
    ));
    assert!(lint::preflight::check_facts(&added, &text)
        .unwrap_err()
        .contains("missing"));
    let fake = text.replacen("\"findings\": []", "\"findings\": [{\"rule\": \"truncate\", \"level\": \"error\", \"migration\": \"x\", \"file\": \"x\", \"line\": 1, \"column\": 1, \"table\": null, \"lock\": null, \"blocks\": null, \"holds\": null, \"message\": \"\", \"recipe\": null, \"allowed\": false, \"allow_reason\": null}]", 1);
    assert_ne!(fake, text);
    assert!(lint::preflight::check_facts(&migrations, &fake)
        .unwrap_err()
        .contains("differ"));

    // And through the CLI, as CI runs it.
    common::taskdb_cmd()
        .current_dir(repo())
        .args(["lint", "--check-facts", "migrations/lint-facts.json"])
        .assert()
        .success();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("facts.json"), &fake).unwrap();
    common::taskdb_cmd()
        .current_dir(repo())
        .args(["lint", "--check-facts"])
        .arg(dir.path().join("facts.json"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is stale"));
}

#[test]
fn the_issue_12_migration_is_refused_with_the_recipe_that_runs_online() {
    let out = common::taskdb_cmd()
        .arg("lint")
        .arg(fixture("issue12/unsafe/postgres"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for expected in [
        "error[index-without-concurrently]",
        "error[constraint-without-not-valid]",
        "error[add-column-volatile-default]",
        "2026-03-01-000001_archive_tasks/up.sql:3:1",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_title ON tasks (title);",
        "CHECK (title <> '') NOT VALID;",
        "ALTER TABLE tasks VALIDATE CONSTRAINT tasks_title_not_blank;",
        "3 error(s)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The three-migration rewrite lints clean.
    common::taskdb_cmd()
        .arg("lint")
        .arg(fixture("issue12/safe/postgres"))
        .assert()
        .success();
}

#[test]
fn json_output_is_one_document_with_every_field() {
    let out = common::taskdb_cmd()
        .args(["lint", "--format", "json"])
        .arg(fixture("issue12/unsafe/postgres"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3);
    for key in [
        "rule", "level", "file", "line", "column", "table", "lock", "blocks", "message", "recipe",
        "allowed",
    ] {
        assert!(findings[0].get(key).is_some(), "no {key}: {}", findings[0]);
    }
    assert_eq!(findings[0]["rule"], "index-without-concurrently");
    assert_eq!(findings[0]["level"], "error");
    assert_eq!(findings[0]["line"], 3);
    assert_eq!(findings[0]["table"], "tasks");
    assert_eq!(findings[0]["lock"], "SHARE");
    assert_eq!(findings[0]["blocks"], "writes");
    assert_eq!(findings[1]["blocks"], "both");
    assert_eq!(findings[0]["allowed"], false);
    assert_eq!(doc["errors"], 3);
}

#[test]
fn exit_codes_and_deny_warnings() {
    let dir = tempfile::tempdir().unwrap();
    write_migrations(
        dir.path(),
        "postgres",
        &[("2026-01-01-000000_warn", "CREATE TABLE t (id INT);", None)],
    );
    std::fs::remove_file(dir.path().join("postgres/2026-01-01-000000_warn/down.sql")).unwrap();
    let pg = dir.path().join("postgres");
    common::taskdb_cmd()
        .arg("lint")
        .arg(&pg)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("warning[missing-down]"));
    common::taskdb_cmd()
        .args(["lint", "--deny", "warnings"])
        .arg(&pg)
        .assert()
        .code(1);
    common::taskdb_cmd()
        .args(["lint", "no/such/dir"])
        .assert()
        .code(2)
        .stderr(predicates::str::starts_with("error: "));
    // A directory whose name says no backend, without --backend: usage.
    let other = tempfile::tempdir().unwrap();
    write_migrations(
        other.path(),
        "elsewhere",
        &[("2026-01-01-000000_x", "SELECT 1;", None)],
    );
    common::taskdb_cmd()
        .arg("lint")
        .arg(other.path().join("elsewhere"))
        .assert()
        .code(2);
    common::taskdb_cmd()
        .args(["lint", "--backend", "postgres"])
        .arg(other.path().join("elsewhere"))
        .assert()
        .code(0);
    common::taskdb_cmd()
        .args(["lint", "--format", "yaml"])
        .assert()
        .code(2);
    // Lint reads no DATABASE_URL: a broken one has no say.
    common::taskdb_cmd()
        .env("DATABASE_URL", "nonsense://x")
        .arg("lint")
        .arg(&pg)
        .assert()
        .code(0);
    common::taskdb_cmd()
        .args(["lint", "--database-url", "nonsense://x"])
        .arg(&pg)
        .assert()
        .code(1)
        .stderr(predicates::str::starts_with("error: "));
}

#[test]
fn backend_parity_when_both_directories_are_linted() {
    let dir = tempfile::tempdir().unwrap();
    write_migrations(
        dir.path(),
        "postgres",
        &[
            (
                "2026-01-01-000001_create_t",
                "CREATE TABLE t (id INT);",
                None,
            ),
            (
                "2026-01-01-000002_index_t",
                "CREATE INDEX CONCURRENTLY i ON t (id);",
                Some("run_in_transaction = false"),
            ),
        ],
    );
    write_migrations(
        dir.path(),
        "sqlite",
        &[(
            "2026-01-01-000001_create_t",
            "CREATE TABLE t (id INTEGER);",
            None,
        )],
    );
    let both = |cmd: &mut assert_cmd::Command| {
        cmd.arg("lint")
            .arg(dir.path().join("postgres"))
            .arg(dir.path().join("sqlite"));
    };
    let mut cmd = common::taskdb_cmd();
    both(&mut cmd);
    cmd.assert().code(1).stdout(predicates::str::contains(
        "error[backend-parity]: 2026-01-01-000002_index_t has no sqlite counterpart",
    ));
    // One migration directory alone: no parity check.
    common::taskdb_cmd()
        .arg("lint")
        .arg(dir.path().join("postgres/2026-01-01-000002_index_t"))
        .assert()
        .success();
    // Marked backend-only without a reason: still an error.
    let meta = dir
        .path()
        .join("postgres/2026-01-01-000002_index_t/metadata.toml");
    std::fs::write(
        &meta,
        "run_in_transaction = false\n[lint]\nbackend_only = { backend = \"postgres\" }\n",
    )
    .unwrap();
    let mut cmd = common::taskdb_cmd();
    both(&mut cmd);
    cmd.assert()
        .code(1)
        .stdout(predicates::str::contains("without a reason"));
    // With a reason: clean.
    std::fs::write(&meta, "run_in_transaction = false\n[lint]\nbackend_only = { backend = \"postgres\", reason = \"SQLite builds it with the table\" }\n").unwrap();
    let mut cmd = common::taskdb_cmd();
    both(&mut cmd);
    cmd.assert().success();
}

#[test]
fn a_single_migration_directory_sees_the_migrations_before_it() {
    let dir = tempfile::tempdir().unwrap();
    write_migrations(
        dir.path(),
        "postgres",
        &[
            ("2026-01-01-000001_create_t", "CREATE TABLE t (id INT, name VARCHAR(10));", None),
            ("2026-01-01-000002_check", "ALTER TABLE t ADD CONSTRAINT t_name_not_null CHECK (name IS NOT NULL) NOT VALID;", None),
            ("2026-01-01-000003_validate", "ALTER TABLE t VALIDATE CONSTRAINT t_name_not_null;", None),
            ("2026-01-01-000004_not_null", "ALTER TABLE t ALTER COLUMN name SET NOT NULL;\nALTER TABLE t ALTER COLUMN name TYPE VARCHAR(20);", None),
        ],
    );
    common::taskdb_cmd()
        .arg("lint")
        .arg(dir.path().join("postgres/2026-01-01-000004_not_null"))
        .assert()
        .success()
        .stdout(predicates::str::contains("1 migration(s): 0 error(s)"));
}

#[test]
fn squawk_misses_are_all_flagged() {
    // The five unsafe migrations squawk 2.70 (safety rules) let through.
    for (sql, metadata, rule) in [
        (
            "CREATE INDEX CONCURRENTLY idx_tasks_completed ON tasks (completed);",
            None,
            "concurrently-in-transaction",
        ),
        ("VACUUM FULL tasks;", Some(NO_TX), "vacuum-full"),
        (
            "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;",
            None,
            "lock-table",
        ),
        ("TRUNCATE tasks;", None, "truncate"),
        (
            "ALTER TABLE tasks ADD COLUMN seq BIGSERIAL;",
            None,
            "add-column-volatile-default",
        ),
    ] {
        assert_flags(&lint_after(&[], sql, metadata), rule);
    }
}

#[test]
fn every_shape_taskdb_new_writes_lints_clean() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("Cargo.toml"), dir.path().join("Cargo.toml")).unwrap();
    let mut existing = 0;
    for backend in ["postgres", "sqlite"] {
        let from = repo().join("migrations").join(backend);
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            existing += 1;
            let to = dir
                .path()
                .join("migrations")
                .join(backend)
                .join(entry.file_name());
            std::fs::create_dir_all(&to).unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
            }
        }
    }
    for args in [
        &[
            "add_tasks_due_on",
            "--add-column",
            "tasks",
            "due_on",
            "date",
        ][..],
        &[
            "add_tasks_flag",
            "--add-column",
            "tasks",
            "flag",
            "boolean",
            "--not-null",
            "--default",
            "false",
        ],
        &["index_tasks_due_on", "--add-index", "tasks", "due_on"],
        &[
            "unique_tasks_title",
            "--add-index",
            "tasks",
            "user_id,title",
            "--unique",
        ],
        &[
            "tasks_owner_fk",
            "--add-foreign-key",
            "tasks.user_id",
            "users.id",
        ],
        &[
            "tasks_title_not_blank",
            "--add-check",
            "tasks",
            "title <> ''",
        ],
        &[
            "tasks_description_not_null",
            "--set-not-null",
            "tasks.description",
        ],
        &["skeleton"],
    ] {
        common::taskdb_cmd()
            .current_dir(dir.path())
            .arg("new")
            .args(args)
            .assert()
            .success();
    }
    let out = common::taskdb_cmd()
        .current_dir(dir.path())
        .args(["lint", "--deny", "warnings"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 error(s), 0 warning(s)"), "{text}");
    // The shapes are there: 12 new migrations per backend.
    let linted = format!("lint: {} migration(s)", existing + 24);
    assert!(text.contains(&linted), "{text}");
}

// What lint missed before its parser was replaced (each failed then).

/// `CREATE TABLE IF NOT EXISTS tasks` creates nothing when `tasks` exists,
/// so the index after it is built on the live table.
#[test]
fn create_table_if_not_exists_does_not_hide_an_index_on_the_live_table() {
    let f = lint_pg(
        "CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY);\nCREATE INDEX idx_tasks_completed ON tasks (completed);",
    );
    assert_flags(&f, "index-without-concurrently");
    assert_eq!(f[0].table.as_deref(), Some("tasks"));
}

#[test]
fn a_statement_that_changes_a_timeout_is_flagged() {
    for sql in [
        "SET lock_timeout = 0;\nALTER TABLE tasks ADD COLUMN note TEXT;",
        "SET LOCAL lock_timeout = '10s';",
        "SET statement_timeout = 0;",
        "RESET lock_timeout;",
    ] {
        let f = lint_pg(sql);
        assert_eq!(rules(&f), ["timeout-override"], "{sql}");
        assert_eq!(f[0].level, Level::Error);
    }
}

#[test]
fn whole_table_rewrites_and_scans_are_flagged() {
    for (sql, rule) in [
        ("ALTER TABLE tasks SET UNLOGGED;", "table-rewrite"),
        ("ALTER TABLE tasks SET LOGGED;", "table-rewrite"),
        (
            "ALTER TABLE tasks SET TABLESPACE pg_default;",
            "table-rewrite",
        ),
        (
            "ALTER TABLE tasks ADD COLUMN p INTEGER DEFAULT 0 CHECK (p >= 0);",
            "constraint-without-not-valid",
        ),
        (
            "ALTER TABLE tasks ADD COLUMN owner VARCHAR(255) DEFAULT 'u1' REFERENCES users;",
            "constraint-without-not-valid",
        ),
        (
            "REFRESH MATERIALIZED VIEW task_counts;",
            "refresh-without-concurrently",
        ),
    ] {
        assert_eq!(rules(&lint_pg(sql)), [rule], "{sql}");
    }
    assert_clean(&lint_pg(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY task_counts;",
    ));
}

#[test]
fn ddl_lint_cannot_see_gets_a_warning() {
    for sql in [
        "DO $$ BEGIN EXECUTE 'CREATE INDEX ON tasks (title)'; END $$;",
        "EXECUTE make_index;",
        "SELECT rebuild_task_indexes();",
    ] {
        let f = lint_pg(sql);
        assert_eq!(rules(&f), ["opaque-statement"], "{sql}");
        assert_eq!(f[0].level, Level::Warning);
        assert!(
            f[0].message
                .contains("cannot check statements inside DO/EXECUTE"),
            "{}",
            f[0].message
        );
    }
}

/// Two statements on the line after an allow comment: only the first is
/// allowed.
#[test]
fn an_allow_comment_allows_exactly_the_statement_after_it() {
    let f = lint_pg(
        "-- taskdb:allow index-without-concurrently users is small\nCREATE INDEX a ON users (email); CREATE INDEX b ON tasks (title);",
    );
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f[0].table.as_deref(), Some("users"));
    assert!(f[0].allowed);
    assert_eq!(f[1].table.as_deref(), Some("tasks"));
    assert!(!f[1].allowed, "the second statement is not allowed");
}

#[test]
fn a_schema_qualified_table_keeps_its_schema_in_findings() {
    let f = lint_pg("CREATE INDEX idx_big_x ON app.big (x);");
    assert_eq!(f[0].table.as_deref(), Some("app.big"));
    let f = lint_pg("CREATE INDEX idx_tasks_x ON public.tasks (title);");
    assert_eq!(
        f[0].table.as_deref(),
        Some("tasks"),
        "public is the default schema"
    );
}

#[test]
fn an_up_sql_that_is_not_utf8_is_a_finding_about_that_file() {
    let root = tempfile::tempdir().unwrap();
    write_migrations(
        root.path(),
        "postgres",
        &[("2030-01-01-000001_fine", "SELECT 1;", None)],
    );
    let bad = root.path().join("postgres/2030-01-01-000002_latin1");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("up.sql"), b"-- caf\xe9\nSELECT 1;\n").unwrap();
    std::fs::write(bad.join("down.sql"), "SELECT 1;").unwrap();
    let out = common::taskdb_cmd()
        .arg("lint")
        .arg(root.path().join("postgres"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("error[parse-error]"), "{stdout}");
    assert!(
        stdout.contains("2030-01-01-000002_latin1/up.sql"),
        "{stdout}"
    );
    assert!(stdout.contains("not UTF-8"), "{stdout}");
}
