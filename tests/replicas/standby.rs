//! A real hot standby of the test server: `pg_basebackup -R` into a temp
//! directory, its own small `postgresql.conf` on a free loopback port,
//! `pg_ctl start`, with its own replication slot; stopped (immediate),
//! removed and its slot dropped when the test process exits, also after a
//! test panicked.
//!
//! It streams the WAL of every database on the shared server, so the
//! tests that pause its replay take [`exclusive`] (and any test in the same
//! binary that migrates while one may be paused takes it too). A standby
//! left behind by a killed test process is stopped by the next start.
//!
//! Needs `host replication all 127.0.0.1/32 trust` in the server's
//! pg_hba.conf (`scripts/test-env` adds it) and, as root, `runuser` to run
//! the server binaries as `postgres`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::common::server::{bin_dir, is_root, path_str, run_as_postgres, stop};
use diesel::prelude::*;
use diesel::PgConnection;

/// Prefix of every standby's temp directory (`<prefix><pid>-<random>`).
const DIR_PREFIX: &str = "taskdb-standby-";
/// Prefix of every standby's name and slot (`<prefix><pid>_<port>`).
const SLOT_PREFIX: &str = "taskdb_test_standby_";

pub struct Standby {
    /// Its `cluster_name`, hence its `application_name` on the primary.
    pub name: String,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

static SHARED: Mutex<Option<Arc<Standby>>> = Mutex::new(None);

extern "C" fn drop_shared() {
    let standby = SHARED.lock().ok().and_then(|mut s| s.take());
    drop(standby);
}

/// Serialises the tests that pause replay, or that migrate while another
/// one might have paused it.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Standby {
    /// The one standby of this test process, started on first use and
    /// torn down (its Drop) when the process exits, however the tests
    /// ended: a base backup per test would cost seconds each.
    pub fn shared() -> Arc<Standby> {
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(standby) = slot.as_ref() {
            return standby.clone();
        }
        let standby = Arc::new(Standby::start());
        *slot = Some(standby.clone());
        extern "C" {
            fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
        }
        // SAFETY: registers a plain function with the C runtime; the test
        // harness ends with `exit`, which runs it once.
        unsafe {
            atexit(drop_shared);
        }
        standby
    }

    pub fn start() -> Standby {
        let bin = bin_dir("the standby tests need the server's own pg_ctl and pg_basebackup");
        stop_abandoned(&bin);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let port = free_port();
        // Also the name of its replication slot: without one, a busy
        // primary recycles WAL the standby has yet to fetch.
        let name = format!("{SLOT_PREFIX}{}_{port}", std::process::id());
        let data = dir.path().join("data");
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the standby directory failed");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // -c fast: do not wait for the server's next spread checkpoint.
        run_as_postgres(
            &bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
                "-D",
                path_str(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-C",
                "-S",
                &name,
            ],
        );
        // Debian keeps the configuration outside the data directory, so the
        // copy has none of its own: a minimal one. A hot standby needs these
        // limits at least as high as the primary's.
        let mut primary = crate::common::admin();
        let mut conf = format!(
            "port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sockets}'\n\
             hot_standby = on\n\
             cluster_name = '{name}'\n\
             wal_receiver_status_interval = 1s\n\
             shared_buffers = 32MB\n\
             logging_collector = off\n",
            sockets = dir.path().display(),
        );
        for setting in [
            "max_connections",
            "max_worker_processes",
            "max_wal_senders",
            "max_prepared_transactions",
            "max_locks_per_transaction",
        ] {
            let value = show(&mut primary, setting);
            conf.push_str(&format!("{setting} = {value}\n"));
        }
        write_as_postgres(&data.join("postgresql.conf"), &conf);
        write_as_postgres(
            &data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        );
        write_as_postgres(&data.join("pg_ident.conf"), "");
        let log = dir.path().join("server.log");
        run_as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        let standby = Standby {
            name,
            port,
            dir,
            bin,
        };
        standby.wait_until_streaming();
        standby
    }

