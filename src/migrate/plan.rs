//! The migration plan: the migrations compiled into taskdb joined with what
//! the database has recorded, giving each one a state.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::ledger::{self, LedgerState, TrackedVersion};
use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{BlockReason, BlockedMigration, Error, Result};
use crate::source::{LocalMigration, MigrationSource};

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    /// Applied, and its `up.sql` is what was applied.
    Applied,
    /// Not applied yet.
    Pending,
    /// A run without a transaction was cut off (process killed or
    /// interrupted); the next `migrate` finishes or redoes it. When its
    /// revert was cut off, `rollback` can also finish the revert.
    Interrupted,
    /// Applied, but its `up.sql` has changed since.
    Modified,
    /// Applied, but no longer among the migrations taskdb knows, and older
    /// than this build's newest: a gap in the middle.
    Missing,
    /// Cut off as far as the ledger knows, but its statement is running on
    /// the server right now (another migrator, or the server finishing a
    /// killed client's index build). Shown by `status`; `migrate` waits for
    /// it.
    Running,
    /// Applied, unknown to this build, and newer than everything it knows:
    /// a later release applied it and the app was rolled back to this one.
    /// Normal during a rollback of the app; start-up goes on with a warning.
    Ahead,
    /// A run without a transaction failed part-way: the database may hold
    /// some of its changes.
    Dirty,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Interrupted => "interrupted",
            MigrationState::Running => "running",
            MigrationState::Modified => "modified",
            MigrationState::Missing => "missing",
            MigrationState::Ahead => "ahead",
            MigrationState::Dirty => "dirty",
        }
    }

    /// States `migrate` refuses to run past.
    pub fn blocks_migrate(self) -> bool {
        matches!(
            self,
            MigrationState::Modified | MigrationState::Missing | MigrationState::Dirty
        )
    }
}

/// One row of the plan.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub version: String,
    /// Directory name (from the code, or as the ledger remembers it).
    pub name: String,
    pub state: MigrationState,
    /// The migration in the code, if it is there.
    pub local: Option<LocalMigration>,
    /// What the database recorded, if anything.
    pub tracked: Option<TrackedVersion>,
}

impl PlanEntry {
    /// When it was applied (ledger time, else Diesel's).
    pub fn applied_at(&self) -> Option<NaiveDateTime> {
        let tracked = self.tracked.as_ref()?;
        if !tracked.recorded {
            return None;
        }
        tracked
            .ledger
            .as_ref()
            .map(|l| l.applied_at)
            .or(tracked.run_on)
    }

    /// Applied (by anyone) without a taskdb ledger row yet, and known to
    /// this build (only then is its checksum known).
    pub fn needs_ledger_row(&self) -> bool {
        self.local.is_some() && matches!(&self.tracked, Some(t) if t.recorded && t.ledger.is_none())
    }

    /// The ledger's error for a dirty migration.
    pub fn error(&self) -> Option<&str> {
        self.tracked.as_ref()?.ledger.as_ref()?.error.as_deref()
    }

    /// Cut off while its `down.sql` ran (without a transaction).
    pub fn is_interrupted_revert(&self) -> bool {
        matches!(&self.tracked, Some(t) if t.ledger.as_ref().is_some_and(|l| l.state == LedgerState::Reverting))
    }

    /// True when the database has it recorded as applied.
    pub fn is_recorded(&self) -> bool {
        matches!(&self.tracked, Some(t) if t.recorded)
    }
}

/// Every migration, in version order, with its state.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    pub backend: Backend,
    pub entries: Vec<PlanEntry>,
    /// The ledger table exists (false before taskdb's first run).
    pub ledger_exists: bool,
}

impl MigrationPlan {
    /// Reads the tracking tables (one query when both exist) and joins them
    /// with the compiled migrations. Changes nothing. Refuses migrations
    /// of which two share a version.
    pub fn load(conn: &mut DbConnection) -> Result<Self> {
        Self::load_from(conn, &MigrationSource::Embedded)
    }

    /// [`load`](Self::load) with the migrations of `source`.
    pub fn load_from(conn: &mut DbConnection, source: &MigrationSource) -> Result<Self> {
        let backend = conn.backend();
        let local = source.migrations(backend)?;
        check_unique_versions(&local)?;
        let (tracked, ledger_exists) = ledger::read(conn)?;
        Ok(Self::build(backend, local, tracked, ledger_exists))
    }

    /// The plan of a database that does not exist yet: every migration
    /// pending.
    pub fn for_new_database(backend: Backend, source: &MigrationSource) -> Result<Self> {
        let local = source.migrations(backend)?;
        check_unique_versions(&local)?;
        Ok(Self::build(backend, local, Vec::new(), false))
    }

