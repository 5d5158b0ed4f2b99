//! Access control for every transport: who is calling ([`authn`], [`external`]), what each
//! operation needs ([`operation`]: the policy table), and the gate that applies both together
//! with quotas, the in-flight cap and the audit of `profiles:any` ([`Gate::admit`]).
//!
//! A transport does three things with this module and nothing else about access: it names the
//! [`Operation`] of a request, calls [`Gate::admit`] with the credential it received (the
//! `Authorization` header, the `authorization` gRPC metadata entry), and maps the
//! [`Admission`] to its protocol (statuses, RateLimit headers, gRPC details). Object rules
//! (whose profile, profile-bound tokens, recent sign-in) stay in the use cases, which read their
//! scope from the same table through [`crate::policy::require`].

pub mod authn;
pub mod external;
pub mod operation;

use std::sync::Arc;

use moka::sync::Cache;
use playhead_core::auth::{Principal, Scope, Subject};
use playhead_core::identity::AuditEntry;
use playhead_core::ports::IdentityStore;
use playhead_core::rate::{Quota, RateDecision};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use authn::{
    API_KEY_CACHE_SECS, Authenticator, MISSING_CREDENTIAL, RevocationVerdict, Revocations, RevokedSet,
    TokenRef,
};
pub use external::{ExternalIssuers, FetchFuture, JWKS_MIN_REFETCH, JwksFetcher};
pub use operation::{Access, Charge, Operation, Requirement};

use crate::limits::RouteClass;
use crate::{App, AppError};

/// The quota a request was charged to, and what the limiter decided (for RateLimit headers).
#[derive(Debug, Clone, Copy)]
pub struct Charged {
    /// The class charged.
    pub class: RouteClass,
    /// Its quota.
    pub quota: Quota,
    /// The limiter's decision.
    pub decision: RateDecision,
}

/// What the gate decided about one request.
#[derive(Debug)]
pub struct Admission {
    /// The verified caller, when a valid credential came with the request.
    pub principal: Option<Principal>,
    /// Set when the request must not run: the error to answer with.
    pub refusal: Option<AppError>,
    /// The quota charged, if any (transports report it even on refusals).
    pub charged: Option<Charged>,
    /// A service reached a named profile through `profiles:any`: report the outcome with
    /// [`Gate::audit_profile_access`].
    pub audit: bool,
    /// Held while the request runs (the per-principal in-flight cap).
    _permit: Option<OwnedSemaphorePermit>,
}

/// The gate every transport calls before running an operation.
pub struct Gate {
    app: App,
    authenticator: Arc<Authenticator>,
    in_flight: InFlight,
    audit: AuditSink,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("in_flight", &self.in_flight.max).finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate over `app`'s quotas, checking credentials with `authenticator`, allowing at most
    /// `max_in_flight` concurrent requests per principal, writing audit entries to `audit_store`
    /// (needs a Tokio runtime: the audit writer is a background task).
    pub fn new(
        app: App,
        authenticator: Arc<Authenticator>,
        max_in_flight: usize,
        audit_store: Arc<dyn IdentityStore>,
    ) -> Self {
        Self {
            app,
            authenticator,
            in_flight: InFlight::new(max_in_flight),
            audit: AuditSink::spawn(audit_store),
        }
    }

