//! Change events, and the per-connection state of the 2025 generation.
//!
//! Changes (the tool or prompt list changing, a resource being updated) go out on one broadcast
//! channel. 2026-07-28 clients receive them on their `subscriptions/listen` streams
//! ([`crate::subscriptions`]); 2025 connections receive them through a forwarding task started
//! the first time the connection needs state here (it listed something, set a log level or
//! subscribed to a resource). The task sends outside any request's scope, so on Streamable
//! HTTP the notifications use the session's standalone stream, and it ends with the
//! connection.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_session::Peer;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::logging::LogLevel;

/// How many events a slow listener may fall behind before it is told to refresh everything.
const EVENT_BACKLOG: usize = 64;

/// A change clients may be told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
    /// `notifications/prompts/list_changed`.
    PromptsListChanged,
    /// `notifications/resources/updated` for this URI.
    ResourceUpdated(Arc<str>),
}

impl Event {
    /// The notification method announcing this event.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Event::ToolsListChanged => "notifications/tools/list_changed",
            Event::PromptsListChanged => "notifications/prompts/list_changed",
            Event::ResourceUpdated(_) => "notifications/resources/updated",
        }
    }

    /// The list-changed events, sent to a listener that fell behind and may have missed some.
    pub(crate) const LIST_CHANGES: [Event; 2] = [Event::ToolsListChanged, Event::PromptsListChanged];
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the server remembers about one 2025-generation connection.
#[derive(Debug)]
pub(crate) struct Connection {
    log_level: Mutex<LogLevel>,
    subscriptions: Mutex<HashSet<String>>,
}

impl Connection {
    fn new() -> Self {
        Self { log_level: Mutex::new(LogLevel::Debug), subscriptions: Mutex::new(HashSet::new()) }
    }

    /// The minimum level of log messages (`logging/setLevel`; debug until set).
    pub(crate) fn log_level(&self) -> LogLevel {
        *lock(&self.log_level)
    }

    /// Sets the minimum level of log messages.
    pub(crate) fn set_log_level(&self, level: LogLevel) {
        *lock(&self.log_level) = level;
    }

    /// Subscribes to updates of `uri`.
    pub(crate) fn subscribe(&self, uri: &str) {
        lock(&self.subscriptions).insert(uri.to_owned());
    }

    /// Unsubscribes from `uri`; whether it was subscribed.
    pub(crate) fn unsubscribe(&self, uri: &str) -> bool {
        lock(&self.subscriptions).remove(uri)
    }

    /// Whether the connection is subscribed to `uri`.
    pub(crate) fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.subscriptions).contains(uri)
    }
}

/// The change channel and the 2025-generation connections that have state.
#[derive(Debug)]
pub(crate) struct Connections {
    events: broadcast::Sender<Event>,
    map: Mutex<HashMap<usize, Arc<Connection>>>,
}

/// Identifies a connection by the address of its shared sending half, which lives as long as
/// any handle to the connection. The entry holding this key also holds a handle (in its
/// forwarding task), so the address cannot be reused while the entry exists.
fn key(peer: &Peer) -> usize {
    std::ptr::from_ref(peer.sender()).addr()
}

#[derive(Serialize)]
struct UpdatedParams<'a> {
    uri: &'a str,
}

#[derive(Serialize)]
struct Empty {}

impl Connections {
    /// No connections yet.
    pub(crate) fn new() -> Self {
        Self { events: broadcast::channel(EVENT_BACKLOG).0, map: Mutex::new(HashMap::new()) }
    }

    /// A receiver of every event published from now on.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes an event to every listener (none may be listening).
    pub(crate) fn publish(&self, event: Event) {
        let receivers = self.events.send(event.clone()).unwrap_or(0);
        tracing::debug!(?event, receivers, "change published");
    }

    /// The state of the connection of `peer`, if it has any.
    pub(crate) fn get(&self, peer: &Peer) -> Option<Arc<Connection>> {
        lock(&self.map).get(&key(peer)).cloned()
    }

    /// The state of the connection of `peer`, created (with its forwarding task) on first use.
    /// Must run inside a Tokio runtime.
    pub(crate) fn register(self: &Arc<Self>, peer: &Peer) -> Arc<Connection> {
        let k = key(peer);
        let mut map = lock(&self.map);
        if let Some(conn) = map.get(&k) {
            return conn.clone();
        }
        let conn = Arc::new(Connection::new());
        map.insert(k, conn.clone());
        drop(map);
        let rx = self.events.subscribe();
        tokio::spawn(forward(self.clone(), peer.clone(), conn.clone(), rx, k));
        conn
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Sends the events a 2025 connection should see until it closes, then forgets it.
async fn forward(
    all: Arc<Connections>,
    peer: Peer,
    conn: Arc<Connection>,
    mut rx: broadcast::Receiver<Event>,
    k: usize,
) {
    loop {
        let event = tokio::select! {
            _ = peer.closed() => break,
            ev = rx.recv() => ev,
        };
        let sent = match event {
            Ok(Event::ResourceUpdated(uri)) if conn.is_subscribed(&uri) => {
                peer.notify(Event::ResourceUpdated(uri.clone()).method(), &UpdatedParams { uri: &uri }).await
            }
            Ok(Event::ResourceUpdated(_)) => Ok(()),
            Ok(list) => peer.notify(list.method(), &Empty {}).await,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "connection fell behind on change events; announcing every list as changed");
                let mut result = Ok(());
                for list in Event::LIST_CHANGES {
                    result = result.and(peer.notify(list.method(), &Empty {}).await);
                }
                result
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not forward a change notification");
        }
    }
    lock(&all.map).remove(&k);
    tracing::debug!("connection state released");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_state_defaults_and_updates() {
        let c = Connection::new();
        assert_eq!(c.log_level(), LogLevel::Debug);
        c.set_log_level(LogLevel::Error);
        assert_eq!(c.log_level(), LogLevel::Error);
        assert!(!c.is_subscribed("test://a"));
        c.subscribe("test://a");
        assert!(c.is_subscribed("test://a"));
        assert!(c.unsubscribe("test://a"));
        assert!(!c.unsubscribe("test://a"));
    }

    #[test]
    fn events_name_their_notifications() {
        assert_eq!(Event::ToolsListChanged.method(), "notifications/tools/list_changed");
        assert_eq!(Event::PromptsListChanged.method(), "notifications/prompts/list_changed");
        assert_eq!(Event::ResourceUpdated("u".into()).method(), "notifications/resources/updated");
    }

    #[tokio::test]
    async fn connection_state_lives_as_long_as_the_connection() {
        use mcp_session::PeerConfig;
        use mcp_transport_core::Limits;
        use mcp_transport_core::transport::memory_pair;

        let all = Arc::new(Connections::new());
        let (a, b) = memory_pair(Limits::default());
        let peer = Peer::client(a, PeerConfig::default());
        let other = Peer::client(b, PeerConfig::default());
        let first = all.register(&peer);
        first.set_log_level(LogLevel::Alert);
        assert!(Arc::ptr_eq(&first, &all.register(&peer)), "one state per connection");
        assert_eq!(all.get(&peer).map(|c| c.log_level()), Some(LogLevel::Alert));
        assert!(all.get(&other).is_none());
        assert_eq!(all.len(), 1);
        other.shutdown();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while all.len() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("state released after the connection closed");
    }

    #[test]
    fn published_events_reach_subscribers() {
        let c = Connections::new();
        let mut rx = c.subscribe_events();
        c.publish(Event::ResourceUpdated("test://x".into()));
        assert_eq!(rx.try_recv().unwrap(), Event::ResourceUpdated("test://x".into()));
    }
}
