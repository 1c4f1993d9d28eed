//! Database URLs keep their meaning and their secrets: a password or query
//! value reaches the server exactly as written (libpq's rules: the userinfo
//! ends at the last `@` before the host, every part is percent-decoded, `+`
//! is a plus), and no form of a secret shows in any output.

use crate::common;

use common::pgbouncer::PgBouncer;
use common::secrets::{output_hiding, SENTINEL};
use common::{query_lines, taskdb_at, taskdb_cmd, unused_port, TestDb};
use diesel::connection::SimpleConnection;
use taskdb::db::{self, DatabaseUrl};
use taskdb::Backend;

/// The password of the role below: every character a URL gives a meaning to.
const SPECIAL_PASSWORD: &str = "p#w@r?d/x% y:z";
const SPECIAL_ROLE: &str = "taskdb_url_pw_test";

/// Runs `cmd` and returns (exit code, stdout + stderr), failing if any of
/// `secrets` shows in either or the binary panicked.
fn output_without(cmd: assert_cmd::Command, secrets: &[&str], what: &str) -> (i32, String) {
    let (code, text) = output_hiding(cmd, secrets, what);
    assert!(!text.contains("panicked"), "{what}: {text}");
    (code.unwrap_or(-1), text)
}

/// A role whose password PgBouncer (md5) really checks: the server's
/// pg_hba trusts loopback, so only a checking pooler proves a password
/// arrived unmangled.
fn special_password_bouncer() -> PgBouncer {
    common::admin()
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SPECIAL_ROLE} LOGIN PASSWORD '{SPECIAL_PASSWORD}'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .unwrap();
    PgBouncer::start_with(
        "transaction",
        "md5",
        &[(SPECIAL_ROLE, SPECIAL_PASSWORD), ("postgres", "")],
    )
}

#[test]
fn a_password_with_url_characters_connects_as_written() {
    let db = TestDb::migrated(Backend::Postgres);
    let bouncer = special_password_bouncer();
    // `status` reads taskdb's tables; the role only needs to read them.
    db.execute(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {SPECIAL_ROLE}"
    ));
    let name = db.pg_name().unwrap();
    let at = |password: &str| {
        format!(
            "postgres://{SPECIAL_ROLE}:{password}@127.0.0.1:{}/{name}?pgbouncer=true",
            bouncer.port
        )
    };
    // Every character percent-encoded, and the forms libpq also takes
    // literally (`#`, `?`, `:`, space; `@` and `/` must be encoded).
    let right = [
        "p%23w%40r%3Fd%2Fx%25%20y%3Az",
        "p#w%40r?d%2Fx%25 y:z",
        "p#w%40r%3Fd%2Fx%25%20y:z",
    ];
    let hidden = [
        SPECIAL_PASSWORD,
        "p%23w%40r",
        "p#w%40r",
        "r?d%2Fx",
        "r%3Fd%2Fx",
    ];
    for password in right {
        let url = at(password);
        let mut cmd = taskdb_at(&url);
        cmd.arg("status");
        let (code, output) = output_without(cmd, &hidden, password);
        assert_eq!(
            code, 0,
            "{password}: the right password is refused:\n{output}"
        );
        // The library's own connection, as backend code makes it.
        let parsed = DatabaseUrl::parse(&url).unwrap();
        let mut conn = db::connect(&parsed).unwrap_or_else(|e| panic!("{password}: {e}"));
        assert_eq!(
            query_lines(&mut conn, "SELECT current_user::text AS line"),
            [SPECIAL_ROLE]
        );
    }
    // A wrong password still fails on its password: the pooler checks.
    for wrong in ["p%23w%40r%3Fd%2Fx%25%20y", "p", "p#w@r?d/x% y:z"] {
        let mut cmd = taskdb_at(&at(wrong));
        cmd.arg("status");
        let (code, output) = output_without(cmd, &hidden, wrong);
        assert_eq!(code, 1, "{wrong}: {output}");
        assert!(
            output.contains("password authentication failed")
                || output.contains("invalid database URL"),
            "{wrong}: {output}"
        );
    }
}

