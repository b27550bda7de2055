//! Policies applied to every forwarded request, as tower layers: per-principal token budgets
//! (fixed windows, time passed in), rate limits (governor) and a circuit breaker per upstream
//! (a small state machine with time passed in).
//!
//! The stack is `Observe → Budget → Replay → RateLimit → Breaker → Forward`: a response
//! found in the cache is answered by `Replay`, so it is observed and counted against the
//! principal's budget but not rate-limited and never reaches the upstream. Each layer fails with
//! [`crate::Error`], and [`crate::Error::to_error_object`] is the single point where those
//! failures become JSON-RPC errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use mcp_session::{Progress, RequestOptions};
use mcp_transport_core::RawValue;
use mcp_transport_core::transport::BoxFuture;
use tokio::sync::mpsc;
use tower::{Layer, Service};

use crate::Error;
use crate::config::{BreakerConfig, GatewayConfig, Rate, TokenBudget};
use crate::upstream::Upstream;

/// The state a circuit breaker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A limited number of probe calls pass; one success closes, one failure reopens.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

/// A circuit breaker: closed → (N consecutive failures) → open → (after `open_for`) →
/// half-open → (success) closed / (failure) open. Time is passed in, so it is deterministic.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, phase: Phase::Closed { failures: 0 } }
    }

    /// Applies new thresholds (a configuration reload); the current phase is kept and the
    /// new thresholds apply from the next call.
    pub fn set_config(&mut self, config: BreakerConfig) {
        self.config = config;
    }

    /// The state at `now` (an open breaker whose period has passed reports half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`: `Err(retry_after)` when refused. Every accepted call
    /// must be followed by [`on_success`](Self::on_success), [`on_failure`](Self::on_failure)
    /// or [`on_abandon`](Self::on_abandon).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.phase {
            Phase::Closed { .. } => Ok(()),
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { in_flight: 1 };
                Ok(())
            }
            Phase::Open { until } => Err(until - now),
            Phase::HalfOpen { in_flight } if in_flight < self.config.half_open_probes => {
                self.phase = Phase::HalfOpen { in_flight: in_flight + 1 };
                Ok(())
            }
            // Probes are out; their outcome decides. Suggest retrying after a short while.
            Phase::HalfOpen { .. } => Err(Duration::from_millis(100)),
        }
    }

    /// A call (or health ping) succeeded at `now`.
    pub fn on_success(&mut self, now: Instant) {
        match self.phase {
            Phase::Open { until } if now < until => {}
            _ => self.phase = Phase::Closed { failures: 0 },
        }
    }

    /// A call (or health ping) failed at `now`.
    pub fn on_failure(&mut self, now: Instant) {
        let open = Phase::Open { until: now + self.config.open_for };
        self.phase = match self.phase {
            Phase::Closed { failures } if failures + 1 >= self.config.failure_threshold => open,
            Phase::Closed { failures } => Phase::Closed { failures: failures + 1 },
            Phase::HalfOpen { .. } => open,
            Phase::Open { until } => Phase::Open { until },
        };
    }

    /// A fresh connection to the upstream completed its handshake: whatever failed before
    /// belonged to the old connection, so the breaker closes with no failures counted.
    pub fn reset(&mut self) {
        self.phase = Phase::Closed { failures: 0 };
    }

    /// An accepted call ended without a verdict (it was cancelled).
    pub fn on_abandon(&mut self) {
        if let Phase::HalfOpen { in_flight } = self.phase {
            self.phase = Phase::HalfOpen { in_flight: in_flight.saturating_sub(1) };
        }
    }
}

