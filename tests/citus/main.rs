//! taskdb on a real Citus cluster (a coordinator and two workers, see
//! nodes.rs): migrate from empty, `taskdb distribute` with rows in place
//! (its dry run, its second run), migrations, rollback and verify after
//! it, seed, the app's typed queries and login through the coordinator,
//! each `task::` query routed to a single shard, and the pre-flight's
//! sizes of distributed tables.
//!
//! Needs Citus installed into the server's PostgreSQL: run
//! `scripts/citus-env` first (it builds Citus once per machine). Without
//! it the tests fail and say so.

// A crate of its own: the nodes are whole clusters, started once per
// test binary, and Cargo runs test crates one after another.
#![cfg(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "cli",
    feature = "testing"
))]

// The suite's helpers; this crate uses a few of them.
#[allow(dead_code)]
#[path = "../it/common/mod.rs"]
mod common;
mod nodes;

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use nodes::{Citus, CitusDb};
use predicates::str::contains;
use taskdb::db::{self, DatabaseUrl};
use taskdb::migrate::migrations;
use taskdb::models::{
    task, user, NewTask, NewUser, TaskChanges, TaskCursor, TaskFilter, TaskOrder,
};
use taskdb::Backend;

/// A database on the cluster migrated from empty by `taskdb migrate` on
/// the coordinator.
fn migrated() -> CitusDb {
    let db = Citus::shared().database();
    db.taskdb().arg("migrate").assert().success();
    db
}

/// `users` users with `per_user` tasks each.
fn with_rows(db: &CitusDb, users: u32, per_user: u32) {
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash)
           SELECT 'user-' || g, 'user' || g || '@example.com', 'x' FROM generate_series(1, {users}) g;
         INSERT INTO tasks (user_id, title, completed)
           SELECT 'user-' || u, 'task ' || t, t % 3 = 0
             FROM generate_series(1, {users}) u, generate_series(1, {per_user}) t;"
    ));
}

/// How Citus holds `table`: `n`/`t` reference, `h`/`s` hash-distributed,
/// `n`/`s` Citus-managed local; empty when Citus does not know it.
fn citus_kind(db: &CitusDb, table: &str) -> String {
    db.rows(&format!(
        "SELECT partmethod::text || '/' || repmodel::text AS line FROM pg_dist_partition
          WHERE logicalrelid = '{table}'::regclass"
    ))
    .join(",")
}

fn tasks_primary_key(db: &CitusDb) -> String {
    db.rows(
        "SELECT pg_get_constraintdef(oid) AS line FROM pg_constraint
          WHERE conrelid = 'tasks'::regclass AND contype = 'p'",
    )
    .join(",")
}

