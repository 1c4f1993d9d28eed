//! A table's live size as the pre-flight judges it (PostgreSQL), and the
//! table a name in a migration means.
//!
//! Rows are estimated as PostgreSQL's planner does
//! (`table_block_relation_estimate_size`): `reltuples / relpages` from the
//! last VACUUM or ANALYZE is a density, scaled by the pages the table has
//! *now*, so statistics taken while the table was smaller (or empty) do
//! not make it look small. When the statistics give no density
//! (`reltuples` 0 or -1: analysed while empty, or never), the density comes
//! from the width of the table's first rows instead (the planner guesses a
//! width from the column types, which for `VARCHAR(255)` columns is ten
//! times too wide and would count ten times too few rows). A table of no
//! pages holds no rows; a table whose rows all fit in that first read is
//! counted exactly.
//!
//! On a Citus coordinator a distributed or reference table's rows live in
//! its shards, on the workers: the coordinator's own table is an empty
//! shell (no pages, `reltuples` about 0). Its size then comes from Citus:
//! bytes from `citus_relation_size` / `citus_total_relation_size`, and the
//! density from each shard's own `reltuples` and `relpages`
//! (`run_command_on_shards`), one placement per shard; the sample, when
//! the statistics give no density, reads through the coordinator.
//!
//! A name is read as SQL reads it (`app.big`, `"App"."Big"`, `tasks` on
//! the search path), and, failing that, as one identifier taken verbatim
//! (a finding that names the table as the parser normalised it).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};
use diesel::PgConnection;

use super::TableSize;
use crate::error::Result;

/// Rows read to measure their width when the statistics give no density;
/// fewer than this means the table was read whole.
const SAMPLE_ROWS: i64 = 1000;
/// `SizeOfPageHeaderData`, and a line pointer per tuple.
const PAGE_HEADER: i64 = 24;
const LINE_POINTER: i64 = 4;

/// What the catalog says about a table (or one partition of it).
#[derive(QueryableByName)]
struct Stats {
    /// The table's name as SQL reads it (qualified when not on the search
    /// path), for the query that reads its rows.
    #[diesel(sql_type = Text)]
    regclass: String,
    #[diesel(sql_type = Double)]
    reltuples: f64,
    #[diesel(sql_type = BigInt)]
    relpages: i64,
    /// The main fork only: what a scan reads.
    #[diesel(sql_type = BigInt)]
    heap_bytes: i64,
    /// With indexes and TOAST: what is shown.
    #[diesel(sql_type = BigInt)]
    total_bytes: i64,
    #[diesel(sql_type = BigInt)]
    block_size: i64,
}

#[derive(QueryableByName)]
struct Sample {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// The live size of the table `name` means, or `None` when there is no
/// such table (yet). A partitioned table's is the sum of its partitions'
/// (an index build on it scans them all).
pub fn table_size(conn: &mut PgConnection, name: &str) -> Result<Option<TableSize>> {
    let Some(oid) = resolve(conn, name)? else {
        return Ok(None);
    };
    if let Some(part) = citus_stats(conn, oid)? {
        return Ok(Some(TableSize {
            rows: estimate_rows(conn, &part)?,
            bytes: part.total_bytes,
        }));
    }
    let parts: Vec<Stats> = diesel::sql_query(
        "SELECT c.oid::regclass::text AS regclass, c.reltuples::float8 AS reltuples,
                c.relpages::int8 AS relpages, pg_relation_size(c.oid)::int8 AS heap_bytes,
                pg_total_relation_size(c.oid)::int8 AS total_bytes,
                current_setting('block_size')::int8 AS block_size
           FROM pg_class c
          WHERE (c.oid = $1::oid AND c.relkind <> 'p')
             OR c.oid IN (SELECT relid FROM pg_partition_tree($1::oid::regclass) WHERE isleaf)",
    )
    .bind::<BigInt, _>(oid)
    .load(conn)?;
    let mut size = TableSize { rows: 0, bytes: 0 };
    for part in &parts {
        size.rows = size.rows.saturating_add(estimate_rows(conn, part)?);
        size.bytes = size.bytes.saturating_add(part.total_bytes);
    }
    Ok(Some(size))
}

#[derive(QueryableByName)]
struct ShardStats {
    #[diesel(sql_type = Text)]
    result: String,
}

/// The statistics of a table Citus holds in shards (distributed,
/// reference, or Citus-managed local), summed over its shards; `None` for
/// any other table, or without Citus.
fn citus_stats(conn: &mut PgConnection, oid: i64) -> Result<Option<Stats>> {
    let held: Vec<Found> = diesel::sql_query(
        "SELECT $1::int8 AS oid
          WHERE EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')
            AND EXISTS (SELECT FROM pg_catalog.pg_class WHERE relname = 'pg_dist_partition')",
    )
    .bind::<BigInt, _>(oid)
    .load(conn)?;
    if held.is_empty() {
        return Ok(None);
    }
    let known: Vec<Found> = diesel::sql_query(
        "SELECT logicalrelid::oid::int8 AS oid FROM pg_dist_partition WHERE logicalrelid = $1::oid::regclass",
    )
    .bind::<BigInt, _>(oid)
    .load(conn)?;
    if known.is_empty() {
        return Ok(None);
    }
    let mut part: Stats = diesel::sql_query(
        "SELECT $1::oid::regclass::text AS regclass, 0::float8 AS reltuples, 0::int8 AS relpages,
                citus_relation_size($1::oid::regclass)::int8 AS heap_bytes,
                citus_total_relation_size($1::oid::regclass)::int8 AS total_bytes,
                current_setting('block_size')::int8 AS block_size",
    )
    .bind::<BigInt, _>(oid)
    .get_result(conn)?;
    // One placement per shard (a reference table's one shard has one on
    // every node).
    let shards: Vec<ShardStats> = diesel::sql_query(
        "SELECT DISTINCT ON (shardid) result FROM run_command_on_shards(
             $1::oid::regclass,
             $$SELECT reltuples::float8 || ',' || relpages FROM pg_class WHERE oid = '%s'::regclass$$)
          WHERE success ORDER BY shardid",
    )
    .bind::<BigInt, _>(oid)
    .load(conn)?;
    for shard in shards {
        let mut fields = shard.result.split(',');
        let tuples: f64 = fields.next().and_then(|t| t.parse().ok()).unwrap_or(-1.0);
        let pages: i64 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        // A shard never analysed gives no density; the others still do.
        if tuples > 0.0 && pages > 0 {
            part.reltuples += tuples;
            part.relpages += pages;
        }
    }
    Ok(Some(part))
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    oid: i64,
}

