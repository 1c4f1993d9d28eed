//! `citus-ddl-not-propagated`: on a Citus coordinator, statements Citus
//! 13 runs on the coordinator only (it says so in a NOTICE or WARNING, the
//! migration succeeds): the workers are left without the change. From
//! Citus's own source (`commands/utility_hook.c`, `cluster.c`,
//! `table.c`): `CLUSTER` without a table, `SECURITY LABEL`, `CREATE ROLE`
//! / `CREATE USER` (with role propagation off), `CREATE DATABASE` (partly)
//! and `ALTER TABLE ALL IN TABLESPACE`.

use super::{Ctx, RawFinding};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

/// The statement's first words, upper case, single-spaced.
fn words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    if ctx.schema.citus.is_none() {
        return Vec::new();
    }
    let text = &ctx.stmt.text;
    let what = match &ctx.stmt.kind {
        StmtKind::Cluster { table: None } => Some("CLUSTER without a table"),
        _ if words(text, 2) == "SECURITY LABEL" => Some("SECURITY LABEL"),
        _ if words(text, 2) == "CREATE ROLE" || words(text, 2) == "CREATE USER" => {
            Some("CREATE ROLE / CREATE USER")
        }
        _ if words(text, 2) == "CREATE DATABASE" => Some("CREATE DATABASE"),
        _ if words(text, 5) == "ALTER TABLE ALL IN TABLESPACE" => {
            Some("ALTER TABLE ALL IN TABLESPACE")
        }
        _ => None,
    };
    let Some(what) = what else {
        return Vec::new();
    };
    vec![RawFinding {
        rule: Rule::CitusDdlNotPropagated,
        table: None,
        lock: None,
        blocks: None,
        holds: None,
        message: format!("Citus does not propagate {what} to the workers: it runs on the coordinator only, and the nodes differ afterwards"),
        recipe: Some("-- run it on every node yourself, e.g. SELECT run_command_on_all_nodes($$ … $$);\n-- or name the table (CLUSTER table), which Citus does propagate".into()),
    }]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{citus_rules_of, rules_of};

    const RULE: &str = "citus-ddl-not-propagated";

    #[test]
    fn statements_citus_runs_on_the_coordinator_only() {
        assert!(citus_rules_of("CLUSTER;").contains(&RULE));
        assert!(!citus_rules_of("CLUSTER tasks USING idx_tasks_title;").contains(&RULE));
        assert!(citus_rules_of("CREATE ROLE app_reader;").contains(&RULE));
        assert!(citus_rules_of("ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE fast;")
            .contains(&RULE));
        assert!(!rules_of("CREATE ROLE app_reader;").contains(&RULE));
    }
}
