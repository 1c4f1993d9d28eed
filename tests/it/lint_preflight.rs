//! Lint's findings against live table sizes on a real PostgreSQL table: the
//! pre-flight of `migrate` refuses above the threshold, proceeds on an
//! empty table or an allowed statement, and `lint --database-url` reports
//! the size.

use crate::common;

use std::path::PathBuf;

use common::TestDb;
use taskdb::lint::{self, preflight::Verdict, Finding};
use taskdb::source::{LocalMigration, MigrationSource};
use taskdb::{Backend, Error};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lint")
        .join(rel)
}

/// The findings of the issue's 10.4-second migration.
fn issue_12_findings() -> Vec<Finding> {
    let report = lint::lint_paths(&[fixture("issue12/unsafe/postgres")], None).unwrap();
    assert_eq!(report.findings.len(), 3);
    report.findings
}

/// A migrated database whose `tasks` holds `rows` rows; analysed when asked.
fn tasks_with_rows(rows: u32, analyze: bool) -> TestDb {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'u1@example.com', 'x');
         INSERT INTO tasks (user_id, title) SELECT 'u1', 'task ' || g FROM generate_series(1, {rows}) g;"
    ));
    if analyze {
        db.execute("ANALYZE tasks");
    }
    db
}

#[test]
fn the_issue_12_migration_is_refused_above_the_threshold_naming_rule_size_and_recipe() {
    let db = tasks_with_rows(50_000, true);
    let before = common::schema_dump(&db);
    let err = lint::check_findings(
        issue_12_findings(),
        lint::DEFAULT_UNSAFE_THRESHOLD,
        &mut db.conn(),
    )
    .unwrap_err();
    let Error::UnsafeMigration { refused, threshold } = &err else {
        panic!("expected UnsafeMigration, got {err}");
    };
    assert_eq!(*threshold, 10_000);
    assert_eq!(refused.len(), 3, "{refused:#?}");
    let text = err.to_string();
    for expected in [
        "refusing to migrate",
        "[index-without-concurrently] holds SHARE on tasks (50.0k rows,",
        "for a full scan, blocking writes",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_title ON tasks (title);",
        "[constraint-without-not-valid] holds ACCESS EXCLUSIVE on tasks",
        "CHECK (title <> '') NOT VALID;",
        "[add-column-volatile-default]",
        "nothing was applied",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(common::schema_dump(&db), before);
}

#[test]
fn a_table_never_analysed_is_counted_up_to_the_threshold() {
    let db = tasks_with_rows(12_000, false);
    assert!(matches!(
        lint::check_findings(issue_12_findings(), 10_000, &mut db.conn()),
        Err(Error::UnsafeMigration { .. })
    ));
    let report = lint::check_findings(issue_12_findings(), 20_000, &mut db.conn()).unwrap();
    assert!(report.items.iter().all(|i| i.verdict == Verdict::Small));
}

#[test]
fn an_empty_table_proceeds_and_says_so() {
    let db = TestDb::migrated(Backend::Postgres);
    let report = lint::check_findings(
        issue_12_findings(),
        lint::DEFAULT_UNSAFE_THRESHOLD,
        &mut db.conn(),
    )
    .unwrap();
    assert_eq!(report.items.len(), 3);
    assert!(report.items.iter().all(|i| i.verdict == Verdict::Small));
    let lines = report.lines();
    assert!(
        lines[0].contains("proceeding, the table is at most 10000 rows"),
        "{lines:#?}"
    );
    assert!(lines[0].contains("tasks (0 rows"), "{lines:#?}");
}

#[test]
fn the_threshold_decides_and_a_table_not_there_yet_proceeds() {
    let db = tasks_with_rows(50_000, true);
    let report = lint::check_findings(issue_12_findings(), 100_000, &mut db.conn()).unwrap();
    assert!(report.items.iter().all(|i| i.verdict == Verdict::Small));
    assert!(matches!(
        lint::check_findings(issue_12_findings(), 0, &mut db.conn()),
        Err(Error::UnsafeMigration { .. })
    ));
    // A finding on a table an earlier pending step creates.
    let mut findings = issue_12_findings();
    for f in &mut findings {
        f.table = Some("not_created_yet".into());
    }
    let report = lint::check_findings(findings, 0, &mut db.conn()).unwrap();
    assert!(report.items.iter().all(|i| i.verdict == Verdict::NoTable));
}

#[test]
fn an_allowed_statement_proceeds_on_a_large_table() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("postgres/2026-03-01-000001_index_title");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("up.sql"),
        "-- taskdb:allow index-without-concurrently run in the maintenance window, writes are stopped\nCREATE INDEX idx_tasks_title ON tasks (title);\n",
    )
    .unwrap();
    std::fs::write(m.join("down.sql"), "DROP INDEX idx_tasks_title;\n").unwrap();
    let findings = lint::lint_paths(&[dir.path().join("postgres")], None)
        .unwrap()
        .findings;
    let db = tasks_with_rows(50_000, true);
    let report = lint::check_findings(findings, 10_000, &mut db.conn()).unwrap();
    assert_eq!(report.items.len(), 1);
    assert_eq!(report.items[0].verdict, Verdict::Allowed);
    assert!(report.lines()[0]
        .contains("proceeding, allowed: run in the maintenance window, writes are stopped"));
}

