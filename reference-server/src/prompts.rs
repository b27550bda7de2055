//! Prompts: the conformance fixtures, and one prompt that needs client input.

use std::collections::HashMap;

use mcp_transport_core::RawValue;
use mcp_transport_core::message::to_raw;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::content::{Content, ResourceContents, TEST_IMAGE_BASE64};
use crate::error::ServerError;
use crate::input::{Flow, InputRequest, Round, Step, one_field_schema};

const METHOD: &str = "prompts/get";

/// The prompt that asks the client for context before it can be built.
pub const INPUT_PROMPT: &str = "test_input_required_result_prompt";

/// The `prompts/list` entries.
pub(crate) fn list() -> Vec<Value> {
    let arg = |name: &str, description: &str| json!({ "name": name, "description": description, "required": true });
    vec![
        json!({
            "name": "test_simple_prompt",
            "title": "Simple Test Prompt",
            "description": "A simple prompt without arguments"
        }),
        json!({
            "name": "test_prompt_with_arguments",
            "title": "Prompt With Arguments",
            "description": "A prompt with required arguments",
            "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")]
        }),
        json!({
            "name": "test_prompt_with_embedded_resource",
            "title": "Prompt With Embedded Resource",
            "description": "A prompt that includes an embedded resource",
            "arguments": [arg("resourceUri", "URI of the resource to embed")]
        }),
        json!({
            "name": "test_prompt_with_image",
            "title": "Prompt With Image",
            "description": "A prompt that includes image content"
        }),
        json!({
            "name": INPUT_PROMPT,
            "title": "Prompt Requiring Input",
            "description": "A prompt that asks the user (elicitation) for the context it should use"
        }),
    ]
}

/// The argument names of a prompt, or `None` if there is no such prompt.
pub(crate) fn arguments_of(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "test_simple_prompt" | "test_prompt_with_image" | INPUT_PROMPT => Some(&[]),
        "test_prompt_with_arguments" => Some(&["arg1", "arg2"]),
        "test_prompt_with_embedded_resource" => Some(&["resourceUri"]),
        _ => None,
    }
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
struct GetPromptResult<'a, 'b> {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'static str>,
    messages: &'b [Message<'a>],
}

fn result(description: &'static str, messages: &[Message<'_>]) -> Result<Box<RawValue>, ServerError> {
    to_raw(&GetPromptResult { description: Some(description), messages }).map_err(ServerError::encode("prompt"))
}

fn user(content: Content<'_>) -> Message<'_> {
    Message { role: "user", content }
}

/// `prompts/get` params.
#[derive(Deserialize)]
pub(crate) struct GetParams {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) arguments: HashMap<String, String>,
}

impl GetParams {
    /// Reads `{name, arguments?}`.
    pub(crate) fn parse(params: Option<&RawValue>) -> Result<Self, ServerError> {
        let raw = params.ok_or_else(|| ServerError::invalid_params(METHOD, "params with a name are required"))?;
        serde_json::from_str(raw.get()).map_err(|e| ServerError::invalid_params(METHOD, format!("params: {e}")))
    }

    fn arg(&self, name: &str) -> Result<&str, ServerError> {
        self.arguments.get(name).map(String::as_str).ok_or_else(|| {
            ServerError::invalid_params(METHOD, format!("prompt {} needs the argument {name:?}", self.name))
        })
    }
}

/// `prompts/get` of a prompt that needs no client input; `Ok(None)` for [`INPUT_PROMPT`].
pub(crate) fn get(p: &GetParams) -> Result<Option<Box<RawValue>>, ServerError> {
    let raw = match p.name.as_str() {
        "test_simple_prompt" => result(
            "A simple prompt without arguments",
            &[user(Content::Text { text: "This is a simple prompt for testing." })],
        )?,
        "test_prompt_with_arguments" => {
            let text = format!("Prompt with arguments: arg1='{}', arg2='{}'", p.arg("arg1")?, p.arg("arg2")?);
            result("A prompt with required arguments", &[user(Content::Text { text: &text })])?
        }
        "test_prompt_with_embedded_resource" => {
            let uri = p.arg("resourceUri")?;
            let resource = ResourceContents::text(uri, "text/plain", "Embedded resource content for testing.");
            result(
                "A prompt that includes an embedded resource",
                &[
                    user(Content::Resource { resource }),
                    user(Content::Text { text: "Please process the embedded resource above." }),
                ],
            )?
        }
        "test_prompt_with_image" => result(
            "A prompt that includes image content",
            &[
                user(Content::Image { data: TEST_IMAGE_BASE64, mime_type: "image/png" }),
                user(Content::Text { text: "Please analyze the image above." }),
            ],
        )?,
        INPUT_PROMPT => return Ok(None),
        other => return Err(ServerError::UnknownPrompt { name: other.to_owned() }),
    };
    Ok(Some(raw))
}

