//! The gateway: upstream connections, downstream sessions, aggregation and routing.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_session::protocol::{Implementation, ProgressParams};
use mcp_session::server::{McpServer, ServerSession};
use mcp_session::{Peer, PeerConfig, RequestContext, RequestOptions};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{ErrorObject, Id, Notification, RawValue, Request, Transport};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder};
use tracing::Instrument;

use crate::Error;
use crate::auth::{Authenticator, Credentials, Identity, Principal};
use crate::cache::{Key, ResponseCache};
use crate::config::GatewayConfig;
use crate::observe::{Health, Observe, ObserveLayer, admin_router};
use crate::policy::{
    Breaker, BreakerLayer, Budget, BudgetLayer, Cached, Call, Forward, Limiters, RateLimit, RateLimitLayer, Replay,
    ReplayLayer, TokenBudgets,
};
use crate::upstream::{Hub, Upstream, UpstreamState};

/// The policy stack every forwarded request goes through.
type Stack = Observe<Budget<Replay<RateLimit<Breaker<Forward>>>>>;

/// Time left for the last answers to be written after the drain, before sessions close.
const ANSWER_GRACE: Duration = Duration::from_millis(50);

/// How many progress updates may wait to be passed on per request.
const PROGRESS_QUEUE: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who a downstream session is: what it presented, and the identity that resolves to under
/// the current configuration (re-resolved at every reload).
struct SessionAuth {
    credentials: Credentials,
    uid: Option<u32>,
    peer: String,
    current: RwLock<Result<Arc<Identity>, String>>,
}

impl SessionAuth {
    fn current(&self) -> Result<Arc<Identity>, String> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves the credentials again with `auth`; false when they no longer name a principal.
    fn refresh(&self, auth: &Authenticator) -> bool {
        let resolved = auth
            .resolve(&self.credentials, self.uid)
            .map(Arc::new)
            .map_err(|reason| format!("after a configuration reload: {reason}"));
        let ok = resolved.is_ok();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = resolved;
        ok
    }

    fn may_use_upstream(&self, upstream: &str) -> bool {
        self.current().is_ok_and(|id| id.principal.may_use_upstream(upstream))
    }
}

/// One downstream connection.
struct SessionEntry {
    peer: Peer,
    auth: Arc<SessionAuth>,
    /// Resource URIs this session subscribed to.
    subscriptions: HashSet<String>,
}

/// Where resource URIs are served: exact URIs and template prefixes, from list results.
#[derive(Default)]
struct UriIndex {
    exact: HashMap<String, Arc<Upstream>>,
    /// (the template's text before its first `{`, upstream), longest prefix first.
    templates: Vec<(String, Arc<Upstream>)>,
}

/// Everything a reload replaces: requests take a snapshot when they start and finish with it.
struct Live {
    /// Goes up by one at every reload.
    generation: u64,
    config: Arc<GatewayConfig>,
    upstreams: Vec<Arc<Upstream>>,
    by_name: HashMap<String, usize>,
    auth: Authenticator,
    stack: Stack,
    limiters: Arc<Limiters>,
    budgets: Arc<TokenBudgets>,
    cache: Option<Arc<ResponseCache>>,
    uris: RwLock<UriIndex>,
    collisions: Mutex<Vec<String>>,
}

impl Live {
    /// The live state of `config`, carrying over what `old` had counted (rate limiters with
    /// an unchanged rate, budget windows, the cache when its settings are unchanged).
    fn new(generation: u64, config: GatewayConfig, upstreams: Vec<Arc<Upstream>>, old: Option<&Live>) -> Live {
        let by_name = upstreams.iter().enumerate().map(|(i, u)| (u.config.name.clone(), i)).collect();
        let limiters = Arc::new(Limiters::reloaded(old.map(|o| &*o.limiters), &config));
        let budgets = Arc::new(TokenBudgets::reloaded(old.map(|o| &*o.budgets), &config));
        let cache = match (old, &config.cache) {
            (Some(o), Some(c)) if o.config.cache.as_ref() == Some(c) => o.cache.clone(),
            (_, c) => c.as_ref().map(|c| Arc::new(ResponseCache::new(c))),
        };
        let stack = ServiceBuilder::new()
            .layer(ObserveLayer)
            .layer(BudgetLayer::new(budgets.clone()))
            .layer(ReplayLayer)
            .layer(RateLimitLayer::new(limiters.clone()))
            .layer(BreakerLayer)
            .service(Forward);
        Live {
            generation,
            auth: Authenticator::new(&config),
            config: Arc::new(config),
            upstreams,
            by_name,
            stack,
            limiters,
            budgets,
            cache,
            uris: RwLock::new(UriIndex::default()),
            collisions: Mutex::new(Vec::new()),
        }
    }
}

struct Shared {
    me: Weak<Shared>,
    live: RwLock<Arc<Live>>,
    /// Held by a reload from start to end (reloads run one at a time).
    reloading: tokio::sync::Mutex<()>,
    next_upstream: AtomicU64,
    /// Stops the health loop (replaced when a reload changes `health_interval`).
    health: Mutex<CancellationToken>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    next_session: AtomicU64,
    stop: CancellationToken,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: stop the upstream and health tasks.
        self.stop.cancel();
    }
}

/// A running gateway. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstreams", &self.upstream_states())
            .field("sessions", &lock(&self.shared.sessions).len())
            .finish()
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls still in flight when the deadline passed (they were cut off).
    pub abandoned: usize,
}

/// What a [`Gateway::reload`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Upstreams that are new; they were connected (each had its first attempt).
    pub upstreams_added: Vec<String>,
    /// Upstreams that are gone; they were drained (calls in flight finished, within their
    /// `request_timeout`) and closed.
    pub upstreams_removed: Vec<String>,
    /// Upstreams whose connection settings changed: the old connection was drained and
    /// closed, a new one made.
    pub upstreams_reconnected: Vec<String>,
    /// Upstreams that kept their connection (new `rate_limit` and breaker thresholds apply).
    pub upstreams_kept: Vec<String>,
    /// Principals that are new.
    pub principals_added: Vec<String>,
    /// Principals that are gone (their sessions' calls are refused from now on).
    pub principals_removed: Vec<String>,
    /// Open sessions whose credentials no longer name a principal: their calls are refused.
    pub sessions_refused: usize,
    /// Settings that changed but only take effect at a restart: `listen`, `admin`, and
    /// `backoff` (which applies to upstreams added or reconnected by this reload, but not to
    /// the kept ones).
    pub needs_restart: Vec<String>,
    /// Name collisions between upstreams after the reload (see [`Gateway::collisions`]).
    pub collisions: Vec<String>,
}