    fn build(
        backend: Backend,
        local: Vec<LocalMigration>,
        tracked: Vec<TrackedVersion>,
        ledger_exists: bool,
    ) -> Self {
        let newest_local = local.iter().map(|m| m.version()).max();
        let mut entries: Vec<PlanEntry> = local
            .into_iter()
            .map(|m| {
                let version = m.version();
                let tracked = tracked.iter().find(|t| t.version == version).cloned();
                let state = state_of(Some(&m), tracked.as_ref());
                PlanEntry {
                    name: m.dir_name().to_string(),
                    version,
                    state,
                    local: Some(m),
                    tracked,
                }
            })
            .collect();
        for t in tracked {
            if entries.iter().any(|e| e.version == t.version) {
                continue;
            }
            let name = t
                .ledger
                .as_ref()
                .map(|l| l.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| t.version.clone());
            let mut state = state_of(None, Some(&t));
            if state == MigrationState::Missing
                && newest_local
                    .as_ref()
                    .is_none_or(|newest| &t.version > newest)
            {
                state = MigrationState::Ahead;
            }
            entries.push(PlanEntry {
                version: t.version.clone(),
                name,
                state,
                local: None,
                tracked: Some(t),
            });
        }
        entries.sort_by(|a, b| a.version.cmp(&b.version));
        MigrationPlan {
            backend,
            entries,
            ledger_exists,
        }
    }

    /// Migrations `migrate` would apply, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| {
            matches!(
                e.state,
                MigrationState::Pending | MigrationState::Interrupted | MigrationState::Running
            )
        })
    }

    /// Tells an `interrupted` migration whose work is in progress on the
    /// server right now (PostgreSQL) from one that is really cut off, and
    /// marks it `running`: the migration lock is held by another session,
    /// or a statement naming an index it creates is active. One query, and
    /// only when something is interrupted.
    pub fn observe_running(&mut self, conn: &mut DbConnection) -> Result<()> {
        if self.backend != Backend::Postgres || self.count(MigrationState::Interrupted) == 0 {
            return Ok(());
        }
        #[derive(QueryableByName)]
        struct Activity {
            #[diesel(sql_type = Bool)]
            lock_held: bool,
            /// Every active statement, lower-cased, one per line.
            #[diesel(sql_type = Text)]
            queries: String,
        }
        let key = super::lock::ADVISORY_LOCK_KEY;
        let activity: Activity = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                              AND classid = {high} AND objid = {low} AND objsubid = 1) AS lock_held,
                    coalesce((SELECT string_agg(lower(query), E'\\n') FROM pg_stat_activity
                               WHERE pid <> pg_backend_pid() AND datname = current_database()
                                 AND state <> 'idle'), '') AS queries",
            high = key >> 32,
            low = key & 0xffff_ffff,
        ))
        .get_result(conn)?;
        for entry in &mut self.entries {
            if entry.state != MigrationState::Interrupted {
                continue;
            }
            let Some(local) = &entry.local else { continue };
            let building = super::apply::created_index_names(local.up_sql())
                .iter()
                .any(|index| activity.queries.contains(&index.to_lowercase()));
            if activity.lock_held || building {
                entry.state = MigrationState::Running;
            }
        }
        Ok(())
    }

    /// The migrations `migrate` would apply, oldest first, up to and
    /// including `to` when given (as stored by Diesel, as the directory
    /// prefix or as the directory name).
    pub fn pending_up_to(&self, to: Option<&str>) -> Result<Vec<LocalMigration>> {
        let limit = to.map(|v| self.resolve(v)).transpose()?;
        Ok(self
            .pending()
            .filter(|e| limit.as_ref().is_none_or(|l| &e.version <= l))
            .filter_map(|e| e.local.clone())
            .collect())
    }

    /// The version of the migration a user means: the stored version
    /// (`20260208000001`), the directory prefix (`2026-02-08-000001`) or
    /// the full directory name.
    pub fn resolve(&self, input: &str) -> Result<String> {
        let wanted = input.trim();
        self.entries
            .iter()
            .find(|e| {
                e.name == wanted || e.version == wanted || e.name.split('_').next() == Some(wanted)
            })
            .map(|e| e.version.clone())
            .ok_or_else(|| Error::UnknownVersion(wanted.to_string()))
    }

    /// Migrations recorded as applied, oldest first.
    pub fn applied(&self) -> impl DoubleEndedIterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.is_recorded())
    }

    /// Entries that stop `migrate`: modified, missing or dirty.
    pub fn blockers(&self) -> Vec<&PlanEntry> {
        self.entries
            .iter()
            .filter(|e| e.state.blocks_migrate())
            .collect()
    }

    /// Refuses (with every blocker) when `migrate` cannot run past a
    /// migration's state.
    pub fn ensure_runnable(&self) -> Result<()> {
        let blocked: Vec<BlockedMigration> = self.blockers().into_iter().map(blocked).collect();
        if blocked.is_empty() {
            Ok(())
        } else {
            Err(Error::MigrationsBlocked(blocked))
        }
    }

    /// Migrations a later release applied (see [`MigrationState::Ahead`]).
    pub fn ahead(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries
            .iter()
            .filter(|e| e.state == MigrationState::Ahead)
    }

    /// The warning for a database ahead of this build, if it is.
    pub fn ahead_warning(&self) -> Option<String> {
        let names: Vec<&str> = self.ahead().map(|e| e.name.as_str()).collect();
        if names.is_empty() {
            return None;
        }
        Some(format!(
            "the database is ahead of this build: {} migration(s) newer than any it knows were applied by a later release ({}); starting without them (deploy that release again to go forward, or revert them with it)",
            names.len(),
            names.join(", ")
        ))
    }

    /// Nothing to apply, nothing wrong, nothing to record: the fast path.
    /// Migrations ahead of this build do not count against it.
    pub fn is_up_to_date(&self) -> bool {
        self.ledger_exists
            && self.entries.iter().all(|e| {
                matches!(e.state, MigrationState::Applied | MigrationState::Ahead)
                    && !e.needs_ledger_row()
            })
    }

    /// Number of entries in `state`.
    pub fn count(&self, state: MigrationState) -> usize {
        self.entries.iter().filter(|e| e.state == state).count()
    }
}

