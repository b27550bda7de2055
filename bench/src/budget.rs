//! Latency budgets: ratios between cases measured in the same run, so they hold on any
//! machine.

use serde::Deserialize;

use crate::BenchError;
use crate::cases::Placement;
use crate::run::Row;

/// A budgets file: a list of `[[budget]]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// The budgets.
    #[serde(rename = "budget")]
    pub budgets: Vec<Budget>,
}

/// Which number of a row a budget compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median round trip.
    P50,
    /// 99th percentile round trip.
    P99,
    /// 99.9th percentile round trip.
    P999,
    /// Messages per second (higher is better: the ratio is `against / case`).
    MessagesPerSec,
}

/// One budget: `case` may be at most `max_ratio` times worse than `against` on `metric`, or
/// (messages per second only) must reach `min`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// What it promises, in words.
    pub name: String,
    /// The case held to the budget.
    pub case: String,
    /// Where both cases ran.
    pub placement: Placement,
    /// The number compared.
    pub metric: Metric,
    /// The case it is compared with.
    pub against: Option<String>,
    /// The largest allowed ratio (`case / against` for latencies, `against / case` for rates).
    pub max_ratio: Option<f64>,
    /// An absolute lower bound (messages per second only).
    pub min: Option<f64>,
}

/// The outcome of one budget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The budget.
    pub budget: Budget,
    /// The measured ratio or rate.
    pub measured: Option<f64>,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run.
    pub met: Option<bool>,
    /// A sentence for the report.
    pub detail: String,
}

impl Budgets {
    /// Parses a budgets file; errors name the file and the line.
    pub fn parse(path: &str, text: &str) -> Result<Budgets, BenchError> {
        let budgets: Budgets =
            toml::from_str(text).map_err(|e| BenchError::Budgets { path: path.into(), reason: locate(text, &e) })?;
        for (i, b) in budgets.budgets.iter().enumerate() {
            let bad = |reason: String| BenchError::Budgets {
                path: path.into(),
                reason: format!("budget {}: {reason}", i + 1),
            };
            if crate::cases::find(&b.case).is_none() {
                return Err(bad(format!("unknown case {:?}", b.case)));
            }
            match (&b.against, b.max_ratio, b.min) {
                (Some(a), Some(r), None) if crate::cases::find(a).is_some() && r > 0.0 => {}
                (Some(a), Some(_), None) if crate::cases::find(a).is_none() => {
                    return Err(bad(format!("unknown case {a:?} in `against`")));
                }
                (None, None, Some(m)) if b.metric == Metric::MessagesPerSec && m > 0.0 => {}
                _ => {
                    return Err(bad(
                        "give `against` with a positive `max_ratio`, or `min` with metric = \"messages_per_sec\""
                            .into(),
                    ));
                }
            }
        }
        Ok(budgets)
    }

    /// Checks every budget against the rows of one run.
    pub fn check(&self, rows: &[Row]) -> Vec<Outcome> {
        self.budgets.iter().map(|b| check_one(b, rows)).collect()
    }
}

fn locate(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

fn value(row: &Row, metric: Metric) -> Option<f64> {
    match metric {
        Metric::P50 => row.latency.map(|l| l.p50_us),
        Metric::P99 => row.latency.map(|l| l.p99_us),
        Metric::P999 => row.latency.map(|l| l.p999_us),
        Metric::MessagesPerSec => row.messages_per_sec,
    }
}

fn check_one(b: &Budget, rows: &[Row]) -> Outcome {
    let find = |id: &str| rows.iter().find(|r| r.id == id && r.placement == b.placement);
    let outcome = |measured, met, detail| Outcome { budget: b.clone(), measured, met, detail };
    let Some(case) = find(&b.case).and_then(|r| value(r, b.metric)) else {
        return outcome(None, None, format!("{} ({}) was not measured in this run", b.case, b.placement.label()));
    };
    match (&b.against, b.max_ratio, b.min) {
        (Some(against), Some(max), _) => {
            let Some(base) = find(against).and_then(|r| value(r, b.metric)) else {
                return outcome(
                    None,
                    None,
                    format!("{against} ({}) was not measured in this run", b.placement.label()),
                );
            };
            let ratio = if b.metric == Metric::MessagesPerSec { base / case } else { case / base };
            let met = ratio <= max;
            outcome(Some(ratio), Some(met), format!("{ratio:.2}x (budget {max:.2}x)"))
        }
        (None, _, Some(min)) => {
            outcome(Some(case), Some(case >= min), format!("{case:.0}/s (budget at least {min:.0}/s)"))
        }
        _ => outcome(None, None, "malformed budget".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn row(id: &str, p50: f64, rate: f64) -> Row {
        let case = crate::cases::find(id).unwrap();
        Row {
            id: id.into(),
            label: String::new(),
            role: case.role,
            placement: Placement::InProcess,
            size: case.size,
            floor: None,
            latency: Some(Summary { p50_us: p50, p99_us: p50, p999_us: p50, count: 1 }),
            messages_per_sec: Some(rate),
            mb_per_sec: None,
            cpu_us_per_message: None,
            peak_rss_mib: None,
            ratio_to_floor: None,
            error: None,
        }
    }

    #[test]
    fn ratios_and_minimums_are_checked() {
        let text = r#"
[[budget]]
name = "uds within 2x"
case = "uds"
placement = "in-process"
metric = "p50"
against = "raw-uds"
max_ratio = 2.0

[[budget]]
name = "rate"
case = "uds"
placement = "in-process"
metric = "messages_per_sec"
min = 1000.0

[[budget]]
name = "absent"
case = "ws"
placement = "cross-process"
metric = "p50"
against = "raw-ws"
max_ratio = 1.3
"#;
        let budgets = Budgets::parse("b.toml", text).unwrap();
        let out = budgets.check(&[row("uds", 9.0, 500.0), row("raw-uds", 4.0, 900.0)]);
        assert_eq!(out[0].met, Some(false));
        assert!((out[0].measured.unwrap() - 2.25).abs() < 1e-9);
        assert_eq!(out[1].met, Some(false));
        assert_eq!(out[2].met, None);
        let out = budgets.check(&[row("uds", 7.0, 2000.0), row("raw-uds", 4.0, 900.0)]);
        assert_eq!((out[0].met, out[1].met), (Some(true), Some(true)));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let err = Budgets::parse("b.toml", "[[budget]]\nname = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("b.toml: line 2"), "{err}");
        let unknown =
            "[[budget]]\nname='x'\ncase='nope'\nplacement='in-process'\nmetric='p50'\nagainst='uds'\nmax_ratio=2.0\n";
        assert!(Budgets::parse("b.toml", unknown).unwrap_err().to_string().contains("unknown case \"nope\""));
        let neither = "[[budget]]\nname='x'\ncase='uds'\nplacement='in-process'\nmetric='p50'\n";
        assert!(Budgets::parse("b.toml", neither).unwrap_err().to_string().contains("max_ratio"));
    }
}
