//! Write stall and migration time on a large, busy `tasks` table, three
//! ways, on identical copies of a database that has its users already
//! imported, while a writer inserts a task and updates one every 5 ms:
//!
//! - `taskdb migrate` (the library's `Migrator`);
//! - the same online-safe DDL written by hand: every statement of the
//!   pending migrations' `up.sql`, in order, run by `psql -f` in autocommit
//!   (CONCURRENTLY where the migrations use it, the foreign key `NOT VALID`
//!   then `VALIDATE`, a 50 ms lock timeout on the statements that take a
//!   table lock, as taskdb's), with no tracking, checks or retries: the
//!   yardstick for taskdb's own cost;
//! - the naive SQL: one transaction with a plain `ADD CONSTRAINT FOREIGN
//!   KEY` and a plain `CREATE INDEX`, which blocks the writer throughout.
//!
//! ```text
//! cargo run --release --example write_stall -- --rows 2000000 --repeat 3
//! ```
//!
//! Options: `--rows N[,N…]` (default 2000000), `--server URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres), `--keep` (keep the
//! databases, e.g. for the query benchmark: `stall_taskdb_<rows>` is fully
//! migrated; and the psql script), `--repeat K` (K rounds per size on
//! fresh copies; the order of the three approaches rotates each round).
//! After each round the taskdb and the hand-written copies must end with
//! the same schema. Prints per-step timings for taskdb and psql, then the
//! results tables.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use taskdb::catalog;
use taskdb::migrate::{self, Event, LocalMigration, Migrator};
use taskdb::{Backend, DatabaseUrl};

/// Tasks per user in the generated data.
const TASKS_PER_USER: u64 = 100;
/// The writer's pace.
const WRITER_PERIOD: Duration = Duration::from_millis(5);
/// The base database is migrated up to here (tasks and users, before the
/// foreign key and the indexes on `tasks`); every approach starts from it.
const BASE_VERSION: &str = "2026-02-08-000002";
/// The hand-written run's lock timeout: taskdb's default, so both bound
/// how long the app can queue behind a DDL statement the same way.
const PSQL_LOCK_TIMEOUT: &str = "SET lock_timeout = '50ms';\n";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Approach {
    Taskdb,
    Psql,
    Naive,
}

impl Approach {
    const ALL: [Approach; 3] = [Approach::Taskdb, Approach::Psql, Approach::Naive];

    fn label(self) -> &'static str {
        match self {
            Approach::Taskdb => "taskdb migrate",
            Approach::Psql => "hand-written (psql -f)",
            Approach::Naive => "naive (one transaction)",
        }
    }

    fn database(self, rows: u64) -> String {
        match self {
            Approach::Taskdb => format!("stall_taskdb_{rows}"),
            Approach::Psql => format!("stall_psql_{rows}"),
            Approach::Naive => format!("stall_naive_{rows}"),
        }
    }
}

/// One approach's run: wall time, the writer's latencies, and where the
/// time went (`steps`, in order; what is left of `time` is overhead).
struct Run {
    time: Duration,
    lat: Latencies,
    steps: Vec<(String, Duration)>,
    /// taskdb only: the time outside the steps, by where it was spent.
    own_work: Vec<(String, Duration)>,
}

impl Run {
    fn step(&self, name: &str) -> Option<Duration> {
        self.steps.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }

    fn outside_steps(&self) -> Duration {
        self.time
            .saturating_sub(self.steps.iter().map(|(_, d)| *d).sum())
    }
}

