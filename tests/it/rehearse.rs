//! `taskdb rehearse`: migrations added to a copy of taskdb's directory
//! (`--migrations-dir`) are rehearsed on a small filled copy of a migrated
//! database under the app's queries; each verdict kind, the JSON shape,
//! exit codes, the SVG report rendered to PNG, the scratch database gone
//! afterwards (also after an error), and the refusal on SQLite.

use crate::common;

use std::path::Path;

use common::checkout::checkout_copy;
use common::TestDb;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use taskdb::db::{self, DatabaseUrl};
use taskdb::Backend;

/// Small enough that the suite stays fast.
const ROWS: &str = "tasks=3000,users=30";

/// Adds a PostgreSQL migration `dir` to `project`'s `migrations/`.
fn add(project: &Path, dir: &str, up: &str, no_transaction: bool) {
    let at = project.join("migrations/postgres").join(dir);
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(at.join("up.sql"), up).unwrap();
    std::fs::write(at.join("down.sql"), "SELECT 1;\n").unwrap();
    if no_transaction {
        std::fs::write(at.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    }
}

/// `taskdb rehearse` on `db` with `project`'s migrations.
fn rehearse(project: &Path, db: &TestDb) -> assert_cmd::Command {
    let mut cmd = db.taskdb();
    // Above the default (100 ms): a safe step's clients wait a few
    // milliseconds, but a suite running beside these tests on two cores
    // can stretch that; the steps meant to block hold their locks longer.
    cmd.arg("--migrations-dir")
        .arg(project.join("migrations"))
        .args(["rehearse", "--rows", ROWS, "--stall-limit", "250ms"]);
    cmd
}

/// The scratch database a run named on stderr (the last name: a clone's
/// line names the template first).
fn scratch_name(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let at = text
        .rfind("taskdb_rehearse_")
        .unwrap_or_else(|| panic!("no scratch database named in {text}"));
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn database_exists(name: &str) -> bool {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut common::admin())
            .unwrap();
    found.n > 0
}

/// `--format json`'s output, or a panic showing what was printed instead.
fn json_of(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)))
}

