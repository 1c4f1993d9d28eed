//! What a migrate costs when nothing is pending: statements sent (counted on
//! the wire by a proxy that reads the PostgreSQL protocol), how many of them
//! are DDL, and the median wall time of a whole run; for `taskdb migrate`,
//! the embedded `migrate::run_pending`, and `diesel migration run`.
//!
//! ```text
//! cargo build --release --bins --examples
//! cargo run --release --example noop_migrate [-- RUNS]
//! ```
//!
//! Needs the test server (`TASKDB_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and the diesel CLI on
//! PATH or in ~/.cargo/bin. Builds the release `taskdb` binary if missing.

#[allow(dead_code)]
#[path = "../tests/it/common/wire_proxy.rs"]
mod wire_proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use taskdb::{migrate, DatabaseUrl};
use wire_proxy::{Statement, WireProxy};

const DB: &str = "taskdb_bench_noop";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(51);
    let admin_url = std::env::var("TASKDB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    let upstream = base
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or("127.0.0.1:5432")
        .to_string();

    let mut admin = PgConnection::establish(&admin_url)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {DB}"))?;
    migrate::run_pending(&DatabaseUrl::parse(&format!("{base}/{DB}"))?)?;

    let proxy = WireProxy::start(&upstream);
    // Statements are counted through the proxy; time is measured without
    // it, straight to the server.
    let counted_url = proxy.url("postgres", DB);
    let direct_url = format!("{base}/{DB}?sslmode=disable");
    let taskdb = taskdb_binary()?;
    let diesel = diesel_binary();
    let config = tempfile::tempdir()?;
    // No [print_schema]: a no-op run must not regenerate schema.rs.
    std::fs::write(config.path().join("diesel.toml"), "")?;
    let migrations = &Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let config_dir = config.path();

    type Runner<'a> = Box<dyn FnMut(&str) -> Result<(), String> + 'a>;
    let mut runners: Vec<(&str, Runner)> = vec![
        (
            "taskdb migrate (CLI process)",
            Box::new(|url: &str| {
                run(Command::new(&taskdb).args(["--database-url", url, "migrate"]))
            }),
        ),
        (
            "migrate::run_pending (embedded, in-process)",
            Box::new(|url: &str| {
                let parsed = DatabaseUrl::parse(url).map_err(|e| e.to_string())?;
                let applied = migrate::run_pending(&parsed).map_err(|e| e.to_string())?;
                if applied.is_empty() {
                    Ok(())
                } else {
                    Err("the database was not up to date".into())
                }
            }),
        ),
    ];
    match diesel {
        Some(diesel) => runners.push((
            "diesel migration run (CLI process)",
            Box::new(move |url: &str| {
                run(Command::new(&diesel)
                    .current_dir(config_dir)
                    .args(["migration", "run", "--database-url", url, "--config-file"])
                    .arg(config_dir.join("diesel.toml"))
                    .arg("--migration-dir")
                    .arg(migrations))
            }),
        )),
        None => eprintln!("diesel CLI not found: only taskdb measured"),
    }
    let mut rows = Vec::new();
    for (name, once) in runners.iter_mut() {
        rows.push((*name, count(&proxy, &counted_url, once)?));
    }
    // Timed runs interleave the runners, so a busy neighbour on the machine
    // slows them all alike; one warm-up round first.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); runners.len()];
    for round in 0..=runs {
        for (k, (_, once)) in runners.iter_mut().enumerate() {
            let started = Instant::now();
            once(&direct_url)?;
            if round > 0 {
                times[k].push(started.elapsed());
            }
        }
    }
    for ((_, m), mut t) in rows.iter_mut().zip(times) {
        t.sort();
        m.median = t[t.len() / 2];
    }

    println!(
        "No-op migrate on an up-to-date PostgreSQL database, {runs} runs each (median wall time)"
    );
    println!();
    println!("| runner | statements | of which connection set-up | after set-up | DDL | writes | median ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, m) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} |",
            m.statements,
            m.setup,
            m.statements - m.setup,
            m.ddl,
            m.writes,
            m.median.as_secs_f64() * 1000.0
        );
    }
    if let (Some((_, t)), Some((_, d))) = (rows.first(), rows.get(2)) {
        println!();
        println!(
            "diesel CLI / taskdb CLI: {:.1}x the statements ({:.1}x after set-up), {} vs {} DDL, {:.2}x the wall time",
            d.statements as f64 / t.statements as f64,
            (d.statements - d.setup) as f64 / (t.statements - t.setup).max(1) as f64,
            d.ddl,
            t.ddl,
            d.median.as_secs_f64() / t.median.as_secs_f64()
        );
        println!("statements seen from diesel, one run:");
        for s in &d.sample {
            println!("  {}", one_line(&s.sql));
        }
        println!("statements seen from taskdb, one run:");
        for s in &t.sample {
            println!("  {}", one_line(&s.sql));
        }
    }
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))?;
    Ok(())
}

struct Measured {
    statements: usize,
    setup: usize,
    ddl: usize,
    writes: usize,
    median: Duration,
    sample: Vec<Statement>,
}

/// Runs `once` three times through the proxy; the statement counts must
/// agree.
fn count(
    proxy: &WireProxy,
    counted_url: &str,
    once: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let mut counted: Option<Measured> = None;
    proxy.take();
    for _ in 0..3 {
        once(counted_url)?;
        let log = proxy.take();
        let m = Measured {
            statements: log.len(),
            setup: log.iter().filter(|s| s.is_connection_setup()).count(),
            ddl: log.iter().filter(|s| s.is_ddl()).count(),
            writes: log
                .iter()
                .filter(|s| s.is_write() && !s.is_connection_setup())
                .count(),
            median: Duration::ZERO,
            sample: log,
        };
        if let Some(prev) = &counted {
            if prev.statements != m.statements {
                return Err(format!(
                    "statement count changed between runs: {} then {}",
                    prev.statements, m.statements
                )
                .into());
            }
        }
        counted = Some(m);
    }
    Ok(counted.ok_or("no runs")?)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn one_line(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        line
    }
}

/// The release `taskdb` next to this example's binary, built if missing.
fn taskdb_binary() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    let bin = dir.join("taskdb");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    // Built with this example (`cargo build --release --bins --examples`):
    // use it; otherwise build it (a separate build of the bin alone would
    // rebuild clap with other features each time).
    if bin.exists() && modified(&bin) >= modified(&exe) {
        return Ok(bin);
    }
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--bin", "taskdb"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.current_dir(env!("CARGO_MANIFEST_DIR")).status()?;
    if !status.success() || !bin.exists() {
        return Err(format!("cannot build {}", bin.display()).into());
    }
    Ok(bin)
}

fn diesel_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [
        home.map(|h| h.join(".cargo/bin/diesel")),
        Some(PathBuf::from("/usr/local/bin/diesel")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .or_else(|| {
            Command::new("diesel")
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| PathBuf::from("diesel"))
        })
}
