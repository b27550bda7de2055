//! Lists followed to the end, and the shape of what they hold.

use serde_json::Value;

use super::{list_all, short};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::Context;

pub(super) const CHECKS: [Check; 5] = [
    Check {
        id: "tools.list",
        title: "tools/list pages to the end; every tool has a name and an object inputSchema",
        section: "server/tools#listing-tools",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/tools#listing-tools",
        severity: Severity::Must,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(tools(ctx)),
    },
    Check {
        id: "tools.input-schema",
        title: "every tool inputSchema is a valid JSON Schema (2020-12 unless it says otherwise)",
        section: "server/tools#tool",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/tools#tool",
        severity: Severity::Must,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(schemas(ctx)),
    },
    Check {
        id: "resources.list",
        title: "resources/list pages to the end; every resource has a uri and a name",
        section: "server/resources#listing-resources",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/resources#listing-resources",
        severity: Severity::Must,
        applies: Applies::Capability("resources"),
        run: |ctx| Box::pin(items(ctx, "resources/list", "resources", &["uri", "name"])),
    },
    Check {
        id: "resources.templates",
        title: "resources/templates/list pages to the end; every template has a uriTemplate and a name",
        section: "server/resources#resource-templates",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/resources#resource-templates",
        severity: Severity::Must,
        applies: Applies::Capability("resources"),
        run: |ctx| Box::pin(items(ctx, "resources/templates/list", "resourceTemplates", &["uriTemplate", "name"])),
    },
    Check {
        id: "prompts.list",
        title: "prompts/list pages to the end; every prompt has a name",
        section: "server/prompts#listing-prompts",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/prompts#listing-prompts",
        severity: Severity::Must,
        applies: Applies::Capability("prompts"),
        run: |ctx| Box::pin(items(ctx, "prompts/list", "prompts", &["name"])),
    },
];

async fn items(ctx: &Context, method: &str, key: &str, required: &[&str]) -> Outcome {
    let list = match list_all(ctx, method, key).await {
        Ok(l) => l,
        Err(e) => return Outcome::fail(e),
    };
    for item in &list {
        for field in required {
            if !item.get(*field).is_some_and(Value::is_string) {
                return Outcome::fail(format!("an item lacks a string {field:?}: {}", short(item)));
            }
        }
    }
    Outcome::pass_with(format!("{} items", list.len()))
}

async fn tools(ctx: &Context) -> Outcome {
    let list = match list_all(ctx, "tools/list", "tools").await {
        Ok(l) => l,
        Err(e) => return Outcome::fail(e),
    };
    let mut names = std::collections::HashSet::new();
    for tool in &list {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return Outcome::fail(format!("a tool lacks a string name: {}", short(tool)));
        };
        if !names.insert(name) {
            return Outcome::fail(format!("tool {name:?} is listed twice"));
        }
        let schema = tool.get("inputSchema");
        if schema.and_then(|s| s.get("type")).and_then(Value::as_str) != Some("object") {
            return Outcome::fail(format!("tool {name:?}: inputSchema must be an object schema with type \"object\""));
        }
    }
    Outcome::pass_with(format!("{} tools", list.len()))
}

/// Validates a schema against its meta-schema.
pub(super) fn schema_problem(schema: &Value) -> Option<String> {
    match jsonschema::meta::validate(schema) {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    }
}

async fn schemas(ctx: &Context) -> Outcome {
    let list = match list_all(ctx, "tools/list", "tools").await {
        Ok(l) => l,
        Err(e) => return Outcome::fail(e),
    };
    let mut problems = Vec::new();
    for tool in &list {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("?");
        for key in ["inputSchema", "outputSchema"] {
            if let Some(schema) = tool.get(key)
                && let Some(p) = schema_problem(schema)
            {
                problems.push(format!("{name}.{key}: {p}"));
            }
        }
    }
    Outcome::require(problems.is_empty(), || problems.join("; "))
}
