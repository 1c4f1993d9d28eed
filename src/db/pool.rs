//! The r2d2 pool backend code shares, opening its connections through
//! [`connect`] so they get the same settings as every other.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;

use super::{connect, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::with_backend;

/// The r2d2 pool backend code shares.
pub type Pool = r2d2::Pool<ConnectionManager>;
/// A connection checked out of [`Pool`].
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections for the pool through [`connect`], so pooled
/// connections get the same settings as every other.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = Error;

    fn connect(&self) -> Result<DbConnection> {
        connect(&self.url)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<()> {
        conn.batch_execute("SELECT 1").map_err(Error::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || with_backend!(conn, |c| c.is_broken())
    }
}

/// A pool builder with taskdb's defaults. `test_on_check_out` is off: the
/// health-check query on every checkout costs a round trip per request
/// (about half the throughput of a short query on loopback), and a broken
/// connection is still detected by `has_broken` and replaced.
pub fn pool_builder() -> r2d2::Builder<ConnectionManager> {
    r2d2::Pool::builder()
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
}

/// An in-memory SQLite database exists only inside the connection that
/// opened it: every other connection sees an empty one.
pub(crate) fn refuse_in_memory(url: &DatabaseUrl, what: &str) -> Result<()> {
    if url.is_in_memory() {
        return Err(Error::InvalidInput(format!(
            "{what} cannot use an in-memory SQLite database: each connection would get its own empty one; use a file (taskdb::testing::TestDb::sqlite() makes one per test)"
        )));
    }
    Ok(())
}

/// Builds a pool of up to `max_size` connections to `url`. An in-memory
/// SQLite database is refused (see [`DatabaseUrl::is_in_memory`]).
pub fn pool(url: &DatabaseUrl, max_size: u32) -> Result<Pool> {
    refuse_in_memory(url, "a pool")?;
    pool_builder()
        .max_size(max_size)
        .build(ConnectionManager::new(url.clone()))
        .map_err(|e| Error::Pool(url.scrub(&e.to_string())))
}
