//! Streaming standbys of a PostgreSQL primary, as a migration sees them.
//!
//! Every step's WAL is replayed on each hot standby: an index build or a
//! validation writes a burst the standbys replay late (reads there go
//! stale), and every `ACCESS EXCLUSIVE` lock is taken again by the replay,
//! where it waits for the standby's own queries (or cancels them after
//! `max_standby_streaming_delay`). So between steps `migrate` reads the
//! primary's `pg_stat_replication` and waits until every streaming standby
//! is within a [`LagBound`] ([`wait_for_standbys`]), and the dry run says
//! which statements take `ACCESS EXCLUSIVE` ([`access_exclusive_statements`]).
//!
//! Only physical standbys count: a logical replication walsender (a CDC
//! tool, a subscriber) replays no locks and follows its own schedule.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::Event;
use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{human_duration, Error, Result};

/// Default bound on a standby's `replay_lag`.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(5);
/// Default bound on the WAL a standby has yet to replay.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default for how long `migrate` waits for a lagging standby before it
/// stops between steps.
pub const DEFAULT_REPLICA_WAIT: Duration = Duration::from_secs(300);
/// How often the primary is asked again while a standby lags.
const POLL: Duration = Duration::from_millis(250);

/// How far behind a standby may be before the next step waits for it:
/// a replay lag, a WAL distance, both (either one exceeded makes it wait),
/// or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagBound {
    pub time: Option<Duration>,
    pub bytes: Option<u64>,
}

impl Default for LagBound {
    fn default() -> Self {
        LagBound {
            time: Some(DEFAULT_MAX_LAG),
            bytes: Some(DEFAULT_MAX_BYTES),
        }
    }
}

impl LagBound {
    /// No gate at all (`--max-replica-lag off`).
    pub const OFF: LagBound = LagBound {
        time: None,
        bytes: None,
    };

    pub fn is_off(&self) -> bool {
        self.time.is_none() && self.bytes.is_none()
    }

    /// True when `standby` is past the bound.
    pub fn exceeded_by(&self, standby: &Standby) -> bool {
        let late = matches!((self.time, standby.replay_lag), (Some(max), Some(lag)) if lag > max);
        let behind = matches!((self.bytes, standby.bytes_behind), (Some(max), Some(b)) if b > max);
        late || behind
    }

    /// Parses `5s`, `64MB`, `5s,64MB` (either order) or `off`. Sizes take
    /// B, kB, MB, GB (powers of 1024, as PostgreSQL's own settings do).
    pub fn parse(input: &str) -> std::result::Result<LagBound, String> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(LagBound::OFF);
        }
        let mut bound = LagBound::OFF;
        for part in s.split(',').map(str::trim) {
            if let Some(bytes) = parse_size(part) {
                if bound.bytes.replace(bytes?).is_some() {
                    return Err(format!("`{input}` gives two sizes"));
                }
            } else {
                let time = parse_duration(part).ok_or_else(|| {
                    format!("`{part}` is neither a duration (5s, 500ms, 1m) nor a size (64MB); use e.g. 5s, 64MB, 5s,64MB or off")
                })?;
                if bound.time.replace(time).is_some() {
                    return Err(format!("`{input}` gives two durations"));
                }
            }
        }
        Ok(bound)
    }
}

impl std::fmt::Display for LagBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = self.time {
            let ms = t.as_millis();
            parts.push(if ms % 1000 == 0 {
                format!("{}s", ms / 1000)
            } else {
                format!("{ms}ms")
            });
        }
        if let Some(b) = self.bytes {
            parts.push(format_size(b));
        }
        if parts.is_empty() {
            write!(f, "off")
        } else {
            write!(f, "{}", parts.join(","))
        }
    }
}

/// `500ms`, `5s`, `1m` (the units a lag is measured in).
fn parse_duration(part: &str) -> Option<Duration> {
    let split = part.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = part.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return None,
    };
    (seconds.is_finite() && (0.0..=86400.0).contains(&seconds))
        .then(|| Duration::from_secs_f64(seconds))
}

/// `Some` when `part` ends in a size unit: the bytes, or why not.
pub(crate) fn parse_size(part: &str) -> Option<std::result::Result<u64, String>> {
    let split = part.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = part.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" | "k" | "kib" => 1024,
        "mb" | "mib" => 1024 * 1024,
        "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    Some(
        number
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0 && *n * (factor as f64) < 1e15)
            .map(|n| (n * factor as f64) as u64)
            .ok_or_else(|| format!("`{part}` is not a size (try 64MB)")),
    )
}

