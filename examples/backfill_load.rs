//! A backfill on a large, busy `tasks` table, while 2 writer threads run
//! the app's queries through `taskdb::models` (create a task, complete a
//! task, list a page) at a steady pace, each request's latency recorded.
//! In one run, each phase filling its own fresh nullable column:
//!
//! 1. baseline: the writers alone, after a checkpoint as every phase;
//! 2. taskdb: a backfill migration through the library's `Migrator` (the
//!    code path of `taskdb migrate`), adaptive batches, default settings;
//! 3. fixed loop: the same `UPDATE` in keyset batches of 1,000 rows with
//!    no sleep, each its own transaction (pgroll's shape);
//! 4. taskdb with `--max-wal-rate` (`--wal-cap`, default 20MB/s): the
//!    backfill's own WAL and the server's, over 5 s windows.
//!
//! ```text
//! cargo run --release --example backfill_load -- --rows 4000000 --keep
//! ```
//!
//! Options: `--rows N` (default 4000000), `--keep` (keep the database
//! `backfill_load_<rows>` and reuse it on the next run), `--loop-first`
//! (run the fixed loop before taskdb: the second of the two runs on a
//! table with twice the tuples), `--no-wal-cap` (skip phase 4),
//! `--baseline S`
//! (seconds, default 30), `--wal-cap RATE`, `--batch-time MS` (taskdb's
//! target batch duration, default 100), `--server URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres), `--wait-events` (sample
//! what the writers' server sessions wait on, every 10 ms, per phase).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel::PgConnection;
use taskdb::migrate::{Event, MigrateOptions, MigrationSource, Migrator, WalRate};
use taskdb::models::{task, NewTask, TaskFilter};
use taskdb::DatabaseUrl;

const USERS: u64 = 1_000;
/// Each writer's pace: one request every 5 ms.
const WRITER_PERIOD: Duration = Duration::from_millis(5);
const PHASES: [&str; 4] = ["baseline", "taskdb", "fixed loop", "taskdb, WAL cap"];
/// The writers' requests, in the order they take turns.
const KINDS: [&str; 3] = ["create", "complete", "list"];
/// The writers' `application_name`, for the wait-event sampler.
const WRITER_APP: &str = "backfill_load writer";

