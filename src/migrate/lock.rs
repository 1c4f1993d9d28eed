//! The migration lock: one migrator at a time per database.
//!
//! PostgreSQL: a second connection opens a transaction and takes a
//! transaction-level advisory lock, held until the run ends. A transaction
//! pins its server connection even behind a transaction pooler (PgBouncer
//! in transaction mode), where a session-level advisory lock would be held
//! by whichever server connection ran it and leak. The lock is polled with
//! `pg_try_advisory_xact_lock` and the transaction ended between tries, so
//! waiting migrators do not pin pooler connections the holder needs. An
//! idle transaction that holds only an advisory lock has no snapshot, so it
//! does not hold up `CREATE INDEX CONCURRENTLY`. If the holder dies, the
//! server ends its transaction and the lock is free.
//!
//! The holder sits idle in its transaction for the whole run, which is
//! what `idle_in_transaction_session_timeout` (and `transaction_timeout`)
//! ends. So the transaction switches off every such limit a database or a
//! role may set, for itself only (`SET LOCAL`, which a transaction pooler
//! keeps on the transaction's server connection, where a session `SET`
//! would leak to the pooler's next client). Should the server end the
//! holder anyway (a terminated backend, a restart), [`MigrationLock::
//! ensure_held`] says so before the next step, and the run stops there.
//!
//! SQLite: the database file lock. Each migration runs in a `BEGIN
//! IMMEDIATE` transaction that re-checks whether it is still pending, so no
//! lock object is needed here.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::{self, sqlstate, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::interrupt::CancelGuard;

/// Advisory lock key: "taskdb" in ASCII.
pub const ADVISORY_LOCK_KEY: i64 = 0x7461_736b_6462;

/// Limits a database or role may set that would end the holder's long idle
/// transaction (or a statement of it), off for this transaction only. Read
/// from `pg_settings` so a server without one (`idle_session_timeout`
/// before 14, `transaction_timeout` before 17) is no error. Also a simple
/// query, which ends the snapshot of the extended-protocol queries before
/// it (see `acquire_watched`).
const NO_LIMITS_IN_THIS_TRANSACTION: &str = "SELECT set_config(name, '0', true) FROM pg_settings
  WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout',
                 'statement_timeout', 'idle_session_timeout', 'lock_timeout')";

/// Keeps a direct connection of a migration run from being ended while it
/// waits between statements (for the lock, or between retries), whatever
/// `idle_session_timeout` the database or role sets. Behind a transaction
/// pooler the server connection is the pooler's, so nothing is set there.
///
/// On a Citus coordinator (the setting exists only where Citus is loaded)
/// the same query turns on `citus.propagate_set_commands = 'local'`: a
/// step's `SET LOCAL lock_timeout` then reaches the transactions Citus
/// opens on the workers for the step's DDL on each shard. Without it (its
/// default is `none`) a step waits without limit behind a lock held on a
/// shard, and the app's queries on that shard queue behind the step.
pub(crate) fn keep_session_alive(conn: &mut DbConnection, url: &DatabaseUrl) -> Result<()> {
    if url.backend() != db::Backend::Postgres || url.is_pooled() {
        return Ok(());
    }
    conn.batch_execute(
        "SELECT set_config(name, CASE name WHEN 'idle_session_timeout' THEN '0' ELSE 'local' END, false)
           FROM pg_settings WHERE name IN ('idle_session_timeout', 'citus.propagate_set_commands')",
    )?;
    Ok(())
}

/// Held for the length of a migration run; released on drop.
pub struct MigrationLock {
    /// The PostgreSQL connection whose open transaction holds the lock.
    holder: Option<DbConnection>,
}

impl MigrationLock {
    /// Takes the lock, calling `on_wait` once if another migrator holds it.
    #[cfg(feature = "cli")]
    pub fn acquire(url: &DatabaseUrl, on_wait: impl FnMut()) -> Result<Self> {
        Self::acquire_watched(url, None, on_wait)
    }

