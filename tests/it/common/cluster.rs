//! A PostgreSQL cluster of the test's own: `initdb` into a temp directory,
//! extra `postgresql.conf` settings (e.g. `lc_messages = 'de_DE.UTF-8'`, a
//! server that answers in German), a free loopback port, `pg_ctl start`;
//! stopped (immediate) and removed when dropped, and at the latest when the
//! test process exits. A cluster left behind by a killed test process is
//! stopped by the next start.
//!
//! Runs the server binaries of the test server's major version as
//! `postgres` (`runuser` when the tests run as root: initdb and pg_ctl
//! refuse root). A non-English `lc_messages` needs that locale on the OS
//! (`scripts/test-env` generates de_DE.UTF-8).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;

use super::server::{bin_dir, is_root, path_str, run_as_postgres, stop, stop_abandoned};
use diesel::prelude::*;
use diesel::PgConnection;

/// Prefix of every cluster's temp directory (`<prefix><pid>-<random>`).
const DIR_PREFIX: &str = "taskdb-cluster-";

pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Clusters shared by the tests of one process, by their settings; stopped
/// at exit.
static SHARED: Mutex<Vec<(String, Arc<Cluster>)>> = Mutex::new(Vec::new());

extern "C" fn drop_shared() {
    let clusters = SHARED
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    drop(clusters);
}

impl Cluster {
    /// The one cluster of this test process with these settings, started
    /// on first use (an initdb costs seconds) and stopped at exit.
    pub fn shared(settings: &[(&str, &str)]) -> Arc<Cluster> {
        let key = format!("{settings:?}");
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cluster)) = shared.iter().find(|(k, _)| *k == key) {
            return cluster.clone();
        }
        let cluster = Arc::new(Cluster::start(settings));
        if shared.is_empty() {
            extern "C" {
                fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
            }
            // SAFETY: registers a plain function with the C runtime; the
            // test harness ends with `exit`, which runs it once.
            unsafe {
                atexit(drop_shared);
            }
        }
        shared.push((key, cluster.clone()));
        cluster
    }

    /// A cluster of its own, with `settings` added to `postgresql.conf`
    /// (values written as given, so quote strings: `("lc_messages",
    /// "'de_DE.UTF-8'")`).
    pub fn start(settings: &[(&str, &str)]) -> Cluster {
        let bin = bin_dir("a test cluster needs the server's own initdb and pg_ctl");
        stop_abandoned(&bin, DIR_PREFIX);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        let port = super::unused_port();
        let mut conf = format!(
            "\nport = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sockets}'\n\
             fsync = off\n\
             shared_buffers = 32MB\n\
             logging_collector = off\n",
            sockets = dir.path().display(),
        );
        for (name, value) in settings {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        let config = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&conf);
        std::fs::write(&config, text).unwrap();
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
        Cluster { port, dir, bin }
    }

    /// URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn conn(&self, db: &str) -> PgConnection {
        PgConnection::establish(&self.url(db)).unwrap()
    }

    /// A new empty database on this cluster, dropped with the guard.
    pub fn database(&self) -> ClusterDb<'_> {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        self.conn("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        ClusterDb {
            cluster: self,
            name,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop(&self.bin, &self.dir.path().join("data"));
    }
}

/// A database on a [`Cluster`], dropped (with its connections) with this.
pub struct ClusterDb<'c> {
    pub cluster: &'c Cluster,
    pub name: String,
}

impl ClusterDb<'_> {
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    pub fn conn(&self) -> PgConnection {
        self.cluster.conn(&self.name)
    }

    /// Runs SQL directly (simple protocol, several statements allowed).
    pub fn execute(&self, sql: &str) {
        self.conn()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The `taskdb` binary pointed at this database.
    pub fn taskdb(&self) -> assert_cmd::Command {
        super::taskdb_at(&self.url())
    }
}

impl Drop for ClusterDb<'_> {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.cluster.url("postgres")) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
