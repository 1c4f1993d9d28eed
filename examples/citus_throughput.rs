//! taskdb on Citus next to one PostgreSQL server, in the same run: the
//! app's task list and login lookup through a Citus coordinator (two
//! workers) vs a single node, and `taskdb distribute` of the tasks with
//! two writer clients inserting through the coordinator all along (their
//! slowest insert and their errors).
//!
//! ```text
//! scripts/citus-env
//! cargo run --release --example citus_throughput -- --users 10000 --tasks-per-user 100 --seconds 10
//! ```
//!
//! It starts its own four PostgreSQL 15 clusters on free loopback ports
//! (initdb into temp directories, as `postgres` when run as root): a
//! coordinator and two workers with `shared_preload_libraries = 'citus'`,
//! and a single node with the same settings but no Citus. All four are
//! stopped and removed at the end. Both databases get the same rows:
//! users `user-1…user-N` (`userK@example.com`), M tasks each.
//! Throughput: 2 threads, one connection each, the typed queries
//! (`task::list` of a random user's newest tasks, `user::find_by_email`),
//! in alternating turns (single node first, then the coordinator).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskdb::db::{self, DatabaseUrl};
use taskdb::models::{task, user, NewTask, TaskFilter};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const THREADS: usize = 2;
const TURNS: usize = 3;

struct Node {
    port: u16,
    dir: PathBuf,
}

/// Runs a server binary, as `postgres` when run as root (initdb and
/// pg_ctl refuse root).
fn as_postgres(program: &str, args: &[&str]) {
    let root = is_root();
    let status = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--", program])
            .args(args)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .status()
    }
    .expect("run a server binary");
    assert!(status.success(), "{program} {args:?} failed");
}

