//! The store's data access as one small interface, so that a rule of the
//! store (admission, its gates, the spend ledger) is written once, against
//! [`Db`], and runs on whichever database holds the state: the embedded
//! SQLite file ([`Sqlite`], here) or, for a fleet, PostgreSQL (`pg.rs`,
//! see `docs/fleet.md`). What differs between databases lives behind the trait:
//! how a statement is prepared and bound, how a row is read, what an error
//! means.
//!
//! The interface is async because PostgreSQL's driver is. The SQLite
//! implementation does its work synchronously inside each `async fn`, so
//! the writer thread, which has no runtime, runs a rule with [`at_once`]:
//! its future is ready on the first poll.
//!
//! Statements are `&'static str` in the dialect both databases accept,
//! placeholders written `?N`; parameters are [`Arg`]s, integers always as
//! 64-bit (`BIGINT` columns on PostgreSQL). PostgreSQL gives each
//! placeholder the type its context implies: a placeholder compared only
//! with a literal (`?3 = 0`, a 32-bit integer) or only tested for NULL
//! (`?1 IS NULL`) is written `CAST(?N AS BIGINT)` or `CAST(?N AS TEXT)`,
//! which SQLite reads the same.
//!
//! The rest of the common dialect: every integer a rule reads is a
//! `BIGINT` on PostgreSQL (`COUNT(*)` is; `SUM` of one is `numeric`, so
//! `CAST(SUM(x) AS BIGINT)`); a condition is counted with
//! `SUM(CASE WHEN .. THEN 1 ELSE 0 END)`, not by summing a boolean; no
//! `rowid`, no scalar `MAX(a, b)` (a `CASE`). An order is total (a tie
//! broken by a key, never left to the row's place on disk) and says where
//! NULLs go when a column can hold one: SQLite puts them first, PostgreSQL
//! last. Text sorts by the database's collation on PostgreSQL, byte order
//! (SQLite's) under the `C` collation.

use std::future::Future;

use futures_util::FutureExt as _;
use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{Connection, params_from_iter};

use super::{StoreError, sql_error};

/// A value bound to a statement's placeholder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Arg<'a> {
    /// A 64-bit integer, or NULL.
    Int(Option<i64>),
    /// A double, or NULL.
    Real(Option<f64>),
    /// Text, or NULL.
    Text(Option<&'a str>),
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(Some(v))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<u16> for Arg<'_> {
    fn from(v: u16) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}

impl From<Option<u16>> for Arg<'_> {
    fn from(v: Option<u16>) -> Self {
        Arg::Int(v.map(i64::from))
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}

impl From<bool> for Arg<'_> {
    /// Flags are stored as 0 and 1.
    fn from(v: bool) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}

impl From<Option<bool>> for Arg<'_> {
    fn from(v: Option<bool>) -> Self {
        Arg::Int(v.map(i64::from))
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}

/// `[Arg; N]` from values of the types [`Arg`] converts from.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::store::db::Arg::from($value)),*]
    };
}
pub(super) use args;

/// A row's value could not be read as the type asked for.
#[derive(Debug)]
pub(super) struct RowError(String);

impl RowError {
    /// The driver's complaint about a value.
    pub(super) fn new(why: String) -> Self {
        RowError(why)
    }

    /// What it means to the store: the database holds something steward
    /// did not write.
    pub(super) fn unreadable(&self, doing: &str) -> StoreError {
        StoreError::Corrupt(format!("{doing}: unexpected value: {}", self.0))
    }
}

/// One row of a result, its columns by position.
pub(super) trait Row {
    /// Column `i` as an integer, `None` for NULL.
    fn int(&self, i: usize) -> Result<Option<i64>, RowError>;
    /// Column `i` as text, `None` for NULL.
    fn text(&self, i: usize) -> Result<Option<String>, RowError>;
    /// Column `i` as a double, `None` for NULL.
    fn real(&self, i: usize) -> Result<Option<f64>, RowError>;

    /// Column `i`, text that is never NULL.
    fn text_not_null(&self, i: usize) -> Result<String, RowError> {
        self.text(i)?.ok_or_else(|| RowError(format!("column {i} is NULL")))
    }

    /// Column `i`, an integer that is never NULL.
    fn int_not_null(&self, i: usize) -> Result<i64, RowError> {
        self.int(i)?.ok_or_else(|| RowError(format!("column {i} is NULL")))
    }
}

