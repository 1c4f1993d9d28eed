//! The tracking tables. Applied versions live in Diesel's own
//! `__diesel_schema_migrations`, so the diesel CLI sees the same state.
//! What Diesel does not keep lives in taskdb's `__taskdb_ledger`: the
//! checksum of each applied `up.sql`, how long it ran, who ran it and when,
//! and whether a migration that cannot run in a transaction is still running
//! or failed part-way, and how far a backfill migration got and how fast
//! (PostgreSQL: `backfill_key`, `backfill_rows`; `backfill_started_at`,
//! `backfill_started_rows`, `backfill_saved_at` for the run's rate; added
//! to ledgers from before them).
//! (Names starting with `__` are skipped by `diesel print-schema`.)

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use crate::db::{sqlstate, Backend, DbConnection, HasBackend as _};
use crate::error::Result;
use crate::models::now_utc;
use crate::source::LocalMigration;

/// The shape of taskdb's tracking tables. Change it with them: a per-test
/// template database is keyed by it too, so a template built by a taskdb
/// with other tracking tables is not reused.
#[cfg(feature = "testing")]
pub(crate) const TRACKING_TABLES: &str = "ledger 3 (backfill_key, backfill_rows, backfill_started_at, backfill_started_rows, backfill_saved_at)";

/// Diesel's table, created exactly as the diesel CLI creates it.
const CREATE_DIESEL_TABLE: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);";

const CREATE_LEDGER_TABLE: &str = "CREATE TABLE IF NOT EXISTS __taskdb_ledger (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    name VARCHAR(255) NOT NULL,
    checksum VARCHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL,
    error TEXT,
    execution_ms BIGINT NOT NULL DEFAULT 0,
    applied_by VARCHAR(255) NOT NULL,
    applied_at TIMESTAMP NOT NULL
);";

/// Where a migration's run stands, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    /// Ran to the end.
    Applied,
    /// A run without a transaction started and has not finished: the
    /// process was killed, or it is still running on the server.
    Running,
    /// A run without a transaction failed part-way ("dirty").
    Failed,
    /// A revert without a transaction started and has not finished; the
    /// version is still recorded as applied until it does.
    Reverting,
}

impl LedgerState {
    fn as_str(self) -> &'static str {
        match self {
            LedgerState::Applied => "applied",
            LedgerState::Running => "running",
            LedgerState::Failed => "failed",
            LedgerState::Reverting => "reverting",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => LedgerState::Running,
            "failed" => LedgerState::Failed,
            "reverting" => LedgerState::Reverting,
            _ => LedgerState::Applied,
        }
    }
}

/// One version the database knows about, from either table.
#[derive(Debug, Clone)]
pub struct TrackedVersion {
    pub version: String,
    /// Present in `__diesel_schema_migrations`.
    pub recorded: bool,
    /// When Diesel recorded it.
    pub run_on: Option<NaiveDateTime>,
    /// The ledger row, if taskdb has one.
    pub ledger: Option<LedgerRow>,
}

/// taskdb's record of one migration.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub name: String,
    pub checksum: String,
    pub state: LedgerState,
    pub error: Option<String>,
    pub execution_ms: i64,
    pub applied_by: String,
    pub applied_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Bool)]
    recorded: bool,
    #[diesel(sql_type = Nullable<Timestamp>)]
    run_on: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    checksum: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    execution_ms: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    applied_by: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    applied_at: Option<NaiveDateTime>,
}

const SELECT_BOTH: &str = "
SELECT d.version, (1 = 1) AS recorded, d.run_on, l.name, l.checksum, l.state, l.error,
       l.execution_ms, l.applied_by, l.applied_at
  FROM __diesel_schema_migrations d
  LEFT JOIN __taskdb_ledger l ON l.version = d.version
UNION ALL
SELECT l.version, (1 = 0), NULL, l.name, l.checksum, l.state, l.error,
       l.execution_ms, l.applied_by, l.applied_at
  FROM __taskdb_ledger l
 WHERE NOT EXISTS (SELECT 1 FROM __diesel_schema_migrations d WHERE d.version = l.version)";

const SELECT_DIESEL_ONLY: &str = "
SELECT d.version, (1 = 1) AS recorded, d.run_on,
       CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS checksum, CAST(NULL AS TEXT) AS state,
       CAST(NULL AS TEXT) AS error, CAST(NULL AS BIGINT) AS execution_ms,
       CAST(NULL AS TEXT) AS applied_by, CAST(NULL AS TIMESTAMP) AS applied_at
  FROM __diesel_schema_migrations d";