struct Round {
    rows: u64,
    round: usize,
    taskdb: Run,
    psql: Run,
    naive: Run,
}

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
    let script = psql_script();
    let script_path = std::env::temp_dir().join(format!("write_stall_{}.sql", std::process::id()));
    std::fs::write(&script_path, &script).expect("write the psql script");
    println!("hand-written migration: {}", script_path.display());

    let mut results: Vec<Round> = Vec::new();
    for &rows in &sizes {
        let base = format!("stall_base_{rows}");
        let t = Instant::now();
        build_base(&server, &base, rows);
        println!(
            "[{rows}] built {base} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for round in 0..repeat {
            for approach in Approach::ALL {
                let copy = approach.database(rows);
                admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {copy} WITH (FORCE)"),
                );
                // FILE_COPY: PostgreSQL 15's default strategy writes the
                // whole copy to the WAL, whose checkpoints then land in
                // whichever run comes next.
                admin(
                    &server,
                    &format!("CREATE DATABASE {copy} TEMPLATE {base} STRATEGY FILE_COPY"),
                );
                // Warm every copy the same way (a template copy is cold).
                exec(
                    &db_url(&server, &copy),
                    "SELECT COUNT(*) FROM tasks; SELECT COUNT(*) FROM users",
                );
            }
            // Rotate which goes first, so none always gets the quieter
            // part of a busy machine.
            let mut taskdb = None;
            let mut psql = None;
            let mut naive = None;
            for k in 0..Approach::ALL.len() {
                let approach = Approach::ALL[(round + k) % Approach::ALL.len()];
                let url = db_url(&server, &approach.database(rows));
                // Each run starts with no dirty pages left by the one
                // before (its index builds write hundreds of MB).
                admin(&server, "CHECKPOINT");
                println!("[{rows}] round {}: {}", round + 1, approach.label());
                match approach {
                    Approach::Taskdb => taskdb = Some(run_taskdb(&url, rows)),
                    Approach::Psql => psql = Some(run_psql(&url, rows, &script_path)),
                    Approach::Naive => naive = Some(run_naive(&url, rows)),
                }
            }
            ensure_same_schema(
                &db_url(&server, &Approach::Taskdb.database(rows)),
                &db_url(&server, &Approach::Psql.database(rows)),
            );
            results.push(Round {
                rows,
                round: round + 1,
                taskdb: taskdb.expect("taskdb ran"),
                psql: psql.expect("psql ran"),
                naive: naive.expect("naive ran"),
            });
        }
        admin(
            &server,
            &format!("DROP DATABASE IF EXISTS {base} WITH (FORCE)"),
        );
        for approach in Approach::ALL {
            if keep && approach == Approach::Taskdb {
                continue;
            }
            admin(
                &server,
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    approach.database(rows)
                ),
            );
        }
    }
    if !keep {
        let _ = std::fs::remove_file(&script_path);
    }

    println!();
    print_results(&results);
    println!();
    print_steps_table(&results);
    println!();
    print_spread(&results);
}

fn print_results(results: &[Round]) {
    println!("| rows | round | approach | migration time | writer max | writer p99 | writes | time / hand-written |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|");
    for r in results {
        let yardstick = r.psql.time.as_secs_f64();
        for (approach, run) in [
            (Approach::Taskdb, &r.taskdb),
            (Approach::Psql, &r.psql),
            (Approach::Naive, &r.naive),
        ] {
            println!(
                "| {} | {} | {} | {:.2} s | {:.1} ms | {:.1} ms | {} | {:.2} |",
                r.rows,
                r.round,
                approach.label(),
                run.time.as_secs_f64(),
                run.lat.max_ms(),
                run.lat.p99_ms(),
                run.lat.samples.len(),
                run.time.as_secs_f64() / yardstick
            );
        }
    }
}

