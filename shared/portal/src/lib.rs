//! grantwarden-portal: the access portal, server-rendered HTML over axum.
//!
//! People sign in with the organisation's OpenID Connect provider
//! (authorization code flow with PKCE, state and nonce; `grantwarden_oidc`),
//! then ask for access, see their requests and what waits for their approval,
//! approve, end a ticket early, and read the tickets in force and each
//! request's timeline from the audit journal. Plain HTML forms: nothing needs
//! JavaScript, and the Content-Security-Policy allows none.
//!
//! The acting person is always the session's (an encrypted cookie written at
//! sign-in, [`session`]), never a form field. Every POST carries the session's
//! CSRF token. An approval that is one of two needs a sign-in of the last 15
//! minutes: an older session is sent to sign in again (`max_age=0`,
//! `prompt=login`) and comes back to the request. The rules themselves (who
//! may approve, what the policy decides, what is journaled) are
//! `grantwarden_core`'s: the same use cases the intake API and the CLI run.
//!
//! Served by `grantwarden serve` over the local state file, by the portal
//! Lambda (`functions/portal`) over DynamoDB, and by the tests on a local
//! port; the store is whatever implements the core's ports. It must never take
//! a person's identity from a request: only from the session.
#![deny(missing_docs)]

pub mod session;
pub mod slack;

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRef, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Key, PrivateCookieJar};
use chrono::{DateTime, Utc};
use grantwarden_core::access::{AccessError, AccessOutcome, Verdict, parse_request, preview, request_access};
use grantwarden_core::access_policy::AccessPath;
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::incident::IncidentStore;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{ReplayGuard, TicketStore};
use grantwarden_core::ticket::{Ticket, TicketStatus};
use grantwarden_core::ticket_flow::{self, TicketFlowError};
use grantwarden_oidc::LazyVerifier;
use serde::Deserialize;

use crate::session::{PendingSignIn, Session, is_local_path};

/// The time source (the Lambda's clock, or a test's).
pub use grantwarden_aws::{Clock, SystemClock};

/// The portal's policy for every answer: no script, no frame, forms only to
/// itself, styles from its own stylesheet.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the portal needs to know of its deployment.
#[derive(Clone)]
pub struct Config {
    /// The portal's own URL, without a trailing `/` (the sign-in's redirect URI
    /// is `<base>/callback`); `None`: `https://<Host>` of each request (a Lambda
    /// Function URL, whose host AWS sets).
    pub base_url: Option<String>,
    /// The OIDC client secret, for a confidential client (client_secret_post); none for a public one.
    pub client_secret: Option<String>,
    /// The key of the session cookies (64 bytes or more).
    pub cookie_key: Key,
    /// The databases one may ask for.
    pub targets: BTreeSet<TargetId>,
    /// A link to the dashboard, shown in the menu.
    pub dashboard_url: Option<String>,
}

/// A credential just issued: shown once, never stored.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    /// The role to log in as.
    pub role: String,
    /// Its password.
    pub password: String,
    /// Where the database is.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The database.
    pub dbname: String,
    /// The statements that issued it, as journaled (no password in them).
    pub sql: Vec<String>,
}

/// Issues a ticket's credential in its database (the port the portal shows
/// credentials through; `grantwarden serve` implements it over PostgreSQL).
pub trait Issuer: Send + Sync {
    /// Creates the ticket's role with a new password and exactly its grants.
    fn issue<'a>(
        &'a self,
        ticket: &'a Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<IssuedCredential, String>> + Send + 'a>>;