/// What the tracking tables say, read in one query when both exist (the
/// whole cost of an up-to-date `migrate`). Missing tables read as empty and
/// are never created here: `status` changes nothing.
pub fn read(conn: &mut DbConnection) -> Result<(Vec<TrackedVersion>, bool)> {
    let (rows, ledger_exists) = match diesel::sql_query(SELECT_BOTH).load::<Row>(conn) {
        Ok(rows) => (rows, true),
        // Which table is missing, if any, is asked rather than read from
        // the error, whose words are the server's (its lc_messages). If
        // even asking fails (the failed query aborted the caller's
        // transaction), the first error is the one to report.
        Err(both_err) => match missing_tables(conn) {
            Ok((true, _)) => (Vec::new(), false),
            Ok((false, true)) => (
                diesel::sql_query(SELECT_DIESEL_ONLY).load::<Row>(conn)?,
                false,
            ),
            // Both exist now: another migrator created them since.
            Ok((false, false)) => (diesel::sql_query(SELECT_BOTH).load::<Row>(conn)?, true),
            Err(_) => return Err(both_err.into()),
        },
    };
    let tracked = rows
        .into_iter()
        .map(|r| TrackedVersion {
            version: r.version,
            recorded: r.recorded,
            run_on: r.run_on,
            ledger: match (r.checksum, r.state, r.applied_at) {
                (Some(checksum), Some(state), Some(applied_at)) => Some(LedgerRow {
                    name: r.name.unwrap_or_default(),
                    checksum,
                    state: LedgerState::parse(&state),
                    error: r.error,
                    execution_ms: r.execution_ms.unwrap_or(0),
                    applied_by: r.applied_by.unwrap_or_default(),
                    applied_at,
                }),
                _ => None,
            },
        })
        .collect();
    Ok((tracked, ledger_exists))
}

/// Whether Diesel's table, and taskdb's ledger, are missing.
fn missing_tables(conn: &mut DbConnection) -> Result<(bool, bool)> {
    Ok((
        !sqlstate::table_exists(conn, "__diesel_schema_migrations")?,
        !sqlstate::table_exists(conn, "__taskdb_ledger")?,
    ))
}

/// Creates both tracking tables if absent. Callers hold the migration lock
/// (PostgreSQL) or run this in an IMMEDIATE transaction (SQLite), because
/// concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
pub fn create_tables(conn: &mut DbConnection) -> Result<()> {
    conn.batch_execute(CREATE_DIESEL_TABLE)?;
    conn.batch_execute(CREATE_LEDGER_TABLE)?;
    if conn.backend() == Backend::Postgres {
        add_backfill_columns(conn)?;
    }
    Ok(())
}

/// Adds the backfill columns to a ledger created before them (or before
/// some of them). Asked first, so an up-to-date ledger takes no table lock.
fn add_backfill_columns(conn: &mut DbConnection) -> Result<()> {
    #[derive(QueryableByName)]
    struct Present {
        #[diesel(sql_type = Bool)]
        present: bool,
    }
    let row: Present = diesel::sql_query(
        "SELECT count(*) = 5 AS present FROM pg_attribute
          WHERE attrelid = to_regclass('__taskdb_ledger') AND NOT attisdropped
            AND attname IN ('backfill_key', 'backfill_rows', 'backfill_started_at',
                            'backfill_started_rows', 'backfill_saved_at')",
    )
    .get_result(conn)?;
    if !row.present {
        conn.batch_execute(
            "ALTER TABLE __taskdb_ledger
                 ADD COLUMN IF NOT EXISTS backfill_key TEXT,
                 ADD COLUMN IF NOT EXISTS backfill_rows BIGINT,
                 ADD COLUMN IF NOT EXISTS backfill_started_at TIMESTAMP,
                 ADD COLUMN IF NOT EXISTS backfill_started_rows BIGINT,
                 ADD COLUMN IF NOT EXISTS backfill_saved_at TIMESTAMP",
        )?;
    }
    Ok(())
}

/// Where a backfill migration stands: the last key done and the rows
/// walked up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPosition {
    pub key: String,
    pub rows: i64,
}

/// The position saved for `version`'s backfill, if any (PostgreSQL).
pub fn backfill_position(
    conn: &mut DbConnection,
    version: &str,
) -> Result<Option<BackfillPosition>> {
    #[derive(QueryableByName)]
    struct Saved {
        #[diesel(sql_type = Text)]
        backfill_key: String,
        #[diesel(sql_type = BigInt)]
        backfill_rows: i64,
    }
    let row: Option<Saved> = diesel::sql_query(
        "SELECT backfill_key, backfill_rows FROM __taskdb_ledger
          WHERE version = $1 AND backfill_key IS NOT NULL AND backfill_rows IS NOT NULL",
    )
    .bind::<Text, _>(version)
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| BackfillPosition {
        key: r.backfill_key,
        rows: r.backfill_rows,
    }))
}

/// Marks the start of a run of `version`'s backfill, `rows` already done
/// by earlier runs: its rate is counted from here (the server's clock).
pub fn start_backfill_run(conn: &mut DbConnection, version: &str, rows: i64) -> Result<()> {
    diesel::sql_query(
        "UPDATE __taskdb_ledger
            SET backfill_started_at = clock_timestamp() AT TIME ZONE 'UTC',
                backfill_started_rows = $2, backfill_saved_at = NULL
          WHERE version = $1",
    )
    .bind::<Text, _>(version)
    .bind::<BigInt, _>(rows)
    .execute(conn)?;
    Ok(())
}

