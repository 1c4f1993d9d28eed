//! Migration versions from directory names, and the one check that no two
//! directories share a version. Diesel keys applied migrations by version
//! alone, so of two such directories it records one and never runs the
//! other's SQL. Standard library only: `build.rs` compiles this file too.

use std::fmt;

/// Diesel's version for a directory name: the prefix before the first `_`,
/// without dashes (`2026-02-08-000001_create_tasks` → `20260208000001`).
pub fn version_of(dir_name: &str) -> String {
    dir_name
        .split('_')
        .next()
        .unwrap_or(dir_name)
        .replace('-', "")
}

/// Two migration directories with one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateVersion {
    pub version: String,
    /// The two directory names, sorted.
    pub first: String,
    pub second: String,
}

impl fmt::Display for DuplicateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "two migrations have the version {}: {} and {}; Diesel would run only one of them. Give one of them the next free number (rename its directory in every backend)",
            self.version, self.first, self.second
        )
    }
}

impl std::error::Error for DuplicateVersion {}

/// The first two of `dir_names` (one backend's migration directories) that
/// share a version, in name order; `Ok` when every version is unique.
pub fn check_unique<S: AsRef<str>>(dir_names: &[S]) -> Result<(), DuplicateVersion> {
    let mut named: Vec<(String, &str)> = dir_names
        .iter()
        .map(|n| (version_of(n.as_ref()), n.as_ref()))
        .collect();
    named.sort();
    match named.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        Some(pair) => Err(DuplicateVersion {
            version: pair[0].0.clone(),
            first: pair[0].1.to_string(),
            second: pair[1].1.to_string(),
        }),
        None => Ok(()),
    }
}