    /// Moves the role's VALID UNTIL to the ticket's new expiry (a renewal).
    fn extend<'a>(
        &'a self,
        ticket: &'a Ticket,
        until: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Reads a credential another function issued and delivered (on AWS the
/// revoke function, into the ticket's secret), to show its requester once.
pub trait Revealer: Send + Sync {
    /// The delivered credential of `ticket`; `None` while it is not delivered yet.
    fn reveal<'a>(
        &'a self,
        ticket: &'a Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<IssuedCredential>, String>> + Send + 'a>>;
}

impl Config {
    /// A public client (PKCE only) at `base_url` for `targets`, without a dashboard link.
    pub fn new(base_url: Option<String>, cookie_key: Key, targets: impl IntoIterator<Item = TargetId>) -> Self {
        Config {
            base_url,
            client_secret: None,
            cookie_key,
            targets: targets.into_iter().collect(),
            dashboard_url: None,
        }
    }
}

/// The portal: a store, the registry, the identity provider and the clock.
pub struct Portal<S> {
    store: S,
    registry: Result<PolicyRegistry, String>,
    oidc: Option<Arc<LazyVerifier>>,
    config: Config,
    clock: Arc<dyn Clock>,
    issuer: Option<Arc<dyn Issuer>>,
    revealer: Option<Arc<dyn Revealer>>,
    slack: Option<slack::SlackApp>,
}

impl<S> Portal<S> {
    /// A portal over `store` with `registry`, signing people in at `oidc` (none
    /// configured: every sign-in answers 503 saying so).
    pub fn new(
        store: S,
        registry: Result<PolicyRegistry, String>,
        oidc: Option<Arc<LazyVerifier>>,
        config: Config,
    ) -> Self {
        Portal {
            store,
            registry,
            oidc,
            config,
            clock: Arc::new(SystemClock),
            issuer: None,
            revealer: None,
            slack: None,
        }
    }

    /// Shows a requester their credential once, as `revealer` reads it where
    /// another function delivered it.
    pub fn with_revealer(mut self, revealer: Arc<dyn Revealer>) -> Self {
        self.revealer = Some(revealer);
        self
    }

    /// Shows a requester their credential once, issued through `issuer`.
    pub fn with_issuer(mut self, issuer: Arc<dyn Issuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Serves `/slack/interactions`: the Approve and Deny buttons of Slack cards.
    pub fn with_slack(mut self, slack: slack::SlackApp) -> Self {
        self.slack = Some(slack);
        self
    }

    /// Uses `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

/// The router's state: the portal, shared.
pub struct AppState<S>(pub Arc<Portal<S>>);

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState(Arc::clone(&self.0))
    }
}

impl<S> FromRef<AppState<S>> for Key {
    fn from_ref(state: &AppState<S>) -> Key {
        state.0.config.cookie_key.clone()
    }
}

/// The store a portal runs on.
pub trait PortalStore: TicketStore + AuditJournal + IncidentStore + ReplayGuard + Send + Sync + 'static {}
impl<T: TicketStore + AuditJournal + IncidentStore + ReplayGuard + Send + Sync + 'static> PortalStore for T {}

/// The portal's routes.
pub fn router<S: PortalStore>(portal: Arc<Portal<S>>) -> Router {
    Router::new()
        .route("/", get(home::<S>))
        .route("/login", get(login::<S>))
        .route("/callback", get(callback::<S>))
        .route("/logout", post(logout::<S>))
        .route("/approvals", get(approvals::<S>))
        .route("/tickets", get(tickets::<S>))
        .route("/requests/new", get(new_request::<S>))
        .route("/requests", post(submit_request::<S>))
        .route("/requests/{id}", get(show::<S>))
        .route("/requests/{id}/approve", post(approve::<S>))
        .route("/requests/{id}/deny", post(deny::<S>))
        .route("/slack/interactions", post(slack::interactions::<S>))
        .route("/requests/{id}/end", post(end::<S>))
        .route("/requests/{id}/credential", post(credential::<S>))
        .route("/requests/{id}/renew", post(renew::<S>))
        .route("/static/portal.css", get(stylesheet))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(AppState(portal))
}

/// Every answer: the CSP, no sniffing, no referrer, never cached (pages name
/// people and tickets; a credential page above all).
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    let mut response = include_str!("../static/portal.css").into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

// ---- what every page shows ------------------------------------------------

/// The menu's part of every page.
pub struct Chrome {
    person: Option<String>,
    csrf: String,
    dashboard: Option<String>,
}

impl Chrome {
    fn of<S>(portal: &Portal<S>, session: &Session) -> Self {
        Chrome {
            person: Some(session.person.clone()),
            csrf: session.csrf.clone(),
            dashboard: portal.config.dashboard_url.clone(),
        }
    }

    fn anonymous() -> Self {
        Chrome { person: None, csrf: String::new(), dashboard: None }
    }
}

/// Why a page could not be served; each becomes a page with its status.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("{0}")]
    Forbidden(String),
    #[error("no ticket {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("sign-in failed: {0}")]
    SignIn(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::SignIn(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "portal failed");
        } else {
            tracing::warn!(status = status.as_u16(), error = %self, "portal refused");
        }
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let page = ErrorPage { chrome: Chrome::anonymous(), title, message: self.to_string() };
        (status, render(&page)).into_response()
    }
}

