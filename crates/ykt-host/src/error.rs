//! The host's error type: a refusal with a return code of the spec, or a failure.

use ykt_proto::ReturnCode;

/// Everything a host operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The request is refused with a return code of section 6.1; nothing was written.
    #[error("refused: {0}")]
    Refused(ReturnCode),
    /// A client's bad request (bad value, unknown entity, a limit exceeded); nothing was
    /// written. The admin API answers 400.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A broken invariant: a bug of ours, never the client's fault (a transfer booked twice,
    /// a row checked as another). The job is rolled back, the error logged, and the terminal
    /// told to retry (code 1, never a final code); the admin API answers 500.
    #[error("broken invariant: {0}")]
    Invariant(String),
    /// The operator may not do this, whatever their roles (approving their own request);
    /// nothing was written. The admin API answers 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The database failed. `retryable` marks deadlocks and serialisation failures.
    #[error("database error: {message}")]
    Db { message: String, retryable: bool },
    /// The database holds a value this version cannot read (e.g. an unknown status name).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The store's writer threads are gone (the store was shut down or a thread died).
    #[error("store closed")]
    Closed,
}

impl HostError {
    /// The return code a terminal gets for this error: the refusal's own code, or
    /// 3 数据库错误 for a database failure and 1 系统故障 for a broken invariant or a closed
    /// store (both handled as a timeout by the terminal, R-P5.3: it retries, R-B3).
    pub fn return_code(&self) -> ReturnCode {
        match self {
            HostError::Refused(code) => *code,
            HostError::Invalid(_) | HostError::Forbidden(_) => ReturnCode::OTHER_ERROR,
            HostError::Db { .. } | HostError::Corrupt(_) => ReturnCode::DATABASE_ERROR,
            HostError::Invariant(_) | HostError::Closed => ReturnCode::SYSTEM_FAILURE,
        }
    }

    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            HostError::Db {
                retryable: true,
                ..
            }
        )
    }
}

impl From<rusqlite::Error> for HostError {
    fn from(e: rusqlite::Error) -> Self {
        let retryable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        HostError::Db {
            message: e.to_string(),
            retryable,
        }
    }
}

impl From<postgres::Error> for HostError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let retryable = matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        );
        // The server's own message is far more useful than the crate's summary.
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        HostError::Db { message, retryable }
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;

/// Refuse with a return code.
pub(crate) fn refuse<T>(code: ReturnCode) -> Result<T> {
    Err(HostError::Refused(code))
}