/// Each phase's latencies, per request kind.
type Samples = Vec<[Vec<Duration>; 3]>;
/// A request this slow is kept with when it ran, to be explained.
const SLOW: Duration = Duration::from_millis(50);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // The batches' target duration (`migrate --backfill-batch-time`).
    let batch_time = arg("--batch-time")
        .map_or(MigrateOptions::default().backfill_batch_time, |ms| {
            Duration::from_millis(ms.parse().expect("--batch-time MS"))
        });
    let rows: u64 = arg("--rows").map_or(4_000_000, |s| s.parse().expect("--rows N"));
    let keep = args.iter().any(|a| a == "--keep");
    let loop_first = args.iter().any(|a| a == "--loop-first");
    let wal_phase = !args.iter().any(|a| a == "--no-wal-cap");
    // Long enough for a p99 of about 12,000 requests.
    let baseline = Duration::from_secs(arg("--baseline").map_or(30, |s| s.parse().unwrap()));
    let cap = WalRate::parse(&arg("--wal-cap").unwrap_or_else(|| "20MB/s".into()))
        .expect("--wal-cap")
        .expect("--wal-cap off");
    let server =
        arg("--server").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("backfill_load_{rows}");
    let url = server.rsplit_once('/').unwrap().0.to_string() + "/" + &name;

    prepare(&server, &url, &name, rows, keep);
    let migrations = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
        migrations.path(),
    );

    // Every phase starts after a checkpoint: each writes the same full-page
    // images, and the baseline does not run in the wake of the set-up's
    // VACUUM (its dirty pages are written by then).
    let checkpoint = || {
        PgConnection::establish(&url)
            .unwrap()
            .batch_execute("CHECKPOINT")
            .unwrap()
    };
    checkpoint();
    // The writers, running through every phase.
    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Samples>> = Arc::new(Mutex::new(vec![Default::default(); PHASES.len()]));
    let slow: Arc<Mutex<Vec<Slow>>> = Arc::default();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (url, phase, stop, samples, slow) = (
                url.clone(),
                phase.clone(),
                stop.clone(),
                samples.clone(),
                slow.clone(),
            );
            std::thread::spawn(move || writer(w, rows, &url, &phase, &stop, &samples, &slow))
        })
        .collect();

    let waits = args.iter().any(|a| a == "--wait-events").then(|| {
        let (url, phase, stop) = (url.clone(), phase.clone(), stop.clone());
        std::thread::spawn(move || wait_events(&url, &phase, &stop))
    });
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load before: {}", load().trim());
    std::thread::sleep(baseline);

    // taskdb with default settings, and the fixed loop, in the order asked
    // for (the table has twice the tuples for the second one), each after
    // a checkpoint, as the baseline was.
    let (mut taskdb_time, mut loop_time) = (Duration::ZERO, Duration::ZERO);
    for which in if loop_first { [2, 1] } else { [1, 2] } {
        checkpoint();
        phase.store(which, Ordering::SeqCst);
        if which == 1 {
            taskdb_time = taskdb_backfill(&url, migrations.path(), "p_taskdb", None, batch_time).0;
        } else {
            loop_time = fixed_loop(&url, "p_loop");
        }
    }
    checkpoint();
    // taskdb under a WAL cap, with the server's WAL sampled meanwhile.
    phase.store(3, Ordering::SeqCst);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (url, sampling) = (url.clone(), sampling.clone());
        std::thread::spawn(move || {
            let mut conn = PgConnection::establish(&url).unwrap();
            let mut points = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                points.push((Instant::now(), wal_position(&mut conn)));
                std::thread::sleep(Duration::from_millis(100));
            }
            points.push((Instant::now(), wal_position(&mut conn)));
            points
        })
    };
    let (wal_time, batches) = if wal_phase {
        taskdb_backfill(&url, migrations.path(), "p_wal", Some(cap), batch_time)
    } else {
        (Duration::ZERO, Vec::new())
    };
    sampling.store(false, Ordering::SeqCst);
    let server_points = sampler.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let waits = waits.map(|w| w.join().unwrap());
    println!("load after: {}", load().trim());
    if !keep {
        let mut admin = PgConnection::establish(&server).unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
    }

    // Results.
    let by_kind = samples.lock().unwrap();
    let samples: Vec<Vec<Duration>> = by_kind.iter().map(|k| k.concat()).collect();
    println!();
    println!(
        "{rows} tasks; writers: 2 threads, one request each 5 ms (create, complete, list); order: {}",
        if loop_first { "fixed loop, taskdb" } else { "taskdb, fixed loop" }
    );
    println!(
        "{:<18} {:>8} {:>9} {:>9} {:>9} {:>12} {:>10}",
        "phase", "requests", "p50 ms", "p99 ms", "max ms", "time s", "rows/s"
    );
    let times = [
        None,
        Some(taskdb_time),
        Some(loop_time),
        wal_phase.then_some(wal_time),
    ];
    for (i, name) in PHASES.iter().enumerate() {
        let s = &samples[i];
        println!(
            "{:<18} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>12} {:>10}",
            name,
            s.len(),
            percentile(s, 0.50),
            percentile(s, 0.99),
            percentile(s, 1.0),
            times[i].map_or("-".into(), |t| format!("{:.1}", t.as_secs_f64())),
            times[i].map_or("-".into(), |t| format!(
                "{:.0}",
                rows as f64 / t.as_secs_f64()
            )),
        );
    }
    println!();
    println!(
        "{:<18} {}",
        "p99 ms by request",
        KINDS.map(|k| format!("{k:>9}")).join(" ")
    );
    for (i, name) in PHASES.iter().enumerate() {
        let cells = by_kind[i]
            .each_ref()
            .map(|s| format!("{:>9.2}", percentile(s, 0.99)));
        println!("{:<18} {}", name, cells.join(" "));
    }
    if let Some(seen) = &waits {
        println!();
        println!("what the writers' sessions were doing when sampled (share of samples of an active request)");
        for (i, name) in PHASES.iter().enumerate() {
            let mut counts = std::collections::BTreeMap::<&str, u64>::new();
            for d in seen
                .iter()
                .filter(|d| d.phase == i && d.who.starts_with(WRITER_APP))
            {
                *counts.entry(d.what.as_str()).or_insert(0) += 1;
            }
            let total: u64 = counts.values().sum();
            let mut seen: Vec<_> = counts.iter().collect();
            seen.sort_by(|a, b| b.1.cmp(a.1));
            let shares: Vec<String> = seen
                .iter()
                .take(6)
                .map(|(what, n)| format!("{what} {:.1}%", 100.0 * **n as f64 / total.max(1) as f64))
                .collect();
            println!("{:<18} {:>6} samples: {}", name, total, shares.join(", "));
        }
        print_slowest(&mut slow.lock().unwrap(), seen);
    }
    let p99 = |i: usize| percentile(&samples[i], 0.99);
    println!();
    println!(
        "writers' p99 during taskdb's backfill / baseline: {:.2}x (goal <= 1.5x); during the fixed loop: {:.2}x",
        p99(1) / p99(0),
        p99(2) / p99(0)
    );
    println!(
        "writers' max during taskdb's backfill: {:.1} ms (goal <= 100 ms); fixed loop {:.1} ms",
        percentile(&samples[1], 1.0),
        percentile(&samples[2], 1.0)
    );
    println!(
        "backfill throughput taskdb / fixed loop: {:.2}x (goal >= 0.8x)",
        loop_time.as_secs_f64() / taskdb_time.as_secs_f64()
    );
    if !wal_phase {
        return;
    }
    let mb = |b: f64| b / (1u64 << 20) as f64;
    let own_worst = worst_window(&batches);
    let server_worst = worst_window(
        &server_points
            .windows(2)
            .map(|w| (w[1].0, w[1].1 - w[0].1))
            .collect::<Vec<_>>(),
    );
    let own_total: u64 = batches.iter().map(|(_, b)| b).sum();
    println!(
        "WAL cap {cap}: the backfill's own WAL, worst 5 s window {:.2} MB/s = {:.2}x the cap (goal <= 1.1x; {:.0} MB in {:.1} s); the server's WAL meanwhile, worst 5 s window {:.2} MB/s",
        mb(own_worst),
        own_worst / cap.bytes_per_second as f64,
        mb(own_total as f64),
        wal_time.as_secs_f64(),
        mb(server_worst)
    );
}