extern "C" {
    fn geteuid() -> u32;
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    fn start(name: &str, citus: bool) -> Node {
        let dir =
            std::env::temp_dir().join(format!("taskdb-citus-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            Command::new("chown")
                .args(["postgres:postgres", dir.to_str().unwrap()])
                .status()
                .unwrap();
        }
        let data = dir.join("data");
        let data_s = data.to_str().unwrap().to_string();
        as_postgres(
            &format!("{BIN}/initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_buffers = 128MB\nwal_level = logical\nmax_connections = 200\n\
             max_worker_processes = 24\nmax_replication_slots = 20\nmax_wal_senders = 20\n\
             logging_collector = off\n",
            dir.display()
        );
        if citus {
            conf.push_str(
                "shared_preload_libraries = 'citus'\n\
                 output_plugin_libraries = 'pgoutput, test_decoding, citus'\n",
            );
        }
        let path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
        let log = dir.join("server.log");
        as_postgres(
            &format!("{BIN}/pg_ctl"),
            &[
                "-D",
                &data_s,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        Node { port, dir }
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn run(&self, db: &str, sql: &str) {
        PgConnection::establish(&self.url(db))
            .unwrap()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        as_postgres(
            &format!("{BIN}/pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fill(node: &Node, users: i64, per_user: i64) {
    node.run(
        "bench",
        &format!(
            "INSERT INTO users (id, email, password_hash)
               SELECT 'user-' || g, 'user' || g || '@example.com', 'x' FROM generate_series(1, {users}) g;
             INSERT INTO tasks (user_id, title, completed, created_at)
               SELECT 'user-' || u, 'task ' || t, t % 3 = 0, timestamp '2026-01-01' + t * interval '1 minute'
                 FROM generate_series(1, {users}) u, generate_series(1, {per_user}) t;
             ANALYZE;"
        ),
    );
}

/// Queries per second of `query` on `THREADS` connections for `length`.
fn rate(url: &DatabaseUrl, users: i64, length: Duration, login: bool) -> f64 {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (done, stop) = (&done, &stop);
            s.spawn(move || {
                let mut conn = db::connect_postgres(url).expect("connect");
                let mut k = (t as i64 * 7919) % users;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    k = (k * 48271 + 11) % users;
                    if login {
                        let email = format!("user{}@example.com", k + 1);
                        user::find_by_email(&mut conn, &email).unwrap().unwrap();
                    } else {
                        let owner = format!("user-{}", k + 1);
                        let listed = task::list(&mut conn, &owner, TaskFilter::default()).unwrap();
                        assert!(!listed.is_empty());
                    }
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / length.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: i64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let users = arg("--users", 10_000);
    let per_user = arg("--tasks-per-user", 100);
    let seconds = arg("--seconds", 10) as u64;
    assert!(
        Path::new(&format!("{BIN}/../lib/citus.so")).exists(),
        "Citus is not installed: run scripts/citus-env"
    );

    let started = Instant::now();
    let single = Node::start("single", false);
    let coordinator = Node::start("coordinator", true);
    let workers = [Node::start("worker1", true), Node::start("worker2", true)];
    for node in [&single, &coordinator, &workers[0], &workers[1]] {
        node.run("postgres", "CREATE DATABASE bench");
    }
    for node in [&coordinator, &workers[0], &workers[1]] {
        node.run("bench", "CREATE EXTENSION citus");
    }
    coordinator.run(
        "bench",
        &format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {});
             SELECT citus_add_node('127.0.0.1', {}); SELECT citus_add_node('127.0.0.1', {});",
            coordinator.port, workers[0].port, workers[1].port
        ),
    );
    let single_url = DatabaseUrl::parse(&single.url("bench")).unwrap();
    let citus_url = DatabaseUrl::parse(&coordinator.url("bench")).unwrap();
    for url in [&single_url, &citus_url] {
        taskdb::migrate::run_pending(url).expect("migrate");
    }
    fill(&single, users, per_user);
    fill(&coordinator, users, per_user);
    println!(
        "4 clusters up, {users} users and {} tasks on each side, in {:.0} s",
        users * per_user,
        started.elapsed().as_secs_f64()
    );

    // distribute with two writers inserting through the coordinator.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let url = citus_url.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = db::connect_postgres(&url).expect("connect");
                let (mut n, mut errors, mut slowest) = (0u64, 0u64, Duration::ZERO);
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let owner = format!("user-{}", (n * 2 + w) % users as u64 + 1);
                    let t = Instant::now();
                    if task::create(
                        &mut conn,
                        &owner,
                        NewTask {
                            title: "during distribute",
                            description: None,
                            completed: false,
                        },
                    )
                    .is_err()
                    {
                        errors += 1;
                    }
                    let took = t.elapsed();
                    slowest = slowest.max(took);
                    latencies.push(took);
                }
                latencies.sort();
                let p99 = latencies[latencies.len() * 99 / 100];
                (n, errors, slowest, p99)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let mut conn = db::connect_postgres(&citus_url).expect("connect");
    let t = Instant::now();
    let mut steps = Vec::new();
    taskdb::distribute::apply(
        &mut conn,
        taskdb::distribute::Options {
            lock_timeout: Duration::from_millis(50),
            lock_retries: 30,
        },
        |e| {
            if let taskdb::distribute::Event::Done(step, took) = e {
                steps.push(format!("{} {:.2} s", step.as_str(), took.as_secs_f64()));
            }
        },
    )
    .expect("distribute");
    let distribute_time = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    println!(
        "distribute of {} tasks: {:.1} s ({})",
        users * per_user,
        distribute_time.as_secs_f64(),
        steps.join(", ")
    );
    for (i, w) in writers.into_iter().enumerate() {
        let (n, errors, slowest, p99) = w.join().unwrap();
        println!(
            "  writer {}: {n} inserts, {errors} errors, slowest {:.0} ms, p99 {:.1} ms",
            i + 1,
            slowest.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
    coordinator.run("bench", "ANALYZE");

    let turn = Duration::from_secs(seconds);
    for (name, login) in [
        ("task list (task::list)", false),
        ("login lookup (user::find_by_email)", true),
    ] {
        let (mut one, mut citus) = (0.0, 0.0);
        for _ in 0..TURNS {
            one += rate(&single_url, users, turn, login);
            citus += rate(&citus_url, users, turn, login);
        }
        let (one, citus) = (one / TURNS as f64, citus / TURNS as f64);
        println!(
            "{name}: single node {one:.0}/s, Citus coordinator {citus:.0}/s, ratio {:.2}",
            citus / one
        );
    }
}