    /// URL of database `db` on the standby.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url("postgres")).unwrap()
    }

    /// The server log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_until_streaming(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = crate::common::query_lines(
                &mut taskdb::db::connect(
                    &taskdb::DatabaseUrl::parse(&crate::common::admin_url()).unwrap(),
                )
                .unwrap(),
                &format!(
                    "SELECT state AS line FROM pg_stat_replication WHERE application_name = '{}'",
                    self.name
                ),
            );
            if state.iter().any(|s| s == "streaming") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not start streaming: {state:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the standby has replayed everything the primary has
    /// written so far (e.g. a test database's CREATE DATABASE).
    pub fn catch_up(&self) {
        let target = lsn_now();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = self.conn();
        loop {
            let done = scalar_bool(
                &mut conn,
                &format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn AS v"),
            );
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not replay up to {target}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pauses replay until the guard drops (or [`ReplayPaused::resume`]):
    /// the standby keeps receiving WAL, its replay position stays put.
    pub fn pause_replay(&self) -> ReplayPaused<'_> {
        let mut conn = self.conn();
        conn.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !scalar_bool(
            &mut conn,
            "SELECT pg_get_wal_replay_pause_state() = 'paused' AS v",
        ) {
            assert!(Instant::now() < deadline, "replay did not pause");
            std::thread::sleep(Duration::from_millis(20));
        }
        ReplayPaused {
            standby: self,
            resumed: false,
        }
    }

    fn resume_replay(&self) {
        if let Ok(mut conn) = PgConnection::establish(&self.url("postgres")) {
            let _ = conn.batch_execute("SELECT pg_wal_replay_resume()");
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        // Immediate: nothing on it is worth a clean shutdown, and a paused
        // standby would not finish a smart one.
        stop(&self.bin, &self.data_dir());
        drop_slot(&self.name);
    }
}

/// Drops a standby's replication slot, which would otherwise keep WAL on
/// the shared server for ever.
fn drop_slot(name: &str) {
    if let Ok(mut admin) = PgConnection::establish(&crate::common::admin_url()) {
        let _ = admin.batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
              WHERE slot_name = '{name}' AND NOT active"
        ));
    }
}

/// Replay paused on a standby; resumed when dropped (also on panic), so a
/// failing test cannot leave the shared server's standby behind.
pub struct ReplayPaused<'a> {
    standby: &'a Standby,
    resumed: bool,
}

impl ReplayPaused<'_> {
    pub fn resume(mut self) {
        self.standby.resume_replay();
        self.resumed = true;
    }
}

impl Drop for ReplayPaused<'_> {
    fn drop(&mut self) {
        if !self.resumed {
            self.standby.resume_replay();
        }
    }
}

/// The primary's current WAL position.
pub fn lsn_now() -> String {
    crate::common::query_lines(
        &mut taskdb::db::connect(&taskdb::DatabaseUrl::parse(&crate::common::admin_url()).unwrap())
            .unwrap(),
        "SELECT pg_current_wal_lsn()::text AS line",
    )
    .remove(0)
}

/// Stops and removes standbys whose test process is gone (killed before
/// its Drop ran): a paused one would hold up every migration on the
/// server.
fn stop_abandoned(bin: &Path) {
    crate::common::server::stop_abandoned(bin, DIR_PREFIX);
    let slots = crate::common::query_lines(
        &mut taskdb::db::connect(&taskdb::DatabaseUrl::parse(&crate::common::admin_url()).unwrap())
            .unwrap(),
        &format!(
            "SELECT slot_name::text AS line FROM pg_replication_slots
              WHERE slot_name LIKE '{}%' AND NOT active",
            SLOT_PREFIX.replace('_', "\\_")
        ),
    );
    for slot in slots {
        let pid = slot
            .strip_prefix(SLOT_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            drop_slot(&slot);
        }
    }
}

fn write_as_postgres(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn show(conn: &mut PgConnection, setting: &str) -> String {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    diesel::sql_query(format!("SELECT current_setting('{setting}') AS v"))
        .get_result::<Value>(conn)
        .unwrap()
        .v
}

fn scalar_bool(conn: &mut PgConnection, sql: &str) -> bool {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        v: bool,
    }
    diesel::sql_query(sql)
        .get_result::<Value>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
