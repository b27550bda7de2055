//! Reports: a terminal table, JSON and JUnit XML.

use std::fmt::Write as _;
use std::time::Duration;

use crate::check::{Check, Outcome, Severity, Status};
use crate::error::Error;

/// The result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// Check id.
    pub id: &'static str,
    /// Check title.
    pub title: &'static str,
    /// Specification section.
    pub section: &'static str,
    /// Link to the section.
    pub link: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Verdict.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// How long the check took, in milliseconds.
    pub millis: f64,
}

impl CheckResult {
    pub(crate) fn new(check: &Check, outcome: Outcome, took: Duration) -> Self {
        Self {
            id: check.id,
            title: check.title,
            section: check.section,
            link: check.link,
            severity: check.severity,
            status: outcome.status,
            detail: outcome.detail,
            millis: took.as_secs_f64() * 1e3,
        }
    }
}

/// The results of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// What was checked.
    pub target: String,
    /// The protocol version spoken.
    pub protocol_version: String,
    /// The server's name and version, when it said.
    pub server_name: Option<String>,
    /// One result per check, in run order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Whether any check failed (expected failures do not count).
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.status == Status::Fail)
    }

    /// How many results have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// A readable table for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let server = self.server_name.as_deref().unwrap_or("unnamed server");
        let _ = writeln!(out, "{} ({server}, protocol {})", self.target, self.protocol_version);
        let width = self.results.iter().map(|r| r.id.len()).max().unwrap_or(0);
        for r in &self.results {
            let mark = match r.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::Warn => "warn",
                Status::Skip => "skip",
                Status::Expected => "xfail",
            };
            let _ = writeln!(out, "{mark:5}  {:width$}  {}", r.id, r.title);
            if !r.detail.is_empty() {
                let detail: String = r.detail.split_whitespace().collect::<Vec<_>>().join(" ");
                let _ = writeln!(out, "{:5}  {:width$}  {detail}", "", "");
            }
            if matches!(r.status, Status::Fail | Status::Warn | Status::Expected) {
                let _ = writeln!(out, "{:5}  {:width$}  see {}", "", "", r.link);
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} warnings, {} skipped, {} expected failures",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Skip),
            self.count(Status::Expected)
        );
        out
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Report(e.to_string()))
    }

    /// The report as JUnit XML: one test case per check; failures as `<failure>`, skips and
    /// expected failures as `<skipped>`, warnings as passing cases with `<system-out>`.
    pub fn to_junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total: f64 = self.results.iter().map(|r| r.millis).sum::<f64>() / 1e3;
        let _ = writeln!(
            out,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{total:.3}\">",
            xml(&format!("mcp conformance: {}", self.target)),
            self.results.len(),
            self.count(Status::Fail),
            self.count(Status::Skip) + self.count(Status::Expected)
        );
        for r in &self.results {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                xml(r.section),
                xml(&format!("{}: {}", r.id, r.title)),
                r.millis / 1e3
            );
            let body = format!("{} (see {})", r.detail, r.link);
            match r.status {
                Status::Fail => {
                    let _ = write!(out, "<failure message=\"{}\">{}</failure>", xml(&r.detail), xml(&body));
                }
                Status::Skip | Status::Expected => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(&r.detail));
                }
                Status::Warn => {
                    let _ = write!(out, "<system-out>warning: {}</system-out>", xml(&body));
                }
                Status::Pass => {}
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite>\n");
        out
    }
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_everything_a_server_can_send() {
        assert_eq!(xml("<a href=\"x\">&'\u{1}"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}");
    }
}
