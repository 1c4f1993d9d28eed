//! The `taskdb` binary as a child process: spawned against a URL, signalled,
//! read up to a line, waited for with a limit.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::WithoutTaskdbEnv;

/// Starts `taskdb --database-url url args…` with piped output and none of
/// the caller's database environment.
pub fn spawn_taskdb_at(url: &str, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("taskdb"))
        .current_dir(std::env::temp_dir())
        .without_taskdb_env()
        .args(["--database-url", url])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends signal `name` (`INT`, `TERM`, `KILL`) to `child`.
pub fn signal(child: &Child, name: &str) {
    signal_pid(child.id(), name);
}

/// Sends signal `name` to process `pid` (one that is no [`Child`] of the
/// test, or one whose `Child` was moved away).
pub fn signal_pid(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit, failing the test after `limit`.
pub fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("taskdb did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Reads the child's stdout until `needle` appears; returns the reader,
/// which must stay open (and is drained into the returned text later by
/// [`finish`]).
pub fn read_until(child: &mut Child, needle: &str) -> (ChildStdout, String) {
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains(needle) {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "taskdb exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (stdout, seen)
}

/// Polls `done` every 20 ms, failing the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child whose stdout was taken by [`read_until`]: its exit
/// status and stderr, and its whole stdout (what was read plus the rest).
pub fn finish(child: Child, reader: (ChildStdout, String), limit: Duration) -> (Output, String) {
    let (mut stdout, mut seen) = reader;
    let output = wait_with_limit(child, limit);
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    seen.push_str(&rest);
    (output, seen)
}
