//! What a migrated database per test costs with `taskdb::testing`, next to
//! building one from scratch (a new database and every migration run into
//! it: what `#[sqlx::test]` does per test), on both backends, with 1 and 2
//! threads creating databases at once. Each sample is create + migrated +
//! the first connection of `TestDb::pool` + drop (and once, for comparison,
//! with a pool that opens all its connections up front).
//!
//! ```text
//! cargo run --release --example test_setup [-- SAMPLES [WORK_MS]]
//! ```
//!
//! `WORK_MS` (default 0) is how long each sample's "test" holds its
//! database before dropping it; it is subtracted from the times shown, so
//! they stay set-up cost. With 0 the next clone has no test to hide behind.
//!
//! First it times the server statements alone on one connection: `CREATE
//! DATABASE … TEMPLATE` with each strategy (`WAL_LOG`, PostgreSQL 15's
//! default, and `FILE_COPY`), `DROP DATABASE … WITH (FORCE)`, and the
//! first and a second connection to a fresh clone, with the checkpoints
//! each requested (`pg_stat_bgwriter.checkpoints_req`).
//!
//! Needs the test server (`TASKDB_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskdb::db::{self, AnyConnection, DatabaseUrl};
use taskdb::testing::{TestDb, SPARES_VARIABLE};
use taskdb::Backend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let samples: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(40);
    let work_ms: u64 = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(0);
    // The first call builds the templates; it is not a test's cost.
    drop(TestDb::postgres()?);
    drop(TestDb::sqlite()?);
    server_statements(samples.min(20))?;
    println!(
        "\nper-test set-up (create, migrated, first pooled connection, drop; a test holding it {work_ms} ms not counted); median and p90 of {samples} samples"
    );
    println!("{:<52} {:>9} {:>9}", "approach", "1 thread", "2 threads");
    let work = Duration::from_millis(work_ms);
    for (label, spares, setup) in [
        (
            "taskdb::testing PostgreSQL, spares off (clone per test)",
            Some("0"),
            pg_testing as fn(Duration) -> Result<(), String>,
        ),
        ("taskdb::testing PostgreSQL, 1 spare", Some("1"), pg_testing),
        (
            "taskdb::testing PostgreSQL, 2 spares (default)",
            None,
            pg_testing,
        ),
        (
            "  the same, pool opening 4 connections up front",
            None,
            pg_testing_eager_pool,
        ),
        (
            "PostgreSQL: new database + run_pending",
            Some("0"),
            pg_from_scratch,
        ),
        (
            "taskdb::testing SQLite (template copy)",
            None,
            sqlite_testing,
        ),
        ("SQLite: new file + run_pending", None, sqlite_from_scratch),
    ] {
        match spares {
            // Read by taskdb::testing on every claim; set while no other
            // thread of this program runs.
            Some(n) => std::env::set_var(SPARES_VARIABLE, n),
            None => std::env::remove_var(SPARES_VARIABLE),
        }
        let one = measure(setup, samples, 1, work)?;
        let two = measure(setup, samples, 2, work)?;
        println!(
            "{label:<52} {:>6.1} ms {:>6.1} ms   (p90 {:.1} / {:.1} ms)",
            ms(one.0),
            ms(two.0),
            ms(one.1),
            ms(two.1)
        );
    }
    Ok(())
}