/// taskdb's steps next to the same statements run by psql, per round.
fn print_steps_table(results: &[Round]) {
    let mut header = String::from("| step (ms) |");
    let mut rule = String::from("|---|");
    for r in results {
        let _ = write!(
            header,
            " {} r{} taskdb | psql |",
            short_rows(r.rows),
            r.round
        );
        rule.push_str("---:|---:|");
    }
    println!("{header}");
    println!("{rule}");
    let Some(first) = results.first() else {
        return;
    };
    let ms = |d: Option<Duration>| d.map_or("–".to_string(), |d| format!("{:.0}", as_ms(d)));
    for (name, _) in &first.psql.steps {
        let mut line = format!("| {name} |");
        for r in results {
            let _ = write!(
                line,
                " {} | {} |",
                ms(r.taskdb.step(name)),
                ms(r.psql.step(name))
            );
        }
        println!("{line}");
    }
    // taskdb's own check; the hand-written run has none.
    let mut line = format!("| {ORPHAN_CHECK} |");
    for r in results {
        let _ = write!(line, " {} | – |", ms(r.taskdb.step(ORPHAN_CHECK)));
    }
    println!("{line}");
    let mut line = String::from("| outside the steps |");
    for r in results {
        let _ = write!(
            line,
            " {:.0} | {:.0} |",
            as_ms(r.taskdb.outside_steps()),
            as_ms(r.psql.outside_steps())
        );
    }
    println!("{line}");
    for (i, (name, _)) in first.taskdb.own_work.iter().enumerate() {
        let mut line = format!("| … {name} |");
        for r in results {
            let _ = write!(line, " {:.0} | |", as_ms(r.taskdb.own_work[i].1));
        }
        println!("{line}");
    }
    let mut line = String::from("| **total** |");
    for r in results {
        let _ = write!(
            line,
            " {:.0} | {:.0} |",
            as_ms(r.taskdb.time),
            as_ms(r.psql.time)
        );
    }
    println!("{line}");
}

/// min / median / max of the taskdb / hand-written time ratio, per size.
fn print_spread(results: &[Round]) {
    let mut sizes: Vec<u64> = results.iter().map(|r| r.rows).collect();
    sizes.dedup();
    for rows in sizes {
        let mut ratios: Vec<f64> = results
            .iter()
            .filter(|r| r.rows == rows)
            .map(|r| r.taskdb.time.as_secs_f64() / r.psql.time.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let worst_stall = results
            .iter()
            .filter(|r| r.rows == rows)
            .map(|r| r.taskdb.lat.max_ms())
            .fold(0.0, f64::max);
        println!(
            "[{rows}] taskdb / hand-written time over {} rounds: min {:.2}, median {:.2}, max {:.2}; taskdb writer max {:.1} ms",
            ratios.len(),
            ratios[0],
            median(&ratios),
            ratios[ratios.len() - 1],
            worst_stall
        );
    }
}

/// The median of sorted, non-empty `values`.
fn median(values: &[f64]) -> f64 {
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn short_rows(rows: u64) -> String {
    if rows.is_multiple_of(1_000_000) {
        format!("{}M", rows / 1_000_000)
    } else if rows.is_multiple_of(1_000) {
        format!("{}k", rows / 1_000)
    } else {
        rows.to_string()
    }
}

fn as_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The step name the orphan check is reported under.
const ORPHAN_CHECK: &str = "(orphan check)";

fn print_steps(rows: u64, steps: &[(String, Duration)], total: Duration) {
    for (name, d) in steps {
        println!("[{rows}]   {name:<44} {:>8.0} ms", as_ms(*d));
    }
    let outside = total.saturating_sub(steps.iter().map(|(_, d)| *d).sum());
    println!(
        "[{rows}]   {:<44} {:>8.0} ms",
        "(outside the steps)",
        as_ms(outside)
    );
}

/// Names the step that was running when each of the three slowest writes
/// started (`timeline`: when each step started, in order).
fn print_slowest(rows: u64, lat: &Latencies, timeline: &[(Instant, String)]) {
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
            as_ms(lat.samples[i])
        );
    }
}

