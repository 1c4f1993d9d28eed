//! A fresh, fully migrated database per test, for the backend's own tests
//! and taskdb's (behind the `testing` feature).
//!
//! ```no_run
//! use taskdb::testing::TestDb;
//! use taskdb::models::{user, NewUser};
//!
//! # fn main() -> taskdb::Result<()> {
//! let db = TestDb::postgres()?;             // or TestDb::sqlite()
//! let mut conn = db.pool()?.get()?;
//! let alice = user::create_with(&mut conn, NewUser {
//!     id: None, email: "alice@example.com", password: "pw", name: None,
//! }, TestDb::PASSWORDS)?;                   // bcrypt's cheapest cost: fast tests
//! # Ok(()) }
//! ```
//!
//! - **PostgreSQL**: the first test builds a migrated template database
//!   named after the checksums of the migrations (`taskdb_tpl_<hash>`), once
//!   across every test process (under an advisory lock); each test then gets
//!   `CREATE DATABASE … TEMPLATE` (tens of milliseconds instead of running
//!   the migrations), dropped `WITH (FORCE)` when the [`TestDb`] drops, also
//!   on a panic. A template of other migrations is never reused, and is
//!   dropped once nothing uses it. A test database's name carries its
//!   process (host, PID, start time): databases of a process that no longer
//!   runs (`kill -9`) are dropped by the next test process on that host,
//!   while those of running processes are left alone.
//! - **SQLite**: a migrated template file, built once per set of migrations
//!   in the temp directory, copied per test into a directory of its own.
//!
//! The server is `TASKDB_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); its role needs CREATEDB.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::{self, Backend, DatabaseUrl, DbConnection, Pool};
use crate::error::{Error, Result};
use crate::migrate;
use crate::models::user::PasswordPolicy;

/// The variable naming the PostgreSQL server tests create databases on.
pub const SERVER_VARIABLE: &str = "TASKDB_TEST_DATABASE_URL";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Advisory lock key under which the template is built ("tdbtpl").
const TEMPLATE_LOCK: i64 = 0x7464_6274_706c;

/// A database that exists for one test.
pub struct TestDb {
    backend: Backend,
    url: DatabaseUrl,
    /// PostgreSQL: the database's name, dropped with it.
    name: Option<String>,
    /// SQLite: the directory holding the file, removed with it.
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("url", &self.url).finish()
    }
}

impl TestDb {
    /// Password hashing for tests: bcrypt's cheapest cost (4), about 1 ms a
    /// hash instead of 0.2–0.5 s.
    pub const PASSWORDS: PasswordPolicy = PasswordPolicy::CHEAPEST;

    /// A migrated PostgreSQL database on the test server.
    pub fn postgres() -> Result<Self> {
        Self::new(Backend::Postgres)
    }

    /// A migrated SQLite file.
    pub fn sqlite() -> Result<Self> {
        Self::new(Backend::Sqlite)
    }

    /// A migrated database of `backend`.
    pub fn new(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Postgres => Self::postgres_database(true),
            Backend::Sqlite => Self::sqlite_file(true),
        }
    }

    /// A database with no tables at all (for testing migrations).
    pub fn empty(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Postgres => Self::postgres_database(false),
            Backend::Sqlite => Self::sqlite_file(false),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("test.db"))
    }

    /// One connection, set up as [`db::connect`] sets up every connection.
    pub fn conn(&self) -> Result<DbConnection> {
        db::connect(&self.url)
    }

    /// A small pool (4 connections) to this database.
    pub fn pool(&self) -> Result<Pool> {
        db::pool(&self.url, 4)
    }

    fn postgres_database(migrated: bool) -> Result<Self> {
        let server = server_url()?;
        let name = database_name();
        with_admin(&server, |admin| {
            sweep_once(admin);
            if !migrated {
                return create_database(admin, &name, None);
            }
            let template = template(&server, admin)?;
            match create_database(admin, &name, Some(&template)) {
                // Dropped as stale by a run of other migrations meanwhile:
                // build it again.
                Err(e) if e.to_string().contains("does not exist") => {
                    forget_template();
                    let template = template_name_built(&server, admin)?;
                    create_database(admin, &name, Some(&template))
                }
                other => other,
            }
        })?;
        Ok(TestDb {
            backend: Backend::Postgres,
            url: server.with_database(&name)?,
            name: Some(name),
            dir: None,
        })
    }

    fn sqlite_file(migrated: bool) -> Result<Self> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::InvalidInput(format!("cannot create a temp directory: {e}")))?;
        let path = dir.path().join("test.db");
        if migrated {
            std::fs::copy(sqlite_template()?, &path).map_err(|e| {
                Error::InvalidInput(format!("cannot copy the SQLite template: {e}"))
            })?;
        }
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        Ok(TestDb {
            backend: Backend::Sqlite,
            url,
            name: None,
            dir: Some(dir),
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            if let Ok(server) = server_url() {
                let _ = with_admin(&server, |admin| {
                    Ok(admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?)
                });
            }
        }
    }
}

/// Runs `work` on this process's one admin connection (opened on first
/// use, reopened when broken). One at a time: a connection per create and
/// drop would cost a login each, and PostgreSQL refuses to clone a
/// template while another clone of it runs.
fn with_admin<T>(
    server: &DatabaseUrl,
    work: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    static ADMIN: Mutex<Option<DbConnection>> = Mutex::new(None);
    let mut slot = ADMIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut admin = match slot.take() {
        Some(conn) => conn,
        None => connect_admin(server)?,
    };
    let result = work(&mut admin);
    let broken = crate::with_backend!(&mut admin, |c| diesel::r2d2::R2D2Connection::is_broken(c));
    if !broken {
        *slot = Some(admin);
    }
    result
}

