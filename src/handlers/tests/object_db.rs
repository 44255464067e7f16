//! The Durable Object's SQLite, natively: a [`Db`] that holds the handlers to what the object
//! allows, so that a limit only the object has fails a native test instead of a user.
//!
//! The object runs SQLite inside workerd behind `SqlStorage::exec`, and `object::sql_db` moves
//! every value through JavaScript. [`ObjectDb`] is a rusqlite connection set up the way workerd
//! sets up the object's database, with values converted the way `SqlDb` and workerd convert
//! them. The values are workerd's, from `src/workerd/util/sqlite.c++` and
//! `src/workerd/api/sql.c++` at v1.20260426.1 (the workerd that this project's wrangler runs):
//!
//! - [`LIMITS`]: every `sqlite3_limit` call of `SqliteDatabase::setupSecurity`. Among them: at
//!   most 100 bound parameters (`SQLITE_LIMIT_VARIABLE_NUMBER`), 5 terms in a compound SELECT
//!   (`SQLITE_LIMIT_COMPOUND_SELECT`), 100,000 bytes of SQL, 100 columns, LIKE and GLOB patterns
//!   of at most 50 bytes. `SQLITE_LIMIT_LENGTH`, the largest string, blob or row, is the one value
//!   not copied: see [`MAX_VALUE_BYTES`].
//! - Defensive mode (`SQLITE_DBCONFIG_DEFENSIVE`), and foreign keys enforced until the Worker turns
//!   them off (`SQLITE_DEFAULT_FOREIGN_KEYS=1` in workerd's `build/BUILD.sqlite3`).
//! - The authorizer (`SqliteDatabase::isAuthorized` with `SqlStorage` as its regulator): no
//!   `BEGIN`, `COMMIT` or `SAVEPOINT` in SQL (transactions go through `transactionSync`), only
//!   the allowlisted pragmas and functions, no `ATTACH`, no temporary tables, no virtual tables
//!   but FTS5, and no names starting with `_cf_`.
//! - Values: every number is a JavaScript number both ways. A bound integer binds as a REAL
//!   (`sqlite3_bind_double`: `SqlStorage`'s bindings hold a `double`), so `? || ''` makes `'5.0'`
//!   on the object; an integer beyond ±(2^53 − 1) is refused before it binds (`SqlDb`'s `to_js`).
//!   A REAL that holds a whole number comes back as an integer (`SqlDb`'s `from_js`), -0.0 as a
//!   REAL.
//!
//! Two places where the object is quietly lossy, and this backend fails instead, so that a
//! difference fails a test rather than changes a user's data: an integer beyond ±(2^53 − 1) read
//! back is an error here (workerd casts it to a double, `Cursor::rowIteratorNext`, and `SqlDb`
//! hands the Worker a rounded REAL); and values or rows over 2,000,000 bytes fail although this
//! workerd accepts up to 2,200,000 (see [`MAX_VALUE_BYTES`]).
//!
//! What it does not model: the object's storage size and CPU limits, the statement cache, and
//! SQLite versions (workerd builds 3.47.0; rusqlite bundles a newer one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, Connection};

use user_data_core::db::{
    from_js_number, integer_as_js_number, Db, DbError, Row, SqlValue, MAX_SAFE_INTEGER,
};

/// The largest string, blob or row (`SQLITE_LIMIT_LENGTH`), in bytes. Cloudflare documents 2 MB
/// for SQLite-backed Durable Objects, and the migration's preflight refuses values and rows over
/// 2,000,000 bytes; workerd v1.20260426.1 sets 2,200,000 ("we want to allow storing values of
/// 1MiB, and we added some extra padding"), and workerd since commit 9e5da19 (August 2026) sets
/// 4 MiB. The contract is the smallest of these: what fits here fits everywhere.
pub const MAX_VALUE_BYTES: i32 = 2_000_000;

/// `SqliteDatabase::setupSecurity`'s `sqlite3_limit` calls, in its order.
pub const LIMITS: [(Limit, i32); 12] = [
    (Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES),
    (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (Limit::SQLITE_LIMIT_COLUMN, 100),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 127),
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
];

