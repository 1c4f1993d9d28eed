//! Reading one backend's migration directories at run time.

use std::path::{Path, PathBuf};

use super::LocalMigration;
use crate::error::{Error, Result};

/// An `up.sql` that is not UTF-8 text, where its first invalid byte is.
#[derive(Debug, Clone)]
pub struct NotUtf8 {
    // Named in `taskdb lint`'s finding.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub dir_name: String,
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub column: usize,
}

/// Every migration directory (one with `up.sql`) in `dir`, oldest first,
/// and apart from them the ones whose `up.sql` is not UTF-8 text (so lint
/// reports each such file and still reads the others).
pub fn read_backend_dir(dir: &Path) -> Result<(Vec<LocalMigration>, Vec<NotUtf8>)> {
    let cannot_read = |path: &Path, e: std::io::Error| Error::MigrationsDir {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| cannot_read(dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("up.sql").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let optional = |p: PathBuf| std::fs::read_to_string(p).ok();
    let mut migrations = Vec::new();
    let mut not_utf8 = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let up_path = path.join("up.sql");
        let bytes = std::fs::read(&up_path).map_err(|e| cannot_read(&up_path, e))?;
        match String::from_utf8(bytes) {
            Ok(up) => migrations.push(LocalMigration::from_files(
                &name,
                path.display().to_string(),
                up,
                optional(path.join("down.sql")),
                optional(path.join("metadata.toml")),
            )),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let before = String::from_utf8_lossy(valid);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                not_utf8.push(NotUtf8 {
                    dir_name: name,
                    path: up_path,
                    line,
                    column,
                });
            }
        }
    }
    Ok((migrations, not_utf8))
}
