//! A backfill migration: an `UPDATE` of many rows that taskdb runs in
//! batches, described by the `[backfill]` table of its `metadata.toml`.
//! Its `up.sql` is the same change as one ordinary `UPDATE`, which is how
//! the diesel CLI (and taskdb on SQLite) runs it.

use crate::error::{Error, Result};

/// What a backfill migration changes: `UPDATE table SET set WHERE
/// predicate`, walked in `key` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub table: String,
    /// The `SET` list, e.g. `priority = 0`.
    pub set: String,
    /// The rows still to change, e.g. `priority IS NULL`.
    pub predicate: String,
    /// The table's one-column primary key, the batches' order.
    pub key: String,
}

impl Backfill {
    /// The `[backfill]` table of `metadata` (a `metadata.toml`), if it has
    /// one; an error when it is there but incomplete. `location` names the
    /// migration in the error.
    pub fn from_metadata(metadata: Option<&str>, location: &str) -> Result<Option<Self>> {
        let Some(table) = metadata
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|t| t.get("backfill").cloned())
        else {
            return Ok(None);
        };
        let invalid = |why: String| {
            Error::MigrationState(format!(
                "{location}/metadata.toml: [backfill] {why} (it needs table, set, where and key)"
            ))
        };
        let field = |name: &str| -> Result<String> {
            table
                .get(name)
                .and_then(|v| v.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid(format!("has no `{name}` text")))
        };
        let backfill = Backfill {
            table: field("table")?,
            set: field("set")?,
            predicate: field("where")?,
            key: field("key")?,
        };
        for name in [&backfill.table, &backfill.key] {
            if !is_plain_name(name) {
                return Err(invalid(format!("`{name}` is not a plain lowercase name")));
            }
        }
        Ok(Some(backfill))
    }

    /// The one `UPDATE` the change amounts to (`up.sql`'s statement).
    pub fn update_sql(&self) -> String {
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.table, self.set, self.predicate
        )
    }

    /// The `[backfill]` table of a `metadata.toml`, as `taskdb new` writes it.
    pub fn metadata_table(&self) -> String {
        format!(
            "[backfill]\ntable = {}\nset = {}\nwhere = {}\nkey = {}\n",
            toml_string(&self.table),
            toml_string(&self.set),
            toml_string(&self.predicate),
            toml_string(&self.key)
        )
    }

    /// True when `up_sql`, comments and whitespace aside, is
    /// [`update_sql`](Self::update_sql): the file and the metadata describe
    /// the same change.
    pub fn matches_up_sql(&self, up_sql: &str) -> bool {
        let code: String = up_sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ");
        let code = code.trim().trim_end_matches(';');
        squeeze(code) == squeeze(&self.update_sql())
    }
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::Backfill;

    #[test]
    fn metadata_round_trips_and_matches_its_update() {
        let b = Backfill {
            table: "tasks".into(),
            set: "priority = 0".into(),
            predicate: "priority IS NULL AND title <> 'x\"y'".into(),
            key: "id".into(),
        };
        let text = format!("run_in_transaction = false\n\n{}", b.metadata_table());
        assert_eq!(
            Backfill::from_metadata(Some(&text), "m").unwrap(),
            Some(b.clone())
        );
        assert!(b.matches_up_sql(&format!("-- a comment\n{};\n", b.update_sql())));
        assert!(!b.matches_up_sql("UPDATE tasks SET priority = 1 WHERE priority IS NULL;"));
        assert_eq!(
            Backfill::from_metadata(Some("run_in_transaction = false"), "m").unwrap(),
            None
        );
        assert_eq!(Backfill::from_metadata(None, "m").unwrap(), None);
        let err = Backfill::from_metadata(Some("[backfill]\ntable = \"tasks\""), "m").unwrap_err();
        assert!(err.to_string().contains("no `set`"), "{err}");
        let err = Backfill::from_metadata(
            Some(
                "[backfill]\ntable = \"tasks; x\"\nset = \"a = 1\"\nwhere = \"true\"\nkey = \"id\"",
            ),
            "m",
        )
        .unwrap_err();
        assert!(err.to_string().contains("plain"), "{err}");
    }
}