#[test]
fn the_safe_rewrite_has_nothing_to_refuse() {
    let db = tasks_with_rows(50_000, true);
    let findings = lint::lint_paths(&[fixture("issue12/safe/postgres")], None)
        .unwrap()
        .findings;
    let report = lint::check_findings(findings, 0, &mut db.conn()).unwrap();
    assert!(report.items.is_empty());
}

#[test]
fn lint_with_database_url_reports_live_sizes() {
    let db = tasks_with_rows(50_000, true);
    let out = db
        .taskdb()
        .arg("lint")
        .arg(fixture("issue12/unsafe/postgres"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("= live: holds ACCESS EXCLUSIVE on tasks (50.0k rows, ")
            && text.contains("MB) for a full scan, blocking reads and writes"),
        "{text}"
    );
    let out = db
        .taskdb()
        .args(["lint", "--format", "json"])
        .arg(fixture("issue12/unsafe/postgres"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let size = &doc["findings"][0]["size"];
    assert_eq!(size["rows"], 50_000);
    assert!(size["bytes"].as_i64().unwrap() > 1_000_000, "{size}");
}

#[test]
fn migrate_runs_the_preflight_on_taskdbs_own_migrations() {
    // An adopted tasks table with rows, the strictest threshold: taskdb's
    // own migrations have no error finding, so the run proceeds.
    let db = TestDb::empty(Backend::Postgres);
    db.execute(
        "CREATE TABLE tasks (id SERIAL PRIMARY KEY, user_id VARCHAR(255) NOT NULL,
           title VARCHAR(255) NOT NULL, description TEXT, completed BOOLEAN NOT NULL DEFAULT false,
           created_at TIMESTAMP NOT NULL DEFAULT now(), updated_at TIMESTAMP NOT NULL DEFAULT now());
         ANALYZE tasks;",
    );
    db.taskdb()
        .args(["migrate", "--dry-run", "--unsafe-threshold", "0"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "-- lint: no findings in the pending migrations",
        ));
    db.taskdb()
        .args(["migrate", "--unsafe-threshold", "0"])
        .assert()
        .success();
    // The embedded facts cover every compiled-in migration.
    lint::preflight::check_embedded_facts().unwrap();
    // Every finding of taskdb's own migrations is allowed (the calls of
    // diesel_manage_updated_at are opaque to lint, and allowed with reasons).
    let own = lint::preflight::findings_of(
        &MigrationSource::Embedded,
        &taskdb::migrate::migrations(Backend::Postgres),
    );
    assert!(own.iter().all(|f| f.allowed), "{own:#?}");
}

/// Lint's findings for one migration's `up.sql` (after the app's schema).
fn findings_of(up: &str) -> Vec<Finding> {
    let m = LocalMigration::from_files(
        "2030-01-01-000001_under_test",
        "migrations/postgres/2030-01-01-000001_under_test".into(),
        up.into(),
        Some("SELECT 1;".into()),
        None,
    );
    lint::lint_migrations(Backend::Postgres, &[m])
}

/// `CREATE TABLE IF NOT EXISTS tasks` over a live `tasks` with rows, then
/// a plain index build: refused, the table is not new.
#[test]
fn create_table_if_not_exists_over_a_live_table_is_judged_by_its_size() {
    let db = tasks_with_rows(50_000, true);
    let findings = findings_of(
        "CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY);\nCREATE INDEX idx_tasks_title ON tasks (title);",
    );
    let err = lint::check_findings(findings, 10_000, &mut db.conn()).unwrap_err();
    assert!(matches!(err, Error::UnsafeMigration { .. }), "{err}");
}

/// DDL inside `DO` is judged like a file lint cannot check, and a timeout
/// override would widen taskdb's bound: both refused, not silently run.
#[test]
fn opaque_statements_and_timeout_overrides_are_refused_unless_allowed() {
    let db = tasks_with_rows(50_000, true);
    for up in [
        "DO $$ BEGIN EXECUTE 'CREATE INDEX ON tasks (title)'; END $$;",
        "SET lock_timeout = 0;\nALTER TABLE tasks ADD COLUMN note TEXT;",
    ] {
        let err = lint::check_findings(findings_of(up), 10_000, &mut db.conn()).unwrap_err();
        assert!(matches!(err, Error::UnsafeMigration { .. }), "{up}: {err}");
    }
    let allowed = findings_of(
        "-- taskdb:allow opaque-statement it only creates a trigger\nDO $$ BEGIN PERFORM 1; END $$;",
    );
    lint::check_findings(allowed, 10_000, &mut db.conn()).unwrap();
}

/// The rows a refusal or a `= live:` line shows for `table`, as a number
/// (`on tasks (20.1k rows, 2 MB)` → 20100).
fn rows_shown(text: &str, table: &str) -> f64 {
    let at = text
        .find(&format!("{table} ("))
        .unwrap_or_else(|| panic!("no size of {table} in {text}"));
    let rest = &text[at + table.len() + 2..];
    let number = rest.split(" rows").next().unwrap();
    let (digits, factor) = match number.strip_suffix('k') {
        Some(d) => (d, 1e3),
        None => match number.strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => (number, 1.0),
        },
    };
    digits
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("`{number}` in {text}"))
        * factor
}