/// workerd's `ALLOWED_PRAGMAS`, with how each may be called.
const ALLOWED_PRAGMAS: [(&str, PragmaArgument); 15] = [
    ("data_version", PragmaArgument::Nothing),
    ("case_sensitive_like", PragmaArgument::Boolean),
    ("foreign_keys", PragmaArgument::Boolean),
    ("defer_foreign_keys", PragmaArgument::Boolean),
    ("ignore_check_constraints", PragmaArgument::Boolean),
    ("legacy_alter_table", PragmaArgument::Boolean),
    ("recursive_triggers", PragmaArgument::Boolean),
    ("reverse_unordered_selects", PragmaArgument::Boolean),
    ("foreign_key_check", PragmaArgument::OptionalName),
    ("foreign_key_list", PragmaArgument::Name),
    ("index_info", PragmaArgument::Name),
    ("index_list", PragmaArgument::Name),
    ("index_xinfo", PragmaArgument::Name),
    ("quick_check", PragmaArgument::NothingNumberOrName),
    ("optimize", PragmaArgument::NothingOrNumber),
];

#[derive(Clone, Copy)]
enum PragmaArgument {
    Nothing,
    Boolean,
    Name,
    OptionalName,
    NothingOrNumber,
    NothingNumberOrName,
}

/// workerd's `ALLOWED_SQLITE_FUNCTIONS`, in its order.
#[rustfmt::skip]
const ALLOWED_FUNCTIONS: &[&str] = &[
    // Core functions (without the sqlite_* ones that reveal build details)
    "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
    "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood", "likely",
    "load_extension", "lower", "ltrim", "max_scalar", "min_scalar", "nullif", "octet_length",
    "printf", "quote", "random", "randomblob", "replace", "round", "rtrim", "sign", "soundex",
    "substr", "substring", "total_changes", "trim", "typeof", "unhex", "unicode", "unlikely",
    "upper", "zeroblob",
    // Date and time
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff", "current_date",
    "current_time", "current_timestamp",
    // Aggregates
    "avg", "count", "group_concat", "max", "min", "string_agg", "sum", "total",
    // Window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // Math
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "cos", "cosh", "degrees",
    "exp", "floor", "ln", "log", "log2", "mod", "pi", "pow", "radians", "sin", "sinh", "sqrt",
    "tan", "tanh", "trunc",
    // JSON
    "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_extract",
    "jsonb_extract", "->", "->>", "json_insert", "jsonb_insert", "json_object", "jsonb_object",
    "json_patch", "jsonb_patch", "json_remove", "jsonb_remove", "json_replace", "jsonb_replace",
    "json_set", "jsonb_set", "json_type", "json_valid", "json_quote", "json_group_array",
    "jsonb_group_array", "json_group_object", "jsonb_group_object", "json_each", "json_tree",
    // FTS5
    "match", "highlight", "bm25", "snippet",
    // What ALTER TABLE runs internally
    "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test", "sqlite_drop_column",
    "sqlite_rename_quotefix",
];

/// What `SqlStorage::allowTransactions` throws.
const NO_SQL_TRANSACTIONS: &str = "To execute a transaction, please use the \
    state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN \
    TRANSACTION or SAVEPOINT statements.";

/// A user's database as their Durable Object holds it, in memory.
pub struct ObjectDb {
    conn: Connection,
    /// While set, the authorizer allows everything, as workerd's `TRUSTED` regulator does for
    /// its own statements (here: the transaction `transactionSync` opens and closes).
    trusted: Arc<AtomicBool>,
    /// Why the authorizer last refused, to say so in the error.
    refused: Arc<Mutex<Option<String>>>,
}

