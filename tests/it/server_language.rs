//! A server that answers in German (`lc_messages = 'de_DE.UTF-8'`, which
//! initdb takes from a German OS): taskdb tells server errors apart by
//! their SQLSTATE, never by their text, so a fresh database is migrated,
//! listed and adopted, and lock timeouts are retried, as on an English one.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::Cluster;
use common::process::{spawn_taskdb_at, wait_with_limit};
use common::BEFORE_ALTER;
use diesel::connection::SimpleConnection;

fn german() -> Arc<Cluster> {
    Cluster::shared(&[("lc_messages", "'de_DE.UTF-8'")])
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_test_server_really_answers_in_german() {
    // Otherwise the tests below would prove nothing.
    let cluster = german();
    let err = cluster
        .conn("postgres")
        .batch_execute("SELECT * FROM no_such_table")
        .unwrap_err()
        .to_string();
    assert!(err.contains("existiert nicht"), "{err}");
}

#[test]
fn status_lists_a_fresh_database_on_a_german_server() {
    let cluster = german();
    let db = cluster.database();
    let out = db.taskdb().arg("status").output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pending"), "{text}");
}

#[test]
fn migrate_migrates_a_fresh_database_on_a_german_server() {
    let cluster = german();
    let db = cluster.database();
    let out = db.taskdb().arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let out = db.taskdb().args(["status", "--check"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn adopt_says_why_it_refuses_a_fresh_database_on_a_german_server() {
    let cluster = german();
    let db = cluster.database();
    let out = db.taskdb().arg("adopt").output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("there is no schema_migrations table"),
        "{text}"
    );
}

#[test]
fn lock_timeouts_are_retried_on_a_german_server() {
    let cluster = german();
    let db = cluster.database();
    // Set up in English, so that only the retry is under test here.
    db.execute(&format!("ALTER DATABASE {} SET lc_messages = 'C'", db.name));
    let out = db
        .taskdb()
        .args(["migrate", "--to", BEFORE_ALTER])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    db.execute(&format!("ALTER DATABASE {} RESET lc_messages", db.name));
    // A long transaction reading tasks: the next step's ALTER TABLE cannot
    // get its lock until it ends.
    let mut long = db.conn();
    long.batch_execute("BEGIN; SELECT COUNT(*) FROM tasks")
        .unwrap();
    let child = spawn_taskdb_at(&db.url(), &["migrate", "--lock-timeout", "50ms"]);
    std::thread::sleep(Duration::from_millis(1500));
    long.batch_execute("ROLLBACK").unwrap();
    let out = wait_with_limit(child, Duration::from_secs(60));
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("waited too long for a table lock (attempt 1)"),
        "{text}"
    );
}
