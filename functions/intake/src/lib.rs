//! grantwarden-intake: the HTTP face of intake (Lambda Function URL or API
//! Gateway HTTP API, payload 2.0).
//!
//! Routes:
//! - `POST /webhooks/grants`: the grant webhook (docs/CONTRACTS.md#grant-webhook).
//! - `POST /requests`: the generic payload, or a just-in-time access request.
//! - `POST /requests/{ticket}/approvals`: an approval.
//! - `GET /tickets/{ticket}`: the ticket with its `effective_status`.
//! - `POST /tickets/{ticket}/revoke`, `POST /tickets/{ticket}/renew`.
//!
//! # Who is asking
//! A person is never a name from a body (`grantwarden_core::identity`):
//! - `Authorization: Bearer <token>`: an ID token of the configured OpenID
//!   Connect issuer ([`App::with_identity_provider`]), verified by
//!   `grantwarden_oidc`. The person is the token's; a body that names someone
//!   else (`identity`, `approver`, `by`) is refused. Accepted on access
//!   requests, approvals, revoke, renew and reads; grant events come from
//!   senders only.
//! - `X-Grantwarden-Signature` (and `X-Grantwarden-Sender: <name>`, default
//!   `webhook`): a sender of the registry's `senders:` signs method, path,
//!   timestamp and body (v2, see `grantwarden_core::signature`; a GET signs the
//!   empty body) with its own key. It may send only its routes and name only its
//!   principals; what it names is journaled as asserted by it. `webhook` (the
//!   function's own key) sends grant events only, unless the registry says more.
//! - A refusal for want of a recent sign-in (a dual approval, a renewal) is a
//!   401 with `WWW-Authenticate: Bearer error="insufficient_user_authentication",
//!   max_age=900` (RFC 9470): sign in again and retry.
//!
//! Legacy v1 signatures (body only) pass only with [`App::with_legacy_v1`], and
//! then only on the first two routes, whose body names its own target. Incident
//! webhooks are authenticated by their tool's own secret, never by the webhook
//! key: `POST /webhooks/incidents/pagerduty` (`X-PagerDuty-Signature`) and
//! `POST /webhooks/incidents/opsgenie` (the shared token in
//! `X-Grantwarden-Opsgenie-Token`); a tool without a configured secret is refused.
//!
//! Every accepted request is recorded in the replay guard first, so the same
//! signed request (or the same vendor delivery) is served once; a failure on our
//! side (5xx) forgets it again, so the sender's retry of the same bytes passes.
//! A request with a query string is refused: no signature covers it.
//!
//! Wiring only: normalization, routing and approval rules live in
//! `grantwarden_core`; the store is whatever implements its ports (DynamoDB
//! in the Lambda, SQLite in tests). Fail secure like the CLI's intake: input
//! that cannot become a ticket is recorded as an untagged finding before the
//! caller hears about it. Every failure is a JSON `{"error": ...}` with a
//! status chosen in one place, [`Rejection::status`].
#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use grantwarden_core::access::{AccessError, AccessOutcome, parse_request, request_access};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::error::{FieldError, StoreError};
use grantwarden_core::identity::{Actor, IdentityRefusal, SenderRoute, SenderRule, Senders, WEBHOOK_SENDER};
use grantwarden_core::incident::{self, IncidentStore, Vendor, VendorRefusal};
use grantwarden_core::intake::{Outcome, intake, record};
use grantwarden_core::normalize::{self, NormalizeError};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::Finding;
use grantwarden_core::request::{GrantRequest, InputKind};
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::signature::{self, SignatureError, SignedRequest, V1Policy};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, ReplayGuard, ReplayKey, TicketStore};
use grantwarden_core::ticket::{ApprovalError, Refusal, Ticket};
use grantwarden_core::ticket_flow::{self, Renewed, TicketFlowError};
use grantwarden_oidc::{LazyVerifier, TokenRefusal};
use lambda_http::http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use tracing::Instrument;

/// Bodies above this are refused before the signature is computed over them.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The header naming the registry sender whose key signed the request (default `webhook`).
pub const SENDER_HEADER: &str = "X-Grantwarden-Sender";

/// The keys of the registry's senders, by the `key_secret` each names; asked
/// on every signed request of that sender, so an implementation caches.
pub trait SenderKeys: Send + Sync {
    /// The key stored under `secret`.
    fn key<'a>(
        &'a self,
        secret: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyUnavailable>> + Send + 'a>>;
}

/// Sender keys known at startup (tests, local runs), by secret name.
#[derive(Default)]
pub struct StaticSenderKeys(pub std::collections::BTreeMap<String, Vec<u8>>);

impl SenderKeys for StaticSenderKeys {
    fn key<'a>(
        &'a self,
        secret: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyUnavailable>> + Send + 'a>> {
        let key = self.0.get(secret).cloned().ok_or_else(|| KeyUnavailable(format!("no key {secret}")));
        Box::pin(async move { key })
    }
}

/// Who is asking, as their credential says.
#[derive(Debug, Clone)]
enum Caller {
    /// A person, by a verified token.
    Person(Actor),
    /// A registry sender, by its signature.
    Sender(SenderRule),
}