/// The rows per second of the latest run of `version`'s backfill, from
/// its start to its last saved batch (`None` before a batch is saved, or
/// in a ledger from before rates).
pub fn backfill_rate(conn: &mut DbConnection, version: &str) -> Result<Option<f64>> {
    #[derive(QueryableByName)]
    struct Rate {
        #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
        rate: Option<f64>,
    }
    let row: Option<Rate> = diesel::sql_query(
        "SELECT (backfill_rows - backfill_started_rows)
                / NULLIF(extract(epoch FROM backfill_saved_at - backfill_started_at), 0)::float8
                AS rate
           FROM __taskdb_ledger WHERE version = $1",
    )
    .bind::<Text, _>(version)
    .get_result(conn)
    .optional()?;
    Ok(row
        .and_then(|r| r.rate)
        .filter(|r| r.is_finite() && *r >= 0.0))
}

/// Saves `version`'s backfill position (in the batch's transaction).
pub fn save_backfill_position(
    conn: &mut DbConnection,
    version: &str,
    position: &BackfillPosition,
) -> Result<()> {
    diesel::sql_query(
        "UPDATE __taskdb_ledger
            SET backfill_key = $2, backfill_rows = $3,
                backfill_saved_at = clock_timestamp() AT TIME ZONE 'UTC'
          WHERE version = $1",
    )
    .bind::<Text, _>(version)
    .bind::<Text, _>(&position.key)
    .bind::<BigInt, _>(position.rows)
    .execute(conn)?;
    Ok(())
}

/// Is `version` in Diesel's table? (Re-checked inside each migration's
/// transaction, so two migrators never apply the same one.)
pub fn is_recorded(conn: &mut DbConnection, version: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = $1",
    )
    .bind::<Text, _>(version)
    .get_result(conn)?;
    Ok(count.n > 0)
}

/// Records `migration` as applied in both tables.
pub fn record_applied(
    conn: &mut DbConnection,
    migration: &LocalMigration,
    execution_ms: i64,
    applied_by: &str,
) -> Result<()> {
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
        .bind::<Text, _>(migration.version())
        .execute(conn)?;
    write_ledger(
        conn,
        migration,
        LedgerState::Applied,
        None,
        execution_ms,
        applied_by,
    )
}

/// Writes (inserts or replaces) the ledger row of `migration`.
pub fn write_ledger(
    conn: &mut DbConnection,
    migration: &LocalMigration,
    state: LedgerState,
    error: Option<&str>,
    execution_ms: i64,
    applied_by: &str,
) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO __taskdb_ledger
             (version, name, checksum, state, error, execution_ms, applied_by, applied_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (version) DO UPDATE SET
             name = excluded.name, checksum = excluded.checksum, state = excluded.state,
             error = excluded.error, execution_ms = excluded.execution_ms,
             applied_by = excluded.applied_by, applied_at = excluded.applied_at",
    )
    .bind::<Text, _>(migration.version())
    .bind::<Text, _>(migration.dir_name())
    .bind::<Text, _>(migration.checksum())
    .bind::<Text, _>(state.as_str())
    .bind::<Nullable<Text>, _>(error)
    .bind::<BigInt, _>(execution_ms)
    .bind::<Text, _>(applied_by)
    .bind::<Timestamp, _>(now_utc())
    .execute(conn)?;
    Ok(())
}

/// Gives a version applied by someone else (the diesel CLI) its ledger row,
/// with the checksum of the SQL compiled into this taskdb.
pub fn record_found_applied(conn: &mut DbConnection, migration: &LocalMigration) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO __taskdb_ledger
             (version, name, checksum, state, error, execution_ms, applied_by, applied_at)
         SELECT $1, $2, $3, 'applied', NULL, 0, 'recorded by taskdb (applied elsewhere)', d.run_on
           FROM __diesel_schema_migrations d
          WHERE d.version = $1
         ON CONFLICT (version) DO NOTHING",
    )
    .bind::<Text, _>(migration.version())
    .bind::<Text, _>(migration.dir_name())
    .bind::<Text, _>(migration.checksum())
    .execute(conn)?;
    Ok(())
}

/// Forgets `version` in both tables (after its `down.sql` ran).
pub fn forget(conn: &mut DbConnection, version: &str) -> Result<()> {
    diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = $1")
        .bind::<Text, _>(version)
        .execute(conn)?;
    forget_ledger(conn, version)
}

/// The ledger state of `version`, if it has a row.
pub fn state(conn: &mut DbConnection, version: &str) -> Result<Option<LedgerState>> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let row: Option<State> =
        diesel::sql_query("SELECT state FROM __taskdb_ledger WHERE version = $1")
            .bind::<Text, _>(version)
            .get_result(conn)
            .optional()?;
    Ok(row.map(|r| LedgerState::parse(&r.state)))
}

/// Removes only the ledger row of `version`.
pub fn forget_ledger(conn: &mut DbConnection, version: &str) -> Result<()> {
    diesel::sql_query("DELETE FROM __taskdb_ledger WHERE version = $1")
        .bind::<Text, _>(version)
        .execute(conn)?;
    Ok(())
}
