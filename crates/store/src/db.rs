//! The seam every store method is written over, once for both engines.
//!
//! - [`Db`] is a connection or transaction of either engine. Its methods are `async`;
//!   on SQLite they never wait (the engine polls them once, see `sqlite.rs`), so one
//!   body serves a blocking SQLite transaction and a PostgreSQL round trip alike.
//! - Statements are written once, in PostgreSQL's style (`$1` placeholders, `::type`
//!   casts, row-lock clauses), and [`sql!`] translates them for SQLite at compile time:
//!   `$n` becomes `?n`, casts and row-lock clauses go (SQLite's single writer already
//!   excludes every other writer for the whole transaction).
//! - Parameters are anything both drivers can bind ([`Param`]); row values anything both
//!   can read ([`Value`]); [`Fail`] carries either driver's error until the engine that
//!   ran the statement classifies it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::{pin_mut, TryStreamExt};

use crate::StoreError;

/// A connection, or a transaction, of either engine.
pub(crate) enum Db<'a> {
    /// A SQLite connection, a reader or the writer (inside its `BEGIN IMMEDIATE`
    /// transaction), whose turn the caller holds for the whole body: the body has the
    /// connection to itself. The inner mutex, taken per statement and never contended,
    /// is what makes `Db` shareable across an `.await` (a `rusqlite::Connection` is not
    /// `Sync`).
    Lite(&'a Mutex<rusqlite::Connection>),
    /// A pooled PostgreSQL connection outside a transaction.
    Pg(&'a deadpool_postgres::ClientWrapper),
    /// A PostgreSQL transaction.
    PgTx(&'a deadpool_postgres::Transaction<'a>),
}

/// Which engine a [`Db`] belongs to, for the few statements written per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement in both dialects; made by [`sql!`] (static) or [`Sql::per_dialect`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql<'s> {
    pub(crate) pg: &'s str,
    pub(crate) lite: &'s str,
}

impl<'s> Sql<'s> {
    /// A statement whose text differs between the engines beyond what [`sql!`]
    /// translates (an `= ANY($n)` list, a function one engine lacks).
    pub(crate) const fn per_dialect(pg: &'s str, lite: &'s str) -> Sql<'s> {
        Sql { pg, lite }
    }

    /// Used by [`sql!`]: `lite` is the compile-time translation of `pg`.
    pub(crate) const fn translated(pg: &'s str, lite: &'s [u8]) -> Sql<'s> {
        match std::str::from_utf8(lite) {
            Ok(lite) => Sql { pg, lite },
            Err(_) => panic!("translated SQL is not UTF-8"),
        }
    }
}

/// A statement written once in PostgreSQL's style, with SQLite's text made at compile
/// time. Takes string literals and column-list macros, as `concat!` does.
macro_rules! sql {
    ($($part:tt)+) => {{
        const PG: &str = concat!($($part)+);
        const LITE: ([u8; PG.len()], usize) = $crate::db::lite_bytes(PG);
        const SQL: $crate::db::Sql<'static> =
            $crate::db::Sql::translated(PG, LITE.0.split_at(LITE.1).0);
        &SQL
    }};
}

/// PostgreSQL-only clauses that SQLite neither has nor needs (its writer holds the
/// whole database for the transaction).
const DROPPED: [&[u8]; 5] = [
    b" FOR NO KEY UPDATE",
    b" FOR KEY SHARE",
    b" FOR UPDATE",
    b" FOR SHARE",
    b" SKIP LOCKED",
];

/// How many bytes of `s` at `i` SQLite's text leaves out: a `::type` or `::type[]`
/// cast, one of [`DROPPED`], or the `ANY` of `= ANY($n)` (a list, which SQLite's
/// [`Db::query_any`] binds one item at a time: `= ($n)`); 0 for a byte that is kept.
const fn dropped_at(s: &[u8], i: usize) -> usize {
    if s[i] == b'A' && i + 4 < s.len() {
        let next = [s[i + 1], s[i + 2], s[i + 3], s[i + 4]];
        if matches!(next, [b'N', b'Y', b'(', b'$']) {
            return 3;
        }
    }
    if s[i] == b':' && i + 1 < s.len() && s[i + 1] == b':' {
        let mut j = i + 2;
        while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
            j += 1;
        }
        if j + 1 < s.len() && s[j] == b'[' && s[j + 1] == b']' {
            j += 2;
        }
        return j - i;
    }
    let mut k = 0;
    while k < DROPPED.len() {
        let word = DROPPED[k];
        if i + word.len() <= s.len() {
            let mut m = 0;
            while m < word.len() && s[i + m] == word[m] {
                m += 1;
            }
            if m == word.len() {
                return word.len();
            }
        }
        k += 1;
    }
    0
}

