//! Test support: a real database per test.
//!
//! PostgreSQL: the first test in a process migrates a template database
//! (named after a hash of the migrations, so an edit makes a new one, and
//! built under an advisory lock, so parallel test processes build it once);
//! each test then gets `CREATE DATABASE t_<random> TEMPLATE …`, dropped WITH
//! (FORCE) when its guard drops. SQLite: a fresh file in a temp directory.
//!
//! The server is `TASKDB_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/test` starts it.

#![allow(dead_code)]

/// See [`TestDb::before_alter`].
pub const BEFORE_ALTER: &str = "2026-02-08-000010";

pub mod pgbouncer;
pub mod process;
pub mod standby;
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
    std::env::var("TASKDB_TEST_PG_URL")
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

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Name of the migrated template for the current migrations.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let all: String = taskdb::migrate::migrations(Backend::Postgres)
            .iter()
            .map(|m| m.checksum())
            .collect();
        let name = format!(
            "taskdb_tpl_{}",
            &taskdb::migrate::source::checksum(&all)[..12]
        );
        let mut admin = admin();
        admin
            .batch_execute("SELECT pg_advisory_lock(8675309)")
            .unwrap();
        let exists: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT COUNT(*) FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut admin)
        .unwrap();
        if exists == 0 {
            let building = format!("{name}_build");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {building}"))
                .unwrap();
            let url = DatabaseUrl::parse(&pg_url(&building)).unwrap();
            taskdb::migrate::run_pending(&url).unwrap();
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .unwrap();
        }
        admin
            .batch_execute("SELECT pg_advisory_unlock(8675309)")
            .unwrap();
        name
    })
}

/// A database that exists for one test.
pub struct TestDb {
    pub backend: Backend,
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
    sqlite_path: Option<PathBuf>,
}

impl TestDb {
    /// An empty database: no tables at all.
    pub fn empty(backend: Backend) -> Self {
        Self::create(backend, false)
    }

    /// A database migrated to the latest version.
    pub fn migrated(backend: Backend) -> Self {
        Self::create(backend, true)
    }

    fn create(backend: Backend, migrated: bool) -> Self {
        match backend {
            Backend::Postgres => {
                let name = format!("t_{}", random_suffix());
                let template = if migrated {
                    format!(" TEMPLATE {}", template_name())
                } else {
                    String::new()
                };
                admin()
                    .batch_execute(&format!("CREATE DATABASE {name}{template}"))
                    .unwrap();
                TestDb {
                    backend,
                    url: pg_url(&name),
                    pg_name: Some(name),
                    _dir: None,
                    sqlite_path: None,
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("test.db");
                let db = TestDb {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    pg_name: None,
                    _dir: Some(dir),
                    sqlite_path: Some(path),
                };
                if migrated {
                    taskdb::migrate::run_pending(&db.database_url()).unwrap();
                }
                db
            }
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
        let db = Self::empty(Backend::Postgres);
        db.taskdb()
            .args(["migrate", "--to", BEFORE_ALTER])
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
        self.pg_name.as_deref()
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
        let mut cmd = taskdb_cmd();
        cmd.arg("--database-url").arg(&self.url);
        cmd
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The binary with a clean environment and an empty working directory.
pub fn taskdb_cmd() -> assert_cmd::Command {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let mut cmd = assert_cmd::Command::cargo_bin("taskdb").unwrap();
    cmd.current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("DIRECT_DATABASE_URL")
        .env_remove("TASKDB_LOCK_TIMEOUT")
        .env_remove("TASKDB_SQLITE_BUSY_TIMEOUT");
    cmd
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
/// indexes, constraints, triggers and functions of the public schema.
pub fn pg_schema_dump(db: &TestDb) -> Vec<String> {
    db.rows(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || \
            coalesce(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line \
           FROM information_schema.columns WHERE table_schema = 'public' \
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
