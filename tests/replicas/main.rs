//! Migrations with a real hot standby attached: the lag gate between steps,
//! the standbys in `status` and the dry run, and `verify` of a read-only
//! standby. The standby is one per test binary (see standby.rs); every
//! test here takes `standby::exclusive()`, since a paused replay would hold
//! up any other migration on the server.

// A crate of its own: the standby replays the whole server's WAL, and the
// other tests' WAL (database clones above all) would put it past the
// bounds these tests set. Cargo runs test crates one after another.
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
mod standby;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backfill::{
    ledger_progress, migrate_args, migration_dir, project_with_backfill, version_of, with_tasks,
};
use common::process::{spawn_taskdb_at, wait_until, wait_with_limit};
use common::wire_proxy::WireProxy;
use common::TestDb;
use predicates::str::contains;
use standby::Standby;
use taskdb::migrate::{migrations, replicas};
use taskdb::Backend;

impl common::role::Role {
    /// Makes it the owner of database `db` (and so of its `public` schema).
    fn own_database(&mut self, db: &str) {
        diesel::connection::SimpleConnection::batch_execute(
            &mut common::admin(),
            &format!("ALTER DATABASE \"{db}\" OWNER TO {}", self.name),
        )
        .unwrap();
        self.databases.push(db.to_string());
    }
}

/// The migration before the first concurrent index build: `tasks`, `users`
/// and the NOT VALID foreign key exist, the rest is pending.
const BEFORE_INDEX: &str = "2026-02-08-000003";

/// A database migrated up to [`BEFORE_INDEX`], whose `tasks` hold enough
/// rows that building the index on them writes several MB of WAL: each
/// task has its own user, so B-tree deduplication cannot shrink the index
/// (200 000 rows: about 6 MB).
fn tasks_with_rows(rows: u32) -> TestDb {
    let db = TestDb::empty(Backend::Postgres);
    db.taskdb()
        .args(["migrate", "--to", BEFORE_INDEX])
        .assert()
        .success();
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash)
           SELECT 'user-' || g, 'user' || g || '@example.com', 'x' FROM generate_series(1, {rows}) g;
         INSERT INTO tasks (user_id, title)
           SELECT 'user-' || g, 'task number ' || g FROM generate_series(1, {rows}) g;"
    ));
    db
}

/// `taskdb migrate` running in the background, its stdout read line by
/// line as it comes.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(url: &str, args: &[&str]) -> Running {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
            .current_dir(std::env::temp_dir())
            .env_remove("DATABASE_URL")
            .env_remove("DIRECT_DATABASE_URL")
            .env_remove("TASKDB_MAX_REPLICA_LAG")
            .env_remove("TASKDB_REPLICA_WAIT")
            .args(["--database-url", url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        Running {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.stdout().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "taskdb exited ({status}) before printing `{needle}`:\n{}\n{}",
                    self.stdout().join("\n"),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {limit:?}:\n{}",
                self.stdout().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
        }
        text
    }

    /// Exit code, stdout and stderr, failing the test after `limit`.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "taskdb did not exit within {limit:?}:\n{}",
                    self.stdout().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr();
        (status.code(), self.stdout().join("\n"), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave a migrator waiting behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Versions recorded as applied, oldest first.
fn applied(db: &TestDb) -> Vec<String> {
    db.rows("SELECT version AS line FROM __diesel_schema_migrations ORDER BY version")
}

/// States other than `applied` in taskdb's ledger (a step cut off half-way
/// would be `running` or `failed`).
fn unfinished(db: &TestDb) -> Vec<String> {
    db.rows("SELECT version || ' ' || state AS line FROM __taskdb_ledger WHERE state <> 'applied'")
}

fn verify_standby(standby: &Standby, db: &TestDb) -> (Option<i32>, String, String) {
    let output = common::taskdb_cmd()
        .args([
            "--database-url",
            &standby.url(db.pg_name().unwrap()),
            "verify",
            "--expected-from",
            db.url(),
        ])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A table with rows, `standby` caught up then paused, and a `migrate`
/// (2 MB bound) that has said it waits for it; also that line.
fn migrate_waiting_for_a_paused_standby(
    standby: &Standby,
) -> (TestDb, standby::ReplayPaused<'_>, Running, String) {
    let db = tasks_with_rows(200_000);
    standby.catch_up();
    let paused = standby.pause_replay();
    // The index build alone writes more WAL than 2MB: whatever the
    // server's other databases add, the standby is past the bound before
    // the next step at the latest.
    let mut run = Running::start(
        db.url(),
        &[
            "migrate",
            "--max-replica-lag",
            "2MB",
            "--replica-wait",
            "5m",
        ],
    );
    let waiting = run.wait_for_line("waiting for standby", Duration::from_secs(120));
    (db, paused, run, waiting)
}

#[test]
fn migrate_waits_for_a_paused_standby_before_the_next_step_and_finishes_once_it_replays() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let (db, paused, run, waiting) = migrate_waiting_for_a_paused_standby(&standby);
    assert!(waiting.contains(&standby.name), "{waiting}");
    assert!(waiting.contains("of WAL"), "{waiting}");
    // While it waits, no step starts: the ledger and the printed steps
    // stay as they were when the wait began.
    let during = applied(&db);
    let printed = run.stdout().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(applied(&db), during, "a step ran while the standby lagged");
    assert!(unfinished(&db).is_empty(), "{:?}", unfinished(&db));
    let steps_after: Vec<String> = run.stdout()[printed..]
        .iter()
        .filter(|l| l.starts_with('→'))
        .cloned()
        .collect();
    assert!(steps_after.is_empty(), "{steps_after:?}");
    assert!(during.len() < migrations(Backend::Postgres).len());

    paused.resume();
    let (code, stdout, stderr) = run.finish(Duration::from_secs(180));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("standbys caught up"), "{stdout}");
    assert_eq!(applied(&db).len(), migrations(Backend::Postgres).len());

    standby.catch_up();
    let (code, stdout, stderr) = verify_standby(&standby, &db);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("built on the primary"), "{stdout}");
    assert!(stdout.contains("read-only standby"), "{stdout}");
}