/// The cursor of an aggregated list: which upstream, and that upstream's own cursor.
#[derive(Serialize, Deserialize)]
struct Cursor {
    u: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Result<Cursor, Error> {
        let bad = || Error::BadRequest(format!("invalid cursor {:?}", s.chars().take(64).collect::<String>()));
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// Decodes a client's cursor into (upstream index, that upstream's cursor), or `None` when it
/// is invalid. For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_decode_cursor(s: &str) -> Option<(usize, Option<String>)> {
    Cursor::decode(s).ok().map(|c| (c.u, c.c))
}

/// Encodes a cursor as the gateway hands it out. For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_encode_cursor(u: usize, c: Option<String>) -> String {
    Cursor { u, c }.encode()
}

/// The four aggregated lists.
#[derive(Clone, Copy, Debug)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }
    fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }
    fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }
}

/// Counts a downstream request in flight, for draining at shutdown.
struct InFlight {
    shared: Arc<Shared>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

/// Removes `_meta.progressToken` and the 2026-07-28 protocol members of the downstream
/// request from params going upstream (the upstream session adds its own).
fn strip_meta(params: &mut Map<String, Value>) {
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.remove("progressToken");
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
}

fn params_map(req: &Request) -> Result<Map<String, Value>, Error> {
    match &req.params {
        None => Ok(Map::new()),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| Error::BadRequest(format!("{}: params must be an object: {e}", req.method))),
    }
}

fn raw(value: &impl Serialize) -> Result<Box<RawValue>, Error> {
    to_raw(value).map_err(|e| Error::BadRequest(format!("could not encode: {e}")))
}

