//! `taskdb rehearse` on a corpus of known-bad and known-safe migrations,
//! each rehearsed alone after taskdb's own migrations on a filled copy
//! (`--rows`, default tasks=1000000,users=10000) with 2 clients: prints
//! each entry's verdicts next to what it should get, and counts the bad
//! ones caught and the safe ones left safe. Then rehearses taskdb's own
//! migrations after 2026-02-08-000010 `--own-runs` times (default 3):
//! wall time of each run (the first fills the copy, later ones clone it)
//! and whether the verdicts agree. Then the sampler's cost: the clients'
//! p99 over the baseline with the sampler on and off, alternating
//! (`--cost-runs`, default 5 each).
//!
//! ```text
//! cargo run --release --example rehearse_corpus -- --rows tasks=1000000,users=10000
//! ```
//!
//! `--server URL` (default postgres://postgres@127.0.0.1:5432/postgres;
//! the role needs CREATEDB). `--only NAME` runs one corpus entry;
//! `--skip-corpus` only the rest; `--fresh` drops the filled copy kept for
//! taskdb's own migrations first, so the first own run fills it again.

use std::path::Path;
use std::time::{Duration, Instant};

use taskdb::migrate::MigrationSource;
use taskdb::rehearse::{self, RehearseOptions, Report, Sizes, Verdict};
use taskdb::{Backend, DatabaseUrl};

/// A corpus entry: its migrations (name, up.sql, without a transaction),
/// and whether every step should be safe.
struct Entry {
    name: &'static str,
    steps: &'static [(&'static str, &'static str, bool)],
    safe: bool,
}

const fn bad(name: &'static str, steps: &'static [(&'static str, &'static str, bool)]) -> Entry {
    Entry {
        name,
        steps,
        safe: false,
    }
}

const fn good(name: &'static str, steps: &'static [(&'static str, &'static str, bool)]) -> Entry {
    Entry {
        name,
        steps,
        safe: true,
    }
}

const CORPUS: &[Entry] = &[
    bad("index-without-concurrently", &[("index_titles", "CREATE INDEX tasks_title_idx ON tasks (title);", false)]),
    bad("validating-fk", &[("fk_again", "ALTER TABLE tasks ADD CONSTRAINT tasks_owner_fk FOREIGN KEY (user_id) REFERENCES users (id);", false)]),
    bad("validating-check", &[("check_title", "ALTER TABLE tasks ADD CONSTRAINT tasks_title_nonempty CHECK (length(title) > 0);", false)]),
    bad("type-change-bigint-id", &[("id_bigint", "ALTER TABLE tasks ALTER COLUMN id TYPE bigint;", false)]),
    bad("type-change-without-rewrite", &[("title_text", "ALTER TABLE tasks ALTER COLUMN title TYPE text;", false)]),
    bad("required-column", &[("priority", "ALTER TABLE tasks ADD COLUMN priority integer NOT NULL;", false)]),
    bad("set-not-null-scan", &[("note_required", "ALTER TABLE tasks ADD COLUMN note text DEFAULT 'none';\nALTER TABLE tasks ALTER COLUMN note SET NOT NULL;", false)]),
    bad("set-not-null-over-nulls", &[("description_required", "ALTER TABLE tasks ALTER COLUMN description SET NOT NULL;", false)]),
    bad("volatile-default", &[("rank", "ALTER TABLE tasks ADD COLUMN rank double precision DEFAULT random();", false)]),
    bad("unique-constraint", &[("unique_titles", "ALTER TABLE tasks ADD CONSTRAINT tasks_id_title_key UNIQUE (id, title);", false)]),
    bad("rename-column", &[("rename_title", "ALTER TABLE tasks RENAME COLUMN title TO name;", false)]),
    bad("drop-column", &[("drop_description", "ALTER TABLE tasks DROP COLUMN description;", false)]),
    bad("drop-table", &[("drop_tasks", "DROP TABLE tasks;", false)]),
    bad("truncate", &[("truncate_tasks", "TRUNCATE tasks;", false)]),
    bad("vacuum-full", &[("vacuum_full", "VACUUM FULL tasks;", true)]),
    bad("lock-table", &[("lock_then_touch", "LOCK TABLE tasks IN SHARE MODE;\nUPDATE tasks SET updated_at = updated_at WHERE completed;", false)]),
    bad("reindex", &[("reindex_tasks", "REINDEX TABLE tasks;", false)]),
    bad("bigserial-column", &[("seq", "ALTER TABLE tasks ADD COLUMN seq bigserial;", false)]),
    bad("primary-key-swap", &[("pk_swap", "ALTER TABLE tasks DROP CONSTRAINT tasks_pkey, ADD PRIMARY KEY (id, user_id);", false)]),
    bad("fk-validated-in-its-own-transaction", &[("fk_not_valid_then_validate", "ALTER TABLE tasks ADD CONSTRAINT tasks_owner_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE tasks VALIDATE CONSTRAINT tasks_owner_fk;", false)]),
    bad("varchar-shrink", &[("title_100", "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(100);", false)]),
    bad("varchar-widen", &[("title_500", "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(500);", false)]),
    bad("stored-generated-column", &[("title_length", "ALTER TABLE tasks ADD COLUMN title_length integer GENERATED ALWAYS AS (length(title)) STORED;", false)]),
    bad("cluster", &[("cluster_tasks", "CLUSTER tasks USING tasks_pkey;", false)]),
    bad("set-unlogged", &[("unlogged_tasks", "ALTER TABLE tasks SET UNLOGGED;", false)]),
    bad("update-every-row", &[("touch_all", "UPDATE tasks SET title = title || '';", false)]),
    bad("delete-rows", &[("forget_completed", "DELETE FROM tasks WHERE completed;", false)]),
    bad("rename-table", &[("rename_tasks", "ALTER TABLE tasks RENAME TO todo_items;", false)]),
    bad("unique-index-without-concurrently", &[("unique_owner_title", "CREATE UNIQUE INDEX tasks_owner_id_title_key ON tasks (user_id, id, title);", false)]),
    bad("add-check-column", &[("priority_checked", "ALTER TABLE tasks ADD COLUMN priority integer DEFAULT 0 CHECK (priority >= 0);", false)]),
    bad("type-change-boolean-to-int", &[("completed_int", "ALTER TABLE tasks ALTER COLUMN completed TYPE integer USING completed::int;", false)]),
    good("nullable-column", &[("note", "ALTER TABLE tasks ADD COLUMN note text;", false)]),
    good("constant-default", &[("flag", "ALTER TABLE tasks ADD COLUMN flagged boolean NOT NULL DEFAULT false;", false)]),
    good("not-valid-then-validate", &[
        ("check_not_valid", "ALTER TABLE tasks ADD CONSTRAINT tasks_title_nonempty CHECK (length(title) > 0) NOT VALID;", false),
        ("check_validate", "ALTER TABLE tasks VALIDATE CONSTRAINT tasks_title_nonempty;", false),
    ]),
    good("index-concurrently", &[("index_titles", "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_idx ON tasks (title);", true)]),
    good("drop-index-concurrently", &[("drop_index", "DROP INDEX CONCURRENTLY IF EXISTS tasks_user_created_idx;", true)]),
];