    /// Wait up to `within` until every audit entry recorded so far is written (graceful
    /// shutdown, after the last request finished); `false` when that did not happen in time.
    pub async fn flush_audit(&self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, self.audit.flush()).await.unwrap_or(false)
    }

    /// The authenticator (a transport that must verify a credential outside a request, such as
    /// a subscription's connection init, uses it directly).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }

    /// Decide whether a request for `op` may run: authenticate `authorization` (the header or
    /// metadata value, if any), charge the quota (the principal's, else the client address's
    /// `auth` class: `client_addr` is only called then), take an in-flight slot, and check the
    /// operation's requirement. The order is the contract: an unauthenticated flood is charged
    /// before it is refused, and a refused request still reports its quota.
    pub async fn admit(
        &self,
        op: Operation,
        authorization: Option<&[u8]>,
        client_addr: impl FnOnce() -> String,
    ) -> Admission {
        self.admit_with(op, authorization, client_addr, true).await
    }

    /// [`Gate::admit`] for an operation that runs inside a request already holding its in-flight
    /// slot (the second and later fields of one GraphQL request, a subscription that holds
    /// none while it streams): everything but taking another slot, so one request counts once
    /// against the per-principal concurrency cap however many operations it runs.
    pub async fn admit_nested(
        &self,
        op: Operation,
        authorization: Option<&[u8]>,
        client_addr: impl FnOnce() -> String,
    ) -> Admission {
        self.admit_with(op, authorization, client_addr, false).await
    }

    async fn admit_with(
        &self,
        op: Operation,
        authorization: Option<&[u8]>,
        client_addr: impl FnOnce() -> String,
        take_slot: bool,
    ) -> Admission {
        let mut admission =
            Admission { principal: None, refusal: None, charged: None, audit: false, _permit: None };
        let mut credential_error = None;
        if let Some(value) = authorization {
            match self.authenticator.authenticate(value).await {
                Ok(p) => admission.principal = Some(p),
                Err(e @ AppError::Unauthenticated { .. }) => credential_error = Some(e),
                // Our failure (revocations stale, an IdP's keys unreachable): 503, not 401.
                Err(e) => {
                    admission.refusal = Some(e);
                    return admission;
                }
            }
        }
        let requirement = op.requirement();
        if let Charge::Class(class) = requirement.charge {
            let (partition, class) = match &admission.principal {
                Some(p) => (partition_of(p), class),
                None => (format!("ip:{}", client_addr()), RouteClass::Auth),
            };
            if take_slot && admission.principal.is_some() {
                match self.in_flight.enter(&partition) {
                    Some(permit) => admission._permit = Some(permit),
                    None => {
                        admission.refusal = Some(AppError::TooManyInFlight { max: self.in_flight.max });
                        return admission;
                    }
                }
            }
            match self.app.charge(&partition, class, 1).await {
                Ok((decision, quota)) => {
                    admission.charged = Some(Charged { class, quota, decision });
                    if !decision.allowed {
                        admission.refusal = Some(AppError::RateLimited {
                            class,
                            quota,
                            retry_after_ms: decision.retry_after_ms,
                        });
                        return admission;
                    }
                }
                Err(e) => {
                    admission.refusal = Some(e);
                    return admission;
                }
            }
        }
        match requirement.access {
            Access::Public | Access::OAuthClient | Access::Browser => {}
            Access::Authenticated | Access::Scope(_) => match (&admission.principal, credential_error) {
                (Some(p), _) => {
                    if let Access::Scope(scope) = requirement.access
                        && !p.scopes.contains(scope)
                    {
                        admission.refusal = Some(AppError::MissingScope(scope));
                        return admission;
                    }
                    admission.audit = requirement.names_profile
                        && matches!(p.subject, Subject::Service { .. })
                        && p.scopes.contains(Scope::ProfilesAny);
                }
                (None, Some(e)) => admission.refusal = Some(e),
                (None, None) => {
                    admission.refusal = Some(AppError::Unauthenticated {
                        code: None,
                        description: MISSING_CREDENTIAL.into(),
                    });
                }
            },
        }
        admission
    }

    /// Record a service's `profiles:any` use of `op` on `profile` and how it ended (`outcome`:
    /// the transport's status), from `client_addr` (DESIGN.md: every such access is audited).
    /// The entry goes to a background writer, so this costs a channel send.
    pub async fn audit_profile_access(
        &self,
        principal: &Principal,
        op: Operation,
        route: &str,
        profile: &str,
        outcome: u16,
        client_addr: String,
    ) {
        let detail = serde_json::json!({
            "operation": op.name(), "route": route, "profile_id": profile, "status": outcome,
        });
        self.audit
            .record(AuditEntry {
                at: self.app.clock().now(),
                actor: actor_of(principal),
                action: "profiles_any.access".into(),
                detail: detail.to_string(),
                client_addr: Some(client_addr),
            })
            .await;
    }
}