impl Gateway {
    /// Starts the gateway: connects every upstream concurrently and waits until each has
    /// either connected (and been listed) or failed its first attempt; failed upstreams keep
    /// reconnecting with backoff. Name collisions found at start are logged and kept in
    /// [`Gateway::collisions`].
    pub async fn start(config: GatewayConfig) -> Result<Gateway, Error> {
        crate::observe::prometheus();
        let stop = CancellationToken::new();
        let upstreams: Vec<Arc<Upstream>> = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| Upstream::new(i as u64, u.clone(), config.circuit_breaker, stop.child_token()))
            .collect();
        let next_upstream = AtomicU64::new(upstreams.len() as u64);
        let live = Live::new(0, config, upstreams, None);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            live: RwLock::new(Arc::new(live)),
            reloading: tokio::sync::Mutex::new(()),
            next_upstream,
            health: Mutex::new(stop.child_token()),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            stop,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let live = shared.live();
        shared.connect_upstreams(&live.upstreams, live.config.backoff).await;
        shared.start_health_loop(live.config.health_interval);
        live.rebuild_index();
        let gateway = Gateway { shared };
        for c in gateway.collisions() {
            tracing::warn!(collision = %c, "name collision between upstreams");
        }
        tracing::info!(upstreams = ?gateway.upstream_states(), "gateway started");
        Ok(gateway)
    }

    /// The configuration it runs with (the one of the last successful [`Gateway::reload`]).
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.shared.live().config.clone()
    }

    /// Every upstream's name and state, in configuration order.
    pub fn upstream_states(&self) -> Vec<(String, UpstreamState)> {
        self.shared.live().upstreams.iter().map(|u| (u.config.name.clone(), u.state())).collect()
    }

    /// Every upstream's name and circuit-breaker state, in configuration order.
    pub fn breaker_states(&self) -> Vec<(String, crate::policy::BreakerState)> {
        Health::breaker_states(&*self.shared)
    }

    /// Name collisions between upstreams found when their lists were last read (a resource
    /// URI or template offered by two upstreams: the first in configuration order serves it).
    pub fn collisions(&self) -> Vec<String> {
        lock(&self.shared.live().collisions).clone()
    }

    /// Whether `/readyz` would answer 200.
    pub fn is_ready(&self) -> bool {
        self.shared.readiness().0
    }

    /// Result tokens (bytes / 4) the principal spent in its current token-budget window;
    /// `None` when it has no `token_budget`.
    pub fn tokens_spent(&self, principal: &str) -> Option<u64> {
        self.shared.live().budgets.spent(principal)
    }

    /// Number of downstream sessions currently open.
    pub fn session_count(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// The principal that `credentials` (and a Unix peer uid) name, as [`Gateway::serve`]
    /// would resolve it; for transports that check credentials before accepting. A JWT is
    /// verified (signature, algorithm, `exp`, `nbf`, `iss`, `aud`) and mapped; a refusal is
    /// [`Error::Unauthorized`] with the reason.
    pub fn principal_for(&self, credentials: &Credentials, uid: Option<u32>) -> Result<Principal, Error> {
        self.shared
            .live()
            .auth
            .resolve(credentials, uid)
            .map(|identity| identity.principal)
            .map_err(|reason| Error::Unauthorized { peer: "(not connected)".into(), reason })
    }

    /// Serves one downstream connection until it ends. The principal comes from
    /// `credentials`, else from the bearer token the connection presented
    /// (`transport.peer.bearer_token`: a digest in the config or a JWT), else from its verified
    /// TLS client certificate (`cert_sha256`), else from the Unix peer uid (`transport.peer.credentials`), else is `anonymous` when allowed. Returns the session's peer (its `closed()` resolves when the
    /// connection ends).
    ///
    /// The credentials are resolved again at every [`Gateway::reload`]: a session whose
    /// principal was removed (or whose token no longer matches) stays open, but its calls
    /// are refused with [`crate::FORBIDDEN`]. A session opened with a JWT is refused once the
    /// token's `exp` (plus the leeway) has passed.
    pub fn serve(&self, transport: Transport, credentials: Credentials) -> Result<Peer, Error> {
        let shared = &self.shared;
        if shared.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        // Explicit credentials win; otherwise the bearer token the connection presented
        // (WebSocket upgrade, Streamable HTTP request), if any.
        let credentials = match credentials {
            Credentials::None => match (&transport.peer.bearer_token, &transport.peer.client_certificate) {
                (Some(token), _) => Credentials::BearerToken(token.as_str().to_owned()),
                (None, Some(cert)) => Credentials::ClientCertificate(cert.sha256),
                (None, None) => Credentials::None,
            },
            explicit => explicit,
        };
        let uid = transport.peer.credentials.map(|c| c.uid);
        let address = transport.peer.address.clone();
        let live = shared.live();
        let identity = live
            .auth
            .resolve(&credentials, uid)
            .map_err(|reason| Error::Unauthorized { peer: address.clone(), reason })?;
        let principal_label = identity.principal.name.clone();
        let auth = Arc::new(SessionAuth {
            credentials,
            uid,
            peer: address.clone(),
            current: RwLock::new(Ok(Arc::new(identity))),
        });
        let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
        tracing::info!(peer = %address, principal = %principal_label, session, "downstream connected");
        // A client that sends requests without reading the answers is paused, not buffered.
        let (transport, gate) = crate::backpressure::gate(transport, crate::backpressure::MAX_UNANSWERED);
        let app = Arc::new(Downstream { shared: shared.clone(), session, auth: auth.clone(), gate });
        let peer = ServerSession::serve(app, transport, PeerConfig::default());
        {
            let mut sessions = lock(&shared.sessions);
            sessions.insert(
                session,
                SessionEntry { peer: peer.clone(), auth: auth.clone(), subscriptions: HashSet::new() },
            );
            // A reload that swapped the configuration after it was read above has re-resolved
            // the sessions it saw, not this one: resolve it here (under the same lock).
            let now = shared.live();
            if now.generation != live.generation {
                auth.refresh(&now.auth);
            }
        }
        metrics::gauge!("mcp_gateway_sessions", "principal" => principal_label.clone()).increment(1.0);
        let weak = Arc::downgrade(shared);
        let watched = peer.clone();
        tokio::spawn(async move {
            watched.closed().await;
            metrics::gauge!("mcp_gateway_sessions", "principal" => principal_label).decrement(1.0);
            if let Some(shared) = weak.upgrade() {
                lock(&shared.sessions).remove(&session);
            }
            tracing::info!(session, "downstream closed");
        });
        Ok(peer)
    }

    /// The admin router: `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_router(&self) -> axum::Router {
        let health: Arc<dyn Health> = self.shared.clone();
        admin_router(health)
    }

    /// Binds the admin listener and serves [`Gateway::admin_router`] on it until shutdown.
    /// Returns the bound address (useful with port 0).
    pub async fn serve_admin(&self, addr: &str) -> Result<SocketAddr, Error> {
        let admin_err = |source| Error::Admin { addr: addr.to_owned(), source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(admin_err)?;
        let local = listener.local_addr().map_err(admin_err)?;
        let router = self.admin_router();
        let stop = self.shared.stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "admin listener failed");
            }
        });
        tracing::info!(%local, "admin listener ready");
        Ok(local)
    }

    /// Applies a new configuration without dropping sessions (for SIGHUP), and returns when
    /// it is in effect:
    ///
    /// - principals, tokens, `[jwt]` (secret and key set as read by
    ///   [`GatewayConfig::load`]), `allow_anonymous`, allow-lists: every open session's
    ///   credentials are resolved again; sessions that no longer resolve stay open but their
    ///   calls are refused ([`ReloadReport::sessions_refused`]);
    /// - `rate_limits`, upstream `rate_limit`s, `token_budget`s: limiters whose rate did not
    ///   change keep what they counted; budget windows keep what was spent;
    /// - `[cache]`: unchanged settings keep the cache, changed ones start an empty one;
    /// - `[circuit_breaker]`: new thresholds apply to every upstream's breaker from its next
    ///   call (its current state is kept); `health_interval` restarts the health pings;
    /// - `separator`: the new one names tools and prompts from the next request;
    /// - upstreams: new ones connect (this waits for their first attempt, as
    ///   [`Gateway::start`] does); removed ones leave the lists at once, then their calls in
    ///   flight finish (within the upstream's `request_timeout`) before the connection
    ///   closes (this waits for that too); ones whose settings changed (other than
    ///   `rate_limit`) are replaced the same way; unchanged ones keep their connection.
    ///
    /// Every session gets `notifications/tools/list_changed`, `prompts/list_changed` and
    /// `resources/list_changed`. `listen` and `admin` cannot change live: they are reported
    /// in [`ReloadReport::needs_restart`] and the running ones stay. Reloads run one at a
    /// time; refused with [`Error::ShuttingDown`] once [`Gateway::shutdown`] started.
    pub async fn reload(&self, new: GatewayConfig) -> Result<ReloadReport, Error> {
        let shared = &self.shared;
        let _one_at_a_time = shared.reloading.lock().await;
        if shared.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let old = shared.live();
        let mut report = ReloadReport::default();
        if new.listen != old.config.listen {
            report.needs_restart.push("listen".into());
        }
        if new.admin != old.config.admin {
            report.needs_restart.push("admin".into());
        }
        if new.backoff != old.config.backoff {
            report.needs_restart.push("backoff".into());
        }
        let mut upstreams = Vec::new();
        let mut added = Vec::new();
        let mut retired = Vec::new();
        for config in &new.upstreams {
            let current = old.upstreams.iter().find(|u| u.config.name == config.name);
            match current {
                Some(u) if same_connection(&u.config, config) => {
                    u.breaker().set_config(new.circuit_breaker);
                    report.upstreams_kept.push(config.name.clone());
                    upstreams.push(u.clone());
                    continue;
                }
                Some(u) => {
                    report.upstreams_reconnected.push(config.name.clone());
                    retired.push(u.clone());
                }
                None => report.upstreams_added.push(config.name.clone()),
            }
            let id = shared.next_upstream.fetch_add(1, Ordering::Relaxed);
            let u = Upstream::new(id, config.clone(), new.circuit_breaker, shared.stop.child_token());
            added.push(u.clone());
            upstreams.push(u);
        }
        for u in &old.upstreams {
            if !new.upstreams.iter().any(|c| c.name == u.config.name) {
                report.upstreams_removed.push(u.config.name.clone());
                retired.push(u.clone());
            }
        }
        let names = |c: &GatewayConfig| c.principals.iter().map(|p| p.name.clone()).collect::<HashSet<_>>();
        let (before, after) = (names(&old.config), names(&new));
        report.principals_added =
            new.principals.iter().map(|p| &p.name).filter(|n| !before.contains(*n)).cloned().collect();
        report.principals_removed =
            old.config.principals.iter().map(|p| &p.name).filter(|n| !after.contains(*n)).cloned().collect();
        let health_changed = new.health_interval != old.config.health_interval;
        let backoff = new.backoff;
        let live = Arc::new(Live::new(old.generation + 1, new, upstreams, Some(&old)));
        live.rebuild_index();
        *shared.live.write().unwrap_or_else(|p| p.into_inner()) = live.clone();
        // Upstreams that became ready while the new state was built are in the index now.
        live.rebuild_index();
        {
            let sessions = lock(&shared.sessions);
            for s in sessions.values() {
                if !s.auth.refresh(&live.auth) {
                    report.sessions_refused += 1;
                }
            }
        }
        if health_changed {
            shared.start_health_loop(live.config.health_interval);
        }
        tracing::info!(
            generation = live.generation,
            added = ?report.upstreams_added,
            removed = ?report.upstreams_removed,
            reconnected = ?report.upstreams_reconnected,
            sessions_refused = report.sessions_refused,
            "configuration reloaded"
        );
        let connecting = shared.connect_upstreams(&added, backoff);
        let retiring = async {
            for u in &retired {
                retire(u).await;
            }
        };
        tokio::join!(connecting, retiring);
        live.rebuild_index();
        report.collisions = lock(&live.collisions).clone();
        shared.announce_list_changes();
        Ok(report)
    }

    /// Stops accepting connections and calls, waits up to `deadline` for calls in flight to
    /// finish, then closes every downstream session and upstream connection.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let shared = &self.shared;
        shared.draining.store(true, Ordering::Release);
        let drained = tokio::time::timeout(deadline, async {
            loop {
                let idle = shared.idle.notified();
                if shared.in_flight.load(Ordering::Acquire) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        let abandoned = if drained.is_ok() { 0 } else { shared.in_flight.load(Ordering::Acquire) };
        // The session layer writes an answer right after its handler returns: give the last
        // answers that moment before the sessions close.
        tokio::time::sleep(ANSWER_GRACE).await;
        let sessions: Vec<Peer> = lock(&shared.sessions).drain().map(|(_, s)| s.peer).collect();
        for peer in sessions {
            peer.shutdown();
        }
        shared.stop.cancel();
        for u in &shared.live().upstreams {
            let mut rx = u.watch_state();
            let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s == UpstreamState::Down)).await;
        }
        tracing::info!(abandoned, "gateway stopped");
        ShutdownReport { abandoned }
    }
}

