//! One model of a migration directory. A [`MigrationSource`] is either the
//! migrations compiled into taskdb (embedded by `build.rs` from
//! `migrations/<backend>/`, the library's default) or a directory read at
//! run time (`taskdb --migrations-dir DIR`, so a team tries a new
//! migration without rebuilding taskdb). Migrate, lint, the pre-flight,
//! verify and `taskdb new` all read migrations through it.

mod backfill;
mod dir;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::db::Backend;
use crate::error::{Error, Result};

pub use backfill::Backfill;
pub use dir::read_backend_dir;
#[cfg(feature = "cli")]
pub use dir::NotUtf8;

/// The files of one migration directory: compiled in (borrowed) or read at
/// run time (owned).
#[derive(Debug, Clone)]
pub(crate) struct MigrationSql {
    pub dir_name: Cow<'static, str>,
    /// How its directory is shown (`migrations/postgres/NAME`).
    pub location: Cow<'static, str>,
    pub up: Cow<'static, str>,
    pub down: Option<Cow<'static, str>>,
    pub metadata: Option<Cow<'static, str>>,
    pub run_in_transaction: bool,
}

include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));

/// Where migrations come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MigrationSource {
    /// The migrations compiled into this build of taskdb.
    #[default]
    Embedded,
    /// A directory read at run time: one holding `postgres/` and `sqlite/`
    /// (as taskdb's own `migrations/`), or one backend's migration
    /// directories (as the diesel CLI's `--migration-dir`).
    Dir(PathBuf),
}

impl MigrationSource {
    /// The directory `backend`'s migrations are read from (`None` when
    /// they are compiled in).
    pub fn backend_dir(&self, backend: Backend) -> Option<PathBuf> {
        match self {
            MigrationSource::Embedded => None,
            MigrationSource::Dir(root) => {
                let nested = root.join(backend_dir_name(backend));
                Some(if nested.is_dir() {
                    nested
                } else {
                    root.clone()
                })
            }
        }
    }

    /// The migrations for `backend`, oldest first. Compiled in: none for a
    /// backend this build leaves out. From a directory: an unreadable
    /// directory or a file that is not UTF-8 text is an error.
    pub fn migrations(&self, backend: Backend) -> Result<Vec<LocalMigration>> {
        match self.backend_dir(backend) {
            None => Ok(embedded(backend)),
            Some(dir) => {
                let (migrations, unreadable) = read_backend_dir(&dir)?;
                match unreadable.into_iter().next() {
                    Some(bad) => Err(Error::MigrationsDir {
                        path: bad.path.display().to_string(),
                        reason: format!(
                            "not UTF-8 text (an invalid byte at line {}, column {})",
                            bad.line, bad.column
                        ),
                    }),
                    None => Ok(migrations),
                }
            }
        }
    }

    /// Finds the migration a user means: the stored version
    /// (`20260208000001`), the directory prefix (`2026-02-08-000001`) or
    /// the full directory name.
    pub fn resolve(&self, backend: Backend, input: &str) -> Result<LocalMigration> {
        let wanted = input.trim();
        self.migrations(backend)?
            .into_iter()
            .find(|m| {
                m.dir_name() == wanted
                    || m.version() == wanted
                    || m.dir_name().split('_').next() == Some(wanted)
            })
            .ok_or_else(|| Error::UnknownVersion(wanted.to_string()))
    }

    /// The pre-flight's facts file (`lint-facts.json`) for these
    /// migrations: compiled in, or beside the backend directories.
    pub fn facts(&self) -> Option<Cow<'static, str>> {
        match self {
            MigrationSource::Embedded => Some(Cow::Borrowed(EMBEDDED_FACTS)),
            MigrationSource::Dir(root) => {
                let candidates = [root.join("lint-facts.json"), parent_facts(root)];
                candidates
                    .iter()
                    .find_map(|p| std::fs::read_to_string(p).ok())
                    .map(Cow::Owned)
            }
        }
    }
}

/// `lint-facts.json` one level up, for a directory given as one backend's
/// (`migrations/postgres`).
fn parent_facts(root: &Path) -> PathBuf {
    root.parent().unwrap_or(root).join("lint-facts.json")
}

