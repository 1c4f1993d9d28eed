//! `taskdb distribute`: turns taskdb's single-node PostgreSQL schema into
//! a Citus one, online, on the coordinator. Plans from the live catalog
//! (so a second run finds nothing to do), applies step by step, and
//! records what it did in `__taskdb_distribution` (shown by `status`).
//!
//! The steps, in order:
//!
//! 1. A unique index on `tasks (user_id, id)`, built `CONCURRENTLY` (an
//!    INVALID one a killed build left is dropped and built again).
//! 2. `tasks`'s primary key swapped to that index (`ALTER TABLE … DROP
//!    CONSTRAINT …, ADD CONSTRAINT … PRIMARY KEY USING INDEX …`): a
//!    catalog change under the lock timeout, retried. Citus only shards a
//!    table whose unique constraints contain the distribution column.
//!    `id` stays unique because only the `tasks_id_seq` sequence (the
//!    `SERIAL` default, evaluated on the coordinator) gives ids; nothing
//!    in taskdb writes an explicit id. The app's queries are unchanged:
//!    every one already names `user_id` and `id`.
//! 3. `users` and `tasks` become **Citus-managed local tables**
//!    (`citus_add_local_table_to_metadata('users', cascade_via_foreign_keys
//!    => true)`): a catalog change under ACCESS EXCLUSIVE on both, which
//!    `create_reference_table` would otherwise make inside the next step,
//!    making that step's write stall the sum of the two.
//! 4. `users` becomes a **reference table** (`create_reference_table`,
//!    one copy on every node, writes blocked while it copies: `users` is
//!    the small table). Its case-insensitive unique email stays: a
//!    reference table may have any unique index.
//!
//!    Steps 3 and 4 lock `tasks` and `users` (ACCESS EXCLUSIVE, which is
//!    what Citus takes on both) explicitly, `tasks` first: the order of
//!    the app's inserts, which lock `tasks` and then `users` (the foreign
//!    key check). Citus on its own takes `users` first; with writers going
//!    on, each of them then held `tasks` waiting for `users` while the
//!    step held `users` waiting for `tasks`, until the lock timeout ended
//!    the step (retried, the writers stalled each time) or the deadlock
//!    detector ended a writer.
//!    The coordinator must be in Citus's metadata (group 0,
//!    `citus_set_coordinator_host`) so that it holds a copy too: then the
//!    login lookup reads that local copy, where otherwise every login
//!    would cross to a worker and back. `distribute` refuses a
//!    coordinator that is not registered, and a reference table without
//!    the coordinator's copy (the coordinator registered after it) gets
//!    it by `replicate_reference_tables` in this step.
//! 5. `tasks` becomes **distributed by `user_id`**
//!    (`create_distributed_table_concurrently`): it takes SHARE UPDATE
//!    EXCLUSIVE, which no read or write waits for, and moves the rows by
//!    logical replication while writes go on (the coordinator needs
//!    `wal_level = logical`). The cascading foreign key to `users` stays
//!    (distributed → reference is allowed).
//!
//! Both tables have the `updated_at` trigger. Citus refuses to distribute
//! a table with triggers unless `citus.enable_unsafe_triggers` is on: a
//! trigger then runs on the worker, against the shard, and Citus cannot
//! make SQL *inside* it that touches other tables or shards consistent
//! (hence "unsafe"). taskdb's trigger only sets `NEW.updated_at` on its
//! own row, which is safe. The setting is on for this run's session, and
//! set on the database (`ALTER DATABASE … SET`) so that later migrations
//! and rollbacks that create such a trigger work too.
//!
//! PostgreSQL only, and only with the Citus extension in the database.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::PgConnection;

use crate::db::sqlstate::{self, SqlState};
use crate::error::{Error, Result};

/// The table that records each step: `step`, `done_at`, `elapsed_ms`.
pub const RECORD_TABLE: &str = "__taskdb_distribution";

