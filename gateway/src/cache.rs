//! Response caching with moka: upstream list pages and the results of tools declared
//! idempotent, bounded in bytes, with a time to live.
//!
//! Every key carries the upstream's generation, which goes up when the upstream announces a
//! list change or reconnects: older entries are never read again and age out. Tool results
//! are keyed by the principal too, so one principal's result is never served to another;
//! list pages are not (they hold what the upstream lists to the gateway, and are filtered
//! per principal after the cache).

use mcp_transport_core::RawValue;
use moka::sync::Cache;

use crate::config::CacheConfig;

/// What a cached response is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The upstream's id.
    pub(crate) upstream: u64,
    /// The upstream's generation when the response was stored.
    pub(crate) generation: u64,
    /// The method.
    pub(crate) method: &'static str,
    /// The principal the response was fetched for (`None` for list pages, which are shared
    /// and filtered per principal after the cache).
    pub(crate) principal: Option<String>,
    /// The cursor of a list page, or the tool name and its canonical arguments.
    pub(crate) detail: String,
}

/// A cached response.
type Stored = Box<RawValue>;

/// The weight of an entry: about the bytes it holds.
fn weigh(k: &Key, v: &Stored) -> u32 {
    let principal = k.principal.as_ref().map_or(0, String::len);
    u32::try_from(k.detail.len() + principal + v.get().len() + 64).unwrap_or(u32::MAX)
}

/// The response cache.
pub(crate) struct ResponseCache {
    entries: Cache<Key, Stored>,
    lists: bool,
    tools: Vec<String>,
}

impl ResponseCache {
    pub(crate) fn new(config: &CacheConfig) -> Self {
        let entries = Cache::builder().max_capacity(config.max_bytes).weigher(weigh).time_to_live(config.ttl).build();
        Self { entries, lists: config.lists, tools: config.tools.clone() }
    }

    /// Whether list pages are cached.
    pub(crate) fn caches_lists(&self) -> bool {
        self.lists
    }

    /// Whether results of the namespaced tool are cached.
    pub(crate) fn caches_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Box<RawValue>> {
        let hit = self.entries.get(key);
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("mcp_gateway_cache_lookups_total", "method" => key.method, "outcome" => outcome).increment(1);
        hit
    }

    pub(crate) fn insert(&self, key: Key, value: &RawValue) {
        self.entries.insert(key, value.to_owned());
    }
}
