//! pynchy's SQLite database, read-only, through diesel.
//!
//! The file is opened with a `file:PATH?mode=ro` URI, so SQLite can neither
//! create it nor write to it; `PRAGMA query_only` is set as a second guard. A
//! connection is reused between collections and reopened after any error, and
//! when the file at the path is no longer the one it opened (pynchy restored a
//! backup, or a test replaced it). A writer holding a lock makes a query wait at
//! most the busy timeout, then fail for that cycle.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

/// Why the database could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("database file {0} does not exist")]
    Missing(String),
    #[error("cannot open database: {0}")]
    Open(String),
    #[error("database query failed: {0}")]
    Query(String),
    /// The file reads, but lacks a table or column (an older pynchy).
    #[error("database query failed: {0}")]
    Schema(String),
}

impl DbError {
    /// True when the database cannot be read at all, as opposed to a query
    /// that an older schema cannot answer.
    pub fn is_unreadable(&self) -> bool {
        !matches!(self, DbError::Schema(_))
    }

    fn from_query(e: diesel::result::Error) -> DbError {
        let msg = e.to_string();
        // SQLite's own words for an older schema.
        if msg.starts_with("no such table") || msg.starts_with("no such column") {
            DbError::Schema(msg)
        } else {
            DbError::Query(msg)
        }
    }
}

/// Identifies the file behind a path, to notice it being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Some(FileId { dev: 0, ino: 0 })
    }
}

/// The `file:` URI that opens `path` read-only. `?`, `#` and `%` are
/// percent-encoded: SQLite would otherwise read them as URI syntax.
pub fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// A lazily opened, reused, read-only connection to one database file.
pub struct Db {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Mutex<Option<(SqliteConnection, Option<FileId>)>>,
}

impl Db {
    pub fn new(path: impl Into<PathBuf>, busy_timeout: Duration) -> Db {
        Db {
            path: path.into(),
            busy_timeout,
            conn: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<(SqliteConnection, Option<FileId>), DbError> {
        let id = file_id(&self.path);
        if id.is_none() {
            return Err(DbError::Missing(self.path.display().to_string()));
        }
        let mut conn = SqliteConnection::establish(&read_only_uri(&self.path))
            .map_err(|e| DbError::Open(e.to_string()))?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA query_only = 1;",
            self.busy_timeout.as_millis()
        ))
        .map_err(|e| DbError::Open(e.to_string()))?;
        Ok((conn, id))
    }

    /// Runs `f` on the connection (opening or reopening it as needed). Any error
    /// drops the connection, so the next call starts afresh.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        self.read_file(|c, _| f(c))
    }

    /// [`Db::read`], also handing `f` the identity (device, inode) of the
    /// file the connection has open: another one means the file was replaced.
    pub fn read_file<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection, Option<(u64, u64)>) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let current = file_id(&self.path);
        if current.is_none() {
            *guard = None;
            return Err(DbError::Missing(self.path.display().to_string()));
        }
        if guard.as_ref().is_some_and(|(_, id)| *id != current) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let Some((conn, id)) = guard.as_mut() else {
            return Err(DbError::Open("no connection".into()));
        };
        let key = id.map(|i| (i.dev, i.ino));
        match f(conn, key) {
            Ok(v) => Ok(v),
            Err(e) => {
                *guard = None;
                Err(DbError::from_query(e))
            }
        }
    }
}

/// A row of one `COUNT(*)`-like integer.
#[derive(Debug, QueryableByName)]
pub struct Int {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A `router_state` row.
#[derive(Debug, QueryableByName)]
pub struct KeyValue {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub value: Option<String>,
}

/// `router_state` values for these keys, as (key, value) pairs.
pub fn router_state(db: &Db, keys: &[&str]) -> Result<Vec<(String, Option<String>)>, DbError> {
    let placeholders = vec!["?"; keys.len()].join(",");
    let sql = format!("SELECT key, value FROM router_state WHERE key IN ({placeholders})");
    db.read(|c| {
        let mut q = diesel::sql_query(sql).into_boxed();
        for k in keys {
            q = q.bind::<Text, _>(*k);
        }
        q.load::<KeyValue>(c)
    })
    .map(|rows| rows.into_iter().map(|r| (r.key, r.value)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_uri_syntax() {
        assert_eq!(
            read_only_uri(Path::new("/a b/50%?x#y.db")),
            "file:/a b/50%25%3fx%23y.db?mode=ro"
        );
    }

    #[test]
    fn missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let db = Db::new(&path, Duration::from_millis(100));
        let e = db.read(|c| diesel::sql_query("SELECT 1 AS n").load::<Int>(c));
        assert!(matches!(e, Err(DbError::Missing(_))));
        assert!(!path.exists());
    }
}
