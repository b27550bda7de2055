//! Asking the client for input: sampling, elicitation and roots, in both generations.
//!
//! A fixture that needs input is written once, as a [`Flow`]: given the answers so far (and
//! the state it left itself), it either completes or asks for more. The generation decides
//! how the asking happens:
//!
//! - 2025: [`run_legacy`] sends each request to the client (`ctx.peer.request_raw`), feeds the
//!   answers back and repeats, all within the one `tools/call` or `prompts/get`.
//! - 2026-07-28 (MRTR): [`run_modern`] answers with an `InputRequiredResult` (the requests, and
//!   the flow's state sealed by [`StateSigner`]); the client retries the original request with
//!   `inputResponses` and the `requestState` echoed, and the flow resumes from them. Input of a
//!   kind the request's capabilities do not declare is refused with -32021.

use std::collections::BTreeMap;

use mcp_session::{RequestContext, RequestOptions};
use mcp_transport_core::RawValue;
use mcp_transport_core::message::to_raw;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::ServerError;
use crate::meta::{ClientCaps, InputKind};
use crate::state::StateSigner;

/// How many rounds of input a 2025 flow may ask for before giving up.
const MAX_LEGACY_ROUNDS: usize = 4;

/// One request for client input, under a key the answer comes back with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputRequest {
    pub(crate) key: &'static str,
    pub(crate) kind: InputKind,
    pub(crate) params: Value,
}

impl InputRequest {
    /// `elicitation/create` in form mode.
    pub(crate) fn elicit(key: &'static str, message: &str, requested_schema: Value) -> Self {
        Self {
            key,
            kind: InputKind::Elicitation,
            params: json!({ "message": message, "requestedSchema": requested_schema }),
        }
    }

    /// `sampling/createMessage` with one user text message.
    pub(crate) fn sample(key: &'static str, prompt: &str, max_tokens: u32) -> Self {
        Self {
            key,
            kind: InputKind::Sampling,
            params: json!({
                "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                "maxTokens": max_tokens
            }),
        }
    }

    /// `roots/list`.
    pub(crate) fn roots(key: &'static str) -> Self {
        Self { key, kind: InputKind::Roots, params: json!({}) }
    }
}

/// A one-field elicitation schema: `{type: object, properties: {field: {type}}, required: [field]}`.
pub(crate) fn one_field_schema(field: &str, kind: &str) -> Value {
    json!({ "type": "object", "properties": { field: { "type": kind } }, "required": [field] })
}

/// What the user did with an elicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElicitAction {
    /// Submitted the form.
    Accept,
    /// Declined to answer.
    Decline,
    /// Dismissed the request.
    Cancel,
}

impl ElicitAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ElicitAction::Accept => "accept",
            ElicitAction::Decline => "decline",
            ElicitAction::Cancel => "cancel",
        }
    }
}

/// An `ElicitResult`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Elicited {
    pub(crate) action: ElicitAction,
    pub(crate) content: Map<String, Value>,
}

impl Elicited {
    /// The accepted string value of `field`, if the user accepted and gave one.
    pub(crate) fn string(&self, field: &str) -> Option<&str> {
        match self.action {
            ElicitAction::Accept => self.content.get(field).and_then(Value::as_str),
            _ => None,
        }
    }

    /// `action=<action>, content=<json>`, as the fixtures report it.
    pub(crate) fn summary(&self) -> String {
        format!("action={}, content={}", self.action.as_str(), Value::Object(self.content.clone()))
    }
}

/// The client's answers so far, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Inputs {
    answers: Map<String, Value>,
}

