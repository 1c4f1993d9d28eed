//! A backend's integration suite (24 tests, each with a database of its
//! own: a user, some tasks, queries over them) run with three per-test
//! database fixtures, at 2 and 8 test threads, 3 runs each, interleaved:
//!
//! - `taskdb`: `taskdb::testing::TestDb::postgres()`, in a process that
//!   follows an earlier run of the suite (a warm-up run at each thread
//!   count, not counted), so it finds the databases that run left warm;
//! - `taskdb-cold`: the same with `TASKDB_TEST_WARM=0`: nothing taken,
//!   nothing left, as the first test process on a server;
//! - `taskdb-before`: the same from `src/before.rs`, a copy of
//!   `taskdb::testing` before databases were reset and reused (for the
//!   before/after figures in one run);
//! - `hand-made`: `CREATE DATABASE` + `taskdb::migrate::run_pending` per
//!   test, `DROP DATABASE … WITH (FORCE)` at its end;
//! - `sqlx`: what `#[sqlx::test]` expands to (`TestFn::run_test` with a
//!   migrator), sqlx 0.8, taskdb's PostgreSQL migrations as sqlx
//!   migrations (same SQL; `-- no-transaction` where `metadata.toml` says
//!   `run_in_transaction = false`).
//!
//! Every suite runs in a process of its own (as `cargo test` runs a test
//! binary), so its wall time includes what the process does at exit. All
//! three run the same test body on one taskdb connection.
//!
//! ```text
//! cd benches/test-databases
//! CARGO_TARGET_DIR=/tmp/t-bench cargo run --release [-- RUNS [TESTS]]
//! ```
//!
//! Needs the test server: `TASKDB_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

mod before;

use std::borrow::Cow;
use std::cell::Cell;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use taskdb::db::{self, DatabaseUrl};
use taskdb::models::{task, user, NewTask, NewUser, TaskFilter};
use taskdb::testing::TestDb;
use taskdb::Backend;

const FIXTURES: [&str; 5] = ["taskdb", "taskdb-cold", "taskdb-before", "hand-made", "sqlx"];
const THREADS: [usize; 2] = [2, 8];

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--suite") {
        let fixture = args[2].clone();
        let threads: usize = args[3].parse()?;
        let tests: usize = args[4].parse()?;
        return suite(&fixture, threads, tests);
    }
    let runs: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(3);
    let tests: usize = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(24);
    // Templates built, sqlx's bookkeeping schema made: not a suite's cost.
    for fixture in FIXTURES {
        run_suite(fixture, 2, 2)?;
    }
    // A developer's earlier run of the suite: what `taskdb` finds left
    // warm (`taskdb-cold` shows a process that finds nothing).
    for threads in THREADS {
        run_suite("taskdb", threads, tests)?;
    }
    let mut results: Vec<(&str, usize, Suite)> = Vec::new();
    for threads in THREADS {
        for run in 1..=runs {
            for fixture in FIXTURES {
                let suite = run_suite(fixture, threads, tests)?;
                eprintln!(
                    "{fixture:>9} {threads} threads, run {run}: {:.2} s",
                    suite.wall.as_secs_f64()
                );
                results.push((fixture, threads, suite));
            }
        }
    }
    report(&results, runs, tests);
    Ok(())
}

/// One suite: per-test set-up and tear-down, and the process's wall time.
struct Suite {
    setup: Vec<Duration>,
    teardown: Vec<Duration>,
    wall: Duration,
}