/// `taskdb distribute`, one at a time: Citus names the replication slots
/// of a concurrent distribution by a per-database counter, and the slots
/// are the whole node's, so two databases on one cluster distributing at
/// the same moment collide.
fn distribute(db: &CitusDb) -> String {
    let out = distribute_with(db, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `taskdb distribute ARGS`, one at a time (see [`distribute`]).
fn distribute_with(db: &CitusDb, args: &[&str]) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    db.taskdb().arg("distribute").args(args).output().unwrap()
}

fn pg(db: &CitusDb) -> diesel::PgConnection {
    db::connect_postgres(&DatabaseUrl::parse(&db.url()).unwrap()).unwrap()
}

#[test]
fn distribute_with_rows_in_place_shards_tasks_and_keeps_every_row() {
    let db = migrated();
    with_rows(&db, 200, 10);
    let tasks_before = db.rows("SELECT id || ' ' || user_id AS line FROM tasks ORDER BY id");

    let stdout = distribute(&db);
    assert!(stdout.contains("Distributed:"), "{stdout}");
    assert_eq!(citus_kind(&db, "users"), "n/t", "users a reference table");
    assert_eq!(citus_kind(&db, "tasks"), "h/s", "tasks hash-distributed");
    assert_eq!(
        db.rows(
            "SELECT column_to_column_name(logicalrelid, partkey) AS line FROM pg_dist_partition
              WHERE logicalrelid = 'tasks'::regclass"
        ),
        ["user_id"]
    );
    assert_eq!(tasks_primary_key(&db), "PRIMARY KEY (user_id, id)");
    // Login reads the coordinator's own copy of users.
    assert_eq!(login_lookups_ran_on(&db), (20, 0));
    // The cascading foreign key is still there, and works.
    assert_eq!(
        db.rows(
            "SELECT pg_get_constraintdef(oid) AS line FROM pg_constraint
              WHERE conrelid = 'tasks'::regclass AND contype = 'f'"
        ),
        ["FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"]
    );
    // Every row, through the coordinator.
    assert_eq!(
        db.rows("SELECT id || ' ' || user_id AS line FROM tasks ORDER BY id"),
        tasks_before
    );
    // The rows live on the workers, spread over both.
    let on_workers: Vec<i64> = (0..2)
        .map(|i| {
            let mut conn = db.worker_conn(i);
            conn.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
                .unwrap();
            nodes::rows(
                &mut conn,
                "SELECT relname::text AS line FROM pg_class
                  WHERE relname ~ '^tasks_[0-9]+$' AND relkind = 'r'",
            )
            .iter()
            .map(|shard| nodes::scalar(&mut conn, &format!("SELECT count(*) AS n FROM {shard}")))
            .sum()
        })
        .collect();
    assert_eq!(on_workers.iter().sum::<i64>(), 2000, "{on_workers:?}");
    assert!(on_workers.iter().all(|&n| n > 0), "{on_workers:?}");
    // A cascade from the reference table reaches the shards.
    db.execute("DELETE FROM users WHERE id = 'user-1'");
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM tasks WHERE user_id = 'user-1'"),
        0
    );
    // Recorded, and shown by status.
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM __taskdb_distribution"),
        5
    );
    db.taskdb()
        .arg("status")
        .assert()
        .success()
        .stdout(contains("users reference, tasks distributed by user_id"))
        .stdout(contains("5 step(s) recorded"));
    let out = db
        .taskdb()
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["citus"]["users"], "reference", "{json}");
    assert_eq!(json["citus"]["tasks"], "distributed by user_id", "{json}");
    assert_eq!(json["citus"]["recorded"].as_array().unwrap().len(), 5);
}

/// Scans of the copies of `users` (by the email index, or sequential on a
/// copy without statistics yet), as (the coordinator's copy, the workers'
/// copies), from each node's statistics.
fn users_scans(db: &CitusDb) -> (i64, i64) {
    let scans = |conn: &mut diesel::PgConnection| {
        conn.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            .unwrap();
        nodes::scalar(
            conn,
            "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::int8 AS n
               FROM pg_stat_user_tables WHERE relname ~ '^users_[0-9]+$'",
        )
    };
    (
        scans(&mut db.conn()),
        (0..2).map(|i| scans(&mut db.worker_conn(i))).sum(),
    )
}