/// The unique index that becomes `tasks`'s primary key.
pub const TASKS_KEY_INDEX: &str = "tasks_user_id_id_key";

/// One step of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The unique index on `tasks (user_id, id)`, built CONCURRENTLY.
    TasksKeyIndex,
    /// `tasks`'s primary key becomes `(user_id, id)`.
    TasksPrimaryKey,
    /// `users` and `tasks` become Citus-managed local tables.
    CitusLocalTables,
    /// `users` becomes a reference table.
    UsersReference,
    /// `tasks` becomes distributed by `user_id`.
    TasksDistributed,
}

impl StepKind {
    pub const ALL: [StepKind; 5] = [
        StepKind::TasksKeyIndex,
        StepKind::TasksPrimaryKey,
        StepKind::CitusLocalTables,
        StepKind::UsersReference,
        StepKind::TasksDistributed,
    ];

    /// Its name in `__taskdb_distribution` and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::TasksKeyIndex => "tasks_key_index",
            StepKind::TasksPrimaryKey => "tasks_primary_key",
            StepKind::CitusLocalTables => "citus_local_tables",
            StepKind::UsersReference => "users_reference",
            StepKind::TasksDistributed => "tasks_distributed",
        }
    }

    /// What it does, for people.
    pub fn describe(self) -> &'static str {
        match self {
            StepKind::TasksKeyIndex => {
                "build a unique index on tasks (user_id, id) CONCURRENTLY (writes go on)"
            }
            StepKind::TasksPrimaryKey => {
                "make it tasks's primary key in place of (id), under the lock timeout (a catalog change)"
            }
            StepKind::CitusLocalTables => {
                "add users and tasks to Citus's metadata as local tables, locking tasks first as the app's inserts do (a catalog change: writes wait for it)"
            }
            StepKind::UsersReference => {
                "make users a reference table, one copy on every node and the coordinator, where logins read it (writes to users wait while it copies)"
            }
            StepKind::TasksDistributed => {
                "distribute tasks by user_id, concurrently (writes go on while rows move to the workers)"
            }
        }
    }
}

/// A step and whether the database already has what it makes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub kind: StepKind,
    pub done: bool,
    /// The SQL it runs (empty when done).
    pub sql: Vec<String>,
}

/// What `distribute` would do to this database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The Citus extension's version in this database.
    pub citus_version: String,
    /// The nodes that hold shards (workers), as `host:port`.
    pub workers: Vec<String>,
    /// The coordinator as Citus's metadata has it (group 0), `host:port`.
    pub coordinator: String,
    pub steps: Vec<Step>,
}

impl Plan {
    /// Nothing left to do.
    pub fn is_done(&self) -> bool {
        self.steps.iter().all(|s| s.done)
    }
}

/// How `apply` bounds its lock waits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long one catalog change may wait for its lock before it is
    /// rolled back and retried.
    pub lock_timeout: Duration,
    /// How many times.
    pub lock_retries: u32,
    /// How many shards `tasks` gets; `None`: Citus's `citus.shard_count`
    /// (32 unless set). Fewer shards make the end of the concurrent
    /// distribution, which blocks writes while it switches every shard
    /// over, shorter; more allow more workers before a shard must be split.
    pub shard_count: Option<u32>,
}

/// What `apply` reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Starting(StepKind),
    Done(StepKind, Duration),
    /// A catalog change waited past the lock timeout; retried.
    LockTimeout {
        step: StepKind,
        attempt: u32,
        retry_in: Duration,
    },
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<Text>)]
    v: Option<String>,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    b: bool,
}

fn text(conn: &mut PgConnection, sql: &str) -> Result<Option<String>> {
    let rows: Vec<Value> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().next().and_then(|r| r.v))
}

fn flag(conn: &mut PgConnection, sql: &str) -> Result<bool> {
    Ok(diesel::sql_query(sql).get_result::<Flag>(conn)?.b)
}

