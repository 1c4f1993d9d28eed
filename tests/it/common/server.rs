//! Running PostgreSQL server binaries for the clusters the suite starts
//! itself (`cluster.rs`, and `tests/replicas/standby.rs`): the test server's own bin
//! directory, running them as `postgres` (initdb and pg_ctl refuse root),
//! and stopping what a killed test process left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::prelude::*;

/// The bin directory of the test server's own major version (the client
/// tools on PATH may be another one); `needs` names what the caller runs.
pub fn bin_dir(needs: &str) -> PathBuf {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let version: i64 = diesel::sql_query("SELECT current_setting('server_version_num') AS v")
        .get_result::<Value>(&mut super::admin())
        .unwrap()
        .v
        .parse()
        .unwrap();
    let dir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", version / 10000));
    assert!(
        dir.join("pg_ctl").exists() && dir.join("initdb").exists(),
        "{} is missing: {needs}",
        dir.display()
    );
    dir
}

/// Stops and removes the data directories under the temp directory named
/// `<prefix><pid>-…` whose test process is gone (killed before its clean-up
/// ran).
pub fn stop_abandoned(bin: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        stop(bin, &entry.path().join("data"));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// `pg_ctl stop -m immediate` of the server on `data`, if it runs.
pub fn stop(bin: &Path, data: &Path) {
    if !data.join("postmaster.pid").exists() {
        return;
    }
    let _ = postgres_command(&bin.join("pg_ctl"))
        .args(["-D", path_str(data), "-m", "immediate", "-w", "stop"])
        .current_dir("/")
        .output();
}

/// `program` run as `postgres` when the tests run as root.
pub fn postgres_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Runs `program` as `postgres`; panics with its output when it fails.
pub fn run_as_postgres(program: &Path, args: &[&str]) {
    let output = postgres_command(program)
        .args(args)
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
