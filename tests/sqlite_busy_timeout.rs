//! The library's SQLite busy timeout, set for the whole process with
//! `db::set_sqlite_busy_timeout`: a write lock held longer is a typed error
//! that says how long it waited. A crate of its own because the setting is
//! process-wide: in the suite's crate it would shorten every other test's
//! wait for a SQLite lock.

#![cfg(all(feature = "sqlite", feature = "testing"))]

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use taskdb::models::{user, NewUser};
use taskdb::testing::TestDb;
use taskdb::Error;

#[test]
fn a_held_sqlite_lock_in_the_library_is_a_typed_error() {
    let db = TestDb::sqlite().unwrap();
    let path = db.sqlite_path().unwrap();
    let mut holder = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();

    taskdb::db::set_sqlite_busy_timeout(Duration::from_millis(300));
    let mut conn = db.conn().unwrap();
    let err = user::create(
        &mut conn,
        NewUser {
            id: Some("u1"),
            email: "u1@example.com",
            password: "pw-for-tests",
            name: None,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::SqliteBusy { waited } if waited == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.to_string().contains("waited 300 ms"), "{err}");
    assert!(std::error::Error::source(&err).is_none());
}
