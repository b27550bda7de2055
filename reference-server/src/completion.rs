//! `completion/complete`: suggestions for prompt arguments and the template's `{id}`.

use mcp_transport_core::RawValue;
use mcp_transport_core::message::to_raw;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::{prompts, resources};

const METHOD: &str = "completion/complete";

/// The spec's cap on values in one completion result.
const MAX_VALUES: usize = 100;

/// Candidates for the free-text arguments of `test_prompt_with_arguments`.
const WORDS: &[&str] = &["paris", "park", "party", "test", "testValue1", "testValue2", "value"];
/// Candidates for the `{id}` of the resource template.
const IDS: &[&str] = &["1", "2", "3", "42", "123"];
/// Candidates for `resourceUri` of `test_prompt_with_embedded_resource`.
const URIS: &[&str] =
    &[resources::STATIC_TEXT_URI, resources::STATIC_BINARY_URI, resources::WATCHED_URI, "test://example-resource"];

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Reference {
    #[serde(rename = "ref/prompt")]
    Prompt { name: String },
    #[serde(rename = "ref/resource")]
    Resource { uri: String },
}

#[derive(Deserialize)]
struct Argument {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct Params {
    #[serde(rename = "ref")]
    reference: Reference,
    argument: Argument,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Completion<'a> {
    values: Vec<&'a str>,
    total: usize,
    has_more: bool,
}

#[derive(Serialize)]
struct CompleteResult<'a> {
    completion: Completion<'a>,
}

/// Answers `completion/complete`: the candidates for the argument that start with its value.
pub(crate) fn complete(params: Option<&RawValue>) -> Result<Box<RawValue>, ServerError> {
    let raw = params.ok_or_else(|| ServerError::invalid_params(METHOD, "params with ref and argument are required"))?;
    let p: Params =
        serde_json::from_str(raw.get()).map_err(|e| ServerError::invalid_params(METHOD, format!("params: {e}")))?;
    let candidates: &[&str] = match &p.reference {
        Reference::Prompt { name } => {
            let args = prompts::arguments_of(name).ok_or_else(|| ServerError::UnknownPrompt { name: name.clone() })?;
            match (name.as_str(), args.contains(&p.argument.name.as_str())) {
                ("test_prompt_with_embedded_resource", true) => URIS,
                (_, true) => WORDS,
                (_, false) => &[],
            }
        }
        Reference::Resource { uri } if uri == resources::TEMPLATE => match p.argument.name.as_str() {
            "id" => IDS,
            _ => &[],
        },
        Reference::Resource { uri } => {
            return Err(ServerError::invalid_params(METHOD, format!("no resource template {uri:?}")));
        }
    };
    let matching: Vec<&str> = candidates.iter().copied().filter(|c| c.starts_with(&p.argument.value)).collect();
    let total = matching.len();
    let values: Vec<&str> = matching.into_iter().take(MAX_VALUES).collect();
    let has_more = total > values.len();
    to_raw(&CompleteResult { completion: Completion { values, total, has_more } })
        .map_err(ServerError::encode("completion"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn complete_v(params: Value) -> Result<Value, ServerError> {
        complete(Some(&to_raw(&params).unwrap())).map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn prompt_arguments_complete_by_prefix() {
        let v = complete_v(json!({
            "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
            "argument": { "name": "arg1", "value": "par" }
        }))
        .unwrap();
        assert_eq!(v, json!({ "completion": { "values": ["paris", "park", "party"], "total": 3, "hasMore": false } }));
        let none = complete_v(json!({
            "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
            "argument": { "name": "arg1", "value": "zzz" }
        }))
        .unwrap();
        assert_eq!(none["completion"]["values"], json!([]));
    }

    #[test]
    fn template_ids_and_resource_uris() {
        let v = complete_v(json!({
            "ref": { "type": "ref/resource", "uri": "test://template/{id}/data" },
            "argument": { "name": "id", "value": "1" }
        }))
        .unwrap();
        assert_eq!(v["completion"]["values"], json!(["1", "123"]));
        let u = complete_v(json!({
            "ref": { "type": "ref/prompt", "name": "test_prompt_with_embedded_resource" },
            "argument": { "name": "resourceUri", "value": "test://static" }
        }))
        .unwrap();
        assert_eq!(u["completion"]["values"], json!(["test://static-text", "test://static-binary"]));
    }

    #[test]
    fn unknown_references_are_invalid_params() {
        for bad in [
            json!({ "ref": { "type": "ref/prompt", "name": "nope" }, "argument": { "name": "a", "value": "" } }),
            json!({ "ref": { "type": "ref/resource", "uri": "test://x/{y}" }, "argument": { "name": "y", "value": "" } }),
            json!({ "ref": { "type": "ref/other" }, "argument": { "name": "a", "value": "" } }),
            json!({ "argument": { "name": "a", "value": "" } }),
        ] {
            assert_eq!(complete_v(bad.clone()).unwrap_err().to_error_object(false).code, -32602, "{bad}");
        }
    }
}
