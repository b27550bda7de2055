//! The messages every case exchanges: the same `tools/call` requests and responses for our
//! transports, the peers and the raw floors.

use mcp_transport_core::message::{RawValue, to_raw};
use mcp_transport_core::{Id, Message, Request};
use serde_json::json;

/// The size class of one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Size {
    /// A `tools/call` of the `echo` tool with 900 characters: about 1 KB each way.
    #[serde(rename = "1KB")]
    K1,
    /// A `tools/call` of the `payload` tool: a small request answered by about 32 KB.
    #[serde(rename = "32KB")]
    K32,
    /// The same answered by about 1 MB.
    #[serde(rename = "1MB")]
    M1,
}

impl Size {
    /// The label used in tables ("1KB", "32KB", "1MB").
    pub fn label(self) -> &'static str {
        match self {
            Size::K1 => "1KB",
            Size::K32 => "32KB",
            Size::M1 => "1MB",
        }
    }

    /// Parses a label as printed by [`Size::label`] (case-insensitive).
    pub fn parse(s: &str) -> Option<Size> {
        [Size::K1, Size::K32, Size::M1].into_iter().find(|size| size.label().eq_ignore_ascii_case(s))
    }
}

/// Characters of text in a 1 KB echo.
const ECHO_CHARS: usize = 900;

/// One round trip's messages, as our session layer puts them on the wire.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The size class.
    pub size: Size,
    /// The tool name called.
    pub tool: &'static str,
    /// The `tools/call` params.
    pub params: Box<RawValue>,
    /// The tool arguments alone.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// The request with id 1, serialized (no trailing newline).
    pub request: Vec<u8>,
    /// The response the reference server sends to it (no trailing newline).
    pub response: Vec<u8>,
    /// The length of the text the result carries.
    pub text_len: usize,
}

impl Exchange {
    /// Builds the exchange of a size class.
    pub fn new(size: Size) -> Exchange {
        let (tool, arguments, text_len) = match size {
            Size::K1 => ("echo", json!({ "text": "x".repeat(ECHO_CHARS) }), ECHO_CHARS),
            Size::K32 => ("payload", json!({ "bytes": 32_000 }), 32_000),
            Size::M1 => ("payload", json!({ "bytes": 1_000_000 }), 1_000_000),
        };
        let params = to_raw(&json!({ "name": tool, "arguments": arguments })).expect("static JSON");
        let request =
            Message::Request(Request { id: Id::Number(1), method: "tools/call".into(), params: Some(params.clone()) })
                .to_vec();
        let response = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}",
            "x".repeat(text_len)
        )
        .into_bytes();
        let serde_json::Value::Object(arguments) = arguments else { unreachable!("arguments are objects") };
        Exchange { size, tool, params, arguments, request, response, text_len }
    }

    /// Bytes on the wire for one round trip (request plus response, without framing).
    pub fn bytes_per_round_trip(&self) -> usize {
        self.request.len() + self.response.len()
    }

    /// Whether a `tools/call` result is the one this exchange expects (one text item of the
    /// right length), so that no case measures an error path by mistake.
    pub fn check_result(&self, result: &serde_json::Value) -> Result<(), String> {
        let text = result.pointer("/content/0/text").and_then(serde_json::Value::as_str);
        match text {
            Some(t) if t.len() == self.text_len && result.get("isError") != Some(&json!(true)) => Ok(()),
            _ => Err(format!(
                "{} returned an unexpected result: {:.200}",
                self.tool,
                serde_json::to_string(result).unwrap_or_default()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_what_they_say() {
        let k1 = Exchange::new(Size::K1);
        assert!((900..1200).contains(&k1.request.len()), "{}", k1.request.len());
        assert!((900..1200).contains(&k1.response.len()), "{}", k1.response.len());
        let k32 = Exchange::new(Size::K32);
        assert!(k32.request.len() < 200 && (32_000..33_000).contains(&k32.response.len()));
        let response: serde_json::Value = serde_json::from_slice(&k32.response).unwrap();
        k32.check_result(&response["result"]).unwrap();
        assert!(k1.check_result(&response["result"]).is_err());
        assert_eq!(Size::parse("32kb"), Some(Size::K32));
        assert_eq!(Size::parse("2KB"), None);
    }
}