fn run_taskdb(url: &str, rows: u64) -> Run {
    let mut timeline: Vec<(Instant, String)> = Vec::new();
    let mut marks = Marks::default();
    let (time, lat, steps) = with_writer(url, rows, || {
        let mut steps = Vec::new();
        let started = Instant::now();
        marks.started = Some(started);
        let mut migrator =
            Migrator::new(DatabaseUrl::parse(url).expect("url")).on_event(|e| match e {
                Event::Applying { migration } => {
                    let now = Instant::now();
                    marks.step_started(now);
                    marks.applying = Some(now);
                    timeline.push((now, migration.dir_name().to_string()))
                }
                Event::CheckingOrphans { .. } => {
                    let now = Instant::now();
                    marks.step_started(now);
                    timeline.push((now, ORPHAN_CHECK.into()))
                }
                Event::Applied { migration, elapsed } => {
                    let now = Instant::now();
                    if let Some(applying) = marks.applying.take() {
                        marks.around += (now - applying).saturating_sub(elapsed);
                    }
                    marks.last_done = Some(now);
                    steps.push((migration.dir_name().to_string(), elapsed))
                }
                Event::OrphansChecked { elapsed, .. } => {
                    marks.orphans_done = Some((Instant::now(), elapsed));
                    steps.push((ORPHAN_CHECK.into(), elapsed))
                }
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
        marks.finished = Some(Instant::now());
        (started.elapsed(), steps)
    });
    println!(
        "[{rows}] taskdb migrate: {:.2} s, writer {}",
        time.as_secs_f64(),
        lat.describe()
    );
    print_steps(rows, &steps, time);
    let own_work = marks.own_work();
    for (name, d) in &own_work {
        println!("[{rows}]     {name:<42} {:>8.0} ms", as_ms(*d));
    }
    print_slowest(rows, &lat, &timeline);
    Run {
        time,
        lat,
        steps,
        own_work,
    }
}

/// When taskdb's run reached each point, to split the time outside the
/// steps into what surrounds them.
#[derive(Default)]
struct Marks {
    started: Option<Instant>,
    first_step: Option<Instant>,
    /// The step being applied, since its `Applying` event.
    applying: Option<Instant>,
    /// Inside `apply` but outside the step's own SQL: the checks before
    /// it, the ledger writes and the commit.
    around: Duration,
    /// From one step's end to the next one's start (the standby gate; the
    /// orphan check is a step of its own here).
    between: Duration,
    last_done: Option<Instant>,
    orphans_done: Option<(Instant, Duration)>,
    finished: Option<Instant>,
}

impl Marks {
    fn step_started(&mut self, now: Instant) {
        self.first_step.get_or_insert(now);
        // The orphan check runs between two steps; its own time is counted
        // as a step, the rest of the gap as time between steps.
        let since = match self.orphans_done.take() {
            Some((done, _)) => Some(done),
            None => self.last_done.take(),
        };
        if let Some(since) = since {
            self.between += now - since;
        }
    }

    fn own_work(&self) -> Vec<(String, Duration)> {
        let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        vec![
            (
                "before the first step (connect, lock, plan, pre-flight)".into(),
                span(self.started, self.first_step),
            ),
            (
                "around the steps (checks, ledger, commits)".into(),
                self.around,
            ),
            ("between the steps (standby gate)".into(), self.between),
            (
                "after the last step (lock release)".into(),
                span(self.last_done, self.finished),
            ),
        ]
    }
}

/// The migrations the base database has yet to apply.
fn pending_migrations() -> Vec<LocalMigration> {
    let base = migrate::resolve(Backend::Postgres, BASE_VERSION)
        .expect("base version")
        .version();
    migrate::migrations(Backend::Postgres)
        .into_iter()
        .filter(|m| m.version() > base)
        .collect()
}

/// What a careful DBA would run with psql: the pending migrations' SQL as
/// written, each statement in autocommit (psql sends them one by one), so
/// `CREATE INDEX CONCURRENTLY` runs outside a transaction as it must. The
/// statements that take a table lock run under a lock timeout, as
/// taskdb's do; the concurrent index builds and drops run without one, as
/// taskdb's do (a build waits for every running transaction on the table
/// in turn, and a lock timeout cancels that wait, leaving an INVALID
/// index). Any error stops the script. `\echo` marks where each migration
/// starts, and `\timing` times each statement.
fn psql_script() -> String {
    let mut script = String::from("\\set ON_ERROR_STOP on\n\\timing on\n");
    let mut bounded = false;
    for m in pending_migrations() {
        let sql = m.up_sql().trim_end();
        assert!(
            sql.ends_with(';'),
            "{}'s up.sql does not end with ';': psql would join it to the next line",
            m.dir_name()
        );
        let _ = writeln!(script, "\\echo {STEP_MARK}{}", m.dir_name());
        if m.run_in_transaction() != bounded {
            bounded = m.run_in_transaction();
            script.push_str(if bounded {
                PSQL_LOCK_TIMEOUT
            } else {
                "RESET lock_timeout;\n"
            });
        }
        let _ = writeln!(script, "{sql}");
    }
    script
}

/// Starts a line psql echoes before a migration's statements.
const STEP_MARK: &str = "step: ";

fn run_psql(url: &str, rows: u64, script: &std::path::Path) -> Run {
    let mut output = None;
    let mut began = None;
    let (time, lat, ()) = with_writer(url, rows, || {
        let started = Instant::now();
        began = Some(started);
        output = Some(
            Command::new("psql")
                .args(["--no-psqlrc", "-d", url, "-f"])
                .arg(script)
                .output()
                .expect("run psql (is it on PATH?)"),
        );
        (started.elapsed(), ())
    });
    let output = output.expect("psql ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        eprintln!("{stdout}");
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("psql failed ({}) on {url}", output.status);
    }
    let steps = psql_step_times(&stdout);
    println!(
        "[{rows}] hand-written (psql -f): {:.2} s, writer {}",
        time.as_secs_f64(),
        lat.describe()
    );
    print_steps(rows, &steps, time);
    // When each step started, to within psql's own overhead: the process
    // start plus the statement times before it.
    let mut at = began.expect("psql started");
    let mut timeline = Vec::new();
    for (name, d) in &steps {
        timeline.push((at, name.clone()));
        at += *d;
    }
    print_slowest(rows, &lat, &timeline);
    Run {
        time,
        lat,
        steps,
        own_work: Vec::new(),
    }
}

/// Sums psql's `Time: … ms` lines per `\echo`ed step; statements before
/// the first step count as the session's setup.
fn psql_step_times(stdout: &str) -> Vec<(String, Duration)> {
    let mut steps: Vec<(String, Duration)> = vec![("(session setup)".into(), Duration::ZERO)];
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix(STEP_MARK) {
            steps.push((name.trim().to_string(), Duration::ZERO));
        } else if let Some(rest) = line.strip_prefix("Time: ") {
            let ms: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unexpected psql timing line: {line}"));
            if let Some((_, d)) = steps.last_mut() {
                *d += Duration::from_secs_f64(ms / 1000.0);
            }
        }
    }
    steps
}

/// The taskdb-migrated copy and the hand-migrated copy must end with the
/// same schema (tracking tables aside), or the comparison is void.
fn ensure_same_schema(taskdb_url: &str, psql_url: &str) {
    let read = |url: &str| {
        let mut conn =
            taskdb::db::connect(&DatabaseUrl::parse(url).expect("url")).expect("connect");
        catalog::read(&mut conn).expect("read the schema")
    };
    let ours = read(taskdb_url);
    let theirs = read(psql_url);
    if ours != theirs {
        for (name, table) in &ours.tables {
            if theirs.tables.get(name) != Some(table) {
                eprintln!("taskdb:       {table:?}");
                eprintln!("hand-written: {:?}", theirs.tables.get(name));
            }
        }
        panic!("the taskdb and the hand-written migrations ended with different schemas");
    }
    println!("same final schema: yes ({} tables)", ours.tables.len());
}

fn run_naive(url: &str, rows: u64) -> Run {
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
    print_steps(rows, &steps, time);
    Run {
        time,
        lat,
        steps,
        own_work: Vec::new(),
    }
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
        .migrate(Some(BASE_VERSION))
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
