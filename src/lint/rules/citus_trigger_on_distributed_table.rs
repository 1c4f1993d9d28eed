//! `citus-trigger-on-distributed-table`: on a Citus coordinator, a trigger
//! on a distributed or reference table runs on the workers, once per
//! shard, and Citus cannot keep what its body does to *other* tables or
//! shards consistent; it creates one only with
//! `citus.enable_unsafe_triggers` on (which `taskdb distribute` turns on
//! for the database, for taskdb's own `updated_at` trigger). Allow it
//! with the reason when the body only touches its own row.

use super::{Ctx, RawFinding};
use crate::lint::model::StmtKind;
use crate::lint::Rule;

/// The table of `SELECT diesel_manage_updated_at('table')`, which creates
/// a trigger on it.
fn updated_at_trigger(text: &str) -> Option<String> {
    let at = text.to_ascii_lowercase().find("diesel_manage_updated_at(")?;
    let rest = &text[at + "diesel_manage_updated_at(".len()..];
    let arg = rest.split(')').next()?.trim();
    let arg = arg.trim_matches('\'').trim_start_matches("public.");
    Some(arg.to_ascii_lowercase())
}

pub fn check(ctx: &Ctx<'_>) -> Vec<RawFinding> {
    let table = match &ctx.stmt.kind {
        StmtKind::CreateTrigger { table } => table.clone(),
        StmtKind::Opaque { .. } => match updated_at_trigger(&ctx.stmt.text) {
            Some(t) => t,
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let Some(held) = ctx.schema.citus_table(&table) else {
        return Vec::new();
    };
    let how = match held {
        Some(column) => format!("distributed by `{column}`"),
        None => "a reference table".to_string(),
    };
    vec![RawFinding {
        rule: Rule::CitusTriggerOnDistributedTable,
        table: Some(table.clone()),
        lock: None,
        blocks: None,
        holds: None,
        message: format!("a trigger on `{table}` ({how} by Citus) runs on the workers, on each shard: Citus keeps nothing its body does to other tables or shards consistent, and creates it only with citus.enable_unsafe_triggers on"),
        recipe: Some(format!(
            "-- keep the trigger to its own row (NEW.col := …), then allow it:\n-- taskdb:allow citus-trigger-on-distributed-table <why the body only touches its own row>\n-- or do the work in the app, in the same transaction as the write to {table}"
        )),
    }]
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::super::test_support::{citus_rules_of, rules_of};

    const RULE: &str = "citus-trigger-on-distributed-table";

    #[test]
    fn triggers_on_citus_tables_are_flagged() {
        let sql = "CREATE TRIGGER tasks_audit AFTER INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION audit();";
        assert_eq!(citus_rules_of(sql), [RULE]);
        assert!(rules_of(sql).is_empty(), "not on a Citus coordinator");
        assert!(citus_rules_of("SELECT diesel_manage_updated_at('users');").contains(&RULE));
        assert!(!citus_rules_of("SELECT diesel_manage_updated_at('other');").contains(&RULE));
    }
}