/// Where the app's login lookups (`user::find_by_email`, 20 of them on
/// one connection) ran: the scans they added on the coordinator's copy of
/// `users` and on the workers' copies. Each server counts its own
/// scans once its backend ends (the app's connection closed, and with it
/// the coordinator's connections to the workers).
fn login_lookups_ran_on(db: &CitusDb) -> (i64, i64) {
    let before = users_scans(db);
    {
        let mut conn = pg(db);
        for k in 1..=20 {
            user::find_by_email(&mut conn, &format!("user{k}@example.com"))
                .unwrap()
                .unwrap();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = users_scans(db);
        let added = (now.0 - before.0, now.1 - before.1);
        if added.0 + added.1 >= 20 || std::time::Instant::now() > deadline {
            return added;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Login reads the coordinator's own copy of the reference table `users`
/// (no round trip to a worker): `distribute` refuses a coordinator that
/// is not in Citus's metadata, and gives a coordinator registered after
/// `users` became a reference table its copy.
#[test]
fn the_login_lookup_reads_the_coordinators_copy_of_users() {
    let db = Citus::shared().database_without_coordinator();
    db.taskdb().arg("migrate").assert().success();
    with_rows(&db, 20, 3);
    let out = db.taskdb().arg("distribute").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("citus_set_coordinator_host"), "{stderr}");
    assert_eq!(citus_kind(&db, "users"), "", "nothing changed");
    assert_eq!(tasks_primary_key(&db), "PRIMARY KEY (id)");

    // The tables distributed by hand before the coordinator was
    // registered: the copies of users are on the workers only.
    db.execute(
        "CREATE UNIQUE INDEX tasks_user_id_id_key ON tasks (user_id, id);
         ALTER TABLE tasks DROP CONSTRAINT tasks_pkey,
           ADD CONSTRAINT tasks_pkey PRIMARY KEY USING INDEX tasks_user_id_id_key;
         SET citus.enable_unsafe_triggers = on;
         SELECT create_reference_table('users');
         SELECT create_distributed_table('tasks', 'user_id');",
    );
    db.execute(&db.citus.register_coordinator_sql());
    assert_eq!(login_lookups_ran_on(&db), (0, 20), "read on the workers");
    let dry = db
        .taskdb()
        .args(["distribute", "--dry-run"])
        .output()
        .unwrap();
    let dry = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.contains("replicate_reference_tables"), "{dry}");
    distribute(&db);
    assert_eq!(
        login_lookups_ran_on(&db),
        (20, 0),
        "read on the coordinator"
    );
    assert_eq!(citus_kind(&db, "tasks"), "h/s");
}

#[test]
fn a_dry_run_shows_the_plan_and_changes_nothing_and_a_second_run_is_a_no_op() {
    let db = migrated();
    with_rows(&db, 20, 5);
    let out = db
        .taskdb()
        .args(["distribute", "--dry-run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    for needle in [
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tasks_user_id_id_key ON tasks (user_id, id)",
        "PRIMARY KEY USING INDEX tasks_user_id_id_key",
        "SET citus.enable_unsafe_triggers = on",
        "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;\n       LOCK TABLE users IN ACCESS EXCLUSIVE MODE;\n       SELECT citus_add_local_table_to_metadata('users', cascade_via_foreign_keys => true)",
        "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;\n       LOCK TABLE users IN ACCESS EXCLUSIVE MODE;\n       SELECT create_reference_table('users')",
        "create_distributed_table_concurrently('tasks', 'user_id')",
        "Dry run: nothing changed.",
        "2 worker(s)",
    ] {
        assert!(stdout.contains(needle), "no `{needle}` in:\n{stdout}");
    }
    assert_eq!(citus_kind(&db, "users"), "");
    assert_eq!(citus_kind(&db, "tasks"), "");
    assert_eq!(tasks_primary_key(&db), "PRIMARY KEY (id)");
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM pg_class WHERE relname IN ('tasks_user_id_id_key', '__taskdb_distribution')"),
        0
    );
    db.taskdb()
        .arg("status")
        .assert()
        .success()
        .stdout(contains("not distributed by taskdb yet"));

    distribute(&db);
    let recorded =
        db.rows("SELECT step || done_at AS line FROM __taskdb_distribution ORDER BY step");
    let again = distribute(&db);
    assert!(again.contains("Nothing to do"), "{again}");
    assert_eq!(
        db.rows("SELECT step || done_at AS line FROM __taskdb_distribution ORDER BY step"),
        recorded
    );
    let dry = db
        .taskdb()
        .args(["distribute", "--dry-run"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&dry.get_output().stdout).contains("Nothing to do"));
}

/// `--shard-count` sets how many shards `tasks` gets (fewer shards make
/// the final switch of the concurrent distribution, which blocks writes,
/// shorter), shown by the dry run.
#[test]
fn distribute_gives_tasks_the_shard_count_asked_for() {
    let db = migrated();
    with_rows(&db, 50, 4);
    let dry = db
        .taskdb()
        .args(["distribute", "--dry-run", "--shard-count", "4"])
        .output()
        .unwrap();
    let dry = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry.contains("create_distributed_table_concurrently('tasks', 'user_id', shard_count => 4)"),
        "{dry}"
    );
    let out = distribute_with(&db, &["--shard-count", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM pg_dist_shard WHERE logicalrelid = 'tasks'::regclass"),
        4
    );
    assert_eq!(db.scalar("SELECT count(*) AS n FROM tasks"), 200);
    // Zero is no shard count.
    db.taskdb()
        .args(["distribute", "--shard-count", "0"])
        .assert()
        .code(2);
}

#[test]
fn distribute_refuses_in_one_line_without_citus_and_before_migrate() {
    // The suite's plain server has no Citus extension in its databases.
    let plain = common::TestDb::migrated(Backend::Postgres);
    let out = plain.taskdb().arg("distribute").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("no Citus extension"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // SQLite: likewise one line.
    let lite = common::TestDb::migrated(Backend::Sqlite);
    let out = lite.taskdb().arg("distribute").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs PostgreSQL with the Citus extension"),
        "{stderr}"
    );
    // A Citus database whose tables do not exist yet.
    let empty = Citus::shared().database();
    let out = empty.taskdb().arg("distribute").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("run `taskdb migrate` first"), "{stderr}");
}

#[test]
fn verify_seed_and_the_apps_queries_and_login_work_through_the_coordinator() {
    let db = migrated();
    db.taskdb().arg("seed").assert().success();
    with_rows(&db, 10, 3);
    distribute(&db);
    let verify = db.taskdb().arg("verify").output().unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // Seed again after it (idempotent; the user is on the reference table).
    db.taskdb().arg("seed").assert().success();

    let mut conn = pg(&db);
    let alice = user::create(
        &mut conn,
        NewUser {
            id: Some("alice"),
            email: "Alice@Example.com",
            password: "correct horse battery staple",
            name: Some("Alice"),
        },
    )
    .unwrap();
    // The case-insensitive unique email holds on the reference table.
    assert!(user::create(
        &mut conn,
        NewUser {
            id: Some("alice2"),
            email: "alice@example.COM",
            password: "correct horse battery staple",
            name: None,
        },
    )
    .is_err());
    let found = user::authenticate(
        &mut conn,
        "alice@example.com",
        "correct horse battery staple",
    )
    .unwrap()
    .unwrap();
    assert_eq!(found.id, alice.id);
    assert!(user::authenticate(&mut conn, "alice@example.com", "wrong")
        .unwrap()
        .is_none());

    let first = task::create(
        &mut conn,
        "alice",
        NewTask {
            title: "write the docs",
            description: None,
            completed: false,
        },
    )
    .unwrap();
    let second = task::create(
        &mut conn,
        "alice",
        NewTask {
            title: "ship",
            description: Some("on Citus"),
            completed: false,
        },
    )
    .unwrap();
    assert_ne!(first.id, second.id, "ids come from the one sequence");
    assert_eq!(task::count(&mut conn, "alice").unwrap(), 2);
    let listed = task::list(&mut conn, "alice", TaskFilter::default()).unwrap();
    assert_eq!(listed.len(), 2);
    task::complete(&mut conn, "alice", first.id)
        .unwrap()
        .unwrap();
    let open = task::list(
        &mut conn,
        "alice",
        TaskFilter {
            completed: Some(false),
            ..TaskFilter::default()
        },
    )
    .unwrap();
    assert_eq!(open.iter().map(|t| t.id).collect::<Vec<_>>(), [second.id]);
    // Owner-scoped: another user's task is not there.
    assert!(task::get(&mut conn, "user-1", first.id).unwrap().is_none());
    assert!(!task::delete(&mut conn, "user-1", first.id).unwrap());
    // The updated_at trigger runs on the shard.
    conn.batch_execute(&format!(
        "UPDATE tasks SET updated_at = timestamp '2000-01-01' WHERE user_id = 'alice' AND id = {}",
        second.id
    ))
    .unwrap();
    let renamed = task::update(
        &mut conn,
        "alice",
        second.id,
        TaskChanges {
            title: Some("ship it"),
            ..TaskChanges::default()
        },
    )
    .unwrap()
    .unwrap();
    assert!(
        renamed.updated_at.and_utc().timestamp() > 946_684_800,
        "{renamed:?}"
    );
    assert!(task::delete(&mut conn, "alice", second.id).unwrap());
    // Deleting the user cascades to its tasks on the shards.
    assert!(user::delete(&mut conn, "alice").unwrap());
    assert_eq!(task::count(&mut conn, "alice").unwrap(), 0);
}

#[test]
fn every_task_query_is_routed_to_a_single_shard() {
    let db = migrated();
    with_rows(&db, 50, 20);
    distribute(&db);
    // Citus fails any query that would need more than one shard.
    db.execute(&format!(
        "ALTER DATABASE {} SET citus.multi_task_query_log_level = 'error'",
        db.name
    ));
    let mut conn = pg(&db);
    // The setting is in force: a query across users fails.
    assert!(diesel::sql_query("SELECT count(*) FROM tasks")
        .execute(&mut conn)
        .is_err());
    let owner = "user-7";
    let made = task::create(
        &mut conn,
        owner,
        NewTask {
            title: "one more",
            description: None,
            completed: false,
        },
    )
    .unwrap();
    task::get(&mut conn, owner, made.id).unwrap().unwrap();
    let cursor = TaskCursor::after(&made);
    for order in [TaskOrder::NewestFirst, TaskOrder::OldestFirst] {
        for completed in [None, Some(true), Some(false)] {
            for after in [None, Some(cursor)] {
                let filter = TaskFilter {
                    completed,
                    limit: 5,
                    order,
                    after,
                };
                task::list(&mut conn, owner, filter).unwrap();
                task::page(&mut conn, owner, filter).unwrap();
                task::count_matching(&mut conn, owner, filter).unwrap();
            }
        }
    }
    task::count(&mut conn, owner).unwrap();
    task::update(
        &mut conn,
        owner,
        made.id,
        TaskChanges {
            description: Some(Some("routed")),
            ..TaskChanges::default()
        },
    )
    .unwrap()
    .unwrap();
    task::complete(&mut conn, owner, made.id).unwrap().unwrap();
    assert!(task::delete(&mut conn, owner, made.id).unwrap());

    // And EXPLAIN shows one task (a router plan) for each shape.
    let mut conn = db.conn();
    conn.batch_execute(
        "CREATE FUNCTION pg_temp.plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
         DECLARE line text;
         BEGIN
           FOR line IN EXECUTE 'EXPLAIN ' || q LOOP RETURN NEXT line; END LOOP;
         END $$;",
    )
    .unwrap();
    for sql in [
        format!("SELECT * FROM tasks WHERE user_id = '{owner}' ORDER BY created_at DESC, id DESC LIMIT 5"),
        format!("SELECT * FROM tasks WHERE user_id = '{owner}' AND NOT completed AND (created_at, id) < (now(), 5) ORDER BY created_at DESC, id DESC LIMIT 5"),
        format!("SELECT * FROM tasks WHERE user_id = '{owner}' AND id = 1"),
        format!("SELECT count(*) FROM tasks WHERE user_id = '{owner}' AND completed"),
        format!("UPDATE tasks SET completed = true WHERE user_id = '{owner}' AND id = 1"),
        format!("DELETE FROM tasks WHERE user_id = '{owner}' AND id = 1"),
        format!("INSERT INTO tasks (user_id, title) VALUES ('{owner}', 'x')"),
    ] {
        let plan = nodes::rows(
            &mut conn,
            &format!("SELECT plan_of AS line FROM pg_temp.plan_of($q${sql}$q$)"),
        )
        .join("\n");
        assert!(plan.contains("Task Count: 1"), "{sql}:\n{plan}");
    }
}

#[test]
fn a_migration_after_distribute_runs_on_the_coordinator_and_reaches_the_shards_and_rolls_back() {
    let db = migrated();
    with_rows(&db, 20, 5);
    distribute(&db);
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("postgres");
    copy_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/postgres")
            .as_path(),
        &dir,
    );
    let index = dir.join("2099-01-01-000001_index_tasks_user_title");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::write(
        index.join("up.sql"),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_user_title ON tasks (user_id, title);\n",
    )
    .unwrap();
    std::fs::write(
        index.join("down.sql"),
        "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_title;\n",
    )
    .unwrap();
    std::fs::write(index.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    let check = dir.join("2099-01-01-000002_check_title");
    std::fs::create_dir_all(&check).unwrap();
    std::fs::write(
        check.join("up.sql"),
        "ALTER TABLE tasks ADD CONSTRAINT tasks_title_not_blank CHECK (title <> '') NOT VALID;\n",
    )
    .unwrap();
    std::fs::write(
        check.join("down.sql"),
        "ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_title_not_blank;\n",
    )
    .unwrap();
    let validate = dir.join("2099-01-01-000003_validate_title");
    std::fs::create_dir_all(&validate).unwrap();
    std::fs::write(
        validate.join("up.sql"),
        "ALTER TABLE tasks VALIDATE CONSTRAINT tasks_title_not_blank;\n",
    )
    .unwrap();
    std::fs::write(validate.join("down.sql"), "SELECT 1;\n").unwrap();

    let with_dir = |args: &[&str]| {
        let mut cmd = db.taskdb();
        cmd.arg("--migrations-dir").arg(project.path()).args(args);
        cmd
    };
    with_dir(&["migrate"]).assert().success();
    // On every shard of tasks, on both workers.
    let shards =
        db.scalar("SELECT count(*) AS n FROM pg_dist_shard WHERE logicalrelid = 'tasks'::regclass");
    let mut indexes = 0;
    let mut validated = 0;
    for i in 0..2 {
        let mut conn = db.worker_conn(i);
        conn.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            .unwrap();
        indexes += nodes::scalar(
            &mut conn,
            "SELECT count(*) AS n FROM pg_class WHERE relname ~ '^idx_tasks_user_title_[0-9]+$'",
        );
        validated += nodes::scalar(
            &mut conn,
            "SELECT count(*) AS n FROM pg_constraint WHERE conname ~ '^tasks_title_not_blank_[0-9]+$' AND convalidated",
        );
    }
    let names: Vec<String> = (0..2)
        .flat_map(|i| {
            let mut conn = db.worker_conn(i);
            conn.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
                .unwrap();
            nodes::rows(
                &mut conn,
                "SELECT c.relname || ' on ' || t.relname AS line FROM pg_class c
                   JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid
                  WHERE c.relname ~ '^idx_tasks_user_title_[0-9]+$'",
            )
        })
        .collect();
    assert_eq!(indexes, shards, "{names:?}");
    assert_eq!(validated, shards);
    with_dir(&["verify"]).assert().success();

    with_dir(&["rollback", "--yes"]).assert().success();
    with_dir(&["rollback", "--yes"]).assert().success();
    with_dir(&["rollback", "--yes"]).assert().success();
    let mut left = 0;
    for i in 0..2 {
        let mut conn = db.worker_conn(i);
        conn.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            .unwrap();
        left += nodes::scalar(
            &mut conn,
            "SELECT count(*) AS n FROM pg_class WHERE relname ~ '^idx_tasks_user_title_[0-9]+$'",
        );
    }
    assert_eq!(left, 0);
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM __diesel_schema_migrations"),
        migrations(Backend::Postgres).len() as i64
    );
    db.taskdb().arg("verify").assert().success();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A project directory with taskdb's migrations and one more, `up`.
fn project_with(name: &str, up: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("postgres");
    copy_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/postgres")
            .as_path(),
        &dir,
    );
    let extra = dir.join(format!("2099-01-01-000001_{name}"));
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("up.sql"), up).unwrap();
    std::fs::write(extra.join("down.sql"), "SELECT 1;\n").unwrap();
    project
}

