//! What an `IF NOT EXISTS` index step would keep.
//!
//! `CREATE INDEX … IF NOT EXISTS name` does nothing when *anything* named
//! `name` exists in the table's schema: a hand-made index of that name on
//! other columns is kept, the step is recorded as applied, and a later
//! step that drops the index this one was to replace leaves the table
//! without either. So before such a step runs, an existing relation of
//! that name must be the index the statement describes, or the run stops
//! there with nothing of the step applied.
//!
//! "The index the statement describes" is decided by PostgreSQL, not by
//! reading SQL here: in a transaction that is rolled back, the statement's
//! own column list, method, INCLUDE, WITH and WHERE are built on an empty
//! temporary copy of the table's columns (`CREATE TEMP TABLE … (LIKE
//! table)`), and `pg_get_indexdef` of that index is compared with the
//! existing one's, names aside, together with uniqueness. Both definitions
//! are normalised the same way (casts, operator classes, collations,
//! spelling), so `lower(email)` and `LOWER( email )` compare equal and
//! `(title)` and `(user_id, created_at, id)` do not. It costs one catalog
//! query per such step, and the scratch build only when an index of that
//! name already exists. (PostgreSQL has no `ADD CONSTRAINT IF NOT EXISTS`;
//! `CREATE TABLE IF NOT EXISTS tasks` is checked by [`super::preflight`].)

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::source::LocalMigration;

/// One `CREATE [UNIQUE] INDEX [CONCURRENTLY] IF NOT EXISTS` statement.
#[derive(Debug, PartialEq, Eq)]
struct IndexStatement {
    unique: bool,
    /// As PostgreSQL reads it (an unquoted name folded to lower case).
    name: String,
    /// As written (SQL text, possibly qualified and quoted).
    table: String,
    /// From `USING` or the column list to the end, as written.
    rest: String,
}

/// Refuses (changing nothing) when `m` creates an index `IF NOT EXISTS`
/// whose name is already taken by anything but that same index.
pub fn check_existing_indexes(conn: &mut DbConnection, m: &LocalMigration) -> Result<()> {
    if conn.backend() != Backend::Postgres {
        return Ok(());
    }
    for statement in index_statements(m.up_sql()) {
        check_one(conn, m, &statement)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Existing {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    /// `index`, or what else holds the name (`table`, `sequence`, …).
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Bool)]
    valid: bool,
    #[diesel(sql_type = Bool)]
    same_table: bool,
    #[diesel(sql_type = Bool)]
    may_create_temp: bool,
}

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Text)]
    def: String,
    /// `INDEX name ON `: what precedes the table in `def`.
    #[diesel(sql_type = Text)]
    head: String,
    /// The table as `pg_get_indexdef` writes it (always qualified)...
    #[diesel(sql_type = Text)]
    table_name: String,
    /// ...but a temporary table's schema as `pg_temp`: this is its name.
    #[diesel(sql_type = Text)]
    relation: String,
}

impl Definition {
    /// `USING btree (a, b) WHERE …`: the definition without the names.
    fn body(&self) -> &str {
        let after_head = self
            .def
            .find(&self.head)
            .map(|at| &self.def[at + self.head.len()..])
            .unwrap_or(&self.def);
        let after_only = after_head.strip_prefix("ONLY ").unwrap_or(after_head);
        let temporary = format!("pg_temp.{}", self.relation);
        after_only
            .strip_prefix(self.table_name.as_str())
            .or_else(|| after_only.strip_prefix(temporary.as_str()))
            .map(str::trim_start)
            .unwrap_or(after_only)
    }
}

const DEFINITION: &str = "SELECT i.indisunique AS is_unique, pg_get_indexdef(i.indexrelid) AS def,
        'INDEX ' || quote_ident(ic.relname) || ' ON ' AS head,
        quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS table_name,
        quote_ident(tc.relname) AS relation
   FROM pg_index i
   JOIN pg_class ic ON ic.oid = i.indexrelid
   JOIN pg_class tc ON tc.oid = i.indrelid
   JOIN pg_namespace n ON n.oid = tc.relnamespace
  WHERE i.indexrelid = $1::oid";