/// [`INPUT_PROMPT`]: asks for `context` by elicitation, then builds the prompt with it.
#[derive(Debug)]
pub(crate) struct ContextPrompt;

impl Flow for ContextPrompt {
    fn target(&self) -> &str {
        INPUT_PROMPT
    }

    fn method(&self) -> &'static str {
        METHOD
    }

    fn step(&self, round: &Round<'_>) -> Result<Step, ServerError> {
        match round.inputs.elicited("user_context", METHOD)? {
            Some(answer) => {
                let text = match answer.string("context") {
                    Some(context) => format!("Prompt with context: {context}"),
                    None => format!("Prompt without context (the user chose to {})", answer.action.as_str()),
                };
                Ok(Step::Complete(result(
                    "A prompt that asks the user for the context it should use",
                    &[user(Content::Text { text: &text })],
                )?))
            }
            None => Ok(Step::NeedInput {
                requests: vec![InputRequest::elicit(
                    "user_context",
                    "What context should the prompt use?",
                    one_field_schema("context", "string"),
                )],
                state: None,
            }),
        }
    }

    fn input_failed(&self, reason: String) -> Result<Box<RawValue>, ServerError> {
        Err(ServerError::InputUnavailable { target: INPUT_PROMPT.to_owned(), reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Inputs;
    use crate::meta::ClientCaps;

    fn get_v(name: &str, args: Value) -> Result<Value, ServerError> {
        let p: GetParams = serde_json::from_value(json!({ "name": name, "arguments": args })).unwrap();
        get(&p).map(|raw| serde_json::from_str(raw.expect("not a flow").get()).unwrap())
    }

    #[test]
    fn simple_prompt() {
        let v = get_v("test_simple_prompt", json!({})).unwrap();
        assert_eq!(
            v["messages"],
            json!([{ "role": "user", "content": { "type": "text", "text": "This is a simple prompt for testing." } }])
        );
    }

    #[test]
    fn arguments_are_substituted_and_required() {
        let v = get_v("test_prompt_with_arguments", json!({ "arg1": "hello", "arg2": "world" })).unwrap();
        assert_eq!(v["messages"][0]["content"]["text"], "Prompt with arguments: arg1='hello', arg2='world'");
        let err = get_v("test_prompt_with_arguments", json!({ "arg1": "x" })).unwrap_err();
        assert_eq!(err.to_error_object(false).code, -32602);
    }

    #[test]
    fn embedded_resource_and_image() {
        let v =
            get_v("test_prompt_with_embedded_resource", json!({ "resourceUri": "test://example-resource" })).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            json!({ "type": "resource", "resource": {
                "uri": "test://example-resource", "mimeType": "text/plain",
                "text": "Embedded resource content for testing." } })
        );
        assert_eq!(v["messages"][1]["content"]["text"], "Please process the embedded resource above.");
        let img = get_v("test_prompt_with_image", json!({})).unwrap();
        assert_eq!(
            img["messages"][0]["content"],
            json!({ "type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png" })
        );
    }

    #[test]
    fn unknown_prompts_are_invalid_params() {
        assert!(matches!(get_v("nope", json!({})), Err(ServerError::UnknownPrompt { .. })));
        assert_eq!(arguments_of("nope"), None);
        assert_eq!(arguments_of("test_prompt_with_arguments"), Some(&["arg1", "arg2"][..]));
    }

    #[test]
    fn every_listed_prompt_has_a_description_and_is_served() {
        for p in list() {
            let name = p["name"].as_str().unwrap();
            assert!(p["description"].is_string(), "{p}");
            assert!(arguments_of(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_input_prompt_asks_then_completes() {
        let caps = ClientCaps::Unknown;
        let none = Inputs::default();
        let step = ContextPrompt.step(&Round { inputs: &none, state: None, caps: &caps }).unwrap();
        let Step::NeedInput { requests, .. } = step else { panic!("expected a request for input") };
        assert_eq!(requests[0].key, "user_context");
        let map =
            json!({ "inputResponses": { "user_context": { "action": "accept", "content": { "context": "ctx" } } } });
        let answered = Inputs::from_params(map.as_object().unwrap(), METHOD).unwrap();
        let step = ContextPrompt.step(&Round { inputs: &answered, state: None, caps: &caps }).unwrap();
        let Step::Complete(raw) = step else { panic!("expected completion") };
        let v: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(v["messages"][0]["content"]["text"], "Prompt with context: ctx");
    }
}
