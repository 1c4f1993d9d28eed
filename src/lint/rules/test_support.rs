//! Runs the rules on SQL, for each rule's own tests.

use super::{check, FileState, RawFinding, Schema};
use crate::lint::parse::parse_postgres;

/// The app's schema before the statement under test, as earlier
/// migrations left it.
const BASE: &str = "
CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY, user_id VARCHAR(255) NOT NULL,
  title VARCHAR(255) NOT NULL, description TEXT, completed BOOLEAN NOT NULL DEFAULT false,
  priority INTEGER, amount NUMERIC(10,2));
CREATE TABLE users (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255) NOT NULL);
CREATE INDEX idx_tasks_title ON tasks (title);
";

fn run(sql: &str, in_transaction: bool, schema: &mut Schema) -> Vec<RawFinding> {
    let mut file = FileState::default();
    parse_postgres(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .flat_map(|stmt| check(stmt, in_transaction, &mut file, schema))
        .collect()
}

/// The names of the rules that fire on `sql` in a transactional migration
/// after the base schema.
pub fn rules_of(sql: &str) -> Vec<&'static str> {
    findings(sql, true).iter().map(|f| f.rule.name()).collect()
}

/// The findings of `sql` after the base schema.
pub fn findings(sql: &str, in_transaction: bool) -> Vec<RawFinding> {
    let mut schema = Schema::default();
    run(BASE, true, &mut schema);
    run(sql, in_transaction, &mut schema)
}

/// [`rules_of`] on a Citus coordinator where `tasks` is distributed by
/// `user_id` and `users` is a reference table.
pub fn citus_rules_of(sql: &str) -> Vec<&'static str> {
    let mut schema = Schema::on_citus(
        [
            ("tasks".to_string(), Some("user_id".to_string())),
            ("users".to_string(), None),
        ]
        .into_iter()
        .collect(),
    );
    run(BASE, true, &mut schema);
    run(sql, true, &mut schema)
        .iter()
        .map(|f| f.rule.name())
        .collect()
}
