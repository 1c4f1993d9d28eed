//! `--add-column`: nullable, or NOT NULL with a constant default, so that
//! neither backend rewrites a row; a volatile default is refused with the
//! backfill recipe instead.

use super::checks::{check_identifier, existing_table, has_control, is_reserved, shown};
use super::{files, AddColumn, Result, ScaffoldError, SqliteSchema, Step};

/// True for a default PostgreSQL stores without rewriting the table and
/// SQLite accepts on a table with rows: a number, a quoted string, TRUE,
/// FALSE or NULL. Anything else (a function call such as `now()`,
/// `CURRENT_TIMESTAMP`, `random()`, `gen_random_uuid()`, an operator) is
/// treated as volatile.
pub fn is_constant_default(expr: &str) -> bool {
    let e = expr.trim();
    if has_control(e) || e.contains('\\') {
        return false;
    }
    let upper = e.to_ascii_uppercase();
    if matches!(upper.as_str(), "TRUE" | "FALSE" | "NULL") {
        return true;
    }
    let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
    if !digits.is_empty()
        && digits.chars().any(|c| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
    {
        return true;
    }
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        // Inside, a quote only appears doubled.
        return !e[1..e.len() - 1].replace("''", "").contains('\'');
    }
    false
}

/// Column types of several words, as PostgreSQL spells them (SQLite takes
/// them too).
const MULTI_WORD_TYPES: &[&str] = &[
    "bit varying",
    "character varying",
    "double precision",
    "time with time zone",
    "time without time zone",
    "timestamp with time zone",
    "timestamp without time zone",
];

/// A column type: a name, maybe with a length or precision, that both
/// backends accept as written. Nothing after it: more words would add a
/// constraint or a default the recipe did not check.
fn check_type(sql_type: &str) -> Result<()> {
    let t = sql_type.trim();
    let (base, args) = match t.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest)),
        None => (t, None),
    };
    let words: Vec<&str> = base.split_whitespace().collect();
    let base_ok = match words.as_slice() {
        [word] => {
            word.starts_with(|c: char| c.is_ascii_alphabetic())
                && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !is_reserved(word)
        }
        _ => MULTI_WORD_TYPES.contains(&words.join(" ").to_ascii_lowercase().as_str()),
    };
    let args_ok = args.is_none_or(|rest| {
        rest.strip_suffix(')').is_some_and(|inner| {
            !inner.trim().is_empty()
                && inner
                    .split(',')
                    .all(|n| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
        })
    });
    if !base_ok || !args_ok {
        return Err(ScaffoldError::Refused(format!(
            "`{}` is not a column type (e.g. timestamp, integer, boolean, varchar(255), text, double precision)",
            shown(sql_type)
        )));
    }
    if ["SERIAL", "BIGSERIAL", "SMALLSERIAL"].contains(&base.to_ascii_uppercase().as_str()) {
        return Err(ScaffoldError::Refused(format!(
            "`{sql_type}` fills every existing row from a sequence (a volatile default), which rewrites the whole table under an exclusive lock: add an integer column nullable, backfill it in batches, then make it NOT NULL with --set-not-null"
        )));
    }
    Ok(())
}

fn volatile_default_refusal(c: &AddColumn, default: &str) -> ScaffoldError {
    let column = format!("{}.{}", c.table, c.column);
    ScaffoldError::Refused(format!(
        "refusing the default `{default}`: it is not a constant, so PostgreSQL would rewrite every row of {table} under an exclusive lock, and SQLite refuses it on a table with rows (\"Cannot add a column with non-constant default\"). Instead: 1) `taskdb new add_{table}_{col} --add-column {table} {col} {ty}` (nullable); 2) have the app write the value for new rows and backfill old ones in batches (UPDATE {table} SET {col} = … WHERE id BETWEEN … AND …, one transaction per batch); 3) `taskdb new {table}_{col}_not_null --set-not-null {column}`",
        table = c.table,
        col = c.column,
        ty = c.sql_type,
    ))
}

