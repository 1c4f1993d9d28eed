//! An up-to-date database costs a migrate one query after connecting: no
//! lock, no DDL, no writes. Counted on the wire by a proxy that reads the
//! PostgreSQL protocol.

use crate::common;

use common::wire_proxy::{Statement, WireProxy};
use common::TestDb;
use taskdb::{migrate, Backend, DatabaseUrl};

/// Statements after Diesel's per-connection set-up.
fn after_setup(log: &[Statement]) -> Vec<&Statement> {
    log.iter().filter(|s| !s.is_connection_setup()).collect()
}

fn assert_one_read(log: &[Statement], what: &str) {
    let work = after_setup(log);
    assert_eq!(work.len(), 1, "{what}: {work:#?}");
    assert!(
        work.iter().all(|s| !s.is_ddl() && !s.is_write()),
        "{what}: {work:#?}"
    );
    let connections: std::collections::HashSet<usize> = log.iter().map(|s| s.connection).collect();
    assert_eq!(
        connections.len(),
        1,
        "{what}: one connection, no lock connection"
    );
}

#[test]
fn up_to_date_migrate_sends_one_query_and_no_ddl() {
    let db = TestDb::migrated(Backend::Postgres);
    let proxy = WireProxy::start("127.0.0.1:5432");
    let url = proxy.url("postgres", db.pg_name().unwrap());

    common::taskdb_at(&url)
        .arg("migrate")
        .assert()
        .success()
        .stdout(predicates::str::contains("Nothing to do"));
    assert_one_read(&proxy.take(), "taskdb migrate");

    let applied = migrate::run_pending(&DatabaseUrl::parse(&url).unwrap()).unwrap();
    assert!(applied.is_empty());
    assert_one_read(&proxy.take(), "run_pending");
}

#[test]
fn control_a_pending_migration_is_counted_as_ddl() {
    // The counter must see DDL and locking when there is work to do.
    let db = TestDb::migrated_to(Backend::Postgres, "2026-02-08-000010");
    let proxy = WireProxy::start("127.0.0.1:5432");
    let url = proxy.url("postgres", db.pg_name().unwrap());
    common::taskdb_at(&url).arg("migrate").assert().success();
    let log = proxy.take();
    let work = after_setup(&log);
    assert!(work.len() > 1, "{work:#?}");
    assert!(work.iter().any(|s| s.is_ddl()), "{work:#?}");
    assert!(
        work.iter()
            .any(|s| s.sql.contains("pg_try_advisory_xact_lock")),
        "{work:#?}"
    );
}
