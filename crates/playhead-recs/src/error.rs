//! The crate's one error type.
//!
//! Rule: every public fallible function returns [`RecsError`]. Bad input files name the file and
//! the 1-based line (the header is line 1) so an operator can fix the data; numerical failures
//! say what to change (usually λ). Nothing here is an HTTP status: the binary maps these.

use std::fmt;
use std::path::PathBuf;

/// One bad line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number (the CSV header is line 1).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Most bad lines kept in one error (the count is always exact).
pub const MAX_LINE_ERRORS: usize = 20;

/// Why a recommendation operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Some lines of an input file are invalid; the first [`MAX_LINE_ERRORS`] are listed.
    #[error("{path}: {count} bad line(s): {}", display_lines(.errors))]
    BadLines {
        /// The file (or `<input>` for a reader).
        path: String,
        /// How many lines were bad in total.
        count: usize,
        /// The first bad lines, in file order.
        errors: Vec<LineError>,
    },
    /// The file is unusable as a whole (missing header column, empty file).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The EASE system could not be solved (λ too small for the data).
    #[error("EASE solve failed: {0}; raise lambda")]
    Solve(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A model or state file is not valid JSON of the expected shape.
    #[error("{what}: {source}")]
    Json {
        /// What was being read or written.
        what: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
}

fn display_lines(errors: &[LineError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl RecsError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