/// `64MB`, `512kB`, `1234B`: the largest unit that divides the size evenly.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GB", 1u64 << 30), ("MB", 1 << 20), ("kB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// `12.3 MB`: a WAL distance as a person reads it.
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1 << 20 {
        format!("{:.1} kB", b / 1024.0)
    } else if bytes < 1 << 30 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// One physical standby streaming from the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// Its `application_name` (the standby's `cluster_name`, or what its
    /// `primary_conninfo` says), else its address.
    pub name: String,
    /// `startup`, `catchup`, `streaming`, `backup` or `stopping`.
    pub state: String,
    /// `replay_lag`: `None` when it has caught up and the primary is idle
    /// (PostgreSQL then reports NULL), or when this role may not see it.
    pub replay_lag: Option<Duration>,
    /// WAL written on the primary and not yet replayed there; `None` when
    /// this role may not see it (it needs `pg_read_all_stats`).
    pub bytes_behind: Option<u64>,
    /// False when this role may not see how far behind the standby is (it
    /// needs `pg_read_all_stats`): PostgreSQL then shows nothing but the
    /// walsender's pid and name, and the lag is unknown, not zero.
    pub lag_visible: bool,
}

impl Standby {
    /// `replay 4.2 s behind, 12.0 MB of WAL`, or that it is unknown.
    pub fn describe_lag(&self) -> String {
        if !self.lag_visible {
            return "lag unknown: this role may not see it (it needs pg_read_all_stats)".into();
        }
        let lag = self
            .replay_lag
            .map(human_duration)
            .unwrap_or_else(|| "0 ms".into());
        match self.bytes_behind {
            Some(b) => format!("replay {lag} behind, {} of WAL", human_size(b)),
            None => format!("replay {lag} behind"),
        }
    }
}

/// The physical standbys streaming from the server `conn` is on (none on
/// SQLite). One query.
pub fn standbys(conn: &mut DbConnection) -> Result<Vec<Standby>> {
    if conn.backend() != Backend::Postgres {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        state: String,
        #[diesel(sql_type = Nullable<BigInt>)]
        lag_us: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        bytes: Option<i64>,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        visible: bool,
    }
    // On a standby (a cascading one feeds others) the position to compare
    // with is what it has replayed itself: pg_current_wal_lsn() fails there.
    // Without pg_read_all_stats every column but the pid and name is NULL
    // (a walsender always has a state): greatest(NULL, 0) would be 0, so
    // an unknown distance stays NULL.
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT coalesce(nullif(r.application_name, ''), host(r.client_addr), 'pid ' || r.pid) AS name,
                coalesce(r.state, 'unknown') AS state,
                (extract(epoch FROM r.replay_lag) * 1000000)::bigint AS lag_us,
                CASE WHEN r.replay_lsn IS NOT NULL THEN greatest(pg_wal_lsn_diff(
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_lsn() END,
                    r.replay_lsn), 0) END::bigint AS bytes,
                r.state IS NOT NULL AS visible
           FROM pg_stat_replication r
          WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots s
                             WHERE s.active_pid = r.pid AND s.slot_type = 'logical')
          ORDER BY 1",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Standby {
            name: r.name,
            state: r.state,
            replay_lag: r
                .lag_us
                .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
            bytes_behind: r.bytes.map(|b| u64::try_from(b).unwrap_or(0)),
            lag_visible: r.visible,
        })
        .collect())
}

/// The role this session checks privileges as, for the GRANT to name.
fn current_role(conn: &mut DbConnection) -> Result<String> {
    #[derive(QueryableByName)]
    struct Role {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let role: Role =
        diesel::sql_query("SELECT quote_ident(current_user::text) AS name").get_result(conn)?;
    Ok(role.name)
}

/// Where in a run the gate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Before a step (or after one that has a next): giving up stops the
    /// run there.
    BeforeStep,
    /// After the run's last step: nothing is left to stop.
    AfterLastStep,
    /// Between two batches of a backfill step: giving up stops the run
    /// there, the backfill's position saved.
    BetweenBatches,
}