/// One request on its way to an upstream.
pub(crate) struct Call {
    /// The upstream it goes to.
    pub(crate) upstream: Arc<Upstream>,
    /// The principal making it.
    pub(crate) principal: Arc<str>,
    /// The MCP method.
    pub(crate) method: &'static str,
    /// The namespaced tool (`tools/call`) or prompt (`prompts/get`) name, for limits and metrics.
    pub(crate) item: Option<String>,
    /// The metrics label for the item: its name when the upstream listed it, else `other`
    /// (empty for requests about no item).
    pub(crate) label: String,
    /// Params as the upstream will receive them.
    pub(crate) params: Option<Box<RawValue>>,
    /// Where the upstream's progress goes, if the client asked for progress.
    pub(crate) progress: Option<mpsc::Sender<Progress>>,
    /// Whether the response cache answers it.
    pub(crate) cached: Cached,
}

/// A call's relation to the response cache.
pub(crate) enum Cached {
    /// Not cacheable (or no cache).
    Off,
    /// Cacheable, but not in the cache: forwarded.
    Miss,
    /// Answered from the cache with this response.
    Hit(Box<RawValue>),
}

impl Cached {
    /// The `cache` label of the request metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Cached::Off => "off",
            Cached::Miss => "miss",
            Cached::Hit(_) => "hit",
        }
    }
}

/// What a call yields.
pub(crate) type CallFuture = BoxFuture<'static, Result<Box<RawValue>, Error>>;

/// The innermost service: sends the call to its upstream.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Forward;

impl Service<Call> for Forward {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        Box::pin(async move {
            let opts = RequestOptions { timeout: Some(call.upstream.config.request_timeout), progress: call.progress };
            call.upstream.request(call.method, call.params, opts).await
        })
    }
}

/// A rate limiter and the rate it was built for (so a reload keeps the ones whose rate did
/// not change, with what they already counted).
type Limiter = (Rate, Arc<DefaultDirectRateLimiter>);

/// The rate limiters, built from the configuration (a bounded set: one per configured
/// scope, upstream and principal; never keyed by client input).
pub(crate) struct Limiters {
    global: Option<Limiter>,
    upstreams: HashMap<String, Limiter>,
    principals: HashMap<String, Limiter>,
    per_principal: Option<Rate>,
    tools: HashMap<String, Limiter>,
    clock: DefaultClock,
}

/// The limiter for `rate`: `old`'s when it has the same rate, else a new one.
fn limiter(old: Option<&Limiter>, rate: Rate) -> Limiter {
    match old {
        Some((r, l)) if *r == rate => (rate, l.clone()),
        _ => (rate, Arc::new(RateLimiter::direct(quota(rate)))),
    }
}

fn quota(rate: Rate) -> Quota {
    // `count` per `per`: one cell every per/count, bursts of up to `count`.
    let period = rate.per / rate.count.get();
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(rate.count))
        .allow_burst(rate.count)
}