fn verdicts(step: &serde_json::Value) -> Vec<String> {
    step["verdict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_verdict_kind_on_a_small_table_with_its_evidence_and_report() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-01-000001_add_note",
        "ALTER TABLE tasks ADD COLUMN note text;\n",
        false,
    );
    // Held past the index build: writers queue behind the SHARE lock.
    add(
        p,
        "2026-12-01-000002_index_titles",
        "CREATE INDEX tasks_title_idx ON tasks (title);\nSELECT pg_sleep(0.6);\n",
        false,
    );
    add(
        p,
        "2026-12-01-000003_volatile_rank",
        "ALTER TABLE tasks ADD COLUMN rank bigint DEFAULT (random() * 10)::bigint;\n",
        false,
    );
    add(
        p,
        "2026-12-01-000004_rename_user_name",
        // Held long enough for the 10 ms sampler to see it every time.
        "ALTER TABLE users RENAME COLUMN name TO display_name;\nSELECT pg_sleep(0.1);\n",
        false,
    );
    add(
        p,
        "2026-12-01-000005_drop_priority",
        "ALTER TABLE tasks DROP COLUMN rank;\n",
        false,
    );
    add(
        p,
        "2026-12-01-000006_note_required",
        "ALTER TABLE tasks ALTER COLUMN note SET NOT NULL;\n",
        false,
    );
    add(
        p,
        "2026-12-01-000007_later",
        "ALTER TABLE tasks ADD COLUMN later text;\n",
        false,
    );
    let db = TestDb::migrated(Backend::Postgres);
    let svg = p.join("report.svg");
    let run = rehearse(p, &db)
        .args(["--format", "json", "--report"])
        .arg(&svg)
        .assert()
        .code(1);
    let output = run.get_output();
    let json = json_of(&output.stdout);
    assert_eq!(json["exceeded"], true);
    let steps = json["steps"].as_array().unwrap();
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s["migration"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for step in steps {
        for field in [
            "migration",
            "verdict",
            "lint",
            "duration_ms",
            "max_client_wait_ms",
            "locks",
            "lock_spans",
            "rewrites",
            "client_errors",
            "rows_lost",
            "wal_bytes",
            "p99_ms",
            "baseline_p99_ms",
        ] {
            assert!(step.get(field).is_some(), "{field} missing in {step}");
        }
    }
    assert_eq!(verdicts(&steps[0]), ["safe"], "{}", steps[0]);
    assert!(
        verdicts(&steps[1]).contains(&"blocks".to_string()),
        "{}",
        steps[1]
    );
    assert!(steps[1]["max_client_wait_ms"].as_f64().unwrap() > 250.0);
    assert!(
        steps[1]["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "tasks" && l["mode"] == "ShareLock"),
        "{}",
        steps[1]
    );
    let span = steps[1]["lock_spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mode"] == "ShareLock")
        .unwrap_or_else(|| panic!("{}", steps[1]));
    let held = span["to_ms"].as_f64().unwrap() - span["from_ms"].as_f64().unwrap();
    assert!(held >= 500.0, "held {held} ms across a 0.6 s sleep");
    assert_eq!(steps[1]["lint"], "unsafe");
    assert!(
        verdicts(&steps[2]).contains(&"rewrites".to_string()),
        "{}",
        steps[2]
    );
    assert_eq!(steps[2]["rewrites"][0], "tasks");
    assert!(
        verdicts(&steps[3]).contains(&"breaks-clients".to_string()),
        "{}",
        steps[3]
    );
    assert!(steps[3]["client_errors"].as_u64().unwrap() > 0);
    assert!(
        verdicts(&steps[4]).contains(&"loses-data".to_string()),
        "{}",
        steps[4]
    );
    assert!(
        steps[4]["rows_lost"].as_i64().unwrap() >= 3000,
        "{}",
        steps[4]
    );
    assert!(
        verdicts(&steps[5]).contains(&"fails".to_string()),
        "{}",
        steps[5]
    );
    assert_eq!(json["not_rehearsed"][0], "2026-12-01-000007_later");

    // Nothing in the rehearsed database changed; the copy is gone.
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'note'"),
        0
    );
    assert!(!database_exists(&scratch_name(&output.stderr)));

    // The picture: one band per table the migration locked, every step
    // labelled, and it renders.
    let text = std::fs::read_to_string(&svg).unwrap();
    let bands = text.matches(r#"<g class="band""#).count();
    assert!(text.contains(r#"data-relation="tasks""#), "{text}");
    assert!(text.contains(r#"data-relation="users""#), "{text}");
    assert_eq!(bands, 2, "one band per relation: {text}");
    for name in &names {
        assert!(text.contains(&format!("{name} — ")), "{name} unlabelled");
    }
    let png = p.join("report.png");
    let rendered = std::process::Command::new("rsvg-convert")
        .arg(&svg)
        .arg("-o")
        .arg(&png)
        .status()
        .expect("rsvg-convert (scripts/test-env installs librsvg2-bin)");
    assert!(rendered.success());
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 800 && height >= 300, "{width}x{height}");
    assert!(
        bytes.len() > 10_000,
        "a near-empty picture: {} bytes",
        bytes.len()
    );
}

#[test]
fn safe_shapes_exit_0_leave_no_scratch_database_and_reuse_the_filled_copy() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-02-000001_add_note",
        "ALTER TABLE tasks ADD COLUMN note text DEFAULT 'none';\n",
        false,
    );
    add(
        p,
        "2026-12-02-000002_index_titles",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_idx ON tasks (title);\n",
        true,
    );
    let db = TestDb::migrated(Backend::Postgres);
    let run = rehearse(p, &db)
        .assert()
        .success()
        .stdout(contains("2026-12-02-000001_add_note"))
        .stdout(contains("2026-12-02-000002_index_titles"))
        .stdout(contains("✓ Every step is safe"));
    assert!(!database_exists(&scratch_name(&run.get_output().stderr)));

    // The second rehearsal at the same schema and sizes clones the filled
    // copy the first one kept, instead of generating the rows again.
    let again = rehearse(p, &db)
        .args(["--format", "json"])
        .assert()
        .success()
        .stderr(contains("cloning the filled copy taskdb_rehearse_tpl_"));
    let json = json_of(&again.get_output().stdout);
    assert_eq!(json["reused_copy"], true);
    assert_eq!(json["steps"].as_array().unwrap().len(), 2);
    assert!(!database_exists(&scratch_name(&again.get_output().stderr)));
}

#[test]
fn nothing_pending_is_nothing_to_rehearse() {
    let db = TestDb::migrated(Backend::Postgres);
    db.taskdb()
        .args(["rehearse", "--rows", ROWS])
        .assert()
        .success()
        .stdout(contains("Nothing to rehearse"));
}

#[test]
fn from_a_version_rehearses_what_follows_it_without_touching_the_database() {
    let db = TestDb::empty(Backend::Postgres);
    let migrations = taskdb::migrate::migrations(Backend::Postgres);
    let last = migrations.last().unwrap().dir_name().to_string();
    let before_last = migrations[migrations.len() - 2].dir_name().to_string();
    let out = db
        .taskdb()
        .args([
            "rehearse",
            "--rows",
            ROWS,
            "--format",
            "json",
            "--from",
            &before_last,
        ])
        .assert()
        .get_output()
        .clone();
    let json = json_of(&out.stdout);
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["migration"], last.as_str());
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "the rehearsed database stays empty"
    );
}