#[test]
fn the_preflight_reads_a_distributed_tables_size_from_its_shards() {
    let db = migrated();
    with_rows(&db, 100, 300);
    distribute(&db);
    db.execute("ANALYZE tasks");
    // The coordinator's own catalog says the table is empty.
    assert_eq!(db.scalar("SELECT pg_relation_size('tasks')::int8 AS n"), 0);
    let mut conn = pg(&db);
    let size = taskdb::catalog::table_size::table_size(&mut conn, "tasks")
        .unwrap()
        .unwrap();
    assert!(
        (27_000..=33_000).contains(&size.rows),
        "30000 rows on the shards, estimated {size:?}"
    );
    assert!(size.bytes > 1 << 20, "{size:?}");
    let users = taskdb::catalog::table_size::table_size(&mut conn, "users")
        .unwrap()
        .unwrap();
    assert_eq!(users.rows, 100, "{users:?}");

    // So `migrate` refuses a blocking index build on it.
    let project = project_with(
        "index_tasks_title",
        "CREATE INDEX idx_tasks_title ON tasks (title);\n",
    );
    let out = db
        .taskdb()
        .arg("--migrations-dir")
        .arg(project.path())
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to migrate"), "{stderr}");
    assert!(stderr.contains("[index-without-concurrently]"), "{stderr}");
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM pg_class WHERE relname = 'idx_tasks_title'"),
        0
    );
}