impl Inputs {
    /// Reads `inputResponses` from retried params: absent is none; anything but an object of
    /// objects is -32602.
    pub(crate) fn from_params(params: &Map<String, Value>, method: &'static str) -> Result<Self, ServerError> {
        let answers = match params.get("inputResponses") {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(ServerError::invalid_params(
                    method,
                    format!("inputResponses must be an object of responses, not {}", kind_of(other)),
                ));
            }
        };
        if let Some((key, value)) = answers.iter().find(|(_, v)| !v.is_object()) {
            return Err(ServerError::invalid_params(
                method,
                format!("inputResponses[{key:?}] must be a result object, not {}", kind_of(value)),
            ));
        }
        Ok(Self { answers })
    }

    fn insert(&mut self, key: &str, value: Value) {
        self.answers.insert(key.to_owned(), value);
    }

    /// The keys answered.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.answers.keys().map(String::as_str)
    }

    /// The answer to an elicitation asked under `key`; `Ok(None)` if not answered.
    pub(crate) fn elicited(&self, key: &str, method: &'static str) -> Result<Option<Elicited>, ServerError> {
        let Some(v) = self.answers.get(key) else { return Ok(None) };
        let bad = |what: &str| ServerError::invalid_params(method, format!("inputResponses[{key:?}] {what}"));
        let action = match v.get("action").and_then(Value::as_str) {
            Some("accept") => ElicitAction::Accept,
            Some("decline") => ElicitAction::Decline,
            Some("cancel") => ElicitAction::Cancel,
            _ => return Err(bad("is not an ElicitResult: action must be accept, decline or cancel")),
        };
        let content = match v.get("content") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(bad("is not an ElicitResult: content must be an object")),
        };
        Ok(Some(Elicited { action, content }))
    }

    /// The text of a sampling answer under `key` (`""` when it has no text block); `Ok(None)`
    /// if not answered.
    pub(crate) fn sampled_text(&self, key: &str, method: &'static str) -> Result<Option<String>, ServerError> {
        let Some(v) = self.answers.get(key) else { return Ok(None) };
        let bad = || {
            ServerError::invalid_params(
                method,
                format!("inputResponses[{key:?}] is not a CreateMessageResult: it needs role, content and model"),
            )
        };
        if !v.get("role").is_some_and(Value::is_string) || !v.get("model").is_some_and(Value::is_string) {
            return Err(bad());
        }
        let text_of = |block: &Value| block.get("text").and_then(Value::as_str).map(str::to_owned);
        let text = match v.get("content") {
            Some(block @ Value::Object(_)) => text_of(block),
            Some(Value::Array(blocks)) => blocks.iter().find_map(text_of),
            _ => return Err(bad()),
        };
        Ok(Some(text.unwrap_or_default()))
    }

    /// The number of roots in a `roots/list` answer under `key`; `Ok(None)` if not answered.
    pub(crate) fn root_count(&self, key: &str, method: &'static str) -> Result<Option<usize>, ServerError> {
        let Some(v) = self.answers.get(key) else { return Ok(None) };
        match v.get("roots") {
            Some(Value::Array(roots)) if roots.iter().all(|r| r.get("uri").is_some_and(Value::is_string)) => {
                Ok(Some(roots.len()))
            }
            _ => Err(ServerError::invalid_params(
                method,
                format!("inputResponses[{key:?}] is not a ListRootsResult: roots must be a list of {{uri}}"),
            )),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One round of a flow: the answers so far and its own state.
#[derive(Debug)]
pub(crate) struct Round<'a> {
    pub(crate) inputs: &'a Inputs,
    /// The state the flow left in its previous step (checked for integrity in 2026-07-28).
    pub(crate) state: Option<&'a Value>,
    /// The client capabilities of the request.
    pub(crate) caps: &'a ClientCaps,
}

/// What a flow does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// The final result of the request.
    Complete(Box<RawValue>),
    /// More input is needed; `state` comes back in the next round.
    NeedInput { requests: Vec<InputRequest>, state: Option<Value> },
}

/// A request handler that may need client input.
pub(crate) trait Flow: Send + Sync {
    /// The tool or prompt name (states are sealed to it).
    fn target(&self) -> &str;
    /// The method it serves (`tools/call` or `prompts/get`).
    fn method(&self) -> &'static str;
    /// One step.
    fn step(&self, round: &Round<'_>) -> Result<Step, ServerError>;
    /// The answer when the client could not provide input (2025 generation): a tool reports
    /// it as an error result, anything else as an error.
    fn input_failed(&self, reason: String) -> Result<Box<RawValue>, ServerError>;
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InputRequired<'a> {
    result_type: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    input_requests: BTreeMap<&'static str, WireInputRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_state: Option<String>,
}

#[derive(Serialize)]
struct WireInputRequest<'a> {
    method: &'static str,
    params: &'a Value,
}

