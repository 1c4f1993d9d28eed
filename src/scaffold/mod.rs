//! Writing the next migration for both backends (`taskdb new`).
//!
//! A request (a name and a [`Recipe`]) becomes one or more migration
//! directories, each written to `migrations/postgres/` and
//! `migrations/sqlite/` under the same name, so the two histories never
//! drift apart. The recipes are the online-safe shapes (docs/lint.md) in
//! PostgreSQL (`NOT VALID` then `VALIDATE`, `CREATE INDEX CONCURRENTLY`
//! alone without a transaction, constant defaults only) and their SQLite
//! equivalents (plain DDL, or the table rebuild SQLite needs to add a
//! constraint to an existing table).
//!
//! Everything but [`write`] is pure: [`plan`] reads the crate's migration
//! directories, derives the current SQLite schema from them (see
//! [`sqlite_schema`]) and returns the files it would write.

pub mod recipes;
pub mod sqlite_schema;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

pub use recipes::{
    is_constant_default, AddCheck, AddColumn, AddForeignKey, AddIndex, Backfill, ColumnRef,
    OnDelete, Recipe,
};

/// The two migration directories, relative to the crate root.
pub const BACKEND_DIRS: [&str; 2] = ["migrations/postgres", "migrations/sqlite"];

/// Why `taskdb new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Neither the working directory nor any parent holds a crate with both
    /// migration directories.
    #[error("no crate with migrations/postgres and migrations/sqlite in {0} or any directory above it: run `taskdb new` inside the taskdb checkout")]
    NotACrate(String),

    /// The name would not make a directory name in the repository's form.
    #[error("invalid migration name `{0}`: use lowercase letters, digits and underscores only ([a-z0-9_]+), e.g. add_tasks_due_date")]
    BadName(String),

    /// A migration of that name exists already (in either backend).
    #[error("a migration named `{name}` already exists: {existing}; pick another name")]
    NameTaken { name: String, existing: String },

    /// The request is not safe or not possible as given; the message says
    /// what to do instead.
    #[error("{0}")]
    Refused(String),

    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },

    /// Two migration directories of a backend share a version (two
    /// branches merged, say): a new one would only add to the confusion.
    #[error("{dir}: {duplicate}")]
    DuplicateVersion {
        dir: &'static str,
        duplicate: crate::versions::DuplicateVersion,
    },

    /// The crate's SQLite migrations do not apply to an empty database, so
    /// the current schema cannot be derived from them.
    #[error("the SQLite migration {migration} does not apply to an empty database ({reason}); fix it before adding another migration")]
    SqliteMigrations { migration: String, reason: String },
}

pub type Result<T, E = ScaffoldError> = std::result::Result<T, E>;

fn io_error(path: &Path, e: std::io::Error) -> ScaffoldError {
    ScaffoldError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The files of one migration directory for one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFiles {
    pub up: String,
    pub down: String,
    /// `metadata.toml`, for a migration that must run outside a transaction.
    pub metadata: Option<String>,
}

/// One migration, as written to both backends under the same directory name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMigration {
    /// E.g. `2026-11-27-000013_add_tasks_due_date`.
    pub dir_name: String,
    pub postgres: MigrationFiles,
    pub sqlite: MigrationFiles,
}

/// A crate checkout holding `migrations/postgres` and `migrations/sqlite`.
#[derive(Debug, Clone)]
pub struct Checkout {
    root: PathBuf,
}

/// Holds a checkout's `taskdb new` lock (see [`Checkout::lock`]).
#[derive(Debug)]
pub struct NewLock {
    _dir: fs::File,
}

/// A migration directory already in the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingMigration {
    /// `migrations/postgres` or `migrations/sqlite`.
    pub backend_dir: &'static str,
    pub dir_name: String,
    /// `2026-02-08`.
    pub date: String,
    /// `000003` as a number.
    pub number: u32,
    /// `add_tasks_user_fk`.
    pub name: String,
}

