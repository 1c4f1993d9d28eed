//! What a migrated database per test costs with `taskdb::testing`, next to
//! building one from scratch (a new database and every migration run into
//! it: what `#[sqlx::test]` does per test), on both backends, with 1 and 2
//! threads creating databases at once. Each sample is create + migrated +
//! a pool's first connection + drop.
//!
//! ```text
//! cargo run --release --example test_setup [-- SAMPLES]
//! ```
//!
//! Needs the test server (`TASKDB_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use taskdb::db::{self, DatabaseUrl};
use taskdb::testing::TestDb;
use taskdb::Backend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let samples: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(40);
    // The first call builds the templates; it is not a test's cost.
    drop(TestDb::postgres()?);
    drop(TestDb::sqlite()?);
    println!("per-test set-up (create, migrated, first pooled connection, drop); median and p90 of {samples} samples");
    println!("{:<44} {:>9} {:>9}", "approach", "1 thread", "2 threads");
    for (label, setup) in [
        (
            "taskdb::testing PostgreSQL (template clone)",
            pg_testing as fn() -> Result<(), String>,
        ),
        ("PostgreSQL: new database + run_pending", pg_from_scratch),
        ("taskdb::testing SQLite (template copy)", sqlite_testing),
        ("SQLite: new file + run_pending", sqlite_from_scratch),
    ] {
        let one = measure(setup, samples, 1)?;
        let two = measure(setup, samples, 2)?;
        println!(
            "{label:<44} {:>6.1} ms {:>6.1} ms   (p90 {:.1} / {:.1} ms)",
            ms(one.0),
            ms(two.0),
            ms(one.1),
            ms(two.1)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p90 of one set-up, `threads` of them running at once.
fn measure(
    setup: fn() -> Result<(), String>,
    samples: usize,
    threads: usize,
) -> Result<(Duration, Duration), String> {
    let per_thread = samples.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| {
                        let started = Instant::now();
                        setup().map(|()| started.elapsed())
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

fn first_connection(url: &DatabaseUrl) -> Result<(), String> {
    let pool = db::pool(url, 4).map_err(|e| e.to_string())?;
    pool.get().map(drop).map_err(|e| e.to_string())
}

fn pg_testing() -> Result<(), String> {
    let db = TestDb::postgres().map_err(|e| e.to_string())?;
    first_connection(db.url())
}

fn sqlite_testing() -> Result<(), String> {
    let db = TestDb::sqlite().map_err(|e| e.to_string())?;
    first_connection(db.url())
}

fn pg_from_scratch() -> Result<(), String> {
    let db = TestDb::empty(Backend::Postgres).map_err(|e| e.to_string())?;
    taskdb::migrate::run_pending(db.url()).map_err(|e| e.to_string())?;
    first_connection(db.url())
}

fn sqlite_from_scratch() -> Result<(), String> {
    let db = TestDb::empty(Backend::Sqlite).map_err(|e| e.to_string())?;
    taskdb::migrate::run_pending(db.url()).map_err(|e| e.to_string())?;
    first_connection(db.url())?;
    // Keep the comparison honest: the file is really there and migrated.
    db.conn()
        .and_then(|mut c| Ok(c.batch_execute("SELECT 1 FROM users LIMIT 1")?))
        .map_err(|e| e.to_string())
}
