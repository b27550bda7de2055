//! The tools that need client input (sampling, elicitation, roots), written once as
//! [`Flow`]s: a 2025 client is asked with server→client requests, a 2026-07-28 client with
//! `InputRequiredResult`s (see [`crate::input`]).

use mcp_transport_core::RawValue;
use serde_json::{Value, json};

use crate::content::{error_result, text_result};
use crate::error::ServerError;
use crate::input::{Flow, InputRequest, Round, Step, one_field_schema};

const METHOD: &str = "tools/call";

/// The names of the tools in this module, in listing order.
pub(crate) const NAMES: &[&str] = &[
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
];

fn no_args() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn string_arg(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name]
    })
}

/// The `tools/list` entries of the tools in this module.
pub(crate) fn list() -> Vec<Value> {
    let tool = |name: &str, description: &str, schema: Value| json!({ "name": name, "description": description, "inputSchema": schema });
    vec![
        tool(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            string_arg("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            string_arg("message", "The message to show the user"),
        ),
        tool("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034", no_args()),
        tool(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            no_args(),
        ),
        tool("test_missing_capability", "Test tool requiring sampling (refused without the capability)", no_args()),
        tool("test_streaming_elicitation", "Diagnostic tool: asks for a confirmation by elicitation", no_args()),
        tool(
            "test_input_required_result_elicitation",
            "MRTR: returns InputRequiredResult with elicitation request",
            no_args(),
        ),
        tool(
            "test_input_required_result_sampling",
            "MRTR: returns InputRequiredResult with sampling request",
            no_args(),
        ),
        tool(
            "test_input_required_result_list_roots",
            "MRTR: returns InputRequiredResult with roots/list request",
            no_args(),
        ),
        tool(
            "test_input_required_result_request_state",
            "MRTR: returns InputRequiredResult with requestState",
            no_args(),
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "MRTR: returns InputRequiredResult with multiple input requests",
            no_args(),
        ),
        tool("test_input_required_result_multi_round", "MRTR: multi-round InputRequiredResult workflow", no_args()),
        tool("test_input_required_result_tampered_state", "MRTR: HMAC-signed requestState integrity test", no_args()),
        tool(
            "test_input_required_result_capabilities",
            "MRTR: respects client capabilities in inputRequests",
            no_args(),
        ),
    ]
}

/// A tool that needs input: its name, its string argument (for the two tools that take
/// one), and its step function.
struct ToolFlow {
    name: &'static str,
    arg: String,
    step: fn(&ToolFlow, &Round<'_>) -> Result<Step, ServerError>,
}

impl Flow for ToolFlow {
    fn target(&self) -> &str {
        self.name
    }

    fn method(&self) -> &'static str {
        METHOD
    }

    fn step(&self, round: &Round<'_>) -> Result<Step, ServerError> {
        (self.step)(self, round)
    }

    fn input_failed(&self, reason: String) -> Result<Box<RawValue>, ServerError> {
        error_result(&format!("{} could not get input from the client: {reason}", self.name))
    }
}

/// The flow of the tool `name`: `None` if it is not in this module, `Some(Err(message))` if
/// its arguments are wrong (a tool execution error for the model to see).
pub(crate) fn flow(name: &str, args: Option<&RawValue>) -> Option<Result<Box<dyn Flow>, String>> {
    let &name = NAMES.iter().find(|n| **n == name)?;
    let arg_name = match name {
        "test_sampling" => "prompt",
        "test_elicitation" => "message",
        _ => "",
    };
    let arg = if arg_name.is_empty() {
        String::new()
    } else {
        let value: Option<Value> = args.and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        match value.as_ref().and_then(|v| v.get(arg_name)).and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => return Some(Err(format!("{name} needs the string argument {arg_name:?}"))),
        }
    };
    let step: fn(&ToolFlow, &Round<'_>) -> Result<Step, ServerError> = match name {
        "test_sampling" => sampling,
        "test_elicitation" => elicitation,
        "test_elicitation_sep1034_defaults" => sep1034_defaults,
        "test_elicitation_sep1330_enums" => sep1330_enums,
        "test_missing_capability" => missing_capability,
        "test_streaming_elicitation" => streaming_elicitation,
        "test_input_required_result_elicitation" => mrtr_elicitation,
        "test_input_required_result_sampling" => mrtr_sampling,
        "test_input_required_result_list_roots" => mrtr_list_roots,
        "test_input_required_result_request_state" => mrtr_request_state,
        "test_input_required_result_multiple_inputs" => mrtr_multiple_inputs,
        "test_input_required_result_multi_round" => mrtr_multi_round,
        "test_input_required_result_tampered_state" => mrtr_tampered_state,
        _ => mrtr_capabilities,
    };
    Some(Ok(Box::new(ToolFlow { name, arg, step })))
}