#[test]
fn the_scratch_database_is_dropped_after_an_error() {
    // Before the first migration the copy has no tables to fill.
    let first = taskdb::migrate::migrations(Backend::Postgres)[0]
        .dir_name()
        .to_string();
    let db = TestDb::empty(Backend::Postgres);
    let run = db
        .taskdb()
        .args(["rehearse", "--rows", ROWS, "--from", &first])
        .assert()
        .code(1)
        .stderr(contains("error: "));
    assert!(!database_exists(&scratch_name(&run.get_output().stderr)));
}

#[test]
fn a_role_without_createdb_is_told_what_it_needs() {
    let db = TestDb::migrated(Backend::Postgres);
    let mut role = common::role::Role::create("rehearse_nocreatedb");
    role.grant_in(db.pg_name().unwrap(), "SELECT 1");
    common::taskdb_at(&role.url(db.pg_name().unwrap()))
        .args(["rehearse", "--rows", ROWS, "--from", "2026-02-08-000010"])
        .assert()
        .code(1)
        .stderr(contains("CREATEDB"));
}

#[test]
fn sqlite_is_refused_with_exit_2() {
    let db = TestDb::migrated(Backend::Sqlite);
    db.taskdb()
        .arg("rehearse")
        .assert()
        .code(2)
        .stderr(contains("rehearse applies to PostgreSQL"));
}

#[test]
fn ctrl_c_during_a_step_drops_the_copy_and_exits_130() {
    use common::process::{signal, spawn_taskdb_at, wait_until, wait_with_limit};
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-03-000001_slow",
        "ALTER TABLE tasks ADD COLUMN note text;\nSELECT pg_sleep(30);\n",
        false,
    );
    let db = TestDb::migrated(Backend::Postgres);
    let dir = p.join("migrations");
    let child = spawn_taskdb_at(
        db.url(),
        &[
            "--migrations-dir",
            dir.to_str().unwrap(),
            "rehearse",
            "--rows",
            ROWS,
        ],
    );
    let pid = child.id();
    let mut scratch = String::new();
    wait_until("the step runs", std::time::Duration::from_secs(60), || {
        let mut admin = db::connect(&DatabaseUrl::parse(&common::admin_url()).unwrap()).unwrap();
        let found = common::query_lines(
            &mut admin,
            &format!(
                "SELECT datname::text AS line FROM pg_stat_activity \
                  WHERE application_name LIKE 'taskdb-migrate-{pid}-%' \
                    AND datname LIKE 'taskdb\\_rehearse\\_%' AND query LIKE '%pg_sleep%'"
            ),
        );
        match found.into_iter().next() {
            Some(name) => {
                scratch = name;
                true
            }
            None => false,
        }
    });
    signal(&child, "INT");
    let output = wait_with_limit(child, std::time::Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("scratch database was dropped"), "{stderr}");
    assert!(!database_exists(&scratch));
}

