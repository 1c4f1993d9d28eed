//! `migrate --dry-run` and `rollback --dry-run`: the SQL of every step, in
//! order, marked transactional or not, and nothing changed.

use crate::common;

use common::{schema_dump, TestDb};
use taskdb::migrate::migrations;
use taskdb::Backend;

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

/// Tracking rows (or "none" when the tables do not exist).
fn tracking(db: &TestDb) -> Vec<String> {
    let tables = match db.backend {
        Backend::Postgres => db.scalar(
            "SELECT COUNT(*) FROM pg_class WHERE relname IN ('__diesel_schema_migrations', '__taskdb_ledger')",
        ),
        Backend::Sqlite => db.scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('__diesel_schema_migrations', '__taskdb_ledger')",
        ),
    };
    if tables == 0 {
        return vec!["none".into()];
    }
    db.rows(
        "SELECT d.version || ' ' || CAST(d.run_on AS TEXT) || ' ' || l.checksum || ' ' || l.state AS line
           FROM __diesel_schema_migrations d JOIN __taskdb_ledger l ON l.version = d.version
          ORDER BY d.version",
    )
}

/// Positions of each migration's header in `text`, asserting they exist.
fn header_positions(text: &str, names: &[String], file: &str) -> Vec<usize> {
    names
        .iter()
        .map(|name| {
            text.find(&format!("{name}/{file}"))
                .unwrap_or_else(|| panic!("{name}/{file} missing from:\n{text}"))
        })
        .collect()
}

both_backends!(migrate_dry_run_on_an_empty_database, empty, |db| {
    let before = schema_dump(&db);
    let text = stdout_of(db.taskdb().args(["migrate", "--dry-run"]));
    let all = migrations(db.backend);
    let names: Vec<String> = all.iter().map(|m| m.dir_name().to_string()).collect();
    let positions = header_positions(&text, &names, "up.sql");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not in order:\n{text}"
    );
    for m in &all {
        assert!(text.contains(m.up_sql().trim_end()), "{}", m.dir_name());
        let marker = if m.run_in_transaction() {
            "(in a transaction)"
        } else {
            "(no transaction)"
        };
        assert!(
            text.contains(&format!("{}/up.sql  {marker}", m.dir_name())),
            "{} should be marked {marker}",
            m.dir_name()
        );
    }
    if db.backend == Backend::Postgres {
        assert!(text.contains("(no transaction)"));
    }
    assert!(text.contains("would first create the tracking tables"));
    // Nothing changed: not even the tracking tables were created.
    assert_eq!(schema_dump(&db), before);
    assert_eq!(tracking(&db), vec!["none".to_string()]);
});

both_backends!(migrate_dry_run_lists_only_what_is_pending, empty, |db| {
    let all = migrations(db.backend);
    let stop = &all[1];
    db.taskdb()
        .args(["migrate", "--to", stop.dir_name()])
        .assert()
        .success();
    let before = (schema_dump(&db), tracking(&db));
    let text = stdout_of(db.taskdb().args(["migrate", "--dry-run"]));
    for (i, m) in all.iter().enumerate() {
        assert_eq!(
            text.contains(&format!("{}/up.sql", m.dir_name())),
            i > 1,
            "{}:\n{text}",
            m.dir_name()
        );
    }
    // --to limits the plan the same way it limits migrate.
    let text = stdout_of(
        db.taskdb()
            .args(["migrate", "--dry-run", "--to", all[2].dir_name()]),
    );
    assert!(text.contains(&format!("{}/up.sql", all[2].dir_name())));
    if let Some(later) = all.get(3) {
        assert!(!text.contains(&format!("{}/up.sql", later.dir_name())));
    }
    assert_eq!((schema_dump(&db), tracking(&db)), before);
});

both_backends!(migrate_dry_run_when_up_to_date, migrated, |db| {
    let text = stdout_of(db.taskdb().args(["migrate", "--dry-run"]));
    assert!(text.contains("would apply 0 migration(s)"), "{text}");
    assert!(!text.contains("up.sql"));
});

both_backends!(rollback_dry_run_changes_nothing, migrated, |db| {
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         INSERT INTO tasks (user_id, title) VALUES ('u1', 'kept');",
    );
    let before = (schema_dump(&db), tracking(&db));
    let text = stdout_of(db.taskdb().args(["rollback", "--dry-run", "--all"]));
    let mut all = migrations(db.backend);
    all.reverse();
    let names: Vec<String> = all.iter().map(|m| m.dir_name().to_string()).collect();
    let positions = header_positions(&text, &names, "down.sql");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not newest first:\n{text}"
    );
    for m in &all {
        assert!(text.contains(m.down_sql().unwrap().trim_end()));
    }
    assert!(text.contains("DROP TABLE users"));
    assert!(
        text.contains("would drop table users holding 1 row(s)"),
        "{text}"
    );
    // The default is one step: only the newest migration.
    let one = stdout_of(db.taskdb().args(["rollback", "--dry-run"]));
    assert!(one.contains(&format!("{}/down.sql", names[0])));
    assert!(!one.contains(&format!("{}/down.sql", names[1])));
    assert_eq!((schema_dump(&db), tracking(&db)), before);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tasks"), 1);
});
