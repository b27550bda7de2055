//! Paginated lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`).
//!
//! Each list is cut into pages of a fixed size once, when the server is built, and each page
//! is kept encoded for both generations (2026-07-28 pages also carry the caching hints
//! `ttlMs` and `cacheScope`). A cursor is opaque to clients: the list method and a page
//! number, base64url-encoded; a cursor this server did not issue for that list is -32602.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_transport_core::RawValue;
use mcp_transport_core::message::to_raw;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ServerError;

/// The caching hints of a 2026-07-28 list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caching {
    /// How long the client may cache the result.
    pub(crate) ttl_ms: u64,
    /// `public` (no user-specific data) or `private`.
    pub(crate) scope: &'static str,
}

/// A list cut into encoded pages.
#[derive(Debug)]
pub(crate) struct Pages {
    method: &'static str,
    legacy: Vec<Box<RawValue>>,
    modern: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    cursor: Option<String>,
}

fn cursor_for(method: &str, page: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{method}#{page}"))
}

impl Pages {
    /// Cuts `items` into pages of `page_size` (at least 1); each page is an object with the
    /// items under `field`, plus `nextCursor` unless it is the last.
    pub(crate) fn new(
        method: &'static str,
        field: &'static str,
        items: Vec<Value>,
        page_size: usize,
        caching: Caching,
    ) -> Result<Self, ServerError> {
        let size = page_size.max(1);
        let count = items.len().div_ceil(size).max(1);
        let mut legacy = Vec::with_capacity(count);
        let mut modern = Vec::with_capacity(count);
        for page in 0..count {
            let chunk: Vec<Value> = items.iter().skip(page * size).take(size).cloned().collect();
            let mut obj = Map::new();
            obj.insert(field.to_owned(), Value::Array(chunk));
            if page + 1 < count {
                obj.insert("nextCursor".to_owned(), Value::String(cursor_for(method, page + 1)));
            }
            legacy.push(to_raw(&obj).map_err(ServerError::encode("list page"))?);
            obj.insert("ttlMs".to_owned(), caching.ttl_ms.into());
            obj.insert("cacheScope".to_owned(), caching.scope.into());
            modern.push(to_raw(&obj).map_err(ServerError::encode("list page"))?);
        }
        Ok(Self { method, legacy, modern })
    }

    /// The page a request asks for (`params.cursor`; the first page without one).
    pub(crate) fn get(&self, params: Option<&RawValue>, modern: bool) -> Result<Box<RawValue>, ServerError> {
        let cursor = match params {
            Some(raw) => {
                serde_json::from_str::<ListParams>(raw.get())
                    .map_err(|e| ServerError::invalid_params(self.method, format!("params: {e}")))?
                    .cursor
            }
            None => None,
        };
        let page = match cursor {
            None => 0,
            Some(c) => self.decode(&c).ok_or(ServerError::InvalidCursor { method: self.method, cursor: c })?,
        };
        let pages = if modern { &self.modern } else { &self.legacy };
        Ok(pages[page].clone())
    }

    fn decode(&self, cursor: &str) -> Option<usize> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
        let (method, page) = text.split_once('#')?;
        let page: usize = page.parse().ok()?;
        (method == self.method && page > 0 && page < self.legacy.len()).then_some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CACHING: Caching = Caching { ttl_ms: 1000, scope: "public" };

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({ "name": format!("item{i}") })).collect()
    }

    fn page(p: &Pages, cursor: Option<&str>, modern: bool) -> Result<Value, ServerError> {
        let params = cursor.map(|c| to_raw(&json!({ "cursor": c })).unwrap());
        p.get(params.as_deref(), modern).map(|raw| serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn walks_every_page_with_cursors() {
        let p = Pages::new("tools/list", "tools", items(5), 2, CACHING).unwrap();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let v = page(&p, cursor.as_deref(), false).unwrap();
            seen.extend(v["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()));
            match v.get("nextCursor") {
                Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["item0", "item1", "item2", "item3", "item4"]);
    }

    #[test]
    fn one_page_when_everything_fits_and_an_empty_list_is_one_empty_page() {
        let p = Pages::new("prompts/list", "prompts", items(3), 100, CACHING).unwrap();
        let v = page(&p, None, false).unwrap();
        assert_eq!(v["prompts"].as_array().unwrap().len(), 3);
        assert!(v.get("nextCursor").is_none());
        let empty = Pages::new("prompts/list", "prompts", Vec::new(), 10, CACHING).unwrap();
        assert_eq!(page(&empty, None, false).unwrap(), json!({ "prompts": [] }));
    }

    #[test]
    fn modern_pages_carry_caching_hints() {
        let p = Pages::new("resources/list", "resources", items(1), 10, CACHING).unwrap();
        let v = page(&p, None, true).unwrap();
        assert_eq!(v["ttlMs"], 1000);
        assert_eq!(v["cacheScope"], "public");
        assert!(page(&p, None, false).unwrap().get("ttlMs").is_none());
    }

    #[test]
    fn foreign_or_forged_cursors_are_invalid_params() {
        let tools = Pages::new("tools/list", "tools", items(4), 2, CACHING).unwrap();
        let prompts = Pages::new("prompts/list", "prompts", items(4), 2, CACHING).unwrap();
        let next = page(&prompts, None, false).unwrap()["nextCursor"].as_str().unwrap().to_owned();
        for bad in [next.as_str(), "", "!!", "dG9vbHMvbGlzdCMw", "dG9vbHMvbGlzdCM5"] {
            let err = page(&tools, Some(bad), false).unwrap_err();
            assert_eq!(err.to_error_object(false).code, -32602, "{bad:?}");
        }
    }
}