fn run_suite(fixture: &str, threads: usize, tests: usize) -> Result<Suite, Error> {
    let started = Instant::now();
    let mut cmd = Command::new(std::env::current_exe()?);
    // As `cargo test -- --test-threads=N` tells the suite.
    cmd.env("DATABASE_URL", server_url())
        .env("RUST_TEST_THREADS", threads.to_string());
    if fixture == "taskdb-cold" {
        // Takes no database left warm and leaves none: every process
        // starts as the first one on a server does.
        cmd.env(taskdb::testing::WARM_VARIABLE, "0")
            .args(["--suite", "taskdb"]);
    } else {
        cmd.env_remove(taskdb::testing::WARM_VARIABLE)
            .args(["--suite", fixture]);
    }
    let out = cmd
        .args([&threads.to_string(), &tests.to_string()])
        .output()?;
    let wall = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "the {fixture} suite failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut suite = Suite {
        setup: Vec::new(),
        teardown: Vec::new(),
        wall,
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.strip_prefix("test ") {
            let us: Vec<u64> = rest
                .split(' ')
                .map(|n| n.parse())
                .collect::<Result<_, _>>()?;
            suite.setup.push(Duration::from_micros(us[0]));
            suite.teardown.push(Duration::from_micros(us[1]));
        }
    }
    if suite.setup.len() != tests {
        return Err(format!("the {fixture} suite reported {} tests", suite.setup.len()).into());
    }
    Ok(suite)
}

fn report(results: &[(&str, usize, Suite)], runs: usize, tests: usize) {
    println!(
        "{tests} tests, {runs} runs per cell; set-up and tear-down: median (p90) over all runs' tests; suite: median wall time of the process"
    );
    println!();
    println!("| fixture | threads | set-up | tear-down | suite | suite / hand-made |");
    println!("|---|---|---|---|---|---|");
    for threads in THREADS {
        let suite_median = |fixture: &str| {
            median(
                results
                    .iter()
                    .filter(|(f, t, _)| *f == fixture && *t == threads)
                    .map(|(_, _, s)| s.wall)
                    .collect(),
            )
        };
        let hand_made = suite_median("hand-made");
        for fixture in FIXTURES {
            let cells: Vec<&Suite> = results
                .iter()
                .filter(|(f, t, _)| *f == fixture && *t == threads)
                .map(|(_, _, s)| s)
                .collect();
            let setup: Vec<Duration> = cells.iter().flat_map(|s| s.setup.clone()).collect();
            let teardown: Vec<Duration> = cells.iter().flat_map(|s| s.teardown.clone()).collect();
            let walls: Vec<String> = cells
                .iter()
                .map(|s| format!("{:.1}", s.wall.as_secs_f64()))
                .collect();
            let wall = suite_median(fixture);
            println!(
                "| {fixture} | {threads} | {} ms ({}) | {} ms | {:.2} s ({} s) | {:.2}× |",
                ms(median(setup.clone())),
                ms(percentile(setup, 0.9)),
                ms(median(teardown)),
                wall.as_secs_f64(),
                walls.join(" / "),
                wall.as_secs_f64() / hand_made.as_secs_f64()
            );
        }
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 0.5)
}

/// Nearest-rank percentile.
fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn server_url() -> String {
    std::env::var(taskdb::testing::SERVER_VARIABLE)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs `tests` tests on `threads` threads, as libtest does, and prints
/// each test's set-up and tear-down in microseconds.
fn suite(fixture: &str, threads: usize, tests: usize) -> Result<(), Error> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let lines = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= tests {
                    return;
                }
                let (setup, teardown) = match fixture {
                    "taskdb" => with_taskdb(i),
                    "taskdb-before" => with_taskdb_before(i),
                    "hand-made" => with_hand_made(i),
                    _ => with_sqlx(i),
                };
                lines.lock().unwrap().push(format!(
                    "test {} {}",
                    setup.as_micros(),
                    teardown.as_micros()
                ));
            });
        }
    });
    for line in lines.into_inner().unwrap() {
        println!("{line}");
    }
    // What the process does after this (exit handlers) is the wall time
    // less this.
    println!("tests {}", started.elapsed().as_micros());
    Ok(())
}

