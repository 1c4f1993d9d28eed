//! `taskdb::testing` as it was before per-test databases were reset and
//! reused (taskdb 6221d64, `src/testing.rs`), PostgreSQL only, for the
//! "before" rows: one admin connection behind one mutex, spares, renamed
//! and dropped databases.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, Once, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use taskdb::db::{self, Backend, DatabaseUrl, DbConnection};
use taskdb::{Error, Result};
use taskdb::migrate::{self, MigrationPlan, MigrationState};
use taskdb::models::PasswordPolicy;

/// The variable naming the PostgreSQL server tests create databases on.
pub const SERVER_VARIABLE: &str = "TASKDB_TEST_DATABASE_URL";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The variable setting how many migrated PostgreSQL databases each test
/// process keeps cloned ahead (0 turns the stock off).
pub const SPARES_VARIABLE: &str = "TASKDB_TEST_SPARES";
/// Spares kept when [`SPARES_VARIABLE`] is unset: one per test thread on
/// a two-core machine, the default of `cargo test`.
pub const DEFAULT_SPARES: usize = 2;

/// Advisory lock key under which the template is built ("tdbtpl").
const TEMPLATE_LOCK: i64 = 0x7464_6274_706c;
/// First key of the advisory lock each test process holds for its life
/// ("tdbo"); the second is the process's owner key.
const OWNER_LOCK: i32 = 0x7464_626f;

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

    fn postgres_database(migrated: bool) -> Result<Self> {
        let server = server_url()?;
        let spares = if migrated { spares_wanted()? } else { 0 };
        let name = match claim_spare(spares) {
            Some(name) => name,
            None => {
                let name = database_name(&server)?;
                with_admin(&server, |admin| {
                    sweep_once(admin);
                    if migrated {
                        clone_template(&server, admin, &name)
                    } else {
                        create_database(admin, &name, None)
                    }
                })?;
                name
            }
        };
        if migrated {
            stock().claimed += 1;
        }
        start_keeper(&server, spares);
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
                    retire(&server, admin, name);
                    Ok(())
                });
            }
        }
    }
}

/// Most retired databases waiting for the keeper; past that a test drops
/// its own, so a suite faster than the server never piles them up.
const MAX_RETIRED: usize = 4;

/// Takes a test database out of sight at once: ends its connections and
/// renames it `<name>_gone` for the keeper thread to drop in the
/// background, because a `DROP DATABASE` forces a checkpoint (0.1–0.5 s on
/// a busy server). Dropped on the spot when spares are off, the keeper is
/// behind, or the rename fails. The new name keeps the owner's PID and
/// start, so a sweep treats it like its other databases.
fn retire(server: &DatabaseUrl, admin: &mut DbConnection, name: &str) {
    let spares = spares_wanted().unwrap_or(0);
    if spares > 0 && stock().retired.len() < MAX_RETIRED {
        let gone = format!("{name}_gone");
        if rename_unused(admin, name, &gone).is_ok() {
            stock().retired.push(gone);
            start_keeper(server, spares);
            return;
        }
    }
    drop_database(admin, name);
}

/// `ALTER DATABASE name RENAME TO new` after ending the sessions still on
/// it (as `DROP … WITH (FORCE)` does), retried while they exit.
fn rename_unused(admin: &mut DbConnection, name: &str, new: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        admin.batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))?;
        match admin.batch_execute(&format!("ALTER DATABASE {name} RENAME TO {new}")) {
            // 55006: a session is still leaving (the race is why the first
            // few tries do not ask).
            Err(_) if attempt < 100 && (attempt < 3 || other_sessions(admin, name)?) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return Ok(other?),
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
    let broken = taskdb::with_backend!(&mut admin, |c| diesel::r2d2::R2D2Connection::is_broken(c));
    if !broken {
        *slot = Some(admin);
    }
    result
}

/// Clones the migrated template into `name`, building the template first
/// if no process has.
fn clone_template(server: &DatabaseUrl, admin: &mut DbConnection, name: &str) -> Result<()> {
    let template = template(server, admin)?;
    match create_database(admin, name, Some(&template)) {
        // Dropped as stale by a run of other migrations meanwhile: build it
        // again. (Asked, not read from the message: its words are the
        // server's lc_messages.)
        Err(_) if !database_exists(admin, &template)? => {
            forget_template();
            let template = template_name_built(server, admin)?;
            create_database(admin, name, Some(&template))
        }
        other => other,
    }
}