/// Waits until every standby is within `bound`, reporting
/// [`Event::ReplicaLagging`] while one is not; after `wait` it gives up
/// with [`Error::ReplicaLag`]. Off (or SQLite): no query at all. No
/// standby, or all within the bound: one query.
pub fn wait_for_standbys(
    conn: &mut DbConnection,
    bound: LagBound,
    wait: Duration,
    gate: Gate,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    if bound.is_off() || conn.backend() != Backend::Postgres {
        return Ok(());
    }
    let started = Instant::now();
    let mut waited_once = false;
    loop {
        let standbys = standbys(conn)?;
        // A bound it cannot check is no bound: refused, not passed.
        let blind: Vec<String> = standbys
            .iter()
            .filter(|s| !s.lag_visible)
            .map(|s| s.name.clone())
            .collect();
        if !blind.is_empty() {
            return Err(Error::ReplicaLagUnknown {
                standbys: blind,
                role: current_role(conn)?,
                outcome: match gate {
                    Gate::BeforeStep => "stopped before the next migration, nothing is half-applied",
                    Gate::AfterLastStep => "every migration is applied, but whether the standbys have replayed them is unknown",
                    Gate::BetweenBatches => "stopped between two batches of a backfill, its position saved",
                },
            });
        }
        // The one furthest behind is the one to name.
        let Some(worst) = standbys
            .iter()
            .filter(|s| bound.exceeded_by(s))
            .max_by_key(|s| (s.bytes_behind, s.replay_lag))
        else {
            if waited_once {
                report(Event::ReplicasCaughtUp {
                    waited: started.elapsed(),
                });
            }
            return Ok(());
        };
        let waited = started.elapsed();
        if waited >= wait {
            return Err(Error::ReplicaLag {
                standby: worst.name.clone(),
                lag: worst.describe_lag(),
                bound: bound.to_string(),
                outcome: match gate {
                    Gate::BeforeStep => "stopped between migrations, nothing is half-applied; run `taskdb migrate` again once it has caught up",
                    Gate::AfterLastStep => "every migration is applied, but the standby has yet to replay the last one (`taskdb verify` against it tells when it has)",
                    Gate::BetweenBatches => "stopped between two batches of a backfill, its position saved; run `taskdb migrate` again once it has caught up, and the backfill resumes there",
                },
                waited,
            });
        }
        report(Event::ReplicaLagging {
            standby: &worst.name,
            replay_lag: worst.replay_lag,
            bytes_behind: worst.bytes_behind,
            // Zero marks the first report of a wait.
            waited: if waited_once {
                waited.max(Duration::from_millis(1))
            } else {
                Duration::ZERO
            },
        });
        waited_once = true;
        std::thread::sleep(
            POLL.min(wait.saturating_sub(waited))
                .max(Duration::from_millis(10)),
        );
        if crate::interrupt::received().is_some() {
            return Err(Error::interrupted_leaving(
                "it was waiting for a standby to catch up between migrations, so nothing is half-applied; run the command again to finish",
            ));
        }
    }
}

/// The statements of `sql` that take an `ACCESS EXCLUSIVE` lock, each as
/// its first line (trimmed).
///
/// A keyword-level classification, not a parser: it splits on `;` outside
/// quotes and dollar quotes, and knows the statement forms PostgreSQL
/// documents as taking that lock — `ALTER TABLE` except the sub-commands
/// that take weaker ones (`VALIDATE CONSTRAINT`, `ADD … FOREIGN KEY … NOT
/// VALID`, `SET STATISTICS`, `SET (…)`, `CLUSTER ON`, `ATTACH PARTITION`…),
/// `DROP TABLE`, `DROP INDEX` without `CONCURRENTLY`, `TRUNCATE`, `LOCK
/// TABLE` (default mode), `VACUUM FULL`, `CLUSTER`, `REINDEX` without
/// `CONCURRENTLY`, `DROP TRIGGER`, `ALTER INDEX`, `REFRESH MATERIALIZED
/// VIEW` without `CONCURRENTLY`. Only these matter on a standby: of all
/// lock modes, PostgreSQL writes only `ACCESS EXCLUSIVE` to the WAL.
pub fn access_exclusive_statements(sql: &str) -> Vec<String> {
    split_statements(sql)
        .into_iter()
        .filter(|s| takes_access_exclusive(s))
        .map(|s| s.lines().next().unwrap_or_default().trim().to_string())
        .collect()
}