/// The client's address as quotas and audit entries name it: the TCP peer, unless the peer is
/// one of `trusted_proxies`, then the right-most `X-Forwarded-For` hop our proxies did not add
/// (a client cannot pick a fresh address per request by sending the header itself). Every
/// transport passes its peer and its forwarded values (HTTP headers, gRPC metadata) here.
pub fn client_address<'a>(
    trusted_proxies: &[std::net::IpAddr],
    forwarded_for: impl Iterator<Item = &'a str>,
    peer: Option<std::net::IpAddr>,
) -> String {
    let Some(peer) = peer else { return "unknown".into() };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<std::net::IpAddr> =
        forwarded_for.flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse().ok()).collect();
    // Walk from the right: the last hop our proxies did not add is the client.
    forwarded
        .iter()
        .rev()
        .find(|ip| !trusted_proxies.contains(ip))
        .map_or(peer.to_string(), ToString::to_string)
}

/// Who a principal is in quota keys and idempotency scopes.
pub fn partition_of(p: &Principal) -> String {
    match &p.subject {
        Subject::Account(a) => format!("acct:{a}"),
        Subject::Service { id } => format!("svc:{id}"),
    }
}

fn actor_of(p: &Principal) -> String {
    match &p.subject {
        Subject::Service { id } => format!("service:{id}"),
        Subject::Account(a) => a.to_string(),
    }
}

/// Concurrent requests in flight per principal.
#[derive(Clone)]
struct InFlight {
    max: usize,
    slots: Cache<String, Arc<Semaphore>>,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self { max, slots: Cache::builder().time_to_idle(std::time::Duration::from_secs(600)).build() }
    }

    fn enter(&self, key: &str) -> Option<OwnedSemaphorePermit> {
        let sem = self.slots.get_with_by_ref(key, || Arc::new(Semaphore::new(self.max)));
        sem.try_acquire_owned().ok()
    }
}

/// Audit entries written in batches by a background task, so an audited request pays a channel
/// send, not a database write. A failed write is retried (the batch is kept) until the store
/// takes it; meanwhile the queue fills and audited requests wait rather than lose entries: an
/// audit log with holes is worse than a slower service. A flush request travels the same queue,
/// so it is answered once everything sent before it is written (graceful shutdown waits for it).
#[derive(Clone, Debug)]
struct AuditSink(tokio::sync::mpsc::Sender<AuditMsg>);

#[derive(Debug)]
enum AuditMsg {
    Entry(AuditEntry),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AuditSink {
    fn spawn(store: Arc<dyn IdentityStore>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
        tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(500);
            let mut batch = Vec::with_capacity(500);
            let mut flushed = Vec::new();
            while rx.recv_many(&mut msgs, 500).await > 0 {
                for m in msgs.drain(..) {
                    match m {
                        AuditMsg::Entry(e) => batch.push(e),
                        AuditMsg::Flush(done) => flushed.push(done),
                    }
                }
                let mut wait = std::time::Duration::from_millis(100);
                while !batch.is_empty() {
                    match store.audit(&batch).await {
                        Ok(()) => batch.clear(),
                        Err(e) => {
                            tracing::error!(error = %e, entries = batch.len(), retry_ms = wait.as_millis(), "audit log write failed; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(std::time::Duration::from_secs(5));
                        }
                    }
                }
                for done in flushed.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self(tx)
    }

    /// Wait until every entry recorded so far is written; `false` when the writer is gone.
    async fn flush(&self) -> bool {
        let (done, written) = tokio::sync::oneshot::channel();
        self.0.send(AuditMsg::Flush(done)).await.is_ok() && written.await.is_ok()
    }

    async fn record(&self, entry: AuditEntry) {
        if self.0.send(AuditMsg::Entry(entry)).await.is_err() {
            tracing::error!("audit writer stopped: a profiles:any access was not recorded");
        }
    }
}