fn resolve(conn: &mut PgConnection, name: &str) -> Result<Option<i64>> {
    for candidate in readings(name) {
        let found: Vec<Found> = diesel::sql_query(
            "SELECT to_regclass($1)::oid::int8 AS oid WHERE to_regclass($1) IS NOT NULL",
        )
        .bind::<Text, _>(&candidate)
        .load(conn)?;
        if let Some(found) = found.into_iter().next() {
            return Ok(Some(found.oid));
        }
    }
    Ok(None)
}

fn estimate_rows(conn: &mut PgConnection, s: &Stats) -> Result<i64> {
    let block = s.block_size.max(1);
    let pages = (s.heap_bytes + block - 1) / block;
    if pages == 0 {
        return Ok(0);
    }
    if s.reltuples > 0.0 && s.relpages > 0 {
        let density = s.reltuples / s.relpages as f64;
        return Ok((density * pages as f64).round() as i64);
    }
    // `regclass` is PostgreSQL's own quoting of the name.
    let sample: Sample = diesel::sql_query(format!(
        "SELECT count(*)::int8 AS n, coalesce(sum(pg_column_size(s.*)), 0)::int8 AS bytes
           FROM (SELECT * FROM {} LIMIT {SAMPLE_ROWS}) s",
        s.regclass
    ))
    .get_result(conn)?;
    if sample.n < SAMPLE_ROWS {
        return Ok(sample.n);
    }
    // A row's datum carries the same header as the tuple on the page.
    let width = (sample.bytes / sample.n + 7) / 8 * 8 + LINE_POINTER;
    let per_page = ((block - PAGE_HEADER) / width.max(1)).max(1);
    Ok(per_page * pages)
}

/// The ways to read `name`, as `to_regclass` text: as SQL reads it, then
/// as one identifier.
fn readings(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(parts) = sql_name_parts(name) {
        // `db.schema.table`: the database can only be the current one.
        let tail = &parts[parts.len().saturating_sub(2)..];
        out.push(
            tail.iter()
                .map(|p| quote_ident(p))
                .collect::<Vec<_>>()
                .join("."),
        );
    }
    let verbatim = quote_ident(name);
    if !name.is_empty() && !out.contains(&verbatim) {
        out.push(verbatim);
    }
    out
}

/// The parts of a (possibly qualified) SQL name as PostgreSQL reads them:
/// a quoted part as written, an unquoted one folded to lower case. `None`
/// when it is not a name.
pub(crate) fn sql_name_parts(name: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '"' || c.is_whitespace() {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => return None,
        }
    }
    (parts.len() <= 3).then_some(parts)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_sql_reads_them() {
        assert_eq!(sql_name_parts("app.big").unwrap(), ["app", "big"]);
        assert_eq!(sql_name_parts("App.Big").unwrap(), ["app", "big"]);
        assert_eq!(
            sql_name_parts("\"App\".\"Big \"\"x\"\"\"").unwrap(),
            ["App", "Big \"x\""]
        );
        assert_eq!(sql_name_parts("tasks").unwrap(), ["tasks"]);
        for bad in ["", "a..b", "\"open", "a b", "a.", "a.b.c.d"] {
            assert!(sql_name_parts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_name_is_tried_as_sql_then_verbatim() {
        assert_eq!(readings("app.big"), ["\"app\".\"big\"", "\"app.big\""]);
        assert_eq!(readings("Tasks"), ["\"tasks\"", "\"Tasks\""]);
        assert_eq!(readings("tasks"), ["\"tasks\""]);
        assert_eq!(
            readings("db.app.big"),
            ["\"app\".\"big\"", "\"db.app.big\""]
        );
    }
}