fn check_one(conn: &mut DbConnection, m: &LocalMigration, s: &IndexStatement) -> Result<()> {
    // The index goes into its table's schema; a table not there yet
    // (created by this step, or missing) leaves nothing to compare.
    let found: Vec<Existing> = diesel::sql_query(
        "SELECT c.oid::int8 AS oid,
                CASE c.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'
                     WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                     WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                     WHEN 'f' THEN 'foreign table' ELSE 'relation' END AS kind,
                coalesce(i.indisvalid, true) AS valid,
                coalesce(i.indrelid = t.oid, false) AS same_table,
                has_database_privilege(current_database(), 'TEMP') AS may_create_temp
           FROM pg_class t
           JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = $2
           LEFT JOIN pg_index i ON i.indexrelid = c.oid
          WHERE t.oid = to_regclass($1)",
    )
    .bind::<Text, _>(&s.table)
    .bind::<Text, _>(&s.name)
    .load(conn)?;
    let Some(existing) = found.into_iter().next() else {
        return Ok(());
    };
    let wanted_sql = format!(
        "CREATE {}INDEX {} ON {} {}",
        if s.unique { "UNIQUE " } else { "" },
        quote_ident(&s.name),
        s.table,
        s.rest
    );
    let refuse = |found: String| Error::IndexMismatch {
        migration: m.dir_name().to_string(),
        index: s.name.clone(),
        found,
        wanted: one_line(&wanted_sql),
    };
    if existing.kind != "index" {
        return Err(refuse(format!("a {}", existing.kind)));
    }
    let have: Definition = diesel::sql_query(DEFINITION)
        .bind::<BigInt, _>(existing.oid)
        .get_result(conn)?;
    if !existing.same_table {
        return Err(refuse(format!(
            "an index on another table (`{}`)",
            have.def
        )));
    }
    // An INVALID index left by a cut-off build of this very step is
    // dropped and rebuilt by it (see `apply`).
    if !existing.valid && !m.run_in_transaction() {
        return Ok(());
    }
    if !existing.may_create_temp {
        return Err(Error::MigrationState(format!(
            "{} creates index {} IF NOT EXISTS and one of that name exists (`{}`), but this role may not create the temporary table taskdb compares it on: grant it TEMP on the database, or drop or rename the existing index if it is not the one the migration describes",
            m.dir_name(),
            s.name,
            have.def
        )));
    }
    let want = described(conn, s)?;
    if have.is_unique == want.is_unique && have.body() == want.body() {
        return Ok(());
    }
    Err(refuse(format!("the index `{}`", have.def)))
}

/// The definition `s` describes, built on an empty temporary copy of its
/// table's columns in a transaction that is rolled back.
fn described(conn: &mut DbConnection, s: &IndexStatement) -> Result<Definition> {
    conn.batch_execute(&format!(
        "BEGIN;
         CREATE TEMP TABLE taskdb_described (LIKE {});
         CREATE {}INDEX taskdb_described_index ON taskdb_described {};",
        s.table,
        if s.unique { "UNIQUE " } else { "" },
        s.rest
    ))
    .inspect_err(|_| {
        let _ = conn.batch_execute("ROLLBACK");
    })?;
    let definition = diesel::sql_query(
        DEFINITION.replace("$1::oid", "'pg_temp.taskdb_described_index'::regclass"),
    )
    .get_result::<Definition>(conn);
    conn.batch_execute("ROLLBACK")?;
    Ok(definition?)
}

fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `CREATE … INDEX … IF NOT EXISTS` statements of a script.
fn index_statements(sql: &str) -> Vec<IndexStatement> {
    super::replicas::split_statements(sql)
        .iter()
        .filter_map(|s| parse(s))
        .collect()
}

/// A token of a statement's head, with where it ends in the text.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// An unquoted word, as written.
    Word(String),
    /// A quoted identifier, unescaped.
    Quoted(String),
    Dot,
    Other,
}

