//! Write stall and migration time: `taskdb migrate` vs the naive SQL (one
//! transaction: plain ADD CONSTRAINT FOREIGN KEY + plain CREATE INDEX) on
//! identical copies of a database that has a large `tasks` table and its
//! users already imported, while a writer inserts a task and updates one
//! every 5 ms.
//!
//! ```text
//! cargo run --release --example write_stall -- --rows 2000000,4000000
//! ```
//!
//! Options: `--rows N[,N…]` (default 2000000), `--server URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres), `--keep` (keep the
//! databases, e.g. for the query benchmark: `stall_taskdb_<rows>` is fully
//! migrated), `--repeat K` (K rounds per size on fresh copies, the order
//! of the two approaches alternating). Prints one results table at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use taskdb::migrate::{Event, Migrator};
use taskdb::DatabaseUrl;

/// Tasks per user in the generated data.
const TASKS_PER_USER: u64 = 100;
/// The writer's pace.
const WRITER_PERIOD: Duration = Duration::from_millis(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<u64> = arg("--rows")
        .unwrap_or_else(|| "2000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--rows takes numbers"))
        .collect();
    let server =
        arg("--server").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let keep = args.iter().any(|a| a == "--keep");

    let repeat: usize = arg("--repeat").map_or(1, |r| r.parse().expect("--repeat N"));

    let mut results = Vec::new();
    for &rows in &sizes {
        let base = format!("stall_base_{rows}");
        let ours = format!("stall_taskdb_{rows}");
        let naive = format!("stall_naive_{rows}");
        let t = Instant::now();
        build_base(&server, &base, rows);
        println!(
            "[{rows}] built {base} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for round in 0..repeat {
            for copy in [&ours, &naive] {
                admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {copy} WITH (FORCE)"),
                );
                admin(&server, &format!("CREATE DATABASE {copy} TEMPLATE {base}"));
                // Warm both copies the same way (a template copy is cold).
                exec(
                    &db_url(&server, copy),
                    "SELECT COUNT(*) FROM tasks; SELECT COUNT(*) FROM users",
                );
            }
            // Alternate which goes first, so neither always gets the
            // quieter half of a busy machine.
            let (ours_run, naive_run) = if round % 2 == 0 {
                let o = run_taskdb(&db_url(&server, &ours), rows);
                (o, run_naive(&db_url(&server, &naive), rows))
            } else {
                let n = run_naive(&db_url(&server, &naive), rows);
                (run_taskdb(&db_url(&server, &ours), rows), n)
            };
            results.push((rows, ours_run.0, ours_run.1, naive_run.0, naive_run.1));
        }
        admin(
            &server,
            &format!("DROP DATABASE IF EXISTS {base} WITH (FORCE)"),
        );
        if !keep {
            admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {ours} WITH (FORCE)"),
            );
        }
        admin(
            &server,
            &format!("DROP DATABASE IF EXISTS {naive} WITH (FORCE)"),
        );
    }

    println!();
    println!("| rows | approach | migration time | writer max | writer p99 | writes | time ratio (taskdb/naive) |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for (rows, ot, ol, nt, nl) in &results {
        println!(
            "| {rows} | taskdb migrate | {:.2} s | {:.1} ms | {:.1} ms | {} | {:.2} |",
            ot.as_secs_f64(),
            ol.max_ms(),
            ol.p99_ms(),
            ol.samples.len(),
            ot.as_secs_f64() / nt.as_secs_f64()
        );
        println!(
            "| {rows} | naive (one transaction) | {:.2} s | {:.1} ms | {:.1} ms | {} | |",
            nt.as_secs_f64(),
            nl.max_ms(),
            nl.p99_ms(),
            nl.samples.len()
        );
    }
}

fn print_steps(rows: u64, steps: &[(String, Duration)]) {
    for (name, d) in steps {
        println!("[{rows}]   {name:<32} {:>8.0} ms", d.as_secs_f64() * 1000.0);
    }
}

fn run_taskdb(url: &str, rows: u64) -> (Duration, Latencies) {
    let mut timeline: Vec<(Instant, String)> = Vec::new();
    let (time, lat, steps) = with_writer(url, rows, || {
        let mut steps = Vec::new();
        let mut orphan_check = Duration::ZERO;
        let started = Instant::now();
        let mut migrator =
            Migrator::new(DatabaseUrl::parse(url).expect("url")).on_event(|e| match e {
                Event::Applying { migration } => {
                    timeline.push((Instant::now(), migration.name().to_string()))
                }
                Event::CheckingOrphans { .. } => {
                    timeline.push((Instant::now(), "(orphan check)".into()))
                }
                Event::Applied { migration, elapsed } => {
                    steps.push((migration.name().to_string(), elapsed))
                }
                Event::OrphansChecked { elapsed, .. } => orphan_check = elapsed,
                Event::LockTimeout {
                    migration, attempt, ..
                } => {
                    println!(
                        "[{rows}]   lock timeout in {} (attempt {attempt})",
                        migration.name()
                    )
                }
                _ => {}
            });
        migrator.migrate(None).expect("taskdb migrate");
        drop(migrator);
        steps.push(("(orphan check)".into(), orphan_check));
        (started.elapsed(), steps)
    });
    println!(
        "[{rows}] taskdb migrate: {:.2} s, writer {}",
        time.as_secs_f64(),
        lat.describe()
    );
    print_steps(rows, &steps);
    // Which step was running when the slowest writes started.
    let mut slowest: Vec<usize> = (0..lat.samples.len()).collect();
    slowest.sort_by_key(|&i| std::cmp::Reverse(lat.samples[i]));
    for &i in slowest.iter().take(3) {
        let during = timeline
            .iter()
            .rev()
            .find(|(t, _)| *t <= lat.starts[i])
            .map_or("(before the first step)", |(_, name)| name.as_str());
        println!(
            "[{rows}]   slow write: {:.1} ms during {during}",
            lat.samples[i].as_secs_f64() * 1000.0
        );
    }
    (time, lat)
}