/// Where the store's rules read and write (see the module docs). Every
/// method names what it is `doing`, for the error a failure becomes.
pub(super) trait Db {
    /// Whether a failed statement aborts the whole transaction (PostgreSQL)
    /// rather than only itself (SQLite): a rule that goes on after a failed
    /// statement puts a savepoint around it there.
    fn aborts_on_error(&self) -> bool;

    /// Runs `sql` with `args`; the rows it changed.
    fn execute(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, StoreError>>;

    /// The first row of `sql` with `args`, through `map`; `None` when there
    /// is none.
    fn first<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T, RowError>,
    ) -> impl Future<Output = Result<Option<T>, StoreError>>;

    /// Every row of `sql` with `args`, each through `map`.
    fn rows<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl FnMut(&dyn Row) -> Result<T, RowError>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>>;
}

/// Runs a rule on SQLite, whose data access never waits (see the module
/// docs). A rule that did not finish at once is reported, never dropped
/// half-way unseen.
pub(super) fn at_once<T>(rule: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    rule.now_or_never().unwrap_or_else(|| {
        Err(StoreError::Unavailable("a store operation on SQLite did not finish at once (a steward bug)".into()))
    })
}

/// The SQLite connection a rule runs on (inside the caller's transaction).
pub(super) struct Sqlite<'c>(pub &'c Connection);

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::Real(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
        }
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, RowError> {
        self.get(i).map_err(|e| RowError(e.to_string()))
    }

    fn text(&self, i: usize) -> Result<Option<String>, RowError> {
        self.get(i).map_err(|e| RowError(e.to_string()))
    }

    fn real(&self, i: usize) -> Result<Option<f64>, RowError> {
        self.get(i).map_err(|e| RowError(e.to_string()))
    }
}

impl Db for Sqlite<'_> {
    fn aborts_on_error(&self) -> bool {
        false
    }

    async fn execute(&self, doing: &str, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params_from_iter(args)))
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
            .map_err(|e| sql_error(doing, e))
    }

    async fn first<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T, RowError>,
    ) -> Result<Option<T>, StoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(|e| sql_error(doing, e))?;
        let mut rows = statement.query(params_from_iter(args)).map_err(|e| sql_error(doing, e))?;
        match rows.next().map_err(|e| sql_error(doing, e))? {
            Some(row) => map(row).map(Some).map_err(|e| e.unreadable(doing)),
            None => Ok(None),
        }
    }

    async fn rows<T>(
        &self,
        doing: &str,
        sql: &'static str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&dyn Row) -> Result<T, RowError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(|e| sql_error(doing, e))?;
        let mut rows = statement.query(params_from_iter(args)).map_err(|e| sql_error(doing, e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| sql_error(doing, e))? {
            out.push(map(row).map_err(|e| e.unreadable(doing))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_binds_every_arg_and_reads_rows_back() {
        let conn = Connection::open_in_memory().unwrap();
        let db = Sqlite(&conn);
        at_once(db.execute("creating", "CREATE TABLE t (i INTEGER, s TEXT)", &[])).unwrap();
        let none: Option<&str> = None;
        let changed = at_once(db.execute(
            "inserting",
            "INSERT INTO t (i, s) VALUES (?1, ?2), (?3, ?4)",
            &args![7_i64, "seven", Option::<i64>::None, none],
        ))
        .unwrap();
        assert_eq!(changed, 2);
        let row = at_once(db.first("reading", "SELECT i, s FROM t WHERE i = ?1", &args![7_i64], |r| {
            Ok((r.int_not_null(0)?, r.text(1)?))
        }))
        .unwrap();
        assert_eq!(row, Some((7, Some("seven".to_owned()))));
        let nulls =
            at_once(db.first("reading", "SELECT i, s FROM t WHERE i IS NULL", &[], |r| Ok((r.int(0)?, r.text(1)?))))
                .unwrap();
        assert_eq!(nulls, Some((None, None)));
        let missing = at_once(db.first("reading", "SELECT i FROM t WHERE i = 8", &[], |r| r.int(0))).unwrap();
        assert_eq!(missing, None);
        // A value of the wrong type is damage, named with what was being done.
        let err = at_once(db.first("reading a flag", "SELECT s FROM t WHERE i = 7", &[], |r| r.int(0))).unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.starts_with("reading a flag: unexpected value")), "{err}");
        let err = at_once(db.first("reading a count", "SELECT i FROM t WHERE i IS NULL", &[], |r| r.int_not_null(0)))
            .unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(_)), "{err}");
    }
}
