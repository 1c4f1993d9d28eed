//! Which database a command talks to when URLs come from several places.
//! The real environment beats `./.env` as a whole: a DIRECT_DATABASE_URL in
//! `.env` never overrides a DATABASE_URL exported in the environment, and
//! the first output line says where the URL came from and which one set
//! elsewhere was not used.

use crate::common;

use std::path::Path;

use assert_cmd::Command;
use common::{taskdb_cmd, TestDb};
use taskdb::Backend;

/// The binary in `dir` (where `.env` is read), with exactly `env` as its
/// database variables.
fn taskdb_in(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = taskdb_cmd();
    cmd.current_dir(dir);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// `N` empty PostgreSQL databases: the places a URL may point to.
fn empty_databases<const N: usize>() -> [TestDb; N] {
    std::array::from_fn(|_| TestDb::empty(Backend::Postgres))
}

fn dir_with_dotenv(contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), contents).unwrap();
    dir
}

fn first_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs `cmd`, which must succeed, and returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tables in the public schema: 0 for a database nobody migrated.
fn public_tables(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
}

fn applied(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations")
}

fn all_migrations() -> i64 {
    taskdb::migrate::migrations(Backend::Postgres).len() as i64
}

/// The same URL with a password in it (the test server trusts loopback, so
/// it still connects).
fn with_password(db: &TestDb, password: &str) -> String {
    db.url().replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    )
}

#[test]
fn dotenv_direct_url_never_beats_environment_database_url() {
    // The incident: prod's direct URL in ./.env, staging exported.
    let [prod, staging] = empty_databases();
    let dir = dir_with_dotenv(&format!(
        "DIRECT_DATABASE_URL={}\n",
        with_password(&prod, "prodsecret")
    ));
    let env = [("DATABASE_URL", staging.url())];

    let out = taskdb_in(dir.path(), &env).arg("migrate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        first_line(&out),
        format!(
            "database: {} (from DATABASE_URL; DIRECT_DATABASE_URL in .env ignored: \
             the environment's DATABASE_URL wins)",
            staging.url()
        )
    );
    assert!(!stdout.contains("prodsecret") && !stderr.contains("prodsecret"));
    assert_eq!(applied(&staging), all_migrations());
    assert_eq!(public_tables(&prod), 0, "prod was touched");

    // `status` looks at the same database migrate just migrated.
    let status = run_ok(taskdb_in(dir.path(), &env).arg("status"));
    assert_eq!(
        status.lines().next().unwrap(),
        format!("database: {} (from DATABASE_URL)", staging.url())
    );
    assert!(status.contains("Pending: 0"), "{status}");
    assert_eq!(public_tables(&prod), 0);
}

#[test]
fn environment_direct_url_still_wins_for_migrations() {
    let [direct, pooled] = empty_databases();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DIRECT_DATABASE_URL", direct.url()),
        ("DATABASE_URL", pooled.url()),
    ];
    let out = run_ok(taskdb_in(dir.path(), &env).arg("migrate"));
    assert_eq!(
        out.lines().next().unwrap(),
        format!("database: {} (from DIRECT_DATABASE_URL)", direct.url())
    );
    assert_eq!(applied(&direct), all_migrations());
    assert_eq!(public_tables(&pooled), 0);
    // Read-only commands use DATABASE_URL.
    let status = run_ok(taskdb_in(dir.path(), &env).arg("status"));
    assert_eq!(
        status.lines().next().unwrap(),
        format!("database: {} (from DATABASE_URL)", pooled.url())
    );
}

#[test]
fn environment_direct_url_beats_both_urls_in_dotenv() {
    let [direct, other] = empty_databases();
    let dir = dir_with_dotenv(&format!(
        "DIRECT_DATABASE_URL={0}\nDATABASE_URL={0}\n",
        other.url()
    ));
    let out =
        run_ok(taskdb_in(dir.path(), &[("DIRECT_DATABASE_URL", direct.url())]).arg("migrate"));
    assert_eq!(
        out.lines().next().unwrap(),
        format!(
            "database: {} (from DIRECT_DATABASE_URL; DIRECT_DATABASE_URL in .env ignored: \
             the environment's DIRECT_DATABASE_URL wins)",
            direct.url()
        )
    );
    assert_eq!(applied(&direct), all_migrations());
    assert_eq!(public_tables(&other), 0);
}