pub(super) fn add_column(name: &str, c: &AddColumn, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &c.table)?;
    check_identifier("column", &c.column)?;
    if table.column(&c.column).is_some() {
        return Err(ScaffoldError::Refused(format!(
            "column `{}.{}` exists already",
            c.table, c.column
        )));
    }
    check_type(&c.sql_type)?;
    if let Some(default) = &c.default {
        if has_control(default) || default.contains('\\') {
            return Err(ScaffoldError::Refused(format!(
                "the --default `{}` holds a line break, a control character or `\\`: give a constant on one line (a number, 'text', true, false, null)",
                shown(default)
            )));
        }
        if !is_constant_default(default) {
            return Err(volatile_default_refusal(c, default));
        }
        if c.not_null && default.trim().eq_ignore_ascii_case("NULL") {
            return Err(ScaffoldError::Refused(
                "--not-null with --default NULL fails on every existing row: give a constant value"
                    .to_string(),
            ));
        }
    } else if c.not_null {
        return Err(ScaffoldError::Refused(format!(
            "a NOT NULL column without a default fails on a table with rows: give --default CONST, or add it nullable, backfill it in batches, then `taskdb new {table}_{col}_not_null --set-not-null {table}.{col}`",
            table = c.table,
            col = c.column
        )));
    }
    let mut definition = format!("{} {}", c.column, c.sql_type.trim().to_ascii_uppercase());
    if c.not_null {
        definition.push_str(" NOT NULL");
    }
    if let Some(default) = &c.default {
        definition.push_str(&format!(" DEFAULT {}", default.trim()));
    }
    // Why this ALTER rewrites no row, on a line of its own.
    let why_postgres = match &c.default {
        None => {
            "Nullable, without a default: existing rows read NULL, none is rewritten.".to_string()
        }
        Some(d) => format!(
            "The default {} is a constant: kept in the catalog, no row is rewritten.",
            d.trim()
        ),
    };
    let postgres_up = format!(
        "\
-- Adds {table}.{col}.
-- {why_postgres}
-- The ALTER needs a brief ACCESS EXCLUSIVE lock; taskdb's lock timeout keeps
-- it from queueing the app's queries behind it.
ALTER TABLE {table} ADD COLUMN {definition};
",
        table = c.table,
        col = c.column,
    );
    let down = format!(
        "ALTER TABLE {table} DROP COLUMN {col};\n",
        table = c.table,
        col = c.column
    );
    let sqlite_up = format!(
        "\
-- Adds {table}.{col}. SQLite adds a column in place when its default is a
-- constant (a non-constant one fails once the table has rows).
ALTER TABLE {table} ADD COLUMN {definition};
",
        table = c.table,
        col = c.column,
    );
    Ok(vec![Step {
        name: name.to_string(),
        postgres: files(postgres_up, down.clone()),
        sqlite: files(sqlite_up, down),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaffold::recipes::fixtures::{schema, statements};
    use crate::scaffold::recipes::{build, Recipe};

    fn column(not_null: bool, default: Option<&str>) -> Recipe {
        Recipe::AddColumn(AddColumn {
            table: "tasks".into(),
            column: "due_date".into(),
            sql_type: "timestamp".into(),
            not_null,
            default: default.map(str::to_string),
        })
    }

    #[test]
    fn constant_defaults_are_literals() {
        for constant in ["0", "-1.5", "'open'", "'it''s'", "true", "FALSE", "null"] {
            assert!(is_constant_default(constant), "{constant}");
        }
        for volatile in [
            "now()",
            "CURRENT_TIMESTAMP",
            "clock_timestamp()",
            "random()",
            "gen_random_uuid()",
            "(now() AT TIME ZONE 'UTC')",
            "'a' || 'b'",
            "1 + 1",
            "'unterminated",
            "",
        ] {
            assert!(!is_constant_default(volatile), "{volatile}");
        }
    }

    #[test]
    fn add_column_nullable_and_not_null_with_a_constant() {
        let steps = build("add_tasks_due_date", &column(false, None), &schema()).unwrap();
        assert_eq!(steps.len(), 1);
        let step = &steps[0];
        assert_eq!(step.name, "add_tasks_due_date");
        assert_eq!(
            statements(&step.postgres.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP;"
        );
        assert_eq!(
            step.postgres.down,
            "ALTER TABLE tasks DROP COLUMN due_date;\n"
        );
        assert_eq!(step.postgres.metadata, None);
        assert_eq!(
            statements(&step.sqlite.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP;"
        );
        assert_eq!(step.sqlite.down, step.postgres.down);

        let steps = build(
            "add_tasks_due_date",
            &column(true, Some("'2026-01-01'")),
            &schema(),
        )
        .unwrap();
        assert_eq!(
            statements(&steps[0].postgres.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP NOT NULL DEFAULT '2026-01-01';"
        );
    }

    #[test]
    fn add_column_refuses_volatile_defaults_with_the_backfill_recipe() {
        for default in ["now()", "CURRENT_TIMESTAMP"] {
            let err = build("x", &column(false, Some(default)), &schema())
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a constant"), "{err}");
            assert!(err.contains("backfill"), "{err}");
            assert!(err.contains("--set-not-null tasks.due_date"), "{err}");
        }
        let err = build("x", &column(true, None), &schema())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--default"), "{err}");
        let serial = Recipe::AddColumn(AddColumn {
            table: "tasks".into(),
            column: "n".into(),
            sql_type: "bigserial".into(),
            not_null: false,
            default: None,
        });
        assert!(build("x", &serial, &schema()).is_err());
    }

    #[test]
    fn add_column_refuses_unknown_tables_existing_columns_and_odd_types() {
        let mut c = AddColumn {
            table: "projects".into(),
            column: "x".into(),
            sql_type: "text".into(),
            not_null: false,
            default: None,
        };
        let err = build("x", &Recipe::AddColumn(c.clone()), &schema()).unwrap_err();
        assert!(err.to_string().contains("no table `projects`"), "{err}");
        c.table = "tasks".into();
        c.column = "title".into();
        let err = build("x", &Recipe::AddColumn(c.clone()), &schema()).unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
        c.column = "x".into();
        c.sql_type = "text; DROP TABLE users".into();
        assert!(build("x", &Recipe::AddColumn(c.clone()), &schema()).is_err());
        c.sql_type = "varchar(255)".into();
        assert!(build("x", &Recipe::AddColumn(c), &schema()).is_ok());
    }
}