#[test]
fn a_standby_behind_past_replica_wait_stops_the_run_between_steps_and_a_rerun_finishes() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = tasks_with_rows(200_000);
    standby.catch_up();
    let paused = standby.pause_replay();

    let run = Running::start(
        db.url(),
        &[
            "migrate",
            "--max-replica-lag",
            "2MB",
            "--replica-wait",
            "2s",
        ],
    );
    let (code, stdout, stderr) = run.finish(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains(&format!("standby {}", standby.name)),
        "{stderr}"
    );
    assert!(error[0].contains("stopped between migrations"), "{stderr}");
    assert!(error[0].contains("--max-replica-lag off"), "{stderr}");
    // Nothing half-applied: every recorded step is complete, the rest
    // untouched.
    assert!(unfinished(&db).is_empty(), "{:?}", unfinished(&db));
    let stopped_at = applied(&db).len();
    assert!(stopped_at < migrations(Backend::Postgres).len(), "{stdout}");
    let status =
        String::from_utf8_lossy(&db.taskdb().arg("status").output().unwrap().stdout).to_string();
    assert!(
        !status.contains("dirty") && !status.contains("interrupted"),
        "{status}"
    );

    paused.resume();
    standby.catch_up();
    db.taskdb()
        .args([
            "migrate",
            "--max-replica-lag",
            "2MB",
            "--replica-wait",
            "2m",
        ])
        .assert()
        .success();
    assert_eq!(applied(&db).len(), migrations(Backend::Postgres).len());
    standby.catch_up();
    let (code, stdout, stderr) = verify_standby(&standby, &db);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

#[test]
fn up_to_date_migrate_sends_one_query_with_a_lagging_standby_attached() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = TestDb::migrated(Backend::Postgres);
    let _paused = standby.pause_replay();
    // Lag it well past the bound.
    db.execute("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 100000) g");
    let proxy = WireProxy::start("127.0.0.1:5432");
    let url = proxy.url("postgres", db.pg_name().unwrap());
    common::taskdb_cmd()
        .args([
            "--database-url",
            &url,
            "migrate",
            "--max-replica-lag",
            "1MB",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("Nothing to do"));
    let log = proxy.take();
    let work: Vec<_> = log.iter().filter(|s| !s.is_connection_setup()).collect();
    assert_eq!(work.len(), 1, "{work:#?}");
    assert!(!work[0].sql.contains("pg_stat_replication"), "{work:#?}");

    // The library's start-up call, with its default bound, likewise.
    let applied = taskdb::migrate::run_pending(&taskdb::DatabaseUrl::parse(&url).unwrap()).unwrap();
    assert!(applied.is_empty());
    let log = proxy.take();
    let work: Vec<_> = log.iter().filter(|s| !s.is_connection_setup()).collect();
    assert_eq!(work.len(), 1, "{work:#?}");
}

