//! Mapping of SQLite failures onto [`StoreError`].

use rusqlite::ErrorCode;

use crate::db::Fail;
use crate::StoreError;

/// The general mapping: the database being unreachable or locked beyond the busy
/// timeout is `Unavailable` (worth retrying, or an operator problem); anything else is
/// `Internal`. Constraint violations land in `Internal` here because only specific
/// inserts know that a conflict means `AlreadyExists`; those use [`insert_err`].
pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

/// A body's failure on SQLite.
pub(super) fn fail_err(e: Fail) -> StoreError {
    match e {
        Fail::Lite(e) => sql_err(e),
        Fail::Store(e) => e,
        Fail::Pg(e) => StoreError::Internal(e.to_string()),
    }
}

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(extended_code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended_code), None)
    }

    #[test]
    fn busy_and_io_are_unavailable() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_IOERR_FSYNC,
        ] {
            assert!(
                matches!(sql_err(failure(code)), StoreError::Unavailable(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn other_errors_are_internal_with_text() {
        let e = sql_err(rusqlite::Error::QueryReturnedNoRows);
        assert!(matches!(e, StoreError::Internal(ref m) if !m.is_empty()));
    }
}
