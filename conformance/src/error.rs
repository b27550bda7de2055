//! Errors of the harness itself (not check failures, which are outcomes).

/// Why the harness could not run or report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached or the first handshake failed.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The target.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// A baseline or budget file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, with the line when known.
        reason: String,
    },
    /// The report could not be serialized.
    #[error("cannot write the report: {0}")]
    Report(String),
}