impl From<grantwarden_core::error::StoreError> for PageError {
    fn from(e: grantwarden_core::error::StoreError) -> Self {
        match e {
            grantwarden_core::error::StoreError::Stale(_) => {
                PageError::Conflict("someone changed this ticket at the same moment: reload and try again".into())
            }
            other => PageError::Unavailable(other.to_string()),
        }
    }
}

impl From<TicketFlowError> for PageError {
    fn from(e: TicketFlowError) -> Self {
        match e {
            TicketFlowError::UnknownTicket(id) => PageError::NotFound(id),
            TicketFlowError::Approval(e) => PageError::Forbidden(e.to_string()),
            TicketFlowError::Identity(e) => PageError::Forbidden(e.to_string()),
            TicketFlowError::NotOpen(..) | TicketFlowError::NotRenewed { .. } => PageError::Conflict(e.to_string()),
            TicketFlowError::Store(e) => e.into(),
        }
    }
}

fn render(page: &impl Template) -> Html<String> {
    Html(page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a template failed to render");
        "<!doctype html><title>error</title><p>The page could not be rendered.</p>".to_owned()
    }))
}

/// The session, or a redirect to sign in and come back to `here`.
fn signed_in(jar: &PrivateCookieJar, now: DateTime<Utc>, here: &str) -> Result<Session, Redirect> {
    Session::read(jar, now).ok_or_else(|| Redirect::to(&login_url(here, false)))
}

fn login_url(return_to: &str, fresh: bool) -> String {
    let mut url = format!("/login?return_to={}", encode(return_to));
    if fresh {
        url.push_str("&fresh=1");
    }
    url
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A POST's CSRF token must be the session's.
fn check_csrf(session: &Session, token: &str) -> Result<(), PageError> {
    if session.csrf_matches(token) {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "this form is stale or was not made by the portal (CSRF token): reload the page".into(),
        ))
    }
}

/// A page for the signed-in person: `act` with the session and the time, its
/// refusal shown as its page; without a session, a redirect to sign in and
/// come back to `here`.
async fn signed_in_then<S, R: IntoResponse>(
    portal: &Portal<S>,
    jar: &PrivateCookieJar,
    here: &str,
    act: impl AsyncFnOnce(Session, DateTime<Utc>) -> Result<R, PageError>,
) -> Response {
    let now = portal.clock.now();
    match signed_in(jar, now, here) {
        Ok(session) => act(session, now).await.map_or_else(IntoResponse::into_response, IntoResponse::into_response),
        Err(redirect) => redirect.into_response(),
    }
}

/// A form posted from `here` by the signed-in person: [`signed_in_then`],
/// once the form's `csrf` is the session's.
async fn posted<S, R: IntoResponse>(
    portal: &Portal<S>,
    jar: &PrivateCookieJar,
    here: &str,
    csrf: &str,
    act: impl AsyncFnOnce(Session, DateTime<Utc>) -> Result<R, PageError>,
) -> Response {
    signed_in_then(portal, jar, here, async |session, now| {
        check_csrf(&session, csrf)?;
        act(session, now).await
    })
    .await
}

// ---- signing in and out ---------------------------------------------------

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    return_to: Option<String>,
    #[serde(default)]
    fresh: Option<String>,
}

async fn login<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    headers: axum::http::HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let verifier = verifier(&portal).await?;
    let return_to = q.return_to.filter(|p| is_local_path(p)).unwrap_or_else(|| "/".into());
    // a fresh sign-in (re-authentication) asks the provider for one made now
    let max_age = q.fresh.is_some().then_some(std::time::Duration::ZERO);
    let sign_in = verifier.sign_in(&redirect_uri(&portal, &headers)?, max_age);
    let url = sign_in.url.clone();
    let jar = PendingSignIn { sign_in, return_to, started_at: portal.clock.now() }.write(jar);
    Ok((jar, Redirect::to(&url)).into_response())
}

