//! Envelope parsing: bytes to [`Message`], with every failure mapped to a JSON-RPC error.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::id::{IdField, present_id};
use super::{ErrorObject, Id, Message, Notification, Request, Response, codes};

/// What one frame of input held.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// One well-formed message.
    Message(Message),
    /// A JSON-RPC batch array (only MCP 2025-03-26 allows these; the session decides).
    Batch(Vec<Result<Message, InvalidMessage>>),
    /// A frame that is not a valid message; answer it with [`InvalidMessage::to_response`].
    Invalid(InvalidMessage),
}

/// A frame that could not be accepted as a message, with the reason and the JSON-RPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (JSON-RPC {code})")]
pub struct InvalidMessage {
    /// -32700 (not JSON) or -32600 (not a valid JSON-RPC message).
    pub code: i64,
    /// The id, when it could be read; the error response echoes it.
    pub id: Option<Id>,
    /// What was wrong and where (line and column for JSON errors).
    pub reason: String,
}

impl InvalidMessage {
    pub(crate) fn parse(reason: impl Into<String>) -> Self {
        Self { code: codes::PARSE_ERROR, id: None, reason: reason.into() }
    }

    pub(crate) fn invalid(id: Option<Id>, reason: impl Into<String>) -> Self {
        Self { code: codes::INVALID_REQUEST, id, reason: reason.into() }
    }

    /// The error response that answers this frame.
    pub fn to_response(&self) -> Response {
        let error = if self.code == codes::PARSE_ERROR {
            ErrorObject::parse_error(&self.reason)
        } else {
            ErrorObject::new(self.code, format!("Invalid request: {}", self.reason))
        };
        Response::error(self.id.clone(), error)
    }
}

impl Incoming {
    /// Parses one frame: a message object, or a batch array of them.
    pub fn parse(bytes: &[u8]) -> Incoming {
        match first_non_ws(bytes) {
            Some(b'[') => parse_batch(bytes),
            _ => match parse_object(bytes) {
                Ok(m) => Incoming::Message(m),
                Err(e) => Incoming::Invalid(e),
            },
        }
    }
}