/// True when `shown` is within 15% of `actual` (an estimate, not a count).
fn close_to(shown: f64, actual: f64) -> bool {
    (shown - actual).abs() <= actual * 0.15
}

#[test]
fn a_table_analysed_empty_then_filled_is_judged_by_its_pages() {
    let db = TestDb::migrated(Backend::Postgres);
    // Statistics say 0 rows: ANALYZE ran while the table was empty.
    db.execute("ANALYZE tasks");
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'u1@example.com', 'x');
         INSERT INTO tasks (user_id, title) SELECT 'u1', 'task ' || g FROM generate_series(1, 20000) g;",
    );
    assert_eq!(
        db.scalar("SELECT reltuples::int8 FROM pg_class WHERE oid = 'tasks'::regclass"),
        0
    );
    let err = lint::check_findings(issue_12_findings(), 10_000, &mut db.conn()).unwrap_err();
    assert!(matches!(err, Error::UnsafeMigration { .. }), "{err}");
    let text = err.to_string();
    assert!(close_to(rows_shown(&text, "on tasks"), 20_000.0), "{text}");

    // `taskdb lint --database-url` shows the same estimate.
    let out = db
        .taskdb()
        .arg("lint")
        .arg(fixture("issue12/unsafe/postgres"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let live = text
        .lines()
        .find(|l| l.contains("= live:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(close_to(rows_shown(live, "on tasks"), 20_000.0), "{live}");
}

#[test]
fn a_table_never_analysed_is_shown_with_its_estimated_rows_not_the_threshold() {
    let db = tasks_with_rows(30_000, false);
    let err = lint::check_findings(issue_12_findings(), 10_000, &mut db.conn()).unwrap_err();
    assert!(matches!(err, Error::UnsafeMigration { .. }), "{err}");
    let text = err.to_string();
    assert!(close_to(rows_shown(&text, "on tasks"), 30_000.0), "{text}");
}

#[test]
fn a_big_table_in_another_schema_is_found_by_its_qualified_name() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        r#"CREATE SCHEMA app;
           CREATE TABLE app.big (id int, title text);
           INSERT INTO app.big SELECT g, 'title ' || g FROM generate_series(1, 20000) g;
           ANALYZE app.big;
           CREATE SCHEMA "App";
           CREATE TABLE "App"."Big" AS SELECT * FROM app.big;
           ANALYZE "App"."Big";"#,
    );
    let on = |table: &str| {
        let mut findings = issue_12_findings();
        for f in &mut findings {
            f.table = Some(table.into());
        }
        findings
    };
    // As lint reports a qualified name: as written, quoted or not.
    for name in ["app.big", "APP.Big", r#""app"."big""#, r#""App"."Big""#] {
        let err = lint::check_findings(on(name), 10_000, &mut db.conn())
            .expect_err(&format!("{name} was not refused"));
        let text = err.to_string();
        assert!(matches!(err, Error::UnsafeMigration { .. }), "{text}");
        assert!(
            close_to(rows_shown(&text, &format!("on {name}")), 20_000.0),
            "{text}"
        );
    }
    // Unqualified names are looked up on the search path, as before: `big`
    // is not on it, `tasks` is.
    let report = lint::check_findings(on("big"), 0, &mut db.conn()).unwrap();
    assert!(report.items.iter().all(|i| i.verdict == Verdict::NoTable));
    let report = lint::check_findings(on("public.tasks"), 10_000, &mut db.conn()).unwrap();
    assert!(report.items.iter().all(|i| i.verdict == Verdict::Small));
}

#[test]
fn a_partitioned_table_is_judged_by_its_partitions() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "CREATE TABLE events (id int, title text) PARTITION BY RANGE (id);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10000);
         CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (10000) TO (100000);
         INSERT INTO events SELECT g, 'title ' || g FROM generate_series(1, 20000) g;
         ANALYZE events_1;",
    );
    let mut findings = issue_12_findings();
    for f in &mut findings {
        f.table = Some("events".into());
    }
    let err = lint::check_findings(findings, 10_000, &mut db.conn()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::UnsafeMigration { .. }), "{text}");
    assert!(close_to(rows_shown(&text, "on events"), 20_000.0), "{text}");
}

