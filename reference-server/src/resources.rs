//! Resources: the static fixtures, the `test://template/{id}/data` template, and the watched
//! resource whose updates subscribers hear about.

use std::sync::atomic::{AtomicU64, Ordering};

use mcp_transport_core::RawValue;
use mcp_transport_core::message::to_raw;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::content::{ResourceContents, TEST_IMAGE_BASE64};
use crate::error::ServerError;
use crate::pagination::Caching;

/// `test://static-text`.
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// The text of `test://static-text`.
pub const STATIC_TEXT: &str = "This is the content of the static text resource.";
/// `test://static-binary` (a PNG).
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// `test://watched-resource`, which changes when the `test_update_watched_resource` tool runs.
pub const WATCHED_URI: &str = "test://watched-resource";
/// The resource template.
pub const TEMPLATE: &str = "test://template/{id}/data";

const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// Caching of list results and of the static resources (no user data in any of them).
pub(crate) const PUBLIC: Caching = Caching { ttl_ms: 300_000, scope: "public" };
/// Caching of the watched resource: stale at once, it may change any time.
const VOLATILE: Caching = Caching { ttl_ms: 0, scope: "public" };

/// The `resources/list` entries.
pub(crate) fn list() -> Vec<Value> {
    vec![
        json!({
            "uri": STATIC_TEXT_URI,
            "name": "static-text",
            "title": "Static Text Resource",
            "description": "A static text resource for testing",
            "mimeType": "text/plain"
        }),
        json!({
            "uri": STATIC_BINARY_URI,
            "name": "static-binary",
            "title": "Static Binary Resource",
            "description": "A static binary resource (image) for testing",
            "mimeType": "image/png"
        }),
        json!({
            "uri": WATCHED_URI,
            "name": "watched-resource",
            "title": "Watched Resource",
            "description": "A resource that changes when the test_update_watched_resource tool runs; subscribe to hear about it",
            "mimeType": "text/plain"
        }),
    ]
}

/// The `resources/templates/list` entries.
pub(crate) fn templates() -> Vec<Value> {
    vec![json!({
        "uriTemplate": TEMPLATE,
        "name": "template",
        "title": "Resource Template",
        "description": "A resource template with parameter substitution",
        "mimeType": "application/json"
    })]
}

/// The `{id}` of a URI that matches [`TEMPLATE`].
pub(crate) fn template_id(uri: &str) -> Option<&str> {
    let id = uri.strip_prefix(TEMPLATE_PREFIX)?.strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Whether `uri` names a resource this server can read.
pub(crate) fn exists(uri: &str) -> bool {
    matches!(uri, STATIC_TEXT_URI | STATIC_BINARY_URI | WATCHED_URI) || template_id(uri).is_some()
}

/// The state of the resources that change.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    watched_revision: AtomicU64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadResult<'a> {
    contents: [ResourceContents<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_scope: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateData<'a> {
    id: &'a str,
    template_test: bool,
    data: String,
}

/// `resources/read` (and `resources/subscribe`) params.
#[derive(Deserialize)]
pub(crate) struct UriParams<'a> {
    #[serde(borrow)]
    pub(crate) uri: std::borrow::Cow<'a, str>,
}

/// Reads `{uri}` from request params.
pub(crate) fn uri_param<'a>(params: Option<&'a RawValue>, method: &'static str) -> Result<UriParams<'a>, ServerError> {
    let raw = params.ok_or_else(|| ServerError::invalid_params(method, "params with a uri are required"))?;
    serde_json::from_str(raw.get()).map_err(|e| ServerError::invalid_params(method, format!("params: {e}")))
}

impl Resources {
    /// The text of the watched resource now.
    pub(crate) fn watched_text(&self) -> String {
        match self.watched_revision.load(Ordering::Relaxed) {
            0 => "Watched resource content".to_owned(),
            n => format!("Watched resource content (revision {n})"),
        }
    }