fn first_non_ws(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn parse_batch(bytes: &[u8]) -> Incoming {
    let items: Vec<&RawValue> = match serde_json::from_slice(bytes) {
        Ok(items) => items,
        Err(e) => return Incoming::Invalid(InvalidMessage::parse(e.to_string())),
    };
    if items.is_empty() {
        return Incoming::Invalid(InvalidMessage::invalid(None, "empty batch array"));
    }
    Incoming::Batch(items.into_iter().map(|raw| parse_object(raw.get().as_bytes())).collect())
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present_id")]
    id: Option<IdField>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdProbe {
    #[serde(default, deserialize_with = "present_id")]
    id: Option<IdField>,
}

fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses one JSON object as a message.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Message, InvalidMessage> {
    let env: Envelope<'_> = match serde_json::from_slice(bytes) {
        Ok(env) => env,
        Err(e) if e.is_data() => {
            // Well-formed JSON of the wrong shape: answer with the id if it can be read.
            let id = serde_json::from_slice::<IdProbe>(bytes).ok().and_then(|p| match p.id {
                Some(IdField::Valid(id)) => Some(id),
                _ => None,
            });
            return Err(InvalidMessage::invalid(id, format!("not a JSON-RPC message object: {e}")));
        }
        Err(e) => return Err(InvalidMessage::parse(e.to_string())),
    };
    let id = match env.id {
        None => None,
        Some(IdField::Valid(id)) => Some(Ok(id)),
        Some(IdField::Null) => Some(Err("a null id")),
        Some(IdField::Invalid(what)) => Some(Err(what)),
    };
    let valid_id = id.as_ref().and_then(|r| r.as_ref().ok()).cloned();
    if env.jsonrpc.as_deref() != Some("2.0") {
        let reason = match env.jsonrpc {
            None => "missing \"jsonrpc\": \"2.0\"".to_owned(),
            Some(v) => format!("\"jsonrpc\" must be \"2.0\", not {v:?}"),
        };
        return Err(InvalidMessage::invalid(valid_id, reason));
    }
    if let Some(params) = env.params
        && !matches!(first_non_ws(params.get().as_bytes()), Some(b'{' | b'['))
    {
        return Err(InvalidMessage::invalid(valid_id, "\"params\" must be an object or array"));
    }
    match env.method {
        Some(method) => {
            if env.result.is_some() || env.error.is_some() {
                return Err(InvalidMessage::invalid(
                    valid_id,
                    "a message cannot carry both \"method\" and \"result\"/\"error\"",
                ));
            }
            let params = env.params.map(RawValue::to_owned);
            match id {
                None => Ok(Message::Notification(Notification { method: method.into_owned(), params })),
                Some(Ok(id)) => Ok(Message::Request(Request { id, method: method.into_owned(), params })),
                Some(Err(what)) => {
                    Err(InvalidMessage::invalid(None, format!("request ids must be strings or integers, got {what}")))
                }
            }
        }
        None => {
            let outcome = match (env.result, env.error) {
                (Some(result), None) => Ok(result.to_owned()),
                (None, Some(error)) => Err(serde_json::from_str::<ErrorObject>(error.get()).map_err(|e| {
                    InvalidMessage::invalid(valid_id.clone(), format!("malformed \"error\" member: {e}"))
                })?),
                (Some(_), Some(_)) => {
                    return Err(InvalidMessage::invalid(
                        valid_id,
                        "a response cannot carry both \"result\" and \"error\"",
                    ));
                }
                (None, None) => {
                    return Err(InvalidMessage::invalid(
                        valid_id,
                        "missing \"method\" (request or notification) or \"result\"/\"error\" (response)",
                    ));
                }
            };
            let id = match id {
                Some(Ok(id)) => Some(id),
                // JSON-RPC allows a null id only on an error about an unreadable request.
                Some(Err("a null id")) if outcome.is_err() => None,
                Some(Err(what)) => {
                    return Err(InvalidMessage::invalid(
                        None,
                        format!("response ids must be strings or integers, got {what}"),
                    ));
                }
                None => return Err(InvalidMessage::invalid(None, "a response needs an \"id\"")),
            };
            Ok(Message::Response(Response { id, outcome }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(json: &str) -> InvalidMessage {
        match Incoming::parse(json.as_bytes()) {
            Incoming::Invalid(e) => e,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    fn message(json: &str) -> Message {
        match Incoming::parse(json.as_bytes()) {
            Incoming::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn request_keeps_params_raw() {
        let m = message(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x", "arguments":{}}}"#);
        let Message::Request(r) = m else { panic!() };
        assert_eq!(r.id, Id::from("a"));
        assert_eq!(r.method, "tools/call");
        assert_eq!(r.params.unwrap().get(), r#"{"name":"x", "arguments":{}}"#);
    }

    #[test]
    fn notification_and_responses() {
        assert!(matches!(message(r#"{"jsonrpc":"2.0","method":"n"}"#), Message::Notification(_)));
        let Message::Response(r) = message(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#) else { panic!() };
        assert_eq!(r.id, Some(Id::Number(3)));
        let Message::Response(r) = message(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#)
        else {
            panic!()
        };
        assert_eq!(r.id, None);
        assert_eq!(r.outcome.unwrap_err().code, -32700);
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_position() {
        let e = invalid("{\"jsonrpc\":\"2.0\",");
        assert_eq!(e.code, codes::PARSE_ERROR);
        assert!(e.reason.contains("line 1"), "{}", e.reason);
        assert_eq!(invalid("not json").code, codes::PARSE_ERROR);
        assert_eq!(invalid("\u{0}").code, codes::PARSE_ERROR);
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let e = match Incoming::parse(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}") {
            Incoming::Invalid(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.code, codes::PARSE_ERROR);
    }

    #[test]
    fn wrong_version_null_id_and_missing_method_are_invalid_requests() {
        let e = invalid(r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#);
        assert_eq!((e.code, e.id), (codes::INVALID_REQUEST, Some(Id::Number(5))));
        let e = invalid(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!((e.code, e.id), (codes::INVALID_REQUEST, None));
        let e = invalid(r#"{"jsonrpc":"2.0","id":"q"}"#);
        assert_eq!((e.code, e.id), (codes::INVALID_REQUEST, Some(Id::from("q"))));
        assert_eq!(invalid(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).code, codes::INVALID_REQUEST);
        assert_eq!(invalid(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#).code, codes::INVALID_REQUEST);
        assert_eq!(invalid(r#"{"jsonrpc":"2.0","id":1,"method":7}"#).id, Some(Id::Number(1)));
        assert_eq!(invalid("[]").code, codes::INVALID_REQUEST);
        assert_eq!(invalid("42").code, codes::INVALID_REQUEST);
    }

    #[test]
    fn deep_nesting_never_overflows() {
        // The envelope itself nests too deep: refused.
        let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(matches!(Incoming::parse(deep.as_bytes()), Incoming::Invalid(_)));
        // Deep params are skipped, not recursed into, while the envelope is read; reading
        // them hits the parser's depth limit and becomes -32602.
        let obj = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{}1{}}}",
            "{\"a\":".repeat(100_000),
            "}".repeat(100_000)
        );
        let Message::Request(r) = message(&obj) else { panic!() };
        let err = r.params_as::<serde_json::Value>().unwrap_err();
        assert_eq!(err.code, codes::INVALID_PARAMS);
        // A deep batch member is an invalid member.
        let arr = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let Incoming::Batch(items) = Incoming::parse(arr.as_bytes()) else { panic!() };
        assert!(items[0].is_err());
    }

    #[test]
    fn batches_parse_each_member() {
        let Incoming::Batch(items) = Incoming::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 5]"#) else {
            panic!()
        };
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().unwrap_err().code, codes::INVALID_REQUEST);
    }

    #[test]
    fn round_trips_through_serialize() {
        let src = r#"{"jsonrpc":"2.0","id":"x","method":"m","params":{"k":[1,2]}}"#;
        assert_eq!(String::from_utf8(message(src).to_vec()).unwrap(), src);
        let src = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#;
        assert_eq!(String::from_utf8(message(src).to_vec()).unwrap(), src);
    }
}
