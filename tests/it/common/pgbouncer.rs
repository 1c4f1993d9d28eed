//! A real PgBouncer in front of the test server, on a free loopback port,
//! stopped when dropped. PgBouncer refuses to run as root, so it is started
//! with `-u postgres` and its files live in a directory that user can read
//! and write.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// `pool_mode` is `transaction`, `statement` or `session`; every client
    /// is trusted.
    pub fn start(pool_mode: &str) -> Self {
        Self::start_with(pool_mode, "trust", &[("postgres", "")])
    }

    /// PgBouncer checks passwords itself (`auth_type`, e.g. `md5`) against
    /// `users` (name, password), then connects to the trusting server.
    pub fn start_with(pool_mode: &str, auth_type: &str, users: &[(&str, &str)]) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install -y pgbouncer (scripts/test-env does)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = super::unused_port();
        let auth_file = dir.path().join("userlist.txt");
        let mut f = std::fs::File::create(&auth_file).unwrap();
        for (user, password) in users {
            writeln!(f, "\"{user}\" \"{password}\"").unwrap();
        }
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port=5432\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = {auth_type}\n\
                 auth_file = {auth}\n\
                 pool_mode = {pool_mode}\n\
                 max_client_conn = 200\n\
                 default_pool_size = 10\n\
                 logfile = {log}\n\
                 admin_users = postgres\n\
                 ignore_startup_parameters = extra_float_digits\n",
                auth = auth_file.display(),
                log = dir.path().join("pgbouncer.log").display(),
            ),
        )
        .unwrap();
        for file in [&auth_file, &ini] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut cmd = Command::new(BINARY);
        // As root it must be told whom to run as.
        if is_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let bouncer = PgBouncer { port, child, dir };
        bouncer.wait_until_listening();
        bouncer
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start listening on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// URL of database `name` through this PgBouncer, as `user`. The
    /// `pgbouncer=true` flag tells taskdb a transaction pooler is in front.
    pub fn url_as(&self, user: &str, name: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{name}?pgbouncer=true",
            self.port
        )
    }

    pub fn url(&self, name: &str) -> String {
        self.url_as("postgres", name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