/// The byte SQLite's text has for the kept byte at `i`: `$n` becomes `?n`.
const fn kept_byte(s: &[u8], i: usize) -> u8 {
    if s[i] == b'$' && i + 1 < s.len() && s[i + 1].is_ascii_digit() {
        b'?'
    } else {
        s[i]
    }
}

/// SQLite's text for `pg` in the first bytes of an array as long as `pg` (the text
/// only ever shrinks), and how many bytes it takes.
pub(crate) const fn lite_bytes<const N: usize>(pg: &str) -> ([u8; N], usize) {
    let s = pg.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut n) = (0, 0);
    while i < s.len() {
        let skip = dropped_at(s, i);
        if skip > 0 {
            i += skip;
        } else {
            out[n] = kept_byte(s, i);
            n += 1;
            i += 1;
        }
    }
    (out, n)
}

/// SQLite's text for a statement built at run time.
pub(crate) fn lite_text(pg: &str) -> String {
    let s = pg.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match dropped_at(s, i) {
            0 => {
                out.push(kept_byte(s, i));
                i += 1;
            }
            skip => i += skip,
        }
    }
    // Only whole ASCII runs are dropped or rewritten, so the rest is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// A value both drivers can bind.
pub(crate) trait Param: Sync {
    fn lite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T> Param for T
where
    T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync,
{
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// The parameters `a` then `b`, for a list built from parts.
pub(crate) fn joined<'a, const A: usize, const B: usize, const N: usize>(
    a: [&'a dyn Param; A],
    b: [&'a dyn Param; B],
) -> [&'a dyn Param; N] {
    const { assert!(A + B == N, "the parts do not fill the list") };
    std::array::from_fn(|i| if i < A { a[i] } else { b[i - A] })
}

/// A value both drivers can read from a row.
pub(crate) trait Value:
    rusqlite::types::FromSql + for<'r> tokio_postgres::types::FromSql<'r>
{
}

impl<T> Value for T where T: rusqlite::types::FromSql + for<'r> tokio_postgres::types::FromSql<'r> {}

/// A result row of either engine.
pub(crate) enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// The value of column `i` (from 0).
    pub(crate) fn get<T: Value>(&self, i: usize) -> Result<T, Fail> {
        match self {
            Row::Lite(row) => Ok(row.get(i)?),
            Row::Pg(row) => Ok(row.try_get(i)?),
        }
    }
}

/// A record from a row, one column per field in the order written, from column `at` (0
/// when left out): `from_row!(row => Tag { key, value })`. Fields after a `;` take the
/// value given instead of a column.
macro_rules! from_row {
    ($row:expr => $record:ident { $($field:ident),* $(; $($name:ident: $value:expr),*)? }) => {
        from_row!($row, 0 => $record { $($field),* $(; $($name: $value),*)? })
    };
    ($row:expr, $at:expr => $record:ident { $($field:ident),* $(; $($name:ident: $value:expr),*)? }) => {{
        let row = $row;
        let mut at: usize = $at;
        #[allow(unused_assignments)]
        let record = $record {
            $($field: {
                let value = row.get(at)?;
                at += 1;
                value
            },)*
            $($($name: $value,)*)?
        };
        record
    }};
}

/// Why a statement or an operation's body stopped: a driver error still to be
/// classified by its engine, or an outcome already decided.
#[derive(Debug)]
pub(crate) enum Fail {
    Lite(rusqlite::Error),
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Lite(e)
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// The result of a store method's body.
pub(crate) type DbResult<T> = Result<T, Fail>;

/// An internal failure with a message: for data the store itself wrote that cannot be
/// read back.
pub(crate) fn corrupt(message: impl Into<String>) -> Fail {
    Fail::Store(StoreError::Internal(message.into()))
}

fn lock(conn: &Mutex<rusqlite::Connection>) -> MutexGuard<'_, rusqlite::Connection> {
    // Statements reset when dropped, so a connection whose user panicked is usable.
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lite_params<'p>(
    params: &'p [&'p dyn Param],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = &'p dyn rusqlite::ToSql>> {
    rusqlite::params_from_iter(params.iter().map(|p| p.lite()))
}

/// Runs `$body` with `$c` bound to whichever PostgreSQL handle `$db` holds (both have
/// `prepare_cached`, `query_raw` and `execute_raw`). Only for the PostgreSQL arms.
macro_rules! with_pg {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            Db::Pg($c) => $body,
            Db::PgTx($c) => $body,
            Db::Lite(_) => unreachable!("a SQLite handle in a PostgreSQL arm"),
        }
    };
}