fn takes_access_exclusive(statement: &str) -> bool {
    let upper = statement.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let starts = |prefix: &[&str]| words.len() >= prefix.len() && words[..prefix.len()] == *prefix;
    let has = |word: &str| words.contains(&word);
    if starts(&["ALTER", "TABLE"]) {
        // Each sub-command takes its own lock; the statement takes the
        // strongest. Only these are known to stay below ACCESS EXCLUSIVE.
        let body = upper
            .split_once("TABLE")
            .map(|(_, b)| b)
            .unwrap_or_default();
        return split_top_level_commas(body).iter().any(|cmd| {
            let c = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
            let weaker = c.contains("VALIDATE CONSTRAINT")
                || (c.contains("FOREIGN KEY") && c.contains("NOT VALID"))
                || c.contains("SET STATISTICS")
                || c.contains(" SET (")
                || c.contains(" RESET (")
                || c.contains("CLUSTER ON")
                || c.contains("SET WITHOUT CLUSTER")
                || c.contains("ATTACH PARTITION")
                || (c.contains("DETACH PARTITION") && c.contains("CONCURRENTLY"))
                || c.contains("ENABLE TRIGGER")
                || c.contains("DISABLE TRIGGER");
            !weaker
        });
    }
    (starts(&["DROP", "TABLE"]))
        || (starts(&["DROP", "INDEX"]) && !has("CONCURRENTLY"))
        || starts(&["TRUNCATE"])
        || (starts(&["LOCK"]) && (!has("MODE") || upper.contains("ACCESS EXCLUSIVE")))
        || (starts(&["VACUUM"]) && has("FULL"))
        || (starts(&["VACUUM", "(FULL"]))
        || starts(&["CLUSTER"])
        || (starts(&["REINDEX"]) && !has("CONCURRENTLY") && !upper.contains("(CONCURRENTLY"))
        || starts(&["DROP", "TRIGGER"])
        || starts(&["ALTER", "INDEX"])
        || (starts(&["REFRESH", "MATERIALIZED", "VIEW"]) && !has("CONCURRENTLY"))
}

/// Statements of a script, comments removed, split on `;` outside quotes,
/// quoted identifiers and dollar-quoted bodies.
pub(crate) fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut dollar: Option<String> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(tag) = &dollar {
            current.push(c);
            if c == '$' && current.ends_with(tag.as_str()) && current.len() > tag.len() {
                dollar = None;
            }
            i += 1;
            continue;
        }
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                current.push('\n');
                continue;
            }
            '\'' | '"' => {
                current.push(c);
                i += 1;
                while i < chars.len() && chars[i] != c {
                    current.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    current.push(c);
                }
            }
            '$' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|ch| !(ch.is_alphanumeric() || *ch == '_'))
                    .map(|p| i + 1 + p);
                match end {
                    Some(e) if chars[e] == '$' => {
                        let tag: String = chars[i..=e].iter().collect();
                        current.push_str(&tag);
                        dollar = Some(tag);
                        i = e;
                    }
                    _ => current.push(c),
                }
            }
            ';' => {
                if !current.trim().is_empty() {
                    statements.push(current.trim().to_string());
                }
                current.clear();
            }
            _ => current.push(c),
        }
        i += 1;
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    statements
}

