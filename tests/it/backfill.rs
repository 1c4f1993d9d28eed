//! Backfill migrations (`taskdb new --backfill`): the files written for
//! both backends lint clean; on PostgreSQL `taskdb migrate` runs the
//! `UPDATE` in batches in key order and records it done, and after a
//! `kill -9` part-way a second run resumes from the saved key and ends
//! with the table one `UPDATE` gives; Ctrl-C stops it between batches
//! and a rerun resumes (a lagging standby: tests/replicas); a WAL rate cap
//! and the app waiting on a batch's row locks make it sleep between
//! batches; `status` shows its rows and rate; a backfill whose WAL forces
//! checkpoints more often than the server's `checkpoint_warning` says so;
//! SQLite runs it as one `UPDATE`.
//! Migrations are read from a copy of `migrations/` (`--migrations-dir`).

use crate::common;

use std::time::Duration;

use common::backfill::{
    assert_filled, checksum, ledger_progress, migrate_args, migration_dir, project_with_backfill,
    version_of, with_tasks, PREDICATE, SET,
};
use common::cluster::Cluster;
use common::process::{finish, read_until, signal, spawn_taskdb_at, wait_until, wait_with_limit};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use predicates::str::contains;
use taskdb::Backend;

#[test]
fn new_writes_a_backfill_for_both_backends_that_lints_clean() {
    let project = project_with_backfill();
    let pg = migration_dir(project.path(), "postgres", "_fill_tasks_priority");
    let up = std::fs::read_to_string(pg.join("up.sql")).unwrap();
    assert!(
        up.contains("UPDATE tasks SET priority = id % 7 WHERE priority IS NULL AND NOT completed;"),
        "{up}"
    );
    let down = std::fs::read_to_string(pg.join("down.sql")).unwrap();
    assert!(down.contains("SELECT 1;") && down.contains("--"), "{down}");
    let metadata: toml::Table = std::fs::read_to_string(pg.join("metadata.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(metadata["run_in_transaction"].as_bool(), Some(false));
    let backfill = metadata["backfill"].as_table().unwrap();
    assert_eq!(backfill["table"].as_str(), Some("tasks"));
    assert_eq!(backfill["set"].as_str(), Some(SET));
    assert_eq!(backfill["where"].as_str(), Some(PREDICATE));
    assert_eq!(backfill["key"].as_str(), Some("id"));

    let sqlite = migration_dir(project.path(), "sqlite", "_fill_tasks_priority");
    assert_eq!(sqlite.file_name(), pg.file_name());
    let up = std::fs::read_to_string(sqlite.join("up.sql")).unwrap();
    assert!(
        up.contains("UPDATE tasks SET priority = id % 7 WHERE priority IS NULL AND NOT completed;")
    );
    assert!(sqlite.join("down.sql").is_file());

    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success()
        .stdout(contains("0 error(s), 0 warning(s)"));
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["lint", "--check-facts", "migrations/lint-facts.json"])
        .assert()
        .success();

    // up.sql edited without its [backfill]: lint says they differ.
    let edited = std::fs::read_to_string(pg.join("up.sql"))
        .unwrap()
        .replace("id % 7", "id % 8");
    std::fs::write(pg.join("up.sql"), edited).unwrap();
    common::taskdb_cmd()
        .current_dir(project.path())
        .arg("lint")
        .assert()
        .code(1)
        .stdout(contains("parse-error"))
        .stdout(contains("[backfill] describes"));

    // --where belongs to a kind; a backfill needs it.
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["new", "x", "--where", "true"])
        .assert()
        .code(2);
    common::taskdb_cmd()
        .current_dir(project.path())
        .args(["new", "x", "--backfill", "tasks", "priority = 1"])
        .assert()
        .code(2);
}

