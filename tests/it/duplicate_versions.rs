//! Two migration directories with one version (two branches merged, or two
//! `taskdb new` at once): Diesel would record one and skip the other's SQL.
//! `taskdb lint` and `taskdb new` refuse them, naming both directories, and
//! `taskdb new` run many times at once never makes them. (The build script
//! refuses them too: tests/build_script.rs; `migrate`: the plan's tests.)

// The suite drives the binary: the default features.
use crate::common;

use std::fs;

use common::checkout::checkout_copy;
use std::path::Path;

const FIRST: &str = "2026-11-28-000020_probe_a";
const SECOND: &str = "2026-11-28-000020_probe_b";

/// Adds FIRST and SECOND (one version) to both backends of `root`.
fn add_two_with_one_version(root: &Path) {
    for backend in ["postgres", "sqlite"] {
        for (name, column) in [(FIRST, "probe_a"), (SECOND, "probe_b")] {
            let dir = root.join("migrations").join(backend).join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(
                dir.join("up.sql"),
                format!("ALTER TABLE tasks ADD COLUMN {column} INTEGER;\n"),
            )
            .unwrap();
            fs::write(
                dir.join("down.sql"),
                format!("ALTER TABLE tasks DROP COLUMN {column};\n"),
            )
            .unwrap();
        }
    }
}

fn taskdb_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("taskdb").unwrap();
    cmd.current_dir(dir).env_remove("DATABASE_URL");
    cmd
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

/// Every migration directory name of `backend` in `root`.
fn names(root: &Path, backend: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("migrations").join(backend))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn lint_refuses_two_migrations_with_one_version_naming_both() {
    let dir = checkout_copy();
    add_two_with_one_version(dir.path());
    // The default paths (both backends) and one directory given by path.
    for args in [vec![], vec!["migrations/postgres"]] {
        let out = taskdb_in(dir.path())
            .arg("lint")
            .args(&args)
            .assert()
            .code(1);
        let stderr = stderr_of(&out);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(FIRST) && stderr.contains(SECOND),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn new_refuses_to_add_to_migrations_with_one_version_twice() {
    let dir = checkout_copy();
    add_two_with_one_version(dir.path());
    let before = names(dir.path(), "postgres");
    let out = taskdb_in(dir.path())
        .args(["new", "probe_next"])
        .assert()
        .code(1);
    let stderr = stderr_of(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(FIRST) && stderr.contains(SECOND),
        "{stderr}"
    );
    assert_eq!(names(dir.path(), "postgres"), before, "wrote a migration");
}

#[test]
fn new_run_eight_times_at_once_never_reuses_a_version() {
    let bin = assert_cmd::cargo::cargo_bin("taskdb");
    let dir = checkout_copy();
    for round in 0..8 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                std::process::Command::new(&bin)
                    .current_dir(dir.path())
                    .env_remove("DATABASE_URL")
                    .args(["new", &format!("probe_r{round}_{i}")])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for backend in ["postgres", "sqlite"] {
        let names = names(dir.path(), backend);
        let mut versions: Vec<&str> = names.iter().map(|n| n.split('_').next().unwrap()).collect();
        versions.sort();
        let total = versions.len();
        versions.dedup();
        assert_eq!(versions.len(), total, "{backend}: {names:#?}");
        assert_eq!(
            names.iter().filter(|n| n.contains("_probe_r")).count(),
            64,
            "{backend}: {names:#?}"
        );
    }
}
