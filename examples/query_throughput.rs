//! Typed-query throughput through taskdb's pool (2 threads, one checkout
//! per query) next to `pgbench -M prepared -c 2 -j 2` running the same SQL,
//! in the same run, on the same database, in alternating 2-second turns
//! (the order of the clients rotates from turn to turn); a plain r2d2 pool
//! (what `taskdb::Pool` was before it kept connections with the thread
//! that used them last) in the same turns; for the login lookup also
//! `db::pg_pool` (a PostgreSQL-only app's pool) and diagnostics; plus
//! EXPLAIN of each query. Build it in the default build and with
//! `--no-default-features --features postgres` to compare the two.
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
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use taskdb::db::ModelConnection;
use taskdb::models::{task, user, TaskFilter};
use taskdb::{r2d2, DatabaseUrl};

const THREADS: usize = 2;

/// Where a client's rate is summed, and a turn of it.
type Client<'a> = (&'a mut f64, Box<dyn Fn() -> f64 + 'a>);

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
    // The PostgreSQL-only app's pool: Diesel's `PgConnection` in every build.
    let typed_pg_pool = taskdb::db::pg_pool(&url, THREADS as u32).expect("PgPool");
    // Same settings as taskdb's, without the thread-affine layer.
    let plain_r2d2 = taskdb::r2d2::Pool::builder()
        .max_size(THREADS as u32)
        .test_on_check_out(false)
        .build(taskdb::db::ConnectionManager::new(url.clone()))
        .expect("plain r2d2 pool");
    // taskdb's pool around Diesel's own manager for a bare PgConnection.
    let pg_pool = taskdb::db::PoolBuilder::new()
        .max_size(THREADS as u32)
        .test_on_check_out(false)
        .build(diesel::r2d2::ConnectionManager::<diesel::PgConnection>::new(&url_text))
        .expect("PgConnection pool");

    // Counts and plans on a connection of their own: the pools' connections
    // run nothing but the measured queries.
    let mut conn = taskdb::db::connect_postgres(&url).expect("conn");
    let users: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT COUNT(*) FROM users")
        .get_result(&mut conn)
        .expect("count users");
    let tasks: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT COUNT(*) FROM tasks")
        .get_result(&mut conn)
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
            .load(&mut conn)
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
        let (mut ours, mut before, mut theirs) = (0.0, 0.0, 0.0);
        let (mut plain, mut any, mut held, mut pg_pooled, mut fresh) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut typed_pg, mut main_opened) = (0.0, 0.0);
        let turn = Duration::from_secs(2);
        for t in 0..turns {
            // Every client in every slot of a turn in turn: the slots after
            // a turn starts ran slower here than later ones, whoever ran
            // in them, so a fixed order would favour some clients.
            let mut clients: Vec<Client<'_>> = vec![
                (
                    &mut ours,
                    Box::new(|| run_pool(&pool, users, turn, i, false)),
                ),
                (
                    &mut before,
                    Box::new(|| {
                        run_per_query(|| plain_r2d2.get().expect("checkout"), users, turn, i)
                    }),
                ),
                (
                    &mut theirs,
                    Box::new(|| run_pgbench(&host, &db, users, 2, sql)),
                ),
            ];
            if i == 0 {
                clients.extend([
                    (
                        &mut plain,
                        Box::new(|| run_plain_login(&url_text, users, turn))
                            as Box<dyn Fn() -> f64>,
                    ),
                    (&mut any, Box::new(|| run_any_login(&url, users, turn))),
                    (
                        &mut held,
                        Box::new(|| run_pool(&pool, users, turn, i, true)),
                    ),
                    (
                        &mut pg_pooled,
                        Box::new(|| run_pg_pool_login(&pg_pool, users, turn)),
                    ),
                    (
                        &mut typed_pg,
                        Box::new(|| run_pool(&typed_pg_pool, users, turn, i, false)),
                    ),
                    (
                        &mut main_opened,
                        Box::new(|| run_main_opened_login(&url_text, users, turn)),
                    ),
                    // Connections as new as pgbench's and the bare clients',
                    // which all connect afresh every turn.
                    (
                        &mut fresh,
                        Box::new(|| {
                            let this_turn = taskdb::db::pool(&url, THREADS as u32).expect("pool");
                            run_pool(&this_turn, users, turn, i, false)
                        }),
                    ),
                ]);
            }
            let n = clients.len();
            clients.rotate_left(t as usize % n);
            for (sum, run) in clients {
                *sum += run() / turns as f64;
            }
        }
        if i == 0 {
            println!(
                "{name}, db::pg_pool (PgPool), one checkout per query: {typed_pg:.0}/s, ratio to pgbench {:.2}",
                typed_pg / theirs
            );
            println!(
                "{name}, bare diesel::PgConnection opened by the main thread, one per thread (diagnostic): {main_opened:.0}/s, ratio to pgbench {:.2}",
                main_opened / theirs
            );
            println!(
                "{name}, taskdb pool opened this turn, one checkout per query (diagnostic): {fresh:.0}/s, ratio to pgbench {:.2}",
                fresh / theirs
            );
            println!(
                "{name}, taskdb's pool around a bare diesel::PgConnection manager, one checkout per query, same Diesel query (diagnostic): {pg_pooled:.0}/s, ratio to pgbench {:.2}",
                pg_pooled / theirs
            );
            // Where the client's time goes: the same Diesel query on a bare
            // PgConnection per thread (no pool, no MultiConnection).
            println!(
                "{name}, bare diesel::PgConnection (diagnostic): {plain:.0}/s, ratio to pgbench {:.2}",
                plain / theirs
            );
            println!(
                "{name}, user::find_by_email on a bare taskdb DbConnection, no pool (diagnostic): {any:.0}/s, ratio to pgbench {:.2}",
                any / theirs
            );
            println!(
                "{name}, pool with one checkout per thread for the whole run (diagnostic): {held:.0}/s, ratio to pgbench {:.2}",
                held / theirs
            );
        }
        println!(
            "{name}: taskdb {ours:.0}/s, plain r2d2 {before:.0}/s, pgbench {theirs:.0}/s, ratio {:.2} (plain r2d2 {:.2})",
            ours / theirs,
            before / theirs
        );
        rows.push((name, ours, before, theirs));
    }
    println!("\n| query | taskdb pool (2 threads) | plain r2d2 pool | pgbench -M prepared -c 2 -j 2 | ratio | plain r2d2 ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ours, before, theirs) in rows {
        println!(
            "| {name} | {ours:.0}/s | {before:.0}/s | {theirs:.0}/s | {:.2} | {:.2} |",
            ours / theirs,
            before / theirs
        );
    }
}