#[test]
fn like_sizes_the_copy_from_the_live_catalog() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-04-000001_add_note",
        "ALTER TABLE tasks ADD COLUMN note text;\n",
        false,
    );
    let live = TestDb::migrated(Backend::Postgres);
    live.taskdb()
        .args(["seed", "demo", "--users", "40", "--tasks-per-user", "30"])
        .assert()
        .success();
    live.execute("ANALYZE users; ANALYZE tasks");
    let db = TestDb::migrated(Backend::Postgres);
    let run = db
        .taskdb()
        .arg("--migrations-dir")
        .arg(p.join("migrations"))
        .args(["rehearse", "--format", "json", "--like", live.url()])
        .args(["--stall-limit", "250ms"])
        .assert()
        .success();
    let json = json_of(&run.get_output().stdout);
    assert_eq!(json["sizes"]["users"], 40, "{json}");
    assert_eq!(json["sizes"]["tasks"], 1200, "{json}");
    // Every user the same number of tasks: the copy is even too.
    assert!(json["sizes"]["skew"].is_null(), "{json}");
    assert!(json["copy"]["skew"].is_null(), "{json}");
    db.taskdb()
        .args(["rehearse", "--rows", ROWS, "--like", live.url()])
        .assert()
        .code(2);
}

/// `n` of the JSON as a number.
fn number(json: &serde_json::Value, at: &str, n: &str) -> f64 {
    json[at][n]
        .as_f64()
        .unwrap_or_else(|| panic!("no {at}.{n} in {json}"))
}

#[test]
fn like_copies_the_live_owners_skew_and_completed_share() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-04-000001_add_note",
        "ALTER TABLE tasks ADD COLUMN note text;\n",
        false,
    );
    // 300 users, 61 of them owning tasks: one 900 (15 %), sixty 85
    // each; 60 % completed.
    let live = TestDb::migrated(Backend::Postgres);
    live.taskdb()
        .args(["seed", "demo", "--users", "300", "--tasks-per-user", "0"])
        .assert()
        .success();
    live.execute(
        "WITH owners AS (SELECT id, row_number() OVER (ORDER BY id) AS k
                           FROM users ORDER BY id LIMIT 61)
         INSERT INTO tasks (user_id, title, completed, created_at, updated_at)
         SELECT o.id, 'task ' || g, g % 5 < 3, now(), now()
           FROM owners o, generate_series(1, CASE WHEN o.k = 1 THEN 900 ELSE 85 END) g;
         ANALYZE users; ANALYZE tasks",
    );
    let db = TestDb::migrated(Backend::Postgres);
    let run = db
        .taskdb()
        .arg("--migrations-dir")
        .arg(p.join("migrations"))
        .args(["rehearse", "--format", "json", "--like", live.url()])
        .args(["--stall-limit", "250ms"])
        .assert()
        .success();
    let json = json_of(&run.get_output().stdout);
    // What the live catalog says.
    assert_eq!(json["sizes"]["users"], 300, "{json}");
    assert_eq!(json["sizes"]["tasks"], 6000, "{json}");
    assert_eq!(json["sizes"]["owners"], 61, "{json}");
    assert!(
        (number(&json, "sizes", "completed") - 0.6).abs() < 0.01,
        "{json}"
    );
    let skew = number(&json, "sizes", "skew");
    // Skewed, inside the range the generator makes (not at a bound).
    assert!(skew > 1.05 && skew < 3.0, "{json}");
    // The copy's own catalog after filling: the same shape.
    assert_eq!(json["copy"]["users"], 300, "{json}");
    assert_eq!(json["copy"]["tasks"], 6000, "{json}");
    assert!(
        (number(&json, "copy", "owners") - 61.0).abs() <= 2.0,
        "{json}"
    );
    assert!(
        (number(&json, "copy", "completed") - 0.6).abs() < 0.03,
        "{json}"
    );
    assert!((number(&json, "copy", "skew") - skew).abs() < 0.2, "{json}");
}

#[test]
fn sizes_the_generator_cannot_make_are_refused_before_anything_is_built() {
    let db = TestDb::migrated(Backend::Postgres);
    db.taskdb()
        .args([
            "rehearse",
            "--rows",
            "tasks=1000000,users=10",
            "--from",
            "2026-02-08-000010",
        ])
        .assert()
        .code(1)
        .stderr(contains("give at least 100 users"))
        .stderr(contains("building").not());
}

