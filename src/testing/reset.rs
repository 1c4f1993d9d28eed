//! Making a used test database as good as a fresh clone, so it serves the
//! next test instead of being dropped (a `DROP DATABASE` forces a
//! checkpoint, which every other session's commits then wait behind).
//!
//! What a fresh clone looks like is read once per process from one, the
//! [`Profile`]: the tables the migrations left empty (emptied again), the
//! ones they filled (`__diesel_schema_migrations`, the ledger: compared,
//! never touched), the sequences' positions, and a fingerprint of the
//! schema (every relation, column, constraint, index, trigger, function,
//! type, view, policy, sequence, comment, extension and database setting).
//! A used database whose fingerprint differs — a test changed the schema,
//! ran migrations, edited the ledger — is dropped instead.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use super::server::{end_sessions, other_sessions};
use crate::db::{self, DatabaseUrl, DbConnection};
use crate::error::Result;

/// A fresh clone, as far as a reset needs to know.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    /// The query computing the fingerprint.
    fingerprint_sql: String,
    /// Its value on a fresh clone.
    fingerprint: String,
    /// The statements that empty the tables and rewind the sequences.
    reset_sql: String,
}

/// Schema objects outside PostgreSQL's own schemas (and temporary ones).
const USER_SCHEMA: &str = "nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'";

/// One text per schema object, so that any DDL changes the set. Definitions,
/// not OIDs or row versions: a `TRUNCATE` (new files, same schema) keeps it.
fn catalog_fingerprint_sql() -> String {
    format!(
        "SELECT 'n ' || nspname || ' ' || COALESCE(nspacl::text, '') AS part FROM pg_namespace WHERE {USER_SCHEMA}
UNION ALL SELECT 'r ' || c.oid::regclass::text || ' ' || c.relkind::text || c.relpersistence::text || ' '
    || COALESCE(c.relacl::text, '') || COALESCE(c.reloptions::text, '') || c.relrowsecurity || c.relreplident::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA}
UNION ALL SELECT 'a ' || a.attrelid::regclass::text || ' ' || a.attnum || ' ' || a.attname || ' '
    || format_type(a.atttypid, a.atttypmod) || a.attnotnull || a.attidentity::text || a.attgenerated::text
    || a.attisdropped || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '') || COALESCE(a.attacl::text, '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE {USER_SCHEMA} AND a.attnum > 0
UNION ALL SELECT 'c ' || conrelid::regclass::text || ' ' || contypid::regtype::text || ' ' || conname || ' '
    || pg_get_constraintdef(c.oid) || convalidated
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE {USER_SCHEMA}
UNION ALL SELECT 'i ' || pg_get_indexdef(indexrelid) || indisvalid || indisready
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {USER_SCHEMA}
UNION ALL SELECT 't ' || pg_get_triggerdef(t.oid) || t.tgenabled::text FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL SELECT 'f ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) || p.provolatile::text || p.prosecdef
    || COALESCE(p.proconfig::text, '') || COALESCE(p.proacl::text, '')
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA}
UNION ALL SELECT 'y ' || t.oid::regtype::text || t.typtype::text
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_SCHEMA}
UNION ALL SELECT 'e ' || enumtypid::regtype::text || ' ' || enumlabel || ' ' || enumsortorder FROM pg_enum
UNION ALL SELECT 'v ' || r.ev_class::regclass::text || ' ' || r.rulename || ' ' || pg_get_ruledef(r.oid)
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {USER_SCHEMA}
UNION ALL SELECT 'p ' || polrelid::regclass::text || ' ' || polname || ' ' || polcmd::text
    || COALESCE(pg_get_expr(polqual, polrelid), '') || COALESCE(pg_get_expr(polwithcheck, polrelid), '')
    FROM pg_policy
UNION ALL SELECT 's ' || seqrelid::regclass::text || ' ' || seqtypid || ' ' || seqstart || ' ' || seqincrement
    || ' ' || seqmax || ' ' || seqmin || ' ' || seqcache || seqcycle FROM pg_sequence
UNION ALL SELECT 'd ' || classoid || ' ' || objoid || ' ' || objsubid || ' ' || description
    FROM pg_description WHERE objoid >= 16384