/// The migrated PostgreSQL template's name, built if no process has built
/// it yet (for tools that clone it themselves).
pub fn postgres_template() -> Result<String> {
    let server = server_url()?;
    with_admin(&server, |admin| template(&server, admin))
}

/// Migrated databases cloned ahead, and retired ones to drop, both by a
/// background thread (the keeper).
struct Stock {
    ready: Vec<String>,
    retired: Vec<String>,
    keeper_running: bool,
    /// The keeper is cloning a spare right now ([`SPARE_READY`] is
    /// notified when it is done, or has failed).
    cloning: bool,
    /// The process is exiting: the keeper adds nothing more.
    closed: bool,
    /// Migrated databases this process has used so far.
    claimed: usize,
}

impl Stock {
    /// Spares to keep: none while the process has used one database at
    /// most (a test binary with one test would only clone and drop spares
    /// for nothing), then one more per database used, up to `wanted`.
    fn target(&self, wanted: usize) -> usize {
        wanted.min(self.claimed.saturating_sub(1))
    }
}

static STOCK: Mutex<Stock> = Mutex::new(Stock {
    ready: Vec::new(),
    retired: Vec::new(),
    keeper_running: false,
    cloning: false,
    closed: false,
    claimed: 0,
});

/// Notified whenever the keeper ends a clone.
static SPARE_READY: Condvar = Condvar::new();

fn stock() -> MutexGuard<'static, Stock> {
    STOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spares_wanted() -> Result<usize> {
    match std::env::var(SPARES_VARIABLE) {
        Err(_) => Ok(DEFAULT_SPARES),
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::InvalidInput(format!(
                "{SPARES_VARIABLE} must be a number of databases (got {text:?})"
            ))
        }),
    }
}

/// A spare, if the stock holds one and spares are wanted; if the keeper
/// is cloning one right now, that one as soon as it is ready. PostgreSQL
/// clones a template one at a time, so a clone of the test's own would
/// only start after the keeper's and end later.
fn claim_spare(wanted: usize) -> Option<String> {
    if wanted == 0 {
        return None;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut stock = stock();
    loop {
        if let Some(name) = stock.ready.pop() {
            return Some(name);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !stock.cloning || left.is_zero() {
            return None;
        }
        stock = SPARE_READY
            .wait_timeout(stock, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

/// Starts the keeper unless it runs or has nothing to do. The first
/// database of a process is cloned by the test itself (which also builds
/// the template and sweeps), so the keeper only ever clones and drops.
fn start_keeper(server: &DatabaseUrl, wanted: usize) {
    if wanted == 0 {
        return;
    }
    {
        let mut stock = stock();
        if stock.keeper_running
            || stock.closed
            || (stock.ready.len() >= stock.target(wanted) && stock.retired.is_empty())
        {
            return;
        }
        stock.keeper_running = true;
    }
    drop_spares_at_exit();
    let server = server.clone();
    let spawned = std::thread::Builder::new()
        .name("taskdb-test-keeper".into())
        .spawn(move || keep(&server, wanted));
    if spawned.is_err() {
        stock().keeper_running = false;
    }
}

/// Clones spares on a connection of its own until the stock holds
/// `wanted`, and drops retired databases (spares first: a test may be
/// waiting for one). On an error it stops: tests then clone and drop their
/// own databases, and report the error themselves if it persists.
fn keep(server: &DatabaseUrl, wanted: usize) {
    let Ok(mut admin) = connect_admin(server) else {
        stock().keeper_running = false;
        return;
    };
    loop {
        let retired = {
            let mut stock = stock();
            if stock.closed {
                stock.keeper_running = false;
                return;
            }
            if stock.ready.len() < stock.target(wanted) {
                stock.cloning = true;
                None
            } else if let Some(name) = stock.retired.pop() {
                Some(name)
            } else {
                stock.keeper_running = false;
                return;
            }
        };
        if let Some(name) = retired {
            drop_database(&mut admin, &name);
            continue;
        }
        let Ok(name) = database_name(server) else {
            let mut stock = stock();
            stock.cloning = false;
            stock.keeper_running = false;
            SPARE_READY.notify_all();
            return;
        };
        let cloned = clone_template(server, &mut admin, &name);
        let mut stock = stock();
        stock.cloning = false;
        SPARE_READY.notify_all();
        if cloned.is_err() {
            stock.keeper_running = false;
            return;
        }
        if stock.closed {
            stock.keeper_running = false;
            drop(stock);
            drop_database(&mut admin, &name);
            return;
        }
        stock.ready.push(name);
    }
}

fn drop_database(admin: &mut DbConnection, name: &str) {
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

/// Registers, once, the drop of the unclaimed spares when the process
/// exits (libtest's `main` returns or calls `process::exit`; both run
/// C `atexit` handlers). A process killed before that leaves them to the
/// next run's sweep, like its other databases.
fn drop_spares_at_exit() {
    static REGISTERED: Once = Once::new();
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }
    extern "C" fn at_exit() {
        // A panic must not unwind into C.
        let _ = std::panic::catch_unwind(|| {
            stock().closed = true;
            // Let the keeper finish the clone or drop it is in: killed
            // half-way, the server would still complete it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while stock().keeper_running && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let names = {
                let mut stock = stock();
                let mut names = std::mem::take(&mut stock.ready);
                names.append(&mut stock.retired);
                names
            };
            let Ok(server) = server_url() else { return };
            // Connections of their own (a test thread may still hold the
            // shared one), several at once: drops that wait at the same
            // time share their checkpoints.
            std::thread::scope(|scope| {
                for chunk in names.chunks(names.len().div_ceil(4).max(1)) {
                    let server = &server;
                    scope.spawn(move || {
                        if let Ok(mut admin) = connect_admin(server) {
                            for name in chunk {
                                drop_database(&mut admin, name);
                            }
                        }
                    });
                }
            });
        });
    }
    REGISTERED.call_once(|| {
        // SAFETY: atexit only records the pointer of a function that takes
        // nothing and catches its own panics.
        unsafe {
            atexit(at_exit);
        }
    });
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
            // 55006 (another session is on the template): it is about to
            // leave. Recognised by asking, not by the message's words.
            Err(_)
                if attempt < 100
                    && template.is_some_and(|t| {
                        attempt < 3 || other_sessions(admin, t).unwrap_or(false)
                    }) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 + 5 * attempt));
            }
            other => return Ok(other?),
        }
    }
}