/// Lint's Citus rules judge migrations by what the coordinator
/// distributes: the pre-flight of `migrate` refuses a unique index
/// without the distribution column (at any size; Citus would fail it half
/// way) and a trigger on a distributed table, and `taskdb lint
/// --database-url` against the coordinator shows them.
#[test]
fn the_preflight_refuses_what_citus_cannot_do_on_a_distributed_table() {
    let db = migrated();
    with_rows(&db, 20, 5);
    distribute(&db);
    let unique = project_with(
        "unique_title",
        "CREATE UNIQUE INDEX tasks_title_key ON tasks (title);\n",
    );
    let out = db
        .taskdb()
        .arg("--migrations-dir")
        .arg(unique.path())
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to migrate"), "{stderr}");
    assert!(
        stderr.contains("[citus-unique-without-distribution-column]"),
        "{stderr}"
    );
    assert!(stderr.contains("(user_id, title)"), "the recipe: {stderr}");
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM pg_class WHERE relname = 'tasks_title_key'"),
        0
    );

    let trigger = project_with(
        "touch_trigger",
        "CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION diesel_set_updated_at();\n",
    );
    let out = db
        .taskdb()
        .arg("--migrations-dir")
        .arg(trigger.path())
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[citus-trigger-on-distributed-table]"),
        "{stderr}"
    );

    // lint against the coordinator names the rule; without a database it
    // cannot know what is distributed.
    let dir = unique.path().join("postgres");
    let with_db = db.taskdb().arg("lint").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&with_db.stdout).to_string();
    assert_eq!(with_db.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("citus-unique-without-distribution-column"),
        "{stdout}"
    );
    let without = common::taskdb_cmd().arg("lint").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&without.stdout).to_string();
    assert!(
        !stdout.contains("citus-unique-without-distribution-column"),
        "{stdout}"
    );
}