/// The Citus extension's version in this database, or `None`.
pub fn citus_version(conn: &mut PgConnection) -> Result<Option<String>> {
    text(
        conn,
        "SELECT extversion AS v FROM pg_extension WHERE extname = 'citus'",
    )
}

/// How Citus holds a table: `reference`, `distributed by <column>`,
/// `local` (Citus-managed) or `None` when Citus does not know it. Needs
/// the Citus extension.
fn citus_kind(conn: &mut PgConnection, table: &str) -> Result<Option<String>> {
    text(
        conn,
        &format!(
            "SELECT CASE
                      WHEN p.repmodel = 't' THEN 'reference'
                      WHEN p.partmethod = 'h' THEN 'distributed by ' || column_to_column_name(p.logicalrelid, p.partkey)
                      ELSE 'local'
                    END AS v
               FROM pg_dist_partition p
              WHERE p.logicalrelid = to_regclass('{table}')"
        ),
    )
}

/// The columns of `tasks`'s primary key, comma-separated, and its name.
fn tasks_primary_key(conn: &mut PgConnection) -> Result<Option<(String, String)>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        columns: String,
    }
    let rows: Vec<Key> = diesel::sql_query(
        "SELECT c.conname::text AS name,
                string_agg(a.attname::text, ',' ORDER BY k.ord) AS columns
           FROM pg_constraint c
           CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
          WHERE c.conrelid = 'tasks'::regclass AND c.contype = 'p'
          GROUP BY c.conname",
    )
    .load(conn)?;
    Ok(rows.into_iter().next().map(|k| (k.name, k.columns)))
}

/// True when `table` is a reference table with a copy (placement) on the
/// coordinator (group 0), where reads of it then run locally.
fn placed_on_coordinator(conn: &mut PgConnection, table: &str) -> Result<bool> {
    flag(
        conn,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
                             WHERE s.logicalrelid = to_regclass('{table}') AND p.groupid = 0) AS b"
        ),
    )
}

/// The coordinator's entry in Citus's metadata (group 0), as `host:port`.
fn coordinator(conn: &mut PgConnection) -> Result<Option<String>> {
    text(
        conn,
        "SELECT nodename || ':' || nodeport AS v FROM pg_dist_node
          WHERE groupid = 0 AND noderole = 'primary' LIMIT 1",
    )
}

/// The state of the key index: `None` (absent), `Some(true)` valid,
/// `Some(false)` INVALID (a concurrent build that did not finish).
fn key_index(conn: &mut PgConnection) -> Result<Option<bool>> {
    let rows: Vec<Flag> = diesel::sql_query(format!(
        "SELECT i.indisvalid AS b FROM pg_index i
           WHERE i.indexrelid = to_regclass('{TASKS_KEY_INDEX}')"
    ))
    .load(conn)?;
    Ok(rows.into_iter().next().map(|f| f.b))
}

/// Refuses, in one line, unless this is a Citus coordinator with
/// taskdb's tables in place.
fn check(conn: &mut PgConnection) -> Result<String> {
    let Some(version) = citus_version(conn)? else {
        return Err(Error::MigrationState(
            "this database has no Citus extension: `taskdb distribute` needs a Citus coordinator (shared_preload_libraries = 'citus', CREATE EXTENSION citus, workers added with citus_add_node); nothing changed".into(),
        ));
    };
    if !flag(
        conn,
        "SELECT to_regclass('tasks') IS NOT NULL AND to_regclass('users') IS NOT NULL AS b",
    )? {
        return Err(Error::MigrationState(
            "tasks and users do not exist yet: run `taskdb migrate` first; nothing changed".into(),
        ));
    }
    Ok(version)
}

/// The plan for this database, from its catalog, with Citus's default
/// shard count.
pub fn plan(conn: &mut PgConnection) -> Result<Plan> {
    plan_with(conn, None)
}