#[test]
fn the_gate_asks_the_primary_once_per_step_and_not_at_all_when_off() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let count_gate_queries = |args: &[&str]| {
        let db = TestDb::empty(Backend::Postgres);
        standby.catch_up();
        let proxy = WireProxy::start("127.0.0.1:5432");
        let url = proxy.url("postgres", db.pg_name().unwrap());
        common::taskdb_cmd()
            .args(["--database-url", &url, "migrate"])
            .args(args)
            .assert()
            .success();
        proxy
            .take()
            .iter()
            .filter(|s| s.sql.contains("pg_stat_replication"))
            .count()
    };
    let all = migrations(Backend::Postgres);
    // A bound only in bytes, far above anything here: no wait, so exactly
    // one query per step (a check after a step without a transaction
    // stands for the next step's), plus one after the last step when it
    // ran without a transaction.
    let after_last = all.last().is_some_and(|m| !m.run_in_transaction());
    let expected = all.len() + usize::from(after_last);
    assert_eq!(count_gate_queries(&["--max-replica-lag", "1GB"]), expected);
    assert_eq!(count_gate_queries(&["--max-replica-lag", "off"]), 0);
}

#[test]
fn status_lists_the_standbys_with_their_lag() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = TestDb::migrated(Backend::Postgres);
    let output = db.taskdb().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&standby.name))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("streaming"), "{line}");
    assert!(line.contains("behind"), "{line}");
    assert!(text.contains("Standbys:"), "{text}");

    let output = db
        .taskdb()
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ours = json["standbys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == standby.name.as_str())
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(ours["state"], "streaming");
    assert!(ours["bytes_behind"].is_u64(), "{ours}");
}

#[test]
fn dry_run_says_which_statements_take_access_exclusive_on_the_standbys() {
    let _serial = standby::exclusive();
    let _standby = Standby::shared();
    let db = TestDb::empty(Backend::Postgres);
    let output = db.taskdb().args(["migrate", "--dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let notes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("-- ACCESS EXCLUSIVE"))
        .collect();
    // Derived from the migrations, not written down a second time.
    let expected: usize = migrations(Backend::Postgres)
        .iter()
        .map(|m| replicas::access_exclusive_statements(m.up_sql()).len())
        .sum();
    assert!(expected > 0);
    assert_eq!(notes.len(), expected, "{text}");
    for note in &notes {
        assert!(note.contains("standby(s)"), "{note}");
        assert!(note.contains("max_standby_streaming_delay"), "{note}");
    }
    // The NOT VALID foreign key and the concurrent builds take weaker locks.
    assert!(
        !notes.iter().any(|n| n.contains("CONCURRENTLY")),
        "{notes:#?}"
    );
    assert!(!notes.iter().any(|n| n.contains("VALIDATE")), "{notes:#?}");
    assert!(
        notes.iter().any(|n| n.contains("DROP CONSTRAINT")),
        "{notes:#?}"
    );
}

#[test]
fn verify_of_a_standby_without_a_primary_says_what_to_pass() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = TestDb::migrated(Backend::Postgres);
    standby.catch_up();
    let output = common::taskdb_cmd()
        .args([
            "--database-url",
            &standby.url(db.pg_name().unwrap()),
            "verify",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("read-only standby"), "{stderr}");
    assert!(stderr.contains("--expected-from"), "{stderr}");

    // DIRECT_DATABASE_URL names the primary as well as the flag does.
    let output = common::taskdb_cmd()
        .env("DIRECT_DATABASE_URL", db.url())
        .args([
            "--database-url",
            &standby.url(db.pg_name().unwrap()),
            "verify",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(output.status.code(), Some(0), "{json}");
    assert_eq!(json["clean"], true);
    assert_eq!(json["expected_on_primary"], db.url());
}

#[test]
fn verify_of_a_standby_that_has_not_replayed_a_migration_reports_it() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = TestDb::empty(Backend::Postgres);
    db.taskdb()
        .args(["migrate", "--to", BEFORE_INDEX])
        .assert()
        .success();
    standby.catch_up();
    let paused = standby.pause_replay();
    // Off: the point is a standby that has not replayed it yet.
    db.taskdb()
        .args(["migrate", "--max-replica-lag", "off"])
        .assert()
        .success();
    let (code, stdout, stderr) = verify_standby(&standby, &db);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("difference"), "{stdout}");
    paused.resume();
    standby.catch_up();
    let (code, stdout, stderr) = verify_standby(&standby, &db);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

#[test]
fn ctrl_c_while_waiting_for_a_standby_says_nothing_is_half_applied() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let (db, _paused, run, _) = migrate_waiting_for_a_paused_standby(&standby);
    let status = Command::new("kill")
        .args(["-s", "INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stdout, stderr) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("waiting for a standby"), "{stderr}");
    assert!(error[0].contains("nothing is half-applied"), "{stderr}");
    assert!(unfinished(&db).is_empty(), "{:?}", unfinished(&db));
}

#[test]
fn a_role_that_cannot_see_standby_lag_is_shown_unknown_and_migrate_refuses_by_default() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let db = TestDb::empty(Backend::Postgres);
    let name = db.pg_name().unwrap().to_string();
    let mut role = common::role::Role::create("taskdb_no_stats");
    role.own_database(&name);
    let url = role.url(&name);
    standby.catch_up();
    let paused = standby.pause_replay();
    // WAL the paused standby has not replayed (about 10 MB).
    db.execute(
        "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g",
    );
    // The admin sees how far behind it is; the role may not.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.scalar(&format!(
        "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8
           FROM pg_stat_replication WHERE application_name = '{}'",
        standby.name
    )) < 1 << 20
    {
        assert!(Instant::now() < deadline, "the standby did not fall behind");
        std::thread::sleep(Duration::from_millis(100));
    }

    let output = common::taskdb_at(&url)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let standbys = json["standbys"].as_array().unwrap();
    assert!(!standbys.is_empty(), "{json}");
    for s in standbys {
        assert!(s["bytes_behind"].is_null(), "unknown shown as known: {s}");
        assert!(s["replay_lag_ms"].is_null(), "{s}");
        assert_eq!(s["lag_visible"], false, "{s}");
    }
    let output = common::taskdb_at(&url).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Standbys:"))
        .skip(1)
        .collect();
    assert!(!lines.is_empty(), "{text}");
    for line in lines {
        assert!(line.contains("unknown"), "{text}");
        assert!(line.contains("pg_read_all_stats"), "{text}");
        assert!(!line.contains("0 B") && !line.contains("0 ms"), "{text}");
    }

    // The gate cannot see the lag: it refuses, nothing applied, and says
    // how to let it see or to skip it.
    let output = common::taskdb_at(&url).arg("migrate").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("cannot see"), "{stderr}");
    assert!(
        error[0].contains(&format!("GRANT pg_read_all_stats TO {}", role.name)),
        "{stderr}"
    );
    assert!(error[0].contains("--max-replica-lag off"), "{stderr}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE tablename = '__diesel_schema_migrations'"),
        0,
        "{stderr}"
    );

    // Off: the operator has chosen not to wait for standbys.
    common::taskdb_at(&url)
        .args(["migrate", "--max-replica-lag", "off"])
        .assert()
        .success();
    paused.resume();
    standby.catch_up();
}