impl Checkout {
    /// The nearest directory, from `start` upwards, holding `Cargo.toml`
    /// and both migration directories (`taskdb new` works from any
    /// subdirectory of the crate, as the diesel CLI does).
    pub fn find(start: &Path) -> Result<Self> {
        start
            .ancestors()
            .find(|dir| {
                dir.join("Cargo.toml").is_file()
                    && BACKEND_DIRS.iter().all(|d| dir.join(d).is_dir())
            })
            .map(|root| Checkout {
                root: root.to_path_buf(),
            })
            .ok_or_else(|| ScaffoldError::NotACrate(start.display().to_string()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waits for, then holds until the guard drops, the checkout's
    /// `taskdb new` lock (an exclusive `flock` of the `migrations`
    /// directory, which the system releases when the process ends, however
    /// it ends): two runs at once would both number their migration after
    /// the same newest one. Plan and write under it.
    pub fn lock(&self) -> Result<NewLock> {
        let dir = self.root.join("migrations");
        let file = fs::File::open(&dir).map_err(|e| io_error(&dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            extern "C" {
                fn flock(
                    fd: std::os::raw::c_int,
                    operation: std::os::raw::c_int,
                ) -> std::os::raw::c_int;
            }
            const LOCK_EX: std::os::raw::c_int = 2;
            loop {
                // SAFETY: flock only reads the descriptor, which `file`
                // keeps open for the guard's life.
                if unsafe { flock(file.as_raw_fd(), LOCK_EX) } == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(io_error(&dir, e));
                }
            }
        }
        Ok(NewLock { _dir: file })
    }

    /// Refuses a backend whose migration directories share a version,
    /// naming both (see [`crate::versions`]).
    pub fn check_versions(&self) -> Result<()> {
        for backend_dir in BACKEND_DIRS {
            let dir = self.root.join(backend_dir);
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && !name.starts_with('.') {
                    names.push(name);
                }
            }
            crate::versions::check_unique(&names).map_err(|duplicate| {
                ScaffoldError::DuplicateVersion {
                    dir: backend_dir,
                    duplicate,
                }
            })?;
        }
        Ok(())
    }

    /// Every migration directory of both backends in the repository's
    /// form (`YYYY-MM-DD-NNNNNN_name`), oldest first. Diesel's own
    /// `00000000000000_diesel_initial_setup` and anything else that is not
    /// a migration directory (a `.diesel_lock`) are left out.
    pub fn existing(&self) -> Result<Vec<ExistingMigration>> {
        let mut found = Vec::new();
        for backend_dir in BACKEND_DIRS {
            let dir = self.root.join(backend_dir);
            let entries = fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                if !entry.path().is_dir() {
                    continue;
                }
                let dir_name = entry.file_name().to_string_lossy().into_owned();
                if let Some((date, number, name)) = parse_dir_name(&dir_name) {
                    found.push(ExistingMigration {
                        backend_dir,
                        date: date.to_string(),
                        number,
                        name: name.to_string(),
                        dir_name,
                    });
                }
            }
        }
        found.sort_by(|a, b| {
            (a.number, &a.dir_name, a.backend_dir).cmp(&(b.number, &b.dir_name, b.backend_dir))
        });
        Ok(found)
    }

    /// The `up.sql` files of the SQLite migrations, oldest first.
    pub fn sqlite_up_sql(&self) -> Result<Vec<(String, String)>> {
        let dir = self.root.join(BACKEND_DIRS[1]);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| io_error(&dir, e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join("up.sql").is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let path = dir.join(&name).join("up.sql");
                let sql = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
                Ok((name, sql))
            })
            .collect()
    }
}

/// Splits `2026-02-08-000003_add_tasks_user_fk` into its date, number and name.
pub fn parse_dir_name(dir_name: &str) -> Option<(&str, u32, &str)> {
    let (prefix, name) = dir_name.split_once('_')?;
    let shape_ok = prefix.len() == 17
        && prefix.char_indices().all(|(i, c)| {
            matches!(i, 4 | 7 | 10) == (c == '-') && (c == '-' || c.is_ascii_digit())
        });
    if !shape_ok || name.is_empty() {
        return None;
    }
    let number = prefix[11..].parse().ok()?;
    Some((&prefix[..10], number, name))
}

/// True for a name in `[a-z0-9_]+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Plans the migrations for `name` and `recipe` in `checkout`, dated
/// `today` (UTC), without writing anything.
pub fn plan(
    checkout: &Checkout,
    name: &str,
    recipe: &Recipe,
    today: NaiveDate,
) -> Result<Vec<NewMigration>> {
    if !is_valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    checkout.check_versions()?;
    let existing = checkout.existing()?;
    let needs_schema = !matches!(recipe, Recipe::Skeleton);
    let schema = if needs_schema {
        sqlite_schema::SqliteSchema::from_migrations(&checkout.sqlite_up_sql()?)?
    } else {
        sqlite_schema::SqliteSchema::default()
    };
    let steps = recipes::build(name, recipe, &schema)?;
    for step in &steps {
        if let Some(taken) = existing.iter().find(|m| m.name == step.name) {
            return Err(ScaffoldError::NameTaken {
                name: step.name.clone(),
                existing: format!("{}/{}", taken.backend_dir, taken.dir_name),
            });
        }
    }
    let newest = existing.iter().map(|m| m.number).max().unwrap_or(0);
    // Directory names sort by date first: never date a migration before the
    // newest one (a clock behind, or one written in another time zone), or
    // it would sort, and run, before it.
    let today = today.format("%Y-%m-%d").to_string();
    let date = existing
        .iter()
        .map(|m| m.date.clone())
        .max()
        .filter(|newest_date| *newest_date > today)
        .unwrap_or(today);
    Ok(steps
        .into_iter()
        .zip(newest + 1..)
        .map(|(step, number)| NewMigration {
            dir_name: format!("{date}-{number:06}_{}", step.name),
            postgres: step.postgres,
            sqlite: step.sqlite,
        })
        .collect())
}

