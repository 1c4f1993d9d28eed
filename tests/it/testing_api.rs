//! `taskdb::testing` as a backend's tests use it: a migrated database per
//! test, in one line, gone afterwards — after a panic, in parallel, and
//! after a `kill -9` of the whole test process.

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskdb::db::{self, DatabaseUrl};
use taskdb::migrate::MigrationPlan;
use taskdb::models::{task, user, NewTask, NewUser};
use taskdb::testing::TestDb;
use taskdb::Backend;

use crate::common::cluster::Cluster;

/// The test server, as `taskdb::testing` reaches it.
fn test_server() -> String {
    std::env::var(taskdb::testing::SERVER_VARIABLE)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test server's admin connection.
fn admin() -> taskdb::db::AnyConnection {
    admin_on(&test_server())
}

fn admin_on(server: &str) -> taskdb::db::AnyConnection {
    db::connect(&DatabaseUrl::parse(server).unwrap()).unwrap()
}

fn count(sql: &str) -> i64 {
    count_on(&test_server(), sql)
}

fn count_on(server: &str, sql: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({sql})"
    )))
    .get_result(&mut admin_on(server))
    .unwrap()
}

fn database_exists(name: &str) -> bool {
    count(&format!(
        "SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'"
    )) == 1
}

fn exercise(db: &TestDb) {
    let pool = db.pool().unwrap();
    let mut conn = pool.get().unwrap();
    let plan = MigrationPlan::load(&mut conn).unwrap();
    assert!(plan.is_up_to_date(), "a TestDb is fully migrated");
    let alice = user::create_with(
        &mut conn,
        NewUser {
            id: None,
            email: "alice@example.com",
            password: "correct horse",
            name: None,
        },
        TestDb::PASSWORDS,
    )
    .unwrap();
    assert!(alice.password_hash.starts_with("$2b$04$"), "cheapest cost");
    task::create(
        &mut conn,
        &alice.id,
        NewTask {
            title: "t",
            ..Default::default()
        },
    )
    .unwrap();
    assert!(user::authenticate_with(
        &mut conn,
        "ALICE@example.com",
        "correct horse",
        TestDb::PASSWORDS
    )
    .unwrap()
    .is_some());
}

#[test]
fn a_postgres_test_database_is_migrated() {
    // What happens to it after its guard drops: see the reset and exit
    // tests below.
    let db = TestDb::postgres().unwrap();
    assert!(database_exists(db.name().unwrap()));
    assert_eq!(db.backend(), Backend::Postgres);
    exercise(&db);
}

#[test]
fn a_sqlite_test_database_is_a_migrated_file_removed_with_its_guard() {
    let db = TestDb::sqlite().unwrap();
    let path = db.sqlite_path().unwrap();
    exercise(&db);
    drop(db);
    assert!(!path.exists());
}

#[test]
fn an_empty_test_database_has_no_tables() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let db = TestDb::empty(backend).unwrap();
        let plan = MigrationPlan::load(&mut db.conn().unwrap()).unwrap();
        assert_eq!(plan.applied().count(), 0);
        taskdb::migrate::run_pending(db.url()).unwrap();
    }
}

#[test]
fn thirty_two_parallel_tests_and_a_panicking_one_each_get_a_database() {
    let (names, created) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let names = names.clone();
            std::thread::spawn(move || {
                let backend = if i % 2 == 0 {
                    Backend::Postgres
                } else {
                    Backend::Sqlite
                };
                let db = TestDb::new(backend).unwrap();
                let place = match db.name() {
                    Some(name) => name.to_string(),
                    None => db.sqlite_path().unwrap().display().to_string(),
                };
                names.send(place).unwrap();
                exercise(&db);
                if i == 7 {
                    panic!("a failing test");
                }
            })
        })
        .collect();
    drop(names);
    let panicked = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(panicked, 1);
    let places: Vec<String> = created.iter().collect();
    assert_eq!(places.len(), 32);
    // PostgreSQL databases are reused by later tests and dropped at exit
    // (see `nothing_is_left_behind_when_a_test_process_exits`); SQLite
    // files go with their guard.
    for place in places.iter().filter(|p| !p.starts_with("taskdb_t_")) {
        assert!(
            !std::path::Path::new(place).exists(),
            "{place} was left behind"
        );
    }
}