impl ObjectDb {
    /// A new, empty database, set up as workerd sets up a Durable Object's.
    pub fn empty() -> Result<Self, DbError> {
        let mut conn = Connection::open_in_memory().map_err(DbError::from)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(DbError::from)?;
        for (limit, value) in LIMITS {
            conn.set_limit(limit, value).map_err(DbError::from)?;
        }
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(DbError::from)?;
        let trusted = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(None));
        let (is_trusted, record) = (trusted.clone(), refused.clone());
        conn.authorizer(Some(move |context: AuthContext<'_>| {
            if is_trusted.load(Ordering::SeqCst) {
                return Authorization::Allow;
            }
            match refusal(&context) {
                None => Authorization::Allow,
                Some(reason) => {
                    *record.lock().unwrap() = Some(reason);
                    Authorization::Deny
                }
            }
        }))
        .map_err(DbError::from)?;
        Ok(Self {
            conn,
            trusted,
            refused,
        })
    }

    fn error(&self, err: rusqlite::Error) -> DbError {
        let refused = self.refused.lock().unwrap().take();
        match refused {
            Some(reason)
                if err.sqlite_error_code()
                    == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) =>
            {
                DbError::failed(format!("{err}: {reason}"))
            }
            _ => err.into(),
        }
    }

    /// Runs `sql` trusted (the authorizer allows it), as workerd runs its own statements.
    fn trusted(&self, sql: &str) -> Result<(), DbError> {
        self.trusted.store(true, Ordering::SeqCst);
        let result = self.conn.execute_batch(sql).map_err(DbError::from);
        self.trusted.store(false, Ordering::SeqCst);
        result
    }

    /// Runs one statement and converts its rows as they reach the Worker.
    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        let bindings = params
            .iter()
            .map(to_binding)
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare(sql).map_err(|err| self.error(err))?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(bindings))
            .map_err(|err| self.error(err))?;
        let mut read = Vec::new();
        while let Some(row) = rows.next().map_err(|err| self.error(err))? {
            let values = (0..columns)
                .map(|i| row.get_ref(i).map_err(DbError::from).and_then(from_sqlite))
                .collect::<Result<Vec<_>, _>>()?;
            read.push(Row(values));
        }
        Ok(read)
    }
}

impl Db for ObjectDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, DbError> {
        // As `SqlDb` counts: the rows changed, from SQLite's running total.
        let before = self.conn.total_changes();
        self.run(sql, params)?;
        Ok((self.conn.total_changes() - before) as usize)
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, DbError> {
        self.run(sql, params)
    }

    fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(|err| self.error(err))
    }

    fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        // `transactionSync`: committed when the callback returns, rolled back when it throws.
        self.trusted("BEGIN")?;
        match work() {
            Ok(value) => {
                self.trusted("COMMIT")?;
                Ok(value)
            }
            Err(err) => {
                self.trusted("ROLLBACK")?;
                Err(err)
            }
        }
    }
}

/// Why workerd's authorizer would refuse `context` under `SqlStorage`'s regulator, if it would.
fn refusal(context: &AuthContext<'_>) -> Option<String> {
    let refuse = |what: String| Some(what);
    let name_refused = |name: &str| {
        (!allowed_name(name)).then(|| format!("the name {name:?} is reserved (_cf_ prefix)"))
    };
    // SQLite passes the database of ALTER TABLE and DETACH as their first argument (rusqlite
    // names it), not as the fifth; workerd swaps them back.
    let database = match context.action {
        AuthAction::AlterTable { database_name, .. } => Some(database_name),
        _ => context.database_name,
    };
    match database {
        Some("main") | None => {}
        Some("temp") => {
            return match context.action {
                AuthAction::Read { table_name, .. } | AuthAction::Update { table_name, .. } => {
                    name_refused(table_name)
                }
                other => refuse(format!("{other:?} on the temp database")),
            }
        }
        Some(other) => return refuse(format!("the database {other:?} (only main)")),
    }
    match context.action {
        AuthAction::Select | AuthAction::Analyze { .. } | AuthAction::Recursive => None,
        AuthAction::CreateTable { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::Insert { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. } => name_refused(table_name),
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            name_refused(view_name)
        }
        AuthAction::Reindex { index_name } => name_refused(index_name),
        AuthAction::CreateIndex {
            index_name: first,
            table_name: second,
        }
        | AuthAction::DropIndex {
            index_name: first,
            table_name: second,
        }
        | AuthAction::CreateTrigger {
            trigger_name: first,
            table_name: second,
        }
        | AuthAction::DropTrigger {
            trigger_name: first,
            table_name: second,
        } => name_refused(first).or_else(|| name_refused(second)),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            refuse(NO_SQL_TRANSACTIONS.into())
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => pragma_refusal(pragma_name, pragma_value),
        // SQLite passes a function's registered (lower case) name; versions newer than
        // workerd's also check the functions of DEFAULT clauses, by the name as written.
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            (!ALLOWED_FUNCTIONS.contains(&name.as_str()))
                .then(|| format!("the function {function_name}() is not on workerd's allowlist"))
        }
        AuthAction::CreateVtable {
            table_name,
            module_name,
        }
        | AuthAction::DropVtable {
            table_name,
            module_name,
        } => {
            if module_name.eq_ignore_ascii_case("fts5")
                || module_name.eq_ignore_ascii_case("fts5vocab")
            {
                name_refused(table_name)
            } else {
                refuse(format!(
                    "virtual tables of module {module_name} (only fts5)"
                ))
            }
        }
        other => refuse(format!("{other:?}")),
    }
}