/// A migration after `distribute` whose shard is locked on a worker (a
/// long transaction there): its lock timeout must reach the shard, so the
/// step gives up and is retried, never queueing behind the lock.
#[test]
fn the_lock_timeout_of_a_migration_reaches_the_shards_on_the_workers() {
    let db = migrated();
    with_rows(&db, 20, 5);
    distribute(&db);
    let project = project_with(
        "check_title",
        "ALTER TABLE tasks ADD CONSTRAINT tasks_title_not_blank CHECK (title <> '') NOT VALID;\n",
    );
    // Every shard of tasks on worker 0, held by an open transaction.
    let mut holder = db.worker_conn(0);
    holder
        .batch_execute(
            "SET citus.show_shards_for_app_name_prefixes = '*';
             SET citus.enable_manual_changes_to_shards = on",
        )
        .unwrap();
    let shards = nodes::rows(
        &mut holder,
        "SELECT relname::text AS line FROM pg_class WHERE relname ~ '^tasks_[0-9]+$' AND relkind = 'r'",
    );
    assert!(!shards.is_empty());
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {} IN ACCESS SHARE MODE",
            shards.join(", ")
        ))
        .unwrap();
    let child = common::process::spawn_taskdb_at(
        &db.url(),
        &[
            "--migrations-dir",
            project.path().to_str().unwrap(),
            "migrate",
            "--lock-timeout",
            "200ms",
            "--lock-retries",
            "2",
        ],
    );
    let out = common::process::wait_with_limit(child, std::time::Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("waited too long for a table lock (attempt 2)"),
        "{stdout}"
    );
    assert!(stderr.contains("could not get its table lock"), "{stderr}");
    holder.batch_execute("ROLLBACK").unwrap();
    db.taskdb()
        .arg("--migrations-dir")
        .arg(project.path())
        .arg("migrate")
        .assert()
        .success();
}

