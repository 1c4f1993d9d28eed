//! `--format json` of `status` and `verify`: stdout is one JSON document
//! with the documented fields, on both backends.

use crate::common;

use common::TestDb;
use serde_json::Value;

fn json_of(db: &TestDb, args: &[&str]) -> (Option<i32>, Value) {
    let output = db.taskdb().args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with('{'),
        "stdout must be pure JSON: {stdout}"
    );
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (output.status.code(), json)
}

fn backend_name(db: &TestDb) -> &'static str {
    match db.backend {
        taskdb::Backend::Postgres => "postgres",
        taskdb::Backend::Sqlite => "sqlite",
    }
}

both_backends!(status_of_a_migrated_database, migrated, |db| {
    let (code, json) = json_of(&db, &["status", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(json["backend"], backend_name(&db));
    assert!(json["database"]
        .as_str()
        .unwrap()
        .contains(match db.backend {
            taskdb::Backend::Postgres => "postgres://",
            taskdb::Backend::Sqlite => "sqlite://",
        }));
    let migrations = json["migrations"].as_array().unwrap();
    let total = taskdb::migrate::migrations(db.backend).len();
    assert_eq!(json["total"], total);
    assert_eq!(json["applied"], total);
    assert_eq!(json["pending"], 0);
    assert_eq!(migrations.len(), total);
    for (m, local) in migrations
        .iter()
        .zip(taskdb::migrate::migrations(db.backend))
    {
        let keys: Vec<&str> = m.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys.len(),
            7,
            "exactly the documented fields: {keys:?} in {m}"
        );
        // Only a backfill cut off or running has one.
        assert!(m["backfill"].is_null());
        assert_eq!(m["version"], local.version());
        assert_eq!(m["name"], local.dir_name());
        assert_eq!(m["state"], "applied");
        assert_eq!(m["checksum"], "ok");
        assert!(m["execution_ms"].is_i64());
        let at = m["applied_at"].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
            "{at}"
        );
    }
});

both_backends!(status_of_an_empty_database, empty, |db| {
    let (code, json) = json_of(&db, &["status", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(json["applied"], 0);
    assert_eq!(json["pending"], json["total"]);
    for m in json["migrations"].as_array().unwrap() {
        assert_eq!(m["state"], "pending");
        assert!(m["applied_at"].is_null());
        assert!(m["checksum"].is_null());
        assert!(m["execution_ms"].is_null());
    }
    // --check still decides the exit code.
    let (code, _) = json_of(&db, &["status", "--format", "json", "--check"]);
    assert_eq!(code, Some(1));
});

both_backends!(
    status_reports_modified_and_unrecorded_checksums,
    migrated,
    |db| {
        let all = taskdb::migrate::migrations(db.backend);
        let (first, last) = (all[0].version(), all[all.len() - 1].version());
        db.execute(&format!(
            "UPDATE __taskdb_ledger SET checksum = 'edited' WHERE version = '{first}';
         DELETE FROM __taskdb_ledger WHERE version = '{last}';"
        ));
        let (_, json) = json_of(&db, &["status", "--format", "json"]);
        let by_version = |v: &str| {
            json["migrations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["version"] == v)
                .unwrap()
                .clone()
        };
        assert_eq!(by_version(&first)["checksum"], "modified");
        assert_eq!(by_version(&first)["state"], "modified");
        assert_eq!(by_version(&last)["checksum"], "unrecorded");
        assert!(by_version(&last)["execution_ms"].is_null());
    }
);

both_backends!(verify_document, migrated, |db| {
    let (code, json) = json_of(&db, &["verify", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(json["backend"], backend_name(&db));
    assert_eq!(json["clean"], true);
    assert!(json["differences"].as_array().unwrap().is_empty());
    assert_eq!(json["pending_migrations"], 0);
    let from = json["expected_from"].as_str().unwrap();
    assert!(
        ["scratch_database", "scratch_schema", "in_memory"].contains(&from),
        "{from}"
    );
    let users = &json["schema"]["tables"]["users"];
    let email = users["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "email")
        .unwrap();
    assert_eq!(email["nullable"], false);
    assert!(email["type"].as_str().unwrap().contains("255"));
    assert!(users["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "users_email_lower_key"
            && i["unique"] == true
            && i["valid"] == true));

    db.execute("CREATE INDEX tasks_title_idx ON tasks (title)");
    let (code, json) = json_of(&db, &["verify", "--format", "json"]);
    assert_eq!(code, Some(1));
    assert_eq!(json["clean"], false);
    let d = &json["differences"][0];
    assert_eq!(d["kind"], "extra_index");
    assert_eq!(d["object"], "index tasks_title_idx on tasks");
    assert!(d["expected"].is_null());
    assert!(d["actual"].as_str().unwrap().contains("tasks_title_idx"));
    assert_eq!(d.as_object().unwrap().len(), 4);
});

#[test]
fn text_mode_still_names_the_database_first() {
    let db = TestDb::migrated(taskdb::Backend::Sqlite);
    let out = db.taskdb().arg("status").assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).starts_with("database: "));
}

#[test]
fn passwords_stay_out_of_json() {
    // The URL is never reached (nothing listens on port 1), but the error
    // goes to stderr and stdout stays empty rather than half a document.
    let output = common::taskdb_cmd()
        .args([
            "--database-url",
            "postgres://app:hunter2@127.0.0.1:1/tasks",
            "status",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