/// Where the provider sends the browser back: the configured URL, else the
/// request's host over HTTPS.
fn redirect_uri<S>(portal: &Portal<S>, headers: &axum::http::HeaderMap) -> Result<String, PageError> {
    if let Some(base) = &portal.config.base_url {
        return Ok(format!("{base}/callback"));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')))
        .ok_or_else(|| {
            PageError::Unavailable("the portal's URL is not configured and the request names no host".into())
        })?;
    Ok(format!("https://{host}/callback"))
}

async fn verifier<S>(portal: &Portal<S>) -> Result<&grantwarden_oidc::Verifier, PageError> {
    let oidc = portal.oidc.as_ref().ok_or_else(|| {
        PageError::Unavailable(
            "no identity provider is configured (GRANTWARDEN_OIDC_ISSUER): nobody can sign in".into(),
        )
    })?;
    oidc.get().await.map_err(|e| PageError::Unavailable(e.to_string()))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let now = portal.clock.now();
    let pending = PendingSignIn::read(&jar, now);
    // a sign-in is used once, whatever its outcome
    let jar = PendingSignIn::clear(jar);
    match finish_sign_in(&portal, pending, q, &headers, now).await {
        Ok(verified) => {
            tracing::info!(person = %verified.actor.id, "signed in");
            let jar = Session::start(&verified.actor, now).write(jar);
            Ok((jar, Redirect::to(&verified.return_to)).into_response())
        }
        Err(e) => Ok((jar, e).into_response()),
    }
}

/// A verified sign-in and the page to return to.
struct SignedIn {
    actor: grantwarden_core::identity::Actor,
    return_to: String,
}

async fn finish_sign_in<S: PortalStore>(
    portal: &Portal<S>,
    pending: Option<PendingSignIn>,
    q: CallbackQuery,
    headers: &axum::http::HeaderMap,
    now: DateTime<Utc>,
) -> Result<SignedIn, PageError> {
    let pending = pending.ok_or_else(|| {
        PageError::SignIn("no sign-in in progress (it may have taken over 10 minutes): start again".into())
    })?;
    if let Some(error) = q.error {
        return Err(PageError::SignIn(format!("the identity provider answered {error}")));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(PageError::SignIn("the callback carries no code".into()));
    };
    if state != pending.sign_in.state {
        return Err(PageError::SignIn("the callback's state is not this sign-in's".into()));
    }
    let verifier = verifier(portal).await?;
    let verified = verifier
        .exchange(&code, &pending.sign_in, &redirect_uri(portal, headers)?, portal.config.client_secret.as_deref(), now)
        .await
        .map_err(|e| PageError::SignIn(e.to_string()))?;
    Ok(SignedIn { actor: verified.actor, return_to: pending.return_to })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    if let Some(session) = Session::read(&jar, portal.clock.now()) {
        check_csrf(&session, &form.csrf)?;
    }
    Ok((Session::clear(jar), Redirect::to("/")).into_response())
}

// ---- pages ----------------------------------------------------------------

/// One ticket as a row of a list.
struct Row {
    id: String,
    target: String,
    requester: String,
    path: String,
    scope: String,
    status: String,
    time_left: String,
    sensitive: bool,
    justification: String,
    approved_by: String,
}

impl Row {
    fn of(t: &Ticket, now: DateTime<Utc>) -> Self {
        let (path, scope, sensitive) = match t.access() {
            Some(a) => (
                a.path.to_string(),
                grantwarden_core::access_policy::describe(&a.scope),
                !a.sensitive_tables.is_empty() || !a.sensitive_schemas.is_empty(),
            ),
            None => {
                (t.category().to_owned(), format!("{:?} on {:?}", t.request().privileges, t.request().object), false)
            }
        };
        Row {
            id: t.id().to_owned(),
            target: t.request().target.to_string(),
            requester: t.request().requested_by.clone(),
            path,
            scope,
            status: t.status_at(now).to_string(),
            time_left: time_left(t, now),
            sensitive,
            justification: t.request().justification.clone().unwrap_or_default(),
            approved_by: t.approvals().iter().map(|a| a.approver.as_str()).collect::<Vec<_>>().join(", "),
        }
    }
}

fn time_left(t: &Ticket, now: DateTime<Utc>) -> String {
    match t.status_at(now) {
        TicketStatus::Active | TicketStatus::PendingApproval => {
            let left = (t.ends_at() - now).num_minutes().max(0);
            if left >= 60 { format!("{}h {:02}m", left / 60, left % 60) } else { format!("{left}m") }
        }
        _ => "ended".into(),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    mine: Vec<Row>,
}

async fn home<S: PortalStore>(State(AppState(portal)): State<AppState<S>>, jar: PrivateCookieJar) -> Response {
    signed_in_then(&portal, &jar, "/", async |session, now| {
        let mut mine: Vec<Ticket> = portal
            .store
            .tickets(None)
            .await?
            .into_iter()
            .filter(|t| t.request().requested_by.eq_ignore_ascii_case(&session.person))
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse(t.starts_at()));
        let rows = mine.iter().map(|t| Row::of(t, now)).collect();
        Ok::<_, PageError>(render(&HomePage { chrome: Chrome::of(&portal, &session), mine: rows }))
    })
    .await
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

async fn approvals<S: PortalStore>(State(AppState(portal)): State<AppState<S>>, jar: PrivateCookieJar) -> Response {
    signed_in_then(&portal, &jar, "/approvals", async |session, now| {
        let rows = portal
            .store
            .tickets(None)
            .await?
            .into_iter()
            .filter(|t| t.may_approve(&session.person, now))
            .map(|t| Row::of(&t, now))
            .collect();
        Ok::<_, PageError>(render(&ApprovalsPage { chrome: Chrome::of(&portal, &session), rows }))
    })
    .await
}

#[derive(Template)]
#[template(path = "tickets.html")]
struct TicketsPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

async fn tickets<S: PortalStore>(State(AppState(portal)): State<AppState<S>>, jar: PrivateCookieJar) -> Response {
    signed_in_then(&portal, &jar, "/tickets", async |session, now| {
        let mut rows: Vec<Ticket> =
            portal.store.tickets(None).await?.into_iter().filter(|t| t.is_active_at(now)).collect();
        rows.sort_by_key(|t| t.ends_at());
        let rows = rows.iter().map(|t| Row::of(t, now)).collect();
        Ok::<_, PageError>(render(&TicketsPage { chrome: Chrome::of(&portal, &session), rows }))
    })
    .await
}

/// One journal event of a ticket.
struct Step {
    at: String,
    kind: String,
    actor: String,
    vouched_by: String,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    id: String,
    requester: String,
    target: String,
    path: String,
    scope: String,
    status: String,
    expires_at: String,
    time_left: String,
    justification: String,
    approvals_needed: u8,
    approved_by: String,
    may_approve: bool,
    may_deny: bool,
    needs_recent_sign_in: bool,
    may_end: bool,
    may_issue: bool,
    may_renew: bool,
    timeline: Vec<Step>,
}

async fn show<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
) -> Response {
    signed_in_then(&portal, &jar, &format!("/requests/{id}"), async |session, now| {
        let ticket = portal.store.ticket(&id).await?.ok_or_else(|| PageError::NotFound(id.clone()))?.value;
        let row = Row::of(&ticket, now);
        let timeline = portal
            .store
            .events(ticket.request().target.as_str())
            .await?
            .into_iter()
            .filter(|e| e.subject == id)
            .map(|e| Step {
                at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                kind: e.kind.to_string(),
                vouched_by: e.vouched_by().map(|v| v.to_string()).unwrap_or_default(),
                actor: e.actor,
            })
            .collect();
        let mine = ticket.request().requested_by.eq_ignore_ascii_case(&session.person);
        let open = matches!(ticket.status_at(now), TicketStatus::Active | TicketStatus::PendingApproval);
        let page = TicketPage {
            chrome: Chrome::of(&portal, &session),
            id: row.id,
            requester: row.requester,
            target: row.target,
            path: row.path,
            scope: row.scope,
            status: row.status,
            expires_at: ticket.ends_at().format("%Y-%m-%d %H:%M UTC").to_string(),
            time_left: row.time_left,
            justification: row.justification,
            approvals_needed: ticket.approvals_required(),
            approved_by: row.approved_by,
            may_approve: ticket.may_approve(&session.person, now),
            may_deny: ticket.access().is_some() && ticket.may_approve(&session.person, now),
            needs_recent_sign_in: ticket.approvals_required() >= 2,
            may_end: mine && open,
            may_renew: mine && ticket.is_active_at(now) && ticket.break_glass(),
            may_issue: mine
                && (portal.issuer.is_some() && grantwarden_core::access::issuable(&ticket, now).is_ok()
                    || portal.revealer.is_some()
                        && matches!(
                            grantwarden_core::access::revealable(&ticket, now),
                            Ok(()) | Err(grantwarden_core::access::NotIssuable::NotYetIssued(_))
                        )),
            timeline,
        };
        Ok::<_, PageError>(render(&page))
    })
    .await
}

async fn approve<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let here = format!("/requests/{id}");
    posted(&portal, &jar, &here, &form.csrf, async |session, now| {
        let actor = session.actor();
        match ticket_flow::approve_ticket(&portal.store, &id, &actor, now).await {
            // one of two approvals with an old sign-in: sign in again, then come back to approve
            Err(TicketFlowError::Approval(grantwarden_core::ticket::ApprovalError::SignIn(_))) => {
                tracing::info!(ticket = %id, "approval needs a fresh sign-in");
                return Ok(Redirect::to(&login_url(&here, true)).into_response());
            }
            other => other?,
        };
        tracing::info!(ticket = %id, person = %session.person, "approved in the portal");
        Ok::<_, PageError>(Redirect::to(&here).into_response())
    })
    .await
}

