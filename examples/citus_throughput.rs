//! taskdb on Citus next to one PostgreSQL server, in the same run: the
//! app's task list and login lookup through a Citus coordinator (two
//! workers) vs a single node, and `taskdb distribute` of the tasks with
//! two writer clients inserting through the coordinator all along (their
//! slowest insert and their errors).
//!
//! ```text
//! scripts/citus-env
//! cargo run --release --example citus_throughput -- --users 10000 --tasks-per-user 100 --seconds 10 [--shard-count N]
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
//! in alternating turns (single node first, then the coordinator), with
//! the CPU each server's processes (from /proc) and this process spent
//! per query. The writers run alone for 10 s before `distribute` (the
//! machine's own stalls), and every insert of 100 ms or more is printed
//! on a timeline next to the start and end of each step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskdb::db::{self, DatabaseUrl};
use taskdb::models::{task, user, NewTask, TaskFilter};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const THREADS: usize = 2;
const TURNS: usize = 3;
/// How long the writers run alone before `distribute` starts.
const CONTROL_SECONDS: u64 = 10;

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
    fn sysconf(name: i32) -> i64;
}

/// Clock ticks per second of /proc's CPU times (`_SC_CLK_TCK` is 2 on Linux).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { sysconf(2) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU ticks of a process, and its parent, from /proc/PID/stat.
fn proc_cpu(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
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

    /// CPU ticks used so far by each live process of this server (its
    /// postmaster and the postmaster's children: backends, background
    /// workers), by pid.
    fn cpu_ticks(&self) -> HashMap<u64, u64> {
        let pid_file = self.dir.join("data/postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u64>().ok()))
        else {
            return HashMap::new();
        };
        let mut out = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if let Some((ppid, ticks)) = proc_cpu(&pid.to_string()) {
                if ppid == postmaster || pid == postmaster {
                    out.insert(pid, ticks);
                }
            }
        }
        out
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

/// One turn's figures: queries per second, and CPU per query (µs) of
/// each server of the side and of this process (the client).
struct Turn {
    qps: f64,
    server_us: Vec<f64>,
    client_us: f64,
}

fn self_cpu_ticks() -> u64 {
    proc_cpu("self").map_or(0, |(_, t)| t)
}

/// Queries per second of `query` on `THREADS` connections for `length`,
/// with the CPU the servers in `side` and this process spent meanwhile
/// (sampled while every connection is open, so no backend's time is lost
/// at its exit).
fn rate(url: &DatabaseUrl, side: &[&Node], users: i64, length: Duration, login: bool) -> Turn {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let connected = Barrier::new(THREADS + 1);
    let finished = Barrier::new(THREADS + 1);
    let sampled = Barrier::new(THREADS + 1);
    let (before, after, elapsed) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let (done, stop, connected, finished, sampled) =
                (&done, &stop, &connected, &finished, &sampled);
            s.spawn(move || {
                let mut conn = db::connect_postgres(url).expect("connect");
                let mut k = (t as i64 * 7919) % users;
                let mut n = 0;
                connected.wait();
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
                finished.wait();
                // The connection (its backend) stays until the sample.
                sampled.wait();
                drop(conn);
            });
        }
        connected.wait();
        let sample = || {
            (
                side.iter().map(|n| n.cpu_ticks()).collect::<Vec<_>>(),
                self_cpu_ticks(),
            )
        };
        let before = sample();
        let t = Instant::now();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        finished.wait();
        let elapsed = t.elapsed();
        let after = sample();
        sampled.wait();
        (before, after, elapsed)
    });
    let n = done.load(Ordering::Relaxed) as f64;
    let per_query = |b: u64, a: u64| a.saturating_sub(b) as f64 / clock_ticks() * 1e6 / n.max(1.0);
    // Per process: one that ended meanwhile (a backend of the turn before)
    // drops out of both samples, one that started counts from zero.
    let server_ticks = |b: &HashMap<u64, u64>, a: &HashMap<u64, u64>| {
        a.iter()
            .map(|(pid, t)| t.saturating_sub(b.get(pid).copied().unwrap_or(0)))
            .sum::<u64>()
    };
    Turn {
        qps: n / elapsed.as_secs_f64(),
        server_us: before
            .0
            .iter()
            .zip(&after.0)
            .map(|(b, a)| per_query(0, server_ticks(b, a)))
            .collect(),
        client_us: per_query(before.1, after.1),
    }
}

