//! Demo-data rows per second: `seed demo` (COPY on PostgreSQL, batched
//! inserts on SQLite) next to the database's own `INSERT … SELECT` over a
//! generated series of the same rows, on freshly migrated databases.
//!
//! ```text
//! cargo run --release --example seed_rate -- --users 10000 --tasks-per-user 100
//! ```
//!
//! `--only postgres` or `--only sqlite` measures one backend; `--rounds N`
//! repeats the pair N times, alternating which of the two goes first.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use taskdb::db::{self, AnyConnection};
use taskdb::seed::{seed_demo, DemoOptions};
use taskdb::DatabaseUrl;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u32| -> u32 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let users = arg("--users", 10_000);
    let per_user = arg("--tasks-per-user", 100);
    let rounds = arg("--rounds", 1).max(1);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let wanted = |backend: &str| only.as_deref().is_none_or(|o| o == backend);
    let server = "postgres://postgres@127.0.0.1:5432";
    let rows = u64::from(users) * (1 + u64::from(per_user));
    println!("{users} users × {per_user} tasks = {rows} rows per run");

    let mut table = Vec::new();
    for round in 0..rounds {
        // Which of the two goes first alternates per round.
        let demo_first = round % 2 == 0;
        if wanted("postgres") {
            let demo = fresh_pg(server, "seedrate_demo");
            let sql = fresh_pg(server, "seedrate_sql");
            let (elapsed, server_side) = both_in_turn(
                demo_first,
                &demo,
                &sql,
                &pg_series_sql(users, per_user),
                rows,
                (users, per_user),
            );
            table.push(("PostgreSQL", elapsed, server_side));
            let mut admin = PgConnection::establish(&format!("{server}/postgres")).expect("admin");
            for name in ["seedrate_demo", "seedrate_sql"] {
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .expect("drop");
            }
        }
        if wanted("sqlite") {
            let dir = std::env::temp_dir().join(format!("taskdb-seedrate-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let demo = fresh_sqlite(&dir, "demo.db");
            let sql = fresh_sqlite(&dir, "sql.db");
            let (elapsed, server_side) = both_in_turn(
                demo_first,
                &demo,
                &sql,
                &sqlite_series_sql(users, per_user),
                rows,
                (users, per_user),
            );
            table.push(("SQLite", elapsed, server_side));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    println!("\n| backend | rows | seed demo | rows/s | INSERT … SELECT series | rows/s | ratio (seed demo / server-side) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (backend, ours, theirs) in &table {
        let (ours, theirs) = (*ours, *theirs);
        let ours_rate = rows as f64 / ours.as_secs_f64();
        let theirs_rate = rows as f64 / theirs.as_secs_f64();
        println!(
            "| {backend} | {rows} | {:.2} s | {ours_rate:.0} | {:.2} s | {theirs_rate:.0} | {:.2} |",
            ours.as_secs_f64(),
            theirs.as_secs_f64(),
            ours_rate / theirs_rate
        );
    }
    if rounds > 1 {
        // Outside load on a shared machine only ever adds time: the best
        // round of each side is the steadiest comparison.
        for backend in ["PostgreSQL", "SQLite"] {
            let best = |pick: fn(&(&str, Duration, Duration)) -> Duration| {
                table.iter().filter(|row| row.0 == backend).map(pick).min()
            };
            if let (Some(ours), Some(theirs)) = (best(|r| r.1), best(|r| r.2)) {
                println!(
                    "{backend}, best of {rounds}: seed demo {:.2} s, INSERT … SELECT {:.2} s, ratio {:.2}",
                    ours.as_secs_f64(),
                    theirs.as_secs_f64(),
                    theirs.as_secs_f64() / ours.as_secs_f64()
                );
            }
        }
    }
}

fn fresh_pg(server: &str, name: &str) -> DatabaseUrl {
    let mut admin = PgConnection::establish(&format!("{server}/postgres")).expect("admin");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&sql).expect("create");
    }
    let url = DatabaseUrl::parse(&format!("{server}/{name}")).expect("url");
    taskdb::migrate::run_pending(&url).expect("migrate");
    url
}

fn fresh_sqlite(dir: &std::path::Path, file: &str) -> DatabaseUrl {
    let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.join(file).display())).expect("url");
    taskdb::migrate::run_pending(&url).expect("migrate");
    url
}