/// Serves one 2026-07-28 round: resumes the flow from `params` (`inputResponses`,
/// `requestState`) and answers with its result or an `InputRequiredResult`.
pub(crate) fn run_modern(
    flow: &dyn Flow,
    params: &Map<String, Value>,
    caps: &ClientCaps,
    signer: &StateSigner,
) -> Result<Box<RawValue>, ServerError> {
    let inputs = Inputs::from_params(params, flow.method())?;
    let state = match params.get("requestState") {
        None => None,
        Some(Value::String(token)) => Some(signer.open(flow.target(), token)?),
        Some(other) => {
            return Err(ServerError::invalid_params(
                flow.method(),
                format!("requestState must be a string, not {}", kind_of(other)),
            ));
        }
    };
    match flow.step(&Round { inputs: &inputs, state: state.as_ref(), caps })? {
        Step::Complete(result) => Ok(result),
        Step::NeedInput { requests, state } => {
            if let Some(missing) = requests.iter().find(|r| !caps.allows(r.kind)) {
                return Err(ServerError::MissingCapability {
                    target: flow.target().to_owned(),
                    capability: missing.kind.capability(),
                });
            }
            let request_state = state.map(|s| signer.seal(flow.target(), s)).transpose()?;
            let input_requests = requests
                .iter()
                .map(|r| (r.key, WireInputRequest { method: r.kind.method(), params: &r.params }))
                .collect();
            to_raw(&InputRequired { result_type: "input_required", input_requests, request_state })
                .map_err(ServerError::encode("InputRequiredResult"))
        }
    }
}