/// A backfill migration (`taskdb new --backfill`) is rehearsed like any
/// other step: it runs in batches, as `migrate` runs it, and gets a
/// verdict and the clients' p99 during it.
#[test]
fn a_backfill_step_gets_its_verdict_and_the_clients_p99_during_it() {
    let project = common::backfill::project_with_backfill();
    let p = project.path();
    let db = TestDb::migrated(Backend::Postgres);
    let run = rehearse(p, &db)
        .args(["--format", "json"])
        .assert()
        .success();
    let output = run.get_output();
    let json = json_of(&output.stdout);
    let steps = json["steps"].as_array().unwrap();
    let backfill = steps
        .iter()
        .find(|s| {
            s["migration"]
                .as_str()
                .unwrap()
                .ends_with("_fill_tasks_priority")
        })
        .unwrap_or_else(|| panic!("no backfill step in {json}"));
    assert_eq!(verdicts(backfill), ["safe"], "{backfill}");
    assert!(backfill["p99_ms"].as_f64().is_some(), "{backfill}");
    assert!(backfill["baseline_p99_ms"].as_f64().is_some(), "{backfill}");
    assert_eq!(backfill["rows_lost"], 0, "{backfill}");
    // Batches take only the locks an UPDATE takes: none the app waits on.
    assert!(
        backfill["locks"].as_array().unwrap().iter().all(|l| {
            l["relation"] != "tasks"
                || l["mode"] == "RowExclusiveLock"
                || l["mode"] == "AccessShareLock"
        }),
        "{backfill}"
    );
    // The rehearsed database is untouched.
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'priority'"),
        0
    );
}

/// A type change PostgreSQL makes without a rewrite (`varchar(255)` →
/// `text`) breaks the app's prepared queries (SQLSTATE 0A000, "cached plan
/// must not change result type"); lint warns about it, and the two agree:
/// no disagreement marker.
#[test]
fn a_type_change_that_breaks_prepared_queries_is_unsafe_to_lint_and_rehearsal_alike() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-03-000001_title_text",
        "ALTER TABLE tasks ALTER COLUMN title TYPE text;\n",
        false,
    );
    let db = TestDb::migrated(Backend::Postgres);
    let run = rehearse(p, &db).args(["--format", "json"]).assert().code(1);
    let output = run.get_output();
    let json = json_of(&output.stdout);
    let step = &json["steps"][0];
    assert!(
        verdicts(step).contains(&"breaks-clients".to_string()),
        "{step}"
    );
    assert_eq!(step["rewrites"].as_array().unwrap().len(), 0, "{step}");
    assert_eq!(step["lint"], "unsafe", "{step}");
    assert_eq!(
        step["lint_rules"][0], "column-type-breaks-cached-plans",
        "{step}"
    );
    assert_eq!(step["disagrees"], false, "{step}");
    // And in the terminal table: no "≠ lint: safe; rehearsal: …" line.
    rehearse(p, &db)
        .assert()
        .code(1)
        .stdout(contains("2026-12-03-000001_title_text"))
        .stdout(contains("≠").not());
}

/// A migration that updates the rows the app already has holds them
/// locked until it commits: the app's clients complete tasks they see, so
/// they wait for it. (Clients that only completed the tasks they had just
/// created never met those locks, and the step was called safe.)
#[test]
fn an_update_of_existing_rows_blocks_the_clients_that_complete_them() {
    let project = checkout_copy();
    let p = project.path();
    add(
        p,
        "2026-12-03-000001_touch_every_task",
        "UPDATE tasks SET title = title || '';\nSELECT pg_sleep(1.0);\n",
        false,
    );
    let db = TestDb::migrated(Backend::Postgres);
    let run = rehearse(p, &db).args(["--format", "json"]).assert().code(1);
    let output = run.get_output();
    let json = json_of(&output.stdout);
    let step = &json["steps"][0];
    assert!(verdicts(step).contains(&"blocks".to_string()), "{step}");
    assert!(
        step["max_client_wait_ms"].as_f64().unwrap() > 250.0,
        "{step}"
    );
    assert_eq!(step["rows_lost"], 0, "{step}");
}

