//! Copies of the crate's files for tests that add migrations (`taskdb new`,
//! `taskdb lint`) without touching the real checkout.

use std::fs;
use std::path::{Path, PathBuf};

pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the crate's `Cargo.toml` and migrations: enough for `taskdb
/// new` and `taskdb lint`, which build nothing.
pub fn checkout_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        crate_root().join("Cargo.toml"),
        dir.path().join("Cargo.toml"),
    )
    .unwrap();
    copy_dir(
        &crate_root().join("migrations"),
        &dir.path().join("migrations"),
    );
    dir
}