/// [`plan`] giving `tasks` `shard_count` shards (`None`: Citus's default).
pub fn plan_with(conn: &mut PgConnection, shard_count: Option<u32>) -> Result<Plan> {
    let citus_version = check(conn)?;
    #[derive(QueryableByName)]
    struct Node {
        #[diesel(sql_type = Text)]
        v: String,
    }
    let workers: Vec<Node> = diesel::sql_query(
        "SELECT nodename || ':' || nodeport AS v FROM pg_dist_node
          WHERE shouldhaveshards AND noderole = 'primary' AND isactive ORDER BY nodeid",
    )
    .load(conn)?;
    let key = tasks_primary_key(conn)?;
    let users = citus_kind(conn, "users")?;
    let users_done = users.as_deref() == Some("reference") && placed_on_coordinator(conn, "users")?;
    let Some(coordinator) = coordinator(conn)? else {
        return Err(Error::MigrationState(
            "the coordinator is not in Citus's metadata, so it would hold no copy of the reference table users and every login would read it on a worker: run SELECT citus_set_coordinator_host('<host the workers reach the coordinator at>', <port>) on the coordinator first; nothing changed".into(),
        ));
    };
    let key_swapped = key.as_ref().is_some_and(|(_, c)| c == "user_id,id");
    let index = key_index(conn)?;
    let tasks = citus_kind(conn, "tasks")?;
    let pkey_name = key
        .as_ref()
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| "tasks_pkey".into());

    let mut steps = Vec::new();
    let mut index_sql = Vec::new();
    if index == Some(false) {
        index_sql.push(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {TASKS_KEY_INDEX}"
        ));
    }
    index_sql.push(format!(
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {TASKS_KEY_INDEX} ON tasks (user_id, id)"
    ));
    let index_done = key_swapped || index == Some(true);
    steps.push(Step {
        kind: StepKind::TasksKeyIndex,
        done: index_done,
        sql: if index_done { vec![] } else { index_sql },
    });
    steps.push(Step {
        kind: StepKind::TasksPrimaryKey,
        done: key_swapped,
        sql: if key_swapped {
            vec![]
        } else {
            vec![format!(
                "ALTER TABLE tasks DROP CONSTRAINT {pkey_name}, ADD CONSTRAINT {pkey_name} PRIMARY KEY USING INDEX {TASKS_KEY_INDEX}"
            )]
        },
    });
    // Both tables locked as the app's inserts lock them: tasks, then users.
    let locks = [
        "LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE",
        "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
    ];
    if users.is_some() && tasks.is_none() {
        return Err(Error::MigrationState(
            "users is already Citus's but tasks, which references it, is not (users was made a reference table by hand without the coordinator in Citus's metadata?): distribute tasks by hand (SELECT create_distributed_table('tasks', 'user_id'), which blocks writes while it copies), then rerun; nothing changed".into(),
        ));
    }
    let local_done = users.is_some();
    steps.push(Step {
        kind: StepKind::CitusLocalTables,
        done: local_done,
        sql: if local_done {
            vec![]
        } else {
            locks
                .iter()
                .map(|l| l.to_string())
                .chain(["SELECT citus_add_local_table_to_metadata('users', cascade_via_foreign_keys => true)".to_string()])
                .collect()
        },
    });
    steps.push(Step {
        kind: StepKind::UsersReference,
        done: users_done,
        sql: if users_done {
            vec![]
        } else if users.as_deref() == Some("reference") {
            // Registered after users became a reference table: the
            // coordinator's copy is still missing.
            vec!["SELECT replicate_reference_tables('block_writes')".into()]
        } else {
            std::iter::once("SET citus.enable_unsafe_triggers = on".to_string())
                .chain(locks.iter().map(|l| l.to_string()))
                .chain(["SELECT create_reference_table('users')".to_string()])
                .collect()
        },
    });
    let tasks_done = tasks.as_deref() == Some("distributed by user_id");
    steps.push(Step {
        kind: StepKind::TasksDistributed,
        done: tasks_done,
        sql: if tasks_done {
            vec![]
        } else {
            vec![
                "SET citus.enable_unsafe_triggers = on".into(),
                match shard_count {
                    Some(n) => format!(
                        "SELECT create_distributed_table_concurrently('tasks', 'user_id', shard_count => {n})"
                    ),
                    None => {
                        "SELECT create_distributed_table_concurrently('tasks', 'user_id')".into()
                    }
                },
            ]
        },
    });
    if let Some(kind) = tasks.as_deref() {
        if kind.starts_with("distributed") && !tasks_done {
            return Err(Error::MigrationState(format!(
                "tasks is already {kind}, not by user_id: taskdb's queries are routed by user_id; undistribute it first (SELECT undistribute_table('tasks')); nothing changed"
            )));
        }
    }
    Ok(Plan {
        citus_version,
        workers: workers.into_iter().map(|n| n.v).collect(),
        coordinator,
        steps,
    })
}

