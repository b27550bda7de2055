//! Content blocks and the `CallToolResult` shape, serialized without building JSON trees.

use mcp_transport_core::message::{RawValue, to_raw};
use serde::Serialize;

use crate::error::ServerError;

/// A 1x1 red PNG, base64-encoded (the image fixture of the conformance suite).
pub const TEST_IMAGE_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64-encoded (the audio fixture of the conformance suite).
pub const TEST_AUDIO_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The contents of an embedded resource: text or a base64 blob.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceContents<'a> {
    pub(crate) uri: &'a str,
    pub(crate) mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) blob: Option<&'a str>,
}

impl<'a> ResourceContents<'a> {
    /// Text contents.
    pub(crate) fn text(uri: &'a str, mime_type: &'a str, text: &'a str) -> Self {
        Self { uri, mime_type, text: Some(text), blob: None }
    }

    /// Binary contents (`blob` is base64).
    pub(crate) fn blob(uri: &'a str, mime_type: &'a str, blob: &'a str) -> Self {
        Self { uri, mime_type, text: None, blob: Some(blob) }
    }
}

/// One content block of a tool result or prompt message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum Content<'a> {
    /// `{"type":"text","text":...}`
    Text { text: &'a str },
    /// `{"type":"image","data":...,"mimeType":...}`
    Image {
        data: &'a str,
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
    },
    /// `{"type":"audio","data":...,"mimeType":...}`
    Audio {
        data: &'a str,
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
    },
    /// `{"type":"resource","resource":{...}}`
    Resource { resource: ResourceContents<'a> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallToolResult<'a, 'b> {
    content: &'b [Content<'a>],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_error: bool,
}

/// A `CallToolResult` with these content blocks.
pub(crate) fn tool_result(content: &[Content<'_>]) -> Result<Box<RawValue>, ServerError> {
    to_raw(&CallToolResult { content, is_error: false }).map_err(ServerError::encode("tool result"))
}

/// A `CallToolResult` with one text block.
pub(crate) fn text_result(text: &str) -> Result<Box<RawValue>, ServerError> {
    tool_result(&[Content::Text { text }])
}

/// A `CallToolResult` with `isError: true` and one text block: a failure the model should see.
pub(crate) fn error_result(text: &str) -> Result<Box<RawValue>, ServerError> {
    to_raw(&CallToolResult { content: &[Content::Text { text }], is_error: true })
        .map_err(ServerError::encode("tool error result"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn value(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).expect("json")
    }

    #[test]
    fn content_blocks_have_the_spec_shapes() {
        let blocks = [
            Content::Text { text: "hi" },
            Content::Image { data: TEST_IMAGE_BASE64, mime_type: "image/png" },
            Content::Audio { data: TEST_AUDIO_BASE64, mime_type: "audio/wav" },
            Content::Resource { resource: ResourceContents::text("test://x", "text/plain", "t") },
            Content::Resource { resource: ResourceContents::blob("test://y", "image/png", "AAAA") },
        ];
        let v = value(&tool_result(&blocks).unwrap());
        assert_eq!(
            v,
            json!({ "content": [
                { "type": "text", "text": "hi" },
                { "type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png" },
                { "type": "audio", "data": TEST_AUDIO_BASE64, "mimeType": "audio/wav" },
                { "type": "resource", "resource": { "uri": "test://x", "mimeType": "text/plain", "text": "t" } },
                { "type": "resource", "resource": { "uri": "test://y", "mimeType": "image/png", "blob": "AAAA" } },
            ]})
        );
    }

    #[test]
    fn error_results_set_is_error_and_plain_results_omit_it() {
        assert_eq!(value(&text_result("ok").unwrap()), json!({ "content": [{ "type": "text", "text": "ok" }] }));
        assert_eq!(
            value(&error_result("bad").unwrap()),
            json!({ "content": [{ "type": "text", "text": "bad" }], "isError": true })
        );
    }
}
