//! Checks as data.

use mcp_transport_core::transport::BoxFuture;

use crate::context::Context;

/// How much a failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A MUST of the specification: a failure fails the run.
    Must,
    /// A SHOULD: a failure is reported as a warning.
    Should,
}

/// Which servers a check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Every server.
    Always,
    /// Servers speaking the stateful 2025 generation.
    Legacy,
    /// Servers speaking 2026-07-28.
    Modern,
    /// Servers advertising this capability (a key of `capabilities`).
    Capability(&'static str),
    /// Legacy servers advertising this capability.
    LegacyCapability(&'static str),
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server behaved as the specification says.
    Pass,
    /// The server broke a MUST.
    Fail,
    /// The server broke a SHOULD, or something looked wrong without breaking a rule.
    Warn,
    /// Not run, with the reason.
    Skip,
    /// A failure listed in the baseline.
    Expected,
}

/// What a check's run function found: a status and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// What was seen: the reason for a failure, warning or skip, or measured values.
    pub detail: String,
}

impl Outcome {
    /// As specified.
    pub fn pass() -> Outcome {
        Outcome { status: Status::Pass, detail: String::new() }
    }

    /// As specified, with what was measured or seen.
    pub fn pass_with(detail: impl Into<String>) -> Outcome {
        Outcome { status: Status::Pass, detail: detail.into() }
    }

    /// Not as specified: what was wrong.
    pub fn fail(detail: impl Into<String>) -> Outcome {
        Outcome { status: Status::Fail, detail: detail.into() }
    }

    /// Doubtful, but not a violation.
    pub fn warn(detail: impl Into<String>) -> Outcome {
        Outcome { status: Status::Warn, detail: detail.into() }
    }

    /// Could not apply: why.
    pub fn skip(detail: impl Into<String>) -> Outcome {
        Outcome { status: Status::Skip, detail: detail.into() }
    }

    /// `pass()` when `ok`, else `fail(reason())`.
    pub fn require(ok: bool, reason: impl FnOnce() -> String) -> Outcome {
        if ok { Outcome::pass() } else { Outcome::fail(reason()) }
    }
}

impl From<Result<(), String>> for Outcome {
    fn from(r: Result<(), String>) -> Outcome {
        match r {
            Ok(()) => Outcome::pass(),
            Err(e) => Outcome::fail(e),
        }
    }
}

/// The function a check runs.
pub type RunFn = for<'a> fn(&'a Context) -> BoxFuture<'a, Outcome>;

/// One conformance check.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable identifier, e.g. `jsonrpc.method-not-found`.
    pub id: &'static str,
    /// One line describing what is checked.
    pub title: &'static str,
    /// The specification section, e.g. `basic/index#responses`.
    pub section: &'static str,
    /// Link to that section.
    pub link: &'static str,
    /// How much a failure matters.
    pub severity: Severity,
    /// Which servers it applies to.
    pub applies: Applies,
    /// The check itself.
    pub run: RunFn,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("id", &self.id).finish_non_exhaustive()
    }
}
