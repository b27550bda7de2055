//! The checks, grouped by what they test.

mod jsonrpc;
mod latency;
mod lifecycle;
mod listing;
mod tools;
mod transport;
mod utilities;

use std::collections::HashSet;

use mcp_session::SessionError;
use serde_json::{Value, json};

use crate::check::Check;
use crate::context::Context;

/// Every check, in run order.
pub fn all() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(lifecycle::CHECKS);
    v.extend(jsonrpc::CHECKS);
    v.extend(utilities::CHECKS);
    v.extend(listing::CHECKS);
    v.extend(tools::CHECKS);
    v.extend(transport::CHECKS);
    v.extend(latency::CHECKS);
    v
}

/// The error code of a JSON-RPC error response, or why it is not one.
fn error_code(resp: &Value) -> Result<i64, String> {
    match resp.get("error") {
        Some(e) => e.get("code").and_then(Value::as_i64).ok_or_else(|| format!("error without an integer code: {e}")),
        None => Err(format!("expected an error response, got {}", short(resp))),
    }
}

/// Requires an error response with `code`.
fn expect_code(resp: &Value, code: i64) -> Result<(), String> {
    let got = error_code(resp)?;
    if got == code { Ok(()) } else { Err(format!("expected error {code}, got {got}: {}", short(resp))) }
}

/// A short printable form of a JSON value.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 { format!("{}…", &s[..s.floor_char_boundary(200)]) } else { s }
}

/// The error a session request failed with, printable.
fn describe(e: &SessionError) -> String {
    e.to_string()
}

/// Follows `nextCursor` to the end of a paginated list and returns every item.
async fn list_all(ctx: &Context, method: &str, key: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for page in 0.. {
        if page == 1000 {
            return Err(format!("{method}: more than 1000 pages"));
        }
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let result: Value = ctx.client.request(method, &params).await.map_err(|e| describe(&e))?;
        let list = result
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{method} result has no {key:?} array: {}", short(&result)))?;
        items.extend(list.iter().cloned());
        match result.get("nextCursor") {
            None | Some(Value::Null) => return Ok(items),
            Some(Value::String(c)) => {
                if !seen.insert(c.clone()) {
                    return Err(format!("{method}: cursor {c:?} came back twice (pagination loops)"));
                }
                cursor = Some(c.clone());
            }
            Some(other) => return Err(format!("{method}: nextCursor must be a string, got {other}")),
        }
    }
    unreachable!("the loop returns")
}