/// The database with `rows` tasks of [`USERS`] users, migrated; reused
/// when `keep` and it exists.
fn prepare(server: &str, url: &str, name: &str, rows: u64, keep: bool) {
    let mut admin = PgConnection::establish(server).unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let exists = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
    ))
    .get_result::<Count>(&mut admin)
    .unwrap()
    .n > 0;
    if exists && keep {
        println!("reusing database {name}");
    } else {
        let started = Instant::now();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        taskdb::migrate::run_pending(&DatabaseUrl::parse(url).unwrap()).unwrap();
        let mut conn = PgConnection::establish(url).unwrap();
        conn.batch_execute(&format!(
            "INSERT INTO users (id, email, password_hash)
               SELECT 'user' || u, 'user' || u || '@example.com', 'x' FROM generate_series(1, {USERS}) u;
             INSERT INTO tasks (user_id, title, completed)
               SELECT 'user' || (1 + i % {USERS}), 'task ' || i, i % 3 = 0 FROM generate_series(1, {rows}) i;"
        ))
        .unwrap();
        conn.batch_execute("VACUUM ANALYZE tasks").unwrap();
        println!(
            "made {name}: {rows} tasks in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut conn = PgConnection::establish(url).unwrap();
    // Each phase fills its own column; a rerun starts them afresh, and
    // forgets the backfill migrations of an earlier run.
    conn.batch_execute(
        "ALTER TABLE tasks DROP COLUMN IF EXISTS p_taskdb, DROP COLUMN IF EXISTS p_loop, DROP COLUMN IF EXISTS p_wal;
         ALTER TABLE tasks ADD COLUMN p_taskdb integer, ADD COLUMN p_loop integer, ADD COLUMN p_wal integer;
         DELETE FROM __diesel_schema_migrations WHERE version LIKE '2099%';
         DELETE FROM __taskdb_ledger WHERE version LIKE '2099%';",
    )
    .unwrap();
    // Dead tuples of an earlier run gone, as on a fresh table.
    conn.batch_execute("VACUUM ANALYZE tasks").unwrap();
}

/// One writer: create, complete, list, in turn, one every
/// [`WRITER_PERIOD`], each latency filed under the phase it started in.
fn writer(
    w: usize,
    rows: u64,
    url: &str,
    phase: &AtomicUsize,
    stop: &AtomicBool,
    samples: &Mutex<Samples>,
    slow: &Mutex<Vec<Slow>>,
) {
    let mut conn = PgConnection::establish(url).unwrap();
    conn.batch_execute(&format!("SET application_name = '{WRITER_APP} {w}'"))
        .unwrap();
    let mut next = Instant::now();
    let mut i: u64 = 0;
    let mut mine: Samples = vec![Default::default(); PHASES.len()];
    while !stop.load(Ordering::SeqCst) {
        let p = phase.load(Ordering::SeqCst);
        let owner = format!("user{}", 1 + (i * 7 + w as u64 * 13) % USERS);
        let started = Instant::now();
        match i % 3 {
            0 => {
                task::create(
                    &mut conn,
                    &owner,
                    NewTask {
                        title: "written during the backfill",
                        description: None,
                        completed: false,
                    },
                )
                .unwrap();
            }
            1 => {
                // A task spread over the whole table (the backfill's path).
                let id = ((i * 2_654_435_761) % rows) as i32 + 1;
                let _ = task::complete(&mut conn, &owner, id).unwrap();
            }
            _ => {
                task::list(
                    &mut conn,
                    &owner,
                    TaskFilter {
                        limit: 20,
                        ..TaskFilter::default()
                    },
                )
                .unwrap();
            }
        }
        let took = started.elapsed();
        mine[p][(i % 3) as usize].push(took);
        if took > SLOW {
            slow.lock().unwrap().push(Slow {
                phase: p,
                kind: (i % 3) as usize,
                writer: w,
                started,
                took,
            });
        }
        i += 1;
        next += WRITER_PERIOD;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
    let mut all = samples.lock().unwrap();
    for (p, kinds) in mine.into_iter().enumerate() {
        for (k, s) in kinds.into_iter().enumerate() {
            all[p][k].extend(s);
        }
    }
}

/// A sample of what one server session was doing: its writer's or
/// program's name (or the background process's type), and its wait event
/// (`IO:WALSync`, `Lock:transactionid`, …) or `CPU` (active, waiting on
/// nothing the server names: running, or ready to run).
struct Doing {
    at: Instant,
    phase: usize,
    who: String,
    what: String,
}

/// What the server's busy sessions are doing, sampled every 10 ms: the
/// writers' while a request runs, the backfill's, and the background
/// processes' (checkpointer, WAL writer) when they are not idle.
fn wait_events(url: &str, phase: &AtomicUsize, stop: &AtomicBool) -> Vec<Doing> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        who: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        what: String,
    }
    let mut conn = PgConnection::establish(url).unwrap();
    let mut seen = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let p = phase.load(Ordering::SeqCst);
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT coalesce(nullif(application_name, ''), backend_type) AS who,
                    coalesce(wait_event_type || ':' || wait_event, 'CPU') AS what
               FROM pg_stat_activity
              WHERE pid <> pg_backend_pid()
                AND (state = 'active' OR backend_type <> 'client backend')
                AND wait_event_type IS DISTINCT FROM 'Activity'",
        )
        .load(&mut conn)
        .unwrap();
        let at = Instant::now();
        seen.extend(rows.into_iter().map(|r| Doing {
            at,
            phase: p,
            who: r.who,
            what: r.what,
        }));
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// A writer's request slower than [`SLOW`].
struct Slow {
    phase: usize,
    kind: usize,
    writer: usize,
    started: Instant,
    took: Duration,
}