fn done(text: &str) -> Result<Step, ServerError> {
    Ok(Step::Complete(text_result(text)?))
}

fn ask(request: InputRequest) -> Result<Step, ServerError> {
    Ok(Step::NeedInput { requests: vec![request], state: None })
}

fn ask_with_state(requests: Vec<InputRequest>, state: Value) -> Result<Step, ServerError> {
    Ok(Step::NeedInput { requests, state: Some(state) })
}

fn state_str<'a>(round: &'a Round<'_>, field: &str) -> Option<&'a str> {
    round.state.and_then(|s| s.get(field)).and_then(Value::as_str)
}

fn sampling(f: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.sampled_text("llm", METHOD)? {
        Some(text) => done(&format!("LLM response: {text}")),
        None => ask(InputRequest::sample("llm", &f.arg, 100)),
    }
}

fn elicitation(f: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.elicited("user_input", METHOD)? {
        Some(answer) => done(&format!("User response: {}", answer.summary())),
        None => ask(InputRequest::elicit(
            "user_input",
            &f.arg,
            json!({
                "type": "object",
                "properties": {
                    "username": { "type": "string", "description": "User's response" },
                    "email": { "type": "string", "description": "User's email address" }
                },
                "required": ["username", "email"]
            }),
        )),
    }
}

/// The SEP-1034 form: a default for every primitive type.
pub(crate) fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        },
        "required": []
    })
}

/// The SEP-1330 form: the five enum variants.
pub(crate) fn sep1330_schema() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| -> Vec<Value> {
        titles.iter().enumerate().map(|(i, t)| json!({ "const": format!("{prefix}{}", i + 1), "title": t })).collect()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": { "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"]) }
            }
        },
        "required": []
    })
}

fn form(round: &Round<'_>, message: &str, schema: fn() -> Value) -> Result<Step, ServerError> {
    match round.inputs.elicited("form", METHOD)? {
        Some(answer) => done(&format!("Elicitation completed: {}", answer.summary())),
        None => ask(InputRequest::elicit("form", message, schema())),
    }
}

fn sep1034_defaults(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    form(round, "Please review and update the form fields with defaults", sep1034_schema)
}

fn sep1330_enums(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    form(round, "Please select options from the enum fields", sep1330_schema)
}

fn missing_capability(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.sampled_text("probe", METHOD)? {
        Some(text) => done(&format!("Success: the client sampled {text:?}")),
        None => ask(InputRequest::sample("probe", "Reply with the single word OK.", 10)),
    }
}

fn streaming_elicitation(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.elicited("confirm", METHOD)? {
        Some(answer) => done(&format!("Streaming complete: {}", answer.summary())),
        None => ask(InputRequest::elicit("confirm", "Continue?", one_field_schema("ok", "boolean"))),
    }
}

