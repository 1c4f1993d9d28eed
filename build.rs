//! Embeds the SQL of every migration directory as a static table
//! (`$OUT_DIR/migration_sql.rs`) so taskdb can checksum, plan and print the
//! exact SQL it runs. Rerun whenever anything under `migrations/` changes,
//! or an edited migration would not be re-embedded, and for nothing else:
//! a watched path that does not exist counts as changed on every build,
//! which would recompile taskdb (and whatever depends on it) every time.

// The check that no two migrations share a version, as the crate runs it.
#[path = "src/versions.rs"]
mod versions;

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    // Read at run time, not compiled in: a build script binary can be reused
    // for another checkout of the crate sharing the target directory.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    let root = Path::new(&manifest_dir).join("migrations");
    let mut out = String::new();
    for (backend, konst) in [("postgres", "POSTGRES"), ("sqlite", "SQLITE")] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join("up.sql").is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if let Err(duplicate) = versions::check_unique(&names) {
            panic!("{}: {duplicate}", dir.display());
        }
        // A backend the build leaves out has no SQL embedded.
        writeln!(out, "#[cfg(feature = {backend:?})]").unwrap();
        writeln!(out, "pub(crate) static {konst}: &[MigrationSql] = &[").unwrap();
        for name in names {
            let path = dir.join(&name);
            // Only files that exist: cargo takes a missing path as changed
            // on every build. A file added later changes the directory,
            // which is watched above.
            for file in ["up.sql", "down.sql", "metadata.toml"] {
                if path.join(file).is_file() {
                    println!("cargo:rerun-if-changed={}", path.join(file).display());
                }
            }
            let down = if path.join("down.sql").is_file() {
                format!(
                    "Some(Cow::Borrowed(include_str!({:?})))",
                    path.join("down.sql")
                )
            } else {
                "None".to_string()
            };
            // metadata.toml too: lint's allow list lives there.
            let metadata = if path.join("metadata.toml").is_file() {
                format!(
                    "Some(Cow::Borrowed(include_str!({:?})))",
                    path.join("metadata.toml")
                )
            } else {
                "None".to_string()
            };
            let run_in_transaction = run_in_transaction(&path.join("metadata.toml"));
            writeln!(
                out,
                "    MigrationSql {{ dir_name: Cow::Borrowed({name:?}), location: Cow::Borrowed(\"migrations/{backend}/{name}\"), up: Cow::Borrowed(include_str!({up:?})), down: {down}, metadata: {metadata}, run_in_transaction: {run_in_transaction} }},",
                up = path.join("up.sql"),
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("migration_sql.rs");
    fs::write(dest, out).unwrap();
}

/// Reads `run_in_transaction` the way Diesel does (default: true).
fn run_in_transaction(metadata: &Path) -> bool {
    let Ok(text) = fs::read_to_string(metadata) else {
        return true;
    };
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", metadata.display()));
    table
        .get("run_in_transaction")
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}
