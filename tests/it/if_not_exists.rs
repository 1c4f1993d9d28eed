//! `CREATE INDEX … IF NOT EXISTS` steps on a database that already has an
//! index of that name: `migrate` goes on only when it is the index the
//! step describes. Otherwise IF NOT EXISTS would keep a stray index, and a
//! later step dropping the index it was meant to replace would leave the
//! table without either.

use crate::common;

use common::TestDb;
use taskdb::migrate::{migrations, LocalMigration};
use taskdb::Backend;

/// A `CREATE [UNIQUE] INDEX [CONCURRENTLY] IF NOT EXISTS` statement of a
/// migration, taken apart.
struct IndexStep {
    /// Position of its migration among all of them.
    position: usize,
    migration: LocalMigration,
    name: String,
    table: String,
    /// From the column list on, without the `;`.
    rest: String,
}

/// Every such step in this build's PostgreSQL migrations.
fn index_steps() -> Vec<IndexStep> {
    let mut steps = Vec::new();
    for (position, m) in migrations(Backend::Postgres).into_iter().enumerate() {
        for statement in m.up_sql().split(';') {
            let code: String = statement
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join(" ");
            let upper = code.to_ascii_uppercase();
            let Some(at) = upper.find(" IF NOT EXISTS ") else {
                continue;
            };
            if !upper.trim_start().starts_with("CREATE") || !upper.contains(" INDEX ") {
                continue;
            }
            let after = &code[at + " IF NOT EXISTS ".len()..];
            let mut words = after.split_whitespace();
            let name = words.next().unwrap().to_string();
            assert!(words.next().unwrap().eq_ignore_ascii_case("ON"));
            let table = words.next().unwrap().to_string();
            let rest = after[after.find('(').unwrap()..].trim().to_string();
            steps.push(IndexStep {
                position,
                migration: m.clone(),
                name,
                table,
                rest,
            });
        }
    }
    assert!(!steps.is_empty());
    steps
}

/// A database with every migration before `step`'s applied.
fn just_before(step: &IndexStep) -> TestDb {
    let all = migrations(Backend::Postgres);
    TestDb::migrated_to(Backend::Postgres, &all[step.position - 1].version())
}

fn applied(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM __diesel_schema_migrations")
}

#[test]
fn a_stray_index_under_the_name_of_an_if_not_exists_step_stops_migrate_there() {
    for step in index_steps() {
        let db = just_before(&step);
        let name = &step.name;
        // Same name and columns, but another index: partial, never unique.
        db.execute(&format!(
            "DROP INDEX IF EXISTS {name}; CREATE INDEX {name} ON {} {} WHERE false",
            step.table, step.rest
        ));
        let output = db.taskdb().arg("migrate").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error.len(), 1, "{stderr}");
        for said in [
            name.as_str(),
            step.migration.dir_name(),
            "WHERE false",
            "drop or rename",
        ] {
            assert!(error[0].contains(said), "no {said:?} in {stderr}");
        }
        // Neither that step nor any after it ran (no later step dropped an
        // index this one was to replace).
        assert_eq!(applied(&db), step.position as i64, "{stderr}");
        db.taskdb().args(["status", "--check"]).assert().code(1);

        // With the stray index out of the way the step builds the index it
        // describes, and the run finishes.
        db.execute(&format!("ALTER INDEX {name} RENAME TO stray_{name}"));
        db.taskdb()
            .args(["migrate", "--to", &step.migration.version()])
            .assert()
            .success();
        let def = db.rows(&format!(
            "SELECT pg_get_indexdef('{name}'::regclass) AS line"
        ));
        assert!(!def[0].contains("WHERE"), "{def:?}");
        db.taskdb().arg("migrate").assert().success();
    }
}

#[test]
fn an_existing_index_as_the_step_describes_it_is_kept() {
    let step = index_steps().pop().unwrap();
    let db = just_before(&step);
    let unique = if step
        .migration
        .up_sql()
        .to_ascii_uppercase()
        .contains("UNIQUE")
    {
        "UNIQUE "
    } else {
        ""
    };
    // Written another way (spacing, case, explicit method), same index.
    db.execute(&format!(
        "DROP INDEX IF EXISTS {0}; create {unique}index {0} on {1} USING btree {2}",
        step.name,
        step.table,
        step.rest.to_ascii_uppercase()
    ));
    db.taskdb().arg("migrate").assert().success();
    assert_eq!(applied(&db) as usize, migrations(Backend::Postgres).len());
}