/// Runs `query` in a loop on `THREADS` threads for `length`, each thread
/// with its own `connect()`ed state and random user numbers 1..=`users`;
/// returns queries per second.
fn queries_per_second<C>(
    users: i64,
    length: Duration,
    connect: impl Fn() -> C + Sync,
    query: impl Fn(&mut C, u64) + Sync,
) -> f64 {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (stop, count, connect, query) = (&stop, &count, &connect, &query);
            scope.spawn(move || {
                let mut state = connect();
                let mut x: u64 = 0x9E37_79B9 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    // xorshift: cheap, and no rand dependency
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    query(&mut state, 1 + (x % users as u64));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One of the three typed queries, for user number `k`.
fn typed_query(conn: &mut impl ModelConnection, which: usize, k: u64) {
    match which {
        0 => {
            let u =
                user::find_by_email(conn, &format!("user{k}@example.com")).expect("find_by_email");
            assert!(u.is_some());
        }
        1 => {
            task::list(conn, &format!("user{k}"), TaskFilter::default()).expect("list");
        }
        _ => {
            let open = TaskFilter {
                completed: Some(false),
                ..Default::default()
            };
            task::list(conn, &format!("user{k}"), open).expect("list open");
        }
    }
}

/// Queries per second of the typed query `which` through the pool. With
/// `hold`, each thread checks out one connection for the whole run instead
/// of one per query (a diagnostic: what the checkout costs).
fn run_pool<M>(
    pool: &taskdb::Pool<M>,
    users: i64,
    length: Duration,
    which: usize,
    hold: bool,
) -> f64
where
    M: r2d2::ManageConnection,
    M::Connection: ModelConnection,
{
    let checkout = || pool.get().expect("checkout");
    if hold {
        queries_per_second(users, length, checkout, |conn, k| {
            typed_query(conn, which, k)
        })
    } else {
        run_per_query(checkout, users, length, which)
    }
}

/// Queries per second of the typed query `which`, each a `checkout` of
/// its own.
fn run_per_query<C: ModelConnection>(
    checkout: impl Fn() -> C + Sync,
    users: i64,
    length: Duration,
    which: usize,
) -> f64 {
    queries_per_second(
        users,
        length,
        || (),
        |_, k| typed_query(&mut checkout(), which, k),
    )
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

diesel::define_sql_function! {
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The login lookup as plain Diesel on a `PgConnection`.
fn plain_login(conn: &mut diesel::PgConnection, k: u64) {
    use taskdb::schema::users::dsl as u;
    let email = format!("user{k}@example.com");
    let found: Option<taskdb::models::User> = u::users
        .filter(lower(u::email).eq(lower(&email)))
        .select(taskdb::models::User::as_select())
        .first(conn)
        .optional()
        .expect("login lookup");
    assert!(found.is_some());
}

/// The login lookup on a bare `PgConnection` per thread.
fn run_plain_login(url: &str, users: i64, length: Duration) -> f64 {
    let connect = || diesel::PgConnection::establish(url).expect("connect");
    queries_per_second(users, length, connect, plain_login)
}

/// The login lookup on a `PgConnection` checked out of taskdb's pool per
/// query.
fn run_pg_pool_login(
    pool: &taskdb::db::Pool<diesel::r2d2::ConnectionManager<diesel::PgConnection>>,
    users: i64,
    length: Duration,
) -> f64 {
    queries_per_second(
        users,
        length,
        || (),
        |_, k| plain_login(&mut pool.get().expect("checkout"), k),
    )
}

/// The library's login lookup on one `DbConnection` per thread, no pool.
fn run_any_login(url: &DatabaseUrl, users: i64, length: Duration) -> f64 {
    let connect = || taskdb::db::connect(url).expect("connect");
    queries_per_second(users, length, connect, |conn, k| typed_query(conn, 0, k))
}

/// The login lookup on bare `PgConnection`s opened one after the other by
/// the calling thread, then used one per worker thread (as a pool's are:
/// opened by r2d2's threads, used by others).
fn run_main_opened_login(url: &str, users: i64, length: Duration) -> f64 {
    let opened: std::sync::Mutex<Vec<diesel::PgConnection>> = std::sync::Mutex::new(
        (0..THREADS)
            .map(|_| diesel::PgConnection::establish(url).expect("connect"))
            .collect(),
    );
    let connect = || opened.lock().unwrap().pop().expect("one per thread");
    queries_per_second(users, length, connect, plain_login)
}
