//! Many migrators on one fresh database at once, as when every replica of
//! the app starts together: directly, through PgBouncer in transaction
//! mode, on one SQLite file, and from threads of one process. Each
//! migration is applied exactly once and every migrator succeeds.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::pgbouncer::PgBouncer;
use common::{schema_dump, TestDb};
use taskdb::{migrate, Backend, DatabaseUrl};

const MIGRATORS: usize = 16;

/// Starts `MIGRATORS` `taskdb migrate` processes on `url` at once.
fn race_cli(url: &str) -> Vec<Output> {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..MIGRATORS)
        .map(|_| {
            Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
                .current_dir(dir.path())
                .env_remove("DATABASE_URL")
                .env_remove("DIRECT_DATABASE_URL")
                .args(["--database-url", url, "migrate"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// How many migrations a `taskdb migrate` run says it applied.
fn applied_by(output: &Output) -> usize {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Applied "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

/// Every migration recorded once by Diesel and once in the ledger, and the
/// schema the same as one migrated alone.
fn assert_fully_migrated(db: &TestDb, applied_in_all: usize) {
    let total = migrate::migrations(db.backend).len();
    assert_eq!(
        applied_in_all, total,
        "each migration is applied by exactly one migrator"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations"),
        total as i64
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __taskdb_ledger WHERE state = 'applied'"),
        total as i64
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __taskdb_ledger"),
        total as i64
    );
    let reference = TestDb::migrated(db.backend);
    assert_eq!(schema_dump(db), schema_dump(&reference));
}

fn assert_all_succeeded(outputs: &[Output]) -> usize {
    for o in outputs {
        assert!(
            o.status.success(),
            "a migrator failed ({:?}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    outputs.iter().map(applied_by).sum()
}

#[test]
fn sixteen_cli_migrators_directly_on_postgres() {
    let db = TestDb::empty(Backend::Postgres);
    let applied = assert_all_succeeded(&race_cli(db.url()));
    assert_fully_migrated(&db, applied);
}

#[test]
fn sixteen_cli_migrators_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start("transaction");
    let db = TestDb::empty(Backend::Postgres);
    let url = bouncer.url(db.pg_name().unwrap());
    let applied = assert_all_succeeded(&race_cli(&url));
    assert_fully_migrated(&db, applied);
    // The app's own queries work through the same pooler afterwards.
    let pooled = DatabaseUrl::parse(&url).unwrap();
    assert!(migrate::run_pending(&pooled).unwrap().is_empty());
}

#[test]
fn sixteen_cli_migrators_on_one_sqlite_file() {
    let db = TestDb::empty(Backend::Sqlite);
    let applied = assert_all_succeeded(&race_cli(db.url()));
    assert_fully_migrated(&db, applied);
}

/// The embedded path: `run_pending` from 16 threads of one process.
fn race_embedded(db: &TestDb, url: &str) {
    let url = DatabaseUrl::parse(url).unwrap();
    let applied: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..MIGRATORS)
            .map(|_| s.spawn(|| migrate::run_pending(&url)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().len())
            .sum()
    });
    assert_fully_migrated(db, applied);
}

#[test]
fn sixteen_embedded_migrators_on_postgres() {
    let db = TestDb::empty(Backend::Postgres);
    race_embedded(&db, db.url());
}

#[test]
fn sixteen_embedded_migrators_through_pgbouncer() {
    let bouncer = PgBouncer::start("transaction");
    let db = TestDb::empty(Backend::Postgres);
    race_embedded(&db, &bouncer.url(db.pg_name().unwrap()));
}

#[test]
fn sixteen_embedded_migrators_on_sqlite() {
    let db = TestDb::empty(Backend::Sqlite);
    race_embedded(&db, db.url());
}

#[test]
fn statement_pooling_is_refused_naming_direct_database_url() {
    // A statement-mode pooler cannot keep a transaction open, so neither the
    // migration lock nor a transactional migration can work through it.
    let bouncer = PgBouncer::start("statement");
    let db = TestDb::empty(Backend::Postgres);
    let out = common::taskdb_cmd()
        .args([
            "--database-url",
            &bouncer.url(db.pg_name().unwrap()),
            "migrate",
        ])
        .assert()
        .failure()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("DIRECT_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("statement"), "{stderr}");
    // Nothing was changed.
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
    // With DIRECT_DATABASE_URL set, the same command goes around the pooler.
    common::taskdb_cmd()
        .env("DATABASE_URL", bouncer.url(db.pg_name().unwrap()))
        .env("DIRECT_DATABASE_URL", db.url())
        .arg("migrate")
        .assert()
        .success();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations"),
        migrate::migrations(Backend::Postgres).len() as i64
    );
}

/// A server that comes up while `taskdb migrate --wait` is retrying: a
/// plain TCP relay to PostgreSQL starts listening on the port 1.5 s after
/// the migrator started, and the migrator then connects and migrates.
#[test]
fn wait_connects_once_the_server_is_up() {
    use std::io;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    let db = TestDb::empty(Backend::Postgres);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/{}?sslmode=disable",
        db.pg_name().unwrap()
    );
    let started = Instant::now();
    let migrator = Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
        .env_remove("DATABASE_URL")
        .env_remove("DIRECT_DATABASE_URL")
        .args(["--database-url", &url, "--wait", "30s", "migrate"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                continue;
            };
            let (mut up_from, mut up_to) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || io::copy(&mut up_from, &mut up_to));
            let (mut down_from, mut down_to) = (server, client);
            std::thread::spawn(move || io::copy(&mut down_from, &mut down_to));
        }
    });
    let out = migrator.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "connected before the server was up"
    );
    assert_eq!(
        applied_by(&out),
        migrate::migrations(Backend::Postgres).len()
    );
}
