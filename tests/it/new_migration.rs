//! `taskdb new`: the files it writes in a copy of the crate, its refusals,
//! and every kind's migrations applied, reverted and re-applied on both
//! backends, read from that copy with `--migrations-dir`.

use crate::common;
use crate::rows;

use std::fs;

use common::checkout::{checkout_copy, copy_dir, crate_root};
use std::path::Path;
use std::process::Command;

use common::{schema_dump, taskdb_cmd, TestDb, BOTH};
use predicates::prelude::*;
use predicates::str::contains;
use taskdb::scaffold::{self, Checkout};

/// What the one parity rule (`taskdb lint`'s `backend-parity`) says about
/// the migrations under `dir`: one line per migration one backend has and
/// the other does not (the early ones SQLite did in fewer steps say why in
/// their metadata.toml).
fn unpaired(dir: &Path) -> Vec<String> {
    let read =
        |backend: &str| taskdb::lint::read_dir(&dir.join("migrations").join(backend)).unwrap();
    taskdb::lint::check_parity(&read("postgres"), &read("sqlite"))
        .into_iter()
        .map(|f| f.message)
        .collect()
}

fn new_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = taskdb_cmd();
    cmd.current_dir(dir).arg("new");
    cmd
}

/// Every migration directory of both backends, as `backend/dir_name`.
fn listing(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for backend in ["postgres", "sqlite"] {
        for entry in fs::read_dir(dir.join("migrations").join(backend)).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_dir() {
                all.push(format!("{backend}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    all.sort();
    all
}

/// The migrations `taskdb new` added to a copy, as directory names.
fn added(dir: &Path, before: &[String]) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect()
}

fn newest_number() -> u32 {
    Checkout::find(&crate_root())
        .unwrap()
        .existing()
        .unwrap()
        .iter()
        .map(|m| m.number)
        .max()
        .unwrap()
}

fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn new_writes_the_next_migration_for_both_backends() {
    let dir = checkout_copy();
    let before = listing(dir.path());
    new_in(dir.path())
        .args([
            "probe_add_due_date",
            "--add-column",
            "tasks",
            "probe_due_date",
            "timestamp",
        ])
        .assert()
        .success()
        .stdout(contains("taskdb migrate"))
        .stdout(contains("taskdb redo --steps 1"))
        .stdout(contains("diesel print-schema"))
        .stdout(contains("src/schema.rs"))
        .stdout(contains("scripts/test"))
        // No database is involved.
        .stdout(predicate::str::starts_with("database:").not());
    let name = format!("{}-{:06}_probe_add_due_date", today(), newest_number() + 1);
    assert_eq!(
        added(dir.path(), &before),
        [format!("postgres/{name}"), format!("sqlite/{name}")]
    );
    for backend in ["postgres", "sqlite"] {
        let migration = dir.path().join("migrations").join(backend).join(&name);
        let up = fs::read_to_string(migration.join("up.sql")).unwrap();
        assert!(
            up.contains("ALTER TABLE tasks ADD COLUMN probe_due_date TIMESTAMP;"),
            "{up}"
        );
        assert!(migration.join("down.sql").is_file());
        assert!(!migration.join("metadata.toml").exists());
    }
    assert!(!dir.path().join("taskdb.db").exists());

    // The next one counts on from there, from a subdirectory too.
    let before = listing(dir.path());
    new_in(&dir.path().join("migrations"))
        .args([
            "probe_index_due",
            "--add-index",
            "tasks",
            "user_id,probe_due_date",
            "--where",
            "NOT completed",
        ])
        .assert()
        .success();
    let name = format!("{}-{:06}_probe_index_due", today(), newest_number() + 2);
    assert_eq!(
        added(dir.path(), &before),
        [format!("postgres/{name}"), format!("sqlite/{name}")]
    );
    let pg = dir.path().join("migrations/postgres").join(&name);
    assert!(fs::read_to_string(pg.join("metadata.toml"))
        .unwrap()
        .contains("run_in_transaction = false"));
}

/// The facts file covers what `new` wrote (a build made now neither lints
/// it at start-up nor, without the parser, refuses it), and the hints name
/// the model types a new column must reach.
#[test]
fn new_keeps_the_facts_file_current_and_names_the_model_types() {
    let dir = checkout_copy();
    let out = new_in(dir.path())
        .args([
            "probe_add_priority",
            "--add-column",
            "tasks",
            "probe_priority",
            "integer",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Updated migrations/lint-facts.json"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Task, NewTask and TaskChanges in src/models/task.rs"),
        "{stdout}"
    );
    assert!(stdout.contains("taskdb lint --write-facts"), "{stdout}");
    let name = format!("{}-{:06}_probe_add_priority", today(), newest_number() + 1);
    let facts = fs::read_to_string(dir.path().join("migrations/lint-facts.json")).unwrap();
    assert!(facts.contains(&name), "the facts cover {name}");
    // And they are exactly what `taskdb lint --check-facts` expects.
    taskdb_cmd()
        .current_dir(dir.path())
        .args([
            "lint",
            "migrations/postgres",
            "--check-facts",
            "migrations/lint-facts.json",
        ])
        .assert()
        .success();
}

#[test]
fn new_writes_as_many_migrations_as_each_kind_needs() {
    let dir = checkout_copy();
    for (args, count) in [
        (&["probe_skeleton"][..], 1),
        (
            &[
                "probe_label",
                "--add-column",
                "tasks",
                "probe_label",
                "text",
                "--default",
                "'x'",
            ],
            1,
        ),
        (
            &[
                "probe_index",
                "--add-index",
                "tasks",
                "probe_label",
                "--unique",
            ],
            1,
        ),
        (
            &[
                "probe_fk",
                "--add-foreign-key",
                "tasks.probe_label",
                "users.id",
            ],
            2,
        ),
        (
            &[
                "probe_check",
                "--add-check",
                "tasks",
                "length(probe_label) > 0",
            ],
            2,
        ),
        (
            &["probe_not_null", "--set-not-null", "tasks.probe_label"],
            3,
        ),
    ] {
        let before = listing(dir.path());
        new_in(dir.path()).args(args).assert().success();
        let new = added(dir.path(), &before);
        assert_eq!(new.len(), 2 * count, "{args:?}: {new:#?}");
    }
    assert_eq!(unpaired(dir.path()), Vec::<String>::new());
}

#[test]
fn new_without_a_kind_writes_commented_skeletons() {
    let dir = checkout_copy();
    let before = listing(dir.path());
    new_in(dir.path())
        .arg("probe_skeleton")
        .assert()
        .success()
        .stdout(contains("Write up.sql and down.sql"));
    let new = added(dir.path(), &before);
    assert_eq!(new.len(), 2);
    for migration in new {
        let up = fs::read_to_string(
            dir.path()
                .join("migrations")
                .join(&migration)
                .join("up.sql"),
        )
        .unwrap();
        assert!(
            up.lines().all(|l| l.is_empty() || l.starts_with("--")),
            "{up}"
        );
    }
}

/// Runs `taskdb new args` in a fresh copy; checks it fails with one
/// `error:` line containing `needle` and writes nothing.
fn assert_refused(args: &[&str], needle: &str) {
    let dir = checkout_copy();
    let before = listing(dir.path());
    let out = new_in(dir.path()).args(args).assert().code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert_eq!(listing(dir.path()), before, "{args:?} wrote files");
}

#[test]
fn new_refuses_a_name_that_is_not_lowercase_words() {
    for bad in ["AddProjects", "add-projects", "add projects", "../escape"] {
        assert_refused(&[bad], "invalid migration name");
    }
}

#[test]
fn new_refuses_a_name_that_exists() {
    assert_refused(&["create_users"], "already exists");
    assert_refused(&["add_tasks_user_fk"], "already exists");
    // A recipe's later migrations are checked too.
    let dir = checkout_copy();
    new_in(dir.path())
        .arg("tasks_title_set_validate")
        .assert()
        .success();
    let before = listing(dir.path());
    new_in(dir.path())
        .args([
            "tasks_title_set",
            "--add-check",
            "tasks",
            "length(title) > 0",
        ])
        .assert()
        .code(1)
        .stderr(contains("`tasks_title_set_validate` already exists"));
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn new_refuses_a_volatile_default_with_the_backfill_recipe() {
    for default in ["now()", "CURRENT_TIMESTAMP", "gen_random_uuid()"] {
        assert_refused(
            &[
                "probe_add_due_date",
                "--add-column",
                "tasks",
                "probe_due_date",
                "timestamp",
                "--not-null",
                "--default",
                default,
            ],
            "not a constant",
        );
    }
    assert_refused(
        &[
            "x",
            "--add-column",
            "tasks",
            "probe_due_date",
            "timestamp",
            "--default",
            "now()",
        ],
        "--set-not-null tasks.probe_due_date",
    );
    assert_refused(
        &[
            "x",
            "--add-column",
            "tasks",
            "probe_due_date",
            "timestamp",
            "--not-null",
        ],
        "--default",
    );
}

#[test]
fn new_refuses_unknown_tables_and_columns() {
    assert_refused(
        &["x", "--add-index", "probe_missing", "id"],
        "no table `probe_missing`",
    );
    assert_refused(
        &["x", "--add-index", "tasks", "user_id,probe_due_date"],
        "no column `tasks.probe_due_date`",
    );
}

#[test]
fn new_refuses_outside_a_crate_with_both_migration_directories() {
    let empty = tempfile::tempdir().unwrap();
    let out = new_in(empty.path()).arg("probe_skeleton").assert().code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("migrations/postgres and migrations/sqlite"),
        "{stderr}"
    );
    // A crate with only one of them is not enough either.
    let half = checkout_copy();
    fs::remove_dir_all(half.path().join("migrations/sqlite")).unwrap();
    new_in(half.path())
        .arg("probe_skeleton")
        .assert()
        .code(1)
        .stderr(contains("migrations/postgres and migrations/sqlite"));
    assert!(fs::read_dir(half.path().join("migrations/postgres"))
        .unwrap()
        .all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("probe_skeleton")));
}

#[test]
fn diesel_lock_files_are_ignored_by_git() {
    // The diesel CLI leaves `.diesel_lock` in the migration directory it ran on.
    let out = Command::new("git")
        .current_dir(crate_root())
        .args([
            "check-ignore",
            "migrations/postgres/.diesel_lock",
            "migrations/sqlite/.diesel_lock",
            ".diesel_lock",
        ])
        .output()
        .unwrap();
    let ignored = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ignored.lines().count(), 3, "not ignored by git: {ignored}");
}

#[test]
fn every_new_migration_exists_for_both_backends() {
    assert_eq!(unpaired(&crate_root()), Vec::<String>::new());
}

#[test]
fn a_migration_added_to_one_backend_only_is_caught() {
    let dir = checkout_copy();
    let name = format!("{}-{:06}_postgres_only", today(), newest_number() + 1);
    let one_sided = dir.path().join("migrations/postgres").join(&name);
    fs::create_dir(&one_sided).unwrap();
    fs::write(
        one_sided.join("up.sql"),
        "ALTER TABLE tasks ADD COLUMN probe_due_date TIMESTAMP;",
    )
    .unwrap();
    fs::write(
        one_sided.join("down.sql"),
        "ALTER TABLE tasks DROP COLUMN probe_due_date;",
    )
    .unwrap();
    assert_eq!(
        unpaired(dir.path()),
        [format!(
            "{name} has no sqlite counterpart (no migration named `postgres_only` in migrations/sqlite)"
        )]
    );
}

/// Checks the PostgreSQL migrations numbered above `after` in `dir` have
/// the shapes `taskdb lint` accepts: an index built or dropped
/// CONCURRENTLY, alone, outside a transaction; a foreign key or CHECK added
/// NOT VALID; SET NOT NULL only after a validated CHECK; constant defaults;
/// a backfill's one UPDATE outside a transaction of Diesel's.
/// Once `taskdb lint` exists, it runs here too.
fn assert_lints_clean(dir: &Path, after: u32) {
    let pg = dir.join("migrations/postgres");
    let mut validated_checks = String::new();
    let mut names: Vec<String> = fs::read_dir(&pg)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| scaffold::parse_dir_name(n).is_some_and(|(_, number, _)| number > after))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        let up = fs::read_to_string(pg.join(&name).join("up.sql")).unwrap();
        let sql: String = up
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_ascii_uppercase();
        let metadata = fs::read_to_string(pg.join(&name).join("metadata.toml")).unwrap_or_default();
        let outside_transaction = metadata
            .lines()
            .any(|l| l.replace(' ', "") == "run_in_transaction=false");
        if sql.contains(" INDEX ") {
            assert!(sql.contains("INDEX CONCURRENTLY"), "{name}: {up}");
            assert_eq!(sql.matches(';').count(), 1, "{name}: one statement only");
            assert!(
                outside_transaction,
                "{name}: needs run_in_transaction = false"
            );
        } else if metadata.contains("[backfill]") {
            // taskdb runs it in batches, each its own transaction.
            assert!(sql.starts_with("UPDATE "), "{name}: {up}");
            assert_eq!(sql.matches(';').count(), 1, "{name}: one statement only");
            assert!(
                outside_transaction,
                "{name}: needs run_in_transaction = false"
            );
        } else {
            assert!(
                !outside_transaction,
                "{name}: runs outside a transaction for nothing"
            );
        }
        if sql.contains("ADD CONSTRAINT") {
            assert!(sql.contains("NOT VALID"), "{name}: {up}");
        }
        if sql.contains("VALIDATE CONSTRAINT") {
            validated_checks.push_str(&sql);
        }
        if sql.contains("SET NOT NULL") {
            assert!(
                validated_checks.contains("VALIDATE CONSTRAINT"),
                "{name}: SET NOT NULL without a validated check before it"
            );
        }
        if let Some((_, default)) = sql.split_once(" DEFAULT ") {
            let value = default.trim_end_matches([';', '\n']).trim();
            assert!(
                scaffold::is_constant_default(value),
                "{name}: volatile default {value}"
            );
        }
    }
}