/// Writes planned migrations into `checkout`; returns the paths written.
/// Refuses (and writes nothing) when one of the directories exists.
pub fn write(checkout: &Checkout, migrations: &[NewMigration]) -> Result<Vec<PathBuf>> {
    let targets: Vec<(PathBuf, &MigrationFiles)> = migrations
        .iter()
        .flat_map(|m| {
            [
                (
                    checkout.root.join(BACKEND_DIRS[0]).join(&m.dir_name),
                    &m.postgres,
                ),
                (
                    checkout.root.join(BACKEND_DIRS[1]).join(&m.dir_name),
                    &m.sqlite,
                ),
            ]
        })
        .collect();
    if let Some((dir, _)) = targets.iter().find(|(dir, _)| dir.exists()) {
        return Err(ScaffoldError::NameTaken {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            existing: dir.display().to_string(),
        });
    }
    let mut written = Vec::new();
    for (dir, files) in targets {
        fs::create_dir(&dir).map_err(|e| io_error(&dir, e))?;
        let mut contents = vec![("up.sql", &files.up), ("down.sql", &files.down)];
        if let Some(metadata) = &files.metadata {
            contents.push(("metadata.toml", metadata));
        }
        for (file, text) in contents {
            let path = dir.join(file);
            fs::write(&path, text).map_err(|e| io_error(&path, e))?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_in_the_repository_form() {
        assert_eq!(
            parse_dir_name("2026-02-08-000003_add_tasks_user_fk"),
            Some(("2026-02-08", 3, "add_tasks_user_fk"))
        );
        assert_eq!(parse_dir_name("00000000000000_diesel_initial_setup"), None);
        // diesel 2.3's own form is not the repository's.
        assert_eq!(parse_dir_name("2026-11-27-154325-0000_x"), None);
        assert_eq!(parse_dir_name(".diesel_lock"), None);
        assert_eq!(parse_dir_name("2026-02-08-000003_"), None);
    }

    /// A checkout with empty migration directories named `dirs`.
    fn checkout_with(dirs: &[&str]) -> (tempfile::TempDir, Checkout) {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("Cargo.toml"), "").unwrap();
        for backend in BACKEND_DIRS {
            fs::create_dir_all(root.path().join(backend)).unwrap();
        }
        for dir in dirs {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let checkout = Checkout::find(root.path()).unwrap();
        (root, checkout)
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn numbers_follow_the_newest_of_both_backends() {
        let (_root, checkout) = checkout_with(&[
            "migrations/postgres/00000000000000_diesel_initial_setup",
            "migrations/postgres/2026-02-08-000012_twelve",
            "migrations/sqlite/2026-03-01-000014_fourteen",
            "migrations/sqlite/.diesel_lock",
        ]);
        let planned = plan(&checkout, "next", &Recipe::Skeleton, day("2026-11-27")).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].dir_name, "2026-11-27-000015_next");
        // A clock behind the newest migration never dates one before it.
        let planned = plan(&checkout, "next", &Recipe::Skeleton, day("2026-01-01")).unwrap();
        assert_eq!(planned[0].dir_name, "2026-03-01-000015_next");
        // An empty history starts at 1.
        let (_root, empty) = checkout_with(&[]);
        let planned = plan(&empty, "first", &Recipe::Skeleton, day("2026-11-27")).unwrap();
        assert_eq!(planned[0].dir_name, "2026-11-27-000001_first");
    }

    #[test]
    fn write_refuses_a_directory_that_exists() {
        let (root, checkout) = checkout_with(&["migrations/sqlite/2026-11-27-000001_first"]);
        let planned = vec![NewMigration {
            dir_name: "2026-11-27-000001_first".into(),
            postgres: MigrationFiles {
                up: "SELECT 1;".into(),
                down: "SELECT 1;".into(),
                metadata: None,
            },
            sqlite: MigrationFiles {
                up: "SELECT 1;".into(),
                down: "SELECT 1;".into(),
                metadata: None,
            },
        }];
        assert!(write(&checkout, &planned).is_err());
        // Nothing was written for the other backend either.
        assert!(!root
            .path()
            .join("migrations/postgres/2026-11-27-000001_first")
            .exists());
    }

    #[test]
    fn names_are_lowercase_words() {
        assert!(is_valid_name("add_tasks_due_date"));
        assert!(is_valid_name("v2"));
        for bad in ["", "Add", "add-projects", "add projects", "../x", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