/// Refuses two migrations with one version: Diesel records one version
/// once, so the second's SQL would never run (`build.rs` refuses them too;
/// this holds for any set of migrations a plan is made of).
fn check_unique_versions(local: &[LocalMigration]) -> Result<()> {
    let names: Vec<&str> = local.iter().map(|m| m.dir_name()).collect();
    Ok(crate::versions::check_unique(&names)?)
}

fn state_of(local: Option<&LocalMigration>, tracked: Option<&TrackedVersion>) -> MigrationState {
    let Some(tracked) = tracked else {
        return MigrationState::Pending;
    };
    match tracked.ledger.as_ref().map(|l| l.state) {
        Some(LedgerState::Failed) => return MigrationState::Dirty,
        Some(LedgerState::Running) if !tracked.recorded => return MigrationState::Interrupted,
        // Still recorded as applied, but its down.sql was cut off: neither
        // applied nor reverted until `rollback` finishes or `migrate`
        // re-applies it.
        Some(LedgerState::Reverting) => return MigrationState::Interrupted,
        _ => {}
    }
    if !tracked.recorded {
        return MigrationState::Pending;
    }
    let Some(local) = local else {
        return MigrationState::Missing;
    };
    match &tracked.ledger {
        Some(row) if row.checksum != local.checksum() => MigrationState::Modified,
        _ => MigrationState::Applied,
    }
}

/// What `migrate` reports for a blocking entry.
fn blocked(entry: &PlanEntry) -> BlockedMigration {
    let reason = match entry.state {
        MigrationState::Modified => BlockReason::Modified,
        MigrationState::Missing => BlockReason::Missing,
        _ => BlockReason::Dirty {
            error: entry.error().map(str::to_string),
        },
    };
    BlockedMigration {
        version: entry.version.clone(),
        name: entry.name.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_of_two_migrations_with_one_version_is_refused_naming_both() {
        let local = [
            LocalMigration::leaked("2026-11-28-000019_probe", "SELECT 1;"),
            LocalMigration::leaked("2026-11-28-000020_probe_b", "SELECT 2;"),
            LocalMigration::leaked("2026-11-28-000020_probe_a", "SELECT 3;"),
        ];
        let err = check_unique_versions(&local).unwrap_err().to_string();
        assert!(err.starts_with("refusing to migrate: "), "{err}");
        assert!(
            err.contains("2026-11-28-000020_probe_a and 2026-11-28-000020_probe_b"),
            "{err}"
        );
        assert!(check_unique_versions(&local[..2]).is_ok());
        // Every compiled-in set passes (build.rs refuses the others).
        for backend in [Backend::Postgres, Backend::Sqlite] {
            assert!(MigrationPlan::for_new_database(backend, &MigrationSource::Embedded).is_ok());
        }
    }
}