impl Limiters {
    /// The limiters of `config`, keeping those of `old` whose scope and rate are unchanged.
    pub(crate) fn reloaded(old: Option<&Limiters>, config: &GatewayConfig) -> Self {
        let rl = &config.rate_limits;
        let upstreams = config
            .upstreams
            .iter()
            .filter_map(|u| {
                let previous = old.and_then(|o| o.upstreams.get(&u.name));
                u.rate_limit.or(rl.per_upstream).map(|r| (u.name.clone(), limiter(previous, r)))
            })
            .collect();
        let mut principals: HashMap<String, Limiter> = HashMap::new();
        if let Some(r) = rl.per_principal {
            for p in config.principals.iter().map(|p| p.name.as_str()).chain([crate::auth::ANONYMOUS]) {
                let previous = old.and_then(|o| o.principals.get(p));
                principals.insert(p.to_owned(), limiter(previous, r));
            }
        }
        Self {
            global: rl.global.map(|r| limiter(old.and_then(|o| o.global.as_ref()), r)),
            upstreams,
            principals,
            per_principal: rl.per_principal,
            tools: rl.tools.iter().map(|(t, r)| (t.clone(), limiter(old.and_then(|o| o.tools.get(t)), *r))).collect(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one cell from every limit that applies, or says which limit refused (and counts
    /// the refusal in `mcp_gateway_rate_limited_total{scope, target}`; scopes and targets come
    /// from the configuration, so the label set is bounded).
    pub(crate) fn check(&self, upstream: &str, principal: &str, item: Option<&str>) -> Result<(), Error> {
        let refuse = |scope: &'static str, target: &str, (_, limiter): &Limiter| match limiter.check() {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("mcp_gateway_rate_limited_total", "scope" => scope, "target" => target.to_owned())
                    .increment(1);
                let scope = if target.is_empty() { scope.to_owned() } else { format!("{scope} {target}") };
                Err(Error::RateLimited { scope, retry_after: not_until.wait_time_from(self.clock.now()) })
            }
        };
        if let Some(l) = &self.global {
            refuse("global", "", l)?;
        }
        if let Some(l) = self.upstreams.get(upstream) {
            refuse("upstream", upstream, l)?;
        }
        if let Some(l) = self.principals.get(principal) {
            refuse("principal", principal, l)?;
        } else if self.per_principal.is_some() {
            tracing::debug!(principal, "principal has no rate limiter");
        }
        if let Some(item) = item
            && let Some(l) = self.tools.get(item)
        {
            refuse("tool", item, l)?;
        }
        Ok(())
    }
}

/// Rate limits as a layer.
#[derive(Clone)]
pub(crate) struct RateLimitLayer {
    limiters: Arc<Limiters>,
}

impl RateLimitLayer {
    pub(crate) fn new(limiters: Arc<Limiters>) -> Self {
        Self { limiters }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, limiters: self.limiters.clone() }
    }
}

/// Refuses calls over any configured rate.
#[derive(Clone)]
pub(crate) struct RateLimit<S> {
    inner: S,
    limiters: Arc<Limiters>,
}

impl<S: Service<Call, Response = Box<RawValue>, Error = Error, Future = CallFuture>> Service<Call> for RateLimit<S> {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> CallFuture {
        match self.limiters.check(&call.upstream.config.name, &call.principal, call.item.as_deref()) {
            Ok(()) => self.inner.call(call),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// The result tokens of a response: its bytes / 4 (the estimate every token metric uses).
pub(crate) fn token_estimate(raw: &RawValue) -> u64 {
    raw.get().len() as u64 / 4
}

/// One principal's current window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// When it started (`None`: no window yet, or the last one ended).
    start: Option<Instant>,
    /// Tokens spent in it.
    spent: u64,
}

impl Window {
    /// Ends the window if `per` has passed since its start.
    fn roll(&mut self, per: Duration, now: Instant) {
        if let Some(start) = self.start
            && now.saturating_duration_since(start) >= per
        {
            *self = Window::default();
        }
    }
}

/// Per-principal token budgets: a fixed window per principal that starts at its first
/// request and lasts the budget's `per`; once the tokens spent in it reach the budget, the
/// principal's requests are refused until it ends. A request in flight when the budget is
/// reached still completes (its size is known only afterwards). Time is passed in.
///
/// One entry per configured principal with a `token_budget` (a bounded set, never keyed by
/// client input); other principals are unlimited.
#[derive(Debug)]
pub(crate) struct TokenBudgets {
    budgets: HashMap<String, (TokenBudget, Mutex<Window>)>,
}

impl TokenBudgets {
    /// The budgets of the configured principals (sets `mcp_gateway_principal_token_budget`),
    /// keeping the current windows of `old` (what each principal
    /// spent so far) for the principals that still have a budget; a new `tokens` or `per`
    /// applies to the current window.
    pub(crate) fn reloaded(old: Option<&TokenBudgets>, config: &GatewayConfig) -> Self {
        let budgets = config
            .principals
            .iter()
            .filter_map(|p| {
                let window = old
                    .and_then(|o| o.budgets.get(&p.name))
                    .map(|(_, w)| *w.lock().unwrap_or_else(|e| e.into_inner()))
                    .unwrap_or_default();
                p.token_budget.map(|b| (p.name.clone(), (b, Mutex::new(window))))
            })
            .collect::<HashMap<_, _>>();
        for (name, (budget, _)) in &budgets {
            metrics::gauge!("mcp_gateway_principal_token_budget", "principal" => name.clone())
                .set(budget.tokens as f64);
        }
        let budgets = Self { budgets };
        budgets.refresh(Instant::now());
        budgets
    }

