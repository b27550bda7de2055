//! Upstream servers: connecting over any transport, reconnecting with backoff, and what the
//! gateway knows about each (state, capabilities, catalog of names, circuit breaker).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::protocol::Implementation;
use mcp_session::{Handler, Peer, PeerConfig, RequestContext, RequestOptions};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{ErrorObject, Notification, RawValue, Request, Transport};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Error;
use crate::config::{BackoffConfig, BreakerConfig, UpstreamConfig, UpstreamGeneration, UpstreamTarget};
use crate::policy::CircuitBreaker;

/// The connection state of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// The first connection attempt, or a reconnection, is under way.
    Connecting,
    /// Connected and initialized; calls are forwarded.
    Ready,
    /// Not connected; a reconnection is scheduled.
    Down,
}

/// Most pages read from one list when the catalog is refreshed.
const MAX_CATALOG_PAGES: usize = 100;
/// Most names kept per list in the catalog.
const MAX_CATALOG_ITEMS: usize = 10_000;

/// The names an upstream offered when last listed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) tools: Vec<String>,
    pub(crate) prompts: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) templates: Vec<String>,
}

/// What the gateway does with what upstreams send on their own.
pub(crate) trait Hub: Send + Sync + 'static {
    /// An upstream became ready, went down or refreshed its catalog.
    fn catalog_changed(&self, upstream: &Arc<Upstream>);
    /// A notification from an upstream (other than progress and cancellation).
    fn upstream_notification(&self, upstream: &Arc<Upstream>, n: Notification);
    /// A request from an upstream (sampling, elicitation, roots).
    fn upstream_request(
        &self,
        upstream: &Arc<Upstream>,
        req: Request,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>>;
}

/// One upstream server.
pub(crate) struct Upstream {
    /// Unique for the gateway's lifetime (a reconfigured upstream gets a new one); cache keys
    /// carry it.
    pub(crate) id: u64,
    pub(crate) config: UpstreamConfig,
    /// Stops this upstream's connection task (a child of the gateway's stop token).
    pub(crate) stop: CancellationToken,
    /// Notified when the last call in flight here ends.
    idle: tokio::sync::Notify,
    client: Mutex<Option<Client>>,
    state: watch::Sender<UpstreamState>,
    breaker: Mutex<CircuitBreaker>,
    catalog: Mutex<Catalog>,
    /// Downstream sessions with calls in flight here: session id → (peer, count).
    callers: Mutex<HashMap<u64, (Peer, usize)>>,
    /// Goes up when the upstream's lists change or it reconnects (cache keys carry it).
    generation: AtomicU64,
    /// Catalog refresh after list-change notifications: whether one runs, and the
    /// notifications (one per method) to pass on after the next one.
    refresh: Mutex<(bool, Vec<Notification>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes a caller registration when the call ends.
pub(crate) struct CallerGuard {
    upstream: Arc<Upstream>,
    session: u64,
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        let mut callers = lock(&self.upstream.callers);
        if let Some((_, n)) = callers.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                callers.remove(&self.session);
            }
        }
        if callers.is_empty() {
            self.upstream.idle.notify_waiters();
        }
    }
}

impl Upstream {
    pub(crate) fn new(id: u64, config: UpstreamConfig, breaker: BreakerConfig, stop: CancellationToken) -> Arc<Self> {
        // Down until it connects: an upstream that never connects still has a series.
        metrics::gauge!("mcp_gateway_upstream_up", "upstream" => config.name.clone()).set(0.0);
        Arc::new(Self {
            id,
            config,
            stop,
            idle: tokio::sync::Notify::new(),
            client: Mutex::new(None),
            state: watch::Sender::new(UpstreamState::Connecting),
            breaker: Mutex::new(CircuitBreaker::new(breaker)),
            catalog: Mutex::new(Catalog::default()),
            callers: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            refresh: Mutex::new((false, Vec::new())),
        })
    }

    /// The current generation (see the field).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new generation: cached responses of the old one are no longer used.
    pub(crate) fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Queues a list-change notification to pass on after a catalog refresh. True when the
    /// caller must start the refresh task (none is running).
    pub(crate) fn queue_refresh(&self, n: Notification) -> bool {
        let mut refresh = lock(&self.refresh);
        if !refresh.1.iter().any(|queued| queued.method == n.method) {
            refresh.1.push(n);
        }
        !std::mem::replace(&mut refresh.0, true)
    }