#[test]
fn in_memory_sqlite_is_refused_for_pools_and_migrations() {
    for text in [":memory:", "sqlite::memory:", "sqlite://:memory:"] {
        let url = DatabaseUrl::parse(text).unwrap();
        let err = db::pool(&url, 2).unwrap_err().to_string();
        assert!(err.contains("in-memory"), "{text}: {err}");
        let err = taskdb::migrate::run_pending(&url).unwrap_err().to_string();
        assert!(err.contains("in-memory"), "{text}: {err}");
    }
}

/// Run by the tests below in a child process: holds a test database, prints
/// its name, then waits to be killed.
#[test]
#[ignore = "a helper process for the kill -9 test"]
fn child_holding_a_test_database() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    let db = TestDb::postgres().unwrap();
    println!("DATABASE {}", db.name().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

/// Run in a child process: a new test process creating one test database.
#[test]
#[ignore = "a helper process for the sweep tests"]
fn child_creating_a_test_database() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    let db = TestDb::postgres().unwrap();
    let oid: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT oid::bigint FROM pg_database WHERE datname = current_database())",
    ))
    .get_result(&mut db.conn().unwrap())
    .unwrap();
    println!("OID {oid}");
    println!("OWNED {}", databases_of_process(std::process::id()));
}

/// `test`'s full name in the suite's crate (`testing_api::test`), as
/// `--exact` wants it.
fn in_this_module(test: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::{test}")
}

fn child(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        &in_this_module(test),
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TASKDB_TESTING_CHILD", "1");
    cmd
}

#[test]
fn databases_of_a_killed_test_process_are_swept_by_the_next_one() {
    let mut holder = child("child_holding_a_test_database")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let name = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
        // libtest prints `test <name> ... ` on the same line first.
        if let Some((_, name)) = line.trim().split_once("DATABASE ") {
            break name.to_string();
        }
    };
    assert!(database_exists(&name));
    holder.kill().unwrap(); // SIGKILL: no Drop runs
    holder.wait().unwrap();
    assert!(database_exists(&name), "kill -9 left it");
    // A running process's databases are left alone by the sweep …
    let running = TestDb::postgres().unwrap();
    let status = child("child_creating_a_test_database").status().unwrap();
    assert!(status.success());
    assert!(database_exists(running.name().unwrap()));
    // … a dead one's are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while database_exists(&name) {
        assert!(Instant::now() < deadline, "{name} was not swept");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unused_template_of_other_migrations_is_dropped_beyond_the_ones_kept() {
    // A template left by a build with other migrations, unused.
    let stale = "taskdb_tpl_000000000000";
    let _ = admin().batch_execute(&format!("CREATE DATABASE {stale}"));
    assert!(database_exists(stale));
    let status = child("child_creating_a_test_database")
        .env(taskdb::testing::TEMPLATES_VARIABLE, "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!database_exists(stale), "the stale template was dropped");
}

#[test]
fn templates_of_two_migration_sets_coexist_and_one_in_use_is_never_dropped() {
    // Another checkout's template, built with other migrations.
    let other = "taskdb_tpl_0000000000aa";
    let _ = admin().batch_execute(&format!("CREATE DATABASE {other}"));
    assert!(database_exists(other));
    let ours = taskdb::testing::postgres_template().unwrap();
    // Kept by default (several sets of migrations may stay) …
    assert!(child("child_creating_a_test_database")
        .status()
        .unwrap()
        .success());
    assert!(database_exists(other), "a recent template was dropped");
    // … and, while that checkout's tests run (they hold its lock), even
    // when only one template may stay.
    let mut its_suite = admin();
    let (class, key) = taskdb::testing::template_lock_key(other);
    its_suite
        .batch_execute(&format!("SELECT pg_advisory_lock_shared({class}, {key})"))
        .unwrap();
    assert!(child("child_creating_a_test_database")
        .env(taskdb::testing::TEMPLATES_VARIABLE, "1")
        .status()
        .unwrap()
        .success());
    assert!(database_exists(other), "a template in use was dropped");
    // Ours is in use by this process: a run of the other checkout must
    // leave it (what `template_lock_key` guards).
    let mut other_run = admin();
    let (class, key) = taskdb::testing::template_lock_key(&ours);
    let free: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "pg_try_advisory_lock({class}, {key})"
    )))
    .get_result(&mut other_run)
    .unwrap();
    assert!(!free, "this process does not hold its template");
    // Once that checkout's suite ends, it goes.
    drop(its_suite);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(child("child_creating_a_test_database")
            .env(taskdb::testing::TEMPLATES_VARIABLE, "1")
            .status()
            .unwrap()
            .success());
        if !database_exists(other) {
            break;
        }
        assert!(Instant::now() < deadline, "{other} was never evicted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(database_exists(&ours));
}