#[test]
fn postgres_runs_a_backfill_in_batches_and_records_it_done() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 50_000);
    // A ledger from before backfills: migrate adds their columns.
    db.execute("ALTER TABLE __taskdb_ledger DROP COLUMN IF EXISTS backfill_key, DROP COLUMN IF EXISTS backfill_rows");
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("_fill_tasks_priority"))
        .stdout(contains("batch of"));
    assert_filled(&db);
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), 50_000))
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM __diesel_schema_migrations WHERE version = '{version}'"
        )),
        1
    );
    // Nothing left to do.
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success();
}

#[test]
fn a_killed_backfill_resumes_and_ends_as_one_update_would() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let rows = 300_000;
    let db = with_tasks(Backend::Postgres, rows);
    // The same table, changed by one UPDATE.
    db.execute(&format!(
        "CREATE TABLE tasks_expected AS SELECT id, completed FROM tasks;
         ALTER TABLE tasks_expected ADD COLUMN priority integer;
         UPDATE tasks_expected SET {SET} WHERE {PREDICATE};"
    ));

    // Short batches, so that there are many to stop between.
    let mut args = migrate_args(project.path());
    args.extend(["--backfill-batch-time".into(), "10ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn_taskdb_at(db.url(), &args);
    wait_until("a batch is saved", Duration::from_secs(60), || {
        ledger_progress(&db, &version).is_some_and(|(_, done)| done > 0)
    });
    signal(&child, "KILL");
    wait_with_limit(child, Duration::from_secs(10));
    let (state, done) = ledger_progress(&db, &version).unwrap();
    assert_eq!(
        state, "running",
        "the backfill finished before it could be killed"
    );
    assert!(done < i64::from(rows), "{done}");
    // Once the server has ended the killed run's session, status says how
    // far it got.
    wait_until(
        "the killed run's session ends",
        Duration::from_secs(30),
        || {
            db.scalar(
                "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'taskdb-migrate-%'",
            ) == 0
        },
    );
    db.taskdb()
        .args([
            "--migrations-dir",
            &project.path().join("migrations").display().to_string(),
            "status",
        ])
        .assert()
        .success()
        .stdout(contains(format!("backfill rows {done}/")))
        .stdout(contains(
            " rows/s; cut off, the next migrate resumes it there",
        ));
    // The same for scripts: rows done, estimated, and the killed run's rate.
    let json = db
        .taskdb()
        .args([
            "--migrations-dir",
            &project.path().join("migrations").display().to_string(),
            "status",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let status: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let migrations = status["migrations"].as_array().unwrap();
    let entry = migrations
        .iter()
        .find(|m| m["version"] == version.as_str())
        .unwrap();
    assert_eq!(entry["state"], "interrupted");
    let backfill = &entry["backfill"];
    assert_eq!(backfill["rows_done"].as_i64(), Some(done), "{entry}");
    assert!(
        backfill["rows_estimated"].as_i64().unwrap() >= done,
        "{entry}"
    );
    assert!(
        backfill["rows_per_second"].as_f64().unwrap() > 0.0,
        "{entry}"
    );
    assert!(migrations
        .iter()
        .filter(|m| m["version"] != version.as_str())
        .all(|m| m["backfill"].is_null()));

    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("resuming the backfill"));
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), i64::from(rows)))
    );
    assert_eq!(checksum(&db, "tasks"), checksum(&db, "tasks_expected"));
}

#[test]
fn sqlite_runs_a_backfill_as_one_update() {
    let project = project_with_backfill();
    let db = with_tasks(Backend::Sqlite, 2_000);
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("_fill_tasks_priority"));
    assert_filled(&db);
}

#[test]
fn ctrl_c_stops_a_backfill_between_batches_saying_what_is_done() {
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let rows = 300_000;
    let db = with_tasks(Backend::Postgres, rows);
    let mut args = migrate_args(project.path());
    args.extend(["--backfill-batch-time".into(), "10ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn_taskdb_at(db.url(), &args);
    wait_until("a batch is saved", Duration::from_secs(60), || {
        ledger_progress(&db, &version).is_some_and(|(_, done)| done > 0)
    });
    signal(&child, "INT");
    let out = wait_with_limit(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("are done and saved"), "{stderr}");
    let (state, done) = ledger_progress(&db, &version).unwrap();
    assert_eq!(state, "running");
    assert!(done > 0 && done < i64::from(rows), "{done}");

    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("resuming the backfill"));
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), i64::from(rows)))
    );
}