/// Serves a flow in the 2025 generation: sends its input requests to the client over the
/// connection and resumes it with the answers, until it completes.
pub(crate) async fn run_legacy(flow: Box<dyn Flow>, ctx: RequestContext) -> Result<Box<RawValue>, ServerError> {
    let mut inputs = Inputs::default();
    let mut state = None;
    for _ in 0..MAX_LEGACY_ROUNDS {
        let round = Round { inputs: &inputs, state: state.as_ref(), caps: &ClientCaps::Unknown };
        let (requests, next_state) = match flow.step(&round)? {
            Step::Complete(result) => return Ok(result),
            Step::NeedInput { requests, state } => (requests, state),
        };
        for request in requests {
            let method = request.kind.method();
            let params = to_raw(&request.params).map_err(ServerError::encode("input request"))?;
            tracing::debug!(target_name = flow.target(), method, "asking the client for input");
            match ctx.peer.request_raw(method, Some(params), RequestOptions::default()).await {
                Ok(raw) => {
                    let answer: Value = serde_json::from_str(raw.get())
                        .map_err(|e| ServerError::invalid_params(flow.method(), format!("{method} result: {e}")))?;
                    inputs.insert(request.key, answer);
                }
                Err(e) => return flow.input_failed(format!("{method} failed: {e}")),
            }
        }
        state = next_state;
    }
    flow.input_failed(format!(
        "the client's answers did not complete {} after {MAX_LEGACY_ROUNDS} rounds",
        flow.target()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{error_result, text_result};

    /// Asks for a name, then a color (with state), then completes.
    struct TwoRounds;

    impl Flow for TwoRounds {
        fn target(&self) -> &str {
            "two_rounds"
        }
        fn method(&self) -> &'static str {
            "tools/call"
        }
        fn step(&self, round: &Round<'_>) -> Result<Step, ServerError> {
            let name = round.state.and_then(|s| s.get("name")).and_then(Value::as_str).map(str::to_owned);
            match name {
                None => match round.inputs.elicited("name", self.method())? {
                    Some(e) => Ok(Step::NeedInput {
                        requests: vec![InputRequest::sample("color", "favourite color?", 10)],
                        state: Some(json!({ "name": e.string("name").unwrap_or("?") })),
                    }),
                    None => Ok(Step::NeedInput {
                        requests: vec![InputRequest::elicit("name", "Name?", one_field_schema("name", "string"))],
                        state: None,
                    }),
                },
                Some(name) => match round.inputs.sampled_text("color", self.method())? {
                    Some(color) => Ok(Step::Complete(text_result(&format!("{name} likes {color}"))?)),
                    None => Err(ServerError::invalid_params(self.method(), "color missing")),
                },
            }
        }
        fn input_failed(&self, reason: String) -> Result<Box<RawValue>, ServerError> {
            error_result(&reason)
        }
    }

    fn caps(v: Value) -> ClientCaps {
        ClientCaps::Declared(v.as_object().cloned().unwrap())
    }

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn run(params: Value, c: &ClientCaps, s: &StateSigner) -> Result<Value, ServerError> {
        run_modern(&TwoRounds, &object(params), c, s).map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn modern_rounds_carry_sealed_state() {
        let s = StateSigner::random();
        let all = caps(json!({ "elicitation": {}, "sampling": {} }));
        let r1 = run(json!({ "name": "two_rounds" }), &all, &s).unwrap();
        assert_eq!(r1["resultType"], "input_required");
        assert_eq!(r1["inputRequests"]["name"]["method"], "elicitation/create");
        assert_eq!(r1["inputRequests"]["name"]["params"]["message"], "Name?");
        assert!(r1.get("requestState").is_none(), "{r1}");
        let r2 = run(
            json!({ "inputResponses": { "name": { "action": "accept", "content": { "name": "Ada" } } } }),
            &all,
            &s,
        )
        .unwrap();
        assert_eq!(r2["inputRequests"]["color"]["method"], "sampling/createMessage");
        assert_eq!(r2["inputRequests"]["color"]["params"]["maxTokens"], 10);
        let state = r2["requestState"].as_str().unwrap().to_owned();
        let answer = json!({ "role": "assistant", "model": "m", "content": { "type": "text", "text": "blue" } });
        let r3 = run(json!({ "inputResponses": { "color": answer }, "requestState": state }), &all, &s).unwrap();
        assert_eq!(r3, json!({ "content": [{ "type": "text", "text": "Ada likes blue" }] }));
    }

    #[test]
    fn modern_refuses_undeclared_input_kinds() {
        let s = StateSigner::random();
        let err = run(json!({}), &caps(json!({ "sampling": {} })), &s).unwrap_err();
        assert!(matches!(err, ServerError::MissingCapability { capability: "elicitation", .. }), "{err:?}");
    }

    #[test]
    fn modern_refuses_malformed_input_responses_and_state() {
        let s = StateSigner::random();
        let all = caps(json!({ "elicitation": {}, "sampling": {} }));
        for bad in [
            json!({ "inputResponses": null }),
            json!({ "inputResponses": [1] }),
            json!({ "inputResponses": { "name": 12345 } }),
            json!({ "inputResponses": { "name": { "action": "maybe" } } }),
            json!({ "inputResponses": { "name": { "action": "accept", "content": "x" } } }),
            json!({ "requestState": 7 }),
            json!({ "requestState": "forged.state" }),
        ] {
            let err = run(bad.clone(), &all, &s).unwrap_err();
            assert_eq!(err.to_error_object(true).code, -32602, "{bad}: {err}");
        }
    }

    #[test]
    fn answers_are_validated_by_kind() {
        let inputs = Inputs::from_params(
            &object(json!({ "inputResponses": {
                "s1": { "role": "assistant", "model": "m", "content": [{ "type": "text", "text": "hi" }] },
                "s2": { "role": "assistant", "content": { "type": "text", "text": "hi" } },
                "r1": { "roots": [{ "uri": "file:///a" }, { "uri": "file:///b", "name": "b" }] },
                "r2": { "roots": [{ "name": "no uri" }] },
                "e1": { "action": "decline" }
            }})),
            "tools/call",
        )
        .unwrap();
        assert_eq!(inputs.sampled_text("s1", "tools/call").unwrap().as_deref(), Some("hi"));
        assert!(inputs.sampled_text("s2", "tools/call").is_err());
        assert_eq!(inputs.sampled_text("absent", "tools/call").unwrap(), None);
        assert_eq!(inputs.root_count("r1", "tools/call").unwrap(), Some(2));
        assert!(inputs.root_count("r2", "tools/call").is_err());
        let declined = inputs.elicited("e1", "tools/call").unwrap().unwrap();
        assert_eq!(declined.action, ElicitAction::Decline);
        assert_eq!(declined.string("x"), None);
        assert_eq!(declined.summary(), "action=decline, content={}");
        assert_eq!(inputs.keys().count(), 5);
    }

    #[test]
    fn input_requests_have_the_spec_shapes() {
        assert_eq!(InputRequest::roots("r").params, json!({}));
        let s = InputRequest::sample("s", "Hi", 100);
        assert_eq!(s.params["messages"][0], json!({ "role": "user", "content": { "type": "text", "text": "Hi" } }));
        let e = InputRequest::elicit("e", "Name?", one_field_schema("name", "string"));
        assert_eq!(
            e.params,
            json!({ "message": "Name?", "requestedSchema": {
                "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] } })
        );
    }
}