impl Db<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Lite(_) => Dialect::Sqlite,
            Db::Pg(_) | Db::PgTx(_) => Dialect::Postgres,
        }
    }

    /// Every row, mapped.
    pub(crate) async fn query<T>(
        &self,
        sql: &Sql<'_>,
        params: &[&dyn Param],
        mut map: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut out = Vec::new();
        if let Db::Lite(conn) = self {
            let conn = lock(conn);
            let mut stmt = conn.prepare_cached(sql.lite)?;
            let mut rows = stmt.query(lite_params(params))?;
            while let Some(row) = rows.next()? {
                out.push(map(&Row::Lite(row))?);
            }
            return Ok(out);
        }
        with_pg!(self, c => {
            let stmt = c.prepare_cached(sql.pg).await?;
            let rows = c.query_raw(&stmt, params.iter().map(|p| p.pg())).await?;
            pin_mut!(rows);
            while let Some(row) = rows.try_next().await? {
                out.push(map(&Row::Pg(&row))?);
            }
        });
        Ok(out)
    }

    /// The first row, mapped, if there is one.
    pub(crate) async fn query_opt<T>(
        &self,
        sql: &Sql<'_>,
        params: &[&dyn Param],
        map: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        if let Db::Lite(conn) = self {
            let conn = lock(conn);
            let mut stmt = conn.prepare_cached(sql.lite)?;
            let mut rows = stmt.query(lite_params(params))?;
            return match rows.next()? {
                Some(row) => map(&Row::Lite(row)).map(Some),
                None => Ok(None),
            };
        }
        with_pg!(self, c => {
            let stmt = c.prepare_cached(sql.pg).await?;
            let rows = c.query_raw(&stmt, params.iter().map(|p| p.pg())).await?;
            pin_mut!(rows);
            let Some(row) = rows.try_next().await? else {
                return Ok(None);
            };
            let first = map(&Row::Pg(&row))?;
            // Drain the rest so the connection is ready for the next statement (a
            // finished stream must not be polled again).
            while rows.try_next().await?.is_some() {}
            Ok(Some(first))
        })
    }

    /// The first row, mapped; a statement that returns none is a failure (use it for
    /// aggregates and for rows the transaction has just checked exist).
    pub(crate) async fn query_one<T>(
        &self,
        sql: &Sql<'_>,
        params: &[&dyn Param],
        map: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        self.query_opt(sql, params, map)
            .await?
            .ok_or_else(|| corrupt("a statement expected to return a row returned none"))
    }

    /// The first column of the first row (a `COUNT(*)`, an `EXISTS`, one value).
    pub(crate) async fn value<T: Value>(
        &self,
        sql: &Sql<'_>,
        params: &[&dyn Param],
    ) -> DbResult<Option<T>> {
        self.query_opt(sql, params, |row| row.get(0)).await
    }

    /// A `COUNT(*)` as a `usize`.
    pub(crate) async fn count(&self, sql: &Sql<'_>, params: &[&dyn Param]) -> DbResult<usize> {
        let n: i64 = self.value(sql, params).await?.unwrap_or(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) async fn execute(&self, sql: &Sql<'_>, params: &[&dyn Param]) -> DbResult<u64> {
        if let Db::Lite(conn) = self {
            let conn = lock(conn);
            let mut stmt = conn.prepare_cached(sql.lite)?;
            let n = stmt.execute(lite_params(params))?;
            return Ok(u64::try_from(n).unwrap_or(u64::MAX));
        }
        with_pg!(self, c => {
            let stmt = c.prepare_cached(sql.pg).await?;
            Ok(c.execute_raw(&stmt, params.iter().map(|p| p.pg())).await?)
        })
    }

    /// Runs an insert whose key collision means the record already exists
    /// (`StoreError::AlreadyExists`).
    pub(crate) async fn insert(&self, sql: &Sql<'_>, params: &[&dyn Param]) -> DbResult<u64> {
        match self.execute(sql, params).await {
            Err(e) if is_key_conflict(&e) => Err(Fail::Store(StoreError::AlreadyExists)),
            other => other,
        }
    }

    /// Runs statements without parameters (savepoints).
    pub(crate) async fn batch(&self, sql: &str) -> DbResult<()> {
        if let Db::Lite(conn) = self {
            return Ok(lock(conn).execute_batch(sql)?);
        }
        with_pg!(self, c => Ok(c.batch_execute(sql).await?))
    }

    /// Runs a PostgreSQL-only statement (arrays, `unnest`) with native parameters.
    pub(crate) async fn execute_pg(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> DbResult<u64> {
        with_pg!(self, c => {
            let stmt = c.prepare_cached(sql).await?;
            Ok(c.execute(&stmt, params).await?)
        })
    }

    /// Every row of a PostgreSQL-only query with native parameters, mapped.
    pub(crate) async fn query_pg<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        mut map: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        with_pg!(self, c => {
            let stmt = c.prepare_cached(sql).await?;
            let rows = c.query(&stmt, params).await?;
            rows.iter().map(|row| map(&Row::Pg(row))).collect()
        })
    }

    /// The SQLite connection, for statements written for SQLite alone (a loop of
    /// single-row inserts where PostgreSQL takes arrays). Hold it for one statement
    /// or loop, never across an `.await`.
    pub(crate) fn lite(&self) -> Option<MutexGuard<'_, rusqlite::Connection>> {
        match self {
            Db::Lite(conn) => Some(lock(conn)),
            _ => None,
        }
    }

    /// Every row of `sql` for each item of `list`, which is bound after `params` as
    /// `= ANY($n::text[])`: PostgreSQL runs the statement once with the list as an
    /// array; SQLite once per item (a point lookup through the one prepared statement,
    /// in process), so rows come grouped by item there.
    pub(crate) async fn query_any<T>(
        &self,
        sql: &Sql<'_>,
        params: &[&dyn Param],
        list: &[&str],
        mut map: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        if list.is_empty() {
            return Ok(Vec::new());
        }
        if self.dialect() == Dialect::Postgres {
            let list: &(dyn tokio_postgres::types::ToSql + Sync) = &list;
            let all: Vec<_> = params.iter().map(|p| p.pg()).chain([list]).collect();
            return with_pg!(self, c => {
                let stmt = c.prepare_cached(sql.pg).await?;
                let rows = c.query_raw(&stmt, all).await?;
                pin_mut!(rows);
                let mut out = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    out.push(map(&Row::Pg(&row))?);
                }
                Ok(out)
            });
        }
        let mut out = Vec::new();
        let mut all: Vec<&dyn Param> = params.to_vec();
        for item in list {
            all.push(item);
            out.extend(self.query(sql, &all, &mut map).await?);
            all.pop();
        }
        Ok(out)
    }

    /// Inserts a row per item of `rows` into `into` (`"table (account_id, region,
    /// ...)"`), with the scope's two keys and then the parameters `params` gives for the
    /// item. SQLite runs a single-row statement per item, in process; PostgreSQL sends
    /// statements of many rows each, their sizes powers of two so that a connection
    /// prepares a handful of texts per table whatever the batch sizes.
    pub(crate) async fn insert_rows<T, const N: usize>(
        &self,
        into: &str,
        scope: &crate::Scope,
        rows: &[T],
        params: impl Fn(&T) -> [&dyn Param; N],
    ) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let keys: [&dyn Param; 2] = [&scope.account_id, &scope.region];
        if let Db::Lite(conn) = self {
            let conn = lock(conn);
            let mut stmt = conn.prepare_cached(&values_text(into, N, 1, '?'))?;
            for row in rows {
                let row = params(row);
                let all = keys.iter().chain(&row).map(|p| p.lite());
                stmt.execute(rusqlite::params_from_iter(all))?;
            }
            return Ok(());
        }
        // PostgreSQL takes at most 65,535 parameters in a statement.
        let most = (u16::MAX as usize / N).min(1024);
        let most = 1usize << most.ilog2();
        let mut rest = rows;
        while !rest.is_empty() {
            let n = if rest.len() >= most {
                most
            } else {
                1 << rest.len().ilog2()
            };
            let (chunk, after) = rest.split_at(n);
            let chunk: Vec<[&dyn Param; N]> = chunk.iter().map(&params).collect();
            let all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = keys
                .iter()
                .chain(chunk.iter().flatten())
                .map(|p| p.pg())
                .collect();
            let text = values_text(into, N, n, '$');
            with_pg!(self, c => {
                let stmt = c.prepare_cached(&text).await?;
                c.execute(&stmt, &all).await?;
            });
            rest = after;
        }
        Ok(())
    }

    /// Takes [`Db::lock`]'s locks on every `(space, key)` of `locks`, in the order given
    /// (sort it, so two transactions never wait on each other in a cycle), in one round
    /// trip; whether it took any (never on SQLite).
    pub(crate) async fn lock_all(&self, locks: &[(i32, String)]) -> DbResult<bool> {
        if self.dialect() == Dialect::Sqlite || locks.is_empty() {
            return Ok(false);
        }
        let spaces: Vec<i32> = locks.iter().map(|(s, _)| *s).collect();
        let keys: Vec<&str> = locks.iter().map(|(_, k)| k.as_str()).collect();
        self.execute_pg(
            "SELECT pg_advisory_xact_lock(l.space, hashtext(l.key))
             FROM unnest($1::int4[], $2::text[]) WITH ORDINALITY AS l(space, key, n)
             ORDER BY l.n",
            &[&spaces, &keys],
        )
        .await?;
        Ok(true)
    }

    /// Serialises this transaction with every other one that takes the same lock,
    /// until it ends: PostgreSQL's transaction-scoped advisory lock on (`space`, `key`).
    /// Nothing on SQLite, where the writer already has the database to itself.
    pub(crate) async fn lock(&self, space: i32, key: &str) -> DbResult<()> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(());
        }
        self.execute(
            &Sql::per_dialect("SELECT pg_advisory_xact_lock($1, hashtext($2))", ""),
            &[&space, &key],
        )
        .await
        .map(drop)
    }
}

