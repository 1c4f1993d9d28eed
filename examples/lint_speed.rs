//! How long `taskdb lint` takes on many migrations, and what the pre-flight
//! costs `migrate` on taskdb's own migrations.
//!
//! ```text
//! cargo run --release --example lint_speed [-- MIGRATIONS ROUNDS]
//! ```
//!
//! Writes MIGRATIONS (default 1000) generated PostgreSQL migrations to a
//! temporary `postgres/` directory, about half of them unsafe (a mix of
//! every PostgreSQL rule) and half the safe recipes, each with 3–5
//! statements, then lints the directory ROUNDS (default 7) times in-process
//! (read, parse, check, as `taskdb lint DIR` does) and once through the
//! release binary. Prints every round, the median, and the findings count.
//! The generated directory is kept when `LINT_SPEED_KEEP=1` (to run other
//! linters on the same files).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use taskdb::lint;
use taskdb::Backend;

/// Statements of an unsafe migration on the existing `tasks` table; `{n}`
/// makes names unique.
const UNSAFE: &[&str] = &[
    "CREATE INDEX idx_tasks_title_{n} ON tasks (title);",
    "ALTER TABLE tasks ADD CONSTRAINT tasks_title_not_blank_{n} CHECK (title <> '');",
    "ALTER TABLE tasks ADD COLUMN archived_at_{n} TIMESTAMP NOT NULL DEFAULT clock_timestamp();",
    "ALTER TABLE tasks ADD CONSTRAINT fk_{n} FOREIGN KEY (user_id) REFERENCES users (id);",
    "ALTER TABLE tasks ALTER COLUMN priority SET NOT NULL;",
    "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(100);",
    "ALTER TABLE tasks ADD COLUMN seq_{n} BIGSERIAL;",
    "ALTER TABLE tasks DROP COLUMN description_{n};",
    "UPDATE tasks SET completed = false;",
    "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;",
    "ALTER TABLE users ADD CONSTRAINT users_email_key_{n} UNIQUE (email);",
];

/// The safe forms, in a transactional migration.
const SAFE: &[&str] = &[
    "ALTER TABLE tasks ADD CONSTRAINT tasks_title_not_blank_{n} CHECK (title <> '') NOT VALID;",
    "ALTER TABLE tasks ADD COLUMN archived_at_{n} TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC');",
    "ALTER TABLE tasks ADD CONSTRAINT fk_{n} FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    // No rewrite, so no error; it draws the warning
    // column-type-breaks-cached-plans (the app's prepared queries break).
    "ALTER TABLE tasks ALTER COLUMN title TYPE VARCHAR(500);",
    "CREATE TABLE labels_{n} (id SERIAL PRIMARY KEY, task_id INTEGER NOT NULL, name TEXT);",
    "CREATE INDEX idx_labels_{n} ON labels_{n} (task_id);",
    "UPDATE tasks SET completed = false WHERE id = {n};",
];

fn write_migrations(dir: &Path, count: usize) -> std::io::Result<()> {
    let base = dir.join("0000-00-00-000000_base");
    std::fs::create_dir_all(&base)?;
    std::fs::write(
        base.join("up.sql"),
        "CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY, user_id VARCHAR(255) NOT NULL, \
         title VARCHAR(255) NOT NULL, description TEXT, completed BOOLEAN NOT NULL DEFAULT false, \
         priority INTEGER);\nCREATE TABLE users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255));\n",
    )?;
    std::fs::write(
        base.join("down.sql"),
        "DROP TABLE users;\nDROP TABLE tasks;\n",
    )?;
    for n in 0..count {
        let dir = dir.join(format!("2026-01-01-{n:06}_generated_{n}"));
        std::fs::create_dir_all(&dir)?;
        let pool = if n % 2 == 0 { UNSAFE } else { SAFE };
        let statements = 3 + n % 3;
        let mut up = format!("-- generated migration {n}\n");
        for k in 0..statements {
            let stmt = pool[(n * 7 + k * 3) % pool.len()].replace("{n}", &format!("{n}_{k}"));
            up.push_str(&stmt);
            up.push('\n');
        }
        std::fs::write(dir.join("up.sql"), up)?;
        std::fs::write(dir.join("down.sql"), "SELECT 1;\n")?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(7);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("postgres");
    write_migrations(&dir, count)?;
    let bytes: u64 = walk_bytes(&dir)?;
    println!(
        "{count} generated migrations (+1 base), {:.0} kB of SQL in {}",
        bytes as f64 / 1024.0,
        dir.display()
    );

    let mut times = Vec::new();
    let mut findings = 0;
    for round in 1..=rounds {
        let started = Instant::now();
        let report = lint::lint_paths(std::slice::from_ref(&dir), Some(Backend::Postgres))
            .map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        findings = report.findings.len();
        println!(
            "round {round}: in-process lint {} ({findings} findings)",
            ms(elapsed)
        );
        times.push(elapsed);
    }
    times.sort();
    println!(
        "median in-process: {} (min {}, max {})",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );

    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/taskdb");
    if binary.is_file() {
        let started = Instant::now();
        let out = Command::new(&binary)
            .args(["lint", "--format", "json"])
            .arg(&dir)
            .output()?;
        println!(
            "release binary `taskdb lint --format json DIR`: {} (exit {:?}, {} bytes of JSON)",
            ms(started.elapsed()),
            out.status.code(),
            out.stdout.len()
        );
    } else {
        println!("(no target/release/taskdb: `cargo build --release` to time the binary too)");
    }

    // The pre-flight's static part on taskdb's own migrations (the live
    // part sends one size query per flagged table; there is none here).
    let own = taskdb::migrate::migrations(Backend::Postgres);
    let started = Instant::now();
    let n = 1000;
    for _ in 0..n {
        let f = lint::preflight::findings_of(&taskdb::source::MigrationSource::Embedded, &own);
        assert!(f.iter().all(|f| f.allowed), "{f:?}");
    }
    println!(
        "pre-flight facts lookup for all {} own migrations: {:.1} µs per migrate run",
        own.len(),
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    println!("findings in the generated set: {findings}");
    if std::env::var("LINT_SPEED_KEEP").as_deref() == Ok("1") {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}

fn walk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            total += walk_bytes(&path)?;
        } else {
            total += path.metadata()?.len();
        }
    }
    Ok(total)
}
