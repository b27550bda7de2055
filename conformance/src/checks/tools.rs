//! Tool calls: only the tools named with `--call-tool`, results checked against the schema.

use serde_json::{Value, json};

use super::{describe, list_all, short};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::Context;

pub(super) const CHECKS: [Check; 1] = [Check {
    id: "tools.call",
    title: "each tool named with --call-tool answers with valid content (and structuredContent matching outputSchema)",
    section: "server/tools#calling-tools",
    link: "https://modelcontextprotocol.io/specification/2025-11-25/server/tools#calling-tools",
    severity: Severity::Must,
    applies: Applies::Capability("tools"),
    run: |ctx| Box::pin(call(ctx)),
}];

/// What is wrong with one content item, if anything.
fn content_problem(item: &Value) -> Option<String> {
    let has = |k: &str| item.get(k).is_some_and(Value::is_string);
    let ok = match item.get("type").and_then(Value::as_str) {
        Some("text") => has("text"),
        Some("image") | Some("audio") => has("data") && has("mimeType"),
        Some("resource_link") => has("uri") && has("name"),
        Some("resource") => item.get("resource").and_then(|r| r.get("uri")).is_some_and(Value::is_string),
        Some(other) => return Some(format!("unknown content type {other:?}")),
        None => return Some(format!("content item without a type: {}", short(item))),
    };
    (!ok).then(|| format!("content item missing required fields: {}", short(item)))
}

async fn call(ctx: &Context) -> Outcome {
    if ctx.options.call_tools.is_empty() {
        return Outcome::skip("no tool named with --call-tool (the harness never calls tools on its own)");
    }
    let tools = match list_all(ctx, "tools/list", "tools").await {
        Ok(t) => t,
        Err(e) => return Outcome::fail(e),
    };
    let mut seen = Vec::new();
    for (name, args) in &ctx.options.call_tools {
        let Some(tool) = tools.iter().find(|t| t.get("name") == Some(&json!(name))) else {
            return Outcome::fail(format!("--call-tool {name}: the server lists no such tool"));
        };
        let result: Value = match ctx.client.request("tools/call", &json!({ "name": name, "arguments": args })).await {
            Ok(r) => r,
            Err(e) => return Outcome::fail(format!("{name}: {}", describe(&e))),
        };
        let Some(content) = result.get("content").and_then(Value::as_array) else {
            return Outcome::fail(format!("{name}: result has no content array: {}", short(&result)));
        };
        if let Some(p) = content.iter().find_map(content_problem) {
            return Outcome::fail(format!("{name}: {p}"));
        }
        if let Some(flag) = result.get("isError")
            && !flag.is_boolean()
        {
            return Outcome::fail(format!("{name}: isError must be a boolean, got {flag}"));
        }
        if let Some(schema) = tool.get("outputSchema") {
            let is_error = result.get("isError") == Some(&json!(true));
            match result.get("structuredContent") {
                None if !is_error => {
                    return Outcome::fail(format!("{name}: outputSchema declared but no structuredContent"));
                }
                None => {}
                Some(sc) => match jsonschema::validator_for(schema) {
                    Err(e) => return Outcome::fail(format!("{name}: outputSchema does not compile: {e}")),
                    Ok(v) => {
                        if let Err(e) = v.validate(sc) {
                            return Outcome::fail(format!(
                                "{name}: structuredContent does not match outputSchema: {e}"
                            ));
                        }
                    }
                },
            }
        }
        seen.push(format!("{name}: {} items", content.len()));
    }
    Outcome::pass_with(seen.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_items() {
        assert_eq!(content_problem(&json!({"type":"text","text":"x"})), None);
        assert!(content_problem(&json!({"type":"image","data":"x"})).is_some());
        assert!(content_problem(&json!({"type":"video"})).is_some());
        assert!(content_problem(&json!({"text":"x"})).is_some());
    }
}