fn run_naive(url: &str, rows: u64) -> (Duration, Latencies) {
    let (time, lat, steps) = with_writer(url, rows, || {
        let mut conn = PgConnection::establish(url).expect("connect");
        let started = Instant::now();
        conn.batch_execute("BEGIN").expect("begin");
        let t = Instant::now();
        conn.batch_execute(
            "ALTER TABLE tasks ADD CONSTRAINT fk_tasks_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
        )
        .expect("add fk");
        let fk = t.elapsed();
        let t = Instant::now();
        conn.batch_execute("CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed)")
            .expect("create index");
        let ix = t.elapsed();
        conn.batch_execute("COMMIT").expect("commit");
        (
            started.elapsed(),
            vec![
                ("ADD FOREIGN KEY".to_string(), fk),
                ("CREATE INDEX".to_string(), ix),
            ],
        )
    });
    println!(
        "[{rows}] naive: {:.2} s, writer {}",
        time.as_secs_f64(),
        lat.describe()
    );
    print_steps(rows, &steps);
    (time, lat)
}

fn db_url(server: &str, name: &str) -> String {
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    format!("{base}/{name}")
}

fn admin(server: &str, sql: &str) {
    exec(server, sql);
}

fn exec(url: &str, sql: &str) {
    PgConnection::establish(url)
        .expect("connect")
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The app's database before accounts landed, with users imported: tasks
/// (with the single-column index the old app had) and users, no foreign
/// key, no (user_id, completed) index.
fn build_base(server: &str, name: &str, rows: u64) {
    admin(
        server,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    admin(server, &format!("CREATE DATABASE {name}"));
    let url = db_url(server, name);
    Migrator::new(DatabaseUrl::parse(&url).expect("url"))
        .migrate(Some("2026-02-08-000002"))
        .expect("migrate to create_users");
    let users = rows.div_ceil(TASKS_PER_USER);
    exec(
        &url,
        &format!(
            "INSERT INTO users (id, email, password_hash, name)
               SELECT 'user' || g, 'user' || g || '@example.com', 'x', 'User ' || g
                 FROM generate_series(1, {users}) g;
             INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at)
               SELECT 'user' || (1 + (g::bigint * 7919) % {users}), 'task ' || g,
                      CASE WHEN g % 3 = 0 THEN 'details of task ' || g END,
                      g % 10 < 3,
                      now() - (g % 15552000) * interval '1 second', now()
                 FROM generate_series(1, {rows}) g;
             CREATE INDEX ix_tasks_user_id ON tasks (user_id);"
        ),
    );
    for sql in ["VACUUM ANALYZE tasks", "VACUUM ANALYZE users", "CHECKPOINT"] {
        exec(&url, sql);
    }
}

struct Latencies {
    samples: Vec<Duration>,
    /// When each write started.
    starts: Vec<Instant>,
}

impl Latencies {
    fn max_ms(&self) -> f64 {
        self.samples
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    }

    fn p99_ms(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort();
        if s.is_empty() {
            return 0.0;
        }
        let i = ((s.len() as f64) * 0.99).ceil() as usize;
        s[i.clamp(1, s.len()) - 1].as_secs_f64() * 1000.0
    }

    fn describe(&self) -> String {
        format!(
            "max {:.1} ms, p99 {:.1} ms over {} writes",
            self.max_ms(),
            self.p99_ms(),
            self.samples.len()
        )
    }
}

/// Runs `work` while a writer inserts a task and updates another every
/// 5 ms; returns what `work` returned and the latency of every write.
fn with_writer<T>(
    url: &str,
    rows: u64,
    work: impl FnOnce() -> (Duration, T),
) -> (Duration, Latencies, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = url.to_string();
        let users = rows.div_ceil(TASKS_PER_USER);
        std::thread::spawn(move || {
            let mut conn = PgConnection::establish(&url).expect("writer connect");
            let mut samples = Vec::new();
            let mut starts = Vec::new();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let tick = Instant::now();
                n += 1;
                let user = 1 + (n * 104_729) % users;
                let t = Instant::now();
                conn.batch_execute(&format!(
                    "INSERT INTO tasks (user_id, title) VALUES ('user{user}', 'written during the migration')"
                ))
                .expect("insert");
                samples.push(t.elapsed());
                starts.push(t);
                let id = 1 + (n * 15_485_863) % rows;
                let t = Instant::now();
                conn.batch_execute(&format!(
                    "UPDATE tasks SET completed = NOT completed WHERE id = {id}"
                ))
                .expect("update");
                samples.push(t.elapsed());
                starts.push(t);
                if let Some(rest) = WRITER_PERIOD.checked_sub(tick.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            (samples, starts)
        })
    };
    // Let the writer settle before the migration starts.
    std::thread::sleep(Duration::from_millis(500));
    let (elapsed, value) = work();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (samples, starts) = writer.join().expect("writer");
    (elapsed, Latencies { samples, starts }, value)
}