#[test]
fn query_values_reach_the_server_as_written() {
    let base = common::pg_url("postgres");
    let url = DatabaseUrl::parse(&format!(
        "{base}?options=-c%20statement_timeout%3D5000&application_name=a+b%20c%2Bd"
    ))
    .unwrap();
    let mut conn = db::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        query_lines(
            &mut conn,
            "SELECT current_setting('statement_timeout') AS line"
        ),
        ["5s"]
    );
    assert_eq!(
        query_lines(
            &mut conn,
            "SELECT current_setting('application_name') AS line"
        ),
        ["a+b c+d"]
    );
    // The shown form keeps the values as the user wrote them.
    assert!(
        url.redacted()
            .contains("options=-c%20statement_timeout%3D5000"),
        "{url}"
    );
}

#[test]
fn secrets_in_every_url_form_stay_hidden() {
    let port = unused_port();
    let forms = [
        format!("postgres://app:pa#{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:pa%23{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:pa?{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:pa {SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:pa@{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app@127.0.0.1:{port}/tasks?password={SENTINEL}"),
        format!("postgres://app@127.0.0.1:{port}/tasks?sslmode=prefer&sslpassword={SENTINEL}"),
        format!("postgres://app@127.0.0.1:{port}/tasks?pass%77ord={SENTINEL}"),
        format!("postgresql://app@127.0.0.1:{port}/tasks?oauth_client_secret={SENTINEL}"),
        format!("postgres://app:{SENTINEL}@127.0.0.1:{port}/tasks?password={SENTINEL}x"),
    ];
    for url in &forms {
        let parsed = DatabaseUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        for text in [
            parsed.to_string(),
            format!("{parsed:?}"),
            parsed.redacted().to_string(),
            db::redact_url(url),
            db::mask_url_passwords(&format!("see '{url}' here")),
        ] {
            assert!(!text.contains(SENTINEL), "{url}: {text}");
        }
        assert!(
            parsed.redacted().contains(&format!(":{port}/tasks")),
            "{url}: {parsed}"
        );
        for args in [
            &["status"][..],
            &["migrate"],
            &["--wait", "200ms", "status"],
        ] {
            let mut cmd = taskdb_at(url);
            cmd.args(args);
            let (code, output) = output_without(cmd, &[SENTINEL], &format!("{url} {args:?}"));
            assert_eq!(code, 1, "{url}: {output}");
            assert!(output.contains("error: "), "{url}: {output}");
        }
    }
}

#[test]
fn urls_refused_as_ambiguous_hide_their_secrets_too() {
    let port = unused_port();
    for url in [
        // An unencoded `/` in the password: libpq would take `app` for the
        // host and the rest for the database name.
        format!("postgres://app:pa/{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:pa%{SENTINEL}@127.0.0.1:{port}/tasks"),
        format!("postgres://app:{SENTINEL}@127.0.0.1:x{port}/tasks"),
        format!("postgres://app@127.0.0.1:{port}/tasks?password%zz={SENTINEL}"),
        format!("postgres://app@127.0.0.1:{port}/tasks?sslpassword={SENTINEL}&novalue"),
    ] {
        let mut cmd = taskdb_at(&url);
        cmd.arg("status");
        let (code, output) = output_without(cmd, &[SENTINEL], &url);
        assert_eq!(code, 1, "{url}: {output}");
        assert!(
            output.starts_with("error: invalid database URL"),
            "{url}: {output}"
        );
        assert_eq!(output.lines().count(), 1, "{url}: {output}");
    }
}

#[test]
fn a_stray_positional_url_never_shows_its_password() {
    let forms = [
        format!("postgres://u:pa#{SENTINEL}@h/db"),
        format!("postgres://u:pa?{SENTINEL}@h/db"),
        format!("postgres://u:pa {SENTINEL}@h/db"),
        format!("postgres://u:{SENTINEL}@h"),
        format!("postgres://u:it's{SENTINEL}@h/db"),
        format!("postgres://u:pa/{SENTINEL}@h/db"),
        format!("postgres://u@h/db?password={SENTINEL}"),
        format!("postgres://u@h/db?sslmode=require&sslpassword={SENTINEL}"),
        format!("postgresql://u@h/db?oauth_client_secret={SENTINEL}&sslmode=require"),
    ];
    for url in &forms {
        for args in [vec!["migrate", url.as_str()], vec![url.as_str()]] {
            let mut cmd = taskdb_cmd();
            cmd.args(&args);
            let (code, output) = output_without(cmd, &[SENTINEL], url);
            assert_eq!(code, 2, "{url}: {output}");
            assert_eq!(output.lines().count(), 1, "{url}: {output}");
            assert!(output.starts_with("error: "), "{url}: {output}");
        }
    }
}