/// `ADD a, ALTER b` → its sub-commands (commas inside parentheses kept).
fn split_top_level_commas(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// What an `ACCESS EXCLUSIVE` lock means on `n` standbys, in one sentence.
pub fn standby_lock_note(n: usize) -> String {
    format!(
        "also replayed on {n} standby(s): there the lock waits for every query reading the table (holding up all replay, so the standby falls behind) and, after max_standby_streaming_delay, cancels those queries; lock_timeout on the primary does not cover this"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_bounds_parse_as_typed() {
        let five = Some(Duration::from_secs(5));
        let mb64 = Some(64 * 1024 * 1024);
        assert_eq!(
            LagBound::parse("5s"),
            Ok(LagBound {
                time: five,
                bytes: None
            })
        );
        assert_eq!(
            LagBound::parse("64MB"),
            Ok(LagBound {
                time: None,
                bytes: mb64
            })
        );
        assert_eq!(
            LagBound::parse("5s,64MB"),
            Ok(LagBound {
                time: five,
                bytes: mb64
            })
        );
        assert_eq!(
            LagBound::parse("64mb, 5s"),
            Ok(LagBound {
                time: five,
                bytes: mb64
            })
        );
        assert_eq!(LagBound::parse("OFF"), Ok(LagBound::OFF));
        assert_eq!(
            LagBound::parse("512kB").map(|b| b.bytes),
            Ok(Some(512 * 1024))
        );
        assert_eq!(LagBound::parse("100B").map(|b| b.bytes), Ok(Some(100)));
        assert_eq!(
            LagBound::parse("250ms").map(|b| b.time),
            Ok(Some(Duration::from_millis(250)))
        );
        for bad in ["", "soon", "5s,6s", "1MB,2MB", "-3MB", "5 parsecs", "MB"] {
            assert!(LagBound::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lag_bounds_show_as_typed() {
        for text in ["5s,64MB", "5s", "64MB", "off", "250ms", "512kB"] {
            assert_eq!(LagBound::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(LagBound::default().to_string(), "5s,64MB");
    }

    #[test]
    fn either_limit_makes_a_standby_lag() {
        let bound = LagBound::parse("5s,1MB").unwrap();
        let standby = |lag: Option<u64>, bytes: Option<u64>| Standby {
            name: "s".into(),
            state: "streaming".into(),
            replay_lag: lag.map(Duration::from_secs),
            bytes_behind: bytes,
            lag_visible: true,
        };
        assert!(!bound.exceeded_by(&standby(None, Some(0))));
        assert!(!bound.exceeded_by(&standby(Some(5), Some(1 << 20))));
        assert!(bound.exceeded_by(&standby(Some(6), Some(0))));
        assert!(bound.exceeded_by(&standby(None, Some((1 << 20) + 1))));
        assert!(!LagBound::OFF.exceeded_by(&standby(Some(600), Some(1 << 40))));
    }

    #[test]
    fn classifies_access_exclusive_statements() {
        let strong = [
            "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key",
            "ALTER TABLE tasks ALTER COLUMN created_at SET DEFAULT now(), ALTER COLUMN updated_at SET DEFAULT now()",
            "ALTER TABLE tasks ADD COLUMN x int",
            "alter table tasks add constraint c check (x > 0) not valid",
            "DROP TABLE tasks",
            "DROP INDEX idx",
            "TRUNCATE tasks",
            "LOCK TABLE tasks",
            "LOCK tasks IN ACCESS EXCLUSIVE MODE",
            "VACUUM FULL tasks",
            "CLUSTER tasks USING idx",
            "REINDEX INDEX idx",
            "DROP TRIGGER IF EXISTS set_updated_at ON users",
        ];
        for sql in strong {
            assert_eq!(access_exclusive_statements(sql).len(), 1, "{sql}");
        }
        let weak = [
            "ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_user_id",
            "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID",
            "ALTER TABLE tasks ALTER COLUMN title SET STATISTICS 500",
            "DROP INDEX CONCURRENTLY IF EXISTS idx",
            "CREATE INDEX CONCURRENTLY idx ON tasks (user_id)",
            "CREATE TABLE t (a int)",
            "LOCK TABLE tasks IN SHARE MODE",
            "REINDEX INDEX CONCURRENTLY idx",
            "VACUUM tasks",
            // SHARE ROW EXCLUSIVE.
            "CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE PROCEDURE f()",
            "SELECT diesel_manage_updated_at('users')",
            "INSERT INTO t VALUES ('ALTER TABLE x; DROP TABLE y')",
        ];
        for sql in weak {
            assert!(access_exclusive_statements(sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn splits_scripts_outside_quotes_comments_and_function_bodies() {
        let sql = "-- DROP TABLE a;\nCREATE FUNCTION f() RETURNS void AS $$ BEGIN DROP TABLE x; END; $$ LANGUAGE plpgsql;\nALTER TABLE users\n  DROP COLUMN name;\nSELECT 'TRUNCATE t;'";
        assert_eq!(access_exclusive_statements(sql), vec!["ALTER TABLE users"]);
    }

    #[test]
    fn sizes_read_as_a_person_says_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(12 * 1024 * 1024 + 100_000), "12.1 MB");
        assert_eq!(format_size(64 << 20), "64MB");
        assert_eq!(format_size(1000), "1000B");
    }
}