impl Caller {
    /// The person acting on `route`: the token's (a body naming another is
    /// refused), or whom the sender names in `field`, if it may.
    fn acting(&self, route: SenderRoute, field: &str, named: Option<&str>) -> Result<Actor, IdentityRefusal> {
        match self {
            Caller::Person(actor) => actor.check_named(field, named).map(|()| actor.clone()),
            Caller::Sender(rule) => rule.assert(route, field, named),
        }
    }
}

pub use grantwarden_aws::{Clock, SystemClock};

/// A key could not be had (e.g. Secrets Manager unreachable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a webhook key is unavailable: {0}")]
pub struct KeyUnavailable(pub String);

/// Where a key comes from (the webhook HMAC key, a vendor's secret); asked on
/// every request, so an implementation caches (the Lambda's reads Secrets
/// Manager every few minutes).
pub trait KeySource: Send + Sync {
    /// The current key.
    fn key(&self) -> impl Future<Output = Result<Vec<u8>, KeyUnavailable>> + Send;
}

/// A key known at startup (tests, local runs).
#[derive(Clone)]
pub struct StaticKey(pub Vec<u8>);

impl KeySource for StaticKey {
    async fn key(&self) -> Result<Vec<u8>, KeyUnavailable> {
        Ok(self.0.clone())
    }
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // a key never reaches a log
        f.write_str("StaticKey(..)")
    }
}

