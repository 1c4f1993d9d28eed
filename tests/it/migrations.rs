//! Migrations end to end: up, down, up again; interop with the diesel CLI;
//! the generated schema.rs; `--to`, rollback and redo through the library.

use crate::common;
use crate::rows;

use std::process::Command;

use common::{schema_dump, TestDb};
use taskdb::migrate::{self, MigrationState, Migrator, RollbackTarget};
use taskdb::Backend;

both_backends!(up_down_up_leaves_an_identical_schema, empty, |db| {
    let url = db.database_url();
    migrate::run_pending(&url).unwrap();
    let first = schema_dump(&db);
    assert!(
        first.iter().any(|l| l.contains("users_email_lower_key")),
        "{first:#?}"
    );

    let mut migrator = Migrator::new(url.clone());
    let all = migrator.rollback_targets(&RollbackTarget::All).unwrap();
    assert_eq!(all.len(), migrate::migrations(db.backend).len());
    migrator.rollback(&all).unwrap();
    let empty: Vec<String> = schema_dump(&db)
        .into_iter()
        .filter(|l| !l.contains("__diesel_schema_migrations") && !l.contains("__taskdb_ledger"))
        .collect();
    assert!(
        empty.is_empty(),
        "down.sql files left objects behind: {empty:#?}"
    );

    migrate::run_pending(&url).unwrap();
    assert_eq!(schema_dump(&db), first);
});

both_backends!(
    every_migration_reverts_and_reapplies_one_by_one,
    empty,
    |db| {
        // Walk up one step at a time, and at each step redo the newest: catches
        // a down.sql that does not undo its up.sql.
        let url = db.database_url();
        for m in migrate::migrations(db.backend) {
            let mut migrator = Migrator::new(url.clone());
            migrator.migrate(Some(&m.version())).unwrap();
            let before = schema_dump(&db);
            let newest = migrator
                .rollback_targets(&RollbackTarget::Steps(1))
                .unwrap();
            assert_eq!(newest[0].version(), m.version());
            migrator.redo(&newest).unwrap();
            assert_eq!(
                schema_dump(&db),
                before,
                "redo of {} changed the schema",
                m.dir_name()
            );
        }
    }
);

both_backends!(migrate_to_stops_after_the_version, empty, |db| {
    let url = db.database_url();
    let mut migrator = Migrator::new(url);
    let target = migrate::migrations(db.backend)[1].clone();
    // Every spelling a user might give.
    let prefix = target.dir_name().split('_').next().unwrap().to_string();
    let applied = migrator.migrate(Some(&prefix)).unwrap();
    assert_eq!(applied.last().unwrap().version, target.version());
    let plan = migrator.plan().unwrap();
    assert_eq!(plan.applied().count(), 2);
    assert_eq!(
        plan.pending().count(),
        migrate::migrations(db.backend).len() - 2
    );
    // And rollback --to keeps that version.
    let first = migrate::migrations(db.backend)[0].clone();
    let targets = migrator
        .rollback_targets(&RollbackTarget::To(first.dir_name().into()))
        .unwrap();
    assert_eq!(targets.len(), 1);
    migrator.rollback(&targets).unwrap();
    assert_eq!(migrator.plan().unwrap().applied().count(), 1);
});

both_backends!(a_second_run_applies_nothing, migrated, |db| {
    let applied = migrate::run_pending(&db.database_url()).unwrap();
    assert!(applied.is_empty());
    let plan = Migrator::new(db.database_url()).plan().unwrap();
    assert!(plan.is_up_to_date());
    assert!(plan
        .entries
        .iter()
        .all(|e| e.state == MigrationState::Applied));
});

both_backends!(existing_tasks_table_and_rows_are_adopted, empty, |db| {
    // The app's tasks table from before accounts, with rows, and users for them.
    let id = if db.backend == Backend::Postgres {
        "SERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    };
    db.execute(&format!(
        "CREATE TABLE tasks (id {id}, user_id VARCHAR(255) NOT NULL, title VARCHAR(255) NOT NULL, \
         description TEXT, completed BOOLEAN NOT NULL DEFAULT false, \
         created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ));
    db.execute(
        "INSERT INTO tasks (user_id, title) VALUES ('user123', 'old task'), ('user123', 'another')",
    );
    let url = db.database_url();
    let mut migrator = Migrator::new(url.clone());
    // Users come first (the seed's test user), then the FK can be added.
    migrator.migrate(Some("2026-02-08-000002")).unwrap();
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('user123', 'test@example.com', 'x')",
    );
    migrate::run_pending(&url).unwrap();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'user123'"),
        2
    );
    db.execute("DELETE FROM users WHERE id = 'user123'");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks"),
        0,
        "cascade is enforced"
    );
});