/// Whether two settings of one upstream can share a connection (only `rate_limit`, which
/// the limiters apply, differs).
fn same_connection(a: &crate::config::UpstreamConfig, b: &crate::config::UpstreamConfig) -> bool {
    let strip = |c: &crate::config::UpstreamConfig| crate::config::UpstreamConfig { rate_limit: None, ..c.clone() };
    strip(a) == strip(b)
}

/// Drains an upstream a reload removed or replaced (its calls in flight finish, within its
/// `request_timeout`), then closes its connection.
async fn retire(u: &Arc<Upstream>) {
    let name = &u.config.name;
    if tokio::time::timeout(u.config.request_timeout, u.drained()).await.is_err() {
        tracing::warn!(upstream = %name, "calls still in flight after request_timeout; closing anyway");
    }
    u.stop.cancel();
    let mut rx = u.watch_state();
    let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s == UpstreamState::Down)).await;
    tracing::info!(upstream = %name, "upstream retired");
}

async fn health_loop(shared: Weak<Shared>, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(s) = shared.upgrade() else { return };
        let ups: Vec<Arc<Upstream>> =
            s.live().upstreams.iter().filter(|u| u.state() == UpstreamState::Ready).cloned().collect();
        drop(s);
        for u in ups {
            let timeout = u.config.request_timeout.min(interval);
            let outcome = u.ping(timeout).await;
            let now = Instant::now();
            match outcome {
                Ok(()) => u.breaker().on_success(now),
                Err(e) => {
                    tracing::warn!(upstream = %u.config.name, error = %e, "health ping failed");
                    u.breaker().on_failure(now);
                }
            }
        }
    }
}

impl Shared {
    /// The current live state.
    fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts the connection tasks of `upstreams` and waits for each first attempt (connect
    /// and listing), bounded by its connect timeout plus a listing allowance.
    async fn connect_upstreams(&self, upstreams: &[Arc<Upstream>], backoff: crate::config::BackoffConfig) {
        let Some(me) = self.me.upgrade() else { return };
        let hub: Weak<dyn Hub> = {
            let strong: Arc<dyn Hub> = me;
            Arc::downgrade(&strong)
        };
        for u in upstreams {
            let span = tracing::info_span!("upstream", name = %u.config.name);
            tokio::spawn(u.clone().run(hub.clone(), backoff, u.stop.clone()).instrument(span));
        }
        for u in upstreams {
            let mut rx = u.watch_state();
            let bound = u.config.connect_timeout + u.config.request_timeout.min(Duration::from_secs(10));
            let _ = tokio::time::timeout(bound, rx.wait_for(|s| *s != UpstreamState::Connecting)).await;
        }
    }

    /// (Re)starts the health loop with `interval` (`None`: no pings).
    fn start_health_loop(&self, interval: Option<Duration>) {
        let token = self.stop.child_token();
        let previous = std::mem::replace(&mut *lock(&self.health), token.clone());
        previous.cancel();
        if let Some(interval) = interval {
            tokio::spawn(health_loop(self.me.clone(), interval, token));
        }
    }

    /// Tells every client that the aggregated lists changed.
    fn announce_list_changes(&self) {
        for method in [
            "notifications/tools/list_changed",
            "notifications/prompts/list_changed",
            "notifications/resources/list_changed",
        ] {
            if let Ok(n) = Notification::new(method, &json!({})) {
                self.broadcast(&n, |_| true);
            }
        }
    }

    fn broadcast(&self, n: &Notification, filter: impl Fn(&SessionEntry) -> bool) {
        let peers: Vec<Peer> = lock(&self.sessions).values().filter(|s| filter(s)).map(|s| s.peer.clone()).collect();
        for peer in peers {
            if let Err(e) = peer.sender().try_send(n.clone()) {
                tracing::debug!(error = %e, method = %n.method, "notification not passed on");
            }
        }
    }

    fn enter(self: &Arc<Self>) -> Result<InFlight, Error> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight { shared: self.clone() };
        if self.draining.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(guard)
    }
}