    /// [`acquire`](Self::acquire), and once the lock is held `cancel`
    /// watches the connection holding it, so a signal cancels only what
    /// this process opened.
    pub fn acquire_watched(
        url: &DatabaseUrl,
        cancel: Option<&CancelGuard>,
        mut on_wait: impl FnMut(),
    ) -> Result<Self> {
        if url.backend() == db::Backend::Sqlite {
            return Ok(MigrationLock { holder: None });
        }
        let mut conn = db::connect(url)?;
        keep_session_alive(&mut conn, url)?;
        let started = Instant::now();
        let mut told = false;
        let mut attempt: u32 = 0;
        loop {
            conn.batch_execute("BEGIN")
                .map_err(|e| refuse_statement_pooling(url, e))?;
            if try_lock(&mut conn)? {
                // Learned inside the transaction that holds the lock: behind
                // a transaction pooler only that pins the server backend, so
                // the PID stays this connection's for the whole run.
                if let Some(cancel) = cancel {
                    cancel.watch(&mut conn)?;
                }
                // The extended-protocol queries above leave their portal,
                // and with it a snapshot, open until the next query; a
                // snapshot would make CREATE INDEX CONCURRENTLY wait for
                // this transaction. This simple query drops it.
                conn.batch_execute(NO_LIMITS_IN_THIS_TRANSACTION)?;
                return Ok(MigrationLock { holder: Some(conn) });
            }
            conn.batch_execute("ROLLBACK")?;
            if crate::interrupt::received().is_some() {
                return Err(Error::interrupted_leaving(
                    "it was waiting for another migrator's lock, so no migration was in progress; run the command again to finish",
                ));
            }
            if !told {
                on_wait();
                told = true;
            }
            attempt += 1;
            std::thread::sleep(poll_delay(attempt, started.elapsed()));
        }
    }

    /// Fails, with the reason, unless the lock is still this run's: its
    /// connection answers and its transaction still holds the advisory
    /// lock. Called before each step.
    pub fn ensure_held(&mut self) -> std::result::Result<(), String> {
        let Some(conn) = self.holder.as_mut() else {
            return Ok(());
        };
        // One simple query (it leaves no snapshot behind) that fails unless
        // this backend holds the lock.
        let check = format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_locks
                               WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                                 AND classid = {hi} AND objid = {lo} AND objsubid = 1) THEN
                 RAISE EXCEPTION 'the lock is no longer held by this connection';
               END IF;
             END $$",
            hi = ADVISORY_LOCK_KEY >> 32,
            lo = ADVISORY_LOCK_KEY & 0xffff_ffff,
        );
        conn.batch_execute(&check)
            .map_err(|e| db::one_line(&e.to_string()))
    }

    /// Ends the holder's transaction now (also done on drop). If the
    /// server ended it already, the lock went with it: nothing to do.
    pub fn release(mut self) -> Result<()> {
        if let Some(mut conn) = self.holder.take() {
            let _ = conn.batch_execute("COMMIT");
        }
        Ok(())
    }
}

impl Drop for MigrationLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.holder.take() {
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

/// A pooler in statement mode cannot keep a transaction open: neither the
/// lock nor a transactional migration can be made safe through it.
fn refuse_statement_pooling(url: &DatabaseUrl, e: diesel::result::Error) -> Error {
    // PgBouncer answers BEGIN in statement mode with a FATAL and closes the
    // connection; libpq often reports only the close. On a connection that
    // just answered queries, a close at BEGIN means that pooler.
    if sqlstate::is_connection_lost(&e) {
        Error::MigrationState(format!(
            "refusing to migrate through {}: the connection was closed when a transaction began, as a pooler in statement mode does, and migrations need a transaction for their lock and each step; set DIRECT_DATABASE_URL to a direct connection to the server (migrations prefer it)",
            url.redacted()
        ))
    } else {
        Error::Query(e)
    }
}

fn try_lock(conn: &mut DbConnection) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let row: Locked = diesel::sql_query(format!(
        "SELECT pg_try_advisory_xact_lock({ADVISORY_LOCK_KEY}) AS locked"
    ))
    .get_result(conn)?;
    Ok(row.locked)
}

/// 20 ms growing to 250 ms, with jitter from the clock so racing migrators
/// do not poll in step.
fn poll_delay(attempt: u32, waited: Duration) -> Duration {
    let base = (20 * u64::from(attempt.min(12))).min(250);
    let jitter = u64::from(waited.subsec_micros() % 20);
    Duration::from_millis(base + jitter)
}