/// Why a request was not served; each variant has one status and a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No such route.
    #[error("no route {0}")]
    UnknownPath(String),
    /// The route exists with another method.
    #[error("{path} takes {allowed}, not {method}")]
    WrongMethod {
        /// Path.
        path: String,
        /// Method used.
        method: String,
        /// The method the route takes.
        allowed: &'static str,
    },
    /// The body is over the limit.
    #[error("the body is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The signature header is missing, malformed, stale or wrong.
    #[error("signature rejected: {0}")]
    Signature(#[from] SignatureError),
    /// This signed request was served already.
    #[error("this signed request was already received; sign each request anew, a retry too")]
    Replayed,
    /// The request has a query string, which no signature covers.
    #[error("query strings are not accepted: the signature does not cover them")]
    Query,
    /// An incident webhook its tool's credential does not vouch for (or not its tool's update).
    #[error("incident webhook refused: {0}")]
    Vendor(#[from] VendorRefusal),
    /// The key to check signatures with cannot be read.
    #[error(transparent)]
    Key(#[from] KeyUnavailable),
    /// The request could not be normalized; its untagged finding is recorded.
    #[error("{0}; recorded as an untagged finding")]
    Invalid(NormalizeError),
    /// A body other than a grant request is unreadable.
    #[error("{field}: {reason}")]
    BadBody {
        /// The failing field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// No such ticket.
    #[error("no ticket {0}")]
    UnknownTicket(String),
    /// The delivery id is known with a different payload.
    #[error("delivery {delivery_id} is known with a different payload as ticket {ticket}")]
    Conflict {
        /// Delivery id.
        delivery_id: String,
        /// The stored ticket.
        ticket: String,
    },
    /// The request breaks a rule of its category; its untagged finding is recorded.
    #[error("delivery {delivery_id} refused by category {category}: {refusal}; recorded as an untagged finding")]
    Refused {
        /// Delivery id.
        delivery_id: String,
        /// Category.
        category: String,
        /// Why.
        refusal: Refusal,
        /// The finding recorded.
        finding: Box<Finding>,
    },
    /// Nothing in the registry routes the request; its untagged finding is recorded.
    #[error("not routable: {}; recorded as an untagged finding", .0.detail)]
    Untagged(Box<Finding>),
    /// The policy registry could not be loaded at startup; the request is
    /// recorded as untagged and the sender may retry later.
    #[error("the policy registry is unavailable; the request is recorded as an untagged finding")]
    RegistryUnavailable,
    /// The approval does not count.
    #[error("{0}")]
    Approval(#[from] ApprovalError),
    /// An access request that breaks a rule of its path (too long, no open incident).
    #[error("access refused ({category}): {refusal}")]
    AccessRefused {
        /// `access:<path>`.
        category: String,
        /// Why.
        refusal: Refusal,
    },
    /// An access request the registry cannot route (no access section, path not offered).
    #[error("access request not routable: {0}")]
    AccessUnroutable(String),
    /// A renewal that is not allowed (not break-glass, not in force, incident closed).
    #[error("ticket {0} is not renewed: {1}")]
    NotRenewed(String, String),
    /// The ticket has already ended (or is being revoked): nothing to end.
    #[error("ticket {0} is {1}: nothing to end")]
    NotOpen(String, grantwarden_core::ticket::TicketStatus),
    /// The identity is not accepted for this act (a sender outside its routes
    /// or principals, a body naming another person, a sign-in too old).
    #[error("{0}")]
    Identity(#[from] IdentityRefusal),
    /// The bearer token is not accepted.
    #[error("bearer token refused: {0}")]
    Token(TokenRefusal),
    /// A bearer token where only senders may send, or none configured.
    #[error("{0}")]
    BearerNotAccepted(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for Rejection {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Identity(e) => Rejection::Identity(e),
            AccessError::Store(e) => Rejection::Store(e),
        }
    }
}

impl From<TicketFlowError> for Rejection {
    fn from(e: TicketFlowError) -> Self {
        match e {
            TicketFlowError::UnknownTicket(id) => Rejection::UnknownTicket(id),
            TicketFlowError::Approval(e) => Rejection::Approval(e),
            TicketFlowError::NotOpen(id, status) => Rejection::NotOpen(id, status),
            TicketFlowError::NotRenewed { ticket, reason } => Rejection::NotRenewed(ticket, reason),
            TicketFlowError::Identity(e) => Rejection::Identity(e),
            TicketFlowError::Store(e) => Rejection::Store(e),
        }
    }
}

impl Rejection {
    /// The HTTP status of this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownPath(_) | Rejection::UnknownTicket(_) => StatusCode::NOT_FOUND,
            Rejection::WrongMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
            Rejection::Vendor(VendorRefusal::Body { .. }) => StatusCode::BAD_REQUEST,
            Rejection::Vendor(VendorRefusal::Stale { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::Vendor(_) => StatusCode::UNAUTHORIZED,
            Rejection::Invalid(_) | Rejection::BadBody { .. } | Rejection::Query => StatusCode::BAD_REQUEST,
            Rejection::Conflict { .. } | Rejection::Replayed => StatusCode::CONFLICT,
            Rejection::Refused { .. }
            | Rejection::Untagged(_)
            | Rejection::AccessRefused { .. }
            | Rejection::AccessUnroutable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::Key(_) | Rejection::RegistryUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Approval(ApprovalError::Requester(_) | ApprovalError::Duplicate(_)) => StatusCode::FORBIDDEN,
            Rejection::Approval(ApprovalError::SignIn(_))
            | Rejection::Identity(IdentityRefusal::SignInTooOld { .. } | IdentityRefusal::NoSignIn(_)) => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::Identity(IdentityRefusal::NobodyNamed { .. }) => StatusCode::BAD_REQUEST,
            Rejection::Identity(_) => StatusCode::FORBIDDEN,
            Rejection::Token(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Token(_) | Rejection::BearerNotAccepted(_) => StatusCode::UNAUTHORIZED,
            Rejection::Approval(ApprovalError::NotPending(_) | ApprovalError::NotAnAccessRequest(_))
            | Rejection::NotOpen(..)
            | Rejection::NotRenewed(..) => StatusCode::CONFLICT,
            Rejection::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Store(StoreError::Stale(_)) => StatusCode::CONFLICT,
            Rejection::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            Rejection::Store(StoreError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `error` always, plus what a caller needs to act on it.
    pub fn body(&self) -> Value {
        let mut body = json!({ "error": self.to_string() });
        match self {
            Rejection::Invalid(e) => {
                body["field"] = json!(e.field);
                if let Some(id) = &e.delivery_id {
                    body["delivery_id"] = json!(id);
                }
            }
            Rejection::BadBody { field, .. } | Rejection::Vendor(VendorRefusal::Body { field, .. }) => {
                body["field"] = json!(field)
            }
            Rejection::Conflict { delivery_id, ticket } => {
                body["delivery_id"] = json!(delivery_id);
                body["ticket"] = json!(ticket);
            }
            Rejection::Refused { delivery_id, category, refusal, finding } => {
                body["delivery_id"] = json!(delivery_id);
                body["category"] = json!(category);
                body["refusal"] = json!(refusal);
                body["finding"] = json!(finding);
            }
            Rejection::Untagged(finding) => body["finding"] = json!(finding),
            Rejection::WrongMethod { allowed, .. } => body["allowed"] = json!(allowed),
            Rejection::Identity(
                IdentityRefusal::NamesAnother { field, .. } | IdentityRefusal::NobodyNamed { field },
            ) => body["field"] = json!(field),
            _ => {}
        }
        body
    }

    fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &self.body());
        let challenge = match &self {
            Rejection::Approval(ApprovalError::SignIn(_))
            | Rejection::Identity(IdentityRefusal::SignInTooOld { .. } | IdentityRefusal::NoSignIn(_)) => Some(
                r#"Bearer error="insufficient_user_authentication", error_description="sign in again", max_age=900"#,
            ),
            Rejection::Token(e) if !e.is_unavailable() => Some(r#"Bearer error="invalid_token""#),
            Rejection::BearerNotAccepted(_) => Some("Bearer"),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Rejection::WrongMethod { allowed, .. } = self {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
        }
        response
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A successful answer.
struct Reply {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

impl Reply {
    fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status, &self.body);
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(LOCATION, location);
        }
        response
    }
}

/// The routes, parsed from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Webhook,
    Incident(Vendor),
    Generic,
    Approve(&'a str),
    Ticket(&'a str),
    Revoke(&'a str),
    Renew(&'a str),
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["webhooks", "grants"] => Some(Route::Webhook),
            ["webhooks", "incidents", "pagerduty"] => Some(Route::Incident(Vendor::PagerDuty)),
            ["webhooks", "incidents", "opsgenie"] => Some(Route::Incident(Vendor::Opsgenie)),
            ["requests"] => Some(Route::Generic),
            ["requests", id, "approvals"] if !id.is_empty() => Some(Route::Approve(id)),
            ["tickets", id] if !id.is_empty() => Some(Route::Ticket(id)),
            ["tickets", id, "revoke"] if !id.is_empty() => Some(Route::Revoke(id)),
            ["tickets", id, "renew"] if !id.is_empty() => Some(Route::Renew(id)),
            _ => None,
        }
    }

    fn method(&self) -> Method {
        match self {
            Route::Ticket(_) => Method::GET,
            _ => Method::POST,
        }
    }

    /// Whether a body-only (v1) signature may pass here during a transition: only
    /// where the body names its own target (a delivery id, target and grant). An
    /// approval's `{"approver"}`, a renewal's or a read's empty body and a revoke's
    /// `{"by"}` fit any ticket's route, so they need v2, which signs the path.
    fn body_names_its_target(&self) -> bool {
        matches!(self, Route::Webhook | Route::Generic)
    }
}

/// The intake handler: built once per container, shared by every event.
pub struct App<S, K> {
    store: S,
    /// The registry requests are routed by (replaced when its objects change: [`App::set_registry`]).
    registry: std::sync::RwLock<Arc<Result<PolicyRegistry, String>>>,
    key: K,
    pagerduty: Option<K>,
    opsgenie: Option<K>,
    legacy_v1: bool,
    clock: Arc<dyn Clock>,
    known_targets: BTreeSet<TargetId>,
    scoring: ScoringConfig,
    max_body: usize,
    tolerance: Duration,
    timers: Option<grantwarden_aws::Timers>,
    identity_provider: Option<Arc<LazyVerifier>>,
    sender_keys: Option<Arc<dyn SenderKeys>>,
}

impl<S, K> App<S, K>
where
    S: TicketStore + FindingStore + AuditJournal + IncidentStore + ReplayGuard + Send + Sync,
    K: KeySource,
{
    /// A handler over `store`. A registry that failed to load is kept as its
    /// error: every request is then recorded as untagged (fail secure).
    /// Defaults: system clock, any target, standard scoring, 64 KiB bodies,
    /// a 5-minute signature window, v2 signatures only, no incident webhooks.
    pub fn new(store: S, registry: Result<PolicyRegistry, String>, key: K) -> Self {
        Self {
            store,
            registry: std::sync::RwLock::new(Arc::new(registry)),
            key,
            pagerduty: None,
            opsgenie: None,
            legacy_v1: false,
            clock: Arc::new(SystemClock),
            known_targets: BTreeSet::new(),
            scoring: ScoringConfig::standard(),
            max_body: DEFAULT_MAX_BODY,
            tolerance: signature::DEFAULT_TOLERANCE,
            timers: None,
            identity_provider: None,
            sender_keys: None,
        }
    }

    /// Accepts `Authorization: Bearer` tokens of this identity provider.
    pub fn with_identity_provider(mut self, verifier: Arc<LazyVerifier>) -> Self {
        self.identity_provider = Some(verifier);
        self
    }

    /// Where the keys of the registry's senders other than `webhook` are read.
    pub fn with_sender_keys(mut self, keys: Arc<dyn SenderKeys>) -> Self {
        self.sender_keys = Some(keys);
        self
    }

    /// Arms a lease and a one-time revoke schedule for every ticket that becomes active.
    pub fn with_timers(mut self, timers: grantwarden_aws::Timers) -> Self {
        self.timers = Some(timers);
        self
    }

    /// Arms the revocation timers of a ticket that just became active. A failure is
    /// logged, not returned: the ticket is on record, and the sweeper revokes it
    /// at expiry all the same (within a minute).
    async fn arm(&self, ticket: &grantwarden_core::ticket::Ticket) {
        if ticket.status() != grantwarden_core::ticket::TicketStatus::Active {
            return;
        }
        if let Some(timers) = &self.timers
            && let Err(e) = timers.arm(ticket).await
        {
            tracing::error!(error = %e, "could not arm the lease and schedule; the sweeper will revoke at expiry");
        }
    }

    /// Accepts PagerDuty v3 webhooks signed with the subscription secret from `secret`.
    pub fn with_pagerduty(mut self, secret: K) -> Self {
        self.pagerduty = Some(secret);
        self
    }

    /// Accepts Opsgenie webhooks carrying the token from `secret`.
    pub fn with_opsgenie(mut self, secret: K) -> Self {
        self.opsgenie = Some(secret);
        self
    }

    /// With `true`, legacy v1 signatures pass on the routes whose body names its
    /// own target (a transition while senders move to v2).
    pub fn with_legacy_v1(mut self, accepted: bool) -> Self {
        self.legacy_v1 = accepted;
        self
    }

    /// Uses `clock` for signature windows, routing and approvals.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Only these targets are accepted; empty: any.
    pub fn with_known_targets(mut self, targets: impl IntoIterator<Item = TargetId>) -> Self {
        self.known_targets = targets.into_iter().collect();
        self
    }

    /// Scores untagged findings with `scoring`.
    pub fn with_scoring(mut self, scoring: ScoringConfig) -> Self {
        self.scoring = scoring;
        self
    }

    /// Refuses bodies larger than `bytes`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The store, for callers that inspect what a request recorded.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Serves one HTTP request; every failure is a JSON error response, never a
    /// Lambda error (the caller is an HTTP client, not the Lambda retry machinery).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = tracing::info_span!(
            "intake",
            request_id = %request_id(&req),
            ticket_id = tracing::field::Empty,
        );
        async {
            match self.serve(&req).await {
                Ok(reply) => {
                    tracing::info!(status = reply.status.as_u16(), "served");
                    reply.into_response()
                }
                Err(rejection) => {
                    let status = rejection.status();
                    if status.is_server_error() {
                        tracing::error!(status = status.as_u16(), error = %rejection, "failed");
                    } else {
                        tracing::warn!(status = status.as_u16(), error = %rejection, "rejected");
                    }
                    rejection.into_response()
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn serve(&self, req: &Request) -> Result<Reply, Rejection> {
        let path = req.uri().path();
        let route = Route::parse(path).ok_or_else(|| Rejection::UnknownPath(path.to_owned()))?;
        let allowed = route.method();
        if req.method() != allowed {
            return Err(Rejection::WrongMethod {
                path: path.to_owned(),
                method: req.method().to_string(),
                allowed: if allowed == Method::GET { "GET" } else { "POST" },
            });
        }
        let body: &[u8] = req.body().as_ref();
        // before the signature: an oversized body is not worth an HMAC
        if body.len() > self.max_body {
            return Err(Rejection::TooLarge { size: body.len(), limit: self.max_body });
        }
        if req.uri().query().is_some() {
            return Err(Rejection::Query);
        }
        let now = self.clock.now();
        if let Route::Incident(vendor) = route {
            return self.incident(vendor, req, body, now).await;
        }
        let access = matches!(route, Route::Generic) && is_access_request(body);
        if let Some(token) = bearer(req)? {
            if matches!(route, Route::Webhook | Route::Generic) && !access {
                return Err(Rejection::BearerNotAccepted(
                    "grant events come from signed senders, not bearer tokens; a person asks for access with a path and a scope",
                ));
            }
            let verifier = self.identity_provider.as_ref().ok_or(Rejection::BearerNotAccepted(
                "bearer tokens are not accepted: no identity provider is configured (GRANTWARDEN_OIDC_ISSUER)",
            ))?;
            let person = verifier.verify(token, now, None).await.map_err(Rejection::Token)?;
            tracing::info!(person = %person.actor.id, "bearer token verified");
            return self.route(route, access, body, &Caller::Person(person.actor), now).await;
        }
        let sender = self.sender(header(req, SENDER_HEADER).as_deref().unwrap_or(WEBHOOK_SENDER))?;
        let key = match &sender.key_secret {
            None => self.key.key().await?,
            Some(secret) => match &self.sender_keys {
                Some(keys) => keys.key(secret).await?,
                None => return Err(KeyUnavailable(format!("no sender keys configured for {}", sender.name)).into()),
            },
        };
        let v1 = if self.legacy_v1 && route.body_names_its_target() && sender.name == WEBHOOK_SENDER {
            V1Policy::Accepted
        } else {
            V1Policy::Refused
        };
        let request = SignedRequest { method: req.method().as_str(), path, body };
        let verified =
            signature::verify(header(req, signature::HEADER).as_deref(), &request, &key, now, self.tolerance, v1)?;
        if verified.scheme == signature::Scheme::V1 {
            tracing::warn!("legacy v1 signature accepted; move the sender to v2");
        }
        let replay = verified.replay.clone().for_sender(&sender.name);
        if !self.store.first_use(&replay, now, verified.replay_until).await? {
            return Err(Rejection::Replayed);
        }
        let served = self.route(route, access, body, &Caller::Sender(sender), now).await;
        self.release_if_failed(&replay, served).await
    }

    /// The registry requests are routed by now.
    pub fn registry(&self) -> Arc<Result<PolicyRegistry, String>> {
        Arc::clone(&self.registry.read().expect("never poisoned"))
    }

    /// Routes the next requests by `registry` (read again after its objects changed);
    /// a request already in flight finishes with the one it started with.
    pub fn set_registry(&self, registry: Result<PolicyRegistry, String>) {
        *self.registry.write().expect("never poisoned") = Arc::new(registry);
    }

    /// The registry's sender `name`; with the registry unusable, only `webhook`
    /// as it is by default (grant events, which are then recorded as untagged).
    fn sender(&self, name: &str) -> Result<SenderRule, Rejection> {
        let default = Senders::default();
        let registry = self.registry();
        let senders = registry.as_ref().as_ref().map(|r| &r.senders).unwrap_or(&default);
        Ok(senders.get(name)?.clone())
    }

    async fn route(
        &self,
        route: Route<'_>,
        access: bool,
        body: &[u8],
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        match route {
            Route::Webhook => self.intake(body, InputKind::Webhook, caller, now).await,
            Route::Generic if access => self.access(body, caller, now).await,
            Route::Generic => self.intake(body, InputKind::Generic, caller, now).await,
            Route::Incident(_) => unreachable!("incident webhooks are served before any caller is known"),
            Route::Approve(id) => self.approve(id, body, caller, now).await,
            Route::Ticket(id) => {
                if let Caller::Sender(rule) = caller {
                    rule.may(SenderRoute::Read)?;
                }
                self.show(id, now).await
            }
            Route::Revoke(id) => self.request_revoke(id, body, caller, now).await,
            Route::Renew(id) => match caller {
                Caller::Person(person) => self.renew(id, person, now).await,
                // a renewal needs a recent sign-in, which no sender proves
                Caller::Sender(rule) => Err(IdentityRefusal::NoSignIn(format!("sender {}", rule.name)).into()),
            },
        }
    }

    /// A request admitted under `key` that failed on our side (5xx) is forgotten,
    /// so its sender's retry of the same bytes passes; anything else stays served.
    async fn release_if_failed(&self, key: &ReplayKey, served: Result<Reply, Rejection>) -> Result<Reply, Rejection> {
        if let Err(rejection) = &served
            && rejection.status().is_server_error()
            && let Err(e) = self.store.forget(key).await
        {
            tracing::error!(error = %e, "could not forget the replay record of a failed request; a retry must be signed anew");
        }
        served
    }

    async fn intake(
        &self,
        body: &[u8],
        kind: InputKind,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let ctx = normalize::Context { targets: &self.known_targets, now, audit_target: None };
        let request = match kind {
            InputKind::Generic => normalize::from_generic(body, &ctx),
            _ => normalize::from_webhook(body, &ctx),
        };
        // the sender vouches for who asked for the grant, within its principals
        let requester = match &request {
            Ok(r) => caller.acting(SenderRoute::Grants, "requested_by", Some(&r.requested_by))?.vouched_by,
            Err(_) => match caller {
                Caller::Sender(rule) => grantwarden_core::identity::Voucher::Sender { sender: rule.name.clone() },
                Caller::Person(p) => p.vouched_by.clone(),
            },
        };
        let target = filing_target(&request, body);
        let invalid = request.as_ref().err().cloned();
        let delivery_id = request.as_ref().map(|r| r.delivery_id.clone()).ok();
        let registry = self.registry();
        let outcome = intake(
            &self.store,
            registry.as_ref().as_ref().map_err(String::clone),
            request,
            &requester,
            &self.scoring,
            now,
        )
        .await?;
        // fail secure: the finding is on record before the sender hears "no"
        record(&self.store, &target, &outcome, now).await?;
        match outcome {
            Outcome::Created(t) => {
                tracing::Span::current().record("ticket_id", t.id());
                tracing::info!(category = %t.category(), status = %t.status(), "ticket created");
                self.arm(&t).await;
                Ok(Reply {
                    status: StatusCode::CREATED,
                    location: Some(format!("/tickets/{}", t.id())),
                    body: ticket_json(&t, now),
                })
            }
            Outcome::Existing(t) => {
                tracing::Span::current().record("ticket_id", t.id());
                Ok(Reply { status: StatusCode::OK, location: None, body: ticket_json(&t, now) })
            }
            Outcome::Conflict(t) => {
                tracing::Span::current().record("ticket_id", t.id());
                Err(Rejection::Conflict { delivery_id: t.request().delivery_id.clone(), ticket: t.id().to_owned() })
            }
            Outcome::Refused { category, refusal, finding } => {
                Err(Rejection::Refused { delivery_id: delivery_id.unwrap_or_default(), category, refusal, finding })
            }
            Outcome::Untagged(finding) => Err(match (invalid, registry.as_ref()) {
                (Some(e), _) => Rejection::Invalid(e),
                (None, Err(why)) => {
                    tracing::error!(error = %why, "policy registry unusable");
                    Rejection::RegistryUnavailable
                }
                (None, Ok(_)) => Rejection::Untagged(finding),
            }),
        }
    }

    async fn approve(&self, id: &str, body: &[u8], caller: &Caller, now: DateTime<Utc>) -> Result<Reply, Rejection> {
        let named = approver(body)?;
        let approver = caller.acting(SenderRoute::Approvals, "approver", named.as_deref())?;
        tracing::Span::current().record("ticket_id", id);
        // conditional on the version read: a concurrent approval makes this one stale (409)
        let ticket = ticket_flow::approve_ticket(&self.store, id, &approver, now).await?;
        self.arm(&ticket).await;
        tracing::info!(status = %ticket.status(), approvals = ticket.approvals().len(), "approved");
        Ok(Reply { status: StatusCode::OK, location: None, body: ticket_json(&ticket, now) })
    }

    /// A just-in-time access request: routed by the registry's access policy (with
    /// the incidents on record, for break-glass) into a ticket; the credential is
    /// issued by the revoke function once the ticket is active, never here.
    async fn access(&self, body: &[u8], caller: &Caller, now: DateTime<Utc>) -> Result<Reply, Rejection> {
        let request =
            parse_request(body).map_err(|FieldError { field, reason }| Rejection::BadBody { field, reason })?;
        let requester = caller.acting(SenderRoute::Requests, "identity", Some(&request.identity))?;
        if !self.known_targets.is_empty() && !self.known_targets.contains(&request.target) {
            return Err(Rejection::BadBody {
                field: "target".into(),
                reason: format!("unknown target {}", request.target),
            });
        }
        let registry = self.registry();
        let registry = registry.as_ref().as_ref().map_err(|_| Rejection::RegistryUnavailable)?;
        match request_access(&self.store, &request, &requester, registry, now).await? {
            AccessOutcome::Created(t) => {
                tracing::Span::current().record("ticket_id", t.id());
                if t.access().is_some_and(|a| a.review_required) {
                    tracing::error!(incident = ?request.incident_id, "break-glass access granted; a review is required");
                }
                self.arm(&t).await;
                Ok(Reply {
                    status: StatusCode::CREATED,
                    location: Some(format!("/tickets/{}", t.id())),
                    body: ticket_json(&t, now),
                })
            }
            AccessOutcome::Existing(t) => {
                Ok(Reply { status: StatusCode::OK, location: None, body: ticket_json(&t, now) })
            }
            AccessOutcome::Conflict(t) => {
                Err(Rejection::Conflict { delivery_id: request.id.clone(), ticket: t.id().to_owned() })
            }
            AccessOutcome::Refused { category, refusal } => Err(Rejection::AccessRefused { category, refusal }),
            AccessOutcome::Unroutable(reason) => Err(Rejection::AccessUnroutable(reason)),
        }
    }

    /// Renews a break-glass ticket while its incident stays open: a new window, the
    /// timers moved (the revoke function moves the role's VALID UNTIL on the stream).
    async fn renew(&self, id: &str, by: &Actor, now: DateTime<Utc>) -> Result<Reply, Rejection> {
        tracing::Span::current().record("ticket_id", id);
        let registry = self.registry();
        let registry = registry.as_ref().as_ref().map_err(|_| Rejection::RegistryUnavailable)?;
        let Renewed { ticket, until } = ticket_flow::renew_break_glass(&self.store, id, by, registry, now).await?;
        if let Some(timers) = &self.timers
            && let Err(e) = timers.rearm(&ticket).await
        {
            tracing::error!(error = %e, "could not move the lease and schedule; the sweeper still revokes at the new expiry");
        }
        tracing::info!(until = %until, "break-glass renewed");
        Ok(Reply { status: StatusCode::OK, location: None, body: ticket_json(&ticket, now) })
    }

    /// An incident webhook (PagerDuty, Opsgenie), believed on its tool's own
    /// credential: its state, for break-glass. A redelivery of an event already
    /// recorded is answered 200 and recorded nothing: PagerDuty delivers at least
    /// once and drops (then disables) an endpoint that answers 4xx.
    async fn incident(
        &self,
        vendor: Vendor,
        req: &Request,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let source = match vendor {
            Vendor::PagerDuty => self.pagerduty.as_ref(),
            Vendor::Opsgenie => self.opsgenie.as_ref(),
        };
        let secret = match source {
            Some(source) => Some(source.key().await?),
            None => None,
        };
        let credential = header(req, vendor.header());
        let webhook = incident::authenticate(vendor, credential.as_deref(), body, secret.as_deref(), now)?;
        let update = webhook.update;
        if !self.store.first_use(&webhook.replay, now, webhook.replay_until).await? {
            tracing::info!(incident = %update.id, "incident webhook delivered again; recorded once already");
            return Ok(Reply {
                status: StatusCode::OK,
                location: None,
                body: json!({ "incident": update, "duplicate": true }),
            });
        }
        let recorded = match self.store.record_incident(&update).await {
            Ok(()) => {
                tracing::info!(incident = %update.id, status = ?update.status, source = %vendor, "incident recorded");
                Ok(Reply { status: StatusCode::OK, location: None, body: json!({ "incident": update }) })
            }
            Err(e) => Err(e.into()),
        };
        self.release_if_failed(&webhook.replay, recorded).await
    }

    /// Asks for a ticket to end now: `revoke_requested`, which the tickets table's
    /// stream hands to the revoke function.
    async fn request_revoke(
        &self,
        id: &str,
        body: &[u8],
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let (named, reason) = revoke_request(body)?;
        let by = caller.acting(SenderRoute::Revoke, "by", named.as_deref())?;
        tracing::Span::current().record("ticket_id", id);
        let ticket = ticket_flow::request_revoke(&self.store, id, &by, &reason, now).await?;
        tracing::info!(by = %by.id, "revoke requested");
        Ok(Reply { status: StatusCode::ACCEPTED, location: None, body: ticket_json(&ticket, now) })
    }

    async fn show(&self, id: &str, now: DateTime<Utc>) -> Result<Reply, Rejection> {
        tracing::Span::current().record("ticket_id", id);
        let read = self.store.ticket(id).await?.ok_or_else(|| Rejection::UnknownTicket(id.to_owned()))?;
        Ok(Reply { status: StatusCode::OK, location: None, body: ticket_json(&read.value, now) })
    }
}

/// The ticket as stored, plus its status at `now` (an active ticket past its window is expired).
fn ticket_json(t: &Ticket, now: DateTime<Utc>) -> Value {
    let mut value = json!(t);
    value["effective_status"] = json!(t.status_at(now).to_string());
    value
}

/// Where an untagged finding is filed: the request's target, else the target
/// the raw body names (too broken to normalize, still worth filing where it
/// belongs), else `unknown`. As the CLI's intake does.
fn filing_target(request: &Result<GrantRequest, NormalizeError>, body: &[u8]) -> TargetId {
    if let Ok(r) = request {
        return r.target.clone();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("target").and_then(Value::as_str).and_then(TargetId::new))
        .unwrap_or_else(|| TargetId::new("unknown").expect("not empty"))
}

/// Reads `{"approver": "..."}` (the approver may be left out, as a token says
/// who it is), naming the failing field.
fn approver(body: &[u8]) -> Result<Option<String>, Rejection> {
    let bad = |field: &str, reason: &str| Rejection::BadBody { field: field.to_owned(), reason: reason.to_owned() };
    let value: Value = serde_json::from_slice(body).map_err(|e| bad("body", &format!("not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| bad("body", "must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| *k != "approver") {
        return Err(bad(unknown, "unknown field; expected only approver"));
    }
    let approver = match object.get("approver") {
        None => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(bad("approver", "must be a string")),
    };
    if approver.is_empty() || approver.chars().any(char::is_control) {
        return Err(bad("approver", "must be a non-empty identity without control characters"));
    }
    Ok(Some(approver.to_owned()))
}

/// Whether a `/requests` body is an access request (it names a path and a scope)
/// rather than the generic grant payload.
fn is_access_request(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("path").is_some() && v.get("scope").is_some())
}

/// `{"by": "...", "reason": "..."}` of a revoke request.
fn revoke_request(body: &[u8]) -> Result<(Option<String>, String), Rejection> {
    let bad = |field: &str, reason: &str| Rejection::BadBody { field: field.to_owned(), reason: reason.to_owned() };
    let value: Value = serde_json::from_slice(body).map_err(|e| bad("body", &format!("not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| bad("body", "must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "by" | "reason")) {
        return Err(bad(unknown, "unknown field; expected by and reason"));
    }
    let text = |field: &str, required: bool| -> Result<String, Rejection> {
        match object.get(field) {
            None if required => Err(bad(field, "missing")),
            None => Ok(String::new()),
            Some(Value::String(s)) if s.chars().any(char::is_control) => Err(bad(field, "holds control characters")),
            Some(Value::String(s)) if required && s.trim().is_empty() => Err(bad(field, "must not be empty")),
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(_) => Err(bad(field, "must be a string")),
        }
    };
    let by = text("by", false)?;
    Ok(((!by.is_empty()).then_some(by), text("reason", false)?))
}

/// The token of an `Authorization: Bearer` header; another scheme is refused.
fn bearer(req: &Request) -> Result<Option<&str>, Rejection> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Rejection::Token(TokenRefusal::Malformed("not text".into())))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(Rejection::BearerNotAccepted("the Authorization header takes `Bearer <token>` only")),
    }
}

/// A header's value as text; lossy, so a value that is not text fails as
/// malformed or mismatched, not as missing.
fn header<'r>(req: &'r Request, name: &str) -> Option<std::borrow::Cow<'r, str>> {
    req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// The Lambda request id, else the one API Gateway or the Function URL assigned.
fn request_id(req: &Request) -> String {
    if let Some(id) = req.lambda_context_ref().map(|c| c.request_id.as_str()).filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(c)) => c.request_id.clone(),
        _ => None,
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed_from_the_path() {
        assert_eq!(Route::parse("/webhooks/grants"), Some(Route::Webhook));
        assert_eq!(Route::parse("/webhooks/grants/"), Some(Route::Webhook));
        assert_eq!(Route::parse("/requests"), Some(Route::Generic));
        assert_eq!(Route::parse("/requests/tkt-1/approvals"), Some(Route::Approve("tkt-1")));
        assert_eq!(Route::parse("/tickets/tkt-1"), Some(Route::Ticket("tkt-1")));
        assert_eq!(Route::parse("/tickets/tkt-1/revoke"), Some(Route::Revoke("tkt-1")));
        assert_eq!(Route::parse("/webhooks/incidents/pagerduty"), Some(Route::Incident(Vendor::PagerDuty)));
        assert_eq!(Route::parse("/webhooks/incidents/opsgenie"), Some(Route::Incident(Vendor::Opsgenie)));
        let unknown = ["", "/", "/tickets", "/tickets/", "/tickets//", "/requests//approvals", "/webhooks", "/x"];
        // an incident webhook names its tool, whose credential then vouches for it
        for unknown in unknown.into_iter().chain(["/webhooks/incidents", "/webhooks/incidents/other"]) {
            assert_eq!(Route::parse(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn approval_body_names_the_failing_field() {
        let field = |body: &str| match approver(body.as_bytes()) {
            Err(Rejection::BadBody { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("nope"), "body");
        assert_eq!(field("[]"), "body");
        assert_eq!(approver(b"{}").unwrap(), None, "a token says who approves");
        assert_eq!(field(r#"{"approver": 3}"#), "approver");
        assert_eq!(field(r#"{"approver": "  "}"#), "approver");
        assert_eq!(field(r#"{"approver": "bob@example.com", "as": "admin"}"#), "as");
        assert_eq!(approver(br#"{"approver": " bob@example.com "}"#).unwrap().as_deref(), Some("bob@example.com"));
    }

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        assert_eq!(Rejection::Store(StoreError::Unavailable("down".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Rejection::Store(StoreError::Stale("t".into())).status(), StatusCode::CONFLICT);
        assert_eq!(Rejection::Approval(ApprovalError::Duplicate("b".into())).status(), StatusCode::FORBIDDEN);
        assert_eq!(
            Rejection::Approval(ApprovalError::NotPending(grantwarden_core::ticket::TicketStatus::Active)).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(Rejection::Key(KeyUnavailable("x".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Rejection::Replayed.status(), StatusCode::CONFLICT);
        assert_eq!(
            Rejection::Vendor(VendorRefusal::NotConfigured(Vendor::Opsgenie)).status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn v1_may_pass_only_where_the_body_names_its_target() {
        let routes = ["/webhooks/grants", "/requests", "/requests/t/approvals", "/tickets/t", "/tickets/t/renew"];
        let v1: Vec<bool> = routes.iter().map(|p| Route::parse(p).unwrap().body_names_its_target()).collect();
        assert_eq!(v1, [true, true, false, false, false]);
        assert!(!Route::parse("/tickets/t/revoke").unwrap().body_names_its_target());
    }
}