    /// The notifications queued since the last refresh; `None` (and the task ends) when
    /// there are none.
    pub(crate) fn take_refresh_batch(&self) -> Option<Vec<Notification>> {
        let mut refresh = lock(&self.refresh);
        if refresh.1.is_empty() {
            refresh.0 = false;
            return None;
        }
        Some(std::mem::take(&mut refresh.1))
    }

    pub(crate) fn state(&self) -> UpstreamState {
        *self.state.borrow()
    }

    pub(crate) fn watch_state(&self) -> watch::Receiver<UpstreamState> {
        self.state.subscribe()
    }

    pub(crate) fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        lock(&self.breaker)
    }

    pub(crate) fn catalog(&self) -> Catalog {
        lock(&self.catalog).clone()
    }

    pub(crate) fn client(&self) -> Option<Client> {
        lock(&self.client).clone()
    }

    /// The upstream's capabilities, when connected.
    pub(crate) fn capabilities(&self) -> Option<Value> {
        self.client().map(|c| c.server().capabilities.clone())
    }

    /// Whether it is ready and offers the capability (`tools`, `prompts`, `resources`).
    pub(crate) fn offers(&self, capability: &str) -> bool {
        self.state() == UpstreamState::Ready && self.capabilities().is_some_and(|c| c.get(capability).is_some())
    }

    /// Records a downstream session as having a call in flight here, until the guard drops.
    pub(crate) fn enter_caller(self: &Arc<Self>, session: u64, peer: &Peer) -> CallerGuard {
        lock(&self.callers).entry(session).or_insert_with(|| (peer.clone(), 0)).1 += 1;
        CallerGuard { upstream: self.clone(), session }
    }

    /// Waits until no call is in flight here (calls that start meanwhile are waited for too).
    pub(crate) async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if lock(&self.callers).is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// The downstream sessions with calls in flight here.
    pub(crate) fn callers(&self) -> Vec<(u64, Peer)> {
        lock(&self.callers).iter().map(|(id, (peer, _))| (*id, peer.clone())).collect()
    }

    /// Sends a request to the upstream.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        let client = self.client().ok_or_else(|| Error::UpstreamDown { upstream: self.config.name.clone() })?;
        client
            .request_raw(method, params, opts)
            .await
            .map_err(|source| Error::Upstream { upstream: self.config.name.clone(), source })
    }

    /// A health check: `ping` (or `server/discover` for 2026-07-28 upstreams).
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), Error> {
        let client = self.client().ok_or_else(|| Error::UpstreamDown { upstream: self.config.name.clone() })?;
        let method = if client.is_modern() { "server/discover" } else { "ping" };
        let opts = RequestOptions { timeout: Some(timeout), progress: None };
        client
            .request_raw(method, None, opts)
            .await
            .map(drop)
            .map_err(|source| Error::Upstream { upstream: self.config.name.clone(), source })
    }

    /// Reads every page of the lists the upstream offers into its catalog.
    pub(crate) async fn refresh_catalog(&self) {
        let Some(caps) = self.capabilities() else { return };
        let mut catalog = Catalog::default();
        let lists: [(&str, &str, &str, &str, &mut Vec<String>); 4] = [
            ("tools", "tools/list", "tools", "name", &mut catalog.tools),
            ("prompts", "prompts/list", "prompts", "name", &mut catalog.prompts),
            ("resources", "resources/list", "resources", "uri", &mut catalog.resources),
            ("resources", "resources/templates/list", "resourceTemplates", "uriTemplate", &mut catalog.templates),
        ];
        for (capability, method, field, key, out) in lists {
            if caps.get(capability).is_none() {
                continue;
            }
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_CATALOG_PAGES {
                let params = match &cursor {
                    Some(c) => json!({ "cursor": c }),
                    None => json!({}),
                };
                let params = mcp_transport_core::message::to_raw(&params).ok();
                let page = match self.request(method, params, RequestOptions::default()).await {
                    Ok(raw) => raw,
                    Err(e) => {
                        tracing::warn!(upstream = %self.config.name, method, error = %e, "listing failed");
                        break;
                    }
                };
                let Ok(page) = serde_json::from_str::<Value>(page.get()) else { break };
                for item in page.get(field).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(name) = item.get(key).and_then(Value::as_str)
                        && out.len() < MAX_CATALOG_ITEMS
                    {
                        out.push(name.to_owned());
                    }
                }
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(next) if Some(next) != cursor.as_deref() => cursor = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        *lock(&self.catalog) = catalog;
    }

    /// Connects, keeps the connection, and reconnects with exponential backoff and jitter
    /// until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, hub: Weak<dyn Hub>, backoff: BackoffConfig, shutdown: CancellationToken) {
        let mut delay = backoff.initial;
        loop {
            self.state.send_replace(UpstreamState::Connecting);
            let attempt = tokio::select! {
                r = tokio::time::timeout(self.config.connect_timeout, self.connect(hub.clone())) => r,
                _ = shutdown.cancelled() => break,
            };
            match attempt {
                Ok(Ok((client, mut child))) => {
                    tracing::info!(upstream = %self.config.name, server = ?client.server().server_info, "upstream connected");
                    let peer = client.peer().clone();
                    *lock(&self.client) = Some(client);
                    self.bump_generation();
                    self.refresh_catalog().await;
                    // Calls that failed with the old connection say nothing about this one.
                    self.breaker().reset();
                    self.state.send_replace(UpstreamState::Ready);
                    metrics::gauge!("mcp_gateway_upstream_up", "upstream" => self.config.name.clone()).set(1.0);
                    if let Some(hub) = hub.upgrade() {
                        hub.catalog_changed(&self);
                    }
                    delay = backoff.initial;
                    tokio::select! {
                        _ = peer.closed() => tracing::warn!(upstream = %self.config.name, "upstream connection closed"),
                        _ = shutdown.cancelled() => {}
                    }
                    lock(&self.client).take();
                    peer.shutdown();
                    self.state.send_replace(UpstreamState::Down);
                    metrics::gauge!("mcp_gateway_upstream_up", "upstream" => self.config.name.clone()).set(0.0);
                    if let Some(child) = child.as_mut()
                        && let Err(e) = child.shutdown().await
                    {
                        tracing::warn!(upstream = %self.config.name, error = %e, "stopping the upstream process failed");
                    }
                    if let Some(hub) = hub.upgrade() {
                        hub.catalog_changed(&self);
                    }
                    if shutdown.is_cancelled() {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(upstream = %self.config.name, error = %e, retry_in = ?delay, "upstream connection failed");
                    self.state.send_replace(UpstreamState::Down);
                    metrics::gauge!("mcp_gateway_upstream_up", "upstream" => self.config.name.clone()).set(0.0);
                }
                Err(_) => {
                    tracing::warn!(upstream = %self.config.name, after = ?self.config.connect_timeout, "upstream connection timed out");
                    self.state.send_replace(UpstreamState::Down);
                    metrics::gauge!("mcp_gateway_upstream_up", "upstream" => self.config.name.clone()).set(0.0);
                }
            }
            let jittered = jitter(delay);
            tokio::select! {
                _ = tokio::time::sleep(jittered) => {}
                _ = shutdown.cancelled() => break,
            }
            delay = (delay * 2).min(backoff.max);
        }
        self.state.send_replace(UpstreamState::Down);
    }

    async fn connect(
        self: &Arc<Self>,
        hub: Weak<dyn Hub>,
    ) -> Result<(Client, Option<mcp_transport_stdio::StdioChild>), String> {
        let (transport, child) = connect_transport(&self.config).await?;
        let handler = Arc::new(UpstreamHandler { hub, upstream: Arc::downgrade(self) });
        let opts = ClientOptions {
            generation: match self.config.generation {
                UpstreamGeneration::Legacy => Generation::Legacy,
                UpstreamGeneration::Auto => Generation::Auto,
                UpstreamGeneration::Modern => Generation::Modern,
            },
            client_info: Implementation::new("mcp-gateway", env!("CARGO_PKG_VERSION")),
            capabilities: json!({ "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } }),
            peer: PeerConfig { request_timeout: self.config.request_timeout },
            ..ClientOptions::default()
        };
        let client = Client::connect_with_handler(transport, handler, opts).await.map_err(|e| e.to_string())?;
        Ok((client, child))
    }
}

/// A delay between 50 % and 100 % of `d`.
fn jitter(d: Duration) -> Duration {
    let factor: f64 = rand::rng().random_range(0.5..=1.0);
    d.mul_f64(factor)
}

fn bearer(config: &UpstreamConfig) -> Result<Option<String>, String> {
    match &config.bearer_token_env {
        None => Ok(None),
        Some(var) => std::env::var(var)
            .map(Some)
            .map_err(|_| format!("upstream {}: environment variable {var} is not set", config.name)),
    }
}

/// Opens a transport to an upstream (and the child process for a command upstream).
pub(crate) async fn connect_transport(
    config: &UpstreamConfig,
) -> Result<(Transport, Option<mcp_transport_stdio::StdioChild>), String> {
    let url = match &config.target {
        UpstreamTarget::Command { argv, env, cwd } => {
            let mut child = mcp_transport_stdio::ChildConfig::new(&argv[0]).args(&argv[1..]);
            for (k, v) in env {
                child = child.env(k, v);
            }
            if let Some(dir) = cwd {
                child = child.cwd(dir);
            }
            let mut child = mcp_transport_stdio::spawn(child).map_err(|e| e.to_string())?;
            let transport = child.take_transport().ok_or("the child's transport was already taken")?;
            return Ok((transport, Some(child)));
        }
        UpstreamTarget::Url(url) => url.as_str(),
    };
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let transport = match scheme {
        "unix" => {
            let addr = mcp_transport_uds::UdsAddr::parse(url).map_err(|e| e.to_string())?;
            mcp_transport_uds::connect(&addr, &mcp_transport_uds::UdsConfig::default())
                .await
                .map_err(|e| e.to_string())?
        }
        "ws" | "wss" => {
            let mut c = mcp_transport_ws::WsClientConfig {
                bearer_token: bearer(config)?,
                connect_timeout: config.connect_timeout,
                ..Default::default()
            };
            if let Some(ca) = &config.ca_file {
                c.tls = mcp_transport_ws::ClientTls::PemFile(ca.clone());
            }
            mcp_transport_ws::connect(url, &c).await.map_err(|e| e.to_string())?
        }
        "http" | "https" => {
            let mut c = mcp_transport_http::HttpClientConfig {
                connect_timeout: config.connect_timeout,
                pool_idle_timeout: config.idle_timeout,
                // Calls from different clients are independent; their order is not kept anyway.
                ordered_requests: false,
                ..Default::default()
            };
            if let Some(token) = bearer(config)? {
                let value = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| format!("upstream {}: the bearer token is not a valid header value", config.name))?;
                c.headers.insert("authorization", value);
            }
            if let Some(ca) = &config.ca_file {
                let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                c.tls = c.tls.with_root_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            mcp_transport_http::connect(url, c).await.map_err(|e| e.to_string())?
        }
        "quic" => {
            let c = mcp_transport_quic::QuicClientConfig { ca_file: config.ca_file.clone(), ..Default::default() };
            mcp_transport_quic::connect(url, &c).await.map_err(|e| e.to_string())?
        }
        other => return Err(format!("unsupported upstream scheme {other:?}")),
    };
    Ok((transport, None))
}

/// Serves what an upstream sends to the gateway as its client.
struct UpstreamHandler {
    hub: Weak<dyn Hub>,
    upstream: Weak<Upstream>,
}

impl Handler for UpstreamHandler {
    fn handle_request(
        &self,
        req: Request,
        _ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        if req.method == "ping" {
            return Box::pin(std::future::ready(
                mcp_transport_core::message::to_raw(&json!({})).map_err(ErrorObject::internal),
            ));
        }
        match (self.hub.upgrade(), self.upstream.upgrade()) {
            (Some(hub), Some(upstream)) => {
                let span =
                    tracing::debug_span!("upstream_request", method = %req.method, upstream = %upstream.config.name);
                Box::pin(hub.upstream_request(&upstream, req).instrument(span))
            }
            _ => Box::pin(std::future::ready(Err(ErrorObject::internal("the gateway has stopped")))),
        }
    }

    fn handle_notification(&self, n: Notification, _peer: &Peer) {
        if let (Some(hub), Some(upstream)) = (self.hub.upgrade(), self.upstream.upgrade()) {
            hub.upstream_notification(&upstream, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_change_floods_coalesce() {
        let u = Upstream::new(
            0,
            crate::GatewayConfig::parse("[[upstream]]\nname = \"a\"\nurl = \"unix:///a\"\n", "t.toml")
                .unwrap()
                .upstreams
                .remove(0),
            BreakerConfig::default(),
            CancellationToken::new(),
        );
        let n = |m: &str| Notification::new(m, &json!({})).unwrap();
        assert!(u.queue_refresh(n("notifications/tools/list_changed")), "the first starts a refresh");
        for _ in 0..100 {
            assert!(!u.queue_refresh(n("notifications/tools/list_changed")));
        }
        assert!(!u.queue_refresh(n("notifications/prompts/list_changed")));
        let batch = u.take_refresh_batch().unwrap();
        assert_eq!(batch.len(), 2, "one per kind");
        assert!(!u.queue_refresh(n("notifications/tools/list_changed")), "the task still runs");
        assert_eq!(u.take_refresh_batch().unwrap().len(), 1);
        assert!(u.take_refresh_batch().is_none());
        assert!(u.queue_refresh(n("notifications/tools/list_changed")), "the task ended: start anew");
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(2));
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2), "{d:?}");
        }
    }
}
