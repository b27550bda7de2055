//! The JSON-RPC 2.0 message model as MCP uses it.
//!
//! Only the envelope is parsed eagerly: `jsonrpc`, `id`, `method`, and whether the object is a
//! request, a notification or a response. `params` and `result` stay as raw JSON text
//! ([`RawValue`]) until someone asks for them, so a message can be routed or forwarded without
//! re-encoding its payload.

mod error_object;
mod id;
mod parse;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
pub use serde_json::value::RawValue;

pub use error_object::{ErrorObject, codes};
pub use id::Id;
pub use parse::{Incoming, InvalidMessage};

/// A request: expects exactly one response with the same id.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id, echoed by the response.
    pub id: Id,
    /// The method name, such as `tools/call`.
    pub method: String,
    /// The raw `params` member, if present.
    pub params: Option<Box<RawValue>>,
}

/// A notification: a request without an id, never answered.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The method name, such as `notifications/progress`.
    pub method: String,
    /// The raw `params` member, if present.
    pub params: Option<Box<RawValue>>,
}

/// A response to a request: a result or an error.
#[derive(Debug, Clone)]
pub struct Response {
    /// The id of the request answered. `None` (a JSON `null`) only for an error about a
    /// message whose id could not be read.
    pub id: Option<Id>,
    /// The raw `result` member, or the `error` member.
    pub outcome: Result<Box<RawValue>, ErrorObject>,
}

/// One JSON-RPC message.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response (result or error).
    Response(Response),
}

/// Serializes `value` to a raw JSON value.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(value)
}

fn decode_params<T: DeserializeOwned>(params: Option<&RawValue>) -> Result<T, ErrorObject> {
    let text = params.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|e| ErrorObject::invalid_params(format!("params: {e}")))
}

impl Request {
    /// A request whose params are serialized from `params`.
    pub fn new<P: Serialize + ?Sized>(
        id: impl Into<Id>,
        method: impl Into<String>,
        params: &P,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self { id: id.into(), method: method.into(), params: Some(to_raw(params)?) })
    }

    /// Deserializes the params (an absent member reads as `null`); failures are -32602 errors.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        decode_params(self.params.as_deref())
    }
}

impl Notification {
    /// A notification whose params are serialized from `params`.
    pub fn new<P: Serialize + ?Sized>(method: impl Into<String>, params: &P) -> Result<Self, serde_json::Error> {
        Ok(Self { method: method.into(), params: Some(to_raw(params)?) })
    }

    /// Deserializes the params (an absent member reads as `null`); failures are -32602 errors.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        decode_params(self.params.as_deref())
    }
}

impl Response {
    /// A successful response.
    pub fn success(id: Id, result: Box<RawValue>) -> Self {
        Self { id: Some(id), outcome: Ok(result) }
    }

    /// An error response.
    pub fn error(id: Option<Id>, error: ErrorObject) -> Self {
        Self { id, outcome: Err(error) }
    }

    /// Deserializes the result; an error response is returned as the error object.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        match &self.outcome {
            Ok(raw) => serde_json::from_str(raw.get()).map_err(|e| ErrorObject::internal(format!("result: {e}"))),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Message {
    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Message::Request(r) => Some(&r.id),
            Message::Response(r) => r.id.as_ref(),
            Message::Notification(_) => None,
        }
    }

    /// An estimate of the encoded size in bytes, for sizing buffers.
    pub fn size_hint(&self) -> usize {
        let raw = |r: &Option<Box<RawValue>>| r.as_ref().map_or(0, |r| r.get().len());
        64 + match self {
            Message::Request(r) => r.method.len() + raw(&r.params),
            Message::Notification(n) => n.method.len() + raw(&n.params),
            Message::Response(r) => match &r.outcome {
                Ok(v) => v.get().len(),
                Err(e) => e.message.len() + e.data.as_ref().map_or(0, |d| d.get().len()),
            },
        }
    }

    /// Parses one message. Batch arrays are refused here; see [`Incoming::parse`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        parse::parse_object(bytes)
    }

    /// Serializes the message as compact JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing a message with raw values into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Notification> for Message {
    fn from(n: Notification) -> Self {
        Message::Notification(n)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Message::Request(r) => {
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                map.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Ok(result) => map.serialize_entry("result", result)?,
                    Err(error) => map.serialize_entry("error", error)?,
                }
            }
        }
        map.end()
    }
}