/// End to end: lint keeps the schema of `app.big`, and the pre-flight
/// finds that table (not on the search path) and its rows.
#[test]
fn an_index_on_a_big_table_in_another_schema_is_refused() {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.big (id int, x int);
         INSERT INTO app.big SELECT g, g FROM generate_series(1, 30000) g;
         ANALYZE app.big;",
    );
    let findings = findings_of("CREATE INDEX idx_big_x ON app.big (x);");
    assert_eq!(findings[0].table.as_deref(), Some("app.big"));
    let err = lint::check_findings(findings, 10_000, &mut db.conn()).unwrap_err();
    assert!(
        matches!(err, Error::UnsafeMigration { .. }) && err.to_string().contains("app.big"),
        "{err}"
    );
}

/// A finding that names no table (here a DO block lint cannot see into)
/// is judged by the largest table: a database whose every table is small
/// proceeds, and says why; a big one refuses (the test above).
#[test]
fn a_finding_on_no_table_proceeds_on_a_database_of_small_tables() {
    let db = tasks_with_rows(100, true);
    let report = lint::check_findings(
        findings_of("DO $$ BEGIN EXECUTE 'CREATE INDEX ON tasks (title)'; END $$;"),
        10_000,
        &mut db.conn(),
    )
    .unwrap();
    assert_eq!(report.items.len(), 1);
    assert_eq!(report.items[0].verdict, Verdict::Small);
    let line = &report.lines()[0];
    assert!(line.contains("the largest table here is"), "{line}");
    assert!(
        line.contains("proceeding, every table is at most 10000 rows"),
        "{line}"
    );
}