impl Live {
    fn upstream(&self, name: &str, what: &str) -> Result<&Arc<Upstream>, Error> {
        self.by_name
            .get(name)
            .map(|i| &self.upstreams[*i])
            .ok_or_else(|| Error::UnknownUpstream { what: what.to_owned(), upstream: name.to_owned() })
    }

    /// Rebuilds the URI index from every ready upstream's catalog and records collisions.
    fn rebuild_index(&self) {
        let mut index = UriIndex::default();
        let mut collisions = Vec::new();
        let mut template_owner: HashMap<String, Arc<Upstream>> = HashMap::new();
        for u in &self.upstreams {
            if u.state() != UpstreamState::Ready {
                continue;
            }
            let catalog = u.catalog();
            for uri in catalog.resources {
                if let Some(first) = index.exact.get(&uri) {
                    if first.id != u.id {
                        let first = &first.config.name;
                        collisions.push(format!(
                            "resource {uri} is offered by {first} and {}; {first} serves it",
                            u.config.name
                        ));
                    }
                } else {
                    index.exact.insert(uri, u.clone());
                }
            }
            for template in catalog.templates {
                if let Some(first) = template_owner.get(&template) {
                    if first.id != u.id {
                        let first = &first.config.name;
                        collisions.push(format!(
                            "resource template {template} is offered by {first} and {}; {first} serves it",
                            u.config.name
                        ));
                    }
                    continue;
                }
                template_owner.insert(template.clone(), u.clone());
                let prefix = template.split('{').next().unwrap_or_default().to_owned();
                index.templates.push((prefix, u.clone()));
            }
            let mut seen = HashSet::new();
            for tool in &catalog.tools {
                if !seen.insert(tool) {
                    collisions.push(format!("upstream {} lists tool {tool:?} twice", u.config.name));
                }
            }
        }
        index.templates.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        *self.uris.write().unwrap_or_else(|p| p.into_inner()) = index;
        *lock(&self.collisions) = collisions;
    }

    /// The upstream that serves a resource URI.
    fn route_uri(&self, uri: &str) -> Result<Arc<Upstream>, Error> {
        {
            let index = self.uris.read().unwrap_or_else(|p| p.into_inner());
            if let Some(u) = index.exact.get(uri) {
                return Ok(u.clone());
            }
            if let Some((_, u)) =
                index.templates.iter().find(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
            {
                return Ok(u.clone());
            }
        }
        let mut serving = self.upstreams.iter().filter(|u| u.offers("resources"));
        match (serving.next(), serving.next()) {
            (Some(only), None) => Ok(only.clone()),
            _ => Err(Error::BadRequest(format!("no upstream is known to serve resource {uri:?}"))),
        }
    }
}

impl Health for Shared {
    fn readiness(&self) -> (bool, String) {
        let mut text = String::new();
        let mut required_ok = true;
        let mut any_required = false;
        let mut any_ready = false;
        for u in &self.live().upstreams {
            let state = u.state();
            let breaker = u.breaker().state(Instant::now());
            let required = if u.config.required { " (required)" } else { "" };
            text.push_str(&format!("{} {state:?} circuit {breaker:?}{required}\n", u.config.name));
            any_ready |= state == UpstreamState::Ready;
            if u.config.required {
                any_required = true;
                required_ok &= state == UpstreamState::Ready;
            }
        }
        let draining = self.draining.load(Ordering::Acquire);
        let ready = !draining && if any_required { required_ok } else { any_ready };
        if draining {
            text.push_str("shutting down\n");
        }
        (ready, text)
    }

    fn breaker_states(&self) -> Vec<(String, crate::policy::BreakerState)> {
        let now = Instant::now();
        self.live().upstreams.iter().map(|u| (u.config.name.clone(), u.breaker().state(now))).collect()
    }

    fn refresh_gauges(&self) {
        self.live().budgets.refresh(Instant::now());
    }
}

impl Hub for Shared {
    fn catalog_changed(&self, _upstream: &Arc<Upstream>) {
        self.live().rebuild_index();
        // The aggregated lists changed: tell every client.
        self.announce_list_changes();
    }

    fn upstream_notification(&self, upstream: &Arc<Upstream>, n: Notification) {
        match n.method.as_str() {
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => {
                upstream.bump_generation();
                // Refresh this upstream's catalog, then pass the notification on. A flood of
                // notifications costs one refresh at a time and one notification per kind.
                if !upstream.queue_refresh(n) {
                    return;
                }
                let u = upstream.clone();
                let hub = self.me.clone();
                tokio::spawn(async move {
                    while let Some(batch) = u.take_refresh_batch() {
                        u.refresh_catalog().await;
                        let Some(shared) = hub.upgrade() else { return };
                        shared.live().rebuild_index();
                        for n in batch {
                            shared.broadcast(&n, |s| s.auth.may_use_upstream(&u.config.name));
                        }
                    }
                });
            }
            "notifications/resources/updated" => {
                let uri = n.params.as_ref().and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
                let uri = uri.as_ref().and_then(|v| v.get("uri")).and_then(Value::as_str).map(str::to_owned);
                if let Some(uri) = uri {
                    let name = &upstream.config.name;
                    self.broadcast(&n, |s| s.subscriptions.contains(&uri) && s.auth.may_use_upstream(name));
                }
            }
            "notifications/message" => {
                // Log messages go to the clients with calls in flight on this upstream.
                let callers: HashSet<u64> = upstream.callers().into_iter().map(|(id, _)| id).collect();
                let sessions = lock(&self.sessions);
                let peers: Vec<Peer> =
                    sessions.iter().filter(|(id, _)| callers.contains(id)).map(|(_, s)| s.peer.clone()).collect();
                drop(sessions);
                for peer in peers {
                    let _ = peer.sender().try_send(n.clone());
                }
            }
            other => tracing::debug!(upstream = %upstream.config.name, method = other, "upstream notification ignored"),
        }
    }