/// Applies the plan's steps that are not done yet, in order, recording
/// each. Call [`plan`] first; a step that another run finished in the
/// meantime finds its work done (`IF NOT EXISTS`) or is planned done.
pub fn apply(
    conn: &mut PgConnection,
    options: Options,
    mut report: impl FnMut(Event),
) -> Result<Plan> {
    let plan = plan_with(conn, options.shard_count)?;
    conn.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (
             step VARCHAR(64) PRIMARY KEY NOT NULL,
             done_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
             elapsed_ms BIGINT NOT NULL
         )"
    ))?;
    if !plan.is_done() {
        // See the module's comment: the updated_at trigger on both tables.
        conn.batch_execute(
            "SET citus.enable_unsafe_triggers = on;
             DO $$ BEGIN
               EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
             END $$",
        )?;
    }
    for step in plan.steps.iter().filter(|s| !s.done) {
        report(Event::Starting(step.kind));
        let started = Instant::now();
        match step.kind {
            StepKind::TasksKeyIndex => {
                for sql in &step.sql {
                    conn.batch_execute(sql)?;
                }
            }
            StepKind::TasksDistributed => {
                for sql in &step.sql {
                    conn.batch_execute(sql)?;
                }
                // The table's former single shard (and the split's helper
                // shards) are dropped later by Citus's maintenance daemon;
                // until then they would show in the catalog (verify).
                conn.batch_execute("CALL citus_cleanup_orphaned_resources()")?;
            }
            StepKind::TasksPrimaryKey | StepKind::CitusLocalTables | StepKind::UsersReference => {
                with_lock_retries(conn, step, options, &mut report)?;
            }
        }
        let elapsed = started.elapsed();
        conn.batch_execute(&format!(
            "INSERT INTO {RECORD_TABLE} (step, elapsed_ms) VALUES ('{}', {})
             ON CONFLICT (step) DO UPDATE SET done_at = EXCLUDED.done_at, elapsed_ms = EXCLUDED.elapsed_ms",
            step.kind.as_str(),
            elapsed.as_millis()
        ))?;
        report(Event::Done(step.kind, elapsed));
    }
    plan_with(conn, options.shard_count)
}