/// taskdb's own PostgreSQL migrations, linted (`taskdb lint --write-facts`).
static EMBEDDED_FACTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/migrations/lint-facts.json"
));

/// The name of a backend's directory under `migrations/`.
pub fn backend_dir_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    }
}

/// One migration directory.
#[derive(Debug, Clone)]
pub struct LocalMigration {
    sql: Arc<MigrationSql>,
}

impl LocalMigration {
    /// A migration from its files' text (as read from a directory, or
    /// built by a test); `location` is how its directory is shown.
    pub fn from_files(
        dir_name: &str,
        location: String,
        up: String,
        down: Option<String>,
        metadata: Option<String>,
    ) -> Self {
        let run_in_transaction = run_in_transaction(metadata.as_deref());
        LocalMigration {
            sql: Arc::new(MigrationSql {
                dir_name: Cow::Owned(dir_name.to_string()),
                location: Cow::Owned(location),
                up: Cow::Owned(up),
                down: down.map(Cow::Owned),
                metadata: metadata.map(Cow::Owned),
                run_in_transaction,
            }),
        }
    }

    /// The same migration, shown at `location` (the facts file names
    /// migrations relative to the crate, whatever directory was read).
    pub fn relocated(&self, location: String) -> Self {
        let mut sql = (*self.sql).clone();
        sql.location = Cow::Owned(location);
        LocalMigration { sql: Arc::new(sql) }
    }

    /// A test's own migration (apply's tests, which need a server).
    #[cfg(all(test, feature = "postgres", feature = "testing"))]
    pub(crate) fn from_sql(sql: &'static MigrationSql) -> Self {
        LocalMigration {
            sql: Arc::new(sql.clone()),
        }
    }

    /// The version as Diesel stores it: the directory prefix without dashes
    /// (`2026-02-08-000001_create_tasks` → `20260208000001`).
    pub fn version(&self) -> String {
        version_of(&self.sql.dir_name)
    }

    /// The directory name, e.g. `2026-02-08-000001_create_tasks`.
    pub fn dir_name(&self) -> &str {
        &self.sql.dir_name
    }

    /// How its directory is shown, e.g.
    /// `migrations/postgres/2026-02-08-000001_create_tasks`.
    pub fn location(&self) -> &str {
        &self.sql.location
    }

    /// The part after the version, e.g. `create_tasks`.
    pub fn name(&self) -> &str {
        let dir_name: &str = &self.sql.dir_name;
        dir_name
            .split_once('_')
            .map(|(_, name)| name)
            .unwrap_or(dir_name)
    }

    pub fn up_sql(&self) -> &str {
        &self.sql.up
    }

    pub fn down_sql(&self) -> Option<&str> {
        self.sql.down.as_deref()
    }

    /// Its `metadata.toml`, when it has one.
    pub fn metadata(&self) -> Option<&str> {
        self.sql.metadata.as_deref()
    }

    /// True when this migration checks the existing tasks against users
    /// (a `VALIDATE` of the tasks → users foreign key on PostgreSQL, a
    /// rebuild of `tasks` with it on SQLite), so it fails on tasks that
    /// belong to no user. `migrate` looks for those right before it.
    pub fn checks_task_owners(&self) -> bool {
        checks_task_owners(&self.sql.up)
    }

    /// The `[backfill]` of its `metadata.toml`: an `UPDATE` taskdb runs in
    /// batches on PostgreSQL. An error when that table is incomplete.
    pub fn backfill(&self) -> Result<Option<Backfill>> {
        Backfill::from_metadata(self.metadata(), self.location())
    }

    /// False when `metadata.toml` says `run_in_transaction = false`.
    pub fn run_in_transaction(&self) -> bool {
        self.sql.run_in_transaction
    }

    /// SHA-256 of `up.sql` with CRLF line endings read as LF, so a checkout
    /// on Windows does not count as an edit.
    pub fn checksum(&self) -> String {
        checksum(&self.sql.up)
    }
}

#[cfg(test)]
impl LocalMigration {
    /// A migration that is not compiled in, for tests of what uses them.
    pub(crate) fn leaked(dir_name: &str, up: &str) -> Self {
        Self::leaked_with_metadata(dir_name, up, None)
    }