    fn upstream_request(
        &self,
        upstream: &Arc<Upstream>,
        req: Request,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let upstream = upstream.clone();
        Box::pin(async move {
            match req.method.as_str() {
                "sampling/createMessage" | "elicitation/create" | "roots/list" => {}
                other => return Err(ErrorObject::method_not_found(other)),
            }
            let callers = upstream.callers();
            let peer = match callers.as_slice() {
                [(_, peer)] => peer.clone(),
                [] => {
                    return Err(ErrorObject::internal(format!(
                        "{}: no client has a call in flight on upstream {}, so there is no client to ask",
                        req.method, upstream.config.name
                    )));
                }
                _ => {
                    return Err(ErrorObject::internal(format!(
                        "{}: several clients have calls in flight on upstream {}; the gateway cannot tell which one to ask",
                        req.method, upstream.config.name
                    )));
                }
            };
            let opts = RequestOptions { timeout: Some(upstream.config.request_timeout), progress: None };
            peer.request_raw(&req.method, req.params, opts).await.map_err(|e| match e {
                mcp_session::SessionError::Rpc { error, .. } => error,
                other => ErrorObject::internal(format!("the client did not answer {}: {other}", req.method)),
            })
        })
    }
}

/// The gateway as one downstream connection's MCP server.
struct Downstream {
    shared: Arc<Shared>,
    session: u64,
    auth: Arc<SessionAuth>,
    /// The session's request permits (see [`crate::backpressure`]).
    gate: Arc<crate::backpressure::Gate>,
}

impl McpServer for Downstream {
    fn notification(&self, n: Notification, _peer: &Peer) {
        // A client's roots changed: tell the upstreams it may use (their roots/list requests
        // come back to a client with a call in flight).
        if n.method == "notifications/roots/list_changed" {
            let live = self.shared.live();
            for u in live.upstreams.iter().filter(|u| self.auth.may_use_upstream(&u.config.name)) {
                if let Some(client) = u.client()
                    && let Err(e) = client.peer().sender().try_send(n.clone())
                {
                    tracing::debug!(upstream = %u.config.name, error = %e, "roots change not passed on");
                }
            }
        }
    }

    fn server_info(&self) -> Implementation {
        Implementation::new("mcp-gateway", env!("CARGO_PKG_VERSION"))
    }

    fn capabilities(&self) -> Value {
        json!({
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "completions": {},
            "logging": {},
        })
    }

    fn call(
        &self,
        req: Request,
        ctx: RequestContext,
        _version: &'static str,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let shared = self.shared.clone();
        let auth = self.auth.clone();
        let session = self.session;
        let live = shared.live();
        // Who the session is under the configuration this request runs with.
        let identity = auth.current().and_then(|id| match live.auth.expired(&id) {
            Some(reason) => Err(reason),
            None => Ok(id),
        });
        let name = identity.as_ref().map_or("(refused)", |id| id.principal.name.as_str());
        let span = tracing::info_span!("downstream_request", principal = %name, session, method = %req.method);
        // The request's permit: held while it is served (dropped with the request if it is
        // cancelled), then left with the answer until that is queued for writing.
        let gate = self.gate.clone();
        let permit = gate.take(&ctx.id);
        let id = ctx.id.clone();
        Box::pin(
            async move {
                let outcome = async {
                    let _in_flight = shared.enter().map_err(|e| e.to_error_object())?;
                    let identity = identity
                        .map_err(|reason| Error::Unauthorized { peer: auth.peer.clone(), reason }.to_error_object())?;
                    dispatch(&shared, &live, &identity.principal, session, req, ctx).await.map_err(|e| {
                        tracing::debug!(error = %e, "request failed");
                        e.to_error_object()
                    })
                }
                .await;
                if let Some(permit) = permit {
                    gate.give_back(id, permit);
                }
                outcome
            }
            .instrument(span),
        )
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    live: &Live,
    principal: &Principal,
    session: u64,
    req: Request,
    ctx: RequestContext,
) -> Result<Box<RawValue>, Error> {
    match req.method.as_str() {
        "tools/list" => list(live, principal, ListKind::Tools, &req).await,
        "prompts/list" => list(live, principal, ListKind::Prompts, &req).await,
        "resources/list" => list(live, principal, ListKind::Resources, &req).await,
        "resources/templates/list" => list(live, principal, ListKind::Templates, &req).await,
        "tools/call" => by_name(live, principal, session, "tools/call", req, ctx).await,
        "prompts/get" => by_name(live, principal, session, "prompts/get", req, ctx).await,
        "resources/read" => by_uri(live, principal, session, "resources/read", req, ctx).await,
        "resources/subscribe" => {
            let uri = uri_param(&req)?;
            let result = by_uri(live, principal, session, "resources/subscribe", req, ctx).await?;
            if let Some(s) = lock(&shared.sessions).get_mut(&session)
                && s.subscriptions.len() < 10_000
            {
                s.subscriptions.insert(uri);
            }
            Ok(result)
        }
        "resources/unsubscribe" => {
            let uri = uri_param(&req)?;
            if let Some(s) = lock(&shared.sessions).get_mut(&session) {
                s.subscriptions.remove(&uri);
            }
            by_uri(live, principal, session, "resources/unsubscribe", req, ctx).await
        }
        "completion/complete" => complete(live, principal, session, req, ctx).await,
        "logging/setLevel" => {
            let mut params = params_map(&req)?;
            strip_meta(&mut params);
            for u in live.upstreams.iter().filter(|u| u.state() == UpstreamState::Ready) {
                if principal.may_use_upstream(&u.config.name)
                    && u.capabilities().is_some_and(|c| c.get("logging").is_some())
                    && let Err(e) = u.request("logging/setLevel", Some(raw(&params)?), RequestOptions::default()).await
                {
                    tracing::warn!(upstream = %u.config.name, error = %e, "logging/setLevel failed");
                }
            }
            raw(&json!({}))
        }
        other => Err(Error::MethodNotFound(other.to_owned())),
    }
}

fn uri_param(req: &Request) -> Result<String, Error> {
    params_map(req)?
        .get("uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::BadRequest(format!("{}: params.uri (a string) is required", req.method)))
}

/// The item of a call and its metrics label: its name when the upstream listed it, else
/// `other` (empty for requests about no item).
fn item_label(item: Option<(String, bool)>) -> (Option<String>, String) {
    match item {
        Some((name, known)) => {
            let label = if known { name.clone() } else { "other".to_owned() };
            (Some(name), label)
        }
        None => (None, String::new()),
    }
}

/// Who makes a request: the principal and the downstream session.
#[derive(Clone, Copy)]
struct Who<'a> {
    principal: &'a Principal,
    session: u64,
}

#[allow(clippy::too_many_arguments)] // the parts of one call; a struct would only rename them
async fn forward(
    shared: &Live,
    who: Who<'_>,
    upstream: &Arc<Upstream>,
    method: &'static str,
    item: Option<(String, bool)>,
    params: Map<String, Value>,
    ctx: &RequestContext,
    cached: Cached,
) -> Result<Box<RawValue>, Error> {
    let Who { principal, session } = who;
    let _caller = upstream.enter_caller(session, &ctx.peer);
    let (progress, relay) = match &ctx.progress_token {
        Some(token) => {
            let (tx, mut rx) = mpsc::channel::<ProgressParams>(PROGRESS_QUEUE);
            let peer = ctx.peer.clone();
            let token: Id = token.clone();
            let relay = tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    let p = ProgressParams { progress_token: token.clone(), ..p };
                    if let Err(e) = peer.notify("notifications/progress", &p).await {
                        tracing::debug!(error = %e, "progress not passed on");
                        break;
                    }
                }
            });
            (Some(tx), Some(relay))
        }
        None => (None, None),
    };
    let (item, label) = item_label(item);
    let call = Call {
        upstream: upstream.clone(),
        principal: principal.name.as_str().into(),
        method,
        item,
        label,
        params: Some(raw(&params)?),
        progress,
        cached,
    };
    let mut stack = shared.stack.clone();
    let result = stack.call(call).await;
    if let Some(relay) = relay {
        // The upstream session dropped its progress sender when the call ended: the relay
        // finishes once it has passed on what was queued, before the result goes out.
        let _ = relay.await;
    }
    result
}