#[test]
fn dotenv_alone_still_works() {
    let [direct, pooled] = empty_databases();
    let dir = dir_with_dotenv(&format!(
        "DATABASE_URL={}\nDIRECT_DATABASE_URL={}\n",
        pooled.url(),
        direct.url()
    ));
    let out = run_ok(taskdb_in(dir.path(), &[]).arg("migrate"));
    assert_eq!(
        out.lines().next().unwrap(),
        format!(
            "database: {} (from DIRECT_DATABASE_URL in .env)",
            direct.url()
        )
    );
    assert_eq!(applied(&direct), all_migrations());
    assert_eq!(public_tables(&pooled), 0);
    let status = run_ok(taskdb_in(dir.path(), &[]).arg("status"));
    assert_eq!(
        status.lines().next().unwrap(),
        format!("database: {} (from DATABASE_URL in .env)", pooled.url())
    );
}

#[test]
fn flag_beats_everything_and_names_what_it_overrode() {
    let [chosen, in_env, in_dotenv] = empty_databases();
    let dir = dir_with_dotenv(&format!(
        "DIRECT_DATABASE_URL={}\n",
        with_password(&in_dotenv, "dotenvsecret")
    ));
    for flag_after_command in [false, true] {
        let mut cmd = taskdb_in(dir.path(), &[("DATABASE_URL", in_env.url())]);
        if flag_after_command {
            cmd.args(["migrate", "-D", chosen.url()]);
        } else {
            cmd.args(["--database-url", chosen.url(), "migrate"]);
        }
        let out = run_ok(&mut cmd);
        assert_eq!(
            out.lines().next().unwrap(),
            format!(
                "database: {} (from --database-url; DATABASE_URL, DIRECT_DATABASE_URL in .env \
                 ignored: --database-url wins)",
                chosen.url()
            )
        );
        assert!(!out.contains("dotenvsecret"));
    }
    assert_eq!(applied(&chosen), all_migrations());
    assert_eq!(public_tables(&in_env), 0);
    assert_eq!(public_tables(&in_dotenv), 0);
}

#[test]
fn a_url_set_twice_to_the_same_value_is_not_reported_as_ignored() {
    // A shell that sourced .env exports what .env says: nothing overrode
    // anything.
    let db = TestDb::migrated(Backend::Postgres);
    let dir = dir_with_dotenv(&format!("DATABASE_URL={}\n", db.url()));
    let out = run_ok(taskdb_in(dir.path(), &[("DATABASE_URL", db.url())]).arg("status"));
    assert_eq!(
        out.lines().next().unwrap(),
        format!("database: {} (from DATABASE_URL)", db.url())
    );
}

#[test]
fn other_dotenv_entries_still_reach_the_environment() {
    // TASKDB_LOCK_TIMEOUT from .env is read by clap: a bad one is a usage
    // error naming it; an exported one beats it.
    let dir = dir_with_dotenv("TASKDB_LOCK_TIMEOUT=soon\n");
    let out = taskdb_in(dir.path(), &[])
        .args(["migrate", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("soon"), "{stderr}");
    run_ok(taskdb_in(dir.path(), &[("TASKDB_LOCK_TIMEOUT", "2s")]).args(["migrate", "--dry-run"]));
}

#[test]
fn a_dotenv_with_a_byte_order_mark_still_works() {
    let dir = dir_with_dotenv("\u{feff}DATABASE_URL=sqlite://bom.db\n");
    let out = run_ok(taskdb_in(dir.path(), &[]).arg("status"));
    assert_eq!(
        out.lines().next().unwrap(),
        "database: sqlite://bom.db (from DATABASE_URL in .env)"
    );
}
