//! Test support: a real database per test, from `taskdb::testing` (the
//! same API a backend's tests use), plus helpers for taskdb's own tests.
//!
//! The server is `TASKDB_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/test` starts it.

/// See [`TestDb::before_alter`].
pub const BEFORE_ALTER: &str = "2026-02-08-000010";

pub mod backfill;
pub mod checkout;
pub mod cluster;
pub mod pgbouncer;
pub mod process;
pub mod role;
pub mod secrets;
pub mod server;
pub mod wire_proxy;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use taskdb::db::{self, AnyConnection, Backend, DatabaseUrl};

pub const BOTH: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var(taskdb::testing::SERVER_VARIABLE)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// URL of database `name` on the test server.
pub fn pg_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

pub fn admin() -> PgConnection {
    PgConnection::establish(&admin_url()).unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL server at {}: {e}. Start it (scripts/test does).",
            admin_url()
        )
    })
}

/// A database that exists for one test: [`taskdb::testing::TestDb`] (a
/// template clone on PostgreSQL, a template copy on SQLite, dropped with
/// it), with what taskdb's own tests do to it.
pub struct TestDb {
    pub backend: Backend,
    /// The URL as the CLI and other programs get it.
    url: String,
    sqlite_path: Option<PathBuf>,
    inner: taskdb::testing::TestDb,
}

impl TestDb {
    /// An empty database: no tables at all.
    pub fn empty(backend: Backend) -> Self {
        Self::wrap(taskdb::testing::TestDb::empty(backend).unwrap())
    }

    /// A database migrated to the latest version.
    pub fn migrated(backend: Backend) -> Self {
        Self::wrap(taskdb::testing::TestDb::new(backend).unwrap())
    }

    fn wrap(inner: taskdb::testing::TestDb) -> Self {
        let sqlite_path = inner.sqlite_path();
        let url = match (inner.name(), &sqlite_path) {
            (Some(name), _) => pg_url(name),
            (None, Some(path)) => format!("sqlite://{}", path.display()),
            (None, None) => unreachable!("a test database is a PostgreSQL database or a file"),
        };
        TestDb {
            backend: inner.backend(),
            url,
            sqlite_path,
            inner,
        }
    }

    /// The URL as a string (for the CLI).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A PostgreSQL database migrated up to the last migration before the
    /// first one that ALTERs `tasks` (it needs an ACCESS EXCLUSIVE lock, so
    /// a reader's open transaction blocks it): for lock-wait tests.
    pub fn before_alter() -> Self {
        Self::migrated_to(Backend::Postgres, BEFORE_ALTER)
    }

    /// A database migrated by the binary up to and including `version`.
    pub fn migrated_to(backend: Backend, version: &str) -> Self {
        let db = Self::empty(backend);
        db.taskdb()
            .args(["migrate", "--to", version])
            .assert()
            .success();
        db
    }

    /// The URL through `bouncer` when given, else straight to the server.
    pub fn url_via(&self, bouncer: Option<&pgbouncer::PgBouncer>) -> String {
        match bouncer {
            Some(b) => b.url(self.pg_name().unwrap()),
            None => self.url.clone(),
        }
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.url).unwrap()
    }

    pub fn conn(&self) -> AnyConnection {
        db::connect(&self.database_url()).unwrap()
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The PostgreSQL database name.
    pub fn pg_name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// Runs SQL directly (simple protocol, several statements allowed).
    pub fn execute(&self, sql: &str) {
        self.conn()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A single number from a query such as `SELECT COUNT(*) …`.
    pub fn scalar(&self, sql: &str) -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({sql})"
        )))
        .get_result(&mut self.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of a query whose single text column is named `line`.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        query_lines(&mut self.conn(), sql)
    }

    /// The `taskdb` binary, pointed at this database, run in an empty
    /// directory with no DATABASE_URL inherited.
    pub fn taskdb(&self) -> assert_cmd::Command {
        taskdb_at(&self.url)
    }
}

/// The binary with a clean environment and an empty working directory.
pub fn taskdb_cmd() -> assert_cmd::Command {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let mut cmd = assert_cmd::Command::cargo_bin("taskdb").unwrap();
    cmd.current_dir(dir.path()).without_taskdb_env();
    cmd
}

/// [`taskdb_cmd`] pointed at `url` (`--database-url url`).
pub fn taskdb_at(url: &str) -> assert_cmd::Command {
    let mut cmd = taskdb_cmd();
    cmd.args(["--database-url", url]);
    cmd
}

/// The variables through which the shell running the tests would choose
/// the binary's database or change how long it waits: a test that wants
/// one sets it itself.
pub const TASKDB_ENV: [&str; 4] = [
    "DATABASE_URL",
    "DIRECT_DATABASE_URL",
    "TASKDB_LOCK_TIMEOUT",
    "TASKDB_SQLITE_BUSY_TIMEOUT",
];

/// Removes [`TASKDB_ENV`] from a command's environment, for both kinds of
/// command the tests build (a variable set after this call still counts).
pub trait WithoutTaskdbEnv {
    fn without_taskdb_env(&mut self) -> &mut Self;
}

impl WithoutTaskdbEnv for std::process::Command {
    fn without_taskdb_env(&mut self) -> &mut Self {
        for name in TASKDB_ENV {
            self.env_remove(name);
        }
        self
    }
}

impl WithoutTaskdbEnv for assert_cmd::Command {
    fn without_taskdb_env(&mut self) -> &mut Self {
        for name in TASKDB_ENV {
            self.env_remove(name);
        }
        self
    }
}

/// A port on 127.0.0.1 where nothing listens (the listener that found it
/// free is closed again at once): a closed port for connections that must
/// fail, or a port for a test server to listen on.
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a query whose single text column is named `line`.
pub fn query_lines(conn: &mut AnyConnection, sql: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Runs `$body(db)` once per backend, each in its own `#[test]`:
/// `both_backends!(name, |db| { … })`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $kind:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($db: $crate::common::TestDb) $body
            #[test]
            fn postgres() {
                run($crate::common::TestDb::$kind(taskdb::Backend::Postgres));
            }
            #[test]
            fn sqlite() {
                run($crate::common::TestDb::$kind(taskdb::Backend::Sqlite));
            }
        }
    };
}

/// A catalog dump of the PostgreSQL schema, stable across runs: columns,
/// indexes, constraints, triggers and functions of the public schema. The
/// ledger's backfill columns (backfill_…) are left out: `migrate` adds them to a ledger
/// from before them (as a template database built by an older taskdb has).
pub fn pg_schema_dump(db: &TestDb) -> Vec<String> {
    db.rows(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || \
            coalesce(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line \
           FROM information_schema.columns WHERE table_schema = 'public' \
            AND NOT (table_name = '__taskdb_ledger' AND column_name LIKE 'backfill%') \
         UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated \
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal \
         UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
         ORDER BY 1",
    )
}

/// The same for SQLite: the normalised `sqlite_master` entries.
pub fn sqlite_schema_dump(db: &TestDb) -> Vec<String> {
    db.rows(
        "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS line FROM sqlite_master \
          WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
}

/// The schema dump for whichever backend `db` is.
pub fn schema_dump(db: &TestDb) -> Vec<String> {
    match db.backend {
        Backend::Postgres => pg_schema_dump(db),
        Backend::Sqlite => sqlite_schema_dump(db),
    }
}