fn mrtr_elicitation(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.elicited("user_name", METHOD)? {
        Some(answer) => match answer.string("name") {
            Some(name) => done(&format!("Hello, {name}!")),
            None => done(&format!("Hello, stranger! (you chose to {})", answer.action.as_str())),
        },
        None => ask(InputRequest::elicit("user_name", "What is your name?", one_field_schema("name", "string"))),
    }
}

fn mrtr_sampling(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.sampled_text("capital_question", METHOD)? {
        Some(text) => done(&format!("Sampling result: {text}")),
        None => ask(InputRequest::sample("capital_question", "What is the capital of France?", 100)),
    }
}

fn mrtr_list_roots(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    match round.inputs.root_count("client_roots", METHOD)? {
        Some(n) => done(&format!("Found {n} root(s)")),
        None => ask(InputRequest::roots("client_roots")),
    }
}

fn confirm() -> InputRequest {
    InputRequest::elicit("confirm", "Please confirm", one_field_schema("ok", "boolean"))
}

/// Completes only when the answer comes back with the state this tool issued (`kind`).
fn confirmed_with_state(round: &Round<'_>, kind: &str, ok_text: &str) -> Result<Step, ServerError> {
    let answer = round.inputs.elicited("confirm", METHOD)?;
    match (answer, state_str(round, "kind")) {
        (Some(answer), Some(k)) if k == kind => {
            let ok = answer.content.get("ok").and_then(Value::as_bool);
            done(&format!(
                "{ok_text} (action={}, ok={})",
                answer.action.as_str(),
                ok.map_or("none".into(), |b| b.to_string())
            ))
        }
        _ => ask_with_state(vec![confirm()], json!({ "kind": kind })),
    }
}

fn mrtr_request_state(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    confirmed_with_state(round, "request-state", "state-ok: requestState validated")
}

fn mrtr_tampered_state(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    confirmed_with_state(round, "tamper-test", "integrity-ok: state verified")
}

fn mrtr_multiple_inputs(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    let name = round.inputs.elicited("user_name", METHOD)?;
    let greeting = round.inputs.sampled_text("greeting", METHOD)?;
    let roots = round.inputs.root_count("client_roots", METHOD)?;
    match (name, greeting, roots, state_str(round, "kind")) {
        (Some(name), Some(greeting), Some(roots), Some("multiple-inputs")) => {
            done(&format!("Name: {}; Greeting: {greeting}; Roots: {roots}", name.string("name").unwrap_or("unknown")))
        }
        _ => ask_with_state(
            vec![
                InputRequest::elicit("user_name", "What is your name?", one_field_schema("name", "string")),
                InputRequest::sample("greeting", "Generate a greeting", 50),
                InputRequest::roots("client_roots"),
            ],
            json!({ "kind": "multiple-inputs" }),
        ),
    }
}

fn mrtr_multi_round(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    let step1 = || InputRequest::elicit("step1", "Step 1: What is your name?", one_field_schema("name", "string"));
    let step2 =
        || InputRequest::elicit("step2", "Step 2: What is your favorite color?", one_field_schema("color", "string"));
    let stage = round.state.and_then(|s| s.get("round")).and_then(Value::as_u64);
    match stage {
        Some(2) => {
            let name = state_str(round, "name").unwrap_or("friend").to_owned();
            match round.inputs.elicited("step2", METHOD)? {
                Some(answer) => done(&format!(
                    "Multi-round complete for {name} who likes {}",
                    answer.string("color").unwrap_or("nothing")
                )),
                None => ask_with_state(vec![step2()], json!({ "round": 2, "name": name })),
            }
        }
        Some(1) => match round.inputs.elicited("step1", METHOD)? {
            Some(answer) => {
                ask_with_state(vec![step2()], json!({ "round": 2, "name": answer.string("name").unwrap_or("friend") }))
            }
            None => ask_with_state(vec![step1()], json!({ "round": 1 })),
        },
        _ => ask_with_state(vec![step1()], json!({ "round": 1 })),
    }
}