async fn list(shared: &Live, principal: &Principal, kind: ListKind, req: &Request) -> Result<Box<RawValue>, Error> {
    let params = params_map(req)?;
    let mut cursor = match params.get("cursor") {
        None | Some(Value::Null) => Cursor { u: 0, c: None },
        Some(Value::String(s)) => Cursor::decode(s)?,
        Some(_) => return Err(Error::BadRequest(format!("{}: cursor must be a string", kind.method()))),
    };
    let usable = |u: &Upstream| u.offers(kind.capability()) && principal.may_use_upstream(&u.config.name);
    let sep = &shared.config.separator;
    // Each page is one page of one upstream; empty pages are skipped.
    for _ in 0..=shared.upstreams.len() {
        let Some(upstream) = shared.upstreams.get(cursor.u) else { break };
        let next_upstream = || {
            (cursor.u + 1..shared.upstreams.len())
                .find(|i| usable(&shared.upstreams[*i]))
                .map(|u| Cursor { u, c: None })
        };
        if !usable(upstream) {
            match next_upstream() {
                Some(next) => {
                    cursor = next;
                    continue;
                }
                None => break,
            }
        }
        let mut up_params = Map::new();
        if let Some(c) = &cursor.c {
            up_params.insert("cursor".into(), Value::String(c.clone()));
        }
        let call = Call {
            upstream: upstream.clone(),
            principal: principal.name.as_str().into(),
            method: kind.method(),
            item: None,
            label: String::new(),
            params: Some(raw(&up_params)?),
            progress: None,
            cached: Cached::Off,
        };
        // List pages are cached without the principal: they hold what the upstream lists to
        // the gateway, and are filtered for the principal below.
        let key = shared.cache.as_ref().filter(|c| c.caches_lists()).map(|_| Key {
            upstream: upstream.id,
            generation: upstream.generation(),
            method: kind.method(),
            principal: None,
            detail: cursor.c.clone().unwrap_or_default(),
        });
        let call = match (&shared.cache, &key) {
            (Some(cache), Some(key)) => match cache.get(key) {
                Some(hit) => Call { cached: Cached::Hit(hit), ..call },
                None => Call { cached: Cached::Miss, ..call },
            },
            _ => call,
        };
        let was_hit = matches!(call.cached, Cached::Hit(_));
        let page = shared.stack.clone().call(call).await;
        if let (Some(cache), Some(key), Ok(page), false) = (&shared.cache, key, &page, was_hit) {
            cache.insert(key, page);
        }
        if let Err(e @ (Error::RateLimited { .. } | Error::TokenBudgetExhausted { .. })) = page {
            return Err(e);
        }
        let page: Value = match page.and_then(|raw| {
            serde_json::from_str(raw.get())
                .map_err(|e| Error::BadRequest(format!("{}: bad list result: {e}", upstream.config.name)))
        }) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(upstream = %upstream.config.name, method = kind.method(), error = %e, "listing failed; upstream skipped");
                Value::Null
            }
        };
        let mut items = Vec::new();
        for mut item in page.get(kind.field()).and_then(Value::as_array).cloned().unwrap_or_default() {
            match kind {
                ListKind::Tools | ListKind::Prompts => {
                    let Some(name) = item.get("name").and_then(Value::as_str) else { continue };
                    let full = format!("{}{sep}{name}", upstream.config.name);
                    if matches!(kind, ListKind::Tools) && !principal.may_use_tool(&upstream.config.name, &full) {
                        continue;
                    }
                    item["name"] = Value::String(full);
                }
                ListKind::Resources | ListKind::Templates => {}
            }
            items.push(item);
        }
        let next = match page.get("nextCursor").and_then(Value::as_str) {
            Some(c) if Some(c) != cursor.c.as_deref() => Some(Cursor { u: cursor.u, c: Some(c.to_owned()) }),
            _ => next_upstream(),
        };
        if items.is_empty()
            && let Some(n) = next
        {
            cursor = n;
            continue;
        }
        let mut result = Map::new();
        result.insert(kind.field().into(), Value::Array(items));
        if let Some(n) = next {
            result.insert("nextCursor".into(), Value::String(n.encode()));
        }
        return raw(&result);
    }
    let mut result = Map::new();
    result.insert(kind.field().into(), Value::Array(Vec::new()));
    raw(&result)
}