/// Two writer threads adding tasks through the coordinator with the app's
/// typed insert, as a deploy's traffic, until [`Writers::finish`].
struct Writers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(i64, Vec<String>, std::time::Duration)>>,
}

impl Writers {
    fn start(db: &CitusDb, users: u32) -> Writers {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|w| {
                let url = db.url();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut conn =
                        db::connect_postgres(&DatabaseUrl::parse(&url).unwrap()).unwrap();
                    let (mut written, mut errors, mut slowest) =
                        (0i64, Vec::new(), std::time::Duration::ZERO);
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let owner = format!("user-{}", (n * 2 + w) % users + 1);
                        let started = std::time::Instant::now();
                        match task::create(
                            &mut conn,
                            &owner,
                            NewTask {
                                title: "written during distribute",
                                description: None,
                                completed: false,
                            },
                        ) {
                            Ok(_) => written += 1,
                            Err(e) => errors.push(e.to_string()),
                        }
                        slowest = slowest.max(started.elapsed());
                    }
                    (written, errors, slowest)
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        Writers { stop, threads }
    }

    /// Stops them: the rows written, asserting that no write failed.
    fn finish(self) -> i64 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut written = 0;
        for writer in self.threads {
            let (n, errors, slowest) = writer.join().unwrap();
            assert!(errors.is_empty(), "{errors:?}");
            assert!(n > 0);
            eprintln!("writer: {n} tasks, slowest insert {slowest:?}");
            written += n;
        }
        written
    }
}