fn mrtr_capabilities(_: &ToolFlow, round: &Round<'_>) -> Result<Step, ServerError> {
    let answered: Vec<&str> = round.inputs.keys().collect();
    if !answered.is_empty() {
        return done(&format!("capabilities-ok: received {}", answered.join(",")));
    }
    let candidates = [
        InputRequest::elicit("elicit_input", "Elicitation input", one_field_schema("value", "string")),
        InputRequest::sample("sample_input", "Sample request", 50),
        InputRequest::roots("roots_input"),
    ];
    let requests: Vec<InputRequest> = candidates.into_iter().filter(|r| round.caps.allows(r.kind)).collect();
    if requests.is_empty() {
        return done("No supported capabilities declared");
    }
    ask_with_state(requests, json!({ "kind": "capabilities-test" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::run_modern;
    use crate::meta::ClientCaps;
    use crate::state::StateSigner;
    use mcp_transport_core::message::to_raw;
    use serde_json::Map;

    fn all_caps() -> ClientCaps {
        ClientCaps::Declared(json!({ "elicitation": {}, "sampling": {}, "roots": {} }).as_object().cloned().unwrap())
    }

    fn call(name: &str, args: Value, params: Value, caps: &ClientCaps, s: &StateSigner) -> Result<Value, ServerError> {
        let raw = to_raw(&args).unwrap();
        let flow = flow(name, Some(&raw)).expect("interactive tool").expect("valid args");
        let params: Map<String, Value> = params.as_object().cloned().unwrap();
        run_modern(flow.as_ref(), &params, caps, s).map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    fn text(v: &Value) -> &str {
        v["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {v}"))
    }

    fn accept(content: Value) -> Value {
        json!({ "action": "accept", "content": content })
    }

    fn sampled(text: &str) -> Value {
        json!({ "role": "assistant", "model": "m", "stopReason": "endTurn", "content": { "type": "text", "text": text } })
    }

    #[test]
    fn every_listed_tool_has_a_flow_and_a_description() {
        let listed = list();
        assert_eq!(listed.len(), NAMES.len());
        for (entry, name) in listed.iter().zip(NAMES) {
            assert_eq!(entry["name"], *name);
            assert!(entry["description"].is_string() && entry["inputSchema"]["type"] == "object", "{entry}");
            let args = json!({ "prompt": "p", "message": "m" });
            assert!(flow(name, Some(&to_raw(&args).unwrap())).is_some_and(|f| f.is_ok()), "{name}");
        }
        assert!(flow("echo", None).is_none());
    }

    #[test]
    fn sampling_and_elicitation_need_their_argument() {
        assert!(flow("test_sampling", None).unwrap().is_err());
        assert!(flow("test_elicitation", Some(&to_raw(&json!({ "message": 3 })).unwrap())).unwrap().is_err());
    }

    #[test]
    fn sampling_round_trip() {
        let s = StateSigner::random();
        let r1 = call("test_sampling", json!({ "prompt": "Hi" }), json!({}), &all_caps(), &s).unwrap();
        let req = &r1["inputRequests"]["llm"];
        assert_eq!(req["method"], "sampling/createMessage");
        assert_eq!(req["params"]["messages"][0]["content"]["text"], "Hi");
        assert_eq!(req["params"]["maxTokens"], 100);
        let r2 = call(
            "test_sampling",
            json!({ "prompt": "Hi" }),
            json!({ "inputResponses": { "llm": sampled("yo") } }),
            &all_caps(),
            &s,
        )
        .unwrap();
        assert_eq!(text(&r2), "LLM response: yo");
    }

    #[test]
    fn elicitation_forms_have_the_suite_schemas() {
        let s = StateSigner::random();
        let r = call("test_elicitation", json!({ "message": "Who?" }), json!({}), &all_caps(), &s).unwrap();
        let p = &r["inputRequests"]["user_input"]["params"];
        assert_eq!(p["message"], "Who?");
        assert_eq!(p["requestedSchema"]["required"], json!(["username", "email"]));
        let d = call("test_elicitation_sep1034_defaults", json!({}), json!({}), &all_caps(), &s).unwrap();
        let props = &d["inputRequests"]["form"]["params"]["requestedSchema"]["properties"];
        assert_eq!(
            (&props["name"]["default"], &props["age"]["default"], &props["score"]["default"]),
            (&json!("John Doe"), &json!(30), &json!(95.5))
        );
        assert_eq!((&props["status"]["default"], &props["verified"]["default"]), (&json!("active"), &json!(true)));
        let e = call("test_elicitation_sep1330_enums", json!({}), json!({}), &all_caps(), &s).unwrap();
        let props = &e["inputRequests"]["form"]["params"]["requestedSchema"]["properties"];
        assert_eq!(props["titledSingle"]["oneOf"][1], json!({ "const": "value2", "title": "Second Option" }));
        assert_eq!(props["legacyEnum"]["enumNames"][2], "Option Three");
        assert_eq!(props["titledMulti"]["items"]["anyOf"][0], json!({ "const": "value1", "title": "First Choice" }));
        assert!(props["untitledSingle"].get("oneOf").is_none() && props["titledSingle"].get("enum").is_none());
        let done = call(
            "test_elicitation_sep1034_defaults",
            json!({}),
            json!({ "inputResponses": { "form": accept(json!({ "name": "Jane" })) } }),
            &all_caps(),
            &s,
        )
        .unwrap();
        assert_eq!(text(&done), r#"Elicitation completed: action=accept, content={"name":"Jane"}"#);
    }

    #[test]
    fn mrtr_basic_tools_complete_after_one_round() {
        let s = StateSigner::random();
        let c = all_caps();
        let r = call("test_input_required_result_elicitation", json!({}), json!({}), &c, &s).unwrap();
        assert_eq!(r["inputRequests"]["user_name"]["method"], "elicitation/create");
        let name = json!({ "inputResponses": { "user_name": accept(json!({ "name": "Alice" })), "extra": {} } });
        assert_eq!(
            text(&call("test_input_required_result_elicitation", json!({}), name, &c, &s).unwrap()),
            "Hello, Alice!"
        );
        let wrong = json!({ "inputResponses": { "wrong_key": accept(json!({})) } });
        let again = call("test_input_required_result_elicitation", json!({}), wrong, &c, &s).unwrap();
        assert_eq!(again["resultType"], "input_required");
        let cap = json!({ "inputResponses": { "capital_question": sampled("Paris") } });
        assert_eq!(
            text(&call("test_input_required_result_sampling", json!({}), cap, &c, &s).unwrap()),
            "Sampling result: Paris"
        );
        let roots = json!({ "inputResponses": { "client_roots": { "roots": [{ "uri": "file:///r", "name": "R" }] } } });
        assert_eq!(
            text(&call("test_input_required_result_list_roots", json!({}), roots, &c, &s).unwrap()),
            "Found 1 root(s)"
        );
        let r = call("test_input_required_result_list_roots", json!({}), json!({}), &c, &s).unwrap();
        assert_eq!(r["inputRequests"]["client_roots"], json!({ "method": "roots/list", "params": {} }));
    }

    #[test]
    fn request_state_is_required_and_verified() {
        let s = StateSigner::random();
        let c = all_caps();
        let r1 = call("test_input_required_result_request_state", json!({}), json!({}), &c, &s).unwrap();
        let state = r1["requestState"].as_str().unwrap();
        let ok = json!({ "inputResponses": { "confirm": accept(json!({ "ok": true })) }, "requestState": state });
        let r2 = call("test_input_required_result_request_state", json!({}), ok, &c, &s).unwrap();
        assert!(text(&r2).starts_with("state-ok"), "{r2}");
        let stateless = json!({ "inputResponses": { "confirm": accept(json!({ "ok": true })) } });
        let again = call("test_input_required_result_request_state", json!({}), stateless, &c, &s).unwrap();
        assert_eq!(again["resultType"], "input_required");
        let t1 = call("test_input_required_result_tampered_state", json!({}), json!({}), &c, &s).unwrap();
        let tampered = format!("{}-TAMPERED", t1["requestState"].as_str().unwrap());
        let bad = json!({ "inputResponses": { "confirm": accept(json!({ "ok": true })) }, "requestState": tampered });
        let err = call("test_input_required_result_tampered_state", json!({}), bad, &c, &s).unwrap_err();
        assert_eq!(err.to_error_object(true).code, -32602);
        // A state issued by another tool is refused too.
        let other = json!({ "inputResponses": { "confirm": accept(json!({ "ok": true })) }, "requestState": state });
        assert!(call("test_input_required_result_tampered_state", json!({}), other, &c, &s).is_err());
    }

    #[test]
    fn multiple_inputs_and_multi_round() {
        let s = StateSigner::random();
        let c = all_caps();
        let r1 = call("test_input_required_result_multiple_inputs", json!({}), json!({}), &c, &s).unwrap();
        let methods: Vec<&str> =
            r1["inputRequests"].as_object().unwrap().values().map(|r| r["method"].as_str().unwrap()).collect();
        assert_eq!(methods.len(), 3);
        for m in ["elicitation/create", "sampling/createMessage", "roots/list"] {
            assert!(methods.contains(&m), "{methods:?}");
        }
        let all = json!({
            "inputResponses": {
                "user_name": accept(json!({ "name": "Bo" })),
                "greeting": sampled("Hey"),
                "client_roots": { "roots": [] }
            },
            "requestState": r1["requestState"]
        });
        let r2 = call("test_input_required_result_multiple_inputs", json!({}), all, &c, &s).unwrap();
        assert_eq!(text(&r2), "Name: Bo; Greeting: Hey; Roots: 0");

        let m1 = call("test_input_required_result_multi_round", json!({}), json!({}), &c, &s).unwrap();
        let p2 = json!({ "inputResponses": { "step1": accept(json!({ "name": "Alice" })) }, "requestState": m1["requestState"] });
        let m2 = call("test_input_required_result_multi_round", json!({}), p2, &c, &s).unwrap();
        assert!(m2["inputRequests"]["step2"].is_object(), "{m2}");
        assert_ne!(m2["requestState"], m1["requestState"]);
        let p3 = json!({ "inputResponses": { "step2": accept(json!({ "color": "blue" })) }, "requestState": m2["requestState"] });
        let m3 = call("test_input_required_result_multi_round", json!({}), p3, &c, &s).unwrap();
        assert_eq!(text(&m3), "Multi-round complete for Alice who likes blue");
    }

    #[test]
    fn capabilities_decide_what_is_asked() {
        let s = StateSigner::random();
        let sampling_only = ClientCaps::Declared(json!({ "sampling": {} }).as_object().cloned().unwrap());
        let r = call("test_input_required_result_capabilities", json!({}), json!({}), &sampling_only, &s).unwrap();
        let keys: Vec<&String> = r["inputRequests"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["sample_input"]);
        let none = ClientCaps::Declared(Map::new());
        let n = call("test_input_required_result_capabilities", json!({}), json!({}), &none, &s).unwrap();
        assert_eq!(text(&n), "No supported capabilities declared");
        let answered = json!({ "inputResponses": { "sample_input": sampled("x") } });
        let done = call("test_input_required_result_capabilities", json!({}), answered, &sampling_only, &s).unwrap();
        assert_eq!(text(&done), "capabilities-ok: received sample_input");
        let err = call("test_missing_capability", json!({}), json!({}), &none, &s).unwrap_err();
        assert_eq!(err.to_error_object(true).code, -32021);
    }
}