/// Run in a child process: a test that fails holding a database.
#[test]
#[ignore = "a helper process for the kept-database test"]
fn child_failing_with_a_test_database() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    let db = TestDb::postgres().unwrap();
    exercise(&db);
    let _conn = db.conn().unwrap(); // a session still on it
    panic!("a failing test");
}

#[test]
fn a_failed_tests_database_is_kept_when_asked_and_survives_the_next_run() {
    let out = child("child_failing_with_a_test_database")
        .env(taskdb::testing::KEEP_VARIABLE, "failed")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child test failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kept = stderr
        .lines()
        .find_map(|l| {
            l.split_once("kept the database")?
                .1
                .split_whitespace()
                .nth(2)
        })
        .unwrap_or_else(|| panic!("no kept database named on stderr: {stderr}"))
        .to_string();
    assert!(kept.starts_with("taskdb_kept_"), "{kept}");
    assert!(database_exists(&kept), "{kept} was not kept");
    // The next test process's sweep leaves it, and it holds the failed
    // test's rows.
    assert!(child("child_creating_a_test_database")
        .status()
        .unwrap()
        .success());
    assert!(database_exists(&kept), "{kept} was swept");
    let url = DatabaseUrl::parse(
        &std::env::var(taskdb::testing::SERVER_VARIABLE)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .unwrap()
    .with_database(&kept)
    .unwrap();
    let users: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT COUNT(*) FROM users)",
    ))
    .get_result(&mut db::connect(&url).unwrap())
    .unwrap();
    assert_eq!(users, 1);
    let _ = admin().batch_execute(&format!("DROP DATABASE {kept} WITH (FORCE)"));
    // Without the variable a failed test's database goes like any other.
    let out = child("child_failing_with_a_test_database")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kept the database"));
}

/// This process's PostgreSQL test databases: spares, retired ones and any
/// a test holds (the name carries the owner's PID).
fn databases_of_process(pid: u32) -> i64 {
    databases_of_process_on(&test_server(), pid)
}

fn databases_of_process_on(server: &str, pid: u32) -> i64 {
    count_on(
        server,
        &format!("SELECT COUNT(*) FROM pg_database WHERE datname ~ '^taskdb_t_[0-9a-f]+_{pid}_'"),
    )
}