#[test]
fn a_lagging_standby_stops_a_backfill_between_batches_and_a_rerun_resumes() {
    let _serial = standby::exclusive();
    let standby = Standby::shared();
    let project = project_with_backfill();
    let version = version_of(&migration_dir(
        project.path(),
        "postgres",
        "_fill_tasks_priority",
    ));
    let rows = 300_000;
    let db = with_tasks(Backend::Postgres, rows);
    standby.catch_up();

    // Replay pauses once the backfill has started (the whole server's WAL
    // counts, so a pause before it could stop the run before the step);
    // each batch's WAL then puts the standby further behind.
    let mut args = migrate_args(project.path());
    args.extend(
        [
            "--max-replica-lag",
            "1MB",
            "--replica-wait",
            "1s",
            "--backfill-batch-time",
            "10ms",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = spawn_taskdb_at(db.url(), &args);
    wait_until("a batch is saved", Duration::from_secs(60), || {
        ledger_progress(&db, &version).is_some_and(|(_, done)| done > 0)
    });
    let paused = standby.pause_replay();
    let out = wait_with_limit(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped between two batches of a backfill"),
        "{stderr}"
    );
    let (state, done) = ledger_progress(&db, &version).unwrap();
    assert_eq!(state, "running");
    assert!(done > 0 && done < i64::from(rows), "{done}");

    paused.resume();
    standby.catch_up();
    db.taskdb()
        .args(migrate_args(project.path()))
        .assert()
        .success()
        .stdout(contains("resuming the backfill"));
    assert_eq!(
        ledger_progress(&db, &version),
        Some(("applied".into(), i64::from(rows)))
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tasks WHERE NOT completed AND priority IS NULL"),
        0
    );
}