    fn window(&self, principal: &str) -> Option<(TokenBudget, std::sync::MutexGuard<'_, Window>)> {
        let (budget, window) = self.budgets.get(principal)?;
        Some((*budget, window.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Whether `principal` may make a request at `now` (this starts its window if none runs).
    pub(crate) fn check(&self, principal: &str, now: Instant) -> Result<(), Error> {
        let Some((budget, mut w)) = self.window(principal) else { return Ok(()) };
        w.roll(budget.per, now);
        let start = *w.start.get_or_insert(now);
        if w.spent >= budget.tokens {
            return Err(Error::TokenBudgetExhausted {
                principal: principal.to_owned(),
                budget: budget.tokens,
                spent: w.spent,
                window: budget.per,
                resets_in: (start + budget.per).saturating_duration_since(now),
            });
        }
        Ok(())
    }

    /// Adds `tokens` to what `principal` spent in its window at `now`.
    pub(crate) fn spend(&self, principal: &str, tokens: u64, now: Instant) {
        let Some((budget, mut w)) = self.window(principal) else { return };
        w.roll(budget.per, now);
        w.start.get_or_insert(now);
        w.spent = w.spent.saturating_add(tokens);
        metrics::gauge!("mcp_gateway_principal_token_budget_spent", "principal" => principal.to_owned())
            .set(w.spent as f64);
    }

    /// Ends the windows that have passed at `now` (so `mcp_gateway_principal_token_budget_spent`
    /// falls back to 0 without waiting for the principal's next request).
    pub(crate) fn refresh(&self, now: Instant) {
        for (name, (budget, window)) in &self.budgets {
            let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
            w.roll(budget.per, now);
            metrics::gauge!("mcp_gateway_principal_token_budget_spent", "principal" => name.clone())
                .set(w.spent as f64);
        }
    }

    /// Tokens `principal` spent in its current window (`None`: it has no budget).
    pub(crate) fn spent(&self, principal: &str) -> Option<u64> {
        self.window(principal).map(|(_, w)| w.spent)
    }
}

/// Token budgets as a layer.
#[derive(Clone)]
pub(crate) struct BudgetLayer {
    budgets: Arc<TokenBudgets>,
}

impl BudgetLayer {
    pub(crate) fn new(budgets: Arc<TokenBudgets>) -> Self {
        Self { budgets }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;
    fn layer(&self, inner: S) -> Budget<S> {
        Budget { inner, budgets: self.budgets.clone() }
    }
}

/// Refuses the calls of a principal whose budget is spent, and counts what results cost.
#[derive(Clone)]
pub(crate) struct Budget<S> {
    inner: S,
    budgets: Arc<TokenBudgets>,
}

impl<S: Service<Call, Response = Box<RawValue>, Error = Error, Future = CallFuture>> Service<Call> for Budget<S> {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> CallFuture {
        let principal = call.principal.clone();
        if let Err(e) = self.budgets.check(&principal, Instant::now()) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let budgets = self.budgets.clone();
        let fut = self.inner.call(call);
        Box::pin(async move {
            let result = fut.await;
            if let Ok(raw) = &result {
                budgets.spend(&principal, token_estimate(raw), Instant::now());
            }
            result
        })
    }
}

/// Answers calls the cache already answered ([`Cached::Hit`]); forwards the others.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayLayer;

impl<S> Layer<S> for ReplayLayer {
    type Service = Replay<S>;
    fn layer(&self, inner: S) -> Replay<S> {
        Replay { inner }
    }
}

/// See [`ReplayLayer`].
#[derive(Clone)]
pub(crate) struct Replay<S> {
    inner: S,
}

impl<S: Service<Call, Response = Box<RawValue>, Error = Error, Future = CallFuture>> Service<Call> for Replay<S> {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> CallFuture {
        match std::mem::replace(&mut call.cached, Cached::Off) {
            Cached::Hit(raw) => Box::pin(std::future::ready(Ok(raw))),
            other => {
                call.cached = other;
                self.inner.call(call)
            }
        }
    }
}

/// The per-upstream circuit breaker as a layer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BreakerLayer;

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;
    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker { inner }
    }
}

/// Refuses calls to an upstream whose circuit is open, and records outcomes.
#[derive(Clone)]
pub(crate) struct Breaker<S> {
    inner: S,
}

/// Releases a half-open probe slot if the call is dropped before it finishes.
struct Verdict {
    upstream: Option<Arc<Upstream>>,
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if let Some(u) = self.upstream.take() {
            u.breaker().on_abandon();
        }
    }
}

impl<S: Service<Call, Response = Box<RawValue>, Error = Error, Future = CallFuture>> Service<Call> for Breaker<S> {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> CallFuture {
        let upstream = call.upstream.clone();
        if let Err(retry_after) = upstream.breaker().try_acquire(Instant::now()) {
            let e = Error::CircuitOpen { upstream: upstream.config.name.clone(), retry_after };
            return Box::pin(std::future::ready(Err(e)));
        }
        let fut = self.inner.call(call);
        Box::pin(async move {
            let mut verdict = Verdict { upstream: Some(upstream) };
            let result = fut.await;
            if let Some(u) = verdict.upstream.take() {
                match &result {
                    Err(e) if e.is_upstream_failure() => u.breaker().on_failure(Instant::now()),
                    _ => u.breaker().on_success(Instant::now()),
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, probes: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            open_for: Duration::from_secs(10),
            half_open_probes: probes,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_half_open() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1);
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success(t0);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed, "a success resets the count");
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.try_acquire(t0 + Duration::from_secs(4)), Err(Duration::from_secs(6)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(later), Ok(()), "one probe passes");
        assert!(b.try_acquire(later).is_err(), "a second probe waits");
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.try_acquire(later), Ok(()));
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_one_frees_its_slot() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1);
        b.on_failure(t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.try_acquire(t1), Ok(()));
        b.on_abandon();
        assert_eq!(b.try_acquire(t1), Ok(()), "the abandoned probe's slot is free again");
        b.on_failure(t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert_eq!(b.try_acquire(t1 + Duration::from_secs(1)), Err(Duration::from_secs(9)));
        b.on_success(t1 + Duration::from_secs(1));
        assert_eq!(b.state(t1 + Duration::from_secs(1)), BreakerState::Open, "early successes do not close");
        b.reset();
        assert_eq!(b.state(t1 + Duration::from_secs(1)), BreakerState::Closed, "a fresh connection does");
        assert_eq!(b.try_acquire(t1 + Duration::from_secs(1)), Ok(()));
    }