/// The slowest requests of each phase, and what the sampler saw in the
/// server while each one ran: its own session's waits and the others'.
fn print_slowest(slow: &mut [Slow], seen: &[Doing]) {
    slow.sort_by_key(|s| std::cmp::Reverse(s.took));
    println!();
    println!("the slowest requests, and what the sampler saw meanwhile (samples, 10 ms apart)");
    if slow.is_empty() {
        println!("(none over {} ms)", SLOW.as_millis());
    }
    for (i, name) in PHASES.iter().enumerate() {
        for s in slow.iter().filter(|s| s.phase == i).take(3) {
            let mine = format!("{WRITER_APP} {}", s.writer);
            let mut counts = std::collections::BTreeMap::<(bool, &str, &str), u32>::new();
            for d in seen
                .iter()
                .filter(|d| d.at >= s.started && d.at <= s.started + s.took)
            {
                let own = d.who == mine;
                let who = if own { "itself" } else { d.who.as_str() };
                *counts.entry((!own, who, d.what.as_str())).or_insert(0) += 1;
            }
            let what: Vec<String> = counts
                .iter()
                .map(|((_, who, what), n)| format!("{who} {what} x{n}"))
                .collect();
            println!(
                "{:<18} {:>8} {:>7.1} ms: {}",
                name,
                KINDS[s.kind],
                s.took.as_secs_f64() * 1000.0,
                what.join(", ")
            );
        }
    }
}