/// `CREATE DATABASE name [TEMPLATE template]`, retried while another test
/// process clones the same template (PostgreSQL allows one at a time).
fn create_database(admin: &mut DbConnection, name: &str, template: Option<&str>) -> Result<()> {
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
        None => format!("CREATE DATABASE {name}"),
    };
    let mut attempt = 0;
    loop {
        match admin.batch_execute(&sql) {
            Err(e) if e.to_string().contains("being accessed by other users") && attempt < 100 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 + 5 * attempt));
            }
            other => return Ok(other?),
        }
    }
}

/// The test server's admin URL.
fn server_url() -> Result<DatabaseUrl> {
    let text = std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| DEFAULT_SERVER.to_string());
    let url = DatabaseUrl::parse(&text)?;
    if url.backend() != Backend::Postgres {
        return Err(Error::InvalidInput(format!(
            "{SERVER_VARIABLE} must name a PostgreSQL server, not {}",
            url.redacted()
        )));
    }
    Ok(url)
}

fn connect_admin(server: &DatabaseUrl) -> Result<DbConnection> {
    db::connect(server).map_err(|e| {
        Error::InvalidInput(format!(
            "the test PostgreSQL server is unreachable ({e}); start it, or point {SERVER_VARIABLE} at one"
        ))
    })
}

/// `taskdb_t_<host>_<pid>_<start>_<random>`: whose it is, so a later run
/// can tell a database of a dead process from one in use.
fn database_name() -> String {
    let me = std::process::id();
    format!(
        "taskdb_t_{}_{me}_{}_{}",
        host_tag(),
        process_start(me).unwrap_or(0),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A short tag of this host, so a sweep never judges another host's PIDs.
fn host_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    migrate::source::checksum(host.trim())[..6].to_string()
}

/// When process `pid` started (clock ticks since boot, from
/// `/proc/<pid>/stat`); `None` when it does not run (or no /proc).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Drops, once per process, the test databases of this host's processes
/// that no longer run.
fn sweep_once(admin: &mut DbConnection) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let prefix = format!("taskdb_t_{}_", host_tag());
        let Ok(names) = database_names(admin, &format!("{prefix}%")) else {
            return;
        };
        for name in names {
            let mut parts = name[prefix.len()..].split('_');
            let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
                continue;
            };
            if process_start(pid) != Some(start) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    });
}

fn database_names(admin: &mut DbConnection, like: &str) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    Ok(
        diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
            .bind::<Text, _>(like.replace('_', "\\_"))
            .load::<Name>(admin)?
            .into_iter()
            .map(|n| n.datname)
            .collect(),
    )
}

/// `taskdb_tpl_<hash of the PostgreSQL migrations>`.
fn template_name() -> String {
    let all: String = migrate::migrations(Backend::Postgres)
        .iter()
        .map(|m| m.checksum())
        .collect();
    format!("taskdb_tpl_{}", &migrate::source::checksum(&all)[..12])
}

static TEMPLATE: Mutex<Option<String>> = Mutex::new(None);

fn forget_template() {
    if let Ok(mut t) = TEMPLATE.lock() {
        *t = None;
    }
}

/// The migrated template, built on first use in this process.
fn template(server: &DatabaseUrl, admin: &mut DbConnection) -> Result<String> {
    if let Some(name) = TEMPLATE.lock().ok().and_then(|t| t.clone()) {
        return Ok(name);
    }
    template_name_built(server, admin)
}

/// Makes sure the template exists (building it under the advisory lock if
/// no process has), and drops templates of other migrations nobody uses.
fn template_name_built(server: &DatabaseUrl, admin: &mut DbConnection) -> Result<String> {
    let name = template_name();
    admin.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))?;
    let built = (|| -> Result<()> {
        if database_names(admin, &name)?.is_empty() {
            let building = format!("{name}_build");
            // One statement each: several in one go run as one transaction,
            // where neither may run.
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))?;
            admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
            migrate::run_pending(&server.with_database(&building)?)?;
            admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))?;
        }
        for stale in database_names(admin, "taskdb_tpl_%")? {
            if stale != name && !stale.ends_with("_build") {
                // Fails while another run clones it: left for later.
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {stale}"));
            }
        }
        Ok(())
    })();
    admin.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))?;
    built?;
    if let Ok(mut t) = TEMPLATE.lock() {
        *t = Some(name.clone());
    }
    Ok(name)
}

/// The migrated SQLite template file for the current migrations, built
/// once (atomically renamed into place, so parallel processes never see a
/// half-built one).
fn sqlite_template() -> Result<&'static Path> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = PATH.get() {
        return Ok(path);
    }
    let all: String = migrate::migrations(Backend::Sqlite)
        .iter()
        .map(|m| m.checksum())
        .collect();
    let path = std::env::temp_dir().join(format!(
        "taskdb_tpl_{}.sqlite",
        &migrate::source::checksum(&all)[..12]
    ));
    if !path.exists() {
        let building = path.with_extension(format!(
            "{}.{}.building",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let url = DatabaseUrl::parse(&format!("sqlite://{}", building.display()))?;
        migrate::run_pending(&url)?;
        // Fold the WAL into the file, so the file alone is the database
        // (still in WAL mode, as every database taskdb migrates).
        let mut conn = db::connect(&url)?;
        conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;
        drop(conn);
        std::fs::rename(&building, &path).map_err(|e| {
            Error::InvalidInput(format!("cannot put the SQLite template in place: {e}"))
        })?;
    }
    Ok(PATH.get_or_init(|| path))
}