    fn budgets(text: &str) -> TokenBudgets {
        TokenBudgets::reloaded(None, &GatewayConfig::parse(text, "t.toml").unwrap())
    }

    #[test]
    fn a_spent_budget_refuses_until_its_fixed_window_ends() {
        let b = budgets(
            "[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 100, per = \"1h\" }\n\
             [[principal]]\nname = \"free\"\nuids = [2]\n",
        );
        let t0 = Instant::now();
        // The window starts at the first request, not at construction.
        let t1 = t0 + Duration::from_secs(7200);
        assert!(b.check("p", t1).is_ok());
        b.spend("p", 60, t1);
        assert!(b.check("p", t1 + Duration::from_secs(10)).is_ok(), "60 of 100 spent");
        b.spend("p", 40, t1 + Duration::from_secs(20));
        assert_eq!(b.spent("p"), Some(100));
        match b.check("p", t1 + Duration::from_secs(600)) {
            Err(Error::TokenBudgetExhausted { principal, budget, spent, window, resets_in }) => {
                assert_eq!((principal.as_str(), budget, spent), ("p", 100, 100));
                assert_eq!(window, Duration::from_secs(3600));
                assert_eq!(resets_in, Duration::from_secs(3000), "the window runs from the first request");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(b.check("p", t1 + Duration::from_secs(3599)).is_err(), "still the same window");
        // The fixed window ends an hour after it started: a fresh budget.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(b.check("p", t2).is_ok());
        assert_eq!(b.spent("p"), Some(0));
        b.spend("p", 500, t2 + Duration::from_secs(1));
        assert!(b.check("p", t2 + Duration::from_secs(2)).is_err(), "one large result spends it all");
        b.refresh(t2 + Duration::from_secs(3600));
        assert_eq!(b.spent("p"), Some(0), "refresh ends passed windows");
        // Principals without a budget are never refused.
        b.spend("free", u64::MAX, t0);
        assert!(b.check("free", t0).is_ok());
        assert_eq!(b.spent("free"), None);
        assert!(b.check("unknown", t0).is_ok());
    }

    #[test]
    fn limiters_refuse_with_scope_and_retry_after() {
        let text = r#"
[[upstream]]
name = "a"
url = "unix:///a.sock"
[[principal]]
name = "p"
uids = [1]
[rate_limits]
per_principal = "2/h"
tools = { "a__slow" = "1/h" }
"#;
        let config = GatewayConfig::parse(text, "t.toml").unwrap();
        let l = Limiters::reloaded(None, &config);
        assert!(l.check("a", "p", Some("a__slow")).is_ok());
        match l.check("a", "q", Some("a__slow")) {
            Err(Error::RateLimited { scope, retry_after }) => {
                assert_eq!(scope, "tool a__slow");
                assert!(retry_after > Duration::from_secs(60), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(l.check("a", "p", None).is_ok());
        match l.check("a", "p", None) {
            Err(Error::RateLimited { scope, .. }) => assert_eq!(scope, "principal p"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reload_keeps_unchanged_limiters_and_spent_budgets() {
        let text = |rate: &str, budget: u64| {
            format!(
                "[[upstream]]\nname = \"a\"\nurl = \"unix:///a.sock\"\n\
                 [[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = {{ tokens = {budget}, per = \"1h\" }}\n\
                 [rate_limits]\nper_principal = \"1/h\"\ntools = {{ \"a__t\" = \"{rate}\" }}\n"
            )
        };
        let first = GatewayConfig::parse(&text("1/h", 100), "t.toml").unwrap();
        let l = Limiters::reloaded(None, &first);
        assert!(l.check("a", "p", Some("a__t")).is_ok());
        // Same rates: what the limiters counted survives the reload.
        let same = Limiters::reloaded(Some(&l), &first);
        assert!(matches!(same.check("a", "p", None), Err(Error::RateLimited { .. })), "principal limiter kept");
        // A new tool rate starts a fresh limiter; the unchanged principal one is still spent.
        let changed = GatewayConfig::parse(&text("5/h", 100), "t.toml").unwrap();
        let l2 = Limiters::reloaded(Some(&same), &changed);
        match l2.check("a", "p", Some("a__t")) {
            Err(Error::RateLimited { scope, .. }) => assert_eq!(scope, "principal p"),
            other => panic!("{other:?}"),
        }
        assert!(l2.tools["a__t"].1.check().is_ok(), "the changed tool limit starts afresh");

        let b = TokenBudgets::reloaded(None, &first);
        let now = Instant::now();
        b.spend("p", 80, now);
        let smaller = GatewayConfig::parse(&text("1/h", 50), "t.toml").unwrap();
        let b2 = TokenBudgets::reloaded(Some(&b), &smaller);
        assert_eq!(b2.spent("p"), Some(80), "what was spent survives");
        assert!(matches!(b2.check("p", now), Err(Error::TokenBudgetExhausted { budget: 50, .. })));
    }

    #[test]
    fn new_breaker_thresholds_apply_to_the_next_failures() {
        let mut b = breaker(5, 1);
        let t = Instant::now();
        b.on_failure(t);
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Closed);
        b.set_config(BreakerConfig { failure_threshold: 3, open_for: Duration::from_secs(1), half_open_probes: 1 });
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Open, "the third failure reaches the new threshold");
    }
}