fn diesel_cli() -> Command {
    let mut cmd = Command::new("diesel");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// The diesel CLI set up for `backend`'s migration directory. For SQLite its
/// config names no schema file, so src/schema.rs (generated from
/// PostgreSQL) is never rewritten; for PostgreSQL `--locked-schema` makes
/// the CLI fail instead of rewriting it.
fn diesel_for(backend: Backend, args: &[&str], url: &str) -> Command {
    let mut cmd = diesel_cli();
    cmd.args(args)
        .args(["--migration-dir", dir_for(backend), "--database-url", url]);
    match backend {
        Backend::Postgres => cmd.args(["--config-file", "diesel.toml"]),
        Backend::Sqlite => cmd.args(["--config-file", "diesel-sqlite.toml"]),
    };
    cmd
}

/// A diesel CLI config naming only `backend`'s migration directory. A
/// revert changes the schema whenever the newest migration changes columns
/// (most do): under diesel.toml the CLI would then rewrite src/schema.rs,
/// or with `--locked-schema` refuse. Without a `[print_schema]` section it
/// leaves the schema file alone, as diesel-sqlite.toml does.
fn migrations_only_config(backend: Backend) -> tempfile::NamedTempFile {
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir_for(backend));
    std::io::Write::write_all(
        &mut config,
        format!(
            "[migrations_directory]\ndir = {:?}\n",
            dir.display().to_string()
        )
        .as_bytes(),
    )
    .unwrap();
    config
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (scripts/test-env installs the diesel CLI)")
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dir_for(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "migrations/postgres",
        Backend::Sqlite => "migrations/sqlite",
    }
}

both_backends!(
    diesel_cli_migrated_database_is_fully_applied_for_taskdb,
    empty,
    |db| {
        let mut run = diesel_for(db.backend, &["migration", "run"], db.url());
        if db.backend == Backend::Postgres {
            run.arg("--locked-schema");
        }
        run_ok(&mut run);
        let status = db
            .taskdb()
            .arg("status")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let status = String::from_utf8(status).unwrap();
        let total = migrate::migrations(db.backend).len();
        assert!(status.contains(&format!("Applied: {total}")), "{status}");
        assert!(status.contains("Pending: 0"), "{status}");
        // taskdb records ledger rows for what the diesel CLI applied, and
        // applies nothing.
        db.taskdb().arg("migrate").assert().success();
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM __taskdb_ledger"),
            total as i64
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations"),
            total as i64
        );
    }
);

both_backends!(
    taskdb_migrated_database_is_fully_applied_for_diesel_cli,
    empty,
    |db| {
        db.taskdb().arg("migrate").assert().success();
        let list = run_ok(&mut diesel_for(
            db.backend,
            &["migration", "list"],
            db.url(),
        ));
        assert!(!list.contains("[ ]"), "{list}");
        assert_eq!(
            list.matches("[X]").count(),
            migrate::migrations(db.backend).len(),
            "{list}"
        );
        // And the diesel CLI can revert what taskdb applied, whatever the
        // newest migration changes.
        let config = migrations_only_config(db.backend);
        let mut revert = diesel_cli();
        revert.args(["migration", "revert", "--database-url", db.url()]);
        revert.args(["--migration-dir", dir_for(db.backend), "--config-file"]);
        revert.arg(config.path());
        let schema_rs = concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema.rs");
        let committed = std::fs::read_to_string(schema_rs).unwrap();
        run_ok(&mut revert);
        assert_eq!(
            std::fs::read_to_string(schema_rs).unwrap(),
            committed,
            "the diesel CLI rewrote src/schema.rs"
        );
        let status = String::from_utf8(
            db.taskdb()
                .arg("status")
                .assert()
                .success()
                .get_output()
                .stdout
                .clone(),
        )
        .unwrap();
        assert!(status.contains("Pending: 1"), "{status}");
    }
);

