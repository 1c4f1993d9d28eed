//! The build script tells cargo to rerun it only for paths that exist: a
//! path that does not exist is always stale, so every `cargo build` would
//! recompile taskdb (and every crate that depends on it).

use std::path::{Path, PathBuf};

/// What the build script printed when cargo last ran it for this build.
fn build_script_output() -> String {
    // OUT_DIR is `target/…/build/taskdb-<hash>/out`; cargo keeps the
    // script's stdout next to it.
    let output = Path::new(env!("OUT_DIR")).with_file_name("output");
    std::fs::read_to_string(&output)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", output.display()))
}

fn rerun_if_changed(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|l| {
            l.strip_prefix("cargo:rerun-if-changed=")
                .or_else(|| l.strip_prefix("cargo::rerun-if-changed="))
        })
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
            }
        })
        .collect()
}

#[test]
fn build_script_watches_only_paths_that_exist() {
    let paths = rerun_if_changed(&build_script_output());
    let missing: Vec<&PathBuf> = paths.iter().filter(|p| !p.exists()).collect();
    assert!(
        missing.is_empty(),
        "rerun-if-changed names paths that do not exist, so cargo rebuilds taskdb every time: {missing:?}"
    );
}

#[test]
fn build_script_watches_every_migration_directory_and_file() {
    let paths = rerun_if_changed(&build_script_output());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for backend in ["postgres", "sqlite"] {
        let dir = root.join(backend);
        // A directory entry catches a migration added or removed later.
        assert!(paths.contains(&dir), "{} is not watched", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let migration = entry.unwrap().path();
            for file in std::fs::read_dir(&migration).unwrap() {
                let file = file.unwrap().path();
                assert!(paths.contains(&file), "{} is not watched", file.display());
            }
        }
    }
}

/// The build script cargo compiled for this build (the newest in the target
/// directory), run as cargo runs it, on the crate in `manifest_dir`.
fn run_build_script(manifest_dir: &Path) -> std::process::Output {
    let build = Path::new(env!("OUT_DIR"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let script = std::fs::read_dir(&build)
        .unwrap()
        .map(|e| e.unwrap().path().join("build-script-build"))
        .filter(|p| {
            p.is_file()
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n.to_string_lossy().starts_with("taskdb-"))
        })
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .expect("no compiled build script of taskdb");
    let out_dir = tempfile::tempdir().unwrap();
    std::process::Command::new(script)
        .env("CARGO_MANIFEST_DIR", manifest_dir)
        .env("OUT_DIR", out_dir.path())
        .output()
        .unwrap()
}

#[test]
fn the_build_script_refuses_two_migrations_with_one_version_naming_both() {
    let root = tempfile::tempdir().unwrap();
    let write = |backend: &str, name: &str| {
        let dir = root.path().join("migrations").join(backend).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("up.sql"), "SELECT 1;\n").unwrap();
        std::fs::write(dir.join("down.sql"), "SELECT 1;\n").unwrap();
    };
    write("postgres", "2026-11-28-000019_probe");
    write("sqlite", "2026-11-28-000019_probe");
    // The same set builds.
    let out = run_build_script(root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write("sqlite", "2026-11-28-000020_probe_a");
    write("sqlite", "2026-11-28-000020_probe_b");
    let out = run_build_script(root.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "built with one version twice");
    assert!(
        stderr.contains("2026-11-28-000020_probe_a")
            && stderr.contains("2026-11-28-000020_probe_b"),
        "{stderr}"
    );
}
