//! A sentinel password in every way a URL reaches taskdb, through every
//! command's success and error paths: it never appears in stdout or stderr.

use crate::common;

use common::pgbouncer::PgBouncer;
use common::secrets::{output_hiding, SENTINEL};
use common::{taskdb_at, taskdb_cmd, unused_port, TestDb};
use diesel::connection::SimpleConnection;
use taskdb::Backend;

/// Every command, with arguments that get it as far as connecting.
const COMMANDS: &[&[&str]] = &[
    &["migrate"],
    &["migrate", "--dry-run"],
    &["migrate", "--to", "2026-02-08-000003"],
    &["status"],
    &["status", "--format", "json"],
    &["status", "--check"],
    &["rollback", "--yes"],
    &["rollback", "--dry-run"],
    &["redo", "--yes"],
    &["seed"],
    &["repair"],
    &["verify"],
    &["verify", "--format", "json"],
    &["adopt"],
    &["orphans"],
    &["orphans", "--delete", "--yes"],
    &["seed", "demo", "--users", "2", "--tasks-per-user", "2"],
];

/// A role that really needs its password: PgBouncer checks it (md5) before
/// passing the login on to the server, whose pg_hba trusts loopback.
fn password_bouncer() -> PgBouncer {
    common::admin()
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE taskdb_pw_test LOGIN PASSWORD 'right-password'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .unwrap();
    PgBouncer::start_with(
        "transaction",
        "md5",
        &[("taskdb_pw_test", "right-password"), ("postgres", "")],
    )
}

#[test]
fn error_paths_of_every_command_hide_the_password() {
    let db = TestDb::migrated(Backend::Postgres);
    let bouncer = password_bouncer();
    let name = db.pg_name().unwrap();
    let urls = [
        (
            "unreachable host",
            format!(
                "postgres://app:{SENTINEL}@127.0.0.1:{}/tasks",
                unused_port()
            ),
        ),
        (
            "wrong password",
            format!(
                "postgres://taskdb_pw_test:{SENTINEL}@127.0.0.1:{}/{name}",
                bouncer.port
            ),
        ),
        (
            "missing database",
            format!("postgres://postgres:{SENTINEL}@127.0.0.1:5432/taskdb_no_such_db"),
        ),
        (
            "malformed URL",
            format!("postgres://app:{SENTINEL}@127.0.0.1:notaport/tasks"),
        ),
        (
            "unknown scheme",
            format!("mysql://app:{SENTINEL}@127.0.0.1/tasks"),
        ),
        (
            "`#` and `?` in the password",
            format!(
                "postgres://app:a#b?{SENTINEL}@127.0.0.1:{}/tasks",
                unused_port()
            ),
        ),
        (
            "secret query parameters",
            format!(
                "postgres://app@127.0.0.1:{}/tasks?sslmode=prefer&sslpassword={SENTINEL}&pass%77ord={SENTINEL}",
                unused_port()
            ),
        ),
        (
            "password as a query parameter",
            format!(
                "postgres://app@127.0.0.1:{}/tasks?password={SENTINEL}",
                unused_port()
            ),
        ),
    ];
    let mut wrong_password_seen = false;
    for (case, url) in &urls {
        for args in COMMANDS {
            let mut cmd = taskdb_at(url);
            cmd.args(*args);
            let what = format!("{case}, {args:?}");
            let (code, output) = output_hiding(cmd, &[SENTINEL], &what);
            assert_ne!(code, Some(0), "{what}: {output}");
            wrong_password_seen |= output.contains("password authentication failed");
        }
    }
    assert!(
        wrong_password_seen,
        "the wrong-password case really failed on its password"
    );
}

#[test]
fn success_paths_and_every_url_source_hide_the_password() {
    // Trust on loopback ignores the password, so the commands succeed and
    // print the URL they use: redacted.
    let db = TestDb::migrated(Backend::Postgres);
    let name = db.pg_name().unwrap();
    let url = format!("postgres://postgres:{SENTINEL}@127.0.0.1:5432/{name}");
    for args in COMMANDS {
        let mut cmd = taskdb_at(&url);
        cmd.args(*args);
        let (_, output) = output_hiding(cmd, &[SENTINEL], &format!("{args:?}"));
        assert!(!output.is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), format!("DATABASE_URL={url}\n")).unwrap();
    for (env, value) in [
        ("DATABASE_URL", Some(&url)),
        ("DIRECT_DATABASE_URL", Some(&url)),
    ] {
        for args in [&["status"][..], &["migrate"], &["verify"]] {
            let mut cmd = taskdb_cmd();
            if let Some(v) = value {
                cmd.env(env, v);
            }
            cmd.args(args);
            let (code, output) = output_hiding(cmd, &[SENTINEL], &format!("{env} {args:?}"));
            assert_eq!(code, Some(0), "{output}");
        }
    }
    // From .env.
    let mut cmd = taskdb_cmd();
    cmd.current_dir(dir.path()).arg("status");
    let (code, output) = output_hiding(cmd, &[SENTINEL], ".env");
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("from DATABASE_URL in .env"), "{output}");
}

#[test]
fn usage_errors_and_bad_dotenv_hide_the_password() {
    let url = format!("postgres://app:{SENTINEL}@db.example.com/tasks");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--database-url".into(),
            url.clone(),
            "migrate".into(),
            "--bogus".into(),
        ],
        vec![
            format!("--database-url={url}"),
            "--wait".into(),
            "soon".into(),
            "status".into(),
        ],
        // The URL where a subcommand belongs: clap echoes it.
        vec![url.clone()],
        vec!["migrate".into(), url.clone()],
        vec!["status".into(), "--format".into(), url.clone()],
        // Where the authority does not end at `#`, `?` or a space.
        vec![
            "migrate".into(),
            format!("postgres://app:a#b?c {SENTINEL}@db.example.com/tasks"),
        ],
        vec![
            "migrate".into(),
            format!("postgres://app@db.example.com/tasks?sslpassword={SENTINEL}"),
        ],
    ];
    for args in &cases {
        let mut cmd = taskdb_cmd();
        cmd.args(args);
        let (code, output) = output_hiding(cmd, &[SENTINEL], &format!("{args:?}"));
        assert_eq!(code, Some(2), "{output}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL={url}\nthis line is not KEY=value\n"),
    )
    .unwrap();
    let mut cmd = taskdb_cmd();
    cmd.current_dir(dir.path()).arg("status");
    let (code, output) = output_hiding(cmd, &[SENTINEL], "bad .env");
    assert_eq!(code, Some(1), "{output}");
}

#[test]
fn embedded_errors_hide_the_password() {
    // The library's own errors, as backend code would log them.
    let url = taskdb::DatabaseUrl::parse(&format!(
        "postgres://app:{SENTINEL}@127.0.0.1:{}/tasks",
        unused_port()
    ))
    .unwrap();
    let err = taskdb::migrate::run_pending(&url).unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{url:?}"),
        url.to_string(),
    ] {
        assert!(!text.contains(SENTINEL), "{text}");
    }
}
