//! A real Citus cluster for the tests: a coordinator and two workers, each
//! a PostgreSQL cluster of the test process's own (`common::cluster`:
//! initdb into a temp directory, a free loopback port, stopped and removed
//! at exit, and one left by a killed test process stopped by the next
//! start), with `shared_preload_libraries = 'citus'` and `wal_level =
//! logical` (`create_distributed_table_concurrently` moves rows by logical
//! replication, with Citus's own decoder, which `output_plugin_libraries`
//! must list).
//!
//! A database per test ([`Citus::database`]): created on every node with
//! `CREATE EXTENSION citus` (Citus's metadata is per database), the
//! coordinator registered (`citus_set_coordinator_host`) and the workers
//! added (`citus_add_node`); dropped on every node with the guard.
//!
//! Needs the Citus extension installed into the server's PostgreSQL:
//! `scripts/citus-env` builds it once per machine and installs it. Without
//! it every test here fails, saying so.

use std::path::Path;
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;

use crate::common::cluster::Cluster;

/// Held while a database is set up on the nodes (see `database_with`).
static SETTING_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Citus {
    pub coordinator: Arc<Cluster>,
    pub workers: [Arc<Cluster>; 2],
}

/// Fails the test, naming the script, unless citus.so is installed for the
/// server binaries the clusters run.
fn require_citus() {
    let bin = crate::common::server::bin_dir("the Citus tests start their own clusters");
    let lib = bin.join("../lib/citus.so");
    assert!(
        Path::new(&lib).exists(),
        "the Citus extension is not installed ({} is missing): run scripts/citus-env \
         (builds Citus 13.2.2 once per machine and installs it), then rerun `cargo test --test citus`",
        lib.display()
    );
}

fn settings(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("shared_preload_libraries", "'citus'".into()),
        ("wal_level", "logical".into()),
        ("max_connections", "200".into()),
        ("max_worker_processes", "24".into()),
        ("max_replication_slots", "20".into()),
        ("max_wal_senders", "20".into()),
        // Citus's own decoder moves the rows of a concurrent distribution;
        // this server lets only the libraries listed here decode.
        (
            "output_plugin_libraries",
            "'pgoutput, test_decoding, citus'".into(),
        ),
        // Also what tells the three clusters' keys apart.
        ("cluster_name", format!("'{name}'")),
    ]
}

fn node(name: &str) -> Arc<Cluster> {
    let settings = settings(name);
    let refs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Cluster::shared(&refs)
}

/// A node with Citus loaded, of the calling test alone (stopped when
/// dropped), for a test that changes what every database on it gets.
pub fn lone_node(name: &str) -> Cluster {
    require_citus();
    let settings = settings(name);
    let refs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Cluster::start(&refs)
}

impl Citus {
    /// The coordinator and workers of this test process, started on first
    /// use and stopped at exit (`Cluster::shared` keeps them; nothing here
    /// is static, or the clusters would outlive the process).
    pub fn shared() -> Citus {
        require_citus();
        Citus {
            coordinator: node("citus_coordinator"),
            workers: [node("citus_worker_1"), node("citus_worker_2")],
        }
    }

    fn nodes(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        std::iter::once(&self.coordinator).chain(self.workers.iter())
    }

    /// A new database on every node, with Citus set up in it.
    pub fn database(self) -> CitusDb {
        self.database_with(true)
    }

    /// [`Citus::database`] where the coordinator is left out of Citus's
    /// metadata (`citus_set_coordinator_host` not run): only the workers
    /// are added.
    pub fn database_without_coordinator(self) -> CitusDb {
        self.database_with(false)
    }

    fn database_with(self, register_coordinator: bool) -> CitusDb {
        // One set-up at a time: adding a node syncs cluster-wide state (roles)
        // to the workers, and two `citus_add_node`s at once, even in different
        // databases, fail with "failure on connection marked as essential".
        let _one_at_a_time = SETTING_UP.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!(
            "citus_{}_{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        for node in self.nodes() {
            node.conn("postgres")
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
            node.conn(&name)
                .batch_execute("CREATE EXTENSION citus")
                .unwrap_or_else(|e| panic!("CREATE EXTENSION citus: {e} (run scripts/citus-env)"));
        }
        let mut sql = if register_coordinator {
            self.register_coordinator_sql()
        } else {
            String::new()
        };
        for worker in &self.workers {
            sql.push_str(&format!(
                "SELECT citus_add_node('127.0.0.1', {});",
                worker.port
            ));
        }
        self.coordinator
            .conn(&name)
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        CitusDb { citus: self, name }
    }

    /// Puts the coordinator into Citus's metadata (group 0).
    pub fn register_coordinator_sql(&self) -> String {
        format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {});",
            self.coordinator.port
        )
    }
}

/// A database on the coordinator and both workers, dropped on each.
pub struct CitusDb {
    pub citus: Citus,
    pub name: String,
}

impl CitusDb {
    /// The coordinator's URL: where taskdb and the app connect.
    pub fn url(&self) -> String {
        self.citus.coordinator.url(&self.name)
    }

    pub fn conn(&self) -> PgConnection {
        self.citus.coordinator.conn(&self.name)
    }

    /// A connection to worker `i`'s copy of the database.
    pub fn worker_conn(&self, i: usize) -> PgConnection {
        self.citus.workers[i].conn(&self.name)
    }

    /// Runs SQL on the coordinator (simple protocol, several statements).
    pub fn execute(&self, sql: &str) {
        self.conn()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The single bigint column `n` of a query on the coordinator.
    pub fn scalar(&self, sql: &str) -> i64 {
        scalar(&mut self.conn(), sql)
    }

    /// Rows of a query (single text column `line`) on the coordinator.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        rows(&mut self.conn(), sql)
    }

    /// The `taskdb` binary pointed at the coordinator.
    pub fn taskdb(&self) -> assert_cmd::Command {
        crate::common::taskdb_at(&self.url())
    }
}

impl Drop for CitusDb {
    fn drop(&mut self) {
        for node in self.citus.nodes() {
            if let Ok(mut conn) = PgConnection::establish(&node.url("postgres")) {
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

pub fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

pub fn rows(conn: &mut PgConnection, sql: &str) -> Vec<String> {
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