#[test]
fn a_batch_that_waits_on_a_row_lock_rolls_back_and_retries_under_the_lock_timeout() {
    let project = project_with_backfill();
    let add_column = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_add_tasks_priority",
    ));
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 5_000);
    let mut to = migrate_args(project.path());
    to.extend(["--to".into(), add_column]);
    db.taskdb().args(&to).assert().success();

    // The app holds a row of the first batch.
    let mut app = db.conn();
    app.batch_execute("BEGIN; SELECT id FROM tasks WHERE id = 10 FOR UPDATE")
        .unwrap();
    let mut args = migrate_args(project.path());
    args.extend(["--lock-timeout".into(), "50ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn_taskdb_at(db.url(), &args);
    let reader = read_until(&mut child, "waited too long");
    assert_eq!(
        ledger_progress(&db, &version).map(|(_, done)| done),
        Some(0)
    );
    app.batch_execute("COMMIT").unwrap();
    let (out, stdout) = finish(child, reader, Duration::from_secs(60));
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), 5_000))
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE NOT completed AND priority IS NULL"),
        0
    );
}

/// The server's WAL position in bytes.
fn wal_position(conn: &mut diesel::PgConnection) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Lsn {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        lsn: i64,
    }
    diesel::sql_query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS lsn")
        .get_result::<Lsn>(conn)
        .unwrap()
        .lsn
}

#[test]
fn a_wal_rate_cap_keeps_every_5_second_window_under_it_and_the_backfill_finishes() {
    use taskdb::migrate::{Event, MigrateOptions, MigrationSource, Migrator, WalRate};
    const CAP: u64 = 2 << 20;
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 100_000);
    let mut sampler = diesel::PgConnection::establish(db.url()).unwrap();
    let server_before = wal_position(&mut sampler);
    // The run as the library reports it: each batch's WAL, when it ended,
    // and the sleeps.
    let started = std::time::Instant::now();
    let mut batches = Vec::new();
    let mut throttled = 0;
    Migrator::new(db.database_url())
        .with_source(MigrationSource::Dir(project.path().join("migrations")))
        .with_options(MigrateOptions {
            max_wal_rate: Some(WalRate {
                bytes_per_second: CAP,
            }),
            ..MigrateOptions::default()
        })
        .on_event(|event| match event {
            Event::BackfillProgress { wal_bytes, .. } => {
                batches.push((std::time::Instant::now(), wal_bytes.unwrap()))
            }
            Event::BackfillThrottled { reason, sleep, .. } => {
                assert!(
                    matches!(reason, taskdb::migrate::ThrottleReason::WalRate { .. }),
                    "{reason:?}"
                );
                assert!(sleep > Duration::ZERO);
                throttled += 1;
            }
            _ => {}
        })
        .migrate(None)
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    assert_filled(&db);
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), 100_000))
    );
    assert!(throttled > 0);
    // The batches' WAL is the server's own count: the server wrote at
    // least that much meanwhile (it also holds every other session's).
    let own: u64 = batches.iter().map(|(_, b)| b).sum();
    let server = (wal_position(&mut sampler) - server_before) as u64;
    assert!(own > 0 && own <= server, "{own} of {server}");
    // Enough WAL that the cap mattered: two windows' worth.
    assert!(
        own as f64 > 2.0 * 5.0 * CAP as f64,
        "only {own} bytes of WAL"
    );

    // Every 5 s window: a batch's WAL counted whole as soon as the window
    // reaches the moment it ended (the worst case for the pacing).
    let window = Duration::from_secs(5);
    let worst = batches
        .iter()
        .map(|(t0, _)| {
            batches
                .iter()
                .filter(|(t, _)| *t >= *t0 && *t < *t0 + window)
                .map(|(_, b)| b)
                .sum::<u64>() as f64
                / window.as_secs_f64()
        })
        .fold(0.0f64, f64::max);
    let mb = |b: f64| b / (1 << 20) as f64;
    assert!(
        worst <= 1.1 * CAP as f64,
        "worst 5 s window {:.2} MB/s, cap {:.2} MB/s ({:.1} MB in {took:.1} s)",
        mb(worst),
        mb(CAP as f64),
        mb(own as f64)
    );
    // And the cap, not the table, set the pace.
    assert!(
        mb(own as f64) / took > 0.5 * mb(CAP as f64),
        "{:.1} MB in {took:.1} s",
        mb(own as f64)
    );
}

