//! Databases a test process leaves at exit for the next one of the same
//! template, so that its first tests claim a database instead of waiting
//! for clones (a clone takes 0.1–0.6 s on a loaded machine, and the first
//! tests of a process all start at once).
//!
//! At a normal exit a process renames its databases that are ready (reset,
//! as empty as a fresh clone) to `taskdb_w_<template hash>_<random>`, and
//! the ones still waiting for their reset to `taskdb_d_<template hash>_…`
//! (the next process resets them before any test sees them), at most
//! [`WARM_VARIABLE`](super::WARM_VARIABLE) per template. The first claim of
//! the next process renames them back to names of its own (owner key and
//! all, see `owner`): a rename is atomic, so each goes to one process, and
//! from then on it is that process's like a clone — swept if the process is
//! killed, so a database a test was using never comes back warm. Warm
//! databases are a bounded cache like templates: the sweep drops those
//! beyond the bound and those whose template is gone (evicted).

use diesel::connection::SimpleConnection;

use super::owner::{name_for, with_owner_connection};
use super::server::{database_names, drop_databases, rename_unused, with_admin};
use crate::db::{DatabaseUrl, DbConnection};
use crate::error::Result;

/// How a ready database left for the next process is named, before its
/// template's hash.
const CLEAN: &str = "taskdb_w_";
/// How a database left before its reset is named.
const DIRTY: &str = "taskdb_d_";

/// The template's hash in its name (`taskdb_tpl_<hash>`).
fn hash(template: &str) -> &str {
    template.rsplit('_').next().unwrap_or(template)
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// What a process found left for it.
#[derive(Debug, Default)]
pub(super) struct Taken {
    /// Ready: reset by the process that left them.
    pub(super) clean: Vec<String>,
    /// To be reset before a test gets them.
    pub(super) dirty: Vec<String>,
}

/// Takes up to `at_most` databases left for `template`, renaming each to a
/// name this process owns; `owned` is told each new name before its
/// rename, so that an exit meanwhile drops it. Ready ones first. On the
/// connection holding the process's locks: at the start of a process no
/// other is open yet.
pub(super) fn take(
    server: &DatabaseUrl,
    template: &str,
    at_most: usize,
    mut owned: impl FnMut(&str),
) -> Result<Taken> {
    if at_most == 0 {
        return Ok(Taken::default());
    }
    let h = hash(template);
    with_owner_connection(server, |conn, key| {
        // Ready ones first.
        let mut left = left_for(conn, h)?;
        left.sort_by_key(|name| (!name.starts_with(CLEAN), name.clone()));
        let pairs: Vec<(String, String, bool)> = left
            .into_iter()
            .take(at_most)
            .map(|old| {
                let ready = old.starts_with(CLEAN);
                (old, name_for(key), ready)
            })
            .collect();
        for (_, new, _) in &pairs {
            owned(new);
        }
        // All in one transaction, one commit (without waiting for its
        // flush: a lost rename only loses a cache entry); if another
        // process took one first, one at a time.
        let mut batch = String::from("SET synchronous_commit = off; BEGIN;");
        for (old, new, _) in &pairs {
            batch.push_str(&format!(" ALTER DATABASE {old} RENAME TO {new};"));
        }
        batch.push_str(" COMMIT; RESET synchronous_commit;");
        let all = conn.batch_execute(&batch).is_ok();
        let mut taken = Taken::default();
        if !all {
            let _ = conn.batch_execute("ROLLBACK; RESET synchronous_commit");
        }
        for (old, new, ready) in pairs {
            // Fails if another process took it first (or a sweep dropped
            // it): the next one.
            if all || rename(conn, &old, &new).is_ok() {
                if ready {
                    taken.clean.push(new);
                } else {
                    taken.dirty.push(new);
                }
            }
        }
        Ok(taken)
    })
}

/// The databases left for the template of hash `h`, of both kinds, in
/// one query (each round trip counts: the first wave of tests waits for
/// a take, and a process's exit for a leave).
fn left_for(conn: &mut DbConnection, h: &str) -> Result<Vec<String>> {
    let mut left = database_names(conn, "taskdb_%")?;
    left.retain(|name| {
        name.strip_prefix(CLEAN)
            .or_else(|| name.strip_prefix(DIRTY))
            .is_some_and(|rest| rest.starts_with(&format!("{h}_")))
    });
    Ok(left)
}

fn rename(admin: &mut DbConnection, old: &str, new: &str) -> Result<()> {
    Ok(admin.batch_execute(&format!("ALTER DATABASE {old} RENAME TO {new}"))?)
}

/// Leaves `clean` (ready) and then `dirty` (used, not reset) databases of
/// `template` for the next process, as many as fit under `bound` beside
/// those already left. Returns the ones left: no longer this process's.
pub(super) fn leave(
    server: &DatabaseUrl,
    template: &str,
    clean: &[String],
    dirty: &[String],
    bound: usize,
) -> Vec<String> {
    if bound == 0 || clean.len() + dirty.len() == 0 {
        return Vec::new();
    }
    let h = hash(template);
    with_admin(server, |admin| {
        admin.batch_execute("SET synchronous_commit = off")?;
        let already = left_for(admin, h)?.len();
        let mut room = bound.saturating_sub(already);
        let mut left = Vec::new();
        for (names, prefix) in [(clean, CLEAN), (dirty, DIRTY)] {
            for name in names {
                if room == 0 {
                    break;
                }
                // A used database may still have this process's sessions
                // leaving (its tests' pools): they are ended first, as for
                // any rename of the process's own databases.
                if rename_unused(admin, name, &format!("{prefix}{h}_{}", random())).is_ok() {
                    left.push(name.clone());
                    room -= 1;
                }
            }
        }
        let _ = admin.batch_execute("RESET synchronous_commit");
        Ok(left)
    })
    .unwrap_or_default()
}

/// Drops the databases left for templates that no longer exist, and those
/// beyond `bound` per template (a process taking them at the same moment
/// just finds fewer).
pub(super) fn sweep(server: &DatabaseUrl, admin: &mut DbConnection, bound: usize) -> Result<()> {
    let templates: Vec<String> = database_names(admin, "taskdb_tpl_%")?
        .into_iter()
        .filter(|t| !t.ends_with("_build"))
        .collect();
    let mut doomed = Vec::new();
    let mut per_template: std::collections::HashMap<String, usize> = Default::default();
    let mut left = database_names(admin, &format!("{CLEAN}%"))?;
    left.extend(database_names(admin, &format!("{DIRTY}%"))?);
    for name in left {
        let Some(h) = name.split('_').nth(2) else {
            continue;
        };
        let known = templates.iter().any(|t| hash(t) == h);
        let seen = per_template.entry(h.to_string()).or_default();
        *seen += 1;
        if !known || *seen > bound {
            doomed.push(name);
        }
    }
    drop_databases(server, &doomed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_hash_is_the_last_part_of_its_name() {
        assert_eq!(hash("taskdb_tpl_0123456789ab"), "0123456789ab");
        let left = format!("{CLEAN}{}_{}", hash("taskdb_tpl_0123456789ab"), "deadbeef");
        assert_eq!(left.split('_').nth(2), Some("0123456789ab"));
    }
}
