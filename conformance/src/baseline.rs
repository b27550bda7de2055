//! Expected failures, each with a reason.

use std::collections::HashMap;

use crate::check::{Outcome, Status};
use crate::error::Error;

/// A list of checks expected to fail against a given server, each with the reason.
///
/// ```toml
/// [[expected]]
/// id = "jsonrpc.parse-error"
/// reason = "the server closes the connection on malformed JSON (issue #123)"
/// ```
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    expected: HashMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    expected: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    reason: String,
}

impl Baseline {
    /// Parses a baseline file's text; `path` is used in errors.
    pub fn parse(path: &str, text: &str) -> Result<Baseline, Error> {
        let file: File = toml::from_str(text).map_err(|e| Error::File { path: path.into(), reason: e.to_string() })?;
        let mut expected = HashMap::new();
        for e in file.expected {
            if e.reason.trim().is_empty() {
                return Err(Error::File {
                    path: path.into(),
                    reason: format!("expected failure {:?} has no reason", e.id),
                });
            }
            if expected.insert(e.id.clone(), e.reason).is_some() {
                return Err(Error::File { path: path.into(), reason: format!("{:?} is listed twice", e.id) });
            }
        }
        Ok(Baseline { expected })
    }

    /// Turns a failure listed here into an expected failure, and flags listed checks that
    /// no longer fail.
    pub fn apply(&self, id: &str, outcome: Outcome) -> Outcome {
        let Some(reason) = self.expected.get(id) else { return outcome };
        match outcome.status {
            Status::Fail | Status::Warn => {
                Outcome { status: Status::Expected, detail: format!("{} [expected: {reason}]", outcome.detail) }
            }
            Status::Pass => Outcome::warn(format!(
                "listed as an expected failure ({reason}) but passed: remove it from the baseline"
            )),
            Status::Skip | Status::Expected => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_applies() {
        let b = Baseline::parse("b.toml", "[[expected]]\nid = \"x\"\nreason = \"known bug\"\n").unwrap();
        assert_eq!(b.apply("x", Outcome::fail("bad")).status, Status::Expected);
        assert_eq!(b.apply("x", Outcome::pass()).status, Status::Warn);
        assert_eq!(b.apply("y", Outcome::fail("bad")).status, Status::Fail);
    }

    #[test]
    fn refuses_entries_without_reason_and_reports_the_line() {
        assert!(Baseline::parse("b.toml", "[[expected]]\nid = \"x\"\nreason = \" \"\n").is_err());
        let err = Baseline::parse("b.toml", "[[expected]]\nid = 3\n").unwrap_err().to_string();
        assert!(err.contains("b.toml") && err.contains("line 2"), "{err}");
    }
}
