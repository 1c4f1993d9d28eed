//! A login role of the test server with no privileges beyond what a test
//! grants it (not a superuser, no CREATEDB, no pg_read_all_stats), for
//! what taskdb does as an ordinary role. Dropped, with everything it owns
//! handed back to the admin first, when the guard drops (also after a
//! failed assertion).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;

pub struct Role {
    pub name: String,
    /// Databases it may own objects in, to reassign them from on drop.
    pub(crate) databases: Vec<String>,
}

impl Role {
    pub fn create(prefix: &str) -> Role {
        let name = format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        super::admin()
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .unwrap();
        Role {
            name,
            databases: Vec::new(),
        }
    }

    /// Runs `sql` as the admin in database `db`, remembering the database.
    pub fn grant_in(&mut self, db: &str, sql: &str) {
        PgConnection::establish(&super::pg_url(db))
            .unwrap()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        self.databases.push(db.to_string());
    }

    /// The URL of database `db` as this role.
    pub fn url(&self, db: &str) -> String {
        super::pg_url(db).replacen("://postgres@", &format!("://{}@", self.name), 1)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        for db in &self.databases {
            if let Ok(mut conn) = PgConnection::establish(&super::pg_url(db)) {
                let _ = conn.batch_execute(&format!(
                    "REASSIGN OWNED BY {0} TO postgres; DROP OWNED BY {0}",
                    self.name
                ));
            }
        }
        if let Ok(mut admin) = PgConnection::establish(&super::admin_url()) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}