/// A backfill migration of `column` through the library; its time, and
/// each batch's WAL (under a cap) with when it ended.
fn taskdb_backfill(
    url: &str,
    migrations: &std::path::Path,
    column: &str,
    cap: Option<WalRate>,
    batch_time: Duration,
) -> (Duration, Vec<(Instant, u64)>) {
    // A version after every real one, unique per phase.
    let version = match column {
        "p_taskdb" => "2099-01-01-000001",
        "p_loop" => "2099-01-01-000002",
        _ => "2099-01-01-000003",
    };
    let dir = migrations
        .join("postgres")
        .join(format!("{version}_fill_{column}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("up.sql"),
        format!("UPDATE tasks SET {column} = id % 7 WHERE {column} IS NULL;\n"),
    )
    .unwrap();
    std::fs::write(dir.join("down.sql"), "SELECT 1;\n").unwrap();
    std::fs::write(
        dir.join("metadata.toml"),
        format!(
            "run_in_transaction = false\n\n[backfill]\ntable = \"tasks\"\nset = \"{column} = id % 7\"\nwhere = \"{column} IS NULL\"\nkey = \"id\"\n"
        ),
    )
    .unwrap();
    let mut batches = Vec::new();
    let started = Instant::now();
    Migrator::new(DatabaseUrl::parse(url).unwrap())
        .with_source(MigrationSource::Dir(migrations.to_path_buf()))
        .with_options(MigrateOptions {
            max_wal_rate: cap,
            backfill_batch_time: batch_time,
            ..MigrateOptions::default()
        })
        .on_event(|event| match event {
            Event::BackfillProgress {
                wal_bytes: Some(b), ..
            } => batches.push((Instant::now(), b)),
            Event::BackfillForcesCheckpoints { pressure, .. } => println!(
                "{column}: taskdb warned: the server's WAL at {:.1} MB/s forces a checkpoint every {:.1} s (suggested cap {})",
                pressure.wal_rate as f64 / (1u64 << 20) as f64,
                pressure.checkpoint_every.as_secs_f64(),
                pressure.suggested_cap
            ),
            _ => {}
        })
        .migrate(None)
        .unwrap();
    (started.elapsed(), batches)
}

/// The same `UPDATE` in keyset batches of 1,000 rows, no sleep.
fn fixed_loop(url: &str, column: &str) -> Duration {
    #[derive(QueryableByName)]
    struct Upper {
        #[diesel(sql_type = Nullable<BigInt>)]
        key: Option<i64>,
    }
    let mut conn = PgConnection::establish(url).unwrap();
    let started = Instant::now();
    let mut after = 0i64;
    loop {
        let upper: Upper = diesel::sql_query(format!(
            "SELECT max(id)::bigint AS key FROM (SELECT id FROM tasks WHERE id > {after} ORDER BY id LIMIT 1000) b"
        ))
        .get_result(&mut conn)
        .unwrap();
        let Some(upper) = upper.key else { break };
        conn.batch_execute(&format!(
            "UPDATE tasks SET {column} = id % 7 WHERE id > {after} AND id <= {upper} AND {column} IS NULL"
        ))
        .unwrap();
        after = upper;
    }
    started.elapsed()
}

fn wal_position(conn: &mut PgConnection) -> u64 {
    #[derive(QueryableByName)]
    struct Lsn {
        #[diesel(sql_type = BigInt)]
        lsn: i64,
    }
    diesel::sql_query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS lsn")
        .get_result::<Lsn>(conn)
        .unwrap()
        .lsn as u64
}

/// The highest rate over any 5 s window, each amount counted at its time.
fn worst_window(points: &[(Instant, u64)]) -> f64 {
    let window = Duration::from_secs(5);
    points
        .iter()
        .map(|(t0, _)| {
            points
                .iter()
                .filter(|(t, _)| *t >= *t0 && *t < *t0 + window)
                .map(|(_, b)| b)
                .sum::<u64>() as f64
                / window.as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn percentile(samples: &[Duration], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return 0.0;
    }
    let i = ((s.len() as f64) * q).ceil() as usize;
    s[i.clamp(1, s.len()) - 1].as_secs_f64() * 1000.0
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
