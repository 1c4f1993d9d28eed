//! Development data: the app's test user (the same account the app's
//! first migration scripts created, so existing task rows keep an owner),
//! what seeding needs of the schema, and demo data in bulk ([`demo`]).

// The runner needs only the development user's id (it names it when
// orphaned tasks belong to it); seeding is the binary's.
#[cfg(feature = "cli")]
pub mod demo;
#[cfg(feature = "cli")]
mod dev_user;

#[cfg(feature = "cli")]
pub use demo::{
    seed_demo, DemoOptions, DemoSeeded, TaskShape, DEFAULT_SKEW, DEMO_PASSWORD, MAX_DEMO_TASKS,
    MAX_DEMO_TASKS_PER_USER, MAX_DEMO_USERS,
};
#[cfg(feature = "cli")]
pub use dev_user::{
    require_demo_tables, require_users_table, seed_user, Seeded, DEV_USER_EMAIL, DEV_USER_NAME,
    DEV_USER_PASSWORD,
};

/// The development user's id.
pub const DEV_USER_ID: &str = "user123";