#[test]
fn the_app_waiting_on_a_batchs_row_locks_throttles_the_backfill() {
    let project = project_with_backfill();
    let add_column = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_add_tasks_priority",
    ));
    let db = with_tasks(Backend::Postgres, 5_000);
    let mut to = migrate_args(project.path());
    to.extend(["--to".into(), add_column]);
    db.taskdb().args(&to).assert().success();
    // The first batch (the first 1,000 keys) dwells on one of its rows,
    // holding the rows before it.
    let open = |n: u32| {
        db.scalar(&format!(
            "SELECT id::bigint FROM tasks WHERE NOT completed ORDER BY id OFFSET {n} LIMIT 1"
        ))
    };
    let (held, slow) = (open(299), open(300));
    assert!(slow < db.scalar("SELECT min(id)::bigint FROM tasks") + 1_000);
    db.execute(&format!(
        "CREATE FUNCTION dwell() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.id = {slow} THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$;
         CREATE TRIGGER dwell BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION dwell();"
    ));

    let child = spawn_taskdb_at(
        db.url(),
        &migrate_args(project.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    wait_until("the batch dwells", Duration::from_secs(60), || {
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'taskdb-migrate-%'
                AND wait_event = 'PgSleep'",
        ) == 1
    });
    // The app changes a row the batch holds: it waits for the batch.
    let app = {
        let url = db.url().to_string();
        std::thread::spawn(move || {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            conn.batch_execute(&format!(
                "UPDATE tasks SET title = 'by the app' WHERE id = {held}"
            ))
            .unwrap();
        })
    };
    let out = wait_with_limit(child, Duration::from_secs(60));
    app.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("throttling: 1 session(s) of the app waited on the last batch's row locks"),
        "{stdout}"
    );
    assert_filled(&db);
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM tasks WHERE id = {held} AND title = 'by the app' AND priority = id % 7")),
        1
    );
}

/// On a server whose `max_wal_size` is small for the backfill's WAL
/// (32MB: a checkpoint every 16.8MB, with the default completion target),
/// migrate says once, on stderr, how often the backfill forces a
/// checkpoint and which `--max-wal-rate` keeps them `checkpoint_warning`
/// (30 s) apart; the backfill goes on and finishes.
#[test]
fn a_backfill_that_forces_frequent_checkpoints_says_so_with_a_cap_to_try() {
    let cluster = Cluster::start(&[("max_wal_size", "'32MB'"), ("min_wal_size", "'32MB'")]);
    let db = cluster.database();
    db.taskdb().arg("migrate").assert().success();
    // Enough rows for the backfill to outlast the watch's first seconds.
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'x');
         INSERT INTO tasks (user_id, title, completed)
           SELECT 'u1', 'task ' || i, i % 3 = 0 FROM generate_series(1, 500000) i;",
    );
    let project = project_with_backfill();
    let out = db
        .taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 32MB / 1.9 / 30 s = 574.9 kB/s.
    assert!(
        stderr.contains("forces a checkpoint about every")
            && stderr.contains("(its checkpoint_warning is 30 s)")
            && stderr.contains("`--max-wal-rate 574kB/s`"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("forces a checkpoint").count(), 1, "{stderr}");
    db.execute(
        "DO $$ BEGIN
           IF EXISTS (SELECT 1 FROM tasks WHERE NOT completed AND priority IS DISTINCT FROM id % 7)
           THEN RAISE 'open tasks left unfilled'; END IF;
         END $$",
    );
}
