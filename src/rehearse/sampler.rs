//! The evidence: a side connection that reads `pg_locks` and
//! `pg_stat_activity` every few milliseconds (which table locks the
//! migration's backends hold, which clients wait and for how long), and
//! catalog snapshots taken before and after each step (rewrites, rows,
//! WAL).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Text};
use diesel::RunQueryDsl;

use super::clients::CLIENT_APPLICATION;
use crate::db::{self, DatabaseUrl, DbConnection};
use crate::error::Result;

/// How often the sampler looks.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Prefix of the migration's connections' `application_name`
/// ([`crate::migrate::Migrator`] names them).
const MIGRATION_APPLICATION: &str = "taskdb-migrate-";

/// The sampler's prepared statement, on its own connection.
const SAMPLE_STATEMENT: &str = "taskdb_rehearse_sample";

/// One table lock seen in one sample.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct LockRow {
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    /// True for the migration's backends, false for a client's.
    #[diesel(sql_type = Bool)]
    pub migration: bool,
    #[diesel(sql_type = Text)]
    pub relation: String,
    /// As `pg_locks` names it, e.g. `AccessExclusiveLock`.
    #[diesel(sql_type = Text)]
    pub mode: String,
    #[diesel(sql_type = Bool)]
    pub granted: bool,
    /// For a lock not granted: how long the backend has waited for it
    /// (`pg_locks.waitstart`), not how long its statement has run (a
    /// request slow under load before it reached the lock did not wait all
    /// that time). 0 for a granted lock.
    #[diesel(sql_type = Double)]
    pub waited_ms: f64,
    /// A waiting backend is blocked by one of the migration's.
    #[diesel(sql_type = Bool)]
    pub blocked_by_migration: bool,
}

/// What one look saw.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub locks: Vec<LockRow>,
}

/// The running sampler.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(url: &DatabaseUrl, clock: Instant) -> Result<Self> {
        let mut conn = db::connect(&url.with_application_name("taskdb-rehearse-sampler"))?;
        // Prepared once: planning the query took about 2 ms, five times its
        // run, and the sampler runs it every 10 ms beside the app.
        conn.batch_execute(&format!("PREPARE {SAMPLE_STATEMENT} AS {}", sample_sql()))?;
        let query = format!("EXECUTE {SAMPLE_STATEMENT}");
        // Fails here, not silently in the thread, if the query is wrong.
        diesel::sql_query(&query).load::<LockRow>(&mut conn)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::SeqCst) && crate::interrupt::received().is_none() {
                let at = clock.elapsed();
                if let Ok(locks) = diesel::sql_query(&query).load::<LockRow>(&mut conn) {
                    samples.push(Sample { at, locks });
                }
                next += SAMPLE_INTERVAL;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            samples
        });
        Ok(Sampler { stop, thread })
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// Table locks of the migration's and the clients' backends, on the app's
/// tables (not the catalog's, nor the tracking tables'; a table created by a transaction that has
/// not committed is not visible yet, and cannot block anyone), and the
/// clients' waits for rows.
fn sample_sql() -> String {
    // One pass over pg_locks: the sampler runs every 10 ms beside the app.
    format!(
        "SELECT l.pid, a.application_name LIKE '{MIGRATION_APPLICATION}%' AS migration,
                CASE WHEN l.locktype = 'relation' THEN c.relname::text
                     -- A client waiting for rows another transaction holds (an
                     -- UPDATE of rows the migration changed and has not
                     -- committed): on the holder's transaction id, or on the
                     -- tuple. Named after the table the client writes.
                     ELSE coalesce(c.relname::text,
                                   (SELECT w.relname::text FROM pg_locks m JOIN pg_class w ON w.oid = m.relation
                                     WHERE m.pid = l.pid AND m.locktype = 'relation' AND m.granted
                                       AND m.mode = 'RowExclusiveLock' AND w.relkind IN ('r', 'p')
                                     ORDER BY w.relname LIMIT 1),
                                   '?') || ' (rows)' END AS relation,
                l.mode::text AS mode, l.granted,
                CAST(CASE WHEN l.granted THEN 0
                          ELSE coalesce(EXTRACT(EPOCH FROM clock_timestamp() - l.waitstart) * 1000, 0) END
                     AS float8) AS waited_ms,
                CASE WHEN l.granted THEN false
                     ELSE EXISTS (SELECT 1 FROM pg_stat_activity b
                                   WHERE b.pid = ANY (pg_blocking_pids(l.pid))
                                     AND b.application_name LIKE '{MIGRATION_APPLICATION}%') END AS blocked_by_migration
           FROM pg_locks l
           JOIN pg_stat_activity a ON a.pid = l.pid
           LEFT JOIN pg_class c ON c.oid = l.relation
           LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE a.datname = current_database()
            AND l.pid <> pg_backend_pid()
            AND (a.application_name LIKE '{MIGRATION_APPLICATION}%' OR a.application_name = '{CLIENT_APPLICATION}')
            AND ((l.locktype = 'relation'
                  AND c.relkind IN ('r', 'p', 'm')
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND c.relname NOT LIKE '\\_\\_%')
                 OR (l.locktype IN ('transactionid', 'tuple') AND NOT l.granted
                     AND a.application_name = '{CLIENT_APPLICATION}'))"
    )
}