/// `taskdb` on `db` with the migrations of the project in `dir` (read at
/// run time: nothing is rebuilt).
fn taskdb_in(dir: &Path, db: &TestDb) -> assert_cmd::Command {
    let mut cmd = common::taskdb_cmd();
    cmd.current_dir(std::env::temp_dir())
        .arg("--migrations-dir")
        .arg(dir.join("migrations"))
        .args(["--database-url", db.url()]);
    cmd
}

fn run_in(dir: &Path, db: &TestDb, args: &[&str]) -> String {
    let out = taskdb_in(dir, db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "taskdb {args:?} on {:?}: {}{}",
        db.backend,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_kind_applies_reverts_and_reapplies_on_both_backends_with_rows() {
    // A project with a copy of the migrations and every kind added; taskdb
    // reads them with --migrations-dir.
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_path_buf();
    fs::write(dir.join("Cargo.toml"), "").unwrap();
    copy_dir(&crate_root().join("migrations"), &dir.join("migrations"));
    let before = listing(&dir);
    // Columns of its own (probe_*), so that a real migration adding the same
    // column one day does not break this test.
    let kinds: [&[&str]; 12] = [
        &[
            "probe_add_due_date",
            "--add-column",
            "tasks",
            "probe_due_date",
            "timestamp",
        ],
        &[
            "probe_add_priority",
            "--add-column",
            "tasks",
            "probe_priority",
            "integer",
            "--not-null",
            "--default",
            "0",
        ],
        &[
            "probe_index_open_by_due_date",
            "--add-index",
            "tasks",
            "user_id,probe_due_date",
            "--where",
            "NOT completed",
        ],
        &[
            "probe_add_reviewer_id",
            "--add-column",
            "tasks",
            "probe_reviewer_id",
            "varchar(255)",
        ],
        &[
            "probe_reviewer_fk",
            "--add-foreign-key",
            "tasks.probe_reviewer_id",
            "users.id",
            "--on-delete",
            "set-null",
        ],
        &[
            "probe_title_not_empty",
            "--add-check",
            "tasks",
            "length(title) > 0",
        ],
        // Existing rows get the constant, so NOT NULL can be validated.
        &[
            "probe_add_label",
            "--add-column",
            "tasks",
            "probe_label",
            "text",
            "--default",
            "'open'",
        ],
        &[
            "probe_index_label",
            "--add-index",
            "tasks",
            "user_id,probe_label",
            "--unique",
            "--where",
            "probe_label IS NOT NULL",
        ],
        &[
            "probe_label_not_null",
            "--set-not-null",
            "tasks.probe_label",
        ],
        // The backfill recipe: nullable, filled in, then NOT NULL.
        &[
            "probe_add_score",
            "--add-column",
            "tasks",
            "probe_score",
            "integer",
        ],
        &[
            "probe_fill_score",
            "--backfill",
            "tasks",
            "probe_score = length(title)",
            "--where",
            "probe_score IS NULL",
        ],
        &[
            "probe_score_not_null",
            "--set-not-null",
            "tasks.probe_score",
        ],
    ];
    for args in kinds {
        new_in(&dir).args(args).assert().success();
    }
    let steps = added(&dir, &before).len() / 2;
    assert_eq!(steps, 18);
    assert_eq!(unpaired(&dir), Vec::<String>::new());
    assert_lints_clean(&dir, newest_number());

    let steps = steps.to_string();
    for backend in BOTH {
        let db = TestDb::empty(backend);
        // The schema of today's migrations, with a row in every table.
        let newest_today = taskdb::migrate::migrations(backend)
            .last()
            .unwrap()
            .version();
        run_in(&dir, &db, &["migrate", "--to", &newest_today]);
        let old_schema = schema_dump(&db);
        rows::fill_every_table(&db);

        run_in(&dir, &db, &["migrate"]);
        let new_schema = schema_dump(&db);
        assert_ne!(new_schema, old_schema);
        run_in(&dir, &db, &["verify"]);

        // Reverting drops columns that now hold values: without a terminal
        // and without --yes the rollback refuses, naming the column, and
        // changes nothing.
        let out = taskdb_in(&dir, &db)
            .args(["rollback", "--steps", &steps])
            .write_stdin("")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {said}");
        assert!(
            said.contains("tasks.probe_label: 1 non-NULL value(s)"),
            "{backend:?}: {said}"
        );
        assert_eq!(
            schema_dump(&db),
            new_schema,
            "{backend:?}: refused, yet changed"
        );

        run_in(&dir, &db, &["redo", "--steps", &steps, "--yes"]);
        assert_eq!(
            schema_dump(&db),
            new_schema,
            "{backend:?}: redo changed the schema"
        );
        run_in(&dir, &db, &["verify"]);

        run_in(&dir, &db, &["rollback", "--steps", &steps, "--yes"]);
        assert_eq!(
            schema_dump(&db),
            old_schema,
            "{backend:?}: down.sql left something behind"
        );
        run_in(&dir, &db, &["migrate"]);
        assert_eq!(schema_dump(&db), new_schema);
        // Every row came through the rebuilds and reverts.
        rows::assert_every_table_has_rows(&db);
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM tasks WHERE probe_label = 'open'"),
            1
        );
    }
}

#[test]
fn new_reads_no_database_url() {
    // A URL the other commands would refuse (or a .env that does not
    // parse) is none of `taskdb new`'s business.
    let dir = checkout_copy();
    fs::write(dir.path().join(".env"), "DATABASE_URL=\"unterminated\n").unwrap();
    new_in(dir.path())
        .env("DATABASE_URL", "mysql://someone:secret@elsewhere/db")
        .arg("probe_skeleton")
        .assert()
        .success()
        .stdout(contains("Created 1 migration(s)"));
}

#[test]
fn a_default_with_a_newline_is_refused() {
    // Echoed into a `--` comment, the second line would have been SQL.
    for default in [
        "'x'\nDELETE FROM users;\n--'",
        "'x\nDELETE FROM users;\n-- '",
        "'x\rDELETE FROM users; -- '",
    ] {
        assert_refused(
            &[
                "probe_add_label",
                "--add-column",
                "tasks",
                "probe_label",
                "varchar(20)",
                "--default",
                default,
            ],
            "--default",
        );
    }
}

#[test]
fn a_check_expression_that_closes_its_parenthesis_is_refused() {
    for expression in [
        "x), ADD CONSTRAINT probe_evil CHECK (true",
        "length(title) > 0)",
        "(length(title) > 0",
        "title <> ')' OR $$)$$ = ''",
        "title <> E'\\')'",
        "length(title) > 0 /* hidden */",
        "length(title)\n> 0",
    ] {
        assert_refused(
            &["probe_check", "--add-check", "tasks", expression],
            "check expression",
        );
    }
}

#[test]
fn a_where_predicate_with_an_unbalanced_parenthesis_is_refused() {
    for predicate in ["NOT completed)", "(NOT completed", "title = 'a"] {
        assert_refused(
            &[
                "probe_index",
                "--add-index",
                "tasks",
                "user_id",
                "--where",
                predicate,
            ],
            "--where predicate",
        );
    }
}

#[test]
fn a_reserved_word_as_a_column_name_is_refused() {
    for column in ["user", "order", "default", "check"] {
        assert_refused(
            &["probe_add", "--add-column", "tasks", column, "integer"],
            "reserved",
        );
    }
}

#[test]
fn a_column_type_with_more_than_a_type_is_refused() {
    // Words after the type would add a constraint or a volatile default.
    for sql_type in [
        "integer not null",
        "integer generated always as identity",
        "text references users",
    ] {
        assert_refused(
            &["probe_add", "--add-column", "tasks", "probe_n", sql_type],
            "not a column type",
        );
    }
    // Types of several words are still types.
    let dir = checkout_copy();
    new_in(dir.path())
        .args([
            "probe_add",
            "--add-column",
            "tasks",
            "probe_at",
            "timestamp with time zone",
        ])
        .assert()
        .success();
}