/// `INSERT INTO {into} VALUES` with `rows` rows of the scope's two keys (`$1`, `$2`,
/// shared) and `width` parameters more each, numbered with `mark`.
fn values_text(into: &str, width: usize, rows: usize, mark: char) -> String {
    use std::fmt::Write;
    let mut text = format!("INSERT INTO {into} VALUES ");
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        let _ = write!(text, "{mark}1, {mark}2");
        for column in 0..width {
            let _ = write!(text, ", {mark}{}", 3 + row * width + column);
        }
        text.push(')');
    }
    text
}

/// A statement assembled at run time from optional conditions, in PostgreSQL's style,
/// with its parameters numbered in the order they are bound.
#[derive(Default)]
pub(crate) struct Query {
    sql: String,
    params: Vec<Box<dyn Param + Send>>,
}

impl Query {
    pub(crate) fn new(sql: &str) -> Query {
        Query {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }

    /// Binds `value` and returns its placeholder (`$n`).
    pub(crate) fn bind(&mut self, value: impl Param + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Query {
        self.sql.push_str(sql);
        self
    }

    /// Every row, mapped.
    pub(crate) async fn query<T>(
        &self,
        db: &Db<'_>,
        map: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let params: Vec<&dyn Param> = self.params.iter().map(|p| &**p as &dyn Param).collect();
        let lite = match db.dialect() {
            Dialect::Sqlite => lite_text(&self.sql),
            Dialect::Postgres => String::new(),
        };
        db.query(&Sql::per_dialect(&self.sql, &lite), &params, map)
            .await
    }
}

/// Whether a failure is a primary-key or unique-constraint violation.
pub(crate) fn is_key_conflict(e: &Fail) -> bool {
    match e {
        Fail::Lite(rusqlite::Error::SqliteFailure(err, _)) => matches!(
            err.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        ),
        Fail::Pg(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        _ => false,
    }
}

/// A caller's `usize` bound as a SQL `LIMIT` value.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_conflicts_are_already_exists() {
        let failure = |code| {
            Fail::Lite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(is_key_conflict(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )));
        assert!(is_key_conflict(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )));
        // A NOT NULL violation is a bug, not a duplicate.
        assert!(!is_key_conflict(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL
        )));
    }

    #[test]
    fn translates_placeholders_casts_and_locks() {
        let sql = sql!(
            "SELECT a FROM t WHERE x = $1 AND ($2::text IS NULL OR y = $2)",
            " AND z = ANY($10::text[]) FOR UPDATE"
        );
        assert_eq!(
            sql.lite,
            "SELECT a FROM t WHERE x = ?1 AND (?2 IS NULL OR y = ?2) AND z = (?10)"
        );
        assert_eq!(
            lite_text("SELECT 1 FROM t WHERE a = $3 FOR NO KEY UPDATE SKIP LOCKED"),
            "SELECT 1 FROM t WHERE a = ?3"
        );
        // A `$` not followed by a digit, a single colon and other ANYs are kept.
        assert_eq!(lite_text("SELECT '$x', ':a'"), "SELECT '$x', ':a'");
        assert_eq!(lite_text("a = ANY(ARRAY[1])"), "a = ANY(ARRAY[1])");
    }

    #[test]
    fn multi_row_inserts_share_the_scope_keys() {
        assert_eq!(
            values_text("t (account_id, region, a, b)", 2, 2, '$'),
            "INSERT INTO t (account_id, region, a, b) VALUES ($1, $2, $3, $4), ($1, $2, $5, $6)"
        );
    }
}