/// Rows written and the time spent writing them (the bcrypt hash, computed
/// once per run, is not counted: seed_demo reports it apart).
fn run_demo(url: &DatabaseUrl, users: u32, per_user: u32) -> (u64, Duration) {
    let mut conn: AnyConnection = db::connect(url).expect("connect");
    let started = Instant::now();
    let seeded = seed_demo(
        &mut conn,
        &DemoOptions {
            users,
            tasks_per_user: per_user,
            password: "demo-password".into(),
            shape: Default::default(),
        },
        &mut |_, _| {},
    )
    .expect("seed demo");
    println!(
        "{}: seed demo {} rows in {:.2} s ({:.0} rows/s; {:.2} s with the bcrypt hash)",
        url.backend(),
        seeded.rows(),
        seeded.elapsed.as_secs_f64(),
        seeded.rows_per_second(),
        started.elapsed().as_secs_f64()
    );
    (seeded.rows(), seeded.elapsed)
}

fn time_sql(url: &DatabaseUrl, sql: &str) -> Duration {
    let mut conn = db::connect(url).expect("connect");
    let started = Instant::now();
    conn.batch_execute(sql).expect("insert select");
    let elapsed = started.elapsed();
    println!(
        "{}: INSERT … SELECT in {:.2} s",
        url.backend(),
        elapsed.as_secs_f64()
    );
    elapsed
}

/// The same rows, generated by the server: similar widths, 30% completed,
/// 40% with a description, dates spread over 180 days.
fn pg_series_sql(users: u32, per_user: u32) -> String {
    let tasks = u64::from(users) * u64::from(per_user);
    format!(
        "BEGIN;
         INSERT INTO users (id, email, password_hash, name, created_at, updated_at)
           SELECT 'demo-run-' || g, 'first.last.' || g || '@demo-run.example.com',
                  '$2b$12$abcdefghijklmnopqrstuuN0aB4mbQ1Fp9Gk2Lw8n3uQ5tq9w1c6e', 'First Last',
                  now() - g * interval '1 second', now() - g * interval '1 second'
             FROM generate_series(1, {users}) g;
         INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)
           SELECT 'demo-run-' || (1 + (g - 1) / {per_user}), 'Review the quarterly report',
                  CASE WHEN g % 10 < 4 THEN 'Ask Sam for the numbers first.' END,
                  g % 10 >= 7,
                  now() - (g % 15552000) * interval '1 second', now() - (g % 15552000) * interval '1 second'
             FROM generate_series(1, {tasks}) g;
         COMMIT;"
    )
}

fn sqlite_series_sql(users: u32, per_user: u32) -> String {
    let tasks = u64::from(users) * u64::from(per_user);
    format!(
        "BEGIN;
         WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {users})
         INSERT INTO users (id, email, password_hash, name, created_at, updated_at)
           SELECT 'demo-run-' || x, 'first.last.' || x || '@demo-run.example.com',
                  '$2b$12$abcdefghijklmnopqrstuuN0aB4mbQ1Fp9Gk2Lw8n3uQ5tq9w1c6e', 'First Last',
                  datetime('now', '-' || x || ' seconds'), datetime('now', '-' || x || ' seconds')
             FROM g;
         WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {tasks})
         INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)
           SELECT 'demo-run-' || (1 + (x - 1) / {per_user}), 'Review the quarterly report',
                  CASE WHEN x % 10 < 4 THEN 'Ask Sam for the numbers first.' END,
                  x % 10 >= 7,
                  datetime('now', '-' || (x % 15552000) || ' seconds'), datetime('now', '-' || (x % 15552000) || ' seconds')
             FROM g;
         COMMIT;"
    )
}

/// Seeds `demo` through taskdb and runs `series_sql` on `sql`, in the
/// round's order; returns (taskdb's time, the server's own time).
fn both_in_turn(
    demo_first: bool,
    demo: &DatabaseUrl,
    sql: &DatabaseUrl,
    series_sql: &str,
    rows: u64,
    (users, per_user): (u32, u32),
) -> (Duration, Duration) {
    let (mut elapsed, mut server_side) = (Duration::ZERO, Duration::ZERO);
    for demo_turn in [demo_first, !demo_first] {
        if demo_turn {
            let (seeded, took) = run_demo(demo, users, per_user);
            assert_eq!(seeded, rows);
            elapsed = took;
        } else {
            server_side = time_sql(sql, series_sql);
        }
    }
    (elapsed, server_side)
}
