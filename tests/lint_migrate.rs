//! The pre-flight of `taskdb migrate`, end to end, as a developer meets it:
//! a copy of this crate with two new migrations (a safe one, then the
//! issue's 10.4-second one) is built, and that `taskdb` migrates a real
//! database. Above the threshold it refuses before touching the table and
//! applies neither; on an empty table it proceeds and says so.
//!
//! The copy reuses this build's compiled dependencies (hard links into a
//! target directory of its own), so it compiles taskdb alone: about 10 s.

// The suite drives the binary and uses both backends: the default features.
#![cfg(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "cli",
    feature = "testing"
))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::TestDb;
use taskdb::Backend;

const SAFE_FIRST: &str = "2026-03-01-000000_add_tasks_note";
const UNSAFE: &str = "2026-03-01-000001_archive_tasks";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Builds the copy; with `fresh_facts`, its `lint-facts.json` is rewritten
/// first (the pre-flight then reads the facts; otherwise it lints the new
/// migrations on the spot). Returns the copy's `taskdb`.
fn build_copy(root: &Path, fresh_facts: bool) -> PathBuf {
    let src = root.join("src");
    for item in ["Cargo.toml", "Cargo.lock", "build.rs", "README.md"] {
        std::fs::copy(repo().join(item), src.join(item)).unwrap();
    }
    copy_dir(&repo().join("src"), &src.join("src"));
    copy_dir(&repo().join("migrations"), &src.join("migrations"));
    let pg = src.join("migrations/postgres");
    let safe = pg.join(SAFE_FIRST);
    std::fs::create_dir_all(&safe).unwrap();
    std::fs::write(
        safe.join("up.sql"),
        "ALTER TABLE tasks ADD COLUMN note TEXT;\n",
    )
    .unwrap();
    std::fs::write(
        safe.join("down.sql"),
        "ALTER TABLE tasks DROP COLUMN note;\n",
    )
    .unwrap();
    copy_dir(
        &repo()
            .join("tests/fixtures/lint/issue12/unsafe/postgres")
            .join(UNSAFE),
        &pg.join(UNSAFE),
    );
    // This test binary lives in <target>/debug/deps: share what that
    // build compiled, by hard links, without writing into it.
    let debug = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let target = root.join("target");
    if !target.exists() {
        std::fs::create_dir_all(target.join("debug")).unwrap();
        // Compiled artifacts by hard link (large, never rewritten when
        // fresh); cargo's small fingerprint files by copy (it rewrites them).
        for (part, how) in [("deps", "-al"), ("build", "-al"), (".fingerprint", "-a")] {
            if debug.join(part).exists() {
                run(Command::new("cp")
                    .arg(how)
                    .arg(debug.join(part))
                    .arg(target.join("debug")));
            }
        }
        // Except taskdb's own build-script directories: the copy's build
        // script rewrites the embedded migration list there in place, which
        // through a hard link would rewrite this build's list too.
        for entry in std::fs::read_dir(target.join("debug/build")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with("taskdb-") {
                std::fs::remove_dir_all(entry.path()).unwrap();
                run(Command::new("cp")
                    .arg("-a")
                    .arg(debug.join("build").join(entry.file_name()))
                    .arg(target.join("debug/build")));
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = || {
        run(Command::new(&cargo)
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_TERM_COLOR", "never")
            .args(["build", "--offline", "--quiet", "--bin", "taskdb"]));
    };
    build();
    assert_embedded_list_untouched(&debug, root);
    let binary = target.join("debug/taskdb");
    if fresh_facts {
        run(Command::new(&binary).current_dir(&src).args([
            "lint",
            "--write-facts",
            "migrations/lint-facts.json",
        ]));
        build();
    }
    binary
}

/// The copy's build must leave this build's embedded migration list (in
/// `<target>/debug/build/taskdb-*/out`) as it was: naming none of the
/// copy's files.
fn assert_embedded_list_untouched(debug: &Path, copy_root: &Path) {
    for entry in std::fs::read_dir(debug.join("build")).unwrap() {
        let list = entry.unwrap().path().join("out/migration_sql.rs");
        if let Ok(text) = std::fs::read_to_string(&list) {
            assert!(
                !text.contains(&*copy_root.to_string_lossy()),
                "building the copy rewrote {}",
                list.display()
            );
        }
    }
}

fn copy_with(fresh_facts: bool) -> &'static Path {
    static STALE: OnceLock<PathBuf> = OnceLock::new();
    static FRESH: OnceLock<PathBuf> = OnceLock::new();
    let (cell, name) = if fresh_facts {
        (&FRESH, "lint-migrate-fresh")
    } else {
        (&STALE, "lint-migrate-stale")
    };
    cell.get_or_init(|| {
        // Under target/, kept between runs (its target directory too, so
        // later runs only recompile taskdb); the sources are copied anew.
        let root = repo().join("target/scratch").join(name);
        let _ = std::fs::remove_dir_all(root.join("src"));
        std::fs::create_dir_all(root.join("src")).unwrap();
        build_copy(&root, fresh_facts)
    })
}

fn copy_taskdb(binary: &Path, db: &TestDb) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .arg("--database-url")
        .arg(db.url());
    cmd
}

/// How many PostgreSQL migrations this build has (the copy has two more).
fn compiled_in() -> i64 {
    taskdb::migrate::migrations(Backend::Postgres).len() as i64
}

fn tasks_with_rows(rows: u32) -> TestDb {
    let db = TestDb::migrated(Backend::Postgres);
    db.execute(&format!(
        "INSERT INTO users (id, email, password_hash) VALUES ('u1', 'u1@example.com', 'x');
         INSERT INTO tasks (user_id, title) SELECT 'u1', 'task ' || g FROM generate_series(1, {rows}) g;
         ANALYZE tasks;"
    ));
    db
}

fn refused_before_touching_the_table(fresh_facts: bool) {
    let binary = copy_with(fresh_facts);
    let db = tasks_with_rows(50_000);
    let before = common::schema_dump(&db);
    let applied = "SELECT count(*) FROM __diesel_schema_migrations";
    assert_eq!(db.scalar(applied), compiled_in());

    let out = copy_taskdb(binary, &db)
        .arg("migrate")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    for expected in [
        "error: refusing to migrate: 2026-03-01-000001_archive_tasks [index-without-concurrently] holds SHARE on tasks (50.0k rows,",
        "safe recipe: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_title ON tasks (title)",
        "[constraint-without-not-valid] holds ACCESS EXCLUSIVE on tasks (50.0k rows,",
        "CHECK (title <> '') NOT VALID",
        "[add-column-volatile-default]",
        "nothing was applied",
        "(now 10000 rows)",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
    // Neither the unsafe step nor the safe one before it ran.
    assert_eq!(common::schema_dump(&db), before);
    assert_eq!(db.scalar(applied), compiled_in());

    copy_taskdb(binary, &db)
        .args(["migrate", "--dry-run"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "-- lint: 2026-03-01-000001_archive_tasks [index-without-concurrently]: holds SHARE on tasks (50.0k rows",
        ))
        .stdout(predicates::str::contains("MB) for a full scan, blocking writes: refused"));

    // `taskdb lint` in the copy's CI gate refuses it too.
    let src = binary
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("src");
    assert_cmd::Command::new(binary)
        .current_dir(&src)
        .args(["lint", "migrations/postgres"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("3 error(s)"));
}

#[test]
fn migrate_refuses_the_issue_12_migration_on_a_large_table_and_applies_nothing() {
    refused_before_touching_the_table(false);
}

#[test]
fn the_refusal_works_from_the_embedded_facts_alone() {
    refused_before_touching_the_table(true);
}

#[test]
fn migrate_proceeds_on_an_empty_table_and_says_so() {
    let binary = copy_with(false);
    let db = TestDb::migrated(Backend::Postgres);
    copy_taskdb(binary, &db)
        .arg("migrate")
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "taskdb: lint: 2026-03-01-000001_archive_tasks [index-without-concurrently]: holds SHARE on tasks (0 rows",
        ))
        .stderr(predicates::str::contains(
            "proceeding, the table is at most 10000 rows (--unsafe-threshold)",
        ));
    assert_eq!(
        db.scalar("SELECT count(*) FROM __diesel_schema_migrations"),
        compiled_in() + 2
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tasks' AND column_name IN ('note', 'archived_at')"),
        2
    );
}

#[test]
fn a_higher_threshold_lets_it_through() {
    let binary = copy_with(false);
    let db = tasks_with_rows(20_000);
    copy_taskdb(binary, &db)
        .args(["migrate", "--unsafe-threshold", "100000"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "proceeding, the table is at most 100000 rows",
        ));
    assert_eq!(
        db.scalar("SELECT count(*) FROM __diesel_schema_migrations"),
        compiled_in() + 2
    );
}