fn pragma_refusal(pragma: &str, value: Option<&str>) -> Option<String> {
    let refused = || Some(format!("PRAGMA {pragma} with {value:?}"));
    match pragma {
        "table_list" => return None,
        "table_info" | "table_xinfo" => {
            return match value {
                Some(name) if allowed_name(name) => None,
                _ => refused(),
            }
        }
        _ => {}
    }
    let Some((_, argument)) = ALLOWED_PRAGMAS.iter().find(|(name, _)| *name == pragma) else {
        return Some(format!("PRAGMA {pragma} is not on workerd's allowlist"));
    };
    let allowed = match (argument, value) {
        (PragmaArgument::Nothing, value) => value.is_none(),
        (PragmaArgument::Boolean, None) => true,
        (PragmaArgument::Boolean, Some(value)) => {
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value)
                .to_ascii_lowercase();
            // workerd compares prefixes (strncasecmp), so "offset" passes as "off"; so here.
            ["true", "false", "yes", "no", "on", "off", "1", "0"]
                .iter()
                .any(|word| unquoted.starts_with(word))
        }
        (PragmaArgument::Name, value) => value.is_some_and(allowed_name),
        (PragmaArgument::OptionalName, value) => value.is_none_or(allowed_name),
        (PragmaArgument::NothingOrNumber, value) => {
            value.is_none_or(|value| value.parse::<i32>().is_ok())
        }
        (PragmaArgument::NothingNumberOrName, value) => {
            value.is_none_or(|value| value.parse::<u32>().is_ok() || allowed_name(value))
        }
    };
    if allowed {
        None
    } else {
        refused()
    }
}

/// `SqlStorage::isAllowedName`: names starting with `_cf_` belong to the platform (compared
/// without case, as workerd does when `SQL_RESTRICT_RESERVED_NAMES` is on: the stricter one).
fn allowed_name(name: &str) -> bool {
    !name
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("_cf_"))
}

/// A parameter as the object binds it: through a JavaScript value (`SqlDb`'s `to_js`), then
/// workerd's `BindingValue`, where every number is a `double`.
fn to_binding(value: &SqlValue) -> Result<Value, DbError> {
    Ok(match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Real(integer_as_js_number(*i)?),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    })
}