/// A catalog change in its own transaction under `SET LOCAL
/// lock_timeout`, rolled back and retried when the lock does not come.
fn with_lock_retries(
    conn: &mut PgConnection,
    step: &Step,
    options: Options,
    report: &mut impl FnMut(Event),
) -> Result<()> {
    // The SET of the plan's text is the session's already (`apply`).
    let body: Vec<&str> = step
        .sql
        .iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("SET "))
        .collect();
    let sql = format!(
        "BEGIN;
         SET LOCAL lock_timeout = '{}ms';
         {};
         COMMIT;",
        options.lock_timeout.as_millis().max(1),
        body.iter()
            .map(|b| sqlstate::trap(b, &[SqlState::LockNotAvailable]))
            .collect::<Vec<_>>()
            .join(";\n")
    );
    let mut attempt = 0;
    loop {
        match conn.batch_execute(&sql) {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = conn.batch_execute("ROLLBACK");
                if sqlstate::trapped(&e) != Some(SqlState::LockNotAvailable) {
                    return Err(e.into());
                }
                if attempt >= options.lock_retries {
                    return Err(Error::MigrationState(format!(
                        "distribute: `{}` could not get its lock within {:?} in {} attempts: a long transaction holds it (see pg_stat_activity), or raise --lock-timeout / --lock-retries; the steps before it are done and recorded, rerun to go on",
                        step.kind.describe(),
                        options.lock_timeout,
                        attempt + 1
                    )));
                }
                attempt += 1;
                let retry_in = crate::migrate::apply::retry_delay(attempt);
                report(Event::LockTimeout {
                    step: step.kind,
                    attempt,
                    retry_in,
                });
                std::thread::sleep(retry_in);
            }
        }
    }
}

/// How the tables are held, for `status`: `None` without Citus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Distribution {
    pub citus_version: String,
    /// `reference`, `distributed by user_id`, `local`, or `not distributed`.
    pub users: String,
    pub tasks: String,
    /// Steps recorded by `distribute`, oldest first: (step, done at).
    pub recorded: Vec<(String, String)>,
}

/// What `status` shows about Citus: `None` when the database has no
/// Citus extension.
pub fn distribution(conn: &mut PgConnection) -> Result<Option<Distribution>> {
    let Some(citus_version) = citus_version(conn)? else {
        return Ok(None);
    };
    let users = citus_kind(conn, "users")?.unwrap_or_else(|| "not distributed".into());
    let tasks = citus_kind(conn, "tasks")?.unwrap_or_else(|| "not distributed".into());
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        step: String,
        #[diesel(sql_type = Text)]
        done_at: String,
    }
    let recorded: Vec<Row> = if flag(
        conn,
        &format!("SELECT to_regclass('{RECORD_TABLE}') IS NOT NULL AS b"),
    )? {
        diesel::sql_query(format!(
            "SELECT step::text AS step, to_char(done_at, 'YYYY-MM-DD HH24:MI:SS') AS done_at
               FROM {RECORD_TABLE} ORDER BY done_at, step"
        ))
        .load(conn)?
    } else {
        Vec::new()
    };
    Ok(Some(Distribution {
        citus_version,
        users,
        tasks,
        recorded: recorded.into_iter().map(|r| (r.step, r.done_at)).collect(),
    }))
}

/// True when `tasks` is distributed by `user_id` (its primary key is then
/// `(user_id, id)`): what `verify` expects of such a database.
pub fn tasks_distributed(conn: &mut PgConnection) -> Result<bool> {
    if citus_version(conn)?.is_none() {
        return Ok(false);
    }
    Ok(citus_kind(conn, "tasks")?.as_deref() == Some("distributed by user_id"))
}

/// The schema the migrations build, as it looks once `distribute` has run:
/// `tasks`'s primary key is `(user_id, id)`. What `verify` compares a
/// distributed database with.
pub fn as_distributed(expected: &mut crate::catalog::Schema) {
    use crate::catalog::ConstraintKind;
    let Some(tasks) = expected.tables.get_mut("tasks") else {
        return;
    };
    let key = vec!["user_id".to_string(), "id".to_string()];
    for c in &mut tasks.constraints {
        if c.kind == ConstraintKind::PrimaryKey {
            c.columns = key.clone();
            c.definition = "PRIMARY KEY (user_id, id)".into();
        }
    }
    for i in &mut tasks.indexes {
        if i.primary {
            i.columns = key.clone();
            i.definition = i.definition.replace("btree (id)", "btree (user_id, id)");
        }
    }
}
