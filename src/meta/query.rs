//! The query helper every table module uses: statements run against the connection or a
//! write transaction, rows mapped into values, errors naming the database.

use std::path::Path;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, Params, Row};

use super::MetaError;

/// Statements on one connection, or on one write transaction (see [`super::Db::write`]).
#[derive(Clone, Copy)]
pub struct Sql<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl<'a> Sql<'a> {
    pub(super) fn new(conn: &'a Connection, path: &'a Path) -> Self {
        Sql { conn, path }
    }

    /// The database file, for errors.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// Every row of a query, each mapped by `map`.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, MetaError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, map).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The first row of a query, if any.
    pub fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, MetaError> {
        self.conn
            .query_row(sql, params, map)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The first column of a query that always answers one row (`SELECT EXISTS(...)`).
    pub fn value<T: FromSql>(&self, sql: &str, params: impl Params) -> Result<T, MetaError> {
        self.conn
            .query_row(sql, params, |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs one statement; the number of rows it changed.
    pub fn exec(&self, sql: &str, params: impl Params) -> Result<usize, MetaError> {
        self.conn.execute(sql, params).map_err(|e| self.err(e))
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), MetaError> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> MetaError {
        MetaError::at(self.path, source)
    }
}
