//! `impl Db` over an in-memory rusqlite connection: the R2 path's database inside the Worker
//! (SQLite compiled to wasm), and the backend of the native unit tests.
//!
//! The database lives only in memory: it is deserialised from the bytes of the user's R2 object
//! and serialised back when a request wrote. Natively, the migrator also opens files on disk
//! with it ([`RusqliteDb::open_file`]).

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, Connection, MAIN_DB};

use crate::db::{Db, DbError, Row, SqlValue};

pub struct RusqliteDb {
    conn: Connection,
}

impl RusqliteDb {
    /// A new, empty database (a user who has no object in R2 yet).
    pub fn empty() -> Result<Self, DbError> {
        Self::wrap(Connection::open_in_memory().map_err(DbError::from)?)
    }

    /// Opens the bytes of a SQLite file. Fails when they are not a readable SQLite database.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DbError> {
        if bytes.is_empty() {
            return Err(DbError::failed("the file is empty"));
        }
        let mut conn = Connection::open_in_memory().map_err(DbError::from)?;
        conn.deserialize_read_exact(MAIN_DB, bytes, bytes.len(), false)
            .map_err(DbError::from)?;
        // Deserialising does not read the header; a query does, and fails on garbage.
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(DbError::from)?;
        Self::wrap(conn)
    }

    /// Opens (or creates) a SQLite file on disk: the native migrator's copy of a database too
    /// large to hold in memory. The file is a scratch copy, rebuilt after a crash, so it is
    /// written without a journal.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_file(path: &std::path::Path) -> Result<Self, DbError> {
        let conn = Connection::open(path).map_err(DbError::from)?;
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
            .map_err(DbError::from)?;
        Self::wrap(conn)
    }

    fn wrap(conn: Connection) -> Result<Self, DbError> {
        // The app's foreign keys are declared but never enforced (docs/schema.md §0): dangling ids
        // and the `project_id = 0` sentinel are normal. Some SQLite builds enforce by default.
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(DbError::from)?;
        Ok(Self { conn })
    }

    /// The database's size in bytes (pages x page size).
    pub fn size_bytes(&self) -> u64 {
        self.conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_or(0, |size| size as u64)
    }

    /// The statement, compiled once per connection: a copy runs the same few statements for
    /// every row.
    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>, DbError> {
        self.conn.prepare_cached(sql).map_err(DbError::from)
    }

    /// The database as the bytes of a SQLite file, ready to upload.
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, DbError> {
        Ok(self
            .conn
            .serialize(MAIN_DB)
            .map_err(DbError::from)?
            .to_vec())
    }
}

impl Db for RusqliteDb {
    fn total_changes(&self) -> Result<u64, DbError> {
        Ok(self.conn.total_changes())
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError> {
        self.prepare(sql)?
            .execute(params_from_iter(params.iter().map(to_rusqlite)))
            .map_err(DbError::from)
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare(sql)?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(params_from_iter(params.iter().map(to_rusqlite)), |row| {
                (0..columns)
                    .map(|i| row.get_ref(i).map(from_rusqlite))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .map_err(DbError::from)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(DbError::from)
    }

    fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(DbError::from)
    }

    fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn.execute_batch("BEGIN").map_err(DbError::from)?;
        match work() {
            Ok(value) => {
                self.conn.execute_batch("COMMIT").map_err(DbError::from)?;
                Ok(value)
            }
            Err(err) => {
                self.conn.execute_batch("ROLLBACK").map_err(DbError::from)?;
                Err(err)
            }
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        DbError::from_backend(err.to_string())
    }
}

fn to_rusqlite(value: &SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

fn from_rusqlite(value: ValueRef<'_>) -> SqlValue {
    match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{apply_migrations, MIGRATIONS_TABLE};

    #[test]
    fn changes_count_rows_a_statement_changed_not_statements_that_could_write() {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        let changed = |sql: &str| {
            let before = db.total_changes().unwrap();
            db.query(sql, &[]).unwrap();
            db.total_changes().unwrap() - before
        };
        assert_eq!(changed("SELECT * FROM games"), 0);
        assert_eq!(
            changed("WITH n(x) AS (SELECT 'g') INSERT INTO games (name) SELECT x FROM n"),
            1
        );
        assert_eq!(
            changed("INSERT INTO games (name) VALUES ('r') RETURNING id"),
            1
        );
        assert_eq!(changed("UPDATE games SET name = 'x' WHERE id = 99"), 0);
        assert_eq!(changed("UPDATE games SET name = 'same'"), 2);
        assert_eq!(changed("DELETE FROM export_jobs"), 0);
        assert_eq!(changed("REPLACE INTO games (id, name) VALUES (1, 'h')"), 1);
    }

    #[test]
    fn a_failed_transaction_leaves_none_of_its_writes() {
        let db = RusqliteDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        let result: Result<(), DbError> = db.transaction(|| {
            db.execute("INSERT INTO games (name) VALUES ('kept?')", &[])?;
            Err(DbError::failed("fails after its first write"))
        });
        assert!(result.is_err());
        assert!(db.query("SELECT id FROM games", &[]).unwrap().is_empty());

        db.transaction(|| db.execute("INSERT INTO games (name) VALUES ('kept')", &[]))
            .unwrap();
        assert_eq!(db.query("SELECT id FROM games", &[]).unwrap().len(), 1);
    }

    #[test]
    fn garbage_bytes_are_refused() {
        assert!(RusqliteDb::from_bytes(b"definitely not a database").is_err());
        assert!(RusqliteDb::from_bytes(&[]).is_err());
    }

    #[test]
    fn migrations_apply_once_and_create_all_eight_tables() {
        let db = RusqliteDb::empty().unwrap();
        assert_eq!(apply_migrations(&db).unwrap(), 2);
        assert_eq!(apply_migrations(&db).unwrap(), 0);
        let tables = db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name != ? ORDER BY name",
                &[MIGRATIONS_TABLE.into()],
            )
            .unwrap()
            .iter()
            .map(|row| row.get::<String>(0).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(
            tables,
            [
                "before_after_tracks",
                "data_version",
                "export_jobs",
                "final_videos",
                "games",
                "projects",
                "raw_clips",
                "working_clips",
                "working_videos"
            ]
        );
    }

    #[test]
    fn an_existing_app_database_is_adopted_with_its_rows() {
        // The existing app's database: the tables, rows, and no record of migrations.
        let mut existing = RusqliteDb::empty().unwrap();
        existing
            .execute_script(include_str!("../../../schema/0001_init.sql"))
            .unwrap();
        existing
            .execute("INSERT INTO games (name) VALUES (?)", &["Final".into()])
            .unwrap();
        let bytes = existing.to_bytes().unwrap();

        let db = RusqliteDb::from_bytes(&bytes).unwrap();
        assert_eq!(apply_migrations(&db).unwrap(), 2);
        let names = db.query("SELECT name FROM games", &[]).unwrap();
        assert_eq!(names, vec![Row(vec![SqlValue::Text("Final".into())])]);
    }
}