/// The statements a clone per test costs, alone, on one connection.
fn server_statements(samples: usize) -> Result<(), Box<dyn std::error::Error>> {
    let template = taskdb::testing::postgres_template()?;
    let server = DatabaseUrl::parse(
        &std::env::var(taskdb::testing::SERVER_VARIABLE)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )?;
    let mut admin = db::connect(&server)?;
    let name = format!("taskdb_bench_clone_{}", std::process::id());
    let timed = |admin: &mut AnyConnection, sql: &str| -> Result<(Duration, i64), String> {
        let before = checkpoints(admin)?;
        let started = Instant::now();
        admin.batch_execute(sql).map_err(|e| e.to_string())?;
        let took = started.elapsed();
        Ok((took, checkpoints(admin)? - before))
    };
    let mut rows: Vec<(&str, Vec<Duration>, i64)> = vec![
        ("CREATE DATABASE … TEMPLATE (WAL_LOG)", Vec::new(), 0),
        (
            "CREATE DATABASE … TEMPLATE STRATEGY FILE_COPY",
            Vec::new(),
            0,
        ),
        ("DROP DATABASE … WITH (FORCE)", Vec::new(), 0),
        ("first connection to a fresh clone", Vec::new(), 0),
        ("second connection to it", Vec::new(), 0),
    ];
    for i in 0..samples {
        // Alternate which strategy goes first.
        for strategy in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            let sql = match strategy {
                0 => format!("CREATE DATABASE {name} TEMPLATE {template}"),
                _ => format!("CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"),
            };
            let (took, ckpt) = timed(&mut admin, &sql)?;
            rows[strategy].1.push(took);
            rows[strategy].2 += ckpt;
            let url = server.with_database(&name)?;
            for row in [3, 4] {
                let started = Instant::now();
                let mut conn = db::connect(&url)?;
                conn.batch_execute("SELECT 1")?;
                rows[row].1.push(started.elapsed());
            }
            let (took, ckpt) = timed(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
            rows[2].1.push(took);
            rows[2].2 += ckpt;
        }
    }
    println!("server statements alone, one connection, median (p90) of {samples} each, checkpoints requested per statement:");
    for (label, mut times, ckpts) in rows {
        times.sort();
        println!(
            "  {label:<48} {:>6.1} ms ({:.1})   {:.1} checkpoints",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            ckpts as f64 / times.len() as f64
        );
    }
    Ok(())
}

fn checkpoints(admin: &mut AnyConnection) -> Result<i64, String> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT checkpoints_req FROM pg_stat_bgwriter)",
    ))
    .get_result(admin)
    .map_err(|e| e.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p90 of one set-up, `threads` of them running at once.
fn measure(
    setup: fn(Duration) -> Result<(), String>,
    samples: usize,
    threads: usize,
    work: Duration,
) -> Result<(Duration, Duration), String> {
    let per_thread = samples.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| {
                        let started = Instant::now();
                        setup(work).map(|()| started.elapsed().saturating_sub(work))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
        })
        .collect();
    let mut times = Vec::new();
    for handle in handles {
        times.extend(
            handle
                .join()
                .map_err(|_| "a thread panicked".to_string())??,
        );
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 9 / 10]))
}

/// The pool's first connection, then the test's work while holding it.
fn first_connection(pool: Result<db::Pool, taskdb::Error>, work: Duration) -> Result<(), String> {
    let pool = pool.map_err(|e| e.to_string())?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    std::thread::sleep(work);
    drop(conn);
    Ok(())
}

fn pg_testing(work: Duration) -> Result<(), String> {
    let db = TestDb::postgres().map_err(|e| e.to_string())?;
    first_connection(db.pool(), work)
}

/// As `pg_testing`, with a pool that opens all its 4 connections before
/// the first checkout (`db::pool`, what `TestDb::pool` was before).
fn pg_testing_eager_pool(work: Duration) -> Result<(), String> {
    let db = TestDb::postgres().map_err(|e| e.to_string())?;
    first_connection(db::pool(db.url(), 4), work)
}

fn sqlite_testing(work: Duration) -> Result<(), String> {
    let db = TestDb::sqlite().map_err(|e| e.to_string())?;
    first_connection(db.pool(), work)
}

fn pg_from_scratch(work: Duration) -> Result<(), String> {
    let db = TestDb::empty(Backend::Postgres).map_err(|e| e.to_string())?;
    taskdb::migrate::run_pending(db.url()).map_err(|e| e.to_string())?;
    first_connection(db.pool(), work)
}

fn sqlite_from_scratch(work: Duration) -> Result<(), String> {
    let db = TestDb::empty(Backend::Sqlite).map_err(|e| e.to_string())?;
    taskdb::migrate::run_pending(db.url()).map_err(|e| e.to_string())?;
    first_connection(db.pool(), work)?;
    // Keep the comparison honest: the file is really there and migrated.
    db.conn()
        .and_then(|mut c| Ok(c.batch_execute("SELECT 1 FROM users LIMIT 1")?))
        .map_err(|e| e.to_string())
}