/// Whether a session other than this one is connected to database `name`
/// (why PostgreSQL refuses to clone, rename or drop it: SQLSTATE 55006).
fn other_sessions(admin: &mut DbConnection, name: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Any {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        any: bool,
    }
    let row: Any = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS any",
    )
    .bind::<Text, _>(name)
    .get_result(admin)?;
    Ok(row.any)
}

/// Whether database `name` exists.
fn database_exists(admin: &mut DbConnection, name: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Any {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        any: bool,
    }
    let row: Any =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS any")
            .bind::<Text, _>(name)
            .get_result(admin)?;
    Ok(row.any)
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

/// `taskdb_t_<owner>_<pid>_<random>`: the owner key (8 hex digits) tells
/// whether the process that made it still runs; the PID is for people.
fn database_name(server: &DatabaseUrl) -> Result<String> {
    Ok(format!(
        "taskdb_t_{:08x}_{}_{}",
        owner_key(server)?,
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
}

/// This process's owner key and the connection holding its lock.
struct Owner {
    key: u32,
    conn: DbConnection,
}

/// The owner key of this process: a random number whose advisory lock
/// (`OWNER_LOCK`, key) this process holds, on a connection of its own,
/// until it exits. The lock is taken again (same key) if the connection
/// was lost.
fn owner_key(server: &DatabaseUrl) -> Result<u32> {
    static OWNER: Mutex<Option<Owner>> = Mutex::new(None);
    let mut slot = OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut wanted = None;
    if let Some(owner) = slot.as_mut() {
        if owner.conn.batch_execute("SELECT 1").is_ok() {
            return Ok(owner.key);
        }
        wanted = Some(owner.key);
        *slot = None;
    }
    loop {
        // Positive, so that pg_locks shows it as written.
        let key = wanted
            .take()
            .unwrap_or_else(|| (uuid::Uuid::new_v4().as_u128() as u32) & 0x7fff_ffff);
        let mut conn = connect_admin(server)?;
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        let locked: Locked = diesel::sql_query(format!(
            "SELECT pg_try_advisory_lock({OWNER_LOCK}, {key}) AS locked"
        ))
        .get_result(&mut conn)?;
        if locked.locked {
            *slot = Some(Owner { key, conn });
            return Ok(key);
        }
    }
}

/// Owner keys whose lock is held: their processes run.
fn live_owners(admin: &mut DbConnection) -> Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key: i64,
    }
    Ok(diesel::sql_query(format!(
        "SELECT objid::bigint AS key FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = {OWNER_LOCK} AND objsubid = 2 AND granted"
    ))
    .load::<Key>(admin)?
    .into_iter()
    .map(|k| k.key)
    .collect())
}

/// Drops, once per process, the test databases whose process is provably
/// gone: its owner lock is free. Names without an owner key (made by
/// earlier versions, which judged by PID) are left alone.
fn sweep_once(admin: &mut DbConnection) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let prefix = "taskdb_t_";
        // The names first, then the locks: a database listed here was made
        // under a lock taken before it, so the lock shows if its process
        // still runs.
        let Ok(names) = database_names(admin, &format!("{prefix}%")) else {
            return;
        };
        let Ok(live) = live_owners(admin) else {
            return;
        };
        for name in names {
            let Some(owner) = name[prefix.len()..].split('_').next() else {
                continue;
            };
            if owner.len() != 8 {
                continue;
            }
            let Ok(owner) = i64::from_str_radix(owner, 16) else {
                continue;
            };
            if !live.contains(&owner) {
                drop_database(admin, &name);
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

/// `taskdb_tpl_<hash>` over each of `backend`'s migrations: its directory
/// name and its `up.sql` checksum (the name too, so a migration renamed to
/// another version gets a template of its own).
fn template_key(backend: Backend) -> String {
    let all: String = migrate::migrations(backend)
        .iter()
        .map(|m| format!("{} {}\n", m.dir_name(), m.checksum()))
        .collect();
    // taskdb's own hash is not public API: std's hasher (fixed keys) names
    // this copy's template just as stably.
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    all.hash(&mut hasher);
    format!("taskdb_tpl_{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// The PostgreSQL template's name.
fn template_name() -> String {
    template_key(Backend::Postgres)
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
/// no process has). It no longer drops the other templates (see below).
fn template_name_built(server: &DatabaseUrl, admin: &mut DbConnection) -> Result<String> {
    let name = template_name();
    build_template(server, admin, &name)?;
    if let Ok(mut t) = TEMPLATE.lock() {
        *t = Some(name.clone());
    }
    Ok(name)
}

/// [`template_name_built`] for the template `name`.
fn build_template(server: &DatabaseUrl, admin: &mut DbConnection, name: &str) -> Result<()> {
    admin.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))?;
    let built = (|| -> Result<()> {
        // Templates are built under this lock only: one still being built
        // is a run's that failed or was killed.
        for left in database_names(admin, "taskdb_tpl_%_build")? {
            drop_database(admin, &left);
        }
        if database_names(admin, name)?.is_empty() {
            let building = format!("{name}_build");
            // One statement each: several in one go run as one transaction,
            // where neither may run.
            admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
            let migrated = migrate::run_pending(&server.with_database(&building)?)
                .map(drop)
                .and_then(|()| {
                    Ok(admin
                        .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))?)
                });
            if let Err(e) = migrated {
                drop_database(admin, &building);
                return Err(e);
            }
        }
        // It dropped every other template here, which in this program
        // was `taskdb::testing`'s own (named after the tracking tables'
        // shape too, so another name): each `taskdb` suite then began by
        // building it again. Left out, so that only set-up is compared.
        Ok(())
    })();
    admin.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))?;
    built
}