/// Turns a pending access request down (anyone who could approve it).
async fn deny<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
    Form(form): Form<EndForm>,
) -> Response {
    let here = format!("/requests/{id}");
    posted(&portal, &jar, &here, &form.csrf, async |session, now| {
        ticket_flow::deny_ticket(&portal.store, &id, &session.actor(), &form.reason(), now).await?;
        tracing::info!(ticket = %id, person = %session.person, "denied in the portal");
        Ok::<_, PageError>(Redirect::to(&here).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

impl EndForm {
    /// The reason as given, without control characters.
    fn reason(&self) -> String {
        self.reason.trim().chars().filter(|c| !c.is_control()).collect()
    }
}

/// Ticket `id` as stored, when the signed-in person asked for it; else
/// `refusal` (403), or 404 when there is no such ticket.
async fn requesters<S: PortalStore>(
    portal: &Portal<S>,
    id: &str,
    session: &Session,
    refusal: &str,
) -> Result<grantwarden_core::store::Versioned<Ticket>, PageError> {
    let read = portal.store.ticket(id).await?.ok_or_else(|| PageError::NotFound(id.to_owned()))?;
    if !read.value.request().requested_by.eq_ignore_ascii_case(&session.person) {
        return Err(PageError::Forbidden(refusal.to_owned()));
    }
    Ok(read)
}

async fn end<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
    Form(form): Form<EndForm>,
) -> Response {
    let here = format!("/requests/{id}");
    posted(&portal, &jar, &here, &form.csrf, async |session, now| {
        requesters(&portal, &id, &session, "only the requester ends a ticket here").await?;
        ticket_flow::request_revoke(&portal.store, &id, &session.actor(), &form.reason(), now).await?;
        Ok(Redirect::to(&here).into_response())
    })
    .await
}

/// Renews the requester's break-glass ticket while its incident stays open:
/// a sign-in of the last 15 minutes first, then the ticket (recorded first),
/// then the role's VALID UNTIL (a failure there ends access early, never late).
async fn renew<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let here = format!("/requests/{id}");
    posted(&portal, &jar, &here, &form.csrf, async |session, now| {
        let registry =
            portal.registry.as_ref().map_err(|e| PageError::Unavailable(format!("the policy registry: {e}")))?;
        requesters(&portal, &id, &session, "only the requester renews their break-glass access").await?;
        let renewed = match ticket_flow::renew_break_glass(&portal.store, &id, &session.actor(), registry, now).await {
            Err(TicketFlowError::Identity(
                grantwarden_core::identity::IdentityRefusal::SignInTooOld { .. }
                | grantwarden_core::identity::IdentityRefusal::NoSignIn(_),
            )) => return Ok(Redirect::to(&login_url(&here, true)).into_response()),
            other => other?,
        };
        if let Some(issuer) = &portal.issuer
            && let Err(e) = issuer.extend(&renewed.ticket, renewed.until).await
        {
            tracing::error!(ticket = %id, error = %e, "renewed, but the role's VALID UNTIL did not move: access ends at the old time");
        }
        tracing::info!(ticket = %id, until = %renewed.until, "break-glass renewed in the portal");
        Ok::<_, PageError>(Redirect::to(&here).into_response())
    })
    .await
}

#[derive(Template)]
#[template(path = "credential.html")]
struct CredentialPage {
    chrome: Chrome,
    id: String,
    role: String,
    password: String,
    host: String,
    port: u16,
    dbname: String,
    psql: String,
    valid_until: String,
}

/// The requester's credential, issued now and shown this once (the page is
/// never cached; the password is stored nowhere, the journal has the SQL).
async fn credential<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let here = format!("/requests/{id}");
    posted(&portal, &jar, &here, &form.csrf, async |session, now| {
        let read = requesters(&portal, &id, &session, "a credential is shown only to the person it is for").await?;
        let ticket = read.value.clone();
        let conflict = |e: grantwarden_core::access::NotIssuable| PageError::Conflict(e.to_string());
        let (issued, stored) = match (&portal.issuer, &portal.revealer) {
            // issued here and now, as `grantwarden access issue` does
            (Some(issuer), _) => {
                grantwarden_core::access::issuable(&ticket, now).map_err(conflict)?;
                let issued = issuer.issue(&ticket).await.map_err(PageError::Unavailable)?;
                let stored =
                    grantwarden_core::access::record_issued(&portal.store, &id, &issued.role, &issued.sql, None, now)
                        .await?;
                (issued, stored)
            }
            // delivered by another function: read, then recorded as shown before it is shown
            (None, Some(revealer)) => {
                grantwarden_core::access::revealable(&ticket, now).map_err(conflict)?;
                let issued = revealer
                    .reveal(&ticket)
                    .await
                    .map_err(PageError::Unavailable)?
                    .ok_or_else(|| conflict(grantwarden_core::access::NotIssuable::NotYetIssued(id.clone())))?;
                let stored = grantwarden_core::access::record_shown(&portal.store, read, &session.actor(), now)
                    .await
                    .map_err(|e| match e {
                    grantwarden_core::error::StoreError::Stale(_) => {
                        PageError::Conflict("the credential was shown in another window just now".into())
                    }
                    other => other.into(),
                })?;
                (issued, stored)
            }
            (None, None) => {
                return Err(PageError::Conflict(
                    "this portal does not issue credentials; ask the operator (grantwarden access issue)".into(),
                ));
            }
        };
        tracing::info!(ticket = %id, person = %session.person, "credential shown in the portal");
        let page = CredentialPage {
            chrome: Chrome::of(&portal, &session),
            psql: format!(
                "psql \"host={} port={} dbname={} user={} sslmode=prefer\"",
                issued.host, issued.port, issued.dbname, issued.role
            ),
            id,
            role: issued.role,
            password: issued.password,
            host: issued.host,
            port: issued.port,
            dbname: issued.dbname,
            valid_until: stored.expires_at().format("%Y-%m-%d %H:%M UTC").to_string(),
        };
        Ok::<_, PageError>(render(&page).into_response())
    })
    .await
}

// ---- asking for access ----------------------------------------------------

/// A choice of a select.
struct Choice {
    value: String,
    selected: bool,
}

fn choices<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Choice> {
    values.into_iter().map(|v| Choice { value: v.to_owned(), selected: v == selected }).collect()
}

/// The request form as filled in.
#[derive(Debug, Clone, Default, Deserialize)]
struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    scope_on: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    tables: String,
    #[serde(default)]
    predicate: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    incident_id: String,
    #[serde(default)]
    action: String,
}

