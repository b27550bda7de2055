//! The one error type of this crate.

/// What went wrong while measuring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A case could not be set up: its server, client or child process.
    #[error("{case}: setup failed: {reason}")]
    Setup {
        /// The case, e.g. `ws (cross-process)`.
        case: String,
        /// What failed.
        reason: String,
    },
    /// A round trip failed or returned something other than the expected response.
    #[error("round trip failed: {0}")]
    RoundTrip(String),
    /// The budgets file could not be read or is invalid.
    #[error("{path}: {reason}")]
    Budgets {
        /// The file.
        path: String,
        /// What is wrong, with the line when known.
        reason: String,
    },
    /// An output file (JSON, chart) could not be written.
    #[error("writing {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl BenchError {
    /// A round-trip error from anything printable.
    pub(crate) fn trip(e: impl std::fmt::Display) -> BenchError {
        BenchError::RoundTrip(e.to_string())
    }
}