/// Run in a child process: tests on four threads, with reused, spare,
/// empty and schema-changed databases and a failing test, then a normal
/// exit.
#[test]
#[ignore = "a helper process for the exit test"]
fn child_using_test_databases_then_exiting() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..6 {
                    let db = TestDb::postgres().unwrap();
                    exercise(&db);
                    if (t + i) % 5 == 0 {
                        // Not what a fresh clone is: dropped, not reused.
                        db.conn()
                            .unwrap()
                            .batch_execute("CREATE TABLE scratch (id INT)")
                            .unwrap();
                    }
                }
                drop(TestDb::empty(Backend::Postgres).unwrap());
                if t == 3 {
                    let _db = TestDb::postgres().unwrap();
                    panic!("a failing test");
                }
            })
        })
        .collect();
    let panicked = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(panicked, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while databases_of_process(std::process::id()) == 0 {
        assert!(Instant::now() < deadline, "no database was kept ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "DATABASES LEFT {}",
        databases_of_process(std::process::id())
    );
    // Every database this process has at its end, by OID (a rename keeps
    // it).
    let oids: Vec<i64> = diesel::sql_query(format!(
        "SELECT oid::bigint AS oid FROM pg_database WHERE datname ~ '^taskdb_t_[0-9a-f]+_{}_'",
        std::process::id()
    ))
    .load::<Oid>(&mut admin())
    .unwrap()
    .into_iter()
    .map(|o| o.oid)
    .collect();
    println!("OIDS {oids:?}");
}

#[derive(QueryableByName)]
struct Oid {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    oid: i64,
}

/// The OIDs `child_using_test_databases_then_exiting` printed.
fn oids_printed(out: &str) -> Vec<i64> {
    let list = out
        .lines()
        .find_map(|l| l.split_once("OIDS [").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no OIDS line: {out}"));
    list.trim_end_matches(']')
        .split(", ")
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The names of the databases on `server` with these OIDs that still
/// exist.
fn names_of(server: &str, oids: &[i64]) -> Vec<String> {
    if oids.is_empty() {
        return Vec::new();
    }
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let list: Vec<String> = oids.iter().map(i64::to_string).collect();
    diesel::sql_query(format!(
        "SELECT datname::text AS name FROM pg_database WHERE oid IN ({})",
        list.join(", ")
    ))
    .load::<Name>(&mut admin_on(server))
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

/// Runs `child_using_test_databases_then_exiting` against `server` with
/// `warm` (the variable unset if `None`), waits until the drops it sent at
/// exit are done, and returns the OIDs of its databases at its end.
fn run_a_test_process_to_its_exit(server: &str, warm: Option<&str>) -> Vec<i64> {
    let mut cmd = child("child_using_test_databases_then_exiting");
    cmd.env(taskdb::testing::SPARES_VARIABLE, "2")
        .env(taskdb::testing::SERVER_VARIABLE, server);
    match warm {
        Some(n) => cmd.env(taskdb::testing::WARM_VARIABLE, n),
        None => cmd.env_remove(taskdb::testing::WARM_VARIABLE),
    };
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("DATABASES LEFT"), "{out}");
    // The drops are sent at exit; the server finishes them after.
    let deadline = Instant::now() + Duration::from_secs(60);
    while databases_of_process_on(server, pid) > 0 {
        assert!(Instant::now() < deadline, "left behind at exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    oids_printed(&out)
}

#[test]
fn nothing_is_left_behind_when_a_test_process_exits() {
    // Told to leave no warm databases: every one it made is dropped.
    let server = test_server();
    let oids = run_a_test_process_to_its_exit(&server, Some("0"));
    assert!(!oids.is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !names_of(&server, &oids).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind at exit: {:?}",
            names_of(&server, &oids)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_test_process_leaves_its_reset_databases_warm_and_the_next_takes_them_instead_of_cloning() {
    // A server of its own: on the shared one, the suite's other test
    // processes take (or sweep beyond their bound) what a process leaves,
    // as they are meant to, and what this test checks would be theirs.
    let cluster = Cluster::start(&[]);
    let server = cluster.url("postgres");
    // Bounded: at most two left by a process told two.
    let oids = run_a_test_process_to_its_exit(&server, Some("2"));
    let warm = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.starts_with("taskdb_w_") || n.starts_with("taskdb_d_"))
            .count()
    };
    let left = names_of(&server, &oids);
    assert!(
        (1..=2).contains(&warm(&left)),
        "not 1 or 2 of its databases left warm: {left:?}"
    );
    // By default its databases stay (the two left before are taken by
    // it, and the bound is its own again), under names no process owns,
    // the ready ones as empty as a fresh clone.
    let oids = run_a_test_process_to_its_exit(&server, None);
    let left = names_of(&server, &oids);
    assert!(
        warm(&left) >= 2,
        "too little left for the next process: {left:?}"
    );
    assert_eq!(
        warm(&left),
        left.len(),
        "left under a process's name: {left:?}"
    );
    for name in left.iter().filter(|n| n.starts_with("taskdb_w_")) {
        let url = DatabaseUrl::parse(&server)
            .unwrap()
            .with_database(name)
            .unwrap();
        let rows: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM tasks) \
             + (SELECT COALESCE(SUM(relpages), 0)::bigint FROM pg_class WHERE relname IN ('users', 'tasks'))",
        ))
        .get_result(&mut db::connect(&url).unwrap())
        .unwrap();
        assert_eq!(rows, 0, "{name} was left warm holding rows");
    }
    // Those looks end before the next process starts: a database a session
    // is still leaving cannot be renamed, and is not taken.
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_on(
        &server,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname LIKE 'taskdb\\_w\\_%'",
    ) > 0
    {
        assert!(
            Instant::now() < deadline,
            "sessions stayed on the warm databases"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The next test process takes one instead of cloning: its database
    // is one of those left. It runs one test at a time (`--test-threads=1`,
    // as a process per test does): it takes two (one to read a fresh
    // clone's profile from), not every one left, so that test processes
    // running beside it find theirs.
    assert!(left.len() >= 3, "too few left to tell: {left:?}");
    // Every database left warm (a clone the process finished while it
    // exited is left too, beside those it listed).
    let warm_now: Vec<i64> = diesel::sql_query(
        "SELECT oid::bigint AS oid FROM pg_database WHERE datname ~ '^taskdb_[wd]_'",
    )
    .load::<Oid>(&mut admin_on(&server))
    .unwrap()
    .into_iter()
    .map(|o| o.oid)
    .collect();
    let out = child("child_creating_a_test_database")
        .env(taskdb::testing::SERVER_VARIABLE, &server)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let out = String::from_utf8_lossy(&out.stdout);
    let oid: i64 = out
        .lines()
        .find_map(|l| l.split_once("OID ").map(|(_, o)| o.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no OID line: {out}"));
    assert!(
        warm_now.contains(&oid),
        "the next process cloned (left: {warm_now:?}, got {oid}): {out} {err}"
    );
    let owned: usize = out
        .lines()
        .find_map(|l| {
            l.split_once("OWNED ")
                .map(|(_, n)| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no OWNED line: {out}"));
    assert!(
        owned <= 2,
        "a one-thread test process took {owned} of the {} left",
        left.len()
    );
}

#[test]
fn a_used_database_is_reset_for_the_next_test_and_a_changed_one_is_not_reused() {
    // A process of its own: no other test's database is ready before the
    // first one's.
    let status = child("child_running_tests_one_after_another")
        .env(taskdb::testing::WARM_VARIABLE, "0")
        .status()
        .unwrap();
    assert!(status.success());
    // With databases left by earlier processes: every one a test gets,
    // taken or reset, is as a fresh clone is.
    let status = child("child_running_tests_one_after_another")
        .env_remove(taskdb::testing::WARM_VARIABLE)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Run in a child process: six tests one after another.
#[test]
#[ignore = "a helper process for the reset test"]
fn child_running_tests_one_after_another() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    // Sequential tests in one process: each gets a database as empty as
    // a fresh clone; the second the first one's, reset (a test waits for
    // a reset under way rather than clone).
    let mut names = Vec::new();
    for i in 0..6 {
        let db = TestDb::postgres().unwrap();
        let mut conn = db.conn().unwrap();
        let users: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM tasks)",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(users, 0, "test {i} got a used database");
        let plan = MigrationPlan::load(&mut conn).unwrap();
        assert!(plan.is_up_to_date());
        let tables: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM pg_tables WHERE tablename = 'scratch')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(tables, 0, "test {i} got a database another test changed");
        // As small to size estimates (the pre-flight's) as a fresh clone.
        let pages: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT relpages::bigint FROM pg_class WHERE relname = 'tasks')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(
            pages, 0,
            "test {i} got a database whose tasks still fill pages"
        );
        exercise(&db);
        if i == 0 {
            // Enough rows for the table to fill pages, and statistics that
            // say so.
            conn.batch_execute(
                "INSERT INTO users (id, email, password_hash) VALUES ('big', 'big@example.com', 'x');
                 INSERT INTO tasks (user_id, title) SELECT 'big', 'task ' || g FROM generate_series(1, 20000) g;
                 ANALYZE tasks;",
            )
            .unwrap();
        }
        names.push(db.name().unwrap().to_string());
        if i == 3 {
            conn.batch_execute("CREATE TABLE scratch (id INT)").unwrap();
        }
    }
    if std::env::var(taskdb::testing::WARM_VARIABLE).as_deref() == Ok("0") {
        // Nothing taken from earlier processes: the reset one is next.
        assert_eq!(
            names[1], names[0],
            "the first test's database was not reused"
        );
    }
    assert!(
        !names[4..].contains(&names[3]),
        "a changed database was reused"
    );
}

/// Run in a child process (its TMPDIR set by the test): one migrated SQLite
/// test database, which must hold exactly this build's migrations.
#[test]
#[ignore = "a helper process for the SQLite template test"]
fn child_creating_a_sqlite_test_database() {
    if std::env::var_os("TASKDB_TESTING_CHILD").is_none() {
        return;
    }
    let db = TestDb::sqlite().unwrap();
    let plan = MigrationPlan::load(&mut db.conn().unwrap()).unwrap();
    let states: Vec<_> = plan.entries.iter().map(|e| (&e.name, e.state)).collect();
    assert!(
        plan.entries
            .iter()
            .all(|e| e.state == taskdb::migrate::MigrationState::Applied),
        "{states:?}"
    );
    assert_eq!(
        plan.entries.len(),
        taskdb::migrate::migrations(Backend::Sqlite).len(),
        "{states:?}"
    );
}

#[test]
fn a_sqlite_template_holding_other_migrations_is_rebuilt_not_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        child("child_creating_a_sqlite_test_database")
            .env("TMPDIR", tmp.path())
            .status()
            .unwrap()
    };
    assert!(run().success());
    let templates: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("taskdb_tpl_") && name.ends_with(".sqlite")
        })
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    // What a run of other migrations (a later release's, say) leaves in a
    // file of this name.
    let mut conn = SqliteConnection::establish(&templates[0].display().to_string()).unwrap();
    conn.batch_execute(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000001')",
    )
    .unwrap();
    drop(conn);
    assert!(
        run().success(),
        "a test database was copied from a template holding a migration this build lacks"
    );
}

#[test]
fn a_test_database_pool_opens_connections_as_the_test_asks() {
    let db = TestDb::postgres().unwrap();
    let name = db.name().unwrap().to_string();
    let sessions = || {
        count(&format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
    };
    let pool = db.pool().unwrap();
    assert_eq!(sessions(), 0, "opened before any checkout");
    let conn = pool.get().unwrap();
    assert_eq!(sessions(), 1);
    drop(conn);
    drop(pool);
}

#[test]
fn a_sweep_leaves_alone_a_running_test_process_in_another_pid_namespace() {
    // Containers with host networking: the same hostname, PIDs (and start
    // times) of a namespace the sweeping process cannot see.
    let mut holder = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            &in_this_module("child_holding_a_test_database"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TASKDB_TESTING_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let name = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
        if let Some((_, name)) = line.trim().split_once("DATABASE ") {
            break name.to_string();
        }
    };
    let status = child("child_creating_a_test_database").status().unwrap();
    assert!(status.success());
    let swept = !database_exists(&name);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        !swept,
        "the sweep dropped {name}, the database of a test process still running"
    );
    // Once its process is gone, the next sweep drops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = child("child_creating_a_test_database").status().unwrap();
        assert!(status.success());
        if !database_exists(&name) {
            break;
        }
        assert!(Instant::now() < deadline, "{name} was not swept");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_template_build_left_by_another_run_is_dropped() {
    // What a run that failed (or was killed) building its template left.
    let left = "taskdb_tpl_0000000000ff_build";
    let _ = admin().batch_execute(&format!("CREATE DATABASE {left}"));
    assert!(database_exists(left));
    let status = child("child_creating_a_test_database").status().unwrap();
    assert!(status.success());
    assert!(
        !database_exists(left),
        "the abandoned template build was left"
    );
}