/// `diesel print-schema` of a migrated PostgreSQL database.
fn print_schema(db: &TestDb) -> String {
    run_ok(diesel_cli().args(["print-schema", "--database-url", db.url()]))
}

#[test]
fn schema_rs_is_what_diesel_print_schema_generates() {
    let db = TestDb::migrated(Backend::Postgres);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema.rs")).unwrap();
    assert_eq!(
        print_schema(&db),
        committed,
        "src/schema.rs is stale: run `diesel print-schema --database-url <migrated db> > src/schema.rs`"
    );
}

#[test]
fn schema_drift_check_can_fail() {
    // The comparison above must notice a change in the database.
    let db = TestDb::migrated(Backend::Postgres);
    db.execute("ALTER TABLE tasks ADD COLUMN priority INTEGER");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema.rs")).unwrap();
    let drifted = print_schema(&db);
    assert_ne!(drifted, committed);
    assert!(drifted.contains("priority -> Nullable<Int4>"));
}

#[test]
fn pg_migrations_add_the_fk_validated_and_exactly_one_index_per_purpose() {
    let db = TestDb::migrated(Backend::Postgres);
    assert_eq!(
        db.rows("SELECT conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated::text AS line FROM pg_constraint WHERE contype = 'f'"),
        ["fk_tasks_user_id FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE true"]
    );
    // One index per purpose, whatever later migrations add: the task lists
    // and the cascade need one led by tasks.user_id, the login one on
    // lower(email); none duplicates or is covered by another (verify's
    // health checks).
    assert!(
        db.scalar(
            "SELECT COUNT(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] \
             WHERE t.relname = 'tasks' AND a.attname = 'user_id'"
        ) >= 1
    );
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'users' \
              AND indexdef LIKE 'CREATE UNIQUE INDEX % (lower((email)::text))'"
        ),
        1
    );
    let report = db
        .taskdb()
        .args(["verify", "--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["clean"], true, "{report:#}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
}

#[test]
fn sqlite_enforces_foreign_keys_on_every_connection() {
    let db = TestDb::migrated(Backend::Sqlite);
    let mut conn = db.conn();
    let fk: Vec<String> = common::query_lines(
        &mut conn,
        "SELECT CAST(foreign_keys AS TEXT) AS line FROM pragma_foreign_keys",
    );
    assert_eq!(fk, ["1"]);
    let mode = common::query_lines(
        &mut conn,
        "SELECT journal_mode AS line FROM pragma_journal_mode",
    );
    assert_eq!(mode, ["wal"]);
    let pool = taskdb::db::pool(&db.database_url(), 2).unwrap();
    let mut pooled = pool.get().unwrap();
    assert_eq!(
        common::query_lines(
            &mut pooled,
            "SELECT CAST(foreign_keys AS TEXT) AS line FROM pragma_foreign_keys"
        ),
        ["1"]
    );
}

#[test]
fn sqlite_every_migration_applies_to_tables_holding_rows() {
    // SQLite accepts `ADD COLUMN … DEFAULT CURRENT_TIMESTAMP` on an empty
    // table and refuses it once the table has rows: apply the migrations one
    // by one, every table that exists by then holding a row.
    let db = TestDb::empty(Backend::Sqlite);
    let url = db.database_url();
    for m in migrate::migrations(Backend::Sqlite) {
        rows::fill_every_table(&db);
        Migrator::new(url.clone())
            .migrate(Some(&m.version()))
            .unwrap_or_else(|e| panic!("{} on tables holding rows: {e}", m.dir_name()));
    }
    rows::fill_every_table(&db);
    rows::assert_every_table_has_rows(&db);
    assert!(!rows::tables(&db).is_empty());
}

#[test]
fn tables_holding_rows_catch_a_non_constant_default_sqlite() {
    // The check above can fail: the trap it guards against, on a database
    // built the same way.
    let db = TestDb::migrated(Backend::Sqlite);
    let trap = "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP";
    db.execute(&format!(
        "SAVEPOINT empty; {trap}; ROLLBACK TO empty; RELEASE empty"
    ));
    rows::fill_every_table(&db);
    rows::assert_every_table_has_rows(&db);
    let err =
        diesel::connection::SimpleConnection::batch_execute(&mut db.conn(), trap).unwrap_err();
    assert!(err.to_string().contains("non-constant default"), "{err}");
}