    /// Changes the watched resource; returns its new revision.
    pub(crate) fn touch_watched(&self) -> u64 {
        self.watched_revision.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// `resources/read` of `uri`; 2026-07-28 results carry caching hints.
    pub(crate) fn read(&self, uri: &str, modern: bool) -> Result<Box<RawValue>, ServerError> {
        let encode = |contents: ResourceContents<'_>, caching: Caching| {
            let result = ReadResult {
                contents: [contents],
                ttl_ms: modern.then_some(caching.ttl_ms),
                cache_scope: modern.then_some(caching.scope),
            };
            to_raw(&result).map_err(ServerError::encode("resource contents"))
        };
        match uri {
            STATIC_TEXT_URI => encode(ResourceContents::text(uri, "text/plain", STATIC_TEXT), PUBLIC),
            STATIC_BINARY_URI => encode(ResourceContents::blob(uri, "image/png", TEST_IMAGE_BASE64), PUBLIC),
            WATCHED_URI => encode(ResourceContents::text(uri, "text/plain", &self.watched_text()), VOLATILE),
            _ => match template_id(uri) {
                Some(id) => {
                    let data = TemplateData { id, template_test: true, data: format!("Data for ID: {id}") };
                    let text = serde_json::to_string(&data).map_err(ServerError::encode("template data"))?;
                    encode(ResourceContents::text(uri, "application/json", &text), PUBLIC)
                }
                None => Err(ServerError::ResourceNotFound { uri: uri.to_owned() }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(uri: &str, modern: bool) -> Result<Value, ServerError> {
        Resources::default().read(uri, modern).map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn static_text_and_binary() {
        assert_eq!(
            read(STATIC_TEXT_URI, false).unwrap(),
            json!({ "contents": [{ "uri": STATIC_TEXT_URI, "mimeType": "text/plain", "text": STATIC_TEXT }] })
        );
        assert_eq!(
            read(STATIC_BINARY_URI, false).unwrap(),
            json!({ "contents": [{ "uri": STATIC_BINARY_URI, "mimeType": "image/png", "blob": TEST_IMAGE_BASE64 }] })
        );
    }

    #[test]
    fn template_substitutes_the_id() {
        let v = read("test://template/123/data", false).unwrap();
        let c = &v["contents"][0];
        assert_eq!(c["uri"], "test://template/123/data");
        assert_eq!(c["mimeType"], "application/json");
        let data: Value = serde_json::from_str(c["text"].as_str().unwrap()).unwrap();
        assert_eq!(data, json!({ "id": "123", "templateTest": true, "data": "Data for ID: 123" }));
    }

    #[test]
    fn template_matching() {
        assert_eq!(template_id("test://template/abc/data"), Some("abc"));
        for no in ["test://template//data", "test://template/a/b/data", "test://template/a", "test://other/a/data"] {
            assert_eq!(template_id(no), None, "{no}");
        }
        assert!(exists(WATCHED_URI) && exists("test://template/9/data") && !exists("test://nope"));
    }

    #[test]
    fn modern_reads_carry_caching_hints() {
        let v = read(STATIC_TEXT_URI, true).unwrap();
        assert_eq!((v["ttlMs"].as_u64(), v["cacheScope"].as_str()), (Some(300_000), Some("public")));
        let w = read(WATCHED_URI, true).unwrap();
        assert_eq!(w["ttlMs"], 0);
    }

    #[test]
    fn unknown_uris_are_not_found_and_never_empty_contents() {
        let err = read("test://nonexistent-resource-for-conformance-testing", true).unwrap_err();
        assert!(matches!(err, ServerError::ResourceNotFound { .. }));
    }

    #[test]
    fn the_watched_resource_changes_when_touched() {
        let r = Resources::default();
        assert_eq!(r.watched_text(), "Watched resource content");
        assert_eq!(r.touch_watched(), 1);
        assert_eq!(r.watched_text(), "Watched resource content (revision 1)");
    }

    #[test]
    fn list_entries_have_uri_name_and_description() {
        for r in list() {
            assert!(r["uri"].is_string() && r["name"].is_string() && r["description"].is_string(), "{r}");
        }
        assert_eq!(templates()[0]["uriTemplate"], TEMPLATE);
    }
}