/// The catalog around a step.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// By table oid.
    pub tables: BTreeMap<u32, TableState>,
    pub wal_lsn: String,
}

#[derive(Debug, Clone)]
pub struct TableState {
    pub name: String,
    pub relfilenode: u32,
    pub rows: i64,
    /// Non-NULL values per live column, by attnum.
    pub columns: BTreeMap<i32, (String, i64)>,
}

#[derive(diesel::QueryableByName)]
struct TableRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    relfilenode: i64,
}

#[derive(diesel::QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = Integer)]
    attnum: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// The app's tables (public schema, not the tracking tables): file node,
/// rows and non-NULL values per column, counted exactly.
pub fn snapshot(conn: &mut DbConnection) -> Result<Snapshot> {
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT c.oid::bigint AS oid, c.relname::text AS name, c.relfilenode::bigint AS relfilenode
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\\_\\_%'",
    )
    .load(conn)?;
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT a.attrelid::bigint AS oid, CAST(a.attnum AS integer) AS attnum, a.attname::text AS name
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .load(conn)?;
    let mut out = Snapshot::default();
    for t in tables {
        let mine: Vec<&ColumnRow> = columns.iter().filter(|c| c.oid == t.oid).collect();
        let mut select = String::from("json_build_object('*', count(*)");
        for c in &mine {
            select.push_str(&format!(
                ", '{}', count({})",
                c.attnum,
                quote_ident(&c.name)
            ));
        }
        select.push(')');
        let counts: Line = diesel::sql_query(format!(
            "SELECT CAST({select} AS text) AS line FROM public.{}",
            quote_ident(&t.name)
        ))
        .get_result(conn)?;
        let counts: BTreeMap<String, i64> = serde_json::from_str(&counts.line).unwrap_or_default();
        out.tables.insert(
            t.oid as u32,
            TableState {
                rows: counts.get("*").copied().unwrap_or(0),
                columns: mine
                    .iter()
                    .map(|c| {
                        (
                            c.attnum,
                            (
                                c.name.clone(),
                                counts.get(&c.attnum.to_string()).copied().unwrap_or(0),
                            ),
                        )
                    })
                    .collect(),
                name: t.name,
                relfilenode: t.relfilenode as u32,
            },
        );
    }
    out.wal_lsn = diesel::sql_query("SELECT pg_current_wal_lsn()::text AS line")
        .get_result::<Line>(conn)?
        .line;
    Ok(out)
}

/// WAL written on the server since `lsn`.
pub fn wal_since(conn: &mut DbConnection, lsn: &str) -> Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Bytes {
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    Ok(diesel::sql_query(
        "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), CAST($1 AS pg_lsn)) AS bigint) AS bytes",
    )
    .bind::<Text, _>(lsn)
    .get_result::<Bytes>(conn)?
    .bytes)
}

/// An identifier as SQL needs it.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Tables with rows whose file was replaced.
    pub rewrites: Vec<String>,
    /// Rows (or values of a dropped column) gone.
    pub rows_lost: i64,
    /// What was lost, for people.
    pub lost: Vec<String>,
}

pub fn compare(before: &Snapshot, after: &Snapshot) -> Changes {
    let mut changes = Changes::default();
    for (oid, b) in &before.tables {
        match after.tables.get(oid) {
            None => {
                if b.rows > 0 {
                    changes.rows_lost += b.rows;
                    changes
                        .lost
                        .push(format!("table {} ({} rows)", b.name, b.rows));
                }
            }
            Some(a) => {
                if a.relfilenode != b.relfilenode && b.rows > 0 {
                    changes.rewrites.push(a.name.clone());
                }
                if a.rows < b.rows {
                    changes.rows_lost += b.rows - a.rows;
                    changes
                        .lost
                        .push(format!("{} rows of {}", b.rows - a.rows, b.name));
                }
                for (attnum, (column, values)) in &b.columns {
                    if *values > 0 && !a.columns.contains_key(attnum) {
                        changes.rows_lost += values;
                        changes
                            .lost
                            .push(format!("column {}.{column} ({values} values)", b.name));
                    }
                }
            }
        }
    }
    changes
}
