//! Typed-query throughput through taskdb's r2d2 pool (2 threads) next to
//! `pgbench -M prepared -c 2 -j 2` running the same SQL, in the same run,
//! on the same database, in alternating 2-second turns; plus EXPLAIN of
//! each query.
//!
//! ```text
//! cargo run --release --example write_stall -- --rows 2000000 --keep
//! cargo run --release --example query_throughput -- --db stall_taskdb_2000000 --seconds 10
//! ```
//!
//! The database is the one write_stall leaves with `--keep`: users
//! `user1…userN` with emails `userK@example.com`, 100 tasks each, fully
//! migrated by taskdb.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use taskdb::models::{task, user, TaskFilter};
use taskdb::DatabaseUrl;

const THREADS: usize = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let db = arg("--db").unwrap_or_else(|| "stall_taskdb_2000000".into());
    let seconds: u64 = arg("--seconds").map_or(10, |s| s.parse().expect("--seconds N"));
    let host = arg("--host").unwrap_or_else(|| "127.0.0.1".into());
    let url_text = format!("postgres://postgres@{host}:5432/{db}");
    let url = DatabaseUrl::parse(&url_text).expect("url");
    let pool = taskdb::db::pool(&url, THREADS as u32).expect("pool");

    let mut conn = pool.get().expect("conn");
    let users: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT COUNT(*) FROM users")
        .get_result(&mut *conn)
        .expect("count users");
    let tasks: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT COUNT(*) FROM tasks")
        .get_result(&mut *conn)
        .expect("count tasks");
    println!(
        "database {db}: {users} users, {tasks} tasks; {THREADS} threads, {seconds} s per query"
    );

    // The SQL taskdb's typed queries send (Diesel's debug_query of the
    // same calls, with bind parameters), as pgbench scripts.
    let queries = [
        (
            "login by email (user::find_by_email)",
            "SELECT users.id, users.email, users.password_hash, users.name, users.created_at, users.updated_at FROM users WHERE (lower(users.email) = lower(:email)) LIMIT 1",
        ),
        (
            "tasks of a user (task::list)",
            "SELECT tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, tasks.created_at, tasks.updated_at FROM tasks WHERE (tasks.user_id = :uid) ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT 100",
        ),
        (
            "open tasks of a user (task::list completed=false)",
            "SELECT tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, tasks.created_at, tasks.updated_at FROM tasks WHERE (tasks.user_id = :uid) AND (tasks.completed = false) ORDER BY tasks.created_at DESC, tasks.id DESC LIMIT 100",
        ),
    ];

    println!("\nEXPLAIN (user 42):");
    for (name, sql) in &queries {
        let concrete = sql
            .replace(":email", "'user42@example.com'")
            .replace(":uid", "'user42'");
        #[derive(QueryableByName)]
        struct Plan {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let plan: Vec<Plan> = diesel::sql_query(format!("EXPLAIN {concrete}"))
            .load(&mut *conn)
            .expect("explain");
        println!("-- {name}");
        for p in plan {
            println!("   {}", p.line);
        }
    }
    drop(conn);

    let mut rows = Vec::new();
    for (i, (name, sql)) in queries.iter().enumerate() {
        // Short turns, alternating, so a burst of other work on the
        // machine hits both sides alike.
        let turns = (seconds / 2).max(1);
        let (mut ours, mut theirs) = (0.0, 0.0);
        for _ in 0..turns {
            ours += run_pool(&pool, users, Duration::from_secs(2), i) / turns as f64;
            theirs += run_pgbench(&host, &db, users, 2, sql) / turns as f64;
        }
        println!(
            "{name}: taskdb {ours:.0}/s, pgbench {theirs:.0}/s, ratio {:.2}",
            ours / theirs
        );
        rows.push((name, ours, theirs));
    }
    println!("\n| query | taskdb pool (2 threads) | pgbench -M prepared -c 2 -j 2 | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, ours, theirs) in rows {
        println!(
            "| {name} | {ours:.0}/s | {theirs:.0}/s | {:.2} |",
            ours / theirs
        );
    }
}

/// Queries per second of the typed query `which` from two threads.
fn run_pool(pool: &taskdb::Pool, users: i64, length: Duration, which: usize) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            let stop = stop.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 0x9E37_79B9 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = 1 + (x % users as u64);
                    let mut conn = pool.get().expect("checkout");
                    match which {
                        0 => {
                            let u = user::find_by_email(&mut conn, &format!("user{k}@example.com"))
                                .expect("find_by_email");
                            assert!(u.is_some());
                        }
                        1 => {
                            task::list(&mut conn, &format!("user{k}"), TaskFilter::default())
                                .expect("list");
                        }
                        _ => {
                            task::list(
                                &mut conn,
                                &format!("user{k}"),
                                TaskFilter {
                                    completed: Some(false),
                                    ..Default::default()
                                },
                            )
                            .expect("list open");
                        }
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("thread");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Transactions per second of pgbench running `sql` with a random user.
fn run_pgbench(host: &str, db: &str, users: i64, seconds: u64, sql: &str) -> f64 {
    let dir = std::env::temp_dir().join(format!("taskdb-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = dir.join("query.sql");
    let body = format!(
        "\\set k random(1, {users})\n{};\n",
        sql.replace(":email", "'user' || :k || '@example.com'")
            .replace(":uid", "'user' || :k")
    );
    std::fs::write(&script, body).expect("write script");
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "2", "-j", "2", "-T"])
        .arg(seconds.to_string())
        .args(["-h", host, "-U", "postgres", "-f"])
        .arg(&script)
        .arg(db)
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no tps in pgbench output:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