/// The migrated SQLite template file for the current migrations, built
/// once (atomically renamed into place, so parallel processes never see a
/// half-built one). A file of that name that does not hold exactly these
/// migrations, all applied, is built again: anything can open a file in
/// the temp directory and migrate it further.
fn sqlite_template() -> Result<&'static Path> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = PATH.get() {
        return Ok(path);
    }
    let path = std::env::temp_dir().join(format!("{}.sqlite", template_key(Backend::Sqlite)));
    if !(path.exists() && holds_exactly_these_migrations(&path)) {
        build_sqlite_template(&path)?;
    }
    Ok(PATH.get_or_init(|| path))
}

/// Whether the SQLite file at `path` has this build's migrations applied
/// and no others.
fn holds_exactly_these_migrations(path: &Path) -> bool {
    let check = || -> Result<bool> {
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        let plan = MigrationPlan::load(&mut db::connect(&url)?)?;
        Ok(plan.is_up_to_date()
            && plan
                .entries
                .iter()
                .all(|e| e.state == MigrationState::Applied))
    };
    check().unwrap_or(false)
}

/// Migrates a new file next to `path` and renames it over `path`.
fn build_sqlite_template(path: &Path) -> Result<()> {
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
    std::fs::rename(&building, path)
        .map_err(|e| Error::InvalidInput(format!("cannot put the SQLite template in place: {e}")))
}

