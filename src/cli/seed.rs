//! `taskdb seed`: the development user.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::{DatabaseChoice, GlobalOpts};
use crate::db;
use crate::migrate::MigrationPlan;
use crate::models::NewUser;
use crate::seed::{self, Seeded};

/// Creates the development user unless it exists. A second run changes
/// nothing. The default password is a development credential.
#[derive(Debug, Args)]
pub struct Opts {
    /// User id
    #[arg(long, default_value = seed::DEV_USER_ID)]
    pub id: String,

    /// Email (unique, ignoring case)
    #[arg(long, default_value = seed::DEV_USER_EMAIL)]
    pub email: String,

    /// Password, hashed with bcrypt (cost 12); at most 72 bytes
    #[arg(long, default_value = seed::DEV_USER_PASSWORD, hide_default_value = true)]
    pub password: String,

    /// Display name
    #[arg(long, default_value = seed::DEV_USER_NAME)]
    pub name: String,
}

pub fn run(
    opts: &Opts,
    db: &DatabaseChoice,
    global: &GlobalOpts,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    crate::models::user::validate_email(&opts.email)?;
    crate::models::user::validate_password(&opts.password)?;
    let mut conn = db::connect_with_wait(&db.url, global.wait)?;
    let plan = MigrationPlan::load(&mut conn)?;
    let pending = plan.pending().count();
    if pending > 0 {
        anyhow::bail!(
            "the database is not fully migrated ({pending} pending): run `taskdb migrate` first"
        );
    }
    let seeded = seed::seed_user(
        &mut conn,
        NewUser {
            id: Some(&opts.id),
            email: &opts.email,
            password: &opts.password,
            name: Some(&opts.name),
        },
    )?;
    match seeded {
        Seeded::Created(user) => writeln!(out, "Created user {} <{}>.", user.id, user.email)?,
        Seeded::AlreadyPresent(user) => writeln!(
            out,
            "User {} <{}> is already present; nothing changed.",
            user.id, user.email
        )?,
    }
    if opts.password == seed::DEV_USER_PASSWORD {
        eprintln!("warning: this user has the well-known development password; never seed it into a database reachable from the internet");
    }
    Ok(ExitCode::SUCCESS)
}