/// taskdb's PostgreSQL migrations, written out under `dir/postgres`, plus
/// `extra` after them.
fn write_migrations(dir: &Path, extra: &[(&str, &str, bool)]) {
    let pg = dir.join("postgres");
    let _ = std::fs::remove_dir_all(&pg);
    for m in taskdb::migrate::migrations(Backend::Postgres) {
        let at = pg.join(m.dir_name());
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join("up.sql"), m.up_sql()).unwrap();
        std::fs::write(at.join("down.sql"), m.down_sql().unwrap_or("SELECT 1;\n")).unwrap();
        if let Some(meta) = m.metadata() {
            std::fs::write(at.join("metadata.toml"), meta).unwrap();
        }
    }
    for (i, (name, up, no_transaction)) in extra.iter().enumerate() {
        let at = pg.join(format!("2099-01-01-{:06}_{name}", i + 1));
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join("up.sql"), up).unwrap();
        std::fs::write(at.join("down.sql"), "SELECT 1;\n").unwrap();
        if *no_transaction {
            std::fs::write(at.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
        }
    }
}

fn verdicts(report: &Report) -> String {
    report
        .steps
        .iter()
        .map(|s| {
            s.verdict
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Each step's longest client wait and longest hold of a lock the app's
/// queries conflict with (stronger than SHARE UPDATE EXCLUSIVE), in ms.
fn waits_and_holds(report: &Report) -> String {
    report
        .steps
        .iter()
        .map(|s| {
            let hold = s
                .locks
                .iter()
                .filter(|l| {
                    matches!(
                        l.mode.as_str(),
                        "ShareLock"
                            | "ShareRowExclusiveLock"
                            | "ExclusiveLock"
                            | "AccessExclusiveLock"
                    )
                })
                .map(|l| l.held_ms)
                .fold(0.0, f64::max);
            format!("{:.0}/{:.0}", s.max_client_wait_ms, hold)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let server = DatabaseUrl::parse(
        &arg("--server").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .unwrap();
    let sizes =
        Sizes::parse(&arg("--rows").unwrap_or_else(|| "tasks=1000000,users=10000".into())).unwrap();
    let own_runs: usize = arg("--own-runs").map_or(3, |n| n.parse().unwrap());
    let cost_runs: usize = arg("--cost-runs").map_or(5, |n| n.parse().unwrap());
    let only = arg("--only");
    let flag = |name: &str| std::env::args().any(|a| a == name);
    let last_own = taskdb::migrate::migrations(Backend::Postgres)
        .last()
        .unwrap()
        .dir_name()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let options = |source: MigrationSource, from: &str| RehearseOptions {
        source,
        from: Some(from.to_string()),
        sizes,
        clients: 2,
        ..RehearseOptions::default()
    };

    println!(
        "corpus at {sizes}, 2 clients, stall limit {} ms",
        taskdb::rehearse::DEFAULT_STALL_LIMIT.as_millis()
    );
    println!(
        "{:<36} {:<7} {:<7} {:<36} {:>11} {:>9} lint",
        "entry", "should", "got", "verdicts", "wait/held", "wall"
    );
    let (mut caught, mut bad_total, mut kept, mut good_total) = (0, 0, 0, 0);
    let started = Instant::now();
    for entry in CORPUS {
        if flag("--skip-corpus") || only.as_deref().is_some_and(|o| o != entry.name) {
            continue;
        }
        write_migrations(dir.path(), entry.steps);
        let t = Instant::now();
        let report = rehearse::rehearse(
            &server,
            &options(MigrationSource::Dir(dir.path().to_path_buf()), &last_own),
            &mut |_| {},
        );
        let wall = t.elapsed();
        let (got_safe, text, lint, held) = match &report {
            Ok(r) => (
                r.steps.iter().all(|s| s.verdict == [Verdict::Safe]),
                verdicts(r),
                r.steps.iter().map(|s| s.lint).collect::<Vec<_>>().join("/"),
                waits_and_holds(r),
            ),
            Err(e) => (false, format!("error: {e}"), String::new(), String::new()),
        };
        if entry.safe {
            good_total += 1;
            kept += usize::from(got_safe);
        } else {
            bad_total += 1;
            caught += usize::from(!got_safe);
        }
        println!(
            "{:<36} {:<7} {:<7} {:<36} {:>11} {:>7.1} s {lint}{}",
            entry.name,
            if entry.safe { "safe" } else { "unsafe" },
            if got_safe { "safe" } else { "unsafe" },
            text,
            held,
            wall.as_secs_f64(),
            if got_safe == entry.safe {
                ""
            } else {
                "   <-- WRONG"
            }
        );
    }
    println!(
        "bad caught: {caught}/{bad_total}; safe kept safe: {kept}/{good_total}; corpus wall {:.0} s",
        started.elapsed().as_secs_f64()
    );

    if only.is_some() {
        return;
    }
    println!();
    println!("taskdb's own migrations after 2026-02-08-000010 at {sizes}:");
    if flag("--fresh") {
        use diesel::connection::SimpleConnection;
        let template = rehearse::scratch::template_name(
            &MigrationSource::Embedded,
            Some("2026-02-08-000010_drop_users_email_key"),
            sizes,
        )
        .unwrap();
        taskdb::db::connect(&server)
            .unwrap()
            .batch_execute(&format!("DROP DATABASE IF EXISTS {template}"))
            .unwrap();
        println!("dropped {template}");
    }
    let mut seen: Option<String> = None;
    let mut same = true;
    for run in 1..=own_runs {
        let t = Instant::now();
        let report = rehearse::rehearse(
            &server,
            &options(MigrationSource::Embedded, "2026-02-08-000010"),
            &mut |_| {},
        )
        .unwrap();
        let text = verdicts(&report);
        println!(
            "run {run}: {:.1} s wall ({}), verdicts {text}",
            t.elapsed().as_secs_f64(),
            if report.reused_copy {
                "cloned the filled copy"
            } else {
                "filled the copy"
            }
        );
        same &= seen.as_ref().is_none_or(|s| *s == text);
        seen = Some(text);
    }
    println!("same verdicts in every run: {same}");

    println!();
    println!("sampler cost: clients' baseline p99, sampler on vs off ({cost_runs} runs each, alternating):");
    write_migrations(
        dir.path(),
        &[("note", "ALTER TABLE tasks ADD COLUMN note text;", false)],
    );
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for i in 0..cost_runs * 2 {
        let sample = i % 2 == 0;
        let report = rehearse::rehearse(
            &server,
            &RehearseOptions {
                sample,
                baseline: Duration::from_secs(3),
                ..options(MigrationSource::Dir(dir.path().to_path_buf()), &last_own)
            },
            &mut |_| {},
        )
        .unwrap();
        if sample { &mut on } else { &mut off }.push(report.baseline_p99_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut on), median(&mut off));
    println!(
        "median p99 with the sampler {on:.2} ms, without {off:.2} ms: {:.2}x",
        on / off
    );
}