fn next_token(text: &str, from: usize) -> Option<(Token, usize, usize)> {
    let start = from + text[from..].find(|c: char| !c.is_whitespace())?;
    let mut chars = text[start..].char_indices();
    let (_, first) = chars.next()?;
    if first == '"' {
        let mut name = String::new();
        let mut rest = text[start + 1..].char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            if c == '"' {
                if rest.peek().map(|(_, n)| *n) == Some('"') {
                    rest.next();
                    name.push('"');
                    continue;
                }
                return Some((Token::Quoted(name), start, start + 1 + i + 1));
            }
            name.push(c);
        }
        return None;
    }
    if first == '.' {
        return Some((Token::Dot, start, start + 1));
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    if !is_word(first) {
        return Some((Token::Other, start, start + first.len_utf8()));
    }
    let end = text[start..]
        .find(|c: char| !is_word(c))
        .map_or(text.len(), |i| start + i);
    Some((Token::Word(text[start..end].to_string()), start, end))
}

fn parse(statement: &str) -> Option<IndexStatement> {
    let mut at = 0;
    let word = |at: &mut usize| -> Option<(Token, usize)> {
        let (token, start, end) = next_token(statement, *at)?;
        *at = end;
        Some((token, start))
    };
    let is = |t: &Token, kw: &str| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(kw));
    let (t, _) = word(&mut at)?;
    if !is(&t, "CREATE") {
        return None;
    }
    let (mut t, _) = word(&mut at)?;
    let unique = is(&t, "UNIQUE");
    if unique {
        t = word(&mut at)?.0;
    }
    if !is(&t, "INDEX") {
        return None;
    }
    t = word(&mut at)?.0;
    if is(&t, "CONCURRENTLY") {
        t = word(&mut at)?.0;
    }
    if !is(&t, "IF") || !is(&word(&mut at)?.0, "NOT") || !is(&word(&mut at)?.0, "EXISTS") {
        return None;
    }
    let name = match word(&mut at)?.0 {
        Token::Word(w) => w.to_ascii_lowercase(),
        Token::Quoted(q) => q,
        _ => return None,
    };
    if !is(&word(&mut at)?.0, "ON") {
        return None;
    }
    let (mut t, mut table_start) = word(&mut at)?;
    if is(&t, "ONLY") {
        (t, table_start) = word(&mut at)?;
    }
    if !matches!(t, Token::Word(_) | Token::Quoted(_)) {
        return None;
    }
    let mut table_end = at;
    // `schema.table`: a dot, then another name.
    loop {
        let mut look = table_end;
        match word(&mut look) {
            Some((Token::Dot, _)) => {}
            _ => break,
        }
        match word(&mut look)? {
            (Token::Word(_) | Token::Quoted(_), _) => table_end = look,
            _ => return None,
        }
    }
    let rest = statement[table_end..].trim();
    if rest.is_empty() {
        return None;
    }
    Some(IndexStatement {
        unique,
        name,
        table: statement[table_start..table_end].to_string(),
        rest: rest.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_if_not_exists_index_statements_of_a_script() {
        let sql = "-- a comment\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON tasks (user_id, created_at);\n\
                   create unique index if not exists \"Ix\"\"q\" on only app.\"Big\" using btree (lower(email)) where x;\n\
                   CREATE INDEX idx_b ON t (a);\nDROP INDEX IF EXISTS idx_c;";
        assert_eq!(
            index_statements(sql),
            vec![
                IndexStatement {
                    unique: false,
                    name: "idx_a".into(),
                    table: "tasks".into(),
                    rest: "(user_id, created_at)".into(),
                },
                IndexStatement {
                    unique: true,
                    name: "Ix\"q".into(),
                    table: "app.\"Big\"".into(),
                    rest: "using btree (lower(email)) where x".into(),
                },
            ]
        );
    }

    #[test]
    fn a_definition_without_its_names_is_its_body() {
        let d = Definition {
            is_unique: false,
            def: "CREATE INDEX idx ON public.tasks USING btree (title)".into(),
            head: "INDEX idx ON ".into(),
            table_name: "public.tasks".into(),
            relation: "tasks".into(),
        };
        assert_eq!(d.body(), "USING btree (title)");
        let d = Definition {
            is_unique: true,
            def: "CREATE UNIQUE INDEX \"X\" ON ONLY pg_temp.t USING btree (lower((email)::text))"
                .into(),
            head: "INDEX \"X\" ON ".into(),
            table_name: "pg_temp_3.t".into(),
            relation: "t".into(),
        };
        assert_eq!(d.body(), "USING btree (lower((email)::text))");
    }
}