/// The test body: a user, 20 tasks, and the queries a handler sends.
fn body(url: &DatabaseUrl, i: usize) {
    let mut conn = db::connect(url).unwrap();
    let alice = user::create_with(
        &mut conn,
        NewUser {
            id: None,
            email: &format!("user{i}@example.com"),
            password: "correct horse",
            name: None,
        },
        TestDb::PASSWORDS,
    )
    .unwrap();
    for n in 0..20 {
        task::create(
            &mut conn,
            &alice.id,
            NewTask {
                title: &format!("task {n}"),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let tasks = task::list(&mut conn, &alice.id, TaskFilter::default()).unwrap();
    assert_eq!(tasks.len(), 20);
    task::complete(&mut conn, &alice.id, tasks[0].id).unwrap();
    assert_eq!(task::count(&mut conn, &alice.id).unwrap(), 20);
    let open = TaskFilter {
        completed: Some(false),
        ..Default::default()
    };
    assert_eq!(task::count_matching(&mut conn, &alice.id, open).unwrap(), 19);
    assert!(user::authenticate_with(
        &mut conn,
        &format!("USER{i}@example.com"),
        "correct horse",
        TestDb::PASSWORDS
    )
    .unwrap()
    .is_some());
}

fn with_taskdb(i: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let db = TestDb::postgres().unwrap();
    let setup = started.elapsed();
    body(db.url(), i);
    let ended = Instant::now();
    drop(db);
    (setup, ended.elapsed())
}

fn with_taskdb_before(i: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let db = before::TestDb::postgres().unwrap();
    let setup = started.elapsed();
    body(db.url(), i);
    let ended = Instant::now();
    drop(db);
    (setup, ended.elapsed())
}

fn with_hand_made(i: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let server = DatabaseUrl::parse(&server_url()).unwrap();
    let mut admin = db::connect(&server).unwrap();
    let name = format!("bench_hand_made_{}_{i}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let url = server.with_database(&name).unwrap();
    taskdb::migrate::run_pending(&url).unwrap();
    let setup = started.elapsed();
    body(&url, i);
    let ended = Instant::now();
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    (setup, ended.elapsed())
}

/// taskdb's PostgreSQL migrations as sqlx migrations.
fn migrator() -> &'static sqlx::migrate::Migrator {
    static MIGRATOR: OnceLock<sqlx::migrate::Migrator> = OnceLock::new();
    MIGRATOR.get_or_init(|| {
        let migrations = taskdb::migrate::migrations(Backend::Postgres)
            .iter()
            .map(|m| {
                let (version, name) = m.dir_name().split_once('_').unwrap();
                // Diesel's `00000000000000` setup migration: sqlx wants > 0.
                let version: i64 = version.replace('-', "").parse::<i64>().unwrap().max(1);
                sqlx::migrate::Migration::new(
                    version,
                    Cow::Owned(name.to_string()),
                    sqlx::migrate::MigrationType::Simple,
                    Cow::Owned(m.up_sql().to_string()),
                    !m.run_in_transaction(),
                )
            })
            .collect::<Vec<_>>();
        sqlx::migrate::Migrator {
            migrations: Cow::Owned(migrations),
            ..sqlx::migrate::Migrator::DEFAULT
        }
    })
}

thread_local! {
    static TEST: Cell<usize> = const { Cell::new(0) };
    static SETUP_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    static SETUP: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    static BODY_ENDED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A test as `#[sqlx::test(migrations = …)]` runs it.
async fn sqlx_test(pool: sqlx::PgPool) {
    let setup = SETUP_STARTED.get().unwrap().elapsed();
    SETUP.set(setup);
    let name = pool.connect_options().get_database().unwrap().to_string();
    let url = DatabaseUrl::parse(&server_url())
        .unwrap()
        .with_database(&name)
        .unwrap();
    // The test's own queries are synchronous (Diesel), as in the others.
    body(&url, TEST.get());
    BODY_ENDED.set(Some(Instant::now()));
}

fn with_sqlx(i: usize) -> (Duration, Duration) {
    use sqlx::testing::{TestArgs, TestFn};
    TEST.set(i);
    SETUP_STARTED.set(Some(Instant::now()));
    // The macro's path of the test function: sqlx names the database
    // after it.
    let path: &'static str = Box::leak(format!("test_databases::test_{i:02}").into_boxed_str());
    let mut args = TestArgs::new(path);
    args.migrator(migrator());
    let test: fn(sqlx::PgPool) -> _ = |pool| sqlx_test(pool);
    test.run_test(args);
    let teardown = BODY_ENDED.get().unwrap().elapsed();
    (SETUP.get(), teardown)
}
