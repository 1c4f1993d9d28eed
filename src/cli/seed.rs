//! `taskdb seed`: the development user; `taskdb seed demo`: demo data.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::human_duration;
use super::output::Output;
use super::progress::{format_rows, Ticker};
use super::Database;
use crate::models::NewUser;
use crate::seed::{self, Seeded};

/// Creates the development user unless it exists. A second run changes
/// nothing. The default password is a development credential.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Opts {
    #[command(subcommand)]
    pub demo: Option<SeedCommand>,

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

#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// Fill the database with realistic demo users and tasks, fast (COPY on
    /// PostgreSQL, batched inserts on SQLite, one transaction). Every demo
    /// user gets the same development password.
    Demo(DemoOpts),
}

#[derive(Debug, Args)]
pub struct DemoOpts {
    /// How many demo users to create
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(seed::MAX_DEMO_USERS)))]
    pub users: u32,

    /// How many tasks each demo user gets (about 30% completed)
    #[arg(long, value_name = "M", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(seed::MAX_DEMO_TASKS_PER_USER)))]
    pub tasks_per_user: u32,

    /// Password of every demo user (a development credential)
    #[arg(long, default_value = seed::DEMO_PASSWORD)]
    pub password: String,

    /// Skew the tasks per user as real owners are (80/20: most users few
    /// tasks, a few very many; the mean stays --tasks-per-user, none over
    /// the per-user maximum)
    #[arg(long)]
    pub skewed: bool,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    if let Some(SeedCommand::Demo(demo)) = &opts.demo {
        return run_demo(demo, db, out);
    }
    let new = NewUser {
        id: Some(&opts.id),
        email: &opts.email,
        password: &opts.password,
        name: Some(&opts.name),
    };
    // Bad input fails before connecting.
    crate::models::user::validate_new(&new)?;
    // The seed checks the tables it writes, not the migration state: when
    // `migrate` stops at orphaned tasks of the development user, creating
    // that user is the fix, so the seed must work there.
    let mut conn = db.connect()?;
    let seeded = seed::seed_user(&mut conn, new)?;
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

fn run_demo(opts: &DemoOpts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    crate::models::user::validate_password(&opts.password)?;
    let mut conn = db.connect()?;
    let ticker = Ticker::start("seeding demo data".into(), None);
    let seeded = seed::seed_demo(
        &mut conn,
        &seed::DemoOptions {
            users: opts.users,
            tasks_per_user: opts.tasks_per_user,
            password: opts.password.clone(),
            shape: seed::TaskShape {
                skew: opts.skewed.then_some(seed::DEFAULT_SKEW),
                ..seed::TaskShape::default()
            },
        },
        &mut |done, total| {
            if let Some(t) = &ticker {
                t.set_detail(format_rows(done, total));
            }
        },
    )?;
    drop(ticker);
    writeln!(
        out,
        "Created {} demo user(s) and {} task(s) (run {}) in {}: {} rows, {:.0} rows/s.",
        seeded.users,
        seeded.tasks,
        seeded.run_id,
        human_duration(seeded.elapsed),
        seeded.rows(),
        seeded.rows_per_second()
    )?;
    writeln!(
        out,
        "Every demo user's password is `{}`; log in as e.g. {}.",
        opts.password, seeded.first_email
    )?;
    eprintln!("warning: the demo password is a development credential; never seed demo users into a database reachable from the internet");
    Ok(ExitCode::SUCCESS)
}
