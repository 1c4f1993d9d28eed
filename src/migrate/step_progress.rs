//! How far a long step has got, read from the server. The library only
//! reads it; showing it is the caller's business (the CLI polls it from a
//! second connection while the migration connection is busy).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::Result;

/// One row of `pg_stat_progress_create_index` (PostgreSQL 12+).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct IndexBuildProgress {
    /// The index being built.
    #[diesel(sql_type = Text)]
    pub index: String,
    /// e.g. `building index: scanning table`, `waiting for old snapshots`.
    #[diesel(sql_type = Text)]
    pub phase: String,
    #[diesel(sql_type = BigInt)]
    pub blocks_done: i64,
    #[diesel(sql_type = BigInt)]
    pub blocks_total: i64,
    #[diesel(sql_type = BigInt)]
    pub tuples_done: i64,
    #[diesel(sql_type = BigInt)]
    pub tuples_total: i64,
}

/// The index build running in this connection's database, if any (always
/// `None` on SQLite).
pub fn index_build(conn: &mut DbConnection) -> Result<Option<IndexBuildProgress>> {
    if conn.backend() != Backend::Postgres {
        return Ok(None);
    }
    Ok(diesel::sql_query(
        "SELECT coalesce(p.index_relid::regclass::text, '') AS index, p.phase,
                p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total
           FROM pg_stat_progress_create_index p
          WHERE p.datname = current_database()
          ORDER BY p.pid LIMIT 1",
    )
    .get_result(conn)
    .optional()?)
}