/// Two writers add tasks through the coordinator, with the app's typed
/// insert, for the whole of `distribute`: none of their writes fails and
/// every row is there afterwards.
#[test]
fn writes_go_on_while_distribute_runs_and_none_is_lost() {
    let db = migrated();
    with_rows(&db, 100, 200);
    let writers = Writers::start(&db, 100);
    distribute(&db);
    let written = writers.finish();
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM tasks WHERE title = 'written during distribute'"),
        written
    );
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM tasks"),
        20_000 + written
    );
}

/// An insert into `tasks` locks `tasks` and then (its foreign key check)
/// `users`; making `users` a reference table locks both too, and must take
/// them in the same order, or the two wait for each other until the lock
/// timeout (or the deadlock detector) ends one: with writers going on, the
/// step then never gets through without retries, and writers queue behind
/// each attempt. In the writers' order it waits at most for the inserts
/// under way: one attempt, no retry.
#[test]
fn the_reference_table_steps_take_their_locks_in_the_writers_order() {
    let db = migrated();
    // Enough users that copying them takes a while (the window in which
    // the two orders meet).
    with_rows(&db, 10_000, 1);
    let writers = Writers::start(&db, 10_000);
    let out = distribute_with(&db, &["--lock-timeout", "1s", "--lock-retries", "0"]);
    let written = writers.finish();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("waited too long"), "{stdout}");
    assert_eq!(citus_kind(&db, "users"), "n/t");
    assert_eq!(citus_kind(&db, "tasks"), "h/s");
    assert_eq!(
        db.scalar("SELECT count(*) AS n FROM tasks"),
        10_000 + written
    );
}

/// Runs `child_using_taskdb_testing` in a process of its own whose
/// `taskdb::testing` server is `server` (the variable is read once per
/// process).
fn taskdb_testing_against(server: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_using_taskdb_testing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(taskdb::testing::SERVER_VARIABLE, server)
        .env("TASKDB_TEST_WARM", "0")
        .output()
        .unwrap()
}

#[test]
#[ignore = "a helper process for the taskdb::testing tests"]
fn child_using_taskdb_testing() {
    let db = taskdb::testing::TestDb::postgres().unwrap_or_else(|e| panic!("TESTDB ERROR: {e}"));
    let mut conn = db.conn().unwrap();
    let owner = user::create(
        &mut conn,
        NewUser {
            email: "tester@example.com",
            password: "correct horse battery staple",
            ..NewUser::default()
        },
    )
    .unwrap();
    task::create(
        &mut conn,
        &owner.id,
        NewTask {
            title: "Write the tests",
            ..NewTask::default()
        },
    )
    .unwrap();
    let citus = nodes::scalar(
        &mut <diesel::PgConnection as diesel::Connection>::establish(db.url().expose_secret())
            .unwrap(),
        "SELECT count(*) AS n FROM pg_extension WHERE extname = 'citus'",
    );
    println!("PLAIN TEST DATABASE, citus extensions: {citus}");
}

/// `taskdb::testing` pointed at a Citus coordinator (whose `template1` is
/// plain, as Citus leaves it) gives each test a plain migrated database.
#[test]
fn taskdb_testing_on_a_coordinator_gives_each_test_a_plain_database() {
    let citus = Citus::shared();
    let out = taskdb_testing_against(&citus.coordinator.url("postgres"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PLAIN TEST DATABASE, citus extensions: 0"),
        "{stdout}"
    );
}

/// A server whose new databases come with the Citus extension (it is in
/// `template1`) is refused with one line that says why and what to do,
/// and no half-built template is left.
#[test]
fn taskdb_testing_refuses_a_server_whose_template1_has_citus() {
    // A node of its own: the shared ones create the extension per database.
    let node = nodes::lone_node("citus_template1");
    node.conn("template1")
        .batch_execute("CREATE EXTENSION citus")
        .unwrap();
    let out = taskdb_testing_against(&node.url("postgres"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("TESTDB ERROR: taskdb::testing cannot use this server")
            && text.contains("template1 has it")
            && text.contains(taskdb::testing::SERVER_VARIABLE),
        "{text}"
    );
    let left = nodes::rows(
        &mut node.conn("postgres"),
        "SELECT datname::text AS line FROM pg_database WHERE datname LIKE 'taskdb%'",
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}
