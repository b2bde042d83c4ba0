//! Mapping of PostgreSQL failures onto [`StoreError`].

use std::error::Error as _;

use crate::StoreError;

pub(super) use crate::db::Fail;

/// The general mapping: the database being unreachable, shutting down, out of
/// resources, or busy beyond a timeout (statement timeout, lock or deadlock) is
/// `Unavailable`, worth retrying or an operator problem; anything else is `Internal`
/// with the database's text. Constraint violations land in `Internal` here because
/// only specific inserts know that a conflict means `AlreadyExists` ([`insert_err`]).
pub(super) fn classify(e: &tokio_postgres::Error) -> StoreError {
    let text = describe(e);
    match e.code() {
        Some(code) if is_transient(code.code()) => StoreError::Unavailable(text),
        Some(_) => StoreError::Internal(text),
        None if connection_lost(e) => StoreError::Unavailable(text),
        None => StoreError::Internal(text),
    }
}

/// Whether the connection this error came from can no longer be trusted: closed, an
/// I/O failure, or a server that is going away. Such connections are dropped rather
/// than handed back to the pool.
pub(super) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    e.is_closed()
        || e.source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        // Not an I/O error but the same meaning; tokio-postgres exposes no kind.
        || matches!(
            e.to_string().as_str(),
            "timeout waiting for server" | "error connecting to server"
        )
}

/// SQLSTATEs that say "not now" rather than "never": connection exceptions (08),
/// serialization failures and deadlocks (40), insufficient resources such as too many
/// connections or a full disk (53), lock not available (55P03), statement timeout or
/// cancellation (57014), server shutdown or restart (57P), I/O errors (58), a read-only
/// server such as a standby (25006), and failed authentication or a missing database
/// (28, 3D000), which are operator problems like an unreadable SQLite file.
fn is_transient(code: &str) -> bool {
    ["08", "40", "53", "57P", "58", "28"]
        .iter()
        .any(|class| code.starts_with(class))
        || matches!(code, "55P03" | "57014" | "25006" | "3D000")
}

/// The error's full text: tokio-postgres' own `Display` leaves out both the server's
/// message and the underlying I/O error.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{db} (SQLSTATE {})", db.code().code());
    }
    match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for code in [
            "08006", "40001", "40P01", "53300", "55P03", "57014", "57P01", "58030", "25006",
            "28P01", "3D000",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "23502", "42P01", "42601", "22021", "XX000"] {
            assert!(!is_transient(code), "{code}");
        }
    }
}