impl RequestForm {
    /// The access request body the form stands for (the person is the session's, never the form's).
    fn body(&self) -> serde_json::Value {
        let tables: Vec<&str> = self.tables.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
        let scope = match self.scope_on.as_str() {
            "database" => serde_json::json!({ "on": "database" }),
            "schema" => serde_json::json!({ "on": "schema", "schema": self.schema.trim() }),
            "rows" => serde_json::json!({ "on": "rows", "schema": self.schema.trim(),
                "table": tables.first().copied().unwrap_or_default(), "predicate": self.predicate.trim() }),
            _ => serde_json::json!({ "on": "tables", "schema": self.schema.trim(), "tables": tables }),
        };
        let mut body = serde_json::json!({
            "id": self.id, "target": self.target, "path": self.path, "scope": scope,
            "duration": self.duration.trim(), "justification": self.justification.trim(),
        });
        if !self.incident_id.trim().is_empty() {
            body["incident_id"] = serde_json::json!(self.incident_id.trim());
        }
        body
    }
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    chrome: Chrome,
    form: RequestForm,
    targets: Vec<Choice>,
    paths: Vec<Choice>,
    scopes: Vec<Choice>,
    error: Option<String>,
    verdict: Option<String>,
    may_submit: bool,
}

impl NewPage {
    fn of<S>(portal: &Portal<S>, session: &Session, form: RequestForm) -> Self {
        let offered: Vec<String> = match &portal.registry {
            Ok(r) => r.access.as_ref().map(|a| a.paths.keys().map(AccessPath::to_string).collect()).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        NewPage {
            chrome: Chrome::of(portal, session),
            targets: choices(portal.config.targets.iter().map(TargetId::as_str), &form.target),
            paths: choices(offered.iter().map(String::as_str), &form.path),
            scopes: choices(["tables", "schema", "database", "rows"], &form.scope_on),
            form,
            error: None,
            verdict: None,
            may_submit: false,
        }
    }
}

async fn new_request<S: PortalStore>(State(AppState(portal)): State<AppState<S>>, jar: PrivateCookieJar) -> Response {
    signed_in_then(&portal, &jar, "/requests/new", async |session, _| {
        // the request id is the idempotency key: one per form shown, so a double submit is one request
        let form = RequestForm {
            id: format!("portal-{}", session::random_token()),
            scope_on: "tables".into(),
            ..Default::default()
        };
        Ok(render(&NewPage::of(&portal, &session, form)))
    })
    .await
}

async fn submit_request<S: PortalStore>(
    State(AppState(portal)): State<AppState<S>>,
    jar: PrivateCookieJar,
    Form(form): Form<RequestForm>,
) -> Response {
    posted(&portal, &jar, "/requests/new", &form.csrf, async |session, now| {
        let registry =
            portal.registry.as_ref().map_err(|e| PageError::Unavailable(format!("the policy registry: {e}")))?;
        let actor = session.actor();
        let mut page = NewPage::of(&portal, &session, form.clone());
        let body = form.body().to_string();
        let request = match parse_request(body.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                page.error = Some(format!("{}: {}", e.field, e.reason));
                return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
            }
        };
        if !portal.config.targets.contains(&request.target) {
            page.error = Some(format!("target: unknown database {}", request.target));
            return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
        }
        let verdict = preview(&portal.store, &request, &actor, registry, now).await.map_err(access_error)?;
        let allowed = !matches!(verdict, Verdict::Refused { .. } | Verdict::NotOffered { .. });
        if form.action != "submit" || !allowed {
            page.verdict = Some(verdict.to_string());
            page.may_submit = allowed;
            return Ok(render(&page).into_response());
        }
        let ticket = match request_access(&portal.store, &request, &actor, registry, now).await.map_err(access_error)? {
            AccessOutcome::Created(t) | AccessOutcome::Existing(t) => t,
            AccessOutcome::Conflict(t) => {
                return Err(PageError::Conflict(format!("this form was already used for ticket {}", t.id())));
            }
            AccessOutcome::Refused { refusal, .. } => {
                page.verdict = Some(format!("refused: {refusal}"));
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
            }
            AccessOutcome::Unroutable(reason) => {
                page.verdict = Some(format!("not offered: {reason}"));
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
            }
        };
        tracing::info!(ticket = %ticket.id(), person = %session.person, "access requested in the portal");
        Ok::<_, PageError>(Redirect::to(&format!("/requests/{}", ticket.id())).into_response())
    })
    .await
}

fn access_error(e: AccessError) -> PageError {
    match e {
        AccessError::Identity(e) => PageError::Forbidden(e.to_string()),
        AccessError::Store(e) => e.into(),
    }
}

/// Reads a `Key` from at least 64 bytes (the portal's cookie key secret).
pub fn cookie_key(bytes: &[u8]) -> Result<Key, String> {
    Key::try_from(bytes).map_err(|_| format!("the cookie key is {} bytes; it needs 64 or more", bytes.len()))
}