    /// [`Self::leaked`] with a `metadata.toml`.
    pub(crate) fn leaked_with_metadata(dir_name: &str, up: &str, metadata: Option<&str>) -> Self {
        Self::from_files(
            dir_name,
            format!("migrations/postgres/{dir_name}"),
            up.to_string(),
            None,
            metadata.map(String::from),
        )
    }
}

/// Reads `run_in_transaction` the way Diesel does (default: true).
fn run_in_transaction(metadata: Option<&str>) -> bool {
    metadata
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("run_in_transaction")?.as_bool())
        .unwrap_or(true)
}

/// SHA-256 (hex) of migration SQL, line endings normalised.
pub fn checksum(sql: &str) -> String {
    let normalised = sql.replace("\r\n", "\n");
    let digest = Sha256::digest(normalised.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// See [`LocalMigration::checks_task_owners`].
fn checks_task_owners(up_sql: &str) -> bool {
    let sql = up_sql.to_ascii_lowercase();
    let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    sql.contains("validate constraint fk_tasks_user_id")
        || (sql.contains("references users") && !sql.contains("not valid"))
}

/// Diesel's version for a directory name.
pub(crate) fn version_of(dir_name: &str) -> String {
    crate::versions::version_of(dir_name)
}

/// The migrations compiled in for `backend`, oldest first; none for a
/// backend this build leaves out (its SQL is not embedded).
pub fn migrations(backend: Backend) -> Vec<LocalMigration> {
    embedded(backend)
}

fn embedded(backend: Backend) -> Vec<LocalMigration> {
    let table: &[MigrationSql] = match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => POSTGRES,
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => SQLITE,
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    table
        .iter()
        .map(|sql| LocalMigration {
            sql: Arc::new(sql.clone()),
        })
        .collect()
}

/// [`MigrationSource::resolve`] on the compiled-in migrations.
pub fn resolve(backend: Backend, input: &str) -> Result<LocalMigration> {
    MigrationSource::Embedded.resolve(backend, input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_that_check_existing_task_owners() {
        assert!(checks_task_owners(
            "ALTER TABLE tasks\n  VALIDATE CONSTRAINT fk_tasks_user_id;"
        ));
        assert!(checks_task_owners(
            "CREATE TABLE tasks_new (user_id VARCHAR(255) NOT NULL REFERENCES users (id));"
        ));
        assert!(!checks_task_owners(
            "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"
        ));
        assert!(!checks_task_owners("CREATE INDEX ON tasks (user_id);"));
    }

    #[test]
    fn versions_follow_diesel() {
        assert_eq!(
            version_of("2026-02-08-000001_create_tasks"),
            "20260208000001"
        );
        assert_eq!(
            version_of("00000000000000_diesel_initial_setup"),
            "00000000000000"
        );
    }

    #[test]
    fn resolve_accepts_every_spelling() {
        // Both backends name their migrations alike; either one built in.
        let backend = if cfg!(feature = "postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        for input in [
            "20260208000002",
            "2026-02-08-000002",
            "2026-02-08-000002_create_users",
        ] {
            assert_eq!(resolve(backend, input).unwrap().name(), "create_users");
        }
        assert!(matches!(
            resolve(backend, "1999"),
            Err(Error::UnknownVersion(_))
        ));
    }

    #[test]
    fn checksum_ignores_line_endings_only() {
        assert_eq!(checksum("a;\r\nb;\r\n"), checksum("a;\nb;\n"));
        assert_ne!(checksum("a;\nb;\n"), checksum("a;\nc;\n"));
    }

    #[test]
    fn non_transactional_migrations_hold_exactly_one_statement() {
        // Diesel sends a file as one simple query; with several statements
        // PostgreSQL wraps them in an implicit transaction, which CREATE
        // INDEX CONCURRENTLY refuses.
        for backend in [Backend::Postgres, Backend::Sqlite] {
            for m in migrations(backend)
                .iter()
                .filter(|m| !m.run_in_transaction())
            {
                for sql in [Some(m.up_sql()), m.down_sql()].into_iter().flatten() {
                    let statements = strip_comments(sql)
                        .split(';')
                        .filter(|s| !s.trim().is_empty())
                        .count();
                    assert_eq!(statements, 1, "{}", m.dir_name());
                }
            }
        }
    }

    fn strip_comments(sql: &str) -> String {
        sql.lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
