//! A conformance harness for MCP servers: it checks MCP semantics and transport behaviour
//! against any server, ours or third-party, over any transport.
//!
//! Checks are data ([`Check`]): an id, a title, the specification section they test with its
//! link, a severity, the generations and capabilities they apply to, and a run function. The
//! runner picks the checks that apply to the server's negotiated generation and advertised
//! capabilities, runs each with its own timeout, and produces a [`Report`] that renders as a
//! terminal table, JSON or JUnit XML. A [`Baseline`] marks expected failures, each with a
//! reason.
//!
//! The harness reaches servers through a [`Connector`], which the caller supplies for the
//! transport at hand (the `mcpt conform` command has one per endpoint kind).
#![forbid(unsafe_code)]

mod baseline;
mod check;
pub mod checks;
mod context;
mod error;
mod report;
mod runner;
pub mod wire;

pub use baseline::Baseline;
pub use check::{Applies, Check, Outcome, RunFn, Severity, Status};
pub use context::{Budgets, Connector, Context, Options, RawSession, RawWire};
pub use error::Error;
pub use report::{CheckResult, Report};
pub use runner::{SpecChoice, run};
