//! The migrated SQLite template file, built once per set of migrations in
//! the temp directory and checked once per process (a file of that name
//! holding any other migrations is built again); each test copies it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;

use super::template;
use crate::db::{self, Backend, DatabaseUrl};
use crate::error::{Error, Result};
use crate::migrate::{self, MigrationPlan, MigrationState};

/// The migrated SQLite template file for the current migrations, built
/// once (atomically renamed into place, so parallel processes never see a
/// half-built one). A file of that name that does not hold exactly these
/// migrations, all applied, is built again: anything can open a file in
/// the temp directory and migrate it further.
pub(super) fn sqlite_template() -> Result<&'static Path> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = PATH.get() {
        return Ok(path);
    }
    let path = std::env::temp_dir().join(format!(
        "{}.sqlite",
        template::template_key(Backend::Sqlite)
    ));
    if !(path.exists() && holds_exactly_these_migrations(&path)) {
        build_sqlite_template(&path)?;
    }
    Ok(PATH.get_or_init(|| path))
}

/// Whether the SQLite file at `path` has this build's migrations applied
/// and no others.
fn holds_exactly_these_migrations(path: &Path) -> bool {
    let check = || -> Result<bool> {
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        let plan = MigrationPlan::load(&mut db::connect(&url)?)?;
        Ok(plan.is_up_to_date()
            && plan
                .entries
                .iter()
                .all(|e| e.state == MigrationState::Applied))
    };
    check().unwrap_or(false)
}

/// Migrates a new file next to `path` and renames it over `path`.
fn build_sqlite_template(path: &Path) -> Result<()> {
    let building = path.with_extension(format!(
        "{}.{}.building",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let url = DatabaseUrl::parse(&format!("sqlite://{}", building.display()))?;
    migrate::run_pending(&url)?;
    // Fold the WAL into the file, so the file alone is the database
    // (still in WAL mode, as every database taskdb migrates).
    let mut conn = db::connect(&url)?;
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    std::fs::rename(&building, path)
        .map_err(|e| Error::InvalidInput(format!("cannot put the SQLite template in place: {e}")))
}