UNION ALL SELECT 'x ' || extname || ' ' || extversion FROM pg_extension
UNION ALL SELECT 'g ' || setrole || ' ' || setconfig::text FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'l ' || count(*) FROM pg_largeobject_metadata
UNION ALL SELECT 'u ' || count(*) FROM pg_default_acl
UNION ALL SELECT 'w ' || evtname || evtenabled::text FROM pg_event_trigger"
    )
}

#[derive(QueryableByName)]
struct Fingerprint {
    #[diesel(sql_type = Text)]
    fingerprint: String,
}

fn fingerprint(conn: &mut DbConnection, sql: &str) -> Result<String> {
    let row: Fingerprint = diesel::sql_query(sql).get_result(conn)?;
    Ok(row.fingerprint)
}

/// Reads the profile of a fresh clone, `url`.
pub(super) fn profile(url: &DatabaseUrl) -> Result<Profile> {
    #[derive(QueryableByName)]
    struct Sequence {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        start_value: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        last_value: Option<i64>,
    }
    #[derive(QueryableByName)]
    struct Filled {
        #[diesel(sql_type = Bool)]
        filled: bool,
    }

    let mut conn = db::connect(url)?;
    let tables: Vec<Table> = diesel::sql_query(format!(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind::text = 'r' AND c.relpersistence::text <> 't' AND {USER_SCHEMA}"
    ))
    .load(&mut conn)?;
    let mut emptied = Vec::new();
    let mut kept = Vec::new();
    for table in tables {
        let filled: Filled = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM {}) AS filled",
            table.name
        ))
        .get_result(&mut conn)?;
        if filled.filled {
            kept.push(table);
        } else {
            emptied.push(table);
        }
    }
    let sequences: Vec<Sequence> = diesel::sql_query(
        "SELECT format('%I.%I', schemaname, sequencename) AS name, start_value, last_value \
         FROM pg_sequences",
    )
    .load(&mut conn)?;

    // TRUNCATE, not DELETE: a deleted table keeps its pages, and the
    // pre-flight (which estimates rows from them, as the planner does)
    // would see a table of many rows in what should be a fresh clone.
    let mut reset_sql = String::from("BEGIN;\n");
    if !emptied.is_empty() {
        let all: Vec<&str> = emptied.iter().map(|t| t.name.as_str()).collect();
        reset_sql.push_str(&format!("TRUNCATE {};\n", all.join(", ")));
    }
    for seq in &sequences {
        let name = seq.name.replace('\'', "''");
        match seq.last_value {
            Some(last) => reset_sql.push_str(&format!("SELECT setval('{name}', {last}, true);\n")),
            None => reset_sql.push_str(&format!(
                "SELECT setval('{name}', {}, false);\n",
                seq.start_value
            )),
        }
    }
    reset_sql.push_str("COMMIT;");

    // The filled tables' rows belong to the fingerprint: a test that
    // edits the ledger leaves a database no fresh clone is like.
    let mut parts = vec![format!(
        "(SELECT string_agg(part, E'\\n' ORDER BY part) FROM ({}) catalog)",
        catalog_fingerprint_sql()
    )];
    for table in &kept {
        parts.push(format!(
            "(SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM {} r)",
            table.name
        ));
    }
    let fingerprint_sql = format!(
        "SELECT md5(concat_ws(E'\\n--\\n', {})) AS fingerprint",
        parts.join(", ")
    );
    let fingerprint = fingerprint(&mut conn, &fingerprint_sql)?;
    Ok(Profile {
        fingerprint_sql,
        fingerprint,
        reset_sql,
    })
}

#[derive(QueryableByName)]
struct Table {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Readies database `name` (at `url`) for another test: ends the sessions
/// left on it and, if it still is what a fresh clone is but for the rows
/// in its empty tables, empties them and rewinds the sequences.
/// `Ok(false)`: it is not; drop it.
pub(super) fn reset(url: &DatabaseUrl, name: &str, profile: &Profile) -> Result<bool> {
    let mut conn = db::connect(url)?;
    // The durability of a test database's reset does not matter; its
    // speed does (a commit otherwise waits for the WAL flush).
    conn.batch_execute("SET synchronous_commit = off; SET lock_timeout = '5s'")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        end_sessions(&mut conn, name)?;
        if !other_sessions(&mut conn, name)? {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if fingerprint(&mut conn, &profile.fingerprint_sql)? != profile.fingerprint {
        return Ok(false);
    }
    conn.batch_execute(&profile.reset_sql)?;
    Ok(true)
}