/// A column value as it reaches the Worker: workerd hands every number to JavaScript as a
/// double, and `SqlDb`'s `from_js` makes whole ones in the safe range integers again.
fn from_sqlite(value: ValueRef<'_>) -> Result<SqlValue, DbError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 => {
            return Err(DbError::failed(format!(
                "Value outside JavaScript safe integer range: the integer {i} would reach the \
                 Worker rounded to {}",
                i as f64
            )))
        }
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(number) => from_js_number(number),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use user_data_core::db::apply_migrations;

    fn db() -> ObjectDb {
        let db = ObjectDb::empty().unwrap();
        db.execute_script("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
            .unwrap();
        db
    }

    fn fails(result: Result<impl std::fmt::Debug, DbError>, message: &str) {
        match result {
            Err(err) => {
                let err = err.to_string();
                assert!(err.contains(message), "{err:?} lacks {message:?}")
            }
            Ok(value) => panic!("succeeded with {value:?}; expected {message:?}"),
        }
    }

    fn numbered(n: usize) -> Vec<SqlValue> {
        (0..n as i64).map(SqlValue::from).collect()
    }

    #[test]
    fn at_most_100_bound_parameters() {
        let db = db();
        let placeholders = |n: usize| vec!["?"; n].join(", ");
        let sql = |n| format!("SELECT v FROM t WHERE id IN ({})", placeholders(n));
        db.query(&sql(100), &numbered(100)).unwrap();
        fails(
            db.query(&sql(101), &numbered(101)),
            "too many SQL variables",
        );
        fails(
            db.query("SELECT ?101", &numbered(101)),
            "between ?1 and ?100",
        );
    }

    #[test]
    fn at_most_5_terms_in_a_compound_select() {
        let db = db();
        let sql = |n: usize| vec!["SELECT 1"; n].join(" UNION ALL ");
        assert_eq!(db.query(&sql(5), &[]).unwrap().len(), 5);
        fails(db.query(&sql(6), &[]), "too many terms in compound SELECT");
    }

    #[test]
    fn values_and_rows_over_2_000_000_bytes_fail() {
        let db = db();
        let insert = "INSERT INTO t (v) VALUES (?)";
        let size = MAX_VALUE_BYTES as usize;
        db.execute(insert, &[vec![1u8; size - 16].into()]).unwrap();
        fails(db.execute(insert, &[vec![1u8; size + 1].into()]), "too big");
        fails(
            db.execute(insert, &["x".repeat(size + 1).into()]),
            "too big",
        );
        // Two values that fit make a row that does not.
        db.execute_script("CREATE TABLE two (a, b)").unwrap();
        let half = vec![1u8; size / 2 + 1];
        fails(
            db.execute(
                "INSERT INTO two (a, b) VALUES (?, ?)",
                &[half.clone().into(), half.into()],
            ),
            "too big",
        );
        fails(db.query("SELECT zeroblob(2000001)", &[]), "too big");
    }

    #[test]
    fn statements_over_100_000_bytes_fail() {
        let db = db();
        let sql = |n: usize| format!("SELECT '{}'", "a".repeat(n - "SELECT ''".len()));
        db.query(&sql(100_000), &[]).unwrap();
        fails(db.query(&sql(100_001), &[]), "too long");
    }

    #[test]
    fn like_patterns_over_50_bytes_fail() {
        let db = db();
        let like = |pattern: String| db.query("SELECT 'x' LIKE ?", &[pattern.into()]);
        like("a".repeat(50)).unwrap();
        fails(like("a".repeat(51)), "LIKE or GLOB pattern too complex");
    }

    #[test]
    fn integers_travel_as_javascript_numbers() {
        let db = db();
        // Bound: a REAL, which an untyped column or an expression keeps as one.
        let bound = db.query("SELECT typeof(?), ? || ''", &[5.into(), 5.into()]);
        assert_eq!(bound.unwrap(), vec![Row(vec!["real".into(), "5.0".into()])]);
        // Beyond ±(2^53 − 1): refused before it binds, and an error when read back.
        db.query("SELECT ?", &[MAX_SAFE_INTEGER.into()]).unwrap();
        fails(
            db.query("SELECT ?", &[(MAX_SAFE_INTEGER + 1).into()]),
            "outside ±(2^53 - 1)",
        );
        fails(
            db.query("SELECT ?", &[i64::MIN.into()]),
            "outside ±(2^53 - 1)",
        );
        let big = db.query("SELECT 9007199254740992", &[]);
        fails(big, "Value outside JavaScript safe integer range");
        let small = db.query("SELECT -9007199254740991", &[]).unwrap();
        assert_eq!(small, vec![Row(vec![(-MAX_SAFE_INTEGER).into()])]);
    }

    #[test]
    fn whole_reals_come_back_as_integers_and_minus_zero_as_a_real() {
        let db = db();
        let rows = db
            .query("SELECT 10.0, 2.5, -0.0, 9007199254740992.0, 1e300", &[])
            .unwrap();
        assert_eq!(
            rows,
            vec![Row(vec![
                SqlValue::Integer(10),
                SqlValue::Real(2.5),
                SqlValue::Real(-0.0),
                SqlValue::Real(9007199254740992.0),
                SqlValue::Real(1e300),
            ])]
        );
        assert!(matches!(rows[0].0[2], SqlValue::Real(z) if z.is_sign_negative()));
    }

    #[test]
    fn sql_transactions_are_refused_and_transaction_sync_is_not() {
        let db = db();
        fails(db.execute_script("BEGIN"), "transactionSync");
        fails(db.execute_script("SAVEPOINT s"), "transactionSync");
        let failed: Result<(), DbError> = db.transaction(|| {
            db.execute("INSERT INTO t (v) VALUES ('gone')", &[])?;
            Err(DbError::failed("the request failed"))
        });
        assert!(failed.is_err());
        db.transaction(|| db.execute("INSERT INTO t (v) VALUES ('kept')", &[]))
            .unwrap();
        let kept = db.query("SELECT v FROM t", &[]).unwrap();
        assert_eq!(kept, vec![Row(vec!["kept".into()])]);
    }

    #[test]
    fn only_allowlisted_pragmas_and_functions() {
        let db = db();
        for allowed in [
            "PRAGMA foreign_keys = OFF",
            "PRAGMA foreign_keys",
            "PRAGMA quick_check",
            "PRAGMA table_info(t)",
            "PRAGMA index_list(t)",
            "PRAGMA optimize",
            "SELECT json_extract('{\"a\": 1}', '$.a'), strftime('%Y', 'now'), typeof(1)",
            "SELECT name FROM sqlite_master",
        ] {
            db.execute_script(allowed)
                .unwrap_or_else(|err| panic!("{allowed}: {err}"));
        }
        for (refused, reason) in [
            ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
            ("PRAGMA page_count", "PRAGMA page_count"),
            ("PRAGMA foreign_keys = maybe", "PRAGMA foreign_keys"),
            ("PRAGMA data_version = 1", "PRAGMA data_version"),
            ("SELECT sqlite_version()", "sqlite_version"),
            ("ATTACH ':memory:' AS other", "Attach"),
            ("CREATE TEMP TABLE scratch (x)", "temp"),
            ("CREATE TABLE _cf_mine (x)", "_cf_"),
            ("CREATE TABLE _CF_mine (x)", "_CF_"),
        ] {
            fails(db.execute_script(refused), reason);
        }
    }

    #[test]
    fn foreign_keys_are_enforced_until_the_worker_turns_them_off() {
        let db = ObjectDb::empty().unwrap();
        apply_migrations(&db).unwrap();
        let orphan = "INSERT INTO working_clips (project_id) VALUES (99)";
        fails(db.execute(orphan, &[]), "FOREIGN KEY constraint failed");
        db.execute_script("PRAGMA foreign_keys = OFF").unwrap();
        assert_eq!(db.execute(orphan, &[]).unwrap(), 1);
    }

    #[test]
    fn execute_counts_changed_rows_as_sql_db_does() {
        let db = db();
        assert_eq!(
            db.execute("INSERT INTO t (v) VALUES (1), (2)", &[])
                .unwrap(),
            2
        );
        assert_eq!(
            db.execute("UPDATE t SET v = 3 WHERE id = 99", &[]).unwrap(),
            0
        );
        assert_eq!(db.execute("SELECT * FROM t", &[]).unwrap(), 0);
    }
}