/// A rehearsal killed while it kept its filled copy as a template (between
/// `CREATE DATABASE taskdb_rehearse_tpl_<hash>_build` and the rename) left
/// that `_build` database behind: the next rehearsal's sweep drops it,
/// unless a running rehearsal holds its lock (it is still being made).
/// (That kept templates stay is the sweep's unit test: another test
/// process's rehearsal may evict one here.)
#[test]
fn a_template_build_left_by_a_killed_rehearsal_is_swept_by_the_next() {
    use diesel::connection::SimpleConnection;
    let key = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let left = format!("taskdb_rehearse_tpl_{key}_build");
    let building = format!("taskdb_rehearse_tpl_{key}b_build");
    let mut admin = common::admin();
    for name in [&left, &building] {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    // A running rehearsal's build: its session holds the lock on the name
    // ("trhr", as on a scratch database's name).
    let mut holder = common::admin();
    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({}, hashtext('{building}'))",
            0x7472_6872
        ))
        .unwrap();

    // Any rehearsal sweeps when it creates its copy; this one then fails
    // at once (before the first migration there is nothing to fill).
    let first = taskdb::migrate::migrations(Backend::Postgres)[0]
        .dir_name()
        .to_string();
    let db = TestDb::empty(Backend::Postgres);
    db.taskdb()
        .args(["rehearse", "--rows", ROWS, "--from", &first])
        .assert()
        .code(1);
    let (left_swept, building_kept) = (!database_exists(&left), database_exists(&building));
    drop(holder);
    for name in [&left, &building] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
    }
    assert!(left_swept, "{left} was left behind");
    assert!(building_kept, "{building} was dropped while being made");
}

/// A client's wait is how long it waited for the lock, not how long its
/// statement had run: a request that worked 1 s before it reached a
/// table the migration held waited only for the rest of the lock. (Under
/// load the app's statements run long: counting their whole run as a
/// wait made a short lock look like a stall past `--stall-limit`.)
#[test]
fn a_clients_wait_is_its_wait_for_the_lock_not_its_statements_run() {
    use diesel::connection::SimpleConnection;
    use diesel::RunQueryDsl;
    use std::time::{Duration, Instant};
    use taskdb::rehearse::clients::CLIENT_APPLICATION;
    use taskdb::rehearse::sampler::Sampler;

    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let db = TestDb::migrated(Backend::Postgres);
    let url = db.database_url();
    let sampler = Sampler::start(&url, Instant::now()).unwrap();
    let mut migration =
        db::connect(&url.with_application_name("taskdb-migrate-wait-test")).unwrap();
    let mut client = db::connect(&url.with_application_name(CLIENT_APPLICATION)).unwrap();
    migration
        .batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let request = std::thread::spawn(move || {
        client
            .batch_execute("DO $$ BEGIN PERFORM pg_sleep(1.0); PERFORM count(*) FROM tasks; END $$")
    });
    // Once the request waits for the lock (this database's: other tests'
    // rehearsal clients share its name), the migration holds it 150 ms
    // more, at least.
    let mut watcher = db::connect(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: Waiting = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE application_name = '{CLIENT_APPLICATION}' AND wait_event_type = 'Lock'
                AND datname = current_database()"
        ))
        .get_result(&mut watcher)
        .unwrap();
        if waiting.n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the request never waited");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Held until a sample the sampler began 150 ms into the wait has
    // ended (its backend idle again): on a loaded machine one sample can
    // take longer than the whole wait would otherwise last.
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        seen: bool,
    }
    let began = Instant::now();
    diesel::sql_query("CREATE TEMP TABLE wait_began AS SELECT clock_timestamp() AS at")
        .execute(&mut watcher)
        .unwrap();
    loop {
        let seen: Seen = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE application_name = 'taskdb-rehearse-sampler'
                               AND datname = current_database()
                               AND state = 'idle'
                               AND query_start > (SELECT at FROM wait_began) + interval '150 ms') AS seen",
        )
        .get_result(&mut watcher)
        .unwrap();
        if seen.seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sampler never sampled the wait"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    migration.batch_execute("COMMIT").unwrap();
    let held = began.elapsed().as_secs_f64() * 1000.0;
    request.join().unwrap().unwrap();
    let samples = sampler.stop();
    let waited = samples
        .iter()
        .flat_map(|s| &s.locks)
        .filter(|l| !l.migration && !l.granted && l.relation == "tasks")
        .map(|l| l.waited_ms)
        .fold(0.0, f64::max);
    assert!(waited >= 50.0, "the wait went unseen: {waited} ms");
    // Its statement's 1 s of work before the wait is not part of it.
    assert!(
        waited < held + 500.0,
        "a wait of {held:.0} ms recorded as {waited} ms (the statement's 1 s of work counted)"
    );
}