/// The mean of the turns: (queries per second, server µs per query by
/// node, client µs per query).
fn mean(turns: &[Turn]) -> (f64, Vec<f64>, f64) {
    let k = turns.len() as f64;
    let nodes = turns[0].server_us.len();
    (
        turns.iter().map(|t| t.qps).sum::<f64>() / k,
        (0..nodes)
            .map(|i| turns.iter().map(|t| t.server_us[i]).sum::<f64>() / k)
            .collect(),
        turns.iter().map(|t| t.client_us).sum::<f64>() / k,
    )
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
    // `distribute --shard-count`; 0: Citus's default (32).
    let shard_count = Some(arg("--shard-count", 0) as u32).filter(|&n| n > 0);
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
    // Every insert of 100 ms or more is kept with when it started, next
    // to when each step started and ended, to see which step held it.
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Arc<Mutex<Vec<(usize, f64, f64)>>> = Arc::default();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let url = citus_url.clone();
            let (stop, slow) = (stop.clone(), slow.clone());
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
                    if took >= Duration::from_millis(100) {
                        slow.lock().unwrap().push((
                            w as usize + 1,
                            (t - epoch).as_secs_f64(),
                            took.as_secs_f64() * 1000.0,
                        ));
                    }
                    slowest = slowest.max(took);
                    latencies.push(took);
                }
                latencies.sort();
                let p99 = latencies[latencies.len() * 99 / 100];
                (n, errors, slowest, p99)
            })
        })
        .collect();
    // The writers alone first: what this machine's own stalls (other
    // processes, disk flushes) do to an insert, with no step running.
    std::thread::sleep(Duration::from_secs(CONTROL_SECONDS));
    let mut conn = db::connect_postgres(&citus_url).expect("connect");
    let t = Instant::now();
    let distribute_from = epoch.elapsed().as_secs_f64();
    let mut steps = Vec::new();
    let mut timeline = Vec::new();
    taskdb::distribute::apply(
        &mut conn,
        taskdb::distribute::Options {
            lock_timeout: Duration::from_millis(50),
            lock_retries: 30,
            shard_count,
        },
        |e| match e {
            taskdb::distribute::Event::Starting(step) => {
                timeline.push(format!(
                    "  {:7.2} s  step {} starts",
                    epoch.elapsed().as_secs_f64(),
                    step.as_str()
                ));
            }
            taskdb::distribute::Event::Done(step, took) => {
                timeline.push(format!(
                    "  {:7.2} s  step {} done",
                    epoch.elapsed().as_secs_f64(),
                    step.as_str()
                ));
                steps.push(format!("{} {:.2} s", step.as_str(), took.as_secs_f64()));
            }
            taskdb::distribute::Event::LockTimeout { step, attempt, .. } => {
                timeline.push(format!(
                    "  {:7.2} s  step {} lock timeout, attempt {attempt}",
                    epoch.elapsed().as_secs_f64(),
                    step.as_str()
                ));
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
    let slow = slow.lock().unwrap();
    let control = slow
        .iter()
        .filter(|(_, at, _)| *at < distribute_from)
        .map(|(_, _, ms)| *ms)
        .fold(0.0, f64::max);
    println!(
        "  writers alone for {CONTROL_SECONDS} s before distribute: slowest insert {}",
        if control > 0.0 {
            format!("{control:.0} ms")
        } else {
            "under 100 ms".into()
        }
    );
    println!("timeline (inserts of 100 ms or more, and the steps):");
    for (w, at, ms) in slow.iter() {
        timeline.push(format!("  {at:7.2} s  writer {w} insert took {ms:.0} ms"));
    }
    timeline.sort();
    for line in &timeline {
        println!("{line}");
    }
    coordinator.run("bench", "ANALYZE");

    let turn = Duration::from_secs(seconds);
    let citus_nodes = [&coordinator, &workers[0], &workers[1]];
    for (name, login) in [
        ("task list (task::list)", false),
        ("login lookup (user::find_by_email)", true),
    ] {
        let (mut one, mut citus) = (Vec::new(), Vec::new());
        for _ in 0..TURNS {
            one.push(rate(&single_url, &[&single], users, turn, login));
            citus.push(rate(&citus_url, &citus_nodes, users, turn, login));
        }
        let (one_qps, one_cpu, one_client) = mean(&one);
        let (citus_qps, citus_cpu, citus_client) = mean(&citus);
        println!(
            "{name}: single node {one_qps:.0}/s, Citus coordinator {citus_qps:.0}/s, ratio {:.2}",
            citus_qps / one_qps
        );
        println!(
            "  CPU per query: single node server {:.0} µs + client {one_client:.0} µs; \
             Citus coordinator {:.0} µs + workers {:.0} µs + {:.0} µs + client {citus_client:.0} µs \
             (servers {:.2}x the single node's)",
            one_cpu[0],
            citus_cpu[0],
            citus_cpu[1],
            citus_cpu[2],
            citus_cpu.iter().sum::<f64>() / one_cpu[0]
        );
    }
}