/// `tools/call` and `prompts/get`: routed by the namespaced `name`.
async fn by_name(
    shared: &Live,
    principal: &Principal,
    session: u64,
    method: &'static str,
    req: Request,
    ctx: RequestContext,
) -> Result<Box<RawValue>, Error> {
    let mut params = params_map(&req)?;
    let full = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest(format!("{method}: params.name (a string) is required")))?
        .to_owned();
    let sep = &shared.config.separator;
    let (up_name, local) = full
        .split_once(sep.as_str())
        .ok_or_else(|| Error::BadRequest(format!("{method}: {full:?} is not namespaced as <upstream>{sep}<name>")))?;
    let upstream = shared.upstream(up_name, &full)?;
    let allowed = match method {
        "tools/call" => principal.may_use_tool(up_name, &full),
        _ => principal.may_use_upstream(up_name),
    };
    if !allowed {
        return Err(Error::Forbidden { principal: principal.name.clone(), target: full });
    }
    let catalog = upstream.catalog();
    let known = match method {
        "tools/call" => catalog.tools.iter().any(|t| t == local),
        _ => catalog.prompts.iter().any(|p| p == local),
    };
    params.insert("name".into(), Value::String(local.to_owned()));
    strip_meta(&mut params);
    let upstream = upstream.clone();
    // Results of tools declared idempotent are cached by arguments (not when the client
    // asked for progress, which a cached answer would not give).
    let key = match &shared.cache {
        Some(cache) if method == "tools/call" && ctx.progress_token.is_none() && cache.caches_tool(&full) => {
            let args = params.get("arguments").map(Value::to_string).unwrap_or_default();
            // Keyed by the principal: one principal's result is never served to another.
            Some(Key {
                upstream: upstream.id,
                generation: upstream.generation(),
                method,
                principal: Some(principal.name.clone()),
                detail: format!("{local}\u{0}{args}"),
            })
        }
        _ => None,
    };
    let cached = match (&shared.cache, &key) {
        (Some(cache), Some(key)) => match cache.get(key) {
            Some(hit) => Cached::Hit(hit),
            None => Cached::Miss,
        },
        _ => Cached::Off,
    };
    if let Cached::Hit(hit) = cached {
        // Answered through the stack (observed, counted against the budget), not forwarded.
        let (item, label) = item_label(Some((full, known)));
        let call = Call {
            upstream,
            principal: principal.name.as_str().into(),
            method,
            item,
            label,
            params: None,
            progress: None,
            cached: Cached::Hit(hit),
        };
        return shared.stack.clone().call(call).await;
    }
    let who = Who { principal, session };
    let result = forward(shared, who, &upstream, method, Some((full.clone(), known)), params, &ctx, cached).await?;
    if let (Some(cache), Some(key)) = (&shared.cache, key) {
        #[derive(Deserialize)]
        struct Outcome {
            #[serde(default, rename = "isError")]
            is_error: bool,
        }
        if serde_json::from_str::<Outcome>(result.get()).is_ok_and(|o| !o.is_error) {
            cache.insert(key, &result);
        }
    }
    Ok(result)
}

/// `resources/read`, `resources/subscribe`, `resources/unsubscribe`: routed by URI.
async fn by_uri(
    shared: &Live,
    principal: &Principal,
    session: u64,
    method: &'static str,
    req: Request,
    ctx: RequestContext,
) -> Result<Box<RawValue>, Error> {
    let mut params = params_map(&req)?;
    let uri = uri_param(&req)?;
    let upstream = shared.route_uri(&uri)?;
    if !principal.may_use_upstream(&upstream.config.name) {
        return Err(Error::Forbidden { principal: principal.name.clone(), target: uri });
    }
    strip_meta(&mut params);
    forward(shared, Who { principal, session }, &upstream, method, None, params, &ctx, Cached::Off).await
}

/// `completion/complete`: a prompt reference by its namespaced name, a resource reference by URI.
async fn complete(
    shared: &Live,
    principal: &Principal,
    session: u64,
    req: Request,
    ctx: RequestContext,
) -> Result<Box<RawValue>, Error> {
    let mut params = params_map(&req)?;
    let reference = params.get("ref").cloned().unwrap_or(Value::Null);
    let upstream = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let full = reference.get("name").and_then(Value::as_str).unwrap_or_default();
            let sep = &shared.config.separator;
            let (up, local) = full
                .split_once(sep.as_str())
                .ok_or_else(|| Error::BadRequest(format!("completion/complete: prompt {full:?} is not namespaced")))?;
            let upstream = shared.upstream(up, full)?.clone();
            params["ref"]["name"] = Value::String(local.to_owned());
            upstream
        }
        Some("ref/resource") => {
            let uri = reference.get("uri").and_then(Value::as_str).unwrap_or_default();
            shared.route_uri(uri)?
        }
        _ => return Err(Error::BadRequest("completion/complete: ref.type must be ref/prompt or ref/resource".into())),
    };
    if !principal.may_use_upstream(&upstream.config.name) {
        return Err(Error::Forbidden { principal: principal.name.clone(), target: upstream.config.name.clone() });
    }
    strip_meta(&mut params);
    forward(shared, Who { principal, session }, &upstream, "completion/complete", None, params, &ctx, Cached::Off).await
}
